//! What a history says about the run besides its anomalies: operations by
//! type, latencies (from invoke/completion pairs), throughput over time, the
//! fault timeline (nemesis events) and, from the observer samples, each
//! ZooKeeper server's mode and each broker's controller over time.
//!
//! Built in the same single pass over the history as the checkers; memory is
//! bounded by keeping at most [`MAX_POINTS`] latency points per series for the
//! plots (every k-th point, k doubling as needed), while quantiles come from
//! an HDR histogram (`hdrhistogram`) covering every completion.

use serde::Serialize;
use serde_json::{json, Value};
use splitbrain_core::cluster::ZkMode;
use splitbrain_core::history::{Op, OpType, OpValue, ProcessRef};
use std::collections::{BTreeMap, HashMap};

/// Latency points kept per plotted series (sends ok, sends failed, polls...).
pub const MAX_POINTS: usize = 4000;
/// Throughput buckets at most; bucket width grows with the run's length.
const MAX_BUCKETS: u64 = 400;

/// A fault as an interval: opened by a nemesis event, closed by the event
/// that undid it (or by the end of the history, `end_ns` = `None`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FaultInterval {
    /// The event that started it (`start-partition`, `kill`, `rapid-add`...).
    pub f: String,
    /// Its value as recorded (what was done to which node).
    pub value: Value,
    /// When it started, ns since the test started.
    pub start_ns: u64,
    /// When it was undone; `None` when never undone in the history.
    pub end_ns: Option<u64>,
    /// The event that undid it (`heal`, `restart`, `resume`, `remove`...).
    pub healed_by: Option<String>,
}

/// One nemesis event as recorded.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NemesisEvent {
    /// Time, ns since the test started.
    pub time_ns: u64,
    /// Its `f`.
    pub f: String,
    /// Its value.
    pub value: Value,
}

/// A value holding from `start_ns` until the next segment of the same lane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment<T> {
    /// When this value was first sampled.
    pub start_ns: u64,
    /// The value.
    pub value: T,
}

/// Latencies of one kind of operation: exact count, min, max and mean, and
/// quantiles from an HDR histogram (3 significant digits: within 0.1% of
/// the truth, in memory bounded by the range, not the count).
#[derive(Clone, Debug)]
struct Latencies {
    histogram: hdrhistogram::Histogram<u64>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            // 1 µs to 1 hour: longer latencies count as 1 hour in the
            // quantiles (min, max and mean stay exact).
            histogram: hdrhistogram::Histogram::new_with_bounds(1_000, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
            count: 0,
            min: 0,
            max: 0,
            sum: 0,
        }
    }
}

impl Latencies {
    fn add(&mut self, ns: u64) {
        if self.count == 0 || ns < self.min {
            self.min = ns;
        }
        self.max = self.max.max(ns);
        self.count += 1;
        self.sum += ns as u128;
        self.histogram.saturating_record(ns);
    }

    /// The q-quantile in ns (the histogram's bucket, clamped to the max).
    fn quantile(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q).min(self.max) as f64
    }

    fn summary_ms(&self) -> Value {
        let ms = |ns: f64| (ns / 1e4).round() / 100.0;
        json!({
            "count": self.count,
            "min": ms(self.min as f64),
            "mean": ms(self.sum as f64 / self.count.max(1) as f64),
            "p50": ms(self.quantile(0.5)),
            "p90": ms(self.quantile(0.9)),
            "p99": ms(self.quantile(0.99)),
            "p999": ms(self.quantile(0.999)),
            "max": ms(self.max as f64),
        })
    }
}

/// Points of one plotted series, thinned to at most [`MAX_POINTS`].
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// (time ns, latency ns) pairs kept.
    pub points: Vec<(u64, u64)>,
    stride: u64,
    seen: u64,
}

impl Series {
    fn push(&mut self, time: u64, latency: u64) {
        if self.stride == 0 {
            self.stride = 1;
        }
        // stride is a power of two
        if self.seen & (self.stride - 1) == 0 {
            self.points.push((time, latency));
            if self.points.len() > MAX_POINTS {
                // Keep every other point and sample half as often from now on.
                self.points = self.points.iter().copied().step_by(2).collect();
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }
}

/// The controller as one server names it in one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    /// The server was not in the sample, or unreachable.
    Absent,
    /// It answered but named no controller.
    None,
    /// It named this broker id.
    Broker(i32),
}

impl From<Option<i32>> for Controller {
    fn from(c: Option<i32>) -> Self {
        c.map_or(Controller::None, Controller::Broker)
    }
}

/// Everything [`StatsCollector`] gathered.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Time of the last operation, ns.
    pub end_ns: u64,
    /// Per `f`, per type (`invoke`, `ok`, `fail`, `info`), how many lines.
    pub ops: BTreeMap<String, BTreeMap<&'static str, u64>>,
    latency: BTreeMap<String, Latencies>,
    /// Per series name (`send ok`, `send fail`, `send info`, `poll ok`,
    /// `replay ok`...), the latency points kept for plotting.
    pub latency_points: BTreeMap<String, Series>,
    /// Bucket width of [`Stats::throughput`], ns.
    pub bucket_ns: u64,
    /// Per series (`send ok`, `poll ok`, `records read`...), per bucket
    /// index, a count.
    pub throughput: BTreeMap<String, BTreeMap<u64, u64>>,
    /// Nemesis events in order.
    pub nemesis: Vec<NemesisEvent>,
    /// Faults as intervals.
    pub faults: Vec<FaultInterval>,
    /// Per ZooKeeper server (`"zk 1 (n1)"`), its mode over time (`None`:
    /// not in the sample, e.g. a server removed again).
    pub zk_modes: BTreeMap<String, Vec<Segment<Option<ZkMode>>>>,
    /// Per lane (`"broker 1 (n4)"` or `"zk 1 (n1)"` for the `/controller`
    /// it serves), the controller named over time.
    pub controllers: BTreeMap<String, Vec<Segment<Controller>>>,
    /// Per sample time, how many quorum-backed leaders there were: ZooKeeper
    /// leaders (the split-brain checker's rule:
    /// `splitbrain_checkers::splitbrain::quorum_backed_leaders`) plus, in
    /// KRaft mode, controllers leading with a majority of their voters
    /// behind them (`ControllerView::leads_with_quorum`).
    pub leaders: Vec<Segment<usize>>,
    /// Observer samples seen.
    pub observations: u64,
    /// Per partition (`"queue-1"`), its state in ZooKeeper over time
    /// (`None`: not read in that sample); empty for histories whose
    /// observer did not read partition states.
    pub partitions: BTreeMap<String, Vec<Segment<Option<PartitionLane>>>>,
}

/// A partition's state in ZooKeeper, as the partition lanes show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLane {
    /// The leader (-1: none).
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// How many replicas are in sync.
    pub isr: usize,
}

/// Streams operations into [`Stats`].
#[derive(Debug, Default)]
pub struct StatsCollector {
    stats: Stats,
    in_flight: HashMap<u64, (String, u64)>,
    // Counts per raw second; rebucketed at the end.
    per_second: BTreeMap<String, BTreeMap<u64, u64>>,
}

/// Nemesis events that are steps of a fault's set-up or recovery, not faults.
const NOT_FAULTS: &[&str] = &["schedule", "fault-error"];

/// Faults that happen at an instant and have no undo (a consumer crash:
/// its replacement is the recovery): intervals that end where they start.
const INSTANT_FAULTS: &[&str] = &["crash"];

/// Events that undo every fault still open.
fn heals_all(f: &str) -> bool {
    matches!(f, "heal" | "heal-all") || f.starts_with("stop-")
}

/// For an event that undoes one kind of fault, the kinds it undoes.
fn undoes(f: &str) -> &'static [&'static str] {
    match f {
        "restart" | "start" => &["kill"],
        "resume" => &["pause"],
        "remove" => &["rapid-add", "safe-add"],
        "remove-controllers" => &["rapid-add-controllers", "safe-add-controllers"],
        _ => &[],
    }
}

impl StatsCollector {
    /// A new collector.
    pub fn new() -> Self {
        Self::default()
    }

    fn count_per_second(&mut self, series: &str, time: u64, n: u64) {
        *self
            .per_second
            .entry(series.to_string())
            .or_default()
            .entry(time / 1_000_000_000)
            .or_default() += n;
    }

    /// Feeds one operation.
    pub fn observe(&mut self, op: &Op<'_>) {
        let s = &mut self.stats;
        s.end_ns = s.end_ns.max(op.time);
        *s.ops
            .entry(op.f.to_string())
            .or_default()
            .entry(op.op_type.as_str())
            .or_default() += 1;
        match &op.process {
            ProcessRef::Client(p) => self.client(*p, op),
            ProcessRef::Named(name) if name == "nemesis" => self.nemesis(op),
            ProcessRef::Named(_) => {
                if let OpValue::Observation(obs) = &op.value {
                    self.observation(op.time, obs);
                }
            }
        }
    }

    fn client(&mut self, process: u64, op: &Op<'_>) {
        if op.op_type == OpType::Invoke {
            self.in_flight.insert(process, (op.f.to_string(), op.time));
            return;
        }
        let Some((f, start)) = self.in_flight.remove(&process) else {
            return;
        };
        let latency = op.time.saturating_sub(start);
        let s = &mut self.stats;
        s.latency.entry(f.clone()).or_default().add(latency);
        let series = format!("{f} {}", op.op_type.as_str());
        s.latency_points
            .entry(series.clone())
            .or_default()
            .push(start, latency);
        self.count_per_second(&series, op.time, 1);
        if let OpValue::Poll(poll) = &op.value {
            let records: usize = poll.records.0.iter().map(|(_, r)| r.len()).sum();
            self.count_per_second("records read", op.time, records as u64);
        }
    }

    fn nemesis(&mut self, op: &Op<'_>) {
        let value = match &op.value {
            OpValue::Other(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let f = op.f.to_string();
        let s = &mut self.stats;
        s.nemesis.push(NemesisEvent {
            time_ns: op.time,
            f: f.clone(),
            value: value.clone(),
        });
        let closes_all = heals_all(&f);
        let kinds = undoes(&f);
        let fault_id = value.get("fault-id").and_then(Value::as_u64);
        if NOT_FAULTS.contains(&f.as_str()) {
            // Recorded, but neither a fault nor an undo.
        } else if let (Some(id), true) = (fault_id, closes_all || !kinds.is_empty()) {
            // The nemeses tie an undo to its start by `fault-id`.
            for fault in s.faults.iter_mut().filter(|x| x.end_ns.is_none()) {
                if fault.value.get("fault-id").and_then(Value::as_u64) == Some(id) {
                    fault.end_ns = Some(op.time);
                    fault.healed_by = Some(f.clone());
                }
            }
        } else if closes_all || !kinds.is_empty() {
            for fault in s.faults.iter_mut().filter(|x| x.end_ns.is_none()) {
                if closes_all || kinds.contains(&fault.f.as_str()) {
                    fault.end_ns = Some(op.time);
                    fault.healed_by = Some(f.clone());
                }
            }
        } else {
            // The nemeses record a slow start (rapid-add: servers started,
            // broker moved) when it is done, with how long it took.
            let took_ns = value
                .get("elapsed-ms")
                .and_then(Value::as_u64)
                .map_or(0, |ms| ms.saturating_mul(1_000_000));
            let instant = INSTANT_FAULTS.contains(&f.as_str());
            s.faults.push(FaultInterval {
                f,
                value,
                start_ns: op.time.saturating_sub(took_ns),
                end_ns: instant.then_some(op.time),
                healed_by: None,
            });
        }
    }

    fn observation(&mut self, time: u64, obs: &splitbrain_core::cluster::Observation) {
        let s = &mut self.stats;
        s.observations += 1;
        let leaders = splitbrain_checkers::splitbrain::quorum_backed_leaders(&obs.zookeeper).len()
            + obs
                .controllers
                .iter()
                .filter(|c| c.leads_with_quorum())
                .count();
        let mut seen_modes = std::collections::BTreeSet::new();
        let mut seen_controllers = std::collections::BTreeSet::new();
        for zk in &obs.zookeeper {
            let lane = format!("zk {} ({})", zk.server_id, zk.node);
            push_change(
                s.zk_modes.entry(lane.clone()).or_default(),
                time,
                Some(zk.mode),
            );
            seen_modes.insert(lane.clone());
            if zk.mode != ZkMode::Unreachable {
                push_change(
                    s.controllers.entry(lane.clone()).or_default(),
                    time,
                    zk.controller.into(),
                );
                seen_controllers.insert(lane);
            }
        }
        for b in &obs.kafka {
            let lane = format!("broker {} ({})", b.broker_id, b.node);
            let c = if b.error.is_some() && b.controller.is_none() {
                Controller::Absent
            } else {
                b.controller.into()
            };
            push_change(s.controllers.entry(lane.clone()).or_default(), time, c);
            seen_controllers.insert(lane);
        }
        // Lanes missing from this sample: the server is gone (or unreachable).
        for (lane, segs) in s.zk_modes.iter_mut() {
            if !seen_modes.contains(lane) {
                push_change(segs, time, None);
            }
        }
        for (lane, segs) in s.controllers.iter_mut() {
            if !seen_controllers.contains(lane) {
                push_change(segs, time, Controller::Absent);
            }
        }
        push_change(&mut s.leaders, time, leaders);
        let mut seen_partitions = std::collections::BTreeSet::new();
        for p in &obs.partitions {
            let lane = format!("{}-{}", p.topic, p.partition);
            let value = PartitionLane {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                isr: p.isr.len(),
            };
            push_change(
                s.partitions.entry(lane.clone()).or_default(),
                time,
                Some(value),
            );
            seen_partitions.insert(lane);
        }
        for (lane, segs) in s.partitions.iter_mut() {
            if !seen_partitions.contains(lane) {
                push_change(segs, time, None);
            }
        }
    }

    /// The statistics, with throughput re-bucketed so there are at most a few
    /// hundred buckets.
    pub fn finish(mut self) -> Stats {
        let secs = self.stats.end_ns / 1_000_000_000 + 1;
        let width = secs.div_ceil(MAX_BUCKETS).max(1);
        self.stats.bucket_ns = width * 1_000_000_000;
        for (series, counts) in self.per_second {
            let out = self.stats.throughput.entry(series).or_default();
            for (sec, n) in counts {
                *out.entry(sec / width).or_default() += n;
            }
        }
        self.stats
    }
}

fn push_change<T: PartialEq>(lane: &mut Vec<Segment<T>>, time: u64, value: T) {
    if lane.last().map(|l| &l.value) != Some(&value) {
        lane.push(Segment {
            start_ns: time,
            value,
        });
    }
}

impl Stats {
    /// The `stats` object of results.json (schema in docs/results.md).
    pub fn to_json(&self) -> Value {
        let secs = (self.end_ns as f64 / 1e9).max(1e-9);
        let mut ok_per_s = serde_json::Map::new();
        for (f, types) in &self.ops {
            if let Some(ok) = types.get("ok") {
                if self.latency.contains_key(f) {
                    let rate = (*ok as f64 / secs * 100.0).round() / 100.0;
                    ok_per_s.insert(f.clone(), json!(rate));
                }
            }
        }
        let latency: serde_json::Map<String, Value> = self
            .latency
            .iter()
            .map(|(f, h)| (f.clone(), h.summary_ms()))
            .collect();
        let max_leaders = self.leaders.iter().map(|s| s.value).max().unwrap_or(0);
        json!({
            "duration-s": (self.end_ns as f64 / 1e7).round() / 100.0,
            "ops": self.ops,
            "ok-per-second": ok_per_s,
            "latency-ms": latency,
            "observations": self.observations,
            "max-simultaneous-leaders": max_leaders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Stats {
        let mut c = StatsCollector::new();
        for l in lines {
            c.observe(&Op::parse(l).unwrap());
        }
        c.finish()
    }

    #[test]
    fn latency_ops_and_throughput_from_pairs() {
        let s = feed(&[
            r#"{"index":0,"time":1000000,"process":0,"type":"invoke","f":"send","value":{"key":"q","msg":1}}"#,
            r#"{"index":1,"time":1000000,"process":1,"type":"invoke","f":"poll","value":null}"#,
            r#"{"index":2,"time":3000000,"process":0,"type":"ok","f":"send","value":{"key":"q","msg":1,"offset":0}}"#,
            r#"{"index":3,"time":4000000,"process":0,"type":"invoke","f":"send","value":{"key":"q","msg":2}}"#,
            r#"{"index":4,"time":5000000,"process":1,"type":"ok","f":"poll","value":{"records":{"q":[[0,1]]}}}"#,
            r#"{"index":5,"time":2004000000,"process":0,"type":"info","f":"send","value":null}"#,
        ]);
        assert_eq!(s.ops["send"]["invoke"], 2);
        assert_eq!(s.ops["send"]["ok"], 1);
        assert_eq!(s.ops["send"]["info"], 1);
        assert_eq!(s.latency["send"].count, 2);
        assert_eq!(s.latency["send"].min, 2_000_000);
        assert_eq!(s.latency["send"].max, 2_000_000_000);
        assert_eq!(
            s.latency_points["send ok"].points,
            vec![(1_000_000, 2_000_000)]
        );
        assert_eq!(
            s.latency_points["poll ok"].points,
            vec![(1_000_000, 4_000_000)]
        );
        assert_eq!(s.throughput["records read"][&0], 1);
        assert_eq!(s.throughput["send info"][&2], 1);
        let j = s.to_json();
        assert_eq!(j["latency-ms"]["send"]["max"], json!(2000.0));
        assert_eq!(j["latency-ms"]["poll"]["p50"], json!(4.0));
    }

    #[test]
    fn quantiles_are_close() {
        let mut h = Latencies::default();
        for ns in 1..=1000u64 {
            h.add(ns * 1_000_000);
        }
        let p50 = h.quantile(0.5) / 1e6;
        let p99 = h.quantile(0.99) / 1e6;
        assert!((500.0..=500.5).contains(&p50), "{p50}");
        assert!((990.0..=991.0).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1e9);
        let j = h.summary_ms();
        assert_eq!(
            (j["min"].clone(), j["max"].clone()),
            (json!(1.0), json!(1000.0))
        );
        assert_eq!(j["mean"], json!(500.5));
    }

    #[test]
    fn series_are_thinned_but_span_the_run() {
        let mut s = Series::default();
        for i in 0..100_000u64 {
            s.push(i, i);
        }
        assert!(s.points.len() <= MAX_POINTS);
        assert!(s.points.len() > MAX_POINTS / 4);
        assert_eq!(s.points[0], (0, 0));
        assert!(s.points.last().unwrap().0 > 90_000);
    }

    #[test]
    fn faults_open_and_close() {
        let s = feed(&[
            r#"{"index":0,"time":10,"process":"nemesis","type":"info","f":"start-partition","value":{"kind":"halves"}}"#,
            r#"{"index":1,"time":20,"process":"nemesis","type":"info","f":"kill","value":{"node":"n2"}}"#,
            r#"{"index":2,"time":30,"process":"nemesis","type":"info","f":"restart","value":{"node":"n2"}}"#,
            r#"{"index":3,"time":40,"process":"nemesis","type":"info","f":"rapid-add","value":{"new_servers":[4,5]}}"#,
            r#"{"index":4,"time":50,"process":"nemesis","type":"info","f":"heal","value":{"healed":"all"}}"#,
            r#"{"index":5,"time":60,"process":"nemesis","type":"info","f":"pause","value":{"node":"n1"}}"#,
        ]);
        assert_eq!(s.nemesis.len(), 6);
        let f: Vec<(&str, u64, Option<u64>)> = s
            .faults
            .iter()
            .map(|x| (x.f.as_str(), x.start_ns, x.end_ns))
            .collect();
        assert_eq!(
            f,
            vec![
                ("start-partition", 10, Some(50)),
                ("kill", 20, Some(30)),
                ("rapid-add", 40, Some(50)),
                ("pause", 60, None)
            ]
        );
        assert_eq!(s.faults[0].value["kind"], "halves");
        // With fault ids, an undo closes only its own fault.
        let s = feed(&[
            r#"{"index":0,"time":1,"process":"nemesis","type":"info","f":"schedule","value":{"steps":[]}}"#,
            r#"{"index":1,"time":10,"process":"nemesis","type":"info","f":"start-partition","value":{"fault-id":0}}"#,
            r#"{"index":2,"time":20,"process":"nemesis","type":"info","f":"kill","value":{"fault-id":1}}"#,
            r#"{"index":3,"time":30,"process":"nemesis","type":"info","f":"heal","value":{"fault-id":0}}"#,
            r#"{"index":4,"time":40,"process":"nemesis","type":"info","f":"restart","value":{"fault-id":1}}"#,
        ]);
        let f: Vec<(&str, u64, Option<u64>)> = s
            .faults
            .iter()
            .map(|x| (x.f.as_str(), x.start_ns, x.end_ns))
            .collect();
        assert_eq!(
            f,
            vec![("start-partition", 10, Some(30)), ("kill", 20, Some(40))]
        );
        // A consumer crash is over when it happens; a heal does not stretch it.
        let s = feed(&[
            r#"{"index":0,"time":10,"process":"nemesis","type":"info","f":"crash","value":{"target":"consumer","process":4}}"#,
            r#"{"index":1,"time":20,"process":"nemesis","type":"info","f":"kill","value":{}}"#,
            r#"{"index":2,"time":30,"process":"nemesis","type":"info","f":"heal","value":{}}"#,
        ]);
        let f: Vec<(&str, u64, Option<u64>)> = s
            .faults
            .iter()
            .map(|x| (x.f.as_str(), x.start_ns, x.end_ns))
            .collect();
        assert_eq!(f, vec![("crash", 10, Some(10)), ("kill", 20, Some(30))]);
        assert_eq!(s.faults[0].healed_by, None);
    }

    #[test]
    fn partition_states_become_lanes() {
        let obs = |t: u64, parts: &str| {
            format!(
                r#"{{"index":{t},"time":{t},"process":"observer","type":"ok","f":"observe","value":{{"zookeeper":[],"kafka":[],"partitions":[{parts}]}}}}"#
            )
        };
        let p = |leader: i32, epoch: i32, isr: &str| {
            format!(
                r#"{{"topic":"queue","partition":1,"leader":{leader},"leader_epoch":{epoch},"isr":[{isr}],"server_id":1}}"#
            )
        };
        let lines = [
            obs(1, &p(2, 4, "2,1,3")),
            obs(2, &p(2, 4, "2,1,3")),
            obs(3, &p(3, 5, "3")),
            obs(4, ""),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let s = feed(&refs);
        let lane: Vec<Option<(i32, i32, usize)>> = s.partitions["queue-1"]
            .iter()
            .map(|x| x.value.map(|v| (v.leader, v.leader_epoch, v.isr)))
            .collect();
        assert_eq!(lane, vec![Some((2, 4, 3)), Some((3, 5, 1)), None]);
        let svg = super::super::svg::partitions(&s);
        assert!(svg.contains("queue-1 leader"), "{svg}");
        assert!(svg.contains(r#"data-value="3 e5""#), "{svg}");
        assert!(svg.contains(r#"data-value="isr 1""#), "{svg}");
        // Histories without partition states: no lanes, an empty plot.
        let s = feed(&[&obs(1, "")]);
        assert!(s.partitions.is_empty());
    }

    #[test]
    fn modes_and_controllers_record_changes_only() {
        // Two one-server ensembles (1 and 4, each its own quorum); at time 5
        // server 4's membership could not be read: not a backed leader.
        let obs = |t: u64, m4: &str, c4: i32, members4: &str| {
            format!(
                r#"{{"index":{t},"time":{t},"process":"observer","type":"ok","f":"observe","value":{{"zookeeper":[{{"node":"n1","server_id":1,"mode":"leader","epoch":1,"members":[1],"controller":1}},{{"node":"n4","server_id":4,"mode":"{m4}","epoch":1,"members":[{members4}],"controller":{c4}}}],"kafka":[{{"node":"n7","broker_id":3,"controller":{c4}}}]}}}}"#
            )
        };
        let lines = [
            obs(1, "looking", 1, "4"),
            obs(2, "looking", 1, "4"),
            obs(3, "leader", 3, "4"),
            obs(4, "leader", 3, "4"),
            obs(5, "leader", 3, ""),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let s = feed(&refs);
        assert_eq!(s.observations, 5);
        assert_eq!(s.zk_modes["zk 1 (n1)"].len(), 1);
        let modes: Vec<Option<ZkMode>> = s.zk_modes["zk 4 (n4)"].iter().map(|x| x.value).collect();
        assert_eq!(modes, vec![Some(ZkMode::Looking), Some(ZkMode::Leader)]);
        let c: Vec<Controller> = s.controllers["broker 3 (n7)"]
            .iter()
            .map(|x| x.value)
            .collect();
        assert_eq!(c, vec![Controller::Broker(1), Controller::Broker(3)]);
        let l: Vec<(u64, usize)> = s.leaders.iter().map(|x| (x.start_ns, x.value)).collect();
        assert_eq!(l, vec![(1, 1), (3, 2), (5, 1)]);
        assert_eq!(s.to_json()["max-simultaneous-leaders"], 2);
    }

    #[test]
    fn kraft_controllers_leading_with_quorum_count_as_leaders() {
        // Voters 1001..1003; a leader counts only with a majority of its
        // voters backing it.
        let obs = |t: u64, second: &str| {
            format!(
                r#"{{"index":{t},"time":{t},"process":"observer","type":"ok","f":"observe","value":{{"zookeeper":[],"kafka":[],"controllers":[{{"node":"n1","controller_id":1001,"role":"leader","leader_epoch":2,"high_watermark":10,"voters":[1001,1002,1003],"backing":[1001,1002]}},{second}]}}}}"#
            )
        };
        let follower = r#"{"node":"n2","controller_id":1002,"role":"not-leader"}"#;
        let backed = r#"{"node":"n4","controller_id":1004,"role":"leader","leader_epoch":1,"high_watermark":0,"voters":[1004,1005,1006],"backing":[1004,1005]}"#;
        let alone = r#"{"node":"n4","controller_id":1004,"role":"leader","leader_epoch":1,"high_watermark":0,"voters":[1004,1005,1006],"backing":[1004]}"#;
        let lines = [obs(1, follower), obs(2, alone), obs(3, backed)];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let s = feed(&refs);
        let l: Vec<(u64, usize)> = s.leaders.iter().map(|x| (x.start_ns, x.value)).collect();
        assert_eq!(l, vec![(1, 1), (3, 2)]);
        assert_eq!(s.to_json()["max-simultaneous-leaders"], 2);
    }
}
