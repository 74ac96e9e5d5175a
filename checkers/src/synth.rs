//! Synthetic histories with exactly the anomalies asked for, for tests and
//! benchmarks (`splitbrain gen-history`).
//!
//! A small simulation, not a replay of random bytes: producers send unique
//! messages to logs (mostly `ok`, some `fail` or `info`, which go to the DLQ
//! and are replayed), consumers own disjoint sets of logs and poll them in
//! order, applying each message once; an observer samples a healthy cluster
//! and a nemesis now and then starts and heals a partition. It ends like a
//! real run: heal, finish what is in flight, replay the DLQ, read everything.
//!
//! Each planted anomaly is one scripted deviation that the queue checker must
//! count exactly once and that disturbs no other count (see [`Plants`]).
//! Pure: lines are produced into a caller's buffer; the caller writes them.

use crate::catalog;

/// What can be planted: the queue checker's anomalies and
/// `effect-duplicate` (judged, in these histories without an effect store,
/// from the consumers' `applied` claims).
fn anomaly_names() -> impl Iterator<Item = &'static str> {
    catalog::names_of(catalog::QUEUE).chain(["effect-duplicate"])
}
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The generator's randomness: ChaCha8, whose output for a seed is fixed
/// by `rand_chacha` on every platform (unlike `rand`'s `StdRng`, which may
/// change between versions), so a seed names one history.
#[derive(Clone, Debug)]
struct SeededRng(ChaCha8Rng);

impl SeededRng {
    fn new(seed: u64) -> Self {
        SeededRng(ChaCha8Rng::seed_from_u64(seed))
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n.max(1))
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.random_bool(p.clamp(0.0, 1.0))
    }
}

/// Why a synthetic history cannot be made as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    /// One `NAME=COUNT` of a plant list is unusable.
    #[error("`{part}`: {reason}")]
    BadPlant {
        /// The offending part.
        part: String,
        /// What is wrong with it and what to write instead.
        reason: String,
    },
    /// The options contradict each other.
    #[error("{0}")]
    BadOptions(String),
}

/// How many of each anomaly to plant, by the names of `docs/results.md`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plants(pub BTreeMap<String, u64>);

impl Plants {
    /// Parses `lost-write=2,duplicate=1`. Empty means none.
    pub fn parse(spec: &str) -> Result<Plants, SynthError> {
        let mut out = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |reason: String| SynthError::BadPlant {
                part: part.to_string(),
                reason,
            };
            let (name, n) = part
                .split_once('=')
                .ok_or_else(|| bad("expected NAME=COUNT, e.g. lost-write=2".into()))?;
            if !anomaly_names().any(|n| n == name) {
                return Err(bad(format!(
                    "`{name}` is not an anomaly that can be planted; choose from {}",
                    anomaly_names().collect::<Vec<_>>().join(", ")
                )));
            }
            let n: u64 = n
                .parse()
                .map_err(|_| bad("COUNT must be a non-negative integer".into()))?;
            *out.entry(name.to_string()).or_insert(0) += n;
        }
        Ok(Plants(out))
    }

    /// How many of `name` to plant.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// How many operations (lines): exactly this many, unless the final
    /// drain (finishing what is in flight, replaying the DLQ, reading
    /// everything) or the planted anomalies need more.
    pub ops: u64,
    /// Seed: the same options give the same history.
    pub seed: u64,
    /// Number of logs (`queue-0`, ...).
    pub keys: u32,
    /// Producer processes at any time.
    pub producers: u32,
    /// Consumer processes; each owns the logs `k` with `k % consumers == c`.
    pub consumers: u32,
    /// An observer sample every this many lines (0: none).
    pub observe_every: u64,
    /// Anomalies to plant.
    pub plants: Plants,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            ops: 10_000,
            seed: 0,
            keys: 8,
            producers: 4,
            consumers: 4,
            observe_every: 500,
            plants: Plants::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Sent once, acknowledged, present once: safe to plant around.
    Orig(u64),
    /// Anything else that is in the log (replays, duplicates, planted, or
    /// already used by a plant).
    Other(u64),
    /// Reserved for a producer's next send (nonmonotonic-send).
    Reserved,
}

impl Slot {
    fn msg(self) -> Option<u64> {
        match self {
            Slot::Orig(m) | Slot::Other(m) => Some(m),
            Slot::Reserved => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deviation {
    None,
    Duplicate,
    RetryDuplicate,
    Reorder,
    G1a,
    DlqLost,
}

#[derive(Clone, Debug)]
struct Producer {
    process: u64,
    /// In flight: (replay?, key, msg).
    in_flight: Option<(bool, u32, u64)>,
    /// A reserved slot its next send must fill: (key, offset).
    must_fill: Option<(u32, usize)>,
}

#[derive(Clone, Debug)]
struct Consumer {
    process: u64,
    in_flight: bool,
    keys: Vec<u32>,
    /// Next offset to read, per owned key (indexed like `keys`).
    position: Vec<usize>,
    /// Whether it has read the key before (so a skip is detectable).
    has_read: Vec<bool>,
}

/// The generator. Call [`Synth::next_chunk`] until it returns false.
pub struct Synth {
    opts: SynthOptions,
    rng: SeededRng,
    index: u64,
    time: u64,
    next_msg: u64,
    next_process: u64,
    keys: Vec<String>,
    logs: Vec<Vec<Slot>>,
    /// Per log, the offsets of its reserved slots (readers stop at the first).
    reserved: Vec<std::collections::BTreeSet<usize>>,
    applied: Vec<u64>,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    dlq_pending: std::collections::VecDeque<(u32, u64)>,
    remaining: BTreeMap<String, u64>,
    partitioned: bool,
    phase: Phase,
    buf: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Main,
    Drain,
    Done,
}

const OBSERVATION: &str = r#"{"zookeeper":[{"node":"n1","server_id":1,"mode":"leader","zxid":8589934600,"epoch":2,"members":[1,2,3],"znode_count":40,"controller":1,"cluster_id":"c1"},{"node":"n2","server_id":2,"mode":"follower","zxid":8589934600,"epoch":2,"members":[1,2,3],"znode_count":40,"controller":1,"cluster_id":"c1"},{"node":"n3","server_id":3,"mode":"follower","zxid":8589934600,"epoch":2,"members":[1,2,3],"znode_count":40,"controller":1,"cluster_id":"c1"}],"kafka":[{"node":"n4","broker_id":1,"controller":1},{"node":"n5","broker_id":2,"controller":1},{"node":"n6","broker_id":3,"controller":1}]}"#;

impl Synth {
    /// A generator; fails on impossible options.
    pub fn new(opts: SynthOptions) -> Result<Synth, SynthError> {
        if opts.keys == 0 || opts.producers == 0 || opts.consumers == 0 {
            return Err(SynthError::BadOptions(
                "keys, producers and consumers must each be at least 1".into(),
            ));
        }
        if opts.consumers > opts.keys {
            return Err(SynthError::BadOptions(format!(
                "{} consumers for {} logs: each consumer needs at least one log",
                opts.consumers, opts.keys
            )));
        }
        let keys: Vec<String> = (0..opts.keys).map(|k| format!("queue-{k}")).collect();
        let producers = (0..opts.producers as u64)
            .map(|p| Producer {
                process: p,
                in_flight: None,
                must_fill: None,
            })
            .collect();
        let consumers = (0..opts.consumers)
            .map(|c| {
                let keys: Vec<u32> = (0..opts.keys).filter(|k| k % opts.consumers == c).collect();
                Consumer {
                    process: opts.producers as u64 + c as u64,
                    in_flight: false,
                    position: vec![0; keys.len()],
                    has_read: vec![false; keys.len()],
                    keys,
                }
            })
            .collect();
        Ok(Synth {
            rng: SeededRng::new(opts.seed),
            index: 0,
            time: 0,
            next_msg: 0,
            next_process: (opts.producers + opts.consumers) as u64,
            logs: vec![Vec::new(); keys.len()],
            reserved: vec![Default::default(); keys.len()],
            keys,
            applied: Vec::new(),
            producers,
            consumers,
            dlq_pending: Default::default(),
            remaining: opts.plants.0.clone(),
            partitioned: false,
            phase: Phase::Main,
            buf: String::with_capacity(256),
            opts,
        })
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.index
    }

    fn emit(&mut self, out: &mut Vec<u8>, process: &str, op_type: &str, f: &str, value: &str) {
        self.time += 1 + self.rng.below(50_000);
        self.buf.clear();
        let _ = writeln!(
            self.buf,
            "{{\"index\":{},\"time\":{},\"process\":{process},\"type\":\"{op_type}\",\"f\":\"{f}\",\"value\":{value}}}",
            self.index, self.time
        );
        out.extend_from_slice(self.buf.as_bytes());
        self.index += 1;
    }

    fn message_value(&self, key: u32, msg: u64, offset: Option<usize>) -> String {
        match offset {
            Some(o) => format!(
                r#"{{"key":"{}","msg":{msg},"offset":{o}}}"#,
                self.keys[key as usize]
            ),
            None => format!(r#"{{"key":"{}","msg":{msg}}}"#, self.keys[key as usize]),
        }
    }

    fn take_plant(&mut self, name: &str) -> bool {
        match self.remaining.get_mut(name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn pending(&self, name: &str) -> bool {
        self.remaining.get(name).is_some_and(|n| *n > 0)
    }

    fn plants_left(&self) -> u64 {
        self.remaining
            .iter()
            .filter(|(k, _)| k.as_str() != crate::verdict::UNSEEN)
            .map(|(_, v)| v)
            .sum()
    }

    /// Chance of trying a plant at an opportunity: spread plants over the
    /// main phase, but make sure they all land.
    fn plant_now(&mut self) -> bool {
        let left = self.plants_left();
        if left == 0 {
            return false;
        }
        let budget = self.main_target().saturating_sub(self.index).max(1);
        let p = (left as f64 * 40.0 / budget as f64).min(1.0);
        self.rng.chance(p)
    }

    fn main_target(&self) -> u64 {
        // Leave room for the final drain; padding fills what it leaves.
        self.opts.ops - self.opts.ops / 50
    }

    fn mark_applied(&mut self, msg: u64) -> bool {
        let (w, b) = ((msg / 64) as usize, msg % 64);
        if w >= self.applied.len() {
            self.applied.resize(w + 1, 0);
        }
        let fresh = self.applied[w] & (1 << b) == 0;
        self.applied[w] |= 1 << b;
        fresh
    }

    fn readable(&self, key: u32) -> usize {
        let k = key as usize;
        self.reserved[k]
            .first()
            .copied()
            .unwrap_or(self.logs[k].len())
    }

    /// Emits one or more complete lines into `out`; false when finished.
    pub fn next_chunk(&mut self, out: &mut Vec<u8>) -> bool {
        if self.index == 0 && self.phase != Phase::Done {
            // Like the queue workload's: it says a DLQ is in use, so planted
            // `dlq-lost`s count even when no other send failed. Not process
            // "workload": no final read is expected of a synthetic history.
            self.emit(out, "\"gen-history\"", "ok", "config", r#"{"dlq":true}"#);
        }
        match self.phase {
            Phase::Done => false,
            Phase::Main => {
                self.main_step(out);
                if self.index >= self.main_target() && self.plants_left() == 0 {
                    self.phase = Phase::Drain;
                    if self.partitioned {
                        self.partitioned = false;
                        self.emit(out, "\"nemesis\"", "info", "heal", r#"{"healed":"all"}"#);
                    }
                }
                if self.index > self.opts.ops.saturating_mul(4) + 100_000 {
                    // Conditions for some plant never arose; stop rather than loop.
                    self.phase = Phase::Drain;
                }
                true
            }
            Phase::Drain => {
                if !self.drain_step(out) {
                    self.finish(out);
                    self.phase = Phase::Done;
                }
                true
            }
        }
    }

    /// Planted anomalies that could not be placed (empty when all were).
    pub fn unplaced(&self) -> BTreeMap<String, u64> {
        self.remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    fn main_step(&mut self, out: &mut Vec<u8>) {
        let every = self.opts.observe_every;
        if every > 0 && self.index % every == every - 1 {
            self.emit(out, "\"observer\"", "ok", "observe", OBSERVATION);
            return;
        }
        if self.rng.below(5_000) == 0 {
            self.partitioned = !self.partitioned;
            if self.partitioned {
                self.emit(
                    out,
                    "\"nemesis\"",
                    "info",
                    "start-partition",
                    r#"{"kind":"halves","grudge":{"n1":["n4","n5"],"n2":["n4","n5"]}}"#,
                );
            } else {
                self.emit(out, "\"nemesis\"", "info", "heal", r#"{"healed":"all"}"#);
            }
            return;
        }
        if self.plant_now() {
            if let Some(()) = self.try_auditor_plant(out) {
                return;
            }
        }
        let n = (self.producers.len() + self.consumers.len()) as u64;
        let i = self.rng.below(n) as usize;
        if i < self.producers.len() {
            self.producer_step(i, out, true);
        } else {
            self.consumer_step(i - self.producers.len(), out);
        }
    }

    /// Plants done by an extra one-poll process: inconsistent-offsets,
    /// effect-duplicate, phantom.
    fn try_auditor_plant(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let key = self.rng.below(self.keys.len() as u64) as u32;
        let readable = self.readable(key);
        if self.pending("phantom") {
            self.take_plant("phantom");
            let m = self.next_msg;
            self.next_msg += 1;
            self.logs[key as usize].push(Slot::Other(m));
            return Some(());
        }
        if readable == 0 {
            return None;
        }
        let o = self.rng.below(readable as u64) as usize;
        let Slot::Orig(x) = self.logs[key as usize][o] else {
            return None;
        };
        if self.pending("inconsistent-offsets") {
            self.take_plant("inconsistent-offsets");
            self.logs[key as usize][o] = Slot::Other(x);
            // Y is sent by a fresh process with an unknown outcome, and one
            // auditor reads Y at X's offset.
            let y = self.next_msg;
            self.next_msg += 1;
            let p = self.fresh_process();
            let v = self.message_value(key, y, None);
            let ps = p.to_string();
            self.emit(out, &ps, "invoke", "send", &v);
            self.emit(out, &ps, "info", "send", &v);
            self.mark_applied(y);
            self.auditor(out, key, o, y, &[y]);
            return Some(());
        }
        if self.pending("effect-duplicate") {
            // Only once X is applied by its owner.
            let (c, ki) = self.owner(key);
            if self.consumers[c].position[ki] > o {
                self.take_plant("effect-duplicate");
                self.logs[key as usize][o] = Slot::Other(x);
                self.auditor(out, key, o, x, &[x]);
                return Some(());
            }
        }
        None
    }

    fn owner(&self, key: u32) -> (usize, usize) {
        let c = (key % self.opts.consumers) as usize;
        let ki = self.consumers[c]
            .keys
            .iter()
            .position(|k| *k == key)
            .expect("every key has an owner");
        (c, ki)
    }

    fn fresh_process(&mut self) -> u64 {
        let p = self.next_process;
        self.next_process += 1;
        p
    }

    /// A new process that polls once and reads one record.
    fn auditor(&mut self, out: &mut Vec<u8>, key: u32, offset: usize, msg: u64, applied: &[u64]) {
        let p = self.fresh_process().to_string();
        let applied: Vec<String> = applied.iter().map(u64::to_string).collect();
        let v = format!(
            r#"{{"records":{{"{}":[[{offset},{msg}]]}},"applied":[{}]}}"#,
            self.keys[key as usize],
            applied.join(",")
        );
        self.emit(out, &p, "invoke", "poll", "null");
        self.emit(out, &p, "ok", "poll", &v);
    }

    /// One step of producer `i`. `new_sends`: whether it may start new sends.
    /// Returns whether it emitted anything.
    fn producer_step(&mut self, i: usize, out: &mut Vec<u8>, new_sends: bool) -> bool {
        let p = self.producers[i].process.to_string();
        if let Some((replay, key, msg)) = self.producers[i].in_flight.take() {
            self.complete_send(i, &p, replay, key, msg, out);
            return true;
        }
        if let Some((key, _)) = self.producers[i].must_fill {
            let msg = self.next_msg;
            self.next_msg += 1;
            self.producers[i].in_flight = Some((false, key, msg));
            let v = self.message_value(key, msg, None);
            self.emit(out, &p, "invoke", "send", &v);
            return true;
        }
        if !self.dlq_pending.is_empty() && (!new_sends || self.rng.chance(0.5)) {
            let (key, msg) = self.dlq_pending.pop_front().expect("non-empty");
            self.producers[i].in_flight = Some((true, key, msg));
            let v = self.message_value(key, msg, None);
            self.emit(out, &p, "invoke", "replay", &v);
            return true;
        }
        if !new_sends {
            return false;
        }
        let key = self.rng.below(self.keys.len() as u64) as u32;
        let msg = self.next_msg;
        self.next_msg += 1;
        self.producers[i].in_flight = Some((false, key, msg));
        let v = self.message_value(key, msg, None);
        self.emit(out, &p, "invoke", "send", &v);
        true
    }

    fn complete_send(
        &mut self,
        i: usize,
        p: &str,
        replay: bool,
        key: u32,
        msg: u64,
        out: &mut Vec<u8>,
    ) {
        let f = if replay { "replay" } else { "send" };
        if replay {
            let o = self.logs[key as usize].len();
            self.logs[key as usize].push(Slot::Other(msg));
            let v = self.message_value(key, msg, Some(o));
            self.emit(out, p, "ok", f, &v);
            return;
        }
        if let Some((k, slot)) = self.producers[i].must_fill.take() {
            debug_assert_eq!(k, key);
            self.logs[key as usize][slot] = Slot::Orig(msg);
            self.reserved[key as usize].remove(&slot);
            let v = self.message_value(key, msg, Some(slot));
            self.emit(out, p, "ok", f, &v);
            return;
        }
        let deviation = if self.phase == Phase::Main && self.plant_now() {
            let options = [
                ("duplicate", Deviation::Duplicate),
                ("retry-duplicate", Deviation::RetryDuplicate),
                ("nonmonotonic-send", Deviation::Reorder),
                ("G1a", Deviation::G1a),
                ("dlq-lost", Deviation::DlqLost),
            ];
            options
                .iter()
                .find(|(name, _)| self.pending(name))
                .map(|(name, d)| {
                    self.take_plant(name);
                    *d
                })
                .unwrap_or(Deviation::None)
        } else {
            Deviation::None
        };
        let log = key as usize;
        match deviation {
            Deviation::Duplicate => {
                let o = self.logs[log].len();
                self.logs[log].push(Slot::Other(msg));
                self.logs[log].push(Slot::Other(msg));
                let v = self.message_value(key, msg, Some(o));
                self.emit(out, p, "ok", f, &v);
            }
            Deviation::RetryDuplicate => {
                // Written, but reported `info`: to the DLQ, and the replay
                // writes it again.
                self.logs[log].push(Slot::Other(msg));
                let v = self.message_value(key, msg, None);
                self.emit(out, p, "info", f, &v);
                self.emit(out, "\"dlq\"", "ok", "dlq", &v);
                self.dlq_pending.push_back((key, msg));
                self.producers[i].process = self.fresh_process();
            }
            Deviation::Reorder => {
                let reserved = self.logs[log].len();
                self.logs[log].push(Slot::Reserved);
                self.reserved[log].insert(reserved);
                self.logs[log].push(Slot::Orig(msg));
                self.producers[i].must_fill = Some((key, reserved));
                let v = self.message_value(key, msg, Some(reserved + 1));
                self.emit(out, p, "ok", f, &v);
            }
            Deviation::G1a => {
                self.logs[log].push(Slot::Other(msg));
                let v = self.message_value(key, msg, None);
                self.emit(out, p, "fail", f, &v);
            }
            Deviation::DlqLost => {
                let v = self.message_value(key, msg, None);
                self.emit(out, p, "fail", f, &v);
            }
            Deviation::None => {
                let roll = self.rng.below(1000);
                if roll < 970 || self.phase != Phase::Main {
                    let o = self.logs[log].len();
                    self.logs[log].push(Slot::Orig(msg));
                    let v = self.message_value(key, msg, Some(o));
                    self.emit(out, p, "ok", f, &v);
                } else {
                    let info = roll >= 990;
                    let v = self.message_value(key, msg, None);
                    self.emit(out, p, if info { "info" } else { "fail" }, f, &v);
                    self.emit(out, "\"dlq\"", "ok", "dlq", &v);
                    self.dlq_pending.push_back((key, msg));
                    if info {
                        // An unknown outcome ends the process; a new one takes over.
                        self.producers[i].process = self.fresh_process();
                    }
                }
            }
        }
    }

    fn consumer_step(&mut self, c: usize, out: &mut Vec<u8>) {
        let p = self.consumers[c].process.to_string();
        if !self.consumers[c].in_flight {
            self.consumers[c].in_flight = true;
            self.emit(out, &p, "invoke", "poll", "null");
            return;
        }
        self.consumers[c].in_flight = false;
        let mut records = String::new();
        let mut applied = String::new();
        let mut rebalance = String::new();
        let mut audit: Option<(u32, usize, u64)> = None;
        for ki in 0..self.consumers[c].keys.len() {
            let key = self.consumers[c].keys[ki];
            let readable = self.readable(key);
            let mut pos = self.consumers[c].position[ki];
            if pos >= readable {
                continue;
            }
            let has_read = self.consumers[c].has_read[ki];
            // Plants that bend this consumer's reading of this key.
            if self.phase == Phase::Main && audit.is_none() && self.plant_now() {
                let skippable =
                    matches!(self.logs[key as usize][pos], Slot::Orig(_)) && pos + 1 < readable;
                if skippable && self.pending("lost-write") {
                    // A rebalance that resumes past one message nobody else reads.
                    self.take_plant("lost-write");
                    let m = self.logs[key as usize][pos].msg().expect("orig");
                    self.logs[key as usize][pos] = Slot::Other(m);
                    pos += 1;
                    if !rebalance.is_empty() {
                        rebalance.push(',');
                    }
                    let _ = write!(rebalance, "\"{}\"", self.keys[key as usize]);
                } else if skippable && has_read && self.pending("poll-skip") {
                    let m = self.logs[key as usize][pos].msg().expect("orig");
                    self.take_plant("poll-skip");
                    self.logs[key as usize][pos] = Slot::Other(m);
                    audit = Some((key, pos, m));
                    pos += 1;
                } else if pos > 0 && has_read && self.pending("nonmonotonic-poll") {
                    self.take_plant("nonmonotonic-poll");
                    pos -= 1;
                }
            }
            let batch = 1 + self.rng.below(8) as usize;
            let end = (pos + batch).min(readable);
            if !records.is_empty() {
                records.push(',');
            }
            let _ = write!(records, "\"{}\":[", self.keys[key as usize]);
            for o in pos..end {
                let m = self.logs[key as usize][o].msg().expect("readable");
                if o > pos {
                    records.push(',');
                }
                let _ = write!(records, "[{o},{m}]");
                if self.mark_applied(m) {
                    if !applied.is_empty() {
                        applied.push(',');
                    }
                    let _ = write!(applied, "{m}");
                }
            }
            records.push(']');
            self.consumers[c].position[ki] = end;
            self.consumers[c].has_read[ki] = true;
        }
        let mut v = format!(r#"{{"records":{{{records}}},"applied":[{applied}]"#);
        if !rebalance.is_empty() {
            let _ = write!(v, r#","rebalance":[{rebalance}]"#);
        }
        v.push('}');
        self.emit(out, &p, "ok", "poll", &v);
        if let Some((key, o, m)) = audit {
            let first_time = self.mark_applied(m);
            let applied: &[u64] = if first_time { &[m] } else { &[] };
            let applied = applied.to_vec();
            self.auditor(out, key, o, m, &applied);
        }
    }

    /// One step of the final phase; false when everything is done.
    fn drain_step(&mut self, out: &mut Vec<u8>) -> bool {
        for i in 0..self.producers.len() {
            if self.producer_step(i, out, false) {
                return true;
            }
        }
        if !self.dlq_pending.is_empty() {
            return true;
        }
        for c in 0..self.consumers.len() {
            let behind = self.consumers[c]
                .keys
                .iter()
                .zip(&self.consumers[c].position)
                .any(|(k, pos)| *pos < self.readable(*k));
            if behind || self.consumers[c].in_flight {
                self.consumer_step(c, out);
                return true;
            }
        }
        false
    }

    /// Acknowledged sends nobody reads: the planted `unseen`.
    fn finish(&mut self, out: &mut Vec<u8>) {
        let n = self
            .remaining
            .get(crate::verdict::UNSEEN)
            .copied()
            .unwrap_or(0);
        // Pad to exactly the asked size with idle polls (nothing left to
        // read), keeping two lines per planted `unseen` message.
        let target = self.opts.ops.saturating_sub(2 * n);
        let p = self.consumers[0].process.to_string();
        while self.index + 2 <= target {
            self.emit(out, &p, "invoke", "poll", "null");
            self.emit(out, &p, "ok", "poll", r#"{"records":{}}"#);
        }
        if self.index < target {
            self.emit(out, "\"nemesis\"", "info", "heal", r#"{"healed":"all"}"#);
        }
        for _ in 0..n {
            self.take_plant(crate::verdict::UNSEEN);
            let p = self.producers[0].process.to_string();
            let msg = self.next_msg;
            self.next_msg += 1;
            let o = self.logs[0].len();
            self.logs[0].push(Slot::Orig(msg));
            let v = self.message_value(0, msg, None);
            self.emit(out, &p, "invoke", "send", &v);
            let v = self.message_value(0, msg, Some(o));
            self.emit(out, &p, "ok", "send", &v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckOptions, HistoryChecker};
    use proptest::prelude::*;
    use splitbrain_core::history::HistoryReader;

    fn generate(opts: SynthOptions) -> (Vec<u8>, BTreeMap<String, u64>) {
        let mut s = Synth::new(opts).unwrap();
        let mut out = Vec::new();
        while s.next_chunk(&mut out) {}
        (out, s.unplaced())
    }

    fn verdict_of(text: &[u8]) -> crate::Verdict {
        let mut r = HistoryReader::new(text, "synth.jsonl");
        let mut c = HistoryChecker::new(&CheckOptions::default());
        while let Some(op) = r.next_op() {
            c.observe(&op.expect("generated histories are well-formed"))
                .expect("generated histories give each msg one log");
        }
        assert!(r.finish().is_empty(), "no unfinished operations at the end");
        c.finish()
    }

    #[test]
    fn parses_plant_specs() {
        let p = Plants::parse("lost-write=2, duplicate=1,lost-write=1").unwrap();
        assert_eq!(p.get("lost-write"), 3);
        assert_eq!(p.get("duplicate"), 1);
        assert!(Plants::parse("lost=1")
            .unwrap_err()
            .to_string()
            .contains("choose from"));
        assert!(Plants::parse("duplicate").is_err());
        assert!(Plants::parse("duplicate=-1").is_err());
        assert_eq!(Plants::parse("").unwrap(), Plants::default());
    }

    #[test]
    fn same_seed_same_history() {
        let opts = SynthOptions {
            ops: 2_000,
            seed: 7,
            ..Default::default()
        };
        assert_eq!(generate(opts.clone()).0, generate(opts).0);
    }

    #[test]
    fn clean_history_is_valid_and_about_the_asked_size() {
        let (text, unplaced) = generate(SynthOptions {
            ops: 20_000,
            seed: 1,
            ..Default::default()
        });
        assert!(unplaced.is_empty());
        let v = verdict_of(&text);
        assert!(v.valid, "{:?}", v.anomalies);
        let lines = text.iter().filter(|b| **b == b'\n').count() as u64;
        assert_eq!(lines, 20_000);
        assert!(v.counts["dlq"] > 0 && v.counts["replayed"] == v.counts["dlq"]);
        assert!(v.counts["observations"] >= lines / 600);
    }

    #[test]
    fn every_anomaly_planted_at_once_is_found_exactly() {
        let spec: Vec<String> = anomaly_names().map(|n| format!("{n}=2")).collect();
        let plants = Plants::parse(&spec.join(",")).unwrap();
        let (text, unplaced) = generate(SynthOptions {
            ops: 20_000,
            seed: 3,
            plants,
            ..Default::default()
        });
        assert!(unplaced.is_empty(), "{unplaced:?}");
        let v = verdict_of(&text);
        for name in anomaly_names() {
            assert_eq!(v.count(name), 2, "{name}: {:?}", v.anomalies[name]);
        }
        assert!(!v.valid);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn planted_counts_are_found_exactly(
            seed in any::<u64>(),
            counts in proptest::collection::vec(0u64..4, anomaly_names().count()),
            keys in 2u32..10,
        ) {
            let plants = Plants(anomaly_names().zip(&counts)
                .map(|(n, c)| (n.to_string(), *c)).collect());
            let consumers = 1 + (seed % keys as u64) as u32;
            let opts = SynthOptions { ops: 6_000, seed, keys, consumers, plants, ..Default::default() };
            let (text, unplaced) = generate(opts);
            prop_assert!(unplaced.is_empty(), "{:?}", unplaced);
            let v = verdict_of(&text);
            for (name, want) in anomaly_names().zip(&counts) {
                prop_assert_eq!(v.count(name), *want, "{}: {:?}", name, v.anomalies[name]);
            }
            let only_informational = counts.iter().zip(anomaly_names())
                .all(|(c, n)| *c == 0 || !crate::catalog::is_anomaly(n));
            prop_assert_eq!(v.valid, only_informational);
        }

        #[test]
        fn clean_histories_are_valid(seed in any::<u64>(), producers in 1u32..6, keys in 1u32..6) {
            let opts = SynthOptions { ops: 3_000, seed, producers, keys, consumers: 1, ..Default::default() };
            let (text, _) = generate(opts);
            let v = verdict_of(&text);
            prop_assert!(v.valid, "{:?}", v.anomalies);
            prop_assert_eq!(v.count("unseen"), 0);
        }
    }
}
