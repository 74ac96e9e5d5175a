//! Synthetic transactional histories (`f: "txn"`) with exactly the
//! anomalies asked for, for tests and benchmarks (`splitbrain gen-history
//! --txn`).
//!
//! A small model of Kafka transactions, not random bytes: transactional
//! producers send one to four messages to random logs (the offsets are
//! taken when the transaction starts, so concurrent transactions' sends
//! interleave as in Kafka), sometimes poll in the same transaction, and
//! commit (most), abort (some) or end with an unknown outcome (a few, after
//! which the producer gets a new process number); every transaction end
//! writes a marker at one offset of each log it touched. `read_committed`
//! consumers own disjoint logs and poll up to the first open transaction's
//! offset, skipping aborted messages and markers. It ends like a real run:
//! every transaction finishes, one last transaction writes to every log,
//! and the consumers read everything.
//!
//! Each planted anomaly is one scripted deviation that the transaction
//! checker must count exactly once and that disturbs no other
//! invalidating count (see [`TXN_PLANTABLE`]). `G0` and `int-send-skip`,
//! which Kafka allows, occur naturally and are not planted. Pure: lines are
//! produced into a caller's buffer.

use crate::synth::SynthError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What can be planted.
pub const TXN_PLANTABLE: &[&str] = &[
    "G1a",
    "G1c",
    "G1c-process",
    "G1c-realtime",
    "lost-write",
    "duplicate",
    "precommitted-read",
    "int-poll-skip",
    "int-nonmonotonic-poll",
    "int-nonmonotonic-send",
];

/// How many of each anomaly to plant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnPlants(pub BTreeMap<String, u64>);

impl TxnPlants {
    /// Parses `G1a=2,G1c=1`. Empty means none.
    pub fn parse(spec: &str) -> Result<TxnPlants, SynthError> {
        let mut out = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |reason: String| SynthError::BadPlant {
                part: part.to_string(),
                reason,
            };
            let (name, n) = part
                .split_once('=')
                .ok_or_else(|| bad("expected NAME=COUNT, e.g. G1c=2".into()))?;
            if !TXN_PLANTABLE.contains(&name) {
                return Err(bad(format!(
                    "`{name}` cannot be planted in a transactional history; choose from {}",
                    TXN_PLANTABLE.join(", ")
                )));
            }
            let n: u64 = n
                .parse()
                .map_err(|_| bad(format!("`{n}` is not a count (a non-negative integer)")))?;
            *out.entry(name.to_string()).or_insert(0) += n;
        }
        Ok(TxnPlants(out))
    }

    /// How many of `name` to plant.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct TxnSynthOptions {
    /// About how many transactions (producers' and consumers' polls): the
    /// main phase stops here, the final reads add a few.
    pub txns: u64,
    /// Seed: the same options give the same history.
    pub seed: u64,
    /// Number of logs (`txn-0`, ...).
    pub keys: u32,
    /// Transactional producer processes at any time.
    pub producers: u32,
    /// Consumer processes; each owns the logs `k` with `k % consumers == c`.
    pub consumers: u32,
    /// Fraction of transactions aborted.
    pub abort: f64,
    /// Fraction of transactions whose outcome is unknown (`info`).
    pub info: f64,
    /// Fraction of producers' transactions that also poll.
    pub poll_in_txn: f64,
    /// Anomalies to plant.
    pub plants: TxnPlants,
}

impl Default for TxnSynthOptions {
    fn default() -> Self {
        TxnSynthOptions {
            txns: 10_000,
            seed: 0,
            keys: 8,
            producers: 6,
            consumers: 2,
            abort: 0.1,
            info: 0.01,
            poll_in_txn: 0.3,
            plants: TxnPlants::default(),
        }
    }
}

// Slot states.
const PENDING: u8 = 0;
const COMMITTED: u8 = 1;
const ABORTED: u8 = 2;
const MARKER: u8 = 3;
// Slot flags.
/// Every reader skips it (lost-write), at the start of a batch.
const HIDDEN: u8 = 1;
/// Aborted, but readers return it (G1a).
const LEAKED: u8 = 2;

#[derive(Clone, Copy, Debug)]
struct Slot {
    msg: u64,
    state: u8,
    flags: u8,
}

/// How a transaction will really end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Commit,
    Abort,
    /// `info` in the history; committed or not in truth.
    Unknown(bool),
}

/// One log's records in a poll: (key, [(offset, msg)]).
type KeyRecords = (u32, Vec<(u64, u64)>);

#[derive(Clone, Debug)]
struct Open {
    /// (key, offset, msg) in micro-op order; the offset is `u64::MAX`
    /// until the send reaches the log.
    sends: Vec<(u32, u64, u64)>,
    /// Sends before this one have reached the log: a transaction's sends
    /// reach it one step at a time, interleaved with other transactions'.
    sent: usize,
    /// Every slot it wrote (sends and planted copies).
    slots: Vec<(u32, u64)>,
    /// Records its poll returns, per key.
    polls: Option<Vec<KeyRecords>>,
    fate: Fate,
}

#[derive(Clone, Debug)]
struct Producer {
    process: u64,
    open: Option<Open>,
    /// Next offset its in-transaction polls read, per key.
    pos: Vec<u64>,
}

#[derive(Clone, Debug)]
struct Consumer {
    process: u64,
    keys: Vec<u32>,
    pos: Vec<u64>,
    /// A record it skipped on purpose (int-poll-skip), read alone next.
    reread: Option<(u32, u64, u64)>,
}

/// The generator. Call [`TxnSynth::next_chunk`] until it returns false.
pub struct TxnSynth {
    opts: TxnSynthOptions,
    rng: ChaCha8Rng,
    index: u64,
    time: u64,
    txns: u64,
    next_msg: u64,
    next_process: u64,
    keys: Vec<String>,
    logs: Vec<Vec<Slot>>,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    remaining: BTreeMap<String, u64>,
    phase: u8,
    buf: String,
}

const MAIN: u8 = 0;
const DRAIN: u8 = 1;
const DONE: u8 = 2;

impl TxnSynth {
    /// A generator; fails on impossible options.
    pub fn new(opts: TxnSynthOptions) -> Result<TxnSynth, SynthError> {
        if opts.keys == 0 || opts.producers < 2 || opts.consumers == 0 {
            return Err(SynthError::BadOptions(
                "at least 1 log, 2 producers and 1 consumer are needed".into(),
            ));
        }
        if opts.consumers > opts.keys {
            return Err(SynthError::BadOptions(format!(
                "{} consumers for {} logs: each consumer needs at least one log",
                opts.consumers, opts.keys
            )));
        }
        let keys: Vec<String> = (0..opts.keys).map(|k| format!("txn-{k}")).collect();
        let n = keys.len();
        let producers = (0..opts.producers as u64)
            .map(|p| Producer {
                process: p,
                open: None,
                pos: vec![0; n],
            })
            .collect();
        let consumers = (0..opts.consumers)
            .map(|c| {
                let keys: Vec<u32> = (0..opts.keys).filter(|k| k % opts.consumers == c).collect();
                Consumer {
                    process: opts.producers as u64 + c as u64,
                    pos: vec![0; keys.len()],
                    keys,
                    reread: None,
                }
            })
            .collect();
        Ok(TxnSynth {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            index: 0,
            time: 0,
            txns: 0,
            next_msg: 0,
            next_process: (opts.producers + opts.consumers) as u64,
            logs: vec![Vec::new(); n],
            producers,
            consumers,
            remaining: opts.plants.0.clone(),
            phase: MAIN,
            buf: String::with_capacity(512),
            keys,
            opts,
        })
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.index
    }

    /// Transactions invoked so far.
    pub fn txns(&self) -> u64 {
        self.txns
    }

    /// Planted anomalies that could not be placed (empty when all were).
    pub fn unplaced(&self) -> BTreeMap<String, u64> {
        self.remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.random_range(0..n.max(1))
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn emit(&mut self, out: &mut Vec<u8>, process: &str, op_type: &str, f: &str, value: &str) {
        self.time += 1 + self.below(20_000);
        self.buf.clear();
        let _ = writeln!(
            self.buf,
            "{{\"index\":{},\"time\":{},\"process\":{process},\"type\":\"{op_type}\",\"f\":\"{f}\",\"value\":{value}}}",
            self.index, self.time
        );
        out.extend_from_slice(self.buf.as_bytes());
        self.index += 1;
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

    fn plants_left(&self) -> u64 {
        self.remaining.values().sum()
    }

    /// Whether to try a plant now: spread them over the main phase.
    fn plant_now(&mut self) -> bool {
        let left = self.plants_left();
        if left == 0 {
            return false;
        }
        let budget = self.opts.txns.saturating_sub(self.txns).max(1);
        let p = (left as f64 * 20.0 / budget as f64).min(1.0);
        self.chance(p)
    }

    /// Emits one or more complete lines into `out`; false when finished.
    pub fn next_chunk(&mut self, out: &mut Vec<u8>) -> bool {
        match self.phase {
            MAIN => {
                if self.index == 0 {
                    self.emit(
                        out,
                        "\"workload\"",
                        "info",
                        "txn-settings",
                        r#"{"isolation_level":"read_committed","generator":"synth"}"#,
                    );
                }
                self.main_step(out);
                let overdue = self.txns > self.opts.txns.saturating_mul(4) + 10_000;
                if (self.txns >= self.opts.txns && self.plants_left() == 0) || overdue {
                    self.phase = DRAIN;
                }
                true
            }
            DRAIN => {
                self.drain(out);
                self.phase = DONE;
                true
            }
            _ => false,
        }
    }

    fn main_step(&mut self, out: &mut Vec<u8>) {
        if self.plant_now() && self.try_pair_plant(out) {
            return;
        }
        let np = self.producers.len() as u64;
        let i = self.below(np + self.consumers.len() as u64) as usize;
        if i < np as usize {
            if self.producers[i].open.is_some() {
                if !self.send_next(i) {
                    self.complete(i, out);
                }
            } else {
                self.start(i, out);
            }
        } else {
            self.consumer_poll(i - np as usize, out);
        }
    }

    /// Appends a slot to log `k`; its offset.
    fn append(&mut self, k: u32, msg: u64, state: u8) -> u64 {
        let log = &mut self.logs[k as usize];
        log.push(Slot {
            msg,
            state,
            flags: 0,
        });
        (log.len() - 1) as u64
    }

    /// Reads log `k` from `from`: committed records up to the first open
    /// transaction, at most `max`; the next position.
    fn read(&self, k: u32, from: u64, max: usize, out: &mut Vec<(u64, u64)>) -> u64 {
        let log = &self.logs[k as usize];
        let mut o = from as usize;
        let start = out.len();
        while o < log.len() && out.len() - start < max {
            let s = log[o];
            match s.state {
                PENDING => break,
                // Hidden: a batch stops before it, the next starts after it.
                COMMITTED if s.flags & HIDDEN != 0 && out.len() > start => break,
                COMMITTED if s.flags & HIDDEN != 0 => {}
                COMMITTED => out.push((o as u64, s.msg)),
                ABORTED if s.flags & LEAKED != 0 => out.push((o as u64, s.msg)),
                _ => {}
            }
            o += 1;
        }
        o as u64
    }

    fn fate(&mut self) -> Fate {
        let r: f64 = self.rng.random();
        if r < self.opts.info {
            Fate::Unknown(self.chance(0.5))
        } else if r < self.opts.info + self.opts.abort {
            Fate::Abort
        } else {
            Fate::Commit
        }
    }

    /// Starts a transaction on idle producer `i`.
    fn start(&mut self, i: usize, out: &mut Vec<u8>) {
        let nkeys = self.keys.len() as u64;
        let mut fate = self.fate();
        let mut plant = "";
        if self.plant_now() {
            for name in [
                "G1a",
                "lost-write",
                "duplicate",
                "precommitted-read",
                "int-nonmonotonic-send",
            ] {
                if self.remaining.get(name).is_some_and(|n| *n > 0) {
                    plant = name;
                    break;
                }
            }
        }
        if !plant.is_empty() {
            self.take_plant(plant);
            fate = if plant == "G1a" {
                Fate::Abort
            } else {
                Fate::Commit
            };
        }
        let mut sends: Vec<(u32, u64, u64)> = Vec::new();
        let mut slots = Vec::new();
        let n = 1 + self.below(4);
        for j in 0..n {
            let k = if plant == "int-nonmonotonic-send" && j == 1 {
                sends[0usize].0
            } else {
                self.below(nkeys) as u32
            };
            let msg = self.next_msg;
            self.next_msg += 1;
            if plant.is_empty() && j > 0 {
                // Sent later, one step at a time.
                sends.push((k, u64::MAX, msg));
                continue;
            }
            let o = self.append(k, msg, PENDING);
            sends.push((k, o, msg));
            slots.push((k, o));
            if plant == "duplicate" && j == 0 {
                // The broker wrote it twice.
                let o2 = self.append(k, msg, PENDING);
                slots.push((k, o2));
            }
        }
        if plant == "int-nonmonotonic-send" {
            if sends.len() < 2 {
                let (k, msg) = (sends[0].0, self.next_msg);
                self.next_msg += 1;
                let o = self.append(k, msg, PENDING);
                sends.push((k, o, msg));
                slots.push((k, o));
            }
            // Listed in the other order than the log put them.
            sends.swap(0, 1);
        }
        let (k0, o0, m0) = sends[0];
        match plant {
            "lost-write" => self.logs[k0 as usize][o0 as usize].flags |= HIDDEN,
            "G1a" => self.logs[k0 as usize][o0 as usize].flags |= LEAKED,
            _ => {}
        }
        let polls = if plant == "precommitted-read" {
            Some(vec![(k0, vec![(o0, m0)])])
        } else if plant.is_empty() && self.chance(self.opts.poll_in_txn) {
            let k = self.below(nkeys) as u32;
            let mut recs = Vec::new();
            let from = self.producers[i].pos[k as usize];
            let to = self.read(k, from, 5, &mut recs);
            self.producers[i].pos[k as usize] = to;
            Some(vec![(k, recs)])
        } else {
            None
        };
        self.buf.clear();
        let mut v = String::from("[");
        for (j, (k, _, msg)) in sends.iter().enumerate() {
            if j > 0 {
                v.push(',');
            }
            let _ = write!(v, r#"["send","{}",{msg}]"#, self.keys[*k as usize]);
        }
        if polls.is_some() {
            v.push_str(r#",["poll"]"#);
        }
        v.push(']');
        let p = self.producers[i].process.to_string();
        self.txns += 1;
        self.emit(out, &p, "invoke", "txn", &v);
        let sent = sends.iter().take_while(|s| s.1 != u64::MAX).count();
        self.producers[i].open = Some(Open {
            sends,
            sent,
            slots,
            polls,
            fate,
        });
    }

    /// Producer `i`'s open transaction's next send reaches the log;
    /// whether there was one.
    fn send_next(&mut self, i: usize) -> bool {
        let Some(open) = self.producers[i].open.as_ref() else {
            return false;
        };
        let Some(&(k, _, msg)) = open.sends.get(open.sent) else {
            return false;
        };
        let o = self.append(k, msg, PENDING);
        let open = self.producers[i].open.as_mut().expect("checked");
        open.sends[open.sent].1 = o;
        open.sent += 1;
        open.slots.push((k, o));
        true
    }

    /// Completes producer `i`'s transaction.
    fn complete(&mut self, i: usize, out: &mut Vec<u8>) {
        while self.send_next(i) {}
        let Some(open) = self.producers[i].open.take() else {
            return;
        };
        let committed = matches!(open.fate, Fate::Commit | Fate::Unknown(true));
        let state = if committed { COMMITTED } else { ABORTED };
        let mut touched: Vec<u32> = Vec::new();
        for &(k, o) in &open.slots {
            self.logs[k as usize][o as usize].state = state;
            if !touched.contains(&k) {
                touched.push(k);
            }
        }
        for k in touched {
            self.append(k, u64::MAX, MARKER);
        }
        let mut v = String::from("[");
        for (j, (k, o, msg)) in open.sends.iter().enumerate() {
            if j > 0 {
                v.push(',');
            }
            let _ = write!(v, r#"["send","{}",[{o},{msg}]]"#, self.keys[*k as usize]);
        }
        if let Some(polls) = &open.polls {
            v.push_str(r#",["poll",{"#);
            for (j, (k, recs)) in polls.iter().enumerate() {
                if j > 0 {
                    v.push(',');
                }
                let _ = write!(v, r#""{}":["#, self.keys[*k as usize]);
                for (r, (o, m)) in recs.iter().enumerate() {
                    if r > 0 {
                        v.push(',');
                    }
                    let _ = write!(v, "[{o},{m}]");
                }
                v.push(']');
            }
            v.push_str("}]");
        }
        v.push(']');
        let ty = match open.fate {
            Fate::Commit => "ok",
            Fate::Abort => "fail",
            Fate::Unknown(_) => "info",
        };
        let p = self.producers[i].process.to_string();
        self.emit(out, &p, ty, "txn", &v);
        if ty == "info" {
            self.producers[i].process = self.next_process;
            self.next_process += 1;
        }
    }

    /// One poll of consumer `c` (invoke and completion); whether it read
    /// anything.
    fn consumer_poll(&mut self, c: usize, out: &mut Vec<u8>) -> bool {
        let mut per_key: Vec<(u32, Vec<(u64, u64)>)> = Vec::new();
        let reread = self.consumers[c].reread.take();
        let mut planted_skip = false;
        let want_skip = self.remaining.get("int-poll-skip").is_some_and(|n| *n > 0)
            && reread.is_none()
            && self.plant_now();
        let want_repeat = self
            .remaining
            .get("int-nonmonotonic-poll")
            .is_some_and(|n| *n > 0)
            && self.plant_now();
        let mut planted_repeat = false;
        for j in 0..self.consumers[c].keys.len() {
            let k = self.consumers[c].keys[j];
            let mut recs = Vec::new();
            if let Some((rk, o, m)) = reread {
                if rk == k {
                    per_key.push((k, vec![(o, m)]));
                    continue;
                }
            }
            let from = self.consumers[c].pos[j];
            let to = self.read(k, from, 10, &mut recs);
            self.consumers[c].pos[j] = to;
            if recs.is_empty() {
                continue;
            }
            let plain = |s: &TxnSynth, i: usize| {
                let (o, m) = recs[i];
                s.logs[k as usize][o as usize].state == COMMITTED
                    && recs[i - 1].1 != m
                    && recs.get(i + 1).is_some_and(|r| r.1 != m)
            };
            if want_skip && !planted_skip && recs.len() >= 3 && plain(self, 1) {
                let (o, m) = recs.remove(1);
                self.consumers[c].reread = Some((k, o, m));
                planted_skip = true;
            } else if want_repeat && !planted_repeat && recs.len() >= 2 {
                recs.push(recs[0]);
                planted_repeat = true;
            }
            per_key.push((k, recs));
        }
        if planted_skip {
            self.take_plant("int-poll-skip");
        }
        if planted_repeat {
            self.take_plant("int-nonmonotonic-poll");
        }
        let p = self.consumers[c].process.to_string();
        self.txns += 1;
        self.emit(out, &p, "invoke", "txn", r#"[["poll"]]"#);
        let mut v = String::from(r#"[["poll",{"#);
        for (j, (k, recs)) in per_key.iter().enumerate() {
            if j > 0 {
                v.push(',');
            }
            let _ = write!(v, r#""{}":["#, self.keys[*k as usize]);
            for (r, (o, m)) in recs.iter().enumerate() {
                if r > 0 {
                    v.push(',');
                }
                let _ = write!(v, "[{o},{m}]");
            }
            v.push(']');
        }
        v.push_str("}]]");
        self.emit(out, &p, "ok", "txn", &v);
        !per_key.is_empty()
    }

    /// Plants that need two idle producers: G1c (two transactions each
    /// reading the other's send) and G1c-process / G1c-realtime (a
    /// transaction reading a message a later one sends). Whether one was
    /// planted.
    fn try_pair_plant(&mut self, out: &mut Vec<u8>) -> bool {
        let name = ["G1c", "G1c-process", "G1c-realtime"]
            .into_iter()
            .find(|n| self.remaining.get(*n).is_some_and(|c| *c > 0));
        let Some(name) = name else { return false };
        let idle: Vec<usize> = (0..self.producers.len())
            .filter(|&i| self.producers[i].open.is_none())
            .collect();
        if idle.len() < 2 {
            return false;
        }
        self.take_plant(name);
        let (a, b) = (idle[0], idle[1]);
        let nkeys = self.keys.len() as u64;
        let (ka, kb) = (self.below(nkeys) as u32, self.below(nkeys) as u32);
        let (ma, mb) = (self.next_msg, self.next_msg + 1);
        self.next_msg += 2;
        let (pa, pb) = (
            self.producers[a].process.to_string(),
            self.producers[b].process.to_string(),
        );
        let (na, nb) = (
            self.keys[ka as usize].clone(),
            self.keys[kb as usize].clone(),
        );
        if name == "G1c" {
            let oa = self.append(ka, ma, PENDING);
            let ob = self.append(kb, mb, PENDING);
            self.txns += 2;
            self.emit(
                out,
                &pa,
                "invoke",
                "txn",
                &format!(r#"[["send","{na}",{ma}],["poll"]]"#),
            );
            self.emit(
                out,
                &pb,
                "invoke",
                "txn",
                &format!(r#"[["send","{nb}",{mb}],["poll"]]"#),
            );
            for (k, o) in [(ka, oa), (kb, ob)] {
                self.logs[k as usize][o as usize].state = COMMITTED;
            }
            self.emit(
                out,
                &pa,
                "ok",
                "txn",
                &format!(r#"[["send","{na}",[{oa},{ma}]],["poll",{{"{nb}":[[{ob},{mb}]]}}]]"#),
            );
            self.emit(
                out,
                &pb,
                "ok",
                "txn",
                &format!(r#"[["send","{nb}",[{ob},{mb}]],["poll",{{"{na}":[[{oa},{ma}]]}}]]"#),
            );
            self.append(ka, u64::MAX, MARKER);
            self.append(kb, u64::MAX, MARKER);
        } else {
            // The reader returns a record at the next offset of `ka`, which
            // the writer, invoked after the reader completed, then sends.
            let writer = if name == "G1c-process" { &pa } else { &pb };
            let o = self.append(ka, ma, PENDING);
            self.txns += 2;
            self.emit(out, &pa, "invoke", "txn", r#"[["poll"]]"#);
            self.emit(
                out,
                &pa,
                "ok",
                "txn",
                &format!(r#"[["poll",{{"{na}":[[{o},{ma}]]}}]]"#),
            );
            self.emit(
                out,
                writer,
                "invoke",
                "txn",
                &format!(r#"[["send","{na}",{ma}]]"#),
            );
            self.logs[ka as usize][o as usize].state = COMMITTED;
            self.emit(
                out,
                writer,
                "ok",
                "txn",
                &format!(r#"[["send","{na}",[{o},{ma}]]]"#),
            );
            self.append(ka, u64::MAX, MARKER);
            let _ = nb;
        }
        true
    }

    /// Ends the run: every transaction finishes, one last transaction
    /// writes to every log (so nothing hidden is last), consumers read all.
    fn drain(&mut self, out: &mut Vec<u8>) {
        for i in 0..self.producers.len() {
            if self.producers[i].open.is_some() {
                self.complete(i, out);
            }
        }
        let nkeys = self.keys.len() as u32;
        let mut sends = Vec::new();
        let mut slots = Vec::new();
        for k in 0..nkeys {
            let msg = self.next_msg;
            self.next_msg += 1;
            let o = self.append(k, msg, PENDING);
            sends.push((k, o, msg));
            slots.push((k, o));
        }
        let mut v = String::from("[");
        for (j, (k, _, msg)) in sends.iter().enumerate() {
            if j > 0 {
                v.push(',');
            }
            let _ = write!(v, r#"["send","{}",{msg}]"#, self.keys[*k as usize]);
        }
        v.push(']');
        let p = self.producers[0].process.to_string();
        self.txns += 1;
        self.emit(out, &p, "invoke", "txn", &v);
        self.producers[0].open = Some(Open {
            sent: sends.len(),
            sends,
            slots,
            polls: None,
            fate: Fate::Commit,
        });
        self.complete(0, out);
        for c in 0..self.consumers.len() {
            loop {
                let pending_reread = self.consumers[c].reread.is_some();
                let behind = self.consumers[c]
                    .keys
                    .iter()
                    .zip(&self.consumers[c].pos)
                    .any(|(k, p)| (*p as usize) < self.logs[*k as usize].len());
                if !behind && !pending_reread {
                    break;
                }
                self.consumer_poll(c, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::txn::TxnChecker;
    use proptest::prelude::*;
    use splitbrain_core::history::Op;

    fn generate(opts: TxnSynthOptions) -> (Vec<u8>, BTreeMap<String, u64>) {
        let mut s = TxnSynth::new(opts).unwrap();
        let mut out = Vec::new();
        while s.next_chunk(&mut out) {}
        (out, s.unplaced())
    }

    fn check(text: &[u8]) -> crate::txn::TxnResult {
        let mut c = TxnChecker::new(3);
        for line in std::str::from_utf8(text).unwrap().lines() {
            c.observe(&Op::parse(line).unwrap()).unwrap();
        }
        c.finish()
    }

    /// Every invalidating count is zero except the planted ones, which are
    /// exactly as planted.
    fn exactly(r: &crate::txn::TxnResult, plants: &TxnPlants) -> Result<(), String> {
        for (name, a) in &r.anomalies {
            let want = plants.get(name);
            if !catalog::is_anomaly(name) && want == 0 {
                continue;
            }
            if a.count != want {
                return Err(format!(
                    "{name}: want {want}, got {}: {:?}",
                    a.count, a.examples
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn same_seed_same_history() {
        let opts = TxnSynthOptions {
            txns: 2_000,
            seed: 7,
            ..Default::default()
        };
        assert_eq!(generate(opts.clone()).0, generate(opts).0);
    }

    #[test]
    fn a_clean_history_is_valid_and_kafka_like() {
        let (text, _) = generate(TxnSynthOptions {
            txns: 20_000,
            seed: 1,
            ..Default::default()
        });
        let r = check(&text);
        exactly(&r, &TxnPlants::default()).unwrap();
        // Kafka's normal behaviour shows up, as it does on real clusters.
        assert!(r.anomalies["G0"].count > 0);
        assert!(r.anomalies["int-send-skip"].count > 0);
        assert!(r.counts["txns"] >= 20_000);
        assert!(r.counts["txns-failed"] > 300, "{:?}", r.counts);
        assert!(r.counts["txns-unknown"] > 20, "{:?}", r.counts);
    }

    #[test]
    fn every_plant_at_once_is_found_exactly() {
        let spec: Vec<String> = TXN_PLANTABLE.iter().map(|n| format!("{n}=2")).collect();
        let plants = TxnPlants::parse(&spec.join(",")).unwrap();
        let (text, unplaced) = generate(TxnSynthOptions {
            txns: 20_000,
            seed: 3,
            plants: plants.clone(),
            ..Default::default()
        });
        assert!(unplaced.is_empty(), "{unplaced:?}");
        exactly(&check(&text), &plants).unwrap();
    }

    #[test]
    fn bad_plants_are_refused() {
        assert!(TxnPlants::parse("G0=1").is_err());
        assert!(TxnPlants::parse("G1c").is_err());
        assert!(TxnPlants::parse("G1c=x").is_err());
        assert_eq!(TxnPlants::parse("G1c=1, G1c=2").unwrap().get("G1c"), 3);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn planted_counts_are_found_exactly(
            seed in any::<u64>(),
            counts in proptest::collection::vec(0u64..4, TXN_PLANTABLE.len()),
            keys in 2u32..10,
            producers in 2u32..8,
        ) {
            let plants = TxnPlants(TXN_PLANTABLE.iter().zip(&counts)
                .map(|(n, c)| (n.to_string(), *c)).collect());
            let consumers = 1 + (seed % keys as u64) as u32;
            let opts = TxnSynthOptions {
                txns: 3_000, seed, keys, producers, consumers, plants: plants.clone(),
                ..Default::default()
            };
            let (text, unplaced) = generate(opts);
            prop_assert!(unplaced.is_empty(), "{:?}", unplaced);
            let r = check(&text);
            if let Err(e) = exactly(&r, &plants) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn clean_histories_are_valid(
            seed in any::<u64>(),
            producers in 2u32..8,
            keys in 1u32..6,
            abort in 0.0f64..0.5,
        ) {
            let opts = TxnSynthOptions {
                txns: 2_000, seed, producers, keys, consumers: 1, abort,
                ..Default::default()
            };
            let (text, _) = generate(opts);
            let r = check(&text);
            if let Err(e) = exactly(&r, &TxnPlants::default()) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
