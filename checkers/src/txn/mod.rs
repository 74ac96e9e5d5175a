//! The transaction checker: Jepsen's transactional Kafka analysis
//! (`jepsen.tests.kafka`, with Elle's cycle names) over `f: "txn"`
//! operations (docs/history.md, `txn`).
//!
//! Fed one operation at a time ([`TxnChecker::observe`]), it keeps compact
//! state: per message one fixed-size record in a message-indexed table, per
//! transaction one fixed-size record, and the dependency graph's edges as
//! packed integers. What needs the whole history (the logs' orders, lost
//! writes, aborted reads, skips, cycles) is decided in
//! [`TxnChecker::finish`].
//!
//! The dependency graph (module `graph`): `wr` from the writer of every
//! message to every transaction that read it, `ww` between the writers of
//! consecutive messages of one log, `process` between consecutive
//! transactions of a process, `realtime` from a transaction to those
//! invoked after it completed. Kafka does not isolate a transaction's sends
//! from other transactions' sends, so `ww` edges order sends, not
//! transactions: cycles are searched twice, as Jepsen does with and without
//! its `ww-deps` option. Cycles over `ww` (plus `process`/`realtime`) are
//! `G0` (informational, as Jepsen allows them for Kafka); cycles over `wr`
//! (plus `process`/`realtime`) are `G1c` (a violation of read-committed).
//! Details and the reasons in `docs/results.md`.

mod graph;
mod value;

use crate::error::CheckError;
use crate::msg_table::{MsgTable, Slot};
use crate::verdict::Anomaly;
use graph::{pack, Digraph, PROCESS, REALTIME, WR, WW};
use rustc_hash::FxHashMap;
use serde_json::{json, Value};
use splitbrain_core::history::{Op, OpType, OpValue, ProcessRef};
use std::collections::BTreeMap;
use value::MicroOp;

/// The `f` of transactions.
pub const TXN_F: &str = "txn";
/// The `f` of the workload's settings event (process `"workload"`).
pub const SETTINGS_F: &str = "txn-settings";

/// Every name this checker reports, in report order. The last four are
/// shared with the queue checker (the same anomaly over transactional
/// writes): their counts are added to the queue checker's.
pub const TXN_ANOMALIES: &[&str] = &[
    "G0",
    "G0-process",
    "G0-realtime",
    "G1c",
    "G1c-process",
    "G1c-realtime",
    "precommitted-read",
    "int-poll-skip",
    "int-nonmonotonic-poll",
    "int-send-skip",
    "int-nonmonotonic-send",
    "G1a",
    "lost-write",
    "duplicate",
    "inconsistent-offsets",
];

/// The names of [`TXN_ANOMALIES`] that the queue checker reports too.
pub const SHARED_WITH_QUEUE: &[&str] = &["G1a", "lost-write", "duplicate", "inconsistent-offsets"];

/// Steps of a cycle shown in an example (a shortest cycle in a huge
/// component can be long).
const MAX_STEPS: usize = 32;

const NO: u32 = u32::MAX;
const NONE: u64 = u64::MAX;

// Transaction outcomes.
const IN_FLIGHT: u8 = 0;
const OK: u8 = 1;
const INFO: u8 = 2;
const FAIL: u8 = 3;

// Message flags.
const W_OK: u8 = 1;
const W_INFO: u8 = 2;
const W_FAIL: u8 = 4;
/// Read by a transaction that completed `ok`.
const READ_OK: u8 = 8;
/// Seen at several offsets (all of them in `extra_offsets`).
const MULTI: u8 = 16;
/// Read by any transaction (whatever its outcome).
const READ_ANY: u8 = 32;

/// Everything known about one message. 32 bytes.
#[derive(Clone, Copy)]
struct MsgState {
    /// Interned log (`NO`: not seen yet).
    key: u32,
    /// The transaction that wrote it: the latest whose outcome was not
    /// `fail`, else the failed one (`NO`: none known).
    writer: u32,
    /// First offset it was seen at (sends that may have committed, reads).
    offset: u64,
    /// Index of the first `ok` transaction that read it.
    read_index: u64,
    flags: u8,
    /// Write attempts not ended `fail` (saturating).
    attempts: u8,
}

impl Slot for MsgState {
    const EMPTY: MsgState = MsgState {
        key: NO,
        writer: NO,
        offset: NONE,
        read_index: NONE,
        flags: 0,
        attempts: 0,
    };
    fn is_empty(&self) -> bool {
        self.key == NO && self.flags == 0 && self.writer == NO
    }
}

/// One transaction. 32 bytes.
#[derive(Clone, Copy)]
struct Txn {
    invoke_index: u64,
    complete_index: u64,
    process: u64,
    outcome: u8,
    /// It ended `info` and a transaction that ended `ok` read one of its
    /// messages: it must have committed.
    seen: bool,
}

impl Txn {
    /// The operation that names it: its completion, else its invoke.
    fn op(&self) -> u64 {
        if self.complete_index == NONE {
            self.invoke_index
        } else {
            self.complete_index
        }
    }
}

/// A client process.
#[derive(Default)]
struct Proc {
    /// The transaction in flight.
    txn: Option<u32>,
    /// Transactions that had completed `ok` when it was invoked and were
    /// not yet followed by another (the realtime frontier then).
    preds: Vec<u32>,
    /// Its latest transaction that completed `ok`.
    last_ok: Option<u32>,
    /// The in-flight transaction's sends, from its invoke (kept for a
    /// transaction that never completes).
    invoked_sends: Vec<(u32, u64)>,
}

/// Two consecutive reads (or sends) of one log in one transaction whose
/// offsets are not adjacent: a skip if the log holds a message between.
struct Gap {
    key: u32,
    txn: u32,
    lo: u64,
    hi: u64,
}

/// A transaction in flight at the end: its process, id and invoked sends.
type InFlight = (u64, u32, Vec<(u32, u64)>);

/// Result of the transaction checker.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnResult {
    /// Every name of [`TXN_ANOMALIES`], zero counts included.
    pub anomalies: BTreeMap<String, Anomaly>,
    /// `txns`, `txns-ok`, `txns-failed`, `txns-unknown`, `txn-sends`,
    /// `txn-reads`, `txn-micro-ops`, `txn-graph-edges` (docs/results.md).
    pub counts: BTreeMap<String, u64>,
}

/// The streaming transaction checker. See the module documentation.
pub struct TxnChecker {
    examples: usize,
    key_ids: FxHashMap<String, u32>,
    key_names: Vec<String>,
    msgs: MsgTable<MsgState>,
    extra_offsets: FxHashMap<u64, Vec<u64>>,
    txns: Vec<Txn>,
    procs: FxHashMap<u64, Proc>,
    /// Transactions completed `ok` not yet followed by one invoked after.
    frontier: Vec<u32>,
    /// Highest offset per log read by an `ok` transaction: (offset, msg, op).
    max_read: Vec<(u64, u64, u64)>,
    /// Edges: `wr` with the message read, `process`, `realtime` (packed).
    wr: Vec<(u64, u64)>,
    process: Vec<u64>,
    realtime: Vec<u64>,
    /// Reads whose writer had not completed yet: (reader, msg).
    pending_reads: Vec<(u32, u64)>,
    poll_gaps: Vec<Gap>,
    send_gaps: Vec<Gap>,
    int_nonmonotonic_poll: Anomaly,
    int_nonmonotonic_send: Anomaly,
    precommitted_read: Anomaly,
    isolation_level: Option<String>,
    sends: u64,
    reads: u64,
    /// Micro-operations of completed transactions.
    micro_ops: u64,
    // Scratch per completion, kept to reuse the allocations.
    scratch_sent: Vec<(u32, u64)>,
    scratch_send_pos: Vec<(u32, u64)>,
    scratch_poll_pos: Vec<(u32, u64)>,
    scratch_writers: Vec<u32>,
}

impl TxnChecker {
    /// A checker keeping up to `examples` examples per anomaly.
    pub fn new(examples: usize) -> Self {
        TxnChecker {
            examples,
            key_ids: FxHashMap::default(),
            key_names: Vec::new(),
            msgs: MsgTable::default(),
            extra_offsets: FxHashMap::default(),
            txns: Vec::new(),
            procs: FxHashMap::default(),
            frontier: Vec::new(),
            max_read: Vec::new(),
            wr: Vec::new(),
            process: Vec::new(),
            realtime: Vec::new(),
            pending_reads: Vec::new(),
            poll_gaps: Vec::new(),
            send_gaps: Vec::new(),
            int_nonmonotonic_poll: Anomaly::default(),
            int_nonmonotonic_send: Anomaly::default(),
            precommitted_read: Anomaly::default(),
            isolation_level: None,
            sends: 0,
            reads: 0,
            micro_ops: 0,
            scratch_sent: Vec::new(),
            scratch_send_pos: Vec::new(),
            scratch_poll_pos: Vec::new(),
            scratch_writers: Vec::new(),
        }
    }

    /// Whether any transaction (or the settings event) was seen.
    pub fn saw_transactions(&self) -> bool {
        !self.txns.is_empty() || self.isolation_level.is_some()
    }

    /// The consumers' isolation level from the settings event, if any.
    pub fn isolation_level(&self) -> Option<&str> {
        self.isolation_level.as_deref()
    }

    #[inline]
    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.key_ids.get(key) {
            return *id;
        }
        let id = self.key_names.len() as u32;
        self.key_ids.insert(key.to_string(), id);
        self.key_names.push(key.to_string());
        self.max_read.push((NONE, NONE, NONE));
        id
    }

    /// Feeds one operation; operations other than `txn` and the settings
    /// event are ignored.
    ///
    /// Fails on input no verdict can be given for (see [`CheckError`]); the
    /// checker must not be fed further after that.
    pub fn observe(&mut self, op: &Op<'_>) -> Result<(), CheckError> {
        if op.f == TXN_F {
            let Some(p) = op.client() else { return Ok(()) };
            let ops = match &op.value {
                OpValue::Other(raw) => value::parse(raw).map_err(|e| CheckError::MalformedTxn {
                    line: op.index + 1,
                    index: op.index,
                    reason: e.to_string(),
                })?,
                _ => Vec::new(),
            };
            match op.op_type {
                OpType::Invoke => self.on_invoke(p, op.index, &ops),
                t => {
                    let outcome = match t {
                        OpType::Ok => OK,
                        OpType::Fail => FAIL,
                        _ => INFO,
                    };
                    self.on_complete(p, op.index, outcome, &ops)?;
                }
            }
        } else if op.f == SETTINGS_F
            && matches!(&op.process, ProcessRef::Named(n) if n == "workload")
        {
            if let OpValue::Other(raw) = &op.value {
                let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
                let level = v["isolation_level"]
                    .as_str()
                    .or_else(|| v["isolation-level"].as_str());
                self.isolation_level = Some(level.unwrap_or("unknown").to_string());
            }
        }
        Ok(())
    }

    fn on_invoke(&mut self, p: u64, index: u64, ops: &[MicroOp<'_>]) {
        let id = self.txns.len() as u32;
        self.txns.push(Txn {
            invoke_index: index,
            complete_index: NONE,
            process: p,
            outcome: IN_FLIGHT,
            seen: false,
        });
        let mut sends = Vec::new();
        for m in ops {
            if let MicroOp::Send { key, msg, .. } = m {
                sends.push((self.key_id(key), *msg));
            }
        }
        let st = self.procs.entry(p).or_default();
        st.txn = Some(id);
        st.preds.clear();
        st.preds.extend_from_slice(&self.frontier);
        st.invoked_sends = sends;
    }

    /// The order edges into `t` (invoked by `p`) once it completes with
    /// `outcome`, and the realtime frontier after it.
    fn order(&mut self, p: u64, t: u32, outcome: u8) {
        let st = self.procs.get_mut(&p).expect("the caller made it");
        if outcome == FAIL {
            // It did not happen: nothing is ordered after or before it.
            return;
        }
        if let Some(prev) = st.last_ok {
            self.process.push(pack(prev, t));
        }
        for &pred in &st.preds {
            if Some(pred) != st.last_ok {
                self.realtime.push(pack(pred, t));
            }
        }
        if outcome == OK {
            let preds = &st.preds;
            self.frontier.retain(|f| !preds.contains(f));
            self.frontier.push(t);
            st.last_ok = Some(t);
        }
    }

    fn on_complete(
        &mut self,
        p: u64,
        index: u64,
        outcome: u8,
        ops: &[MicroOp<'_>],
    ) -> Result<(), CheckError> {
        let Some(t) = self.procs.get_mut(&p).and_then(|s| s.txn.take()) else {
            // A completion without an invoke: the reader rejects these.
            return Ok(());
        };
        self.micro_ops += ops.len() as u64;
        {
            let txn = &mut self.txns[t as usize];
            txn.complete_index = index;
            txn.outcome = outcome;
        }
        self.order(p, t, outcome);
        if ops.is_empty() {
            // A completion without a value (e.g. `null`): its sends are
            // the invoke's, offsets unknown.
            let sends =
                std::mem::take(&mut self.procs.get_mut(&p).expect("found above").invoked_sends);
            for &(k, msg) in &sends {
                self.sends += 1;
                self.record_write(t, outcome, k, msg, None, index)?;
            }
            return Ok(());
        }
        let mut sent = std::mem::take(&mut self.scratch_sent);
        let mut send_pos = std::mem::take(&mut self.scratch_send_pos);
        let mut poll_pos = std::mem::take(&mut self.scratch_poll_pos);
        let mut writers = std::mem::take(&mut self.scratch_writers);
        sent.clear();
        send_pos.clear();
        poll_pos.clear();
        writers.clear();
        let result = self.on_micro_ops(
            p,
            t,
            index,
            outcome,
            ops,
            &mut sent,
            &mut send_pos,
            &mut poll_pos,
            &mut writers,
        );
        self.scratch_sent = sent;
        self.scratch_send_pos = send_pos;
        self.scratch_poll_pos = poll_pos;
        self.scratch_writers = writers;
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn on_micro_ops(
        &mut self,
        p: u64,
        t: u32,
        index: u64,
        outcome: u8,
        ops: &[MicroOp<'_>],
        sent: &mut Vec<(u32, u64)>,
        send_pos: &mut Vec<(u32, u64)>,
        poll_pos: &mut Vec<(u32, u64)>,
        writers: &mut Vec<u32>,
    ) -> Result<(), CheckError> {
        // Sends first: a poll may name a message this transaction sent
        // later in its list (precommitted-read either way).
        for m in ops {
            let MicroOp::Send { key, msg, offset } = m else {
                continue;
            };
            let k = self.key_id(key);
            self.sends += 1;
            sent.push((k, *msg));
            self.record_write(t, outcome, k, *msg, *offset, index)?;
            if let Some(o) = *offset {
                match send_pos.iter_mut().find(|(kk, _)| *kk == k) {
                    Some((_, last)) => {
                        let prev = *last;
                        *last = o;
                        if o <= prev {
                            let key_name = &self.key_names[k as usize];
                            self.int_nonmonotonic_send.add(self.examples, || {
                                json!({"process": p, "key": key_name, "offsets": [prev, o],
                                       "msg": msg, "ops": [index]})
                            });
                        } else if o > prev + 1 {
                            self.send_gaps.push(Gap {
                                key: k,
                                txn: t,
                                lo: prev,
                                hi: o,
                            });
                        }
                    }
                    None => send_pos.push((k, o)),
                }
            }
        }
        if outcome == IN_FLIGHT {
            return Ok(());
        }
        for m in ops {
            let MicroOp::Poll(records) = m else { continue };
            for (key, pairs) in records {
                let k = self.key_id(key);
                for &(o, msg) in pairs {
                    self.reads += 1;
                    self.record_read(t, outcome, k, o, msg, index, writers);
                    if sent.contains(&(k, msg)) {
                        let key_name = &self.key_names[k as usize];
                        self.precommitted_read.add(self.examples, || {
                            json!({"process": p, "key": key_name, "msg": msg, "offset": o,
                                   "read-op": index})
                        });
                    }
                    match poll_pos.iter_mut().find(|(kk, _)| *kk == k) {
                        Some((_, last)) => {
                            let prev = *last;
                            *last = o;
                            if o <= prev {
                                let key_name = &self.key_names[k as usize];
                                self.int_nonmonotonic_poll.add(self.examples, || {
                                    json!({"process": p, "key": key_name, "offsets": [prev, o],
                                           "msg": msg, "ops": [index]})
                                });
                            } else if o > prev + 1 {
                                self.poll_gaps.push(Gap {
                                    key: k,
                                    txn: t,
                                    lo: prev,
                                    hi: o,
                                });
                            }
                        }
                        None => poll_pos.push((k, o)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Transaction `t` (ended `outcome`) sent `msg` to log `k`.
    fn record_write(
        &mut self,
        t: u32,
        outcome: u8,
        k: u32,
        msg: u64,
        offset: Option<u64>,
        index: u64,
    ) -> Result<(), CheckError> {
        let s = self.msgs.get_mut(msg);
        if s.key == NO {
            s.key = k;
        } else if s.key != k && s.writer != NO {
            let earlier_op = self.txns[s.writer as usize].op();
            return Err(CheckError::MessageInTwoLogs {
                line: index + 1,
                index,
                msg,
                key: self.key_names[k as usize].clone(),
                earlier_key: self.key_names[s.key as usize].clone(),
                earlier_op,
            });
        } else {
            // Only reads named the other log: they read it from the wrong one.
            s.key = k;
        }
        match outcome {
            OK => {
                s.flags |= W_OK;
                s.attempts = s.attempts.saturating_add(1);
                s.writer = t;
            }
            FAIL => {
                s.flags |= W_FAIL;
                if s.writer == NO {
                    s.writer = t;
                }
            }
            _ => {
                s.flags |= W_INFO;
                s.attempts = s.attempts.saturating_add(1);
                if s.flags & W_OK == 0 || s.writer == NO {
                    s.writer = t;
                }
            }
        }
        if outcome != FAIL {
            if let Some(o) = offset {
                self.place(msg, o);
            }
        }
        Ok(())
    }

    /// `msg` was seen at `offset` of its log.
    #[inline]
    fn place(&mut self, msg: u64, offset: u64) {
        let s = self.msgs.get_mut(msg);
        if s.offset == NONE {
            s.offset = offset;
        } else if s.offset != offset {
            let first = s.offset;
            s.flags |= MULTI;
            let all = self.extra_offsets.entry(msg).or_insert_with(|| vec![first]);
            if !all.contains(&offset) {
                all.push(offset);
            }
        }
    }

    /// Transaction `t` (ended `outcome`) read `msg` at `offset` of log `k`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn record_read(
        &mut self,
        t: u32,
        outcome: u8,
        k: u32,
        offset: u64,
        msg: u64,
        index: u64,
        writers: &mut Vec<u32>,
    ) {
        self.place(msg, offset);
        let s = self.msgs.get_mut(msg);
        if s.key == NO {
            s.key = k;
        }
        s.flags |= READ_ANY;
        if outcome == OK {
            if s.flags & READ_OK == 0 {
                s.flags |= READ_OK;
                s.read_index = index;
            }
            let m = &mut self.max_read[k as usize];
            if m.0 == NONE || offset > m.0 {
                *m = (offset, msg, index);
            }
        }
        if outcome == FAIL {
            // An aborted transaction's reads order nothing.
            return;
        }
        let w = s.writer;
        let fail_only = s.flags & (W_OK | W_INFO) == 0;
        if w == NO || self.txns[w as usize].outcome == IN_FLIGHT {
            self.pending_reads.push((t, msg));
        } else if w != t && !fail_only && !writers.contains(&w) {
            writers.push(w);
            self.wr.push((pack(w, t), msg));
        }
    }

    /// Decides everything and returns the result.
    pub fn finish(mut self) -> TxnResult {
        let n = self.examples;
        // Transactions still in flight at the end have an unknown outcome.
        let mut in_flight: Vec<InFlight> = self
            .procs
            .iter_mut()
            .filter_map(|(p, s)| {
                s.txn
                    .take()
                    .map(|t| (*p, t, std::mem::take(&mut s.invoked_sends)))
            })
            .collect();
        in_flight.sort_unstable_by_key(|x| x.1);
        for (p, t, sends) in in_flight {
            self.txns[t as usize].outcome = INFO;
            self.order(p, t, INFO);
            for (k, msg) in sends {
                let index = self.txns[t as usize].invoke_index;
                // The invoke named these logs; a conflict was reported then.
                let _ = self.record_write(t, INFO, k, msg, None, index);
            }
        }
        let mut anomalies: BTreeMap<String, Anomaly> = TXN_ANOMALIES
            .iter()
            .map(|name| (name.to_string(), Anomaly::default()))
            .collect();
        anomalies.insert(
            "int-nonmonotonic-poll".into(),
            std::mem::take(&mut self.int_nonmonotonic_poll),
        );
        anomalies.insert(
            "int-nonmonotonic-send".into(),
            std::mem::take(&mut self.int_nonmonotonic_send),
        );
        anomalies.insert(
            "precommitted-read".into(),
            std::mem::take(&mut self.precommitted_read),
        );

        // An `info` transaction one of whose messages an `ok` one read
        // must have committed.
        for (_, s) in self.msgs.iter() {
            if s.flags & READ_OK != 0 && s.writer != NO {
                let w = &mut self.txns[s.writer as usize];
                if w.outcome == INFO {
                    w.seen = true;
                }
            }
        }
        let txns = &self.txns;
        let committed = |w: u32| {
            w != NO && {
                let t = &txns[w as usize];
                t.outcome == OK || (t.outcome == INFO && t.seen)
            }
        };
        let keys = &self.key_names;

        // Every log's records: (offset, msg), sorted.
        let mut logs: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys.len()];
        for (msg, s) in self.msgs.iter() {
            if s.key == NO || s.offset == NONE {
                continue;
            }
            let log = &mut logs[s.key as usize];
            if s.flags & MULTI != 0 {
                for &o in &self.extra_offsets[&msg] {
                    log.push((o, msg));
                }
            } else {
                log.push((s.offset, msg));
            }
        }
        for log in &mut logs {
            log.sort_unstable();
            log.dedup();
        }
        for (k, log) in logs.iter().enumerate() {
            for w in log.windows(2) {
                if w[0].0 == w[1].0 {
                    anomalies
                        .get_mut("inconsistent-offsets")
                        .expect("known")
                        .add(
                            n,
                            || json!({"key": keys[k], "offset": w[0].0, "msgs": [w[0].1, w[1].1]}),
                        );
                }
            }
        }
        // Version orders: what a committed reader may see. As Jepsen's:
        // messages some poll returned, or whose writer must have committed
        // (an `info` transaction nobody read may have aborted); unlike
        // Jepsen's, without messages only aborted transactions wrote (those
        // are G1a when read, and a reader must skip them).
        let msgs = &self.msgs;
        for log in &mut logs {
            log.retain(|&(_, m)| {
                let Some(s) = msgs.get(m) else { return false };
                let f = s.flags;
                let fail_only = f & W_FAIL != 0 && f & (W_OK | W_INFO) == 0;
                !fail_only && (f & (READ_ANY | W_OK) != 0 || committed(s.writer))
            });
        }

        for (msg, s) in self.msgs.iter() {
            let key = keys.get(s.key as usize).map(String::as_str).unwrap_or("?");
            if s.flags & READ_OK != 0 && s.flags & W_FAIL != 0 && s.flags & (W_OK | W_INFO) == 0 {
                let level = self.isolation_level.clone();
                anomalies.get_mut("G1a").expect("known").add(n, || {
                    json!({"key": key, "msg": msg, "send-op": txns[s.writer as usize].op(),
                           "read-op": s.read_index, "isolation-level": level})
                });
            }
            if s.flags & MULTI != 0 {
                let offsets = &self.extra_offsets[&msg];
                if offsets.len() > usize::from(s.attempts.max(1)) {
                    let mut sorted = offsets.clone();
                    sorted.sort_unstable();
                    anomalies.get_mut("duplicate").expect("known").add(n, || {
                        json!({"key": key, "msg": msg, "offsets": sorted, "attempts": s.attempts,
                               "resent": s.attempts > 1, "replayed": false,
                               "send-op": if s.writer == NO { Value::Null } else { json!(txns[s.writer as usize].op()) }})
                    });
                }
            }
        }

        // Lost writes: committed messages at or below the highest offset an
        // `ok` transaction read, that no `ok` transaction read.
        for (k, log) in logs.iter().enumerate() {
            let (bound, bound_msg, bound_op) = self.max_read[k];
            if bound == NONE {
                continue;
            }
            for &(o, msg) in log {
                if o > bound {
                    break;
                }
                let s = self.msgs.get(msg).expect("in the table");
                if s.flags & READ_OK == 0 && s.offset == o && committed(s.writer) {
                    anomalies.get_mut("lost-write").expect("known").add(n, || {
                        json!({"key": keys[k], "msg": msg, "offset": o,
                               "send-op": txns[s.writer as usize].op(),
                               "max-read-offset": bound, "max-read-msg": bound_msg,
                               "max-read-op": bound_op})
                    });
                }
            }
        }

        // Skips inside one transaction.
        let between = |k: u32, lo: u64, hi: u64| -> Vec<(u64, u64)> {
            let log = &logs[k as usize];
            let start = log.partition_point(|&(o, _)| o <= lo);
            log[start..]
                .iter()
                .take_while(|&&(o, _)| o < hi)
                .take(8)
                .copied()
                .collect()
        };
        for (name, gaps) in [
            ("int-poll-skip", &self.poll_gaps),
            ("int-send-skip", &self.send_gaps),
        ] {
            for g in gaps.iter() {
                let skipped = between(g.key, g.lo, g.hi);
                if !skipped.is_empty() {
                    let t = &txns[g.txn as usize];
                    anomalies.get_mut(name).expect("known").add(n, || {
                        json!({"process": t.process, "key": keys[g.key as usize],
                               "offsets": [g.lo, g.hi], "skipped": skipped, "ops": [t.op()]})
                    });
                }
            }
        }

        // The rest of the graph: reads whose writer completed after them,
        // and `ww` along each version order.
        for &(r, msg) in &self.pending_reads {
            if let Some(s) = self.msgs.get(msg) {
                let fail_only = s.flags & (W_OK | W_INFO) == 0;
                if s.writer != NO && s.writer != r && !fail_only {
                    self.wr.push((pack(s.writer, r), msg));
                }
            }
        }
        self.pending_reads = Vec::new();
        let mut ww: Vec<(u64, u64, u64)> = Vec::new();
        for log in &logs {
            let mut prev: Option<(u64, u32)> = None;
            for &(o, msg) in log {
                let s = self.msgs.get(msg).expect("in the table");
                if s.offset != o || !committed(s.writer) {
                    continue;
                }
                if let Some((pm, pw)) = prev {
                    if pw != s.writer {
                        ww.push((pack(pw, s.writer), pm, msg));
                    }
                }
                prev = Some((msg, s.writer));
            }
        }
        drop(logs);
        ww.sort_unstable_by_key(|e| e.0);
        ww.dedup_by_key(|e| e.0);
        self.wr.sort_unstable_by_key(|e| e.0);
        self.wr.dedup_by_key(|e| e.0);
        self.process.sort_unstable();
        self.process.dedup();
        self.realtime.sort_unstable();
        self.realtime.dedup();
        let edges = (ww.len() + self.wr.len() + self.process.len() + self.realtime.len()) as u64;

        let g0 = self.cycles(WW, &ww, n);
        let g1c = self.cycles(WR, &ww, n);
        for (base, found) in [("G0", g0), ("G1c", g1c)] {
            for (stage, count, examples) in found {
                let name = match stage {
                    0 => base.to_string(),
                    1 => format!("{base}-process"),
                    _ => format!("{base}-realtime"),
                };
                let a = anomalies.get_mut(&name).expect("known");
                a.count += count;
                a.examples.extend(examples);
                a.examples.truncate(n);
            }
        }

        let (mut ok, mut failed, mut unknown) = (0u64, 0u64, 0u64);
        for t in &self.txns {
            match t.outcome {
                OK => ok += 1,
                FAIL => failed += 1,
                _ => unknown += 1,
            }
        }
        let counts = [
            ("txns", self.txns.len() as u64),
            ("txns-ok", ok),
            ("txns-failed", failed),
            ("txns-unknown", unknown),
            ("txn-sends", self.sends),
            ("txn-reads", self.reads),
            ("txn-micro-ops", self.micro_ops),
            ("txn-graph-edges", edges),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        TxnResult { anomalies, counts }
    }

    /// The cycles of the graph of `base` edges (`WW` or `WR`) with the
    /// order edges: per stage (0 base, 1 process, 2 realtime) how many,
    /// and up to `limit` explained.
    fn cycles(&self, base: u8, ww: &[(u64, u64, u64)], limit: usize) -> Vec<(u8, u64, Vec<Value>)> {
        let n = self.txns.len();
        let wr = &self.wr;
        let g = Digraph::from_packed(n, |f: &mut dyn FnMut(u64)| {
            if base == WW {
                ww.iter().for_each(|e| f(e.0));
            } else {
                wr.iter().for_each(|e| f(e.0));
            }
            self.process.iter().for_each(|&e| f(e));
            self.realtime.iter().for_each(|&e| f(e));
        });
        let kinds = |a: u32, b: u32| -> u8 {
            let e = pack(a, b);
            let mut k = 0;
            if base == WW && ww.binary_search_by_key(&e, |x| x.0).is_ok() {
                k |= WW;
            }
            if base == WR && wr.binary_search_by_key(&e, |x| x.0).is_ok() {
                k |= WR;
            }
            if self.process.binary_search(&e).is_ok() {
                k |= PROCESS;
            }
            if self.realtime.binary_search(&e).is_ok() {
                k |= REALTIME;
            }
            k
        };
        let mut out: Vec<(u8, u64, Vec<Value>)> = (0..3).map(|s| (s, 0, Vec::new())).collect();
        let mut comps = graph::components(&g);
        // Report in history order.
        for c in &mut comps {
            c.sort_unstable();
        }
        comps.sort_unstable_by_key(|c| c[0]);
        for comp in comps {
            let Some(cycle) = graph::classify(&g, &comp, base, kinds) else {
                continue;
            };
            let slot = &mut out[cycle.stage as usize];
            slot.1 += 1;
            if slot.2.len() < limit {
                slot.2.push(self.explain(&cycle, ww));
            }
        }
        out
    }

    /// A cycle as a chain of operations and edges, in words.
    fn explain(&self, cycle: &graph::Cycle, ww: &[(u64, u64, u64)]) -> Value {
        // Start at the earliest transaction, for stable examples.
        let start = (0..cycle.nodes.len())
            .min_by_key(|&i| cycle.nodes[i])
            .unwrap_or(0);
        let len = cycle.nodes.len();
        let mut steps = Vec::with_capacity(len.min(MAX_STEPS));
        let mut ops = Vec::with_capacity(len.min(MAX_STEPS));
        for j in 0..len.min(MAX_STEPS) {
            let i = (start + j) % len;
            let (a, b) = (cycle.nodes[i], cycle.nodes[(i + 1) % len]);
            let (ta, tb) = (&self.txns[a as usize], &self.txns[b as usize]);
            let kind = cycle.kinds[i];
            let who = |t: &Txn| format!("process {}'s transaction (op {})", t.process, t.op());
            let at = |msg: u64| {
                let s = self.msgs.get(msg);
                let key = s
                    .and_then(|s| self.key_names.get(s.key as usize))
                    .map(String::as_str)
                    .unwrap_or("?");
                match s.map(|s| s.offset) {
                    Some(o) if o != NONE => format!("{key} at offset {o}"),
                    _ => key.to_string(),
                }
            };
            let (edge, why) = match kind {
                WW => {
                    let (m1, m2) = ww
                        .binary_search_by_key(&pack(a, b), |x| x.0)
                        .map(|i| (ww[i].1, ww[i].2))
                        .unwrap_or((NONE, NONE));
                    (
                        "ww",
                        format!(
                            "it sent msg {m1} to {}; the next message of that log, msg {m2} at offset {}, was sent by {}",
                            at(m1),
                            self.msgs.get(m2).map_or(NONE, |s| s.offset),
                            who(tb)
                        ),
                    )
                }
                WR => {
                    let m = self
                        .wr
                        .binary_search_by_key(&pack(a, b), |x| x.0)
                        .map(|i| self.wr[i].1)
                        .unwrap_or(NONE);
                    (
                        "wr",
                        format!("it sent msg {m} to {}, which {} polled", at(m), who(tb)),
                    )
                }
                PROCESS => (
                    "process",
                    format!(
                        "process {} completed it (op {}) and then invoked its next transaction (op {})",
                        ta.process,
                        ta.op(),
                        tb.invoke_index
                    ),
                ),
                _ => (
                    "realtime",
                    format!(
                        "it completed (op {}) before {} was invoked (op {})",
                        ta.op(),
                        who(tb),
                        tb.invoke_index
                    ),
                ),
            };
            ops.push(ta.op());
            steps.push(json!({"op": ta.op(), "process": ta.process, "edge": edge, "why": why}));
        }
        if len > MAX_STEPS {
            json!({"cycle": steps, "ops": ops, "length": len, "shown": MAX_STEPS})
        } else {
            json!({"cycle": steps, "ops": ops, "length": len})
        }
    }
}

#[cfg(test)]
mod tests;
