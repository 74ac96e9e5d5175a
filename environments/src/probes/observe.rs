//! What every server believes, right now: the raw material of split-brain
//! detection.
//!
//! Each ZooKeeper server is asked on its own (`srvr`, `conf`, then a fresh
//! client session pinned to it that reads `/controller`, `/controller_epoch`
//! and `/cluster/id`);
//! each broker is asked on its own for its metadata (the controller it names).
//! All servers are asked concurrently, every network step bounded by the
//! timeout, so one sample takes about one timeout at worst: cheap enough for
//! an observer sampling every 100–500 ms. Then the test topics' partition
//! states (leader, leader epoch, ISR) are read from the ZooKeeper leader.

use crate::db::cluster::ClusterLayout;
use crate::db::kafka::{Broker, KafkaSettings};
use crate::db::kraft::{Controller, KraftSettings};
use crate::db::zookeeper::{ZkServer, ZkSettings};
use crate::probes::kafka_client;
use crate::probes::zk_client::{self, ZkSession};
use crate::probes::ProbeError;
use splitbrain_core::cluster::{
    BrokerView, ControllerRole, ControllerView, Observation, PartitionState, ZkMode, ZkServerView,
};
use std::time::Duration;

/// Default bound of each network step of one sample.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Samples every server of `layout` with [`DEFAULT_TIMEOUT`].
pub fn observe(layout: &ClusterLayout) -> Observation {
    observe_with(layout, DEFAULT_TIMEOUT)
}

/// Samples every server of `layout`, each network step bounded by `timeout`.
pub fn observe_with(layout: &ClusterLayout, timeout: Duration) -> Observation {
    let mut o = observe_servers(layout, timeout);
    o.partitions = observe_partitions(layout, &o, timeout);
    o
}

/// The topics whose partition states are sampled: the test's own (every
/// topic not internal to Kafka, whose names start with `__`).
fn is_test_topic(topic: &str) -> bool {
    !topic.starts_with("__")
}

/// Every test topic's partition states, from the ZooKeeper leader (or,
/// without one, the first server that serves): empty when none answers.
pub fn observe_partitions(
    layout: &ClusterLayout,
    o: &Observation,
    timeout: Duration,
) -> Vec<PartitionState> {
    let serving = |m: ZkMode| matches!(m, ZkMode::Leader | ZkMode::Standalone);
    let pick = o
        .zookeeper
        .iter()
        .find(|v| serving(v.mode))
        .or_else(|| o.zookeeper.iter().find(|v| v.mode == ZkMode::Follower));
    let Some(server) = pick.and_then(|v| layout.zk_server(v.server_id)) else {
        return vec![];
    };
    let addr = server.client_addr(&layout.zk_settings);
    read_partitions(addr, server.id, timeout).unwrap_or_default()
}

/// `{"leader":2,"leader_epoch":4,"isr":[2,3],...}` of a partition's state.
pub fn parse_partition_state(data: &[u8]) -> Option<(i32, i32, Vec<i32>)> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let int = |k: &str| v.get(k)?.as_i64().and_then(|i| i32::try_from(i).ok());
    let isr = v
        .get("isr")?
        .as_array()?
        .iter()
        .filter_map(|b| b.as_i64().and_then(|i| i32::try_from(i).ok()))
        .collect();
    Some((int("leader")?, int("leader_epoch")?, isr))
}

fn read_partitions(
    addr: std::net::SocketAddr,
    server_id: u64,
    timeout: Duration,
) -> Result<Vec<PartitionState>, ProbeError> {
    let mut session = ZkSession::connect(addr, Duration::from_secs(10), timeout)?;
    let mut out = Vec::new();
    let topics = session.get_children("/brokers/topics")?.unwrap_or_default();
    for topic in topics.iter().filter(|t| is_test_topic(t)) {
        let base = format!("/brokers/topics/{topic}/partitions");
        let mut parts: Vec<i32> = session
            .get_children(&base)?
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        parts.sort_unstable();
        for p in parts {
            let data = session.get_data(&format!("{base}/{p}/state"))?;
            if let Some((leader, leader_epoch, isr)) =
                data.as_deref().and_then(parse_partition_state)
            {
                out.push(PartitionState {
                    topic: topic.clone(),
                    partition: p,
                    leader,
                    leader_epoch,
                    isr,
                    server_id,
                });
            }
        }
    }
    let _ = session.close();
    Ok(out)
}

fn observe_servers(layout: &ClusterLayout, timeout: Duration) -> Observation {
    std::thread::scope(|scope| {
        let zk: Vec<_> = layout
            .zookeeper
            .iter()
            .map(|s| scope.spawn(move || observe_zk_server(s, &layout.zk_settings, timeout)))
            .collect();
        let kraft = layout.is_kraft();
        let kafka: Vec<_> = layout
            .kafka
            .iter()
            .map(|b| {
                scope.spawn(move || {
                    let mut view = observe_broker(b, &layout.kafka_settings, timeout);
                    if kraft {
                        observe_broker_quorum(&mut view, b, &layout.kafka_settings, timeout);
                    }
                    view
                })
            })
            .collect();
        let controllers: Vec<_> = layout
            .kraft
            .iter()
            .flat_map(|k| k.controllers.iter().map(move |c| (k, c)))
            .map(|(k, c)| scope.spawn(move || observe_controller(c, &k.settings, timeout)))
            .collect();
        Observation {
            zookeeper: zk
                .into_iter()
                .zip(&layout.zookeeper)
                .map(|(h, s)| {
                    h.join().unwrap_or_else(|_| ZkServerView {
                        error: Some("observer thread panicked".into()),
                        ..unreachable_view(s)
                    })
                })
                .collect(),
            kafka: kafka
                .into_iter()
                .zip(&layout.kafka)
                .map(|(h, b)| {
                    h.join().unwrap_or_else(|_| BrokerView {
                        node: b.node.name.clone(),
                        broker_id: b.id,
                        controller: None,
                        quorum_leader: None,
                        quorum_epoch: None,
                        error: Some("observer thread panicked".into()),
                    })
                })
                .collect(),
            partitions: vec![],
            controllers: controllers
                .into_iter()
                .zip(layout.controllers())
                .map(|(h, c)| {
                    h.join().unwrap_or_else(|_| ControllerView {
                        error: Some("observer thread panicked".into()),
                        ..silent_controller(c)
                    })
                })
                .collect(),
        }
    })
}

fn unreachable_view(server: &ZkServer) -> ZkServerView {
    ZkServerView {
        node: server.node.name.clone(),
        server_id: server.id,
        mode: ZkMode::Unreachable,
        zxid: None,
        epoch: None,
        members: Vec::new(),
        znode_count: None,
        controller: None,
        controller_epoch: None,
        cluster_id: None,
        error: None,
    }
}

/// `brokerid` of `/controller`'s JSON.
pub fn parse_controller(data: &[u8]) -> Option<i32> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    v.get("brokerid")?
        .as_i64()
        .and_then(|i| i32::try_from(i).ok())
}

/// The epoch in `/controller_epoch` (Kafka writes it as a decimal number).
pub fn parse_controller_epoch(data: &[u8]) -> Option<i32> {
    std::str::from_utf8(data).ok()?.trim().parse().ok()
}

/// `id` of `/cluster/id`'s JSON.
pub fn parse_cluster_id(data: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    v.get("id")?.as_str().map(str::to_string)
}

/// One ZooKeeper server's own view. Never fails: what could not be read is
/// `None` and the reason is in `error`.
pub fn observe_zk_server(
    server: &ZkServer,
    settings: &ZkSettings,
    timeout: Duration,
) -> ZkServerView {
    let addr = server.client_addr(settings);
    let mut view = unreachable_view(server);
    let srvr = match zk_client::four_letter_word(addr, "srvr", timeout).and_then(|t| {
        zk_client::parse_srvr(&t).map_err(|source| ProbeError::Malformed { addr, source })
    }) {
        Ok(s) => s,
        Err(e) => {
            view.error = Some(format!("srvr: {e}"));
            return view;
        }
    };
    view.mode = srvr.mode;
    view.zxid = srvr.zxid;
    view.epoch = srvr.zxid.map(ZkServerView::epoch_of);
    view.znode_count = srvr.znode_count;
    let mut errors = Vec::new();
    match zk_client::four_letter_word(addr, "conf", timeout).and_then(|t| {
        zk_client::parse_conf(&t).map_err(|source| ProbeError::Malformed { addr, source })
    }) {
        Ok(conf) => view.members = conf.voters(),
        Err(e) => errors.push(format!("conf: {e}")),
    }
    // A server without a quorum refuses client sessions: nothing to read.
    if matches!(
        view.mode,
        ZkMode::Leader | ZkMode::Follower | ZkMode::Observer | ZkMode::Standalone
    ) {
        if let Err(e) = read_kafka_znodes(&mut view, addr, timeout) {
            errors.push(e.to_string());
        }
    }
    if !errors.is_empty() {
        view.error = Some(errors.join("; "));
    }
    view
}

fn read_kafka_znodes(
    view: &mut ZkServerView,
    addr: std::net::SocketAddr,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let mut session = ZkSession::connect(addr, Duration::from_secs(10), timeout)?;
    // Kafka creates `/controller` and bumps `/controller_epoch` in one
    // transaction, and one session reads in order: an epoch unchanged around
    // the read of `/controller` is the epoch of that registration.
    let read_epoch = |session: &mut ZkSession| {
        session
            .get_data("/controller_epoch")
            .map(|d| d.as_deref().and_then(parse_controller_epoch))
    };
    let epoch_before = read_epoch(&mut session)?;
    view.controller = session
        .get_data("/controller")?
        .as_deref()
        .and_then(parse_controller);
    let epoch_after = read_epoch(&mut session)?;
    view.controller_epoch = epoch_before.filter(|_| epoch_before == epoch_after);
    view.cluster_id = session
        .get_data("/cluster/id")?
        .as_deref()
        .and_then(parse_cluster_id);
    // Closing promptly keeps the server's session table small; if it
    // fails, the session simply expires.
    let _ = session.close();
    Ok(())
}

/// One broker's own view of the controller. Never fails: see `error`.
pub fn observe_broker(broker: &Broker, settings: &KafkaSettings, timeout: Duration) -> BrokerView {
    let mut view = BrokerView {
        node: broker.node.name.clone(),
        broker_id: broker.id,
        controller: None,
        quorum_leader: None,
        quorum_epoch: None,
        error: None,
    };
    // An empty topic list: the controller and brokers only, cheap.
    match kafka_client::metadata(broker.addr(settings), Some(&[]), timeout) {
        Ok(m) => view.controller = m.controller,
        Err(e) => view.error = Some(e.to_string()),
    }
    view
}

/// KRaft mode: the quorum leader a broker follows. A broker forwards
/// DescribeQuorum to the controller it believes active, which answers
/// only if it leads: the answer's leader is the controller this broker
/// follows. A failure is added to the view's `error`.
pub fn observe_broker_quorum(
    view: &mut BrokerView,
    broker: &Broker,
    settings: &KafkaSettings,
    timeout: Duration,
) {
    match kafka_client::describe_quorum(broker.addr(settings), timeout) {
        Ok(q) => {
            view.quorum_leader = q.leader_id;
            view.quorum_epoch = q.leader_id.map(|_| q.leader_epoch);
        }
        Err(e) => {
            let e = format!("describe-quorum: {e}");
            view.error = Some(match view.error.take() {
                Some(prev) => format!("{prev}; {e}"),
                None => e,
            });
        }
    }
}

fn silent_controller(c: &Controller) -> ControllerView {
    ControllerView {
        node: c.node.name.clone(),
        controller_id: c.id,
        role: ControllerRole::Unreachable,
        leader_epoch: None,
        high_watermark: None,
        voters: Vec::new(),
        backing: Vec::new(),
        error: None,
    }
}

/// One KRaft controller's own answer to DescribeQuorum. Never fails: a
/// refusal is [`ControllerRole::NotLeader`], silence `Unreachable`.
pub fn observe_controller(
    controller: &Controller,
    settings: &KraftSettings,
    timeout: Duration,
) -> ControllerView {
    let mut view = silent_controller(controller);
    match kafka_client::describe_quorum(controller.addr(settings), timeout) {
        // A controller describes the quorum only while it leads; a leader
        // naming another leader would be a protocol violation, kept as seen.
        Ok(q) => {
            view.role = if q.leader_id == Some(controller.id) {
                ControllerRole::Leader
            } else {
                view.error = Some(format!("described a quorum led by {:?}", q.leader_id));
                ControllerRole::NotLeader
            };
            view.leader_epoch = Some(q.leader_epoch);
            view.high_watermark = Some(q.high_watermark);
            view.voters = q.voters.iter().map(|v| v.replica_id).collect();
            view.backing = q.backing(i64::from(settings.fetch_timeout_ms));
        }
        Err(ProbeError::KafkaServer { code, .. }) => {
            view.role = ControllerRole::NotLeader;
            view.error = Some(format!(
                "DescribeQuorum: Kafka error {code}{}",
                kafka_client::error_name(code)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
        }
        Err(e) => view.error = Some(e.to_string()),
    }
    view
}

/// Each broker's own metadata (controller, brokers it sees alive, partition
/// leaders and ISRs of `topics`, all topics if `None`), asked of that broker
/// alone, all brokers concurrently. In layout order: `(broker id, answer or
/// why there is none)`. The partition-level complement of
/// [`BrokerView`], which carries only the controller.
pub fn broker_metadata(
    layout: &ClusterLayout,
    topics: Option<&[&str]>,
    timeout: Duration,
) -> Vec<(i32, Result<kafka_client::Metadata, ProbeError>)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = layout
            .kafka
            .iter()
            .map(|b| {
                scope.spawn(move || {
                    kafka_client::metadata(b.addr(&layout.kafka_settings), topics, timeout)
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&layout.kafka)
            .map(|(h, b)| {
                let answer = h.join().unwrap_or_else(|_| {
                    Err(ProbeError::Panicked {
                        addr: b.addr(&layout.kafka_settings),
                    })
                });
                (b.id, answer)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_state_json() {
        let data = br#"{"controller_epoch":2,"leader":3,"version":1,"leader_epoch":5,"isr":[3,1]}"#;
        assert_eq!(parse_partition_state(data), Some((3, 5, vec![3, 1])));
        assert_eq!(parse_partition_state(b"{}"), None);
        assert!(is_test_topic("queue"));
        assert!(!is_test_topic("__consumer_offsets"));
    }

    #[test]
    fn controller_and_cluster_id_json() {
        let c =
            br#"{"version":2,"brokerid":3,"timestamp":"1795304650519","kraftControllerEpoch":-1}"#;
        assert_eq!(parse_controller(c), Some(3));
        assert_eq!(parse_controller(b"not json"), None);
        assert_eq!(parse_controller(br#"{"version":2}"#), None);
        let id = br#"{"version":"1","id":"aHlPN6FUScGCr3val9XdVQ"}"#;
        assert_eq!(
            parse_cluster_id(id).as_deref(),
            Some("aHlPN6FUScGCr3val9XdVQ")
        );
        assert_eq!(parse_cluster_id(b""), None);
        assert_eq!(parse_controller_epoch(b"7"), Some(7));
        assert_eq!(parse_controller_epoch(b" 12\n"), Some(12));
        assert_eq!(parse_controller_epoch(b"{}"), None);
        assert_eq!(parse_controller_epoch(b""), None);
    }
}
