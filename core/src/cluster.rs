//! The cluster model: what each ZooKeeper server and Kafka broker says about
//! itself at one moment. Environments produce an [`Observation`] by asking the
//! servers; the observer records it in the history (`process: "observer"`,
//! `f: "observe"`); the split-brain checker reads it back. Keeping the type here
//! lets all three agree without depending on each other.

use serde::{Deserialize, Serialize};

/// One sample of every server's own view of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// One entry per ZooKeeper server that splitbrain started (reachable or not).
    #[serde(default)]
    pub zookeeper: Vec<ZkServerView>,
    /// One entry per Kafka broker that splitbrain started (reachable or not).
    #[serde(default)]
    pub kafka: Vec<BrokerView>,
    /// Each partition of the test's topics as ZooKeeper holds it (read from
    /// one serving server, the leader when there is one); empty when not
    /// read, and in histories recorded before this field existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionState>,
    /// KRaft mode: one entry per controller splitbrain started (reachable
    /// or not). Empty, and not written, in ZooKeeper mode and in histories
    /// recorded before KRaft mode existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<ControllerView>,
}

/// A partition's state as ZooKeeper holds it
/// (`/brokers/topics/<topic>/partitions/<p>/state`, written by the
/// controller): who leads, in which leader epoch, and the ISR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The leader's broker id (-1: none).
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// The ZooKeeper server it was read from.
    pub server_id: u64,
}

/// What a KRaft controller says of the metadata quorum when asked alone
/// (DescribeQuorum): only a controller that leads describes it; the others
/// answer that they do not lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerView {
    /// Node the controller runs on.
    pub node: String,
    /// Its `node.id`.
    pub controller_id: i32,
    /// Leading, answering that it does not lead, or silent.
    pub role: ControllerRole,
    /// The leader epoch it leads in (leaders only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_epoch: Option<i32>,
    /// The metadata log's high watermark (leaders only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<i64>,
    /// The voter set it leads (leaders only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<i32>,
    /// The voters backing it: itself and those that fetched from it within
    /// the quorum's fetch timeout, by its own clock (leaders only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backing: Vec<i32>,
    /// Why it could not be asked, or why it did not describe the quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A KRaft controller's answer to "do you lead the metadata quorum?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControllerRole {
    /// It described the quorum as its leader.
    Leader,
    /// It answered NOT_LEADER_OR_FOLLOWER (a follower, a candidate, or a
    /// controller that is not a voter).
    NotLeader,
    /// It did not answer.
    Unreachable,
}

impl ControllerView {
    /// Whether it leads with a majority of its own voter set backing it.
    pub fn leads_with_quorum(&self) -> bool {
        self.role == ControllerRole::Leader
            && !self.voters.is_empty()
            && self
                .backing
                .iter()
                .filter(|b| self.voters.contains(b))
                .count()
                * 2
                > self.voters.len()
    }
}

/// What a ZooKeeper server reports of itself (`srvr`, `conf`) and what it
/// serves for the znodes Kafka's control plane depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZkServerView {
    /// Node the server runs on, e.g. `"n1"`.
    pub node: String,
    /// The server's `myid`.
    pub server_id: u64,
    /// Its role, or `unreachable` when it did not answer.
    pub mode: ZkMode,
    /// Last zxid it has seen (`srvr`'s `Zxid`), when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zxid: Option<u64>,
    /// The epoch: the high 32 bits of the zxid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
    /// Server ids of the voting members it believes in (`conf`'s server list).
    #[serde(default)]
    pub members: Vec<u64>,
    /// Number of znodes in its tree (`srvr`'s `Node count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub znode_count: Option<u64>,
    /// `brokerid` of `/controller` as read from this server; `None` when absent
    /// or unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<i32>,
    /// `/controller_epoch` as read from this server, paired with
    /// `controller`: the epoch Kafka wrote in the same transaction that
    /// registered that controller. Read before and after `/controller` and
    /// kept only when both reads agree; `None` when absent, unreadable,
    /// changing during the read, or in histories recorded before this field
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_epoch: Option<i32>,
    /// Content of `/cluster/id` as read from this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Why some field could not be read, when one could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A ZooKeeper server's role as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZkMode {
    /// Leads an ensemble.
    Leader,
    /// Follows a leader.
    Follower,
    /// Non-voting member.
    Observer,
    /// Single-server mode.
    Standalone,
    /// Running but not serving (e.g. looking for a leader).
    Looking,
    /// Did not answer.
    Unreachable,
}

/// What a Kafka broker believes about the cluster, asked of that broker alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerView {
    /// Node the broker runs on.
    pub node: String,
    /// Its `broker.id`.
    pub broker_id: i32,
    /// The controller this broker names in its metadata; `None` if unknown.
    /// In KRaft mode this is a broker id chosen by the broker (clients never
    /// talk to controllers): see `quorum_leader` for the controller it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<i32>,
    /// KRaft mode: the active controller this broker follows, i.e. the
    /// quorum leader named by the controller it forwarded a DescribeQuorum
    /// to; `None` in ZooKeeper mode, in older histories, or when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_leader: Option<i32>,
    /// KRaft mode: that leader's epoch, paired with `quorum_leader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_epoch: Option<i32>,
    /// Why it could not be asked, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ZkServerView {
    /// Splits a zxid into its epoch (high 32 bits).
    pub fn epoch_of(zxid: u64) -> u32 {
        (zxid >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_high_32_bits() {
        assert_eq!(ZkServerView::epoch_of(0x0000_0003_0000_0010), 3);
        assert_eq!(ZkServerView::epoch_of(0x10), 0);
    }

    #[test]
    fn observation_round_trips_through_json() {
        let obs = Observation {
            zookeeper: vec![ZkServerView {
                node: "n1".into(),
                server_id: 1,
                mode: ZkMode::Leader,
                zxid: Some(0x1_0000_0005),
                epoch: Some(1),
                members: vec![1, 2, 3],
                znode_count: Some(40),
                controller: Some(2),
                controller_epoch: Some(4),
                cluster_id: Some("abc".into()),
                error: None,
            }],
            kafka: vec![BrokerView {
                node: "n4".into(),
                broker_id: 1,
                controller: Some(2),
                quorum_leader: None,
                quorum_epoch: None,
                error: None,
            }],
            partitions: vec![PartitionState {
                topic: "queue".into(),
                partition: 1,
                leader: 2,
                leader_epoch: 4,
                isr: vec![2, 3],
                server_id: 1,
            }],
            controllers: Vec::new(),
        };
        let text = serde_json::to_string(&obs).unwrap();
        assert!(text.contains("\"mode\":\"leader\""));
        assert!(text.contains("\"controller_epoch\":4"));
        let back: Observation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, obs);
    }

    #[test]
    fn a_sample_recorded_before_controller_epoch_existed_still_reads() {
        // An observer line's value as older builds wrote it.
        let old = r#"{"zookeeper":[{"node":"n1","server_id":1,"mode":"follower","zxid":4294967301,
            "epoch":1,"members":[1,2,3],"znode_count":40,"controller":2,"cluster_id":"abc"}],
            "kafka":[{"node":"n4","broker_id":1,"controller":2}]}"#;
        let obs: Observation = serde_json::from_str(old).unwrap();
        assert_eq!(obs.zookeeper[0].controller, Some(2));
        assert_eq!(obs.zookeeper[0].controller_epoch, None);
        assert!(obs.partitions.is_empty());
        // And an unknown epoch is not written back.
        assert!(!serde_json::to_string(&obs)
            .unwrap()
            .contains("controller_epoch"));
    }

    #[test]
    fn kraft_views_round_trip_and_zookeeper_samples_do_not_mention_them() {
        let zk_only = Observation::default();
        let text = serde_json::to_string(&zk_only).unwrap();
        assert!(!text.contains("controllers"), "{text}");
        let obs = Observation {
            zookeeper: Vec::new(),
            kafka: vec![BrokerView {
                node: "n4".into(),
                broker_id: 1,
                controller: Some(3),
                quorum_leader: Some(1002),
                quorum_epoch: Some(5),
                error: None,
            }],
            partitions: vec![],
            controllers: vec![ControllerView {
                node: "n2".into(),
                controller_id: 1002,
                role: ControllerRole::Leader,
                leader_epoch: Some(5),
                high_watermark: Some(40),
                voters: vec![1001, 1002, 1003],
                backing: vec![1002, 1003],
                error: None,
            }],
        };
        let text = serde_json::to_string(&obs).unwrap();
        assert!(text.contains("\"role\":\"leader\""), "{text}");
        let back: Observation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, obs);
        assert!(obs.controllers[0].leads_with_quorum());
        let mut alone = obs.controllers[0].clone();
        alone.backing = vec![1002];
        assert!(!alone.leads_with_quorum());
        alone.role = ControllerRole::NotLeader;
        alone.backing = vec![1001, 1002, 1003];
        assert!(!alone.leads_with_quorum());
    }

    #[test]
    fn a_zookeeper_mode_sample_from_an_older_build_reads_without_kraft_fields() {
        let old = r#"{"zookeeper":[],"kafka":[{"node":"n4","broker_id":1,"controller":2}]}"#;
        let obs: Observation = serde_json::from_str(old).unwrap();
        assert!(obs.controllers.is_empty());
        assert_eq!(obs.kafka[0].quorum_leader, None);
        assert_eq!(obs.kafka[0].controller, Some(2));
    }
}
