//! The split-brain checker: reads the observer's samples
//! (`process: "observer"`, `f: "observe"`, value an
//! [`Observation`]) and reports
//!
//! - `split-brain`: two or more ZooKeeper servers report `leader` in the same
//!   sample, each backed by a quorum of the membership it believes in (itself
//!   and the voting members that follow it in its epoch). One anomaly per
//!   interval: consecutive samples with the same set of leaders are one
//!   interval. A leader without such a quorum is a deposed leader that has not
//!   noticed yet (e.g. one resumed from a pause, until its next tick): ZAB
//!   lets it commit nothing, so it is not a second brain. A leader whose
//!   membership could not be read counts as backed.
//! - `multiple-controllers`: the controller named by ZooKeeper servers
//!   (`/controller` as each serves it) and by brokers (each broker's own view)
//!   is not one broker, in consecutive samples spanning more than the grace
//!   period (controller changes propagate with some lag).
//! - `divergent-ensembles`: groups of servers serving different data for the
//!   same path: different `/cluster/id` values, or, while there are two
//!   leaders, different `/controller` values between the leaders' groups.
//!
//! Interval bounds are sample times: `start` is the first sample that showed
//! the condition, `end` the last one. The truth may have lasted a little
//! longer on either side (up to one sampling period).

use crate::verdict::Anomaly;
use serde_json::{json, Value};
use splitbrain_core::cluster::{Observation, ZkMode, ZkServerView};
use splitbrain_core::history::{Op, OpValue};
use std::collections::{BTreeMap, BTreeSet};

/// Names of the anomalies this checker reports.
pub const SPLIT_BRAIN_ANOMALIES: &[&str] =
    &["split-brain", "multiple-controllers", "divergent-ensembles"];

/// Default grace period for controller disagreement: 5 s.
pub const DEFAULT_CONTROLLER_GRACE_NS: u64 = 5_000_000_000;

/// An interval over which one condition held, identified by a signature so
/// that a changed condition starts a new interval.
struct Open {
    signature: String,
    start: u64,
    end: u64,
    samples: u64,
    start_index: u64,
    detail: Value,
}

#[derive(Default)]
struct Tracker {
    open: Option<Open>,
}

impl Tracker {
    /// Notes the condition at one sample (`None` when it does not hold) and
    /// returns the interval it closed, if any.
    fn step(&mut self, time: u64, index: u64, now: Option<(String, Value)>) -> Option<Open> {
        match (now, &mut self.open) {
            (Some((sig, _)), Some(open)) if open.signature == sig => {
                open.end = time;
                open.samples += 1;
                None
            }
            (Some((signature, detail)), _) => self.open.replace(Open {
                signature,
                start: time,
                end: time,
                samples: 1,
                start_index: index,
                detail,
            }),
            (None, _) => self.open.take(),
        }
    }
}

/// Result of the split-brain checker.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitBrainResult {
    /// Every anomaly of [`SPLIT_BRAIN_ANOMALIES`], zero counts included.
    pub anomalies: BTreeMap<String, Anomaly>,
    /// `observations`: samples read.
    pub counts: BTreeMap<String, u64>,
}

/// The split-brain checker. Feed it observer operations in history order.
pub struct SplitBrainChecker {
    examples: usize,
    grace_ns: u64,
    samples: u64,
    leaders: Tracker,
    controllers: Tracker,
    divergent: Tracker,
    split_brain: Anomaly,
    multiple_controllers: Anomaly,
    divergent_ensembles: Anomaly,
}

fn server_json(s: &ZkServerView) -> Value {
    json!({"node": s.node, "server-id": s.server_id, "epoch": s.epoch, "zxid": s.zxid,
           "members": s.members})
}

/// The servers that appear to follow `leader`: same epoch, not leading.
fn side_of<'a>(leader: &ZkServerView, all: &'a [ZkServerView]) -> Vec<&'a ZkServerView> {
    all.iter()
        .filter(|s| {
            s.server_id == leader.server_id
                || (matches!(s.mode, ZkMode::Follower | ZkMode::Observer)
                    && s.epoch.is_some()
                    && s.epoch == leader.epoch)
        })
        .collect()
}

/// Whether `leader` is followed, in its own epoch, by a quorum of the voting
/// members it believes in (unknown membership counts as backed).
fn backed_by_quorum(leader: &ZkServerView, all: &[ZkServerView]) -> bool {
    if leader.members.is_empty() {
        return true;
    }
    let voters = side_of(leader, all)
        .iter()
        .filter(|s| s.mode != ZkMode::Observer && leader.members.contains(&s.server_id))
        .count();
    voters * 2 > leader.members.len()
}

impl SplitBrainChecker {
    /// A checker keeping up to `examples` examples, tolerating controller
    /// disagreement for up to `grace_ns`.
    pub fn new(examples: usize, grace_ns: u64) -> Self {
        SplitBrainChecker {
            examples,
            grace_ns,
            samples: 0,
            leaders: Tracker::default(),
            controllers: Tracker::default(),
            divergent: Tracker::default(),
            split_brain: Anomaly::default(),
            multiple_controllers: Anomaly::default(),
            divergent_ensembles: Anomaly::default(),
        }
    }

    /// Feeds one operation; anything but an observer sample is ignored.
    pub fn observe(&mut self, op: &Op<'_>) {
        if let OpValue::Observation(obs) = &op.value {
            self.sample(op.time, op.index, obs);
        }
    }

    /// Feeds one sample taken at `time` (ns), recorded at history `index`.
    pub fn sample(&mut self, time: u64, index: u64, obs: &Observation) {
        self.samples += 1;
        let zk = &obs.zookeeper;
        let mut leaders: Vec<&ZkServerView> = zk
            .iter()
            .filter(|s| s.mode == ZkMode::Leader && backed_by_quorum(s, zk))
            .collect();
        leaders.sort_by_key(|s| s.server_id);

        // split-brain
        let now = (leaders.len() >= 2).then(|| {
            let sig = leaders
                .iter()
                .map(|l| l.server_id.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let sides: Vec<Value> = leaders
                .iter()
                .map(|l| {
                    json!({"leader": server_json(l),
                           "side": side_of(l, zk).iter().map(|s| s.server_id).collect::<Vec<_>>()})
                })
                .collect();
            (sig, json!({ "leaders": sides }))
        });
        if let Some(closed) = self.leaders.step(time, index, now) {
            self.split_brain
                .add(self.examples, || interval_json(&closed));
        }

        // multiple-controllers
        let mut claims: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for s in zk.iter().filter(|s| s.mode != ZkMode::Unreachable) {
            if let Some(c) = s.controller {
                claims
                    .entry(c)
                    .or_default()
                    .push(format!("zk {} ({})", s.server_id, s.node));
            }
        }
        for b in &obs.kafka {
            if let Some(c) = b.controller {
                claims
                    .entry(c)
                    .or_default()
                    .push(format!("broker {} ({})", b.broker_id, b.node));
            }
        }
        let now = (claims.len() >= 2).then(|| {
            let sig = claims
                .keys()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let detail: BTreeMap<String, &Vec<String>> =
                claims.iter().map(|(c, who)| (c.to_string(), who)).collect();
            (sig, json!({ "controllers": detail }))
        });
        if let Some(closed) = self.controllers.step(time, index, now) {
            self.close_controllers(closed);
        }

        // divergent-ensembles
        let mut cluster_ids: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for s in zk.iter().filter(|s| s.mode != ZkMode::Unreachable) {
            if let Some(id) = &s.cluster_id {
                cluster_ids
                    .entry(id.as_str())
                    .or_default()
                    .push(s.server_id);
            }
        }
        let mut groups = Vec::new();
        let mut path = None;
        if cluster_ids.len() >= 2 {
            path = Some("/cluster/id");
            for (value, servers) in &cluster_ids {
                groups.push(json!({"value": value, "servers": servers}));
            }
        } else if leaders.len() >= 2 {
            let by_leader: Vec<(&ZkServerView, Vec<u64>)> = leaders
                .iter()
                .map(|l| (*l, side_of(l, zk).iter().map(|s| s.server_id).collect()))
                .collect();
            let values: BTreeSet<Option<i32>> =
                by_leader.iter().map(|(l, _)| l.controller).collect();
            if values.len() >= 2 {
                path = Some("/controller");
                for (l, servers) in &by_leader {
                    groups.push(
                        json!({"value": l.controller, "leader": l.server_id, "servers": servers}),
                    );
                }
            }
        }
        let now = path.map(|p| {
            let sig = format!("{p} {}", Value::Array(groups.clone()));
            (sig, json!({"path": p, "groups": groups}))
        });
        if let Some(closed) = self.divergent.step(time, index, now) {
            self.divergent_ensembles
                .add(self.examples, || interval_json(&closed));
        }
    }

    fn close_controllers(&mut self, closed: Open) {
        if closed.end.saturating_sub(closed.start) > self.grace_ns {
            let grace = self.grace_ns;
            self.multiple_controllers.add(self.examples, || {
                let mut v = interval_json(&closed);
                v["grace-ns"] = json!(grace);
                v
            });
        }
    }

    /// The result, or `None` when the history had no observer samples.
    pub fn finish(mut self) -> Option<SplitBrainResult> {
        if self.samples == 0 {
            return None;
        }
        if let Some(c) = self.leaders.open.take() {
            self.split_brain.add(self.examples, || interval_json(&c));
        }
        if let Some(c) = self.controllers.open.take() {
            self.close_controllers(c);
        }
        if let Some(c) = self.divergent.open.take() {
            self.divergent_ensembles
                .add(self.examples, || interval_json(&c));
        }
        let anomalies = [
            ("split-brain", self.split_brain),
            ("multiple-controllers", self.multiple_controllers),
            ("divergent-ensembles", self.divergent_ensembles),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let counts = [("observations".to_string(), self.samples)].into();
        Some(SplitBrainResult { anomalies, counts })
    }
}

fn interval_json(o: &Open) -> Value {
    let mut v = json!({"start-ns": o.start, "end-ns": o.end, "samples": o.samples,
                       "first-op": o.start_index});
    if let (Value::Object(dst), Value::Object(src)) = (&mut v, &o.detail) {
        for (k, val) in src {
            dst.insert(k.clone(), val.clone());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::cluster::BrokerView;
    use splitbrain_core::history::HistoryReader;

    const S: u64 = 1_000_000_000;

    fn zk(id: u64, mode: ZkMode, epoch: u32, members: &[u64]) -> ZkServerView {
        ZkServerView {
            node: format!("n{id}"),
            server_id: id,
            mode,
            zxid: Some(((epoch as u64) << 32) | 7),
            epoch: Some(epoch),
            members: members.to_vec(),
            znode_count: Some(30),
            controller: Some(1),
            cluster_id: Some("c1".into()),
            error: None,
        }
    }
    fn broker(id: i32, controller: i32) -> BrokerView {
        BrokerView {
            node: format!("k{id}"),
            broker_id: id,
            controller: Some(controller),
            error: None,
        }
    }
    /// A healthy 3-server ensemble (leader 1, epoch 2) and 3 brokers agreeing
    /// that broker 1 is controller.
    fn healthy() -> Observation {
        Observation {
            zookeeper: vec![
                zk(1, ZkMode::Leader, 2, &[1, 2, 3]),
                zk(2, ZkMode::Follower, 2, &[1, 2, 3]),
                zk(3, ZkMode::Follower, 2, &[1, 2, 3]),
            ],
            kafka: vec![broker(1, 1), broker(2, 1), broker(3, 1)],
        }
    }
    /// The incident: servers 4..7 list 1..7, elected 4 as their own leader
    /// over an empty tree; broker 3 joined them and became controller.
    fn incident() -> Observation {
        let all = [1, 2, 3, 4, 5, 6, 7];
        let mut o = healthy();
        for id in 4..=7 {
            let mode = if id == 4 {
                ZkMode::Leader
            } else {
                ZkMode::Follower
            };
            let mut s = zk(id, mode, 1, &all);
            s.controller = Some(3);
            s.cluster_id = Some("c2".into());
            o.zookeeper.push(s);
        }
        o.kafka[2].controller = Some(3);
        o
    }

    /// Runs samples through a real history: one observer line per sample.
    fn run(samples: &[(u64, Observation)], grace: u64) -> Option<SplitBrainResult> {
        let text: String = samples
            .iter()
            .enumerate()
            .map(|(i, (t, o))| {
                format!(
                    "{{\"index\":{i},\"time\":{t},\"process\":\"observer\",\"type\":\"ok\",\"f\":\"observe\",\"value\":{}}}\n",
                    serde_json::to_string(o).unwrap()
                )
            })
            .collect();
        let mut r = HistoryReader::new(text.as_bytes(), "obs.jsonl");
        let mut c = SplitBrainChecker::new(5, grace);
        while let Some(op) = r.next_op() {
            c.observe(&op.unwrap());
        }
        c.finish()
    }
    fn counts(r: &SplitBrainResult) -> [u64; 3] {
        [
            r.anomalies["split-brain"].count,
            r.anomalies["multiple-controllers"].count,
            r.anomalies["divergent-ensembles"].count,
        ]
    }
    fn timeline(obs: &[Observation]) -> Vec<(u64, Observation)> {
        obs.iter()
            .cloned()
            .enumerate()
            .map(|(i, o)| (i as u64 * S, o))
            .collect()
    }

    #[test]
    fn no_samples_no_result() {
        assert!(run(&[], 0).is_none());
    }

    #[test]
    fn healthy_cluster_has_no_anomalies() {
        let r = run(&timeline(&vec![healthy(); 10]), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
        assert_eq!(r.counts["observations"], 10);
    }

    #[test]
    fn incident_shows_all_three_as_one_interval_each() {
        let mut obs = vec![healthy(); 2];
        obs.extend(vec![incident(); 8]);
        obs.extend(vec![healthy(); 2]);
        let r = run(&timeline(&obs), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [1, 1, 1]);
        let sb = &r.anomalies["split-brain"].examples[0];
        assert_eq!(sb["start-ns"], 2 * S);
        assert_eq!(sb["end-ns"], 9 * S);
        assert_eq!(sb["samples"], 8);
        assert_eq!(sb["leaders"][0]["leader"]["server-id"], 1);
        assert_eq!(sb["leaders"][0]["side"], json!([1, 2, 3]));
        assert_eq!(sb["leaders"][1]["leader"]["epoch"], 1);
        assert_eq!(
            sb["leaders"][1]["leader"]["members"],
            json!([1, 2, 3, 4, 5, 6, 7])
        );
        assert_eq!(sb["leaders"][1]["side"], json!([4, 5, 6, 7]));
        let mc = &r.anomalies["multiple-controllers"].examples[0];
        assert_eq!(mc["controllers"]["3"][0], "zk 4 (n4)");
        let de = &r.anomalies["divergent-ensembles"].examples[0];
        assert_eq!(de["path"], "/cluster/id");
    }

    #[test]
    fn two_leaders_without_divergent_data_is_split_brain_only() {
        let mut o = healthy();
        o.zookeeper[2].mode = ZkMode::Leader;
        let r = run(
            &timeline(&[healthy(), o, healthy()]),
            DEFAULT_CONTROLLER_GRACE_NS,
        )
        .unwrap();
        assert_eq!(counts(&r), [1, 0, 0]);
    }

    #[test]
    fn a_deposed_leader_without_a_quorum_is_not_a_second_brain() {
        // Server 1 was paused; 2 and 3 elected 2 in epoch 3. Resumed, 1 still
        // says leader (epoch 2) for a moment, followed by nobody.
        let mut o = healthy();
        o.zookeeper[1] = zk(2, ZkMode::Leader, 3, &[1, 2, 3]);
        o.zookeeper[2] = zk(3, ZkMode::Follower, 3, &[1, 2, 3]);
        let r = run(
            &timeline(&[healthy(), o.clone(), healthy()]),
            DEFAULT_CONTROLLER_GRACE_NS,
        )
        .unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
        // Had server 2's membership been unreadable, it would count as backed
        // (server 1 keeps its quorum {1,3}): two leaders, reported.
        let mut still_followed = healthy();
        still_followed.zookeeper[1] = zk(2, ZkMode::Leader, 3, &[]);
        let r = run(&timeline(&[still_followed]), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r)[0], 1, "unknown membership counts as backed");
    }

    #[test]
    fn controller_disagreement_within_grace_is_tolerated() {
        let mut o = healthy();
        o.kafka[1].controller = Some(2);
        // Disagreement seen at 1 s and 2 s: lasted ~1 s, under a 5 s grace.
        let obs = vec![healthy(), o.clone(), o.clone(), healthy()];
        let r = run(&timeline(&obs), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
        // Lasting 7 s: reported.
        let mut obs = vec![healthy()];
        obs.extend(vec![o; 8]);
        let r = run(&timeline(&obs), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [0, 1, 0]);
        assert_eq!(
            r.anomalies["multiple-controllers"].examples[0]["end-ns"],
            8 * S
        );
    }

    #[test]
    fn divergent_controller_between_two_leaders_groups() {
        let mut o = incident();
        for s in &mut o.zookeeper {
            s.cluster_id = Some("c1".into());
        }
        let r = run(&timeline(&[o]), 0).unwrap();
        assert_eq!(counts(&r)[2], 1);
        let de = &r.anomalies["divergent-ensembles"].examples[0];
        assert_eq!(de["path"], "/controller");
        assert_eq!(de["groups"][1]["servers"], json!([4, 5, 6, 7]));
        // Same data on both sides: not divergent.
        let mut o = incident();
        for s in &mut o.zookeeper {
            s.cluster_id = Some("c1".into());
            s.controller = Some(1);
        }
        let r = run(&timeline(&[o]), 0).unwrap();
        assert_eq!(counts(&r)[2], 0);
    }

    #[test]
    fn unreachable_servers_do_not_count() {
        let mut o = healthy();
        o.zookeeper[2].mode = ZkMode::Unreachable;
        o.zookeeper[2].cluster_id = Some("stale".into());
        o.zookeeper[2].controller = Some(9);
        let r = run(&timeline(&vec![o; 10]), 0).unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
    }
}
