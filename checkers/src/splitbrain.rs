//! The split-brain checker: reads the observer's samples
//! (`process: "observer"`, `f: "observe"`, value an
//! [`Observation`]) and counts what acts, not what a cache says.
//!
//! The unit is a *quorum-backed ensemble* ([`backed_ensembles`]): a server
//! that says `leader`, whose membership is known, followed in its own epoch
//! by a quorum of that membership (followers count only when their own
//! membership is known and names it). A leader whose membership, epoch or
//! followers could not be read is unknown, and unknown is never backed: it
//! is not evidence of a second quorum. A deposed leader that has not
//! noticed yet (e.g. one resumed from a pause, until its next tick) has no
//! such quorum; ZAB lets it commit nothing.
//!
//! Anomalies, each reported only when it held in at least `min_samples`
//! consecutive samples (default [`DEFAULT_MIN_SAMPLES`]; one sample can be a
//! race between the servers' answers):
//!
//! - `split-brain`: two or more quorum-backed leaders. One anomaly per run
//!   of consecutive samples showing it.
//! - `multiple-controllers`: two different brokers each registered in
//!   `/controller` of a quorum-backed ensemble in the same sample, or two
//!   different brokers registered with the same `/controller_epoch` (as
//!   served by any ZooKeeper server serving reads): Kafka fences a deposed
//!   controller by its epoch, so two brokers holding one epoch, or two
//!   ensembles each with a controller, are two controllers acting.
//! - `divergent-ensembles`: groups of servers serving different data for the
//!   same path: different `/cluster/id` values, or, while there are two
//!   quorum-backed leaders, different `/controller` values between their
//!   ensembles. One anomaly per interval of unchanged groups.
//!
//! KRaft mode (controllers instead of ZooKeeper; see
//! [`ControllerView`]): a controller that leads, with a majority of its own
//! voter set backing it (fetched from it within the fetch timeout), is a
//! quorum-backed leader, and the same names apply with the same meaning:
//! `split-brain` counts them together with ZooKeeper's; `multiple-controllers`
//! is brokers following different quorum leaders in one sample (each
//! broker's answer comes from a controller that leads at that moment, so
//! two names are two controllers acting); `divergent-ensembles` is two
//! backed leaders whose epochs, voter sets or high watermarks differ. One
//! name is KRaft's own: `duplicate-leader-epoch`, two controllers leading
//! in the same leader epoch (backed or not), which Raft's election safety
//! rules out.
//!
//! Informational, not an anomaly (in the counts, does not make the history
//! invalid): `stale-controller-view`, a broker whose own metadata names a
//! controller that no quorum-backed ensemble has registered (a deposed one,
//! e.g. itself while cut off from ZooKeeper), for longer than the grace
//! period. Counted per broker and interval, with durations.
//!
//! Interval bounds are sample times: `start` is the first sample that showed
//! the condition, `end` the last one. The truth may have lasted a little
//! longer on either side (up to one sampling period).

use crate::verdict::Anomaly;
use serde_json::{json, Value};
use splitbrain_core::cluster::{ControllerRole, ControllerView, Observation, ZkMode, ZkServerView};
use splitbrain_core::history::{Op, OpValue};
use std::collections::{BTreeMap, BTreeSet};

/// Names of the anomalies this checker reports.
pub const SPLIT_BRAIN_ANOMALIES: &[&str] = &[
    "split-brain",
    "multiple-controllers",
    "divergent-ensembles",
    "duplicate-leader-epoch",
];

/// Default grace period before a broker's stale view of the controller is
/// counted as `stale-controller-view`: 5 s (controller changes reach the
/// brokers' metadata with some lag).
pub const DEFAULT_CONTROLLER_GRACE_NS: u64 = 5_000_000_000;

/// Default number of consecutive samples an anomaly must hold in before it
/// is reported.
pub const DEFAULT_MIN_SAMPLES: u32 = 2;

/// Count names of the informational `stale-controller-view`: intervals, and
/// their total and longest duration in milliseconds.
pub const STALE_CONTROLLER_VIEW_COUNTS: [&str; 3] = [
    "stale-controller-views",
    "stale-controller-view-ms",
    "stale-controller-view-max-ms",
];

/// One ZooKeeper ensemble that can act in a sample: a leader backed by a
/// quorum of the membership it believes in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackedEnsemble<'a> {
    /// The leader.
    pub leader: &'a ZkServerView,
    /// The servers that follow it (followers and observers in its epoch,
    /// whose known membership names it and, for followers, that its
    /// membership names; none that could follow another leader), in sample
    /// order.
    pub followers: Vec<&'a ZkServerView>,
}

impl BackedEnsemble<'_> {
    /// Server ids of the leader and its followers, sorted.
    pub fn server_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = std::iter::once(self.leader)
            .chain(self.followers.iter().copied())
            .map(|s| s.server_id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// `/controller` as this ensemble serves it, with the paired
    /// `/controller_epoch` when known: the leader's read, else the first
    /// follower's that has one.
    pub fn registered_controller(&self) -> Option<(i32, Option<i32>)> {
        std::iter::once(self.leader)
            .chain(self.followers.iter().copied())
            .find_map(|s| s.controller.map(|c| (c, s.controller_epoch)))
    }
}

/// Whether `s` can be following `leader`: it follows or observes in the
/// leader's (known) epoch, its own (known) membership names the leader and,
/// unless it observes, the leader's names it. Two ensembles can share an
/// epoch number (the incident's fresh ensemble starts at 1 like the old
/// one), so the epoch alone does not say whom it follows.
fn may_follow(s: &ZkServerView, leader: &ZkServerView) -> bool {
    s.server_id != leader.server_id
        && matches!(s.mode, ZkMode::Follower | ZkMode::Observer)
        && s.epoch.is_some()
        && s.epoch == leader.epoch
        && s.members.contains(&leader.server_id)
        && (s.mode == ZkMode::Observer || leader.members.contains(&s.server_id))
}

/// Whether `s` follows `leader` and no other leader of the sample could be
/// the one it follows (an ambiguous follower is unknown, so counts nowhere).
fn follows(s: &ZkServerView, leader: &ZkServerView, all: &[ZkServerView]) -> bool {
    may_follow(s, leader)
        && !all.iter().any(|l| {
            l.server_id != leader.server_id && l.mode == ZkMode::Leader && may_follow(s, l)
        })
}

/// The ensemble `leader` leads, if it is backed: its membership and epoch are
/// known and it plus the voting members of that membership that follow it
/// are more than half of it.
fn backed_ensemble<'a>(
    leader: &'a ZkServerView,
    all: &'a [ZkServerView],
) -> Option<BackedEnsemble<'a>> {
    if leader.mode != ZkMode::Leader || leader.members.is_empty() || leader.epoch.is_none() {
        return None;
    }
    let followers: Vec<&ZkServerView> = all.iter().filter(|s| follows(s, leader, all)).collect();
    let voters = std::iter::once(leader)
        .chain(followers.iter().copied())
        .filter(|s| s.mode != ZkMode::Observer && leader.members.contains(&s.server_id))
        .count();
    (voters * 2 > leader.members.len()).then_some(BackedEnsemble { leader, followers })
}

/// The quorum-backed ensembles of one sample's ZooKeeper views, by leader
/// id: the rule the checker applies to every sample. Two or more is a split
/// brain in that sample.
pub fn backed_ensembles(zk: &[ZkServerView]) -> Vec<BackedEnsemble<'_>> {
    let mut out: Vec<BackedEnsemble<'_>> =
        zk.iter().filter_map(|l| backed_ensemble(l, zk)).collect();
    out.sort_by_key(|e| e.leader.server_id);
    out
}

/// The quorum-backed leaders of one sample, by server id (see
/// [`backed_ensembles`]). What reports should count as "leaders".
pub fn quorum_backed_leaders(zk: &[ZkServerView]) -> Vec<&ZkServerView> {
    backed_ensembles(zk).into_iter().map(|e| e.leader).collect()
}

/// Whether a server serves reads (it answered and is in an ensemble).
fn serves(s: &ZkServerView) -> bool {
    matches!(
        s.mode,
        ZkMode::Leader | ZkMode::Follower | ZkMode::Observer | ZkMode::Standalone
    )
}

/// What one sample shows for one tracked condition.
struct Condition {
    /// A changed signature starts a new interval.
    signature: String,
    /// Detail of the interval's first sample.
    detail: Value,
    /// Ids (leaders, brokers) gathered over the whole interval.
    ids: Vec<i64>,
}

/// An interval over which one condition held.
struct Open {
    signature: String,
    start: u64,
    end: u64,
    samples: u64,
    start_index: u64,
    detail: Value,
    ids: BTreeSet<i64>,
}

#[derive(Default)]
struct Tracker {
    open: Option<Open>,
}

impl Tracker {
    /// Notes the condition at one sample (`None` when it does not hold) and
    /// returns the interval it closed, if any.
    fn step(&mut self, time: u64, index: u64, now: Option<Condition>) -> Option<Open> {
        match (now, &mut self.open) {
            (Some(c), Some(open)) if open.signature == c.signature => {
                open.end = time;
                open.samples += 1;
                open.ids.extend(c.ids);
                None
            }
            (Some(c), _) => self.open.replace(Open {
                signature: c.signature,
                start: time,
                end: time,
                samples: 1,
                start_index: index,
                detail: c.detail,
                ids: c.ids.into_iter().collect(),
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
    /// `observations` (samples read) and the informational
    /// [`STALE_CONTROLLER_VIEW_COUNTS`].
    pub counts: BTreeMap<String, u64>,
}

/// The split-brain checker. Feed it observer operations in history order.
pub struct SplitBrainChecker {
    examples: usize,
    grace_ns: u64,
    min_samples: u64,
    samples: u64,
    leaders: Tracker,
    controllers: Tracker,
    divergent: Tracker,
    same_epoch: Tracker,
    stale: BTreeMap<i32, Tracker>,
    split_brain: Anomaly,
    multiple_controllers: Anomaly,
    divergent_ensembles: Anomaly,
    duplicate_leader_epoch: Anomaly,
    stale_views: u64,
    stale_total_ns: u64,
    stale_max_ns: u64,
}

fn controller_json(c: &ControllerView) -> Value {
    json!({"node": c.node, "controller-id": c.controller_id, "epoch": c.leader_epoch,
           "high-watermark": c.high_watermark, "voters": c.voters, "backing": c.backing})
}

/// KRaft controllers leading with a majority of their own voter set behind them.
pub fn quorum_backed_controllers(controllers: &[ControllerView]) -> Vec<&ControllerView> {
    controllers
        .iter()
        .filter(|c| c.leads_with_quorum())
        .collect()
}

fn server_json(s: &ZkServerView) -> Value {
    json!({"node": s.node, "server-id": s.server_id, "epoch": s.epoch, "zxid": s.zxid,
           "members": s.members})
}

impl SplitBrainChecker {
    /// A checker keeping up to `examples` examples, counting a broker's stale
    /// view of the controller once it lasts longer than `grace_ns`, and
    /// reporting anomalies seen in [`DEFAULT_MIN_SAMPLES`] consecutive
    /// samples (see [`SplitBrainChecker::min_samples`]).
    pub fn new(examples: usize, grace_ns: u64) -> Self {
        SplitBrainChecker {
            examples,
            grace_ns,
            min_samples: DEFAULT_MIN_SAMPLES.into(),
            samples: 0,
            leaders: Tracker::default(),
            controllers: Tracker::default(),
            divergent: Tracker::default(),
            same_epoch: Tracker::default(),
            stale: BTreeMap::new(),
            split_brain: Anomaly::default(),
            multiple_controllers: Anomaly::default(),
            divergent_ensembles: Anomaly::default(),
            duplicate_leader_epoch: Anomaly::default(),
            stale_views: 0,
            stale_total_ns: 0,
            stale_max_ns: 0,
        }
    }

    /// Reports an anomaly only when it held in at least `samples`
    /// consecutive samples (0 is taken as 1).
    pub fn min_samples(mut self, samples: u32) -> Self {
        self.min_samples = samples.max(1).into();
        self
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
        let ensembles = backed_ensembles(zk);

        // split-brain (KRaft's backed leaders count with ZooKeeper's)
        let kraft = quorum_backed_controllers(&obs.controllers);
        let now = (ensembles.len() + kraft.len() >= 2).then(|| Condition {
            signature: String::new(),
            detail: json!({"leaders": ensembles
                .iter()
                .map(|e| json!({"leader": server_json(e.leader), "side": e.server_ids()}))
                .chain(kraft.iter().map(|c| json!({"leader": controller_json(c), "side": c.backing})))
                .collect::<Vec<_>>()}),
            ids: ensembles
                .iter()
                .map(|e| e.leader.server_id as i64)
                .chain(kraft.iter().map(|c| i64::from(c.controller_id)))
                .collect(),
        });
        if let Some(closed) = self.leaders.step(time, index, now) {
            close_interval(
                &mut self.split_brain,
                self.examples,
                self.min_samples,
                &closed,
                Some("leader-ids"),
            );
        }

        // multiple-controllers
        let registered: Vec<(&BackedEnsemble<'_>, i32, Option<i32>)> = ensembles
            .iter()
            .filter_map(|e| e.registered_controller().map(|(c, ep)| (e, c, ep)))
            .collect();
        let current: BTreeSet<i32> = registered.iter().map(|r| r.1).collect();
        let mut detail = serde_json::Map::new();
        let mut ids: BTreeSet<i32> = BTreeSet::new();
        if current.len() >= 2 {
            let list: Vec<Value> = registered
                .iter()
                .map(|(e, c, ep)| {
                    json!({"leader": e.leader.server_id, "servers": e.server_ids(),
                           "controller": c, "controller-epoch": ep})
                })
                .collect();
            detail.insert("registered".into(), Value::Array(list));
            ids.extend(&current);
        }
        let mut by_epoch: BTreeMap<i32, BTreeMap<i32, Vec<String>>> = BTreeMap::new();
        for s in zk.iter().filter(|s| serves(s)) {
            if let (Some(c), Some(e)) = (s.controller, s.controller_epoch) {
                by_epoch
                    .entry(e)
                    .or_default()
                    .entry(c)
                    .or_default()
                    .push(format!("zk {} ({})", s.server_id, s.node));
            }
        }
        let same_epoch: Vec<Value> = by_epoch
            .iter()
            .filter(|(_, holders)| holders.len() >= 2)
            .map(|(epoch, holders)| {
                ids.extend(holders.keys());
                let holders: BTreeMap<String, &Vec<String>> = holders
                    .iter()
                    .map(|(c, who)| (c.to_string(), who))
                    .collect();
                json!({"controller-epoch": epoch, "controllers": holders})
            })
            .collect();
        if !same_epoch.is_empty() {
            detail.insert("same-epoch".into(), Value::Array(same_epoch));
        }
        // KRaft: brokers following different quorum leaders.
        let mut followed: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for b in &obs.kafka {
            if let Some(l) = b.quorum_leader {
                followed.entry(l).or_default().push(b.broker_id);
            }
        }
        if followed.len() >= 2 {
            ids.extend(followed.keys());
            let map: BTreeMap<String, &Vec<i32>> =
                followed.iter().map(|(l, b)| (l.to_string(), b)).collect();
            detail.insert("brokers-following".into(), json!(map));
        }
        let now = (!detail.is_empty()).then(|| Condition {
            signature: String::new(),
            detail: Value::Object(detail),
            ids: ids.into_iter().map(i64::from).collect(),
        });
        if let Some(closed) = self.controllers.step(time, index, now) {
            close_interval(
                &mut self.multiple_controllers,
                self.examples,
                self.min_samples,
                &closed,
                Some("controller-ids"),
            );
        }

        // stale-controller-view (informational): judged only when some
        // backed ensemble's `/controller` is known and the broker names a
        // controller; a sample that cannot be judged neither extends nor
        // ends an interval (a failed read is not a change of view).
        let mut seen_brokers = BTreeSet::new();
        for b in &obs.kafka {
            seen_brokers.insert(b.broker_id);
            let Some(named) = b.controller.filter(|_| !current.is_empty()) else {
                continue;
            };
            let now = (!current.contains(&named)).then(|| Condition {
                signature: named.to_string(),
                detail: Value::Null,
                ids: Vec::new(),
            });
            if let Some(closed) = self
                .stale
                .entry(b.broker_id)
                .or_default()
                .step(time, index, now)
            {
                self.close_stale(&closed);
            }
        }
        let gone: Vec<Open> = self
            .stale
            .iter_mut()
            .filter(|(id, _)| !seen_brokers.contains(id))
            .filter_map(|(_, t)| t.open.take())
            .collect();
        for closed in gone {
            self.close_stale(&closed);
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
        } else if kraft.len() >= 2 {
            let values: BTreeSet<(Option<i32>, &Vec<i32>, Option<i64>)> = kraft
                .iter()
                .map(|c| (c.leader_epoch, &c.voters, c.high_watermark))
                .collect();
            if values.len() >= 2 {
                path = Some("kraft-quorum");
                for c in &kraft {
                    groups.push(json!({"leader": c.controller_id, "epoch": c.leader_epoch,
                                       "voters": c.voters, "high-watermark": c.high_watermark,
                                       "backing": c.backing}));
                }
            }
        } else if ensembles.len() >= 2 {
            let values: BTreeSet<Option<i32>> =
                ensembles.iter().map(|e| e.leader.controller).collect();
            if values.len() >= 2 {
                path = Some("/controller");
                for e in &ensembles {
                    groups.push(json!({"value": e.leader.controller,
                                       "leader": e.leader.server_id,
                                       "servers": e.server_ids()}));
                }
            }
        }
        let now = path.map(|p| Condition {
            signature: format!("{p} {}", Value::Array(groups.clone())),
            detail: json!({"path": p, "groups": groups}),
            ids: Vec::new(),
        });
        if let Some(closed) = self.divergent.step(time, index, now) {
            close_interval(
                &mut self.divergent_ensembles,
                self.examples,
                self.min_samples,
                &closed,
                None,
            );
        }

        // duplicate-leader-epoch (KRaft): leaders sharing an epoch.
        let mut by_epoch: BTreeMap<i32, Vec<&ControllerView>> = BTreeMap::new();
        for c in obs
            .controllers
            .iter()
            .filter(|c| c.role == ControllerRole::Leader)
        {
            if let Some(e) = c.leader_epoch {
                by_epoch.entry(e).or_default().push(c);
            }
        }
        let shared: Vec<(&i32, &Vec<&ControllerView>)> =
            by_epoch.iter().filter(|(_, cs)| cs.len() >= 2).collect();
        let now = (!shared.is_empty()).then(|| Condition {
            signature: String::new(),
            detail: json!({"epochs": shared
                .iter()
                .map(|(e, cs)| json!({"epoch": e,
                    "leaders": cs.iter().map(|c| controller_json(c)).collect::<Vec<_>>()}))
                .collect::<Vec<_>>()}),
            ids: shared
                .iter()
                .flat_map(|(_, cs)| cs.iter().map(|c| i64::from(c.controller_id)))
                .collect(),
        });
        if let Some(closed) = self.same_epoch.step(time, index, now) {
            close_interval(
                &mut self.duplicate_leader_epoch,
                self.examples,
                self.min_samples,
                &closed,
                Some("leader-ids"),
            );
        }
    }

    fn close_stale(&mut self, closed: &Open) {
        let lasted = closed.end.saturating_sub(closed.start);
        if lasted > self.grace_ns {
            self.stale_views += 1;
            self.stale_total_ns += lasted;
            self.stale_max_ns = self.stale_max_ns.max(lasted);
        }
    }

    /// The result, or `None` when the history had no observer samples.
    pub fn finish(mut self) -> Option<SplitBrainResult> {
        if self.samples == 0 {
            return None;
        }
        let (examples, min) = (self.examples, self.min_samples);
        if let Some(c) = self.leaders.open.take() {
            close_interval(&mut self.split_brain, examples, min, &c, Some("leader-ids"));
        }
        if let Some(c) = self.controllers.open.take() {
            close_interval(
                &mut self.multiple_controllers,
                examples,
                min,
                &c,
                Some("controller-ids"),
            );
        }
        if let Some(c) = self.divergent.open.take() {
            close_interval(&mut self.divergent_ensembles, examples, min, &c, None);
        }
        if let Some(c) = self.same_epoch.open.take() {
            close_interval(
                &mut self.duplicate_leader_epoch,
                examples,
                min,
                &c,
                Some("leader-ids"),
            );
        }
        let open: Vec<Open> = self
            .stale
            .values_mut()
            .filter_map(|t| t.open.take())
            .collect();
        for c in open {
            self.close_stale(&c);
        }
        let anomalies = [
            ("split-brain", self.split_brain),
            ("multiple-controllers", self.multiple_controllers),
            ("divergent-ensembles", self.divergent_ensembles),
            ("duplicate-leader-epoch", self.duplicate_leader_epoch),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let [views, total, max] = STALE_CONTROLLER_VIEW_COUNTS;
        let counts = [
            ("observations", self.samples),
            (views, self.stale_views),
            (total, self.stale_total_ns / 1_000_000),
            (max, self.stale_max_ns / 1_000_000),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Some(SplitBrainResult { anomalies, counts })
    }
}

/// Records `o` in `anomaly` when it held in at least `min_samples` samples.
fn close_interval(
    anomaly: &mut Anomaly,
    examples: usize,
    min_samples: u64,
    o: &Open,
    ids_key: Option<&str>,
) {
    if o.samples < min_samples {
        return;
    }
    anomaly.add(examples, || {
        let mut v = json!({"start-ns": o.start, "end-ns": o.end, "samples": o.samples,
                           "first-op": o.start_index});
        if let Some(key) = ids_key {
            v[key] = json!(o.ids);
        }
        if let (Value::Object(dst), Value::Object(src)) = (&mut v, &o.detail) {
            for (k, val) in src {
                dst.insert(k.clone(), val.clone());
            }
        }
        v
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckOptions, HistoryChecker};
    use splitbrain_core::cluster::BrokerView;
    use splitbrain_core::history::HistoryReader;

    const S: u64 = 1_000_000_000;
    /// The old ensemble's controller epoch in these histories.
    const OLD_EPOCH: i32 = 5;

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
            controller_epoch: Some(OLD_EPOCH),
            cluster_id: Some("c1".into()),
            error: None,
        }
    }
    fn broker(id: i32, controller: i32) -> BrokerView {
        BrokerView {
            node: format!("k{id}"),
            broker_id: id,
            controller: Some(controller),
            quorum_leader: None,
            quorum_epoch: None,
            error: None,
        }
    }
    /// A healthy 3-server ensemble (leader 1, epoch 2) and 3 brokers agreeing
    /// that broker 1 is controller (registered in controller epoch 5).
    fn healthy() -> Observation {
        Observation {
            zookeeper: vec![
                zk(1, ZkMode::Leader, 2, &[1, 2, 3]),
                zk(2, ZkMode::Follower, 2, &[1, 2, 3]),
                zk(3, ZkMode::Follower, 2, &[1, 2, 3]),
            ],
            kafka: vec![broker(1, 1), broker(2, 1), broker(3, 1)],
            partitions: vec![],
            controllers: Vec::new(),
        }
    }
    /// The newcomers 4..7 of a rapid-add, each listing 1..7, in `mode` (4)
    /// and follower (5..7) in epoch 1, serving `controller` with a fresh
    /// controller epoch 1.
    fn newcomers(o: &mut Observation, leader_mode: ZkMode, controller: Option<i32>) {
        let all = [1, 2, 3, 4, 5, 6, 7];
        for id in 4..=7 {
            let mode = if id == 4 {
                leader_mode
            } else {
                ZkMode::Follower
            };
            let mut s = zk(id, mode, 1, &all);
            s.controller = controller;
            s.controller_epoch = controller.map(|_| 1);
            s.cluster_id = Some("c2".into());
            o.zookeeper.push(s);
        }
    }
    /// The incident: servers 4..7 list 1..7, elected 4 as their own leader
    /// over an empty tree; broker 3 joined them and became controller there.
    fn incident() -> Observation {
        let mut o = healthy();
        newcomers(&mut o, ZkMode::Leader, Some(3));
        o.kafka[2].controller = Some(3);
        o
    }

    fn history(samples: &[(u64, Observation)]) -> String {
        samples
            .iter()
            .enumerate()
            .map(|(i, (t, o))| {
                format!(
                    "{{\"index\":{i},\"time\":{t},\"process\":\"observer\",\"type\":\"ok\",\"f\":\"observe\",\"value\":{}}}\n",
                    serde_json::to_string(o).unwrap()
                )
            })
            .collect()
    }
    /// Runs samples through a real history: one observer line per sample.
    fn run_with(
        samples: &[(u64, Observation)],
        grace: u64,
        min_samples: u32,
    ) -> Option<SplitBrainResult> {
        let text = history(samples);
        let mut r = HistoryReader::new(text.as_bytes(), "obs.jsonl");
        let mut c = SplitBrainChecker::new(5, grace).min_samples(min_samples);
        while let Some(op) = r.next_op() {
            c.observe(&op.unwrap());
        }
        c.finish()
    }
    fn run(samples: &[(u64, Observation)], grace: u64) -> Option<SplitBrainResult> {
        run_with(samples, grace, DEFAULT_MIN_SAMPLES)
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
    /// `healthy` before and after `n` copies of `o`.
    fn episode(o: &Observation, n: usize) -> Vec<(u64, Observation)> {
        let mut obs = vec![healthy()];
        obs.extend(vec![o.clone(); n]);
        obs.push(healthy());
        timeline(&obs)
    }
    fn leader_ids(zk: &[ZkServerView]) -> Vec<u64> {
        quorum_backed_leaders(zk)
            .iter()
            .map(|s| s.server_id)
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
        assert_eq!(r.counts["stale-controller-views"], 0);
    }

    #[test]
    fn backed_leaders_of_the_incident_sample() {
        let o = incident();
        assert_eq!(leader_ids(&o.zookeeper), vec![1, 4]);
        let e = backed_ensembles(&o.zookeeper);
        assert_eq!(e[0].server_ids(), vec![1, 2, 3]);
        assert_eq!(e[1].server_ids(), vec![4, 5, 6, 7]);
        assert_eq!(e[0].registered_controller(), Some((1, Some(OLD_EPOCH))));
        assert_eq!(e[1].registered_controller(), Some((3, Some(1))));
        // Both ensembles in epoch 1: the old followers (listing 1..3) still
        // follow 1 only, the newcomers (listing 1..7) 4 only.
        let mut same_epoch = incident();
        for s in &mut same_epoch.zookeeper[..3] {
            s.epoch = Some(1);
        }
        let e = backed_ensembles(&same_epoch.zookeeper);
        assert_eq!(e[0].server_ids(), vec![1, 2, 3]);
        assert_eq!(e[1].server_ids(), vec![4, 5, 6, 7]);
        assert_eq!(leader_ids(&healthy().zookeeper), vec![1]);
        // Had leader 1 also listed 1..7, the newcomers 5..7 could be
        // following either leader: unknown, counted for neither (and 1..3
        // alone are no quorum of 7).
        same_epoch.zookeeper[0].members = (1..=7).collect();
        assert_eq!(leader_ids(&same_epoch.zookeeper), Vec::<u64>::new());
    }

    #[test]
    fn unknown_membership_is_not_backed() {
        // The new leader's `conf` could not be read: unknown, not backed.
        let mut o = incident();
        o.zookeeper[3].members.clear();
        assert_eq!(leader_ids(&o.zookeeper), vec![1]);
        // Nor is one whose followers' memberships are unknown: 4 and 7 are
        // 2 of 7, no quorum.
        let mut f = incident();
        f.zookeeper[4].members.clear();
        f.zookeeper[5].members.clear();
        assert_eq!(leader_ids(&f.zookeeper), vec![1]);
        // Nor one of unknown epoch.
        let mut e = incident();
        e.zookeeper[3].epoch = None;
        assert_eq!(leader_ids(&e.zookeeper), vec![1]);
        // Through a history: however long it lasts, no split brain.
        for obs in [o, f, e] {
            let r = run(&episode(&obs, 10), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
            assert_eq!(r.anomalies["split-brain"].count, 0);
        }
        let r = run(&episode(&incident(), 10), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.anomalies["split-brain"].count, 1);
    }

    #[test]
    fn one_sample_of_two_leaders_is_not_a_split_brain() {
        let r = run(&episode(&incident(), 1), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
        // With a one-sample setting the same history is reported.
        let r = run_with(&episode(&incident(), 1), DEFAULT_CONTROLLER_GRACE_NS, 1).unwrap();
        assert_eq!(counts(&r), [1, 1, 1]);
    }

    #[test]
    fn two_backed_leaders_in_two_consecutive_samples_are_a_split_brain() {
        let r = run(&episode(&incident(), 2), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.anomalies["split-brain"].count, 1);
        let sb = &r.anomalies["split-brain"].examples[0];
        assert_eq!(sb["samples"], 2);
        assert_eq!(
            (sb["start-ns"].as_u64(), sb["end-ns"].as_u64()),
            (Some(S), Some(2 * S))
        );
        // Two samples that are not consecutive are not.
        let mut obs = vec![healthy(), incident(), healthy(), incident(), healthy()];
        let r = run(&timeline(&obs), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.anomalies["split-brain"].count, 0);
        // Nor are two separated by a sample where the second leader's
        // membership was unknown.
        let mut unknown = incident();
        unknown.zookeeper[3].members.clear();
        obs[2] = unknown;
        let r = run(&timeline(&obs), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.anomalies["split-brain"].count, 0);
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
        assert_eq!(sb["leader-ids"], json!([1, 4]));
        assert_eq!(sb["leaders"][0]["leader"]["server-id"], 1);
        assert_eq!(sb["leaders"][0]["side"], json!([1, 2, 3]));
        assert_eq!(sb["leaders"][1]["leader"]["epoch"], 1);
        assert_eq!(
            sb["leaders"][1]["leader"]["members"],
            json!([1, 2, 3, 4, 5, 6, 7])
        );
        assert_eq!(sb["leaders"][1]["side"], json!([4, 5, 6, 7]));
        let mc = &r.anomalies["multiple-controllers"].examples[0];
        assert_eq!(mc["controller-ids"], json!([1, 3]));
        assert_eq!(mc["registered"][1]["controller"], 3);
        assert_eq!(mc["registered"][1]["servers"], json!([4, 5, 6, 7]));
        assert_eq!(mc["registered"][1]["controller-epoch"], 1);
        assert!(mc.get("same-epoch").is_none(), "{mc}");
        let de = &r.anomalies["divergent-ensembles"].examples[0];
        assert_eq!(de["path"], "/cluster/id");
        // Broker 3 names the controller of the ensemble it is in: current.
        assert_eq!(r.counts["stale-controller-views"], 0);
    }

    /// The shape of a real rapid-add (docs/nemeses.md): the newcomers look
    /// for a leader, elect 4 over an empty tree (no `/controller`, no
    /// `/cluster/id`), one sample loses a newcomer's `conf`, then the moved
    /// broker 3 registers and becomes controller there.
    #[test]
    fn a_rapid_add_with_an_unreadable_sample_is_still_found() {
        let mut looking = healthy();
        newcomers(&mut looking, ZkMode::Looking, None);
        for s in &mut looking.zookeeper[3..] {
            s.mode = ZkMode::Looking;
            (s.epoch, s.zxid, s.cluster_id) = (None, None, None);
        }
        let mut elected = healthy();
        newcomers(&mut elected, ZkMode::Leader, None);
        for s in &mut elected.zookeeper[3..] {
            s.cluster_id = None;
        }
        let mut one_conf_lost = elected.clone();
        one_conf_lost.zookeeper[5].members.clear();
        let mut registered = elected.clone();
        for s in &mut registered.zookeeper[3..] {
            (s.controller, s.controller_epoch) = (Some(3), Some(1));
        }
        registered.kafka[2].controller = Some(3);

        let mut obs = vec![healthy(); 2];
        obs.extend(vec![looking; 2]);
        obs.extend(vec![elected.clone(); 6]);
        obs.push(one_conf_lost);
        obs.extend(vec![registered; 10]);
        obs.extend(vec![healthy(); 3]);
        let r = run(&timeline(&obs), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        // Split twice around the unknown sample; two controllers once the
        // broker registered; the ensembles' `/controller` differ throughout.
        assert_eq!(counts(&r), [2, 1, 2], "{:?}", r.anomalies);
        let mc = &r.anomalies["multiple-controllers"].examples[0];
        assert_eq!(mc["start-ns"], 11 * S);
        assert_eq!(mc["samples"], 10);
        assert_eq!(r.counts["stale-controller-views"], 0);
    }

    #[test]
    fn two_leaders_without_divergent_data_is_split_brain_only() {
        let mut o = incident();
        for s in &mut o.zookeeper {
            (s.controller, s.cluster_id) = (Some(1), Some("c1".into()));
            s.controller_epoch = Some(OLD_EPOCH);
        }
        o.kafka[2].controller = Some(1);
        let r = run(&episode(&o, 3), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [1, 0, 0]);
    }

    #[test]
    fn a_deposed_leader_without_a_quorum_is_not_a_second_brain() {
        // Server 1 was paused; 2 and 3 elected 2 in epoch 3. Resumed, 1 still
        // says leader (epoch 2) for a moment, followed by nobody.
        let mut o = healthy();
        o.zookeeper[1] = zk(2, ZkMode::Leader, 3, &[1, 2, 3]);
        o.zookeeper[2] = zk(3, ZkMode::Follower, 3, &[1, 2, 3]);
        assert_eq!(leader_ids(&o.zookeeper), vec![2]);
        let r = run_with(&episode(&o, 3), DEFAULT_CONTROLLER_GRACE_NS, 1).unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
        // Had 3 still followed 1 (epoch 2), 1 would be the backed one.
        o.zookeeper[2].epoch = Some(2);
        assert_eq!(leader_ids(&o.zookeeper), vec![1]);
    }

    #[test]
    fn a_stale_controller_view_is_not_multiple_controllers() {
        // Broker 2 was cut off from ZooKeeper while controller; ZooKeeper
        // has registered broker 1 since, but broker 2's own metadata still
        // names itself for 7 s.
        let mut o = healthy();
        o.kafka[1].controller = Some(2);
        let history_text = history(&episode(&o, 8));
        let mut reader = HistoryReader::new(history_text.as_bytes(), "obs.jsonl");
        let mut checker = HistoryChecker::new(&CheckOptions::default());
        while let Some(op) = reader.next_op() {
            checker.observe(&op.unwrap()).unwrap();
        }
        let verdict = checker.finish();
        assert_eq!(verdict.count("multiple-controllers"), 0);
        assert!(verdict.valid, "{:?}", verdict.anomalies);
        assert_eq!(verdict.counts["stale-controller-views"], 1);
        assert_eq!(verdict.counts["stale-controller-view-ms"], 7000);
        assert_eq!(verdict.counts["stale-controller-view-max-ms"], 7000);
        // Within the grace period (1 s): not even counted.
        let r = run(&episode(&o, 2), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
        assert_eq!(r.counts["stale-controller-views"], 0);
        // A sample where ZooKeeper's `/controller` could not be read in the
        // middle does not cut the 7 s in two intervals under the grace.
        let mut unread = o.clone();
        for s in &mut unread.zookeeper {
            (s.controller, s.controller_epoch) = (None, None);
        }
        let mut obs = vec![healthy()];
        obs.extend(vec![o.clone(); 4]);
        obs.push(unread);
        obs.extend(vec![o.clone(); 3]);
        obs.push(healthy());
        let r = run(&timeline(&obs), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.counts["stale-controller-views"], 1);
        assert_eq!(r.counts["stale-controller-view-ms"], 7000);
        // Naming the registered controller, or none, is not stale.
        let mut unsure = healthy();
        unsure.kafka[1].controller = None;
        let r = run(&episode(&unsure, 8), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.counts["stale-controller-views"], 0);
    }

    #[test]
    fn two_brokers_in_controller_of_two_backed_ensembles_are_multiple_controllers() {
        let r = run(&episode(&incident(), 2), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.anomalies["multiple-controllers"].count, 1);
        // The same broker registered in both: one controller.
        let mut same = incident();
        for s in &mut same.zookeeper[3..] {
            s.controller = Some(1);
        }
        let r = run(&episode(&same, 2), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(r.anomalies["split-brain"].count, 1);
        assert_eq!(r.anomalies["multiple-controllers"].count, 0);
        // A second registration in an ensemble without a quorum (its
        // leader's membership unknown) and another epoch: not counted.
        let mut unbacked = incident();
        unbacked.zookeeper[3].members.clear();
        let r = run(&episode(&unbacked, 8), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r)[..2], [0, 0]);
    }

    #[test]
    fn two_brokers_in_the_same_controller_epoch_are_multiple_controllers() {
        // The newcomers' tree gave broker 3 the same epoch the old ensemble
        // gave broker 1; the newcomers are not known to be backed.
        let mut o = incident();
        o.zookeeper[3].members.clear();
        for s in &mut o.zookeeper[3..] {
            s.controller_epoch = Some(OLD_EPOCH);
        }
        let r = run(&episode(&o, 2), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r)[..2], [0, 1]);
        let mc = &r.anomalies["multiple-controllers"].examples[0];
        assert_eq!(mc["same-epoch"][0]["controller-epoch"], OLD_EPOCH);
        assert_eq!(mc["same-epoch"][0]["controllers"]["3"][0], "zk 4 (n4)");
        assert_eq!(mc["controller-ids"], json!([1, 3]));
        // A lagging follower still serving the previous registration
        // (broker 2, epoch 4) is history, not a second controller.
        let mut lagging = healthy();
        lagging.zookeeper[2].controller = Some(2);
        lagging.zookeeper[2].controller_epoch = Some(OLD_EPOCH - 1);
        let r = run(&episode(&lagging, 8), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r), [0, 0, 0]);
        // Unknown epochs (old histories) pair nothing.
        let mut old = o.clone();
        for s in &mut old.zookeeper {
            s.controller_epoch = None;
        }
        let r = run(&episode(&old, 8), DEFAULT_CONTROLLER_GRACE_NS).unwrap();
        assert_eq!(counts(&r)[1], 0);
    }

    #[test]
    fn divergent_controller_between_two_leaders_groups() {
        let mut o = incident();
        for s in &mut o.zookeeper {
            s.cluster_id = Some("c1".into());
        }
        let r = run(&episode(&o, 2), 0).unwrap();
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
        let r = run(&episode(&o, 2), 0).unwrap();
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

    #[test]
    fn zero_min_samples_means_one() {
        let r = run_with(&episode(&incident(), 1), DEFAULT_CONTROLLER_GRACE_NS, 0).unwrap();
        assert_eq!(r.anomalies["split-brain"].count, 1);
    }

    fn ctrl(
        id: i32,
        role: ControllerRole,
        epoch: i32,
        voters: &[i32],
        backing: &[i32],
    ) -> ControllerView {
        let leads = role == ControllerRole::Leader;
        ControllerView {
            node: format!("c{id}"),
            controller_id: id,
            role,
            leader_epoch: leads.then_some(epoch),
            high_watermark: leads.then_some(100),
            voters: if leads { voters.to_vec() } else { Vec::new() },
            backing: if leads { backing.to_vec() } else { Vec::new() },
            error: None,
        }
    }
    fn kbroker(id: i32, follows: i32) -> BrokerView {
        BrokerView {
            quorum_leader: Some(follows),
            quorum_epoch: Some(3),
            ..broker(id, 2)
        }
    }
    /// A healthy KRaft cluster: 1001 leads epoch 3 backed by all three
    /// voters, every broker follows it.
    fn kraft_healthy() -> Observation {
        let v = [1001, 1002, 1003];
        Observation {
            zookeeper: Vec::new(),
            kafka: vec![kbroker(1, 1001), kbroker(2, 1001), kbroker(3, 1001)],
            partitions: vec![],
            controllers: vec![
                ctrl(1001, ControllerRole::Leader, 3, &v, &v),
                ctrl(1002, ControllerRole::NotLeader, 0, &[], &[]),
                ctrl(1003, ControllerRole::NotLeader, 0, &[], &[]),
            ],
        }
    }
    fn kraft_counts(r: &SplitBrainResult) -> [u64; 4] {
        [
            r.anomalies["split-brain"].count,
            r.anomalies["multiple-controllers"].count,
            r.anomalies["divergent-ensembles"].count,
            r.anomalies["duplicate-leader-epoch"].count,
        ]
    }

    #[test]
    fn a_healthy_kraft_cluster_has_no_anomalies() {
        let r = run(
            &timeline(&[kraft_healthy(), kraft_healthy(), kraft_healthy()]),
            S,
        )
        .unwrap();
        assert_eq!(kraft_counts(&r), [0, 0, 0, 0], "{:?}", r.anomalies);
    }

    #[test]
    fn two_backed_kraft_leaders_are_a_split_brain_with_divergent_quorums() {
        // Newcomers 1004..1007 listing 1001..1007 elected 1005 in epoch 1,
        // backed by the four of them, while 1001 still leads epoch 3;
        // broker 3 follows the newcomers' leader.
        let mut o = kraft_healthy();
        let all = [1001, 1002, 1003, 1004, 1005, 1006, 1007];
        o.controllers.push(ctrl(
            1005,
            ControllerRole::Leader,
            1,
            &all,
            &[1004, 1005, 1006, 1007],
        ));
        o.kafka[2].quorum_leader = Some(1005);
        let r = run(
            &timeline(&[kraft_healthy(), o.clone(), o.clone(), kraft_healthy()]),
            S,
        )
        .unwrap();
        assert_eq!(kraft_counts(&r), [1, 1, 1, 0], "{:?}", r.anomalies);
        let sb = &r.anomalies["split-brain"].examples[0];
        assert_eq!(sb["leader-ids"], json!([1001, 1005]), "{sb}");
        let mc = &r.anomalies["multiple-controllers"].examples[0];
        assert_eq!(mc["controller-ids"], json!([1001, 1005]), "{mc}");
        let de = &r.anomalies["divergent-ensembles"].examples[0];
        assert_eq!(de["path"], "kraft-quorum", "{de}");
    }

    #[test]
    fn a_kraft_leader_without_backing_is_no_split_brain_but_a_shared_epoch_is_reported() {
        // A deposed leader that has not resigned yet (its followers left
        // it): not backed, so no split brain...
        let mut o = kraft_healthy();
        o.controllers[1] = ctrl(
            1002,
            ControllerRole::Leader,
            4,
            &[1001, 1002, 1003],
            &[1002, 1003],
        );
        o.controllers[0].backing = vec![1001];
        let r = run(&timeline(&[o.clone(), o.clone()]), S).unwrap();
        assert_eq!(kraft_counts(&r), [0, 0, 0, 0], "{:?}", r.anomalies);
        // ...but two leaders in one epoch break Raft's election safety,
        // backed or not.
        o.controllers[1].leader_epoch = Some(3);
        let r = run(&timeline(&[o.clone(), o]), S).unwrap();
        assert_eq!(kraft_counts(&r), [0, 0, 0, 1], "{:?}", r.anomalies);
        let d = &r.anomalies["duplicate-leader-epoch"].examples[0];
        assert_eq!(d["leader-ids"], json!([1001, 1002]), "{d}");
    }

    #[test]
    fn brokers_following_different_leaders_for_one_sample_are_not_reported() {
        let mut o = kraft_healthy();
        o.kafka[0].quorum_leader = Some(1002);
        let r = run(&timeline(&[kraft_healthy(), o, kraft_healthy()]), S).unwrap();
        assert_eq!(kraft_counts(&r), [0, 0, 0, 0], "{:?}", r.anomalies);
    }
}
