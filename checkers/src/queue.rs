//! The queue checker: lost, duplicated, reordered, phantom and aborted reads
//! of messages in Kafka-like logs, and reconciliation of the dead-letter queue.
//!
//! Semantics follow Jepsen's Kafka checker (`jepsen.tests.kafka`); the names
//! of the anomalies are those of [`crate::catalog`] for [`crate::catalog::QUEUE`],
//! documented in `docs/results.md`.
//!
//! It is fed one operation at a time ([`QueueChecker::observe`]) and keeps
//! only compact state: per message one fixed-size record (messages are
//! integers, so usually a dense vector indexed by the message), per log a
//! vector indexed by offset, per process its position in each log. Anything
//! that can only be decided once the whole log is known (lost writes, skipped
//! messages, reads of failed sends) is decided in [`QueueChecker::finish`].

use crate::catalog;
use crate::error::CheckError;
use crate::msg_table::{KeyedMsgTable, KeyedSlot, Slot, NO_KEY};
use crate::verdict::{Anomaly, UNSEEN};
use rustc_hash::FxHashMap;
use serde_json::{json, Value};
use splitbrain_core::history::{MessageValue, Op, OpType, OpValue, PollValue, ProcessRef};
use std::collections::BTreeMap;

/// Names of the anomalies this checker reports, in report order (its rows
/// of [`catalog::ANOMALIES`]).
pub fn anomaly_names() -> impl Iterator<Item = &'static str> {
    catalog::names_of(catalog::QUEUE)
}

const NONE: u64 = u64::MAX;

// Message flags.
const SENT: u16 = 1 << 0;
const SEND_OK: u16 = 1 << 1;
const SEND_FAIL: u16 = 1 << 2;
const SEND_INFO: u16 = 1 << 3;
const REPLAYED: u16 = 1 << 4;
const REPLAY_OK: u16 = 1 << 5;
const REPLAY_FAIL: u16 = 1 << 6;
const REPLAY_INFO: u16 = 1 << 7;
const DLQ: u16 = 1 << 8;
const READ: u16 = 1 << 9;
/// Read from a log other than the one the workload sent it to (only where
/// messages are unique across the test: the `msg` names one message).
const WRONG_KEY: u16 = 1 << 10;
/// `send` invoked more than once (the workload retried it).
const RESENT: u16 = 1 << 11;
/// The workload itself named its log (send, replay or DLQ entry), so
/// another log named for it by the workload is bad input.
const KEY_BY_WORKLOAD: u16 = SENT | REPLAYED | DLQ;

const ACKED: u16 = SEND_OK | REPLAY_OK;
const MAYBE_WRITTEN: u16 = SEND_OK | SEND_INFO | REPLAY_OK | REPLAY_INFO;

/// Everything known about one message. 40 bytes.
#[derive(Clone, Copy)]
struct MsgState {
    /// Interned log it belongs to (`u32::MAX`: not seen yet).
    key: u32,
    flags: u16,
    /// Send and replay attempts that may have written it: invoked and not
    /// ended `fail` (saturating). A copy in a log beyond these is a
    /// `duplicate`; copies up to these are `retry-duplicate`.
    writes: u8,
    /// Index of its latest send/replay operation (for examples).
    send_index: u64,
    /// Index of the first poll that read it.
    read_index: u64,
    /// Lowest and highest offset it was seen at (sends and reads).
    first_offset: u64,
    last_offset: u64,
}

impl MsgState {
    const EMPTY: MsgState = MsgState {
        key: NO_KEY,
        flags: 0,
        writes: 0,
        send_index: NONE,
        read_index: NONE,
        first_offset: NONE,
        last_offset: NONE,
    };
    fn is_empty(&self) -> bool {
        self.key == NO_KEY && self.flags == 0
    }
}

impl Slot for MsgState {
    const EMPTY: MsgState = MsgState::EMPTY;
    fn is_empty(&self) -> bool {
        MsgState::is_empty(self)
    }
}

impl KeyedSlot for MsgState {
    #[inline]
    fn key(&self) -> u32 {
        self.key
    }
    #[inline]
    fn set_key(&mut self, key: u32) {
        self.key = key;
    }
}

/// One log: which message sits at which offset.
#[derive(Default)]
struct OffsetLog {
    /// `msg + 1` at each offset; 0 where nothing is known.
    slots: Vec<u64>,
    /// Offsets too far beyond the dense part to index densely; always at or
    /// beyond `slots.len()` (growing the dense part moves what it covers).
    sparse: BTreeMap<u64, u64>,
    /// Offsets where different messages were seen: all of them, and the
    /// index of the first operation that disagreed.
    conflicts: BTreeMap<u64, (Vec<u64>, u64)>,
}

enum Placed {
    Same,
    New,
    Conflict(u64),
}

impl OffsetLog {
    fn place(&mut self, offset: u64, msg: u64) -> Placed {
        let slot_value = msg.wrapping_add(1);
        let existing = if offset < self.slots.len() as u64 + (1 << 20) {
            let o = offset as usize;
            if o >= self.slots.len() {
                let new_len = (o + 1).max(self.slots.len() * 3 / 2);
                self.slots.resize(new_len, 0);
                self.move_sparse_below(new_len as u64);
            }
            let slot = &mut self.slots[o];
            if *slot == 0 {
                *slot = slot_value;
                return Placed::New;
            }
            *slot
        } else {
            match self.sparse.entry(offset) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(slot_value);
                    return Placed::New;
                }
                std::collections::btree_map::Entry::Occupied(o) => *o.get(),
            }
        };
        if existing == slot_value {
            Placed::Same
        } else {
            Placed::Conflict(existing - 1)
        }
    }

    /// Moves the sparse entries below `len` into the dense part, which now
    /// covers them: lookups of a dense offset read only the dense part.
    fn move_sparse_below(&mut self, len: u64) {
        match self.sparse.first_key_value() {
            Some((first, _)) if *first < len => {}
            _ => return,
        }
        let beyond = self.sparse.split_off(&len);
        for (o, v) in std::mem::replace(&mut self.sparse, beyond) {
            self.slots[o as usize] = v;
        }
    }

    fn at(&self, offset: u64) -> Option<u64> {
        let v = if offset < self.slots.len() as u64 {
            self.slots[offset as usize]
        } else {
            self.sparse.get(&offset).copied().unwrap_or(0)
        };
        (v != 0).then(|| v - 1)
    }

    /// Messages known to sit strictly between two offsets (at most `limit`),
    /// and whether there is at least one.
    fn between(&self, lo: u64, hi: u64, limit: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let dense_end = (self.slots.len() as u64).min(hi);
        let mut o = lo.saturating_add(1);
        while o < dense_end && out.len() < limit {
            if let Some(m) = self.at(o) {
                out.push((o, m));
            }
            o += 1;
        }
        if out.len() < limit && hi > lo + 1 {
            for (o, v) in self.sparse.range(lo + 1..hi) {
                if out.len() >= limit {
                    break;
                }
                out.push((*o, v - 1));
            }
        }
        out
    }
}

/// What one client process is doing and where it is in each log.
#[derive(Default)]
struct ProcState {
    /// The send/replay in flight: (replay?, key, msg, invoke index).
    in_flight: Option<(bool, u32, u64, u64)>,
    /// Per log: offset of the last record it polled, and that poll's index.
    poll_position: FxHashMap<u32, (u64, u64)>,
    /// Per log: offset of its last acknowledged send, and that op's index.
    send_position: FxHashMap<u32, (u64, u64)>,
}

/// A gap between two consecutive reads of one process, checked against the
/// complete log at the end.
struct GapCandidate {
    key: u32,
    process: u64,
    from_offset: u64,
    to_offset: u64,
    ops: [u64; 2],
}

/// Result of the queue checker.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueResult {
    /// Every anomaly of [`anomaly_names`], zero counts included.
    pub anomalies: BTreeMap<String, Anomaly>,
    /// `sent`, `acknowledged`, `failed`, `unknown`, `info-sends`, `resent`,
    /// `read`, `dlq`, `replayed`, `polls`, `client-ops` (definitions in
    /// docs/results.md).
    pub counts: BTreeMap<String, u64>,
}

/// The streaming queue checker. See the module documentation.
pub struct QueueChecker {
    examples: usize,
    key_ids: FxHashMap<String, u32>,
    key_names: Vec<String>,
    /// Per message, by its identity `(log, msg)`.
    msgs: KeyedMsgTable<MsgState>,
    logs: Vec<OffsetLog>,
    procs: FxHashMap<u64, ProcState>,
    gaps: Vec<GapCandidate>,
    /// Messages seen at more than two offsets: all their offsets.
    extra_offsets: FxHashMap<(u32, u64), Vec<u64>>,
    nonmonotonic_poll: Anomaly,
    nonmonotonic_send: Anomaly,
    polls: u64,
    client_ops: u64,
    /// `send` operations that ended `info` (or never completed).
    info_sends: u64,
    /// The workload was stopped at level `now` (a second Ctrl-C): it
    /// skipped the DLQ replay, so a DLQ entry never replayed is unknown,
    /// not lost.
    replay_skipped: bool,
    /// The workload's `config` event said whether it used a DLQ (`None`:
    /// no config event, or one without the field).
    dlq_configured: Option<bool>,
    /// The history holds a `config` event of process `"workload"`.
    config_seen: bool,
    /// The history holds `dlq` events or `replay` operations.
    dlq_seen: bool,
    /// Each `msg` names one message of the whole test (splitbrain's own
    /// format); false when the history's `config` says `"msg-scope":"log"`
    /// (foreign histories number each log apart).
    msgs_unique_per_test: bool,
}

/// The fields of the workload's `config` event the queue checker reads
/// (docs/history.md, Workload events).
#[derive(serde::Deserialize, Default)]
struct WorkloadConfig {
    /// Whether failed sends went to a dead-letter queue.
    #[serde(default)]
    dlq: Option<bool>,
    /// `"test"` (the default) or `"log"`: where a `msg` is unique.
    #[serde(default, rename = "msg-scope")]
    msg_scope: Option<String>,
}

impl QueueChecker {
    /// A checker keeping up to `examples` examples per anomaly.
    pub fn new(examples: usize) -> Self {
        QueueChecker {
            examples,
            key_ids: FxHashMap::default(),
            key_names: Vec::new(),
            msgs: KeyedMsgTable::default(),
            logs: Vec::new(),
            procs: FxHashMap::default(),
            gaps: Vec::new(),
            extra_offsets: FxHashMap::default(),
            nonmonotonic_poll: Anomaly::default(),
            nonmonotonic_send: Anomaly::default(),
            polls: 0,
            client_ops: 0,
            info_sends: 0,
            replay_skipped: false,
            dlq_configured: None,
            config_seen: false,
            dlq_seen: false,
            msgs_unique_per_test: true,
        }
    }

    #[inline]
    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.key_ids.get(key) {
            return *id;
        }
        let id = self.key_names.len() as u32;
        self.key_ids.insert(key.to_string(), id);
        self.key_names.push(key.to_string());
        self.logs.push(OffsetLog::default());
        id
    }

    /// Whether the history's writer used a dead-letter queue, so that a
    /// failed send never read is `dlq-lost` rather than simply a failed send.
    ///
    /// Yes when its `config` event says `"dlq": true`, or when it holds
    /// `dlq` events or `replay` operations (a DLQ was evidently used). A
    /// `config` event of the queue workload without the field (histories
    /// recorded before it existed) also means yes: that workload always had
    /// one. No otherwise: `"dlq": false` without DLQ events, or no `config`
    /// event and no DLQ events (foreign histories, hand-written ones).
    pub fn dlq_in_use(&self) -> bool {
        self.dlq_seen || self.dlq_configured.unwrap_or(self.config_seen)
    }

    /// Feeds one operation. Operations the checker does not know are ignored.
    ///
    /// Fails on input no verdict can be given for (see [`CheckError`]); the
    /// checker must not be fed further after that.
    pub fn observe(&mut self, op: &Op<'_>) -> Result<(), CheckError> {
        match op.f.as_ref() {
            "send" | "replay" => {
                if op.f == "replay" {
                    self.dlq_seen = true;
                }
                if let Some(p) = op.client() {
                    self.client_ops += 1;
                    self.on_send(p, op, op.f == "replay")?;
                }
            }
            "poll" => {
                if let (Some(p), OpType::Ok, OpValue::Poll(poll)) =
                    (op.client(), op.op_type, &op.value)
                {
                    self.client_ops += 1;
                    self.polls += 1;
                    self.on_poll(p, op.index, poll);
                } else if op.client().is_some() {
                    self.client_ops += 1;
                }
            }
            "dlq" => {
                self.dlq_seen = true;
                if let OpValue::Message(m) = &op.value {
                    let key = self.key_id(&m.key);
                    self.claim_key(m.msg, key, op.index)?;
                    let s = self.msgs.get_mut(key, m.msg);
                    if s.send_index == NONE {
                        s.send_index = op.index;
                    }
                    s.flags |= DLQ;
                }
            }
            "stop" if matches!(&op.process, ProcessRef::Named(n) if n == "workload") => {
                if let OpValue::Other(raw) = &op.value {
                    let level = serde_json::from_str::<Value>(raw).ok();
                    if level.as_ref().and_then(|v| v["level"].as_str()) == Some("now") {
                        self.replay_skipped = true;
                    }
                }
            }
            // The settings of whoever wrote the history: the queue workload
            // (process "workload"), a converter ("import": no workload ran,
            // so no final read is due), the generator ("gen-history").
            "config" if op.client().is_none() => {
                self.config_seen |= matches!(&op.process, ProcessRef::Named(n) if n == "workload");
                if let OpValue::Other(raw) = &op.value {
                    let config: WorkloadConfig = serde_json::from_str(raw).unwrap_or_default();
                    self.dlq_configured = config.dlq.or(self.dlq_configured);
                    if config.msg_scope.as_deref() == Some("log") {
                        self.msgs_unique_per_test = false;
                    }
                }
            }
            "assign" | "subscribe" => {
                if let (Some(p), OpType::Ok, OpValue::Other(raw)) =
                    (op.client(), op.op_type, &op.value)
                {
                    // Like Jepsen: keep positions only in logs still assigned.
                    let keys: Vec<String> = serde_json::from_str(raw).unwrap_or_default();
                    let ids: Vec<u32> = keys.iter().map(|k| self.key_id(k)).collect();
                    let st = self.procs.entry(p).or_default();
                    st.poll_position.retain(|k, _| ids.contains(k));
                    st.send_position.retain(|k, _| ids.contains(k));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Records that the workload names log `key` for `msg` (a send or replay
    /// invoke, or a DLQ entry). Where each `msg` names one message of the
    /// test, a second, different log named by the workload is bad input; a
    /// log seen only in reads so far was the wrong log for those reads.
    #[inline]
    fn claim_key(&mut self, msg: u64, key: u32, index: u64) -> Result<(), CheckError> {
        if !self.msgs_unique_per_test {
            return Ok(());
        }
        let Some(first) = self.msgs.first_of_mut(msg) else {
            return Ok(());
        };
        if first.key == key {
            return Ok(());
        }
        if first.flags & KEY_BY_WORKLOAD == 0 {
            first.flags |= WRONG_KEY;
            return Ok(());
        }
        Err(CheckError::MessageInTwoLogs {
            line: index + 1,
            index,
            msg,
            key: self.key_names[key as usize].clone(),
            earlier_key: self.key_names[first.key as usize].clone(),
            earlier_op: first.send_index,
        })
    }

    fn on_send(&mut self, p: u64, op: &Op<'_>, replay: bool) -> Result<(), CheckError> {
        let given = match &op.value {
            OpValue::Message(MessageValue { key, msg, offset }) => {
                Some((self.key_id(key), *msg, *offset))
            }
            _ => None,
        };
        if op.op_type == OpType::Invoke {
            if let Some((key, msg, _)) = given {
                self.claim_key(msg, key, op.index)?;
                let s = self.msgs.get_mut(key, msg);
                if !replay && s.flags & SENT != 0 {
                    s.flags |= RESENT;
                }
                s.flags |= if replay { REPLAYED } else { SENT };
                s.writes = s.writes.saturating_add(1);
                s.send_index = op.index;
                self.procs.entry(p).or_default().in_flight = Some((replay, key, msg, op.index));
            }
            return Ok(());
        }
        // A completion: its own value if it has one, else the invoke's. Its
        // log may differ from the invoke's: the producer records where the
        // client says the message went.
        let st = self.procs.entry(p).or_default();
        let in_flight = st.in_flight.take();
        let Some((key, msg, offset)) = given.or_else(|| in_flight.map(|(_, k, m, _)| (k, m, None)))
        else {
            return Ok(());
        };
        let flag = match (replay, op.op_type) {
            (false, OpType::Ok) => SEND_OK,
            (false, OpType::Fail) => SEND_FAIL,
            (false, _) => SEND_INFO,
            (true, OpType::Ok) => REPLAY_OK,
            (true, OpType::Fail) => REPLAY_FAIL,
            (true, _) => REPLAY_INFO,
        };
        if flag == SEND_INFO {
            self.info_sends += 1;
        }
        // The invoke counted an attempt that may write; a `fail` did not.
        let counted = in_flight.is_some_and(|(_, k, m, _)| m == msg && k == key);
        {
            let s = self.msgs.get_mut(key, msg);
            s.flags |= flag;
            s.send_index = op.index;
            match (counted, op.op_type == OpType::Fail) {
                (true, true) => s.writes = s.writes.saturating_sub(1),
                (false, false) => s.writes = s.writes.saturating_add(1),
                _ => {}
            }
        }
        if op.op_type != OpType::Ok {
            return Ok(());
        }
        let Some(offset) = offset else { return Ok(()) };
        if let Some((last, last_index)) = st.send_position.insert(key, (offset, op.index)) {
            if offset <= last {
                let key_name = &self.key_names[key as usize];
                self.nonmonotonic_send.add(self.examples, || {
                    json!({"process": p, "key": key_name, "offsets": [last, offset],
                           "msg": msg, "ops": [last_index, op.index]})
                });
            }
        }
        self.place(key, offset, msg, op.index);
        Ok(())
    }

    /// Records that `msg` sits at `offset` of log `key`.
    #[inline]
    fn place(&mut self, key: u32, offset: u64, msg: u64, op_index: u64) {
        match self.logs[key as usize].place(offset, msg) {
            Placed::Same => return,
            Placed::New => {}
            Placed::Conflict(other) => {
                let entry = self.logs[key as usize]
                    .conflicts
                    .entry(offset)
                    .or_insert_with(|| (vec![other], op_index));
                if !entry.0.contains(&msg) {
                    entry.0.push(msg);
                }
            }
        }
        let s = self.msgs.get_mut(key, msg);
        if s.first_offset == NONE {
            s.first_offset = offset;
            s.last_offset = offset;
        } else if offset != s.first_offset && offset != s.last_offset {
            let (first, last) = (s.first_offset, s.last_offset);
            s.first_offset = first.min(offset);
            s.last_offset = last.max(offset);
            if first == last {
                // Its second offset: first and last still say everything.
                return;
            }
            let all = self
                .extra_offsets
                .entry((key, msg))
                .or_insert_with(|| vec![first, last]);
            if !all.contains(&offset) {
                all.push(offset);
            }
        }
    }

    fn on_poll(&mut self, p: u64, index: u64, poll: &PollValue<'_>) {
        // A rebalance restarts this consumer's position in every log it names,
        // also when the poll that reports it returned no records (the usual
        // case: librdkafka reports the assignment before fetching).
        if !poll.rebalance.is_empty() {
            if let Some(st) = self.procs.get_mut(&p) {
                for k in &poll.rebalance {
                    if let Some(key) = self.key_ids.get(k.as_str()) {
                        st.poll_position.remove(key);
                    }
                }
            }
        }
        for (key, pairs) in &poll.records.0 {
            let key = self.key_id(key);
            let st = self.procs.entry(p).or_default();
            let mut prev = st.poll_position.get(&key).copied();
            for &(offset, msg) in pairs {
                if let Some((last, last_index)) = prev {
                    if offset <= last {
                        let key_name = &self.key_names[key as usize];
                        self.nonmonotonic_poll.add(self.examples, || {
                            json!({"process": p, "key": key_name, "offsets": [last, offset],
                                   "msg": msg, "ops": [last_index, index]})
                        });
                    } else if offset > last + 1 {
                        self.gaps.push(GapCandidate {
                            key,
                            process: p,
                            from_offset: last,
                            to_offset: offset,
                            ops: [last_index, index],
                        });
                    }
                }
                prev = Some((offset, index));
                self.place(key, offset, msg, index);
                // Where a msg names one message of the test, one the
                // workload sent to another log was read from the wrong one.
                let wrong_log = self.msgs_unique_per_test
                    && self
                        .msgs
                        .first_of(msg)
                        .is_some_and(|f| f.key != key && f.flags & KEY_BY_WORKLOAD != 0);
                let s = self.msgs.get_mut(key, msg);
                if wrong_log {
                    s.flags |= WRONG_KEY;
                }
                if s.flags & READ == 0 {
                    s.flags |= READ;
                    s.read_index = index;
                }
            }
            if let Some(pos) = prev {
                self.procs
                    .get_mut(&p)
                    .expect("inserted above")
                    .poll_position
                    .insert(key, pos);
            }
        }
    }

    /// Decides everything and returns the result.
    pub fn finish(mut self) -> QueueResult {
        let n = self.examples;
        // Sends still in flight at the end have an unknown outcome.
        let in_flight: Vec<_> = self.procs.values().filter_map(|s| s.in_flight).collect();
        for (replay, key, msg, _) in in_flight {
            self.msgs.get_mut(key, msg).flags |= if replay { REPLAY_INFO } else { SEND_INFO };
            if !replay {
                self.info_sends += 1;
            }
        }
        let mut anomalies: BTreeMap<String, Anomaly> = anomaly_names()
            .map(|name| (name.to_string(), Anomaly::default()))
            .collect();
        let keys = &self.key_names;

        // The read bound per log (Jepsen's rule): the highest first-position
        // of any message read from it.
        let mut bound = vec![None::<u64>; keys.len()];
        for (_, s) in self.msgs.iter() {
            if s.flags & READ != 0 && s.first_offset != NONE {
                let b = &mut bound[s.key as usize];
                *b = Some(b.map_or(s.first_offset, |b| b.max(s.first_offset)));
            }
        }

        // Per-message counters in plain integers: a map lookup per message
        // and counter would be most of this loop's time.
        let (mut sent, mut acknowledged, mut failed, mut unknown) = (0u64, 0u64, 0u64, 0u64);
        let (mut resent, mut read, mut dlq, mut replayed) = (0u64, 0u64, 0u64, 0u64);
        let mut dlq_unreplayed = 0u64;
        let has = |f: u16, flag: u16| u64::from(f & flag != 0);
        let dlq_in_use = self.dlq_in_use();

        for (msg, s) in self.msgs.iter() {
            let f = s.flags;
            let key = keys.get(s.key as usize).map(String::as_str).unwrap_or("?");
            resent += has(f, RESENT);
            sent += has(f, SENT);
            if f & SENT != 0 && f & SEND_OK == 0 {
                if f & SEND_INFO != 0 {
                    unknown += 1;
                } else if f & SEND_FAIL != 0 {
                    failed += 1;
                }
            }
            acknowledged += has(f, ACKED);
            read += has(f, READ);
            dlq += has(f, DLQ);
            replayed += has(f, REPLAYED);

            if f & READ == 0 && f & ACKED != 0 {
                let b = bound[s.key as usize];
                let lost = s.last_offset != NONE && b.is_some_and(|b| s.last_offset <= b);
                if lost {
                    let b = b.expect("checked");
                    let witness = self.logs[s.key as usize].at(b);
                    let witness_read = witness
                        .and_then(|w| self.msgs.get(s.key, w))
                        .map(|w| w.read_index);
                    anomalies.get_mut("lost-write").expect("known").add(n, || {
                        json!({"key": key, "msg": msg, "offset": s.last_offset,
                               "send-op": s.send_index, "max-read-offset": b,
                               "max-read-msg": witness, "max-read-op": witness_read})
                    });
                } else {
                    anomalies.get_mut(UNSEEN).expect("known").add(n, || {
                        json!({"key": key, "msg": msg, "offset": offset_json(s.last_offset),
                               "send-op": s.send_index,
                               "max-read-offset": b})
                    });
                }
            }
            if s.first_offset != NONE && s.first_offset != s.last_offset {
                let extra = self.extra_offsets.get(&(s.key, msg));
                let copies = extra.map_or(2, Vec::len);
                // Each attempt that may have written explains one copy; a
                // copy beyond them was made by the broker or client.
                let name = if copies > usize::from(s.writes) {
                    "duplicate"
                } else {
                    "retry-duplicate"
                };
                anomalies.get_mut(name).expect("known").add(n, || {
                    let offsets = extra.cloned().map_or_else(
                        || vec![s.first_offset, s.last_offset],
                        |mut v| {
                            v.sort_unstable();
                            v
                        },
                    );
                    json!({"key": key, "msg": msg, "offsets": offsets,
                           "attempts": s.writes, "resent": f & RESENT != 0,
                           "replayed": f & REPLAYED != 0, "send-op": s.send_index})
                });
            }
            if f & READ != 0 && f & (SENT | REPLAYED) == 0 && f & WRONG_KEY == 0 {
                anomalies.get_mut("phantom").expect("known").add(n, || {
                    json!({"key": key, "msg": msg, "read-op": s.read_index,
                           "why": "no process ever sent it to this log"})
                });
            } else if f & WRONG_KEY != 0 {
                anomalies.get_mut("phantom").expect("known").add(n, || {
                    json!({"key": key, "msg": msg, "read-op": s.read_index,
                           "why": "read from a log it was not sent to"})
                });
            }
            if f & READ != 0 && f & (SEND_FAIL | REPLAY_FAIL) != 0 && f & MAYBE_WRITTEN == 0 {
                anomalies.get_mut("G1a").expect("known").add(n, || {
                    json!({"key": key, "msg": msg, "send-op": s.send_index,
                           "read-op": s.read_index})
                });
            }
            // Acknowledged and never read is `lost-write` or `unseen` above:
            // `dlq-lost` owns only what was never acknowledged at all.
            let unreplayed = f & DLQ != 0 && f & REPLAYED == 0;
            if f & SENT != 0 && f & ACKED == 0 && f & READ == 0 && unreplayed && self.replay_skipped
            {
                // The replay was skipped on request: whether the message is
                // lost cannot be told (it sits in the DLQ journal).
                dlq_unreplayed += 1;
            } else if f & SENT != 0 && f & ACKED == 0 && f & READ == 0 && dlq_in_use {
                // Without a DLQ a failed send never read is simply a failed
                // send (counted in `failed` or `unknown`), not a loss.
                let why = if f & DLQ == 0 {
                    "send failed or unknown, never stored in the DLQ"
                } else if f & REPLAYED == 0 {
                    "stored in the DLQ, never replayed"
                } else {
                    "replayed without acknowledgement, never read"
                };
                anomalies.get_mut("dlq-lost").expect("known").add(
                    n,
                    || json!({"key": key, "msg": msg, "send-op": s.send_index, "why": why}),
                );
            }
        }

        for (k, log) in self.logs.iter().enumerate() {
            for (offset, (msgs, op)) in &log.conflicts {
                anomalies.get_mut("inconsistent-offsets").expect("known").add(n, || {
                    json!({"key": keys[k], "offset": offset, "msgs": msgs, "first-disagreeing-op": op})
                });
            }
        }

        for gap in &self.gaps {
            let skipped = self.logs[gap.key as usize].between(gap.from_offset, gap.to_offset, 8);
            if !skipped.is_empty() {
                let key = &keys[gap.key as usize];
                anomalies.get_mut("poll-skip").expect("known").add(n, || {
                    json!({"process": gap.process, "key": key,
                           "offsets": [gap.from_offset, gap.to_offset],
                           "skipped": skipped, "ops": gap.ops})
                });
            }
        }
        anomalies.insert("nonmonotonic-poll".into(), self.nonmonotonic_poll);
        anomalies.insert("nonmonotonic-send".into(), self.nonmonotonic_send);
        let counts = [
            ("sent", sent),
            ("acknowledged", acknowledged),
            ("failed", failed),
            ("unknown", unknown),
            ("info-sends", self.info_sends),
            ("resent", resent),
            ("read", read),
            ("dlq", dlq),
            ("replayed", replayed),
            ("dlq-unreplayed", dlq_unreplayed),
            ("dlq-in-use", u64::from(dlq_in_use)),
            ("polls", self.polls),
            ("client-ops", self.client_ops),
        ]
        .into_iter()
        .map(|(name, n)| (name.to_string(), n))
        .collect();
        QueueResult { anomalies, counts }
    }
}

fn offset_json(o: u64) -> Value {
    if o == NONE {
        Value::Null
    } else {
        json!(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::history::HistoryReader;

    /// Builds a history from line bodies (everything after index and time),
    /// reads it with the real reader (so every test history is a valid one)
    /// and checks it.
    fn check(bodies: &[String]) -> QueueResult {
        try_check(bodies).expect("test history must be good input")
    }

    fn try_check(bodies: &[String]) -> Result<QueueResult, CheckError> {
        let text: String = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{{\"index\":{i},\"time\":{},{b}}}\n", i * 10))
            .collect();
        let mut reader = HistoryReader::new(text.as_bytes(), "test.jsonl");
        let mut checker = QueueChecker::new(5);
        while let Some(op) = reader.next_op() {
            checker.observe(&op.expect("test history must be valid"))?;
        }
        Ok(checker.finish())
    }

    fn msg_line(p: u64, t: &str, f: &str, key: &str, msg: u64, offset: Option<u64>) -> String {
        let off = offset
            .map(|o| format!(",\"offset\":{o}"))
            .unwrap_or_default();
        format!(
            r#""process":{p},"type":"{t}","f":"{f}","value":{{"key":"{key}","msg":{msg}{off}}}"#
        )
    }
    fn send(p: u64, key: &str, msg: u64, offset: u64) -> Vec<String> {
        vec![
            msg_line(p, "invoke", "send", key, msg, None),
            msg_line(p, "ok", "send", key, msg, Some(offset)),
        ]
    }
    fn send_ends(p: u64, key: &str, msg: u64, t: &str) -> Vec<String> {
        vec![
            msg_line(p, "invoke", "send", key, msg, None),
            msg_line(p, t, "send", key, msg, None),
        ]
    }
    fn replay(p: u64, key: &str, msg: u64, offset: u64) -> Vec<String> {
        vec![
            msg_line(p, "invoke", "replay", key, msg, None),
            msg_line(p, "ok", "replay", key, msg, Some(offset)),
        ]
    }
    fn dlq(key: &str, msg: u64) -> Vec<String> {
        vec![format!(
            r#""process":"dlq","type":"ok","f":"dlq","value":{{"key":"{key}","msg":{msg}}}"#
        )]
    }
    /// A poll of one log; `extra` is appended to the value (e.g. rebalance).
    fn poll_with(
        p: u64,
        key: &str,
        records: &[(u64, u64)],
        applied: &[u64],
        extra: &str,
    ) -> Vec<String> {
        let recs: Vec<String> = records.iter().map(|(o, m)| format!("[{o},{m}]")).collect();
        let applied: Vec<String> = applied.iter().map(u64::to_string).collect();
        vec![
            format!(r#""process":{p},"type":"invoke","f":"poll","value":null"#),
            format!(
                r#""process":{p},"type":"ok","f":"poll","value":{{"records":{{"{key}":[{}]}},"applied":[{}]{extra}}}"#,
                recs.join(","),
                applied.join(",")
            ),
        ]
    }
    fn poll(p: u64, key: &str, records: &[(u64, u64)]) -> Vec<String> {
        let applied: Vec<u64> = records.iter().map(|r| r.1).collect();
        poll_with(p, key, records, &applied, "")
    }
    fn h(parts: Vec<Vec<String>>) -> Vec<String> {
        parts.into_iter().flatten().collect()
    }
    fn count(r: &QueueResult, name: &str) -> u64 {
        r.anomalies[name].count
    }
    /// Asserts the named anomalies have these counts and every other is 0.
    fn assert_only(r: &QueueResult, expected: &[(&str, u64)]) {
        assert_eq!(r.anomalies.len(), anomaly_names().count());
        for name in anomaly_names() {
            let want = expected.iter().find(|(n, _)| *n == name).map_or(0, |e| e.1);
            assert_eq!(count(r, name), want, "{name}: {:?}", r.anomalies[name]);
        }
    }

    fn three_sends() -> Vec<Vec<String>> {
        vec![send(0, "q", 1, 0), send(0, "q", 2, 1), send(0, "q", 3, 2)]
    }

    #[test]
    fn clean_history_has_no_anomalies_and_counts() {
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1), (1, 2), (2, 3)]));
        let r = check(&h(parts));
        assert_only(&r, &[]);
        assert_eq!(r.counts["sent"], 3);
        assert_eq!(r.counts["acknowledged"], 3);
        assert_eq!(r.counts["read"], 3);
        assert_eq!(r.counts["polls"], 1);
    }

    #[test]
    fn lost_write_present_and_absent() {
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1)]));
        parts.push(poll(11, "q", &[(2, 3)]));
        let r = check(&h(parts.clone()));
        assert_only(&r, &[("lost-write", 1)]);
        let ex = &r.anomalies["lost-write"].examples[0];
        assert_eq!(ex["msg"], 2);
        assert_eq!(ex["offset"], 1);
        assert_eq!(ex["max-read-offset"], 2);
        assert_eq!(ex["max-read-msg"], 3);
        parts.push(poll(12, "q", &[(1, 2)]));
        assert_only(&check(&h(parts)), &[]);
    }

    #[test]
    fn unseen_beyond_the_bound_is_not_lost() {
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1)]));
        let r = check(&h(parts.clone()));
        assert_only(&r, &[("unseen", 2)]);
        parts.push(poll(10, "q", &[(1, 2), (2, 3)]));
        assert_only(&check(&h(parts)), &[]);
    }

    #[test]
    fn duplicate_present_and_absent() {
        let parts = vec![
            send(0, "q", 1, 0),
            send(0, "q", 2, 1),
            poll_with(10, "q", &[(0, 1), (1, 2), (2, 1)], &[1, 2], ""),
        ];
        let r = check(&h(parts));
        assert_only(&r, &[("duplicate", 1)]);
        assert_eq!(
            r.anomalies["duplicate"].examples[0]["offsets"],
            json!([0, 2])
        );
    }

    #[test]
    fn retried_copies_are_retry_duplicates_extra_copies_are_duplicates() {
        // Sent once: two copies is a duplicate (above). An `info` send
        // retried by a new process with the same msg: two copies are the
        // workload's own, not an anomaly, and the counts say why.
        let retried = vec![
            send_ends(0, "q", 1, "info"),
            send(1, "q", 2, 1),
            send(2, "q", 1, 2),
            poll_with(10, "q", &[(0, 1), (1, 2), (2, 1)], &[1, 2], ""),
        ];
        let r = check(&h(retried.clone()));
        assert_only(&r, &[("retry-duplicate", 1)]);
        let ex = &r.anomalies["retry-duplicate"].examples[0];
        assert_eq!(ex["offsets"], json!([0, 2]));
        assert_eq!(ex["attempts"], 2);
        assert_eq!(ex["resent"], true);
        assert_eq!(r.counts["info-sends"], 1);
        assert_eq!(r.counts["resent"], 1);
        assert_eq!(r.counts["unknown"], 0);
        // The same retry with a third copy: one more than its attempts.
        let mut three = retried.clone();
        three.push(poll_with(11, "q", &[(3, 1)], &[], ""));
        let r = check(&h(three));
        assert_only(&r, &[("duplicate", 1)]);
        assert_eq!(
            r.anomalies["duplicate"].examples[0]["offsets"],
            json!([0, 2, 3])
        );
        // Retried and written once: neither.
        let once = vec![
            send_ends(0, "q", 1, "info"),
            send(1, "q", 1, 0),
            poll(10, "q", &[(0, 1)]),
        ];
        let r = check(&h(once));
        assert_only(&r, &[]);
        assert_eq!(r.counts["resent"], 1);
    }

    #[test]
    fn replayed_copy_is_retry_duplicate_unless_the_send_surely_failed() {
        let replayed = |first: &str| {
            h(vec![
                send_ends(0, "q", 1, first),
                dlq("q", 1),
                replay(1, "q", 1, 1),
                poll_with(10, "q", &[(0, 1), (1, 1)], &[1], ""),
            ])
        };
        let r = check(&replayed("info"));
        assert_only(&r, &[("retry-duplicate", 1)]);
        assert_eq!(r.anomalies["retry-duplicate"].examples[0]["replayed"], true);
        assert_eq!(r.counts["resent"], 0);
        assert_eq!(r.counts["replayed"], 1);
        // A `fail` send was not written (librdkafka: not persisted), so only
        // the replay explains a copy: the second is a real duplicate.
        assert_only(&check(&replayed("fail")), &[("duplicate", 1)]);
    }

    #[test]
    fn offset_first_stored_sparse_is_found_after_the_log_grows_past_it() {
        let far = (1 << 20) + 10;
        let mut log = OffsetLog::default();
        assert!(matches!(log.place(far, 1), Placed::New));
        assert!(matches!(log.place(5, 2), Placed::New));
        assert!(matches!(log.place((1 << 20) + 5, 3), Placed::New));
        assert!(matches!(log.place((1 << 20) + 11, 4), Placed::New));
        assert!(log.slots.len() as u64 > far, "the dense part now covers it");
        assert_eq!(log.at(far), Some(1));
        assert!(matches!(log.place(far, 1), Placed::Same));
        assert!(matches!(log.place(far, 9), Placed::Conflict(1)));
        assert_eq!(log.between(far - 1, far + 1, 8), vec![(far, 1)]);
    }

    #[test]
    fn offset_first_stored_sparse_still_conflicts_after_growth() {
        let far = (1 << 20) + 10;
        let mut parts = vec![
            send(0, "q", 1, far),
            send(0, "q", 2, 5),
            send(0, "q", 3, (1 << 20) + 5),
            send(0, "q", 4, (1 << 20) + 11),
            send_ends(1, "q", 9, "info"),
        ];
        parts.push(poll(10, "q", &[(5, 2), (far, 9)]));
        let r = check(&h(parts));
        assert_eq!(count(&r, "inconsistent-offsets"), 1, "{r:?}");
        assert_eq!(
            r.anomalies["inconsistent-offsets"].examples[0]["msgs"],
            json!([1, 9])
        );
    }

    #[test]
    fn inconsistent_offsets_present_and_absent() {
        let parts = vec![
            send(0, "q", 1, 0),
            send_ends(1, "q", 2, "info"),
            poll(10, "q", &[(0, 1)]),
            poll(11, "q", &[(0, 2)]),
        ];
        let r = check(&h(parts));
        assert_only(&r, &[("inconsistent-offsets", 1)]);
        assert_eq!(
            r.anomalies["inconsistent-offsets"].examples[0]["msgs"],
            json!([1, 2])
        );
        let parts = vec![
            send(0, "q", 1, 0),
            poll(10, "q", &[(0, 1)]),
            poll(11, "q", &[(0, 1)]),
        ];
        // Two consumers reading the same offset alike: consistent.
        assert_only(&check(&h(parts)), &[]);
    }

    #[test]
    fn nonmonotonic_poll_present_and_absent_after_rebalance() {
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1), (1, 2)]));
        parts.push(poll_with(10, "q", &[(1, 2), (2, 3)], &[3], ""));
        let r = check(&h(parts));
        assert_only(&r, &[("nonmonotonic-poll", 1)]);
        assert_eq!(
            r.anomalies["nonmonotonic-poll"].examples[0]["offsets"],
            json!([1, 1])
        );
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1), (1, 2)]));
        parts.push(poll_with(
            10,
            "q",
            &[(1, 2), (2, 3)],
            &[3],
            r#","rebalance":["q"]"#,
        ));
        assert_only(&check(&h(parts)), &[]);
        // The rebalance reported by a poll that returned nothing still
        // restarts the position: a later jump forward is not a poll-skip,
        // while the same jump without it is.
        let empty_rebalance = vec![
            r#""process":10,"type":"invoke","f":"poll","value":null"#.to_string(),
            r#""process":10,"type":"ok","f":"poll","value":{"records":{},"rebalance":["q"]}"#
                .to_string(),
        ];
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1)]));
        parts.push(empty_rebalance);
        parts.push(poll(10, "q", &[(2, 3)]));
        parts.push(poll(11, "q", &[(1, 2)]));
        assert_only(&check(&h(parts)), &[]);
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1)]));
        parts.push(poll(10, "q", &[(2, 3)]));
        parts.push(poll(11, "q", &[(1, 2)]));
        assert_only(&check(&h(parts)), &[("poll-skip", 1)]);
        // Inside one poll too: 0 -> 2 skips the known offset 1, 2 -> 1 goes back.
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1), (2, 3), (1, 2)]));
        assert_only(
            &check(&h(parts)),
            &[("nonmonotonic-poll", 1), ("poll-skip", 1)],
        );
    }

    #[test]
    fn poll_skip_present_and_absent() {
        let mut parts = three_sends();
        parts.push(poll(10, "q", &[(0, 1)]));
        parts.push(poll(10, "q", &[(2, 3)]));
        parts.push(poll(11, "q", &[(1, 2)]));
        let r = check(&h(parts));
        assert_only(&r, &[("poll-skip", 1)]);
        assert_eq!(
            r.anomalies["poll-skip"].examples[0]["skipped"],
            json!([[1, 2]])
        );
        // A gap where no message is known (e.g. a transaction marker) is fine.
        let parts = vec![
            send(0, "q", 1, 0),
            send(0, "q", 3, 2),
            poll(10, "q", &[(0, 1)]),
            poll(10, "q", &[(2, 3)]),
        ];
        assert_only(&check(&h(parts)), &[]);
    }

    #[test]
    fn nonmonotonic_send_present_and_absent() {
        let parts = vec![
            send(0, "q", 1, 5),
            send(0, "q", 2, 3),
            poll(10, "q", &[(3, 2), (5, 1)]),
        ];
        let r = check(&h(parts));
        assert_only(&r, &[("nonmonotonic-send", 1)]);
        let parts = vec![
            send(0, "q", 2, 3),
            send(0, "q", 1, 5),
            poll(10, "q", &[(3, 2), (5, 1)]),
        ];
        assert_only(&check(&h(parts)), &[]);
    }

    #[test]
    fn g1a_present_and_absent_when_replayed() {
        let parts = vec![send_ends(0, "q", 1, "fail"), poll(10, "q", &[(0, 1)])];
        assert_only(&check(&h(parts)), &[("G1a", 1)]);
        let parts = vec![
            send_ends(0, "q", 1, "fail"),
            dlq("q", 1),
            replay(0, "q", 1, 0),
            poll(10, "q", &[(0, 1)]),
        ];
        let r = check(&h(parts));
        assert_only(&r, &[]);
        assert_eq!(r.counts["failed"], 1);
        assert_eq!(r.counts["dlq"], 1);
        assert_eq!(r.counts["replayed"], 1);
    }

    #[test]
    fn phantom_present_and_absent() {
        let parts = vec![send(0, "q", 1, 0), poll(10, "q", &[(0, 1), (1, 99)])];
        let r = check(&h(parts));
        assert_only(&r, &[("phantom", 1)]);
        assert_eq!(r.anomalies["phantom"].examples[0]["msg"], 99);
        // Read from another log than the one it was sent to.
        let parts = vec![send(0, "q", 1, 0), poll(10, "other", &[(0, 1)])];
        let r = check(&h(parts));
        assert_eq!(count(&r, "phantom"), 1);
    }

    #[test]
    fn dlq_lost_cases_and_absence() {
        let r = check(&h(vec![
            config(r#"{"dlq":true}"#),
            send_ends(0, "q", 1, "fail"),
        ]));
        assert_only(&r, &[("dlq-lost", 1)]);
        assert!(r.anomalies["dlq-lost"].examples[0]["why"]
            .as_str()
            .unwrap()
            .contains("never stored"));
        let r = check(&h(vec![send_ends(0, "q", 1, "info"), dlq("q", 1)]));
        assert_only(&r, &[("dlq-lost", 1)]);
        assert_eq!(r.counts["unknown"], 1);
        let r = check(&h(vec![
            send_ends(0, "q", 1, "info"),
            dlq("q", 1),
            replay(1, "q", 1, 0),
            poll(10, "q", &[(0, 1)]),
        ]));
        assert_only(&r, &[]);
    }

    #[test]
    fn dlq_entry_left_by_a_skipped_replay_is_unknown_not_lost() {
        let stop = |level: &str| {
            format!(r#""process":"workload","type":"ok","f":"stop","value":{{"level":"{level}"}}"#)
        };
        // Stopped at `load`: the replay still runs, so an entry it never
        // replayed is lost.
        let mut bodies = h(vec![send_ends(0, "q", 1, "info"), dlq("q", 1)]);
        bodies.insert(0, stop("load"));
        let r = check(&bodies);
        assert_only(&r, &[("dlq-lost", 1)]);
        assert_eq!(r.counts["dlq-unreplayed"], 0);
        // Stopped at `now`: the replay was skipped on request; unknown.
        let mut bodies = h(vec![send_ends(0, "q", 1, "info"), dlq("q", 1)]);
        bodies.insert(0, stop("now"));
        let r = check(&bodies);
        assert_only(&r, &[]);
        assert_eq!(r.counts["dlq-unreplayed"], 1);
        // A send that never reached the DLQ is lost even then.
        let mut bodies = h(vec![config("{}"), send_ends(0, "q", 1, "fail")]);
        bodies.insert(1, stop("now"));
        assert_only(&check(&bodies), &[("dlq-lost", 1)]);
    }

    /// The workload's `config` event with this value.
    fn config(value: &str) -> Vec<String> {
        vec![format!(
            r#""process":"workload","type":"ok","f":"config","value":{value}"#
        )]
    }

    #[test]
    fn failed_send_never_read_is_dlq_lost_only_when_a_dlq_was_in_use() {
        let failed = || vec![send(0, "q", 1, 0), send_ends(1, "q", 2, "fail")];
        let failed_and = |first: Vec<String>| {
            let mut parts = vec![first];
            parts.extend(failed());
            parts.push(send_ends(2, "q", 3, "info"));
            parts.push(poll(10, "q", &[(0, 1)]));
            h(parts)
        };
        // Said so by the config: the failed and the unknown send are lost.
        let r = check(&failed_and(config(r#"{"dlq":true,"options":{}}"#)));
        assert_only(&r, &[("dlq-lost", 2)]);
        assert_eq!(r.counts["dlq-in-use"], 1);
        // The queue workload's config from before the field: it had a DLQ.
        let r = check(&failed_and(config(r#"{"options":{}}"#)));
        assert_only(&r, &[("dlq-lost", 2)]);
        // Said otherwise: simply a failed and an unknown send.
        let r = check(&failed_and(config(r#"{"dlq":false}"#)));
        assert_only(&r, &[]);
        assert_eq!((r.counts["failed"], r.counts["unknown"]), (1, 1));
        assert_eq!(r.counts["dlq-in-use"], 0);
        // No config and no DLQ events (a foreign history): no DLQ.
        let mut no_config = failed();
        no_config.push(poll(10, "q", &[(0, 1)]));
        let r = check(&h(no_config));
        assert_only(&r, &[]);
        assert_eq!(r.counts["dlq-in-use"], 0);
        // No config, but DLQ events: a DLQ was evidently used.
        let mut with_dlq = failed();
        with_dlq.push(send_ends(2, "q", 3, "info"));
        with_dlq.push(dlq("q", 3));
        with_dlq.push(poll(10, "q", &[(0, 1)]));
        let r = check(&h(with_dlq));
        assert_only(&r, &[("dlq-lost", 2)]);
        assert_eq!(r.counts["dlq-in-use"], 1);
    }

    #[test]
    fn acknowledged_replay_never_read_is_lost_write_or_unseen_not_dlq_lost() {
        let replayed_unread = vec![
            send_ends(0, "q", 1, "info"),
            dlq("q", 1),
            replay(1, "q", 1, 0),
        ];
        // Read beyond it: lost-write owns it.
        let mut parts = replayed_unread.clone();
        parts.push(send(2, "q", 2, 1));
        parts.push(poll(10, "q", &[(1, 2)]));
        let r = check(&h(parts));
        assert_only(&r, &[("lost-write", 1)]);
        assert_eq!(r.anomalies["lost-write"].examples[0]["msg"], 1);
        // Nothing read beyond it: unseen owns it.
        let r = check(&h(replayed_unread));
        assert_only(&r, &[("unseen", 1)]);
        // Never acknowledged at all: dlq-lost owns it, and only it.
        let r = check(&h(vec![
            send_ends(0, "q", 1, "info"),
            dlq("q", 1),
            send_ends(1, "q", 1, "info")
                .into_iter()
                .map(|l| l.replace("send", "replay"))
                .collect(),
            send(2, "q", 2, 1),
            poll(10, "q", &[(1, 2)]),
        ]));
        assert_only(&r, &[("dlq-lost", 1)]);
        assert!(r.anomalies["dlq-lost"].examples[0]["why"]
            .as_str()
            .unwrap()
            .contains("replayed without acknowledgement"));
    }

    #[test]
    fn one_msg_sent_to_two_logs_is_bad_input_naming_the_line() {
        let parts = vec![send(0, "a", 1, 0), send(1, "b", 1, 0)];
        let err = try_check(&h(parts)).unwrap_err();
        assert_eq!(
            err,
            CheckError::MessageInTwoLogs {
                line: 3,
                index: 2,
                msg: 1,
                key: "b".into(),
                earlier_key: "a".into(),
                earlier_op: 1,
            }
        );
        assert!(err.to_string().starts_with("line 3 (operation 2): msg 1"));
        // A DLQ entry naming another log than the send did, too.
        let parts = vec![send_ends(0, "a", 1, "fail"), dlq("b", 1)];
        assert!(matches!(
            try_check(&h(parts)),
            Err(CheckError::MessageInTwoLogs { line: 3, .. })
        ));
        // Sent to one log twice, and read from another: good input, and a
        // phantom read.
        let parts = vec![
            send_ends(0, "a", 1, "info"),
            send(1, "a", 1, 0),
            poll(10, "b", &[(0, 1)]),
        ];
        let r = try_check(&h(parts)).expect("one log per msg");
        assert_eq!(count(&r, "phantom"), 1);
        // Read from a log before it was sent to another one: the send's log
        // counts, and the read (in log b) was a phantom.
        let parts = vec![poll(10, "b", &[(0, 1)]), send(1, "a", 1, 0)];
        let r = try_check(&h(parts)).expect("one log per msg");
        assert_eq!(count(&r, "phantom"), 1);
        assert_eq!(r.anomalies["phantom"].examples[0]["key"], "b");
        assert_eq!(
            r.anomalies["phantom"].examples[0]["why"],
            "read from a log it was not sent to"
        );
    }

    /// A history whose `config` says msgs are unique per log only.
    fn per_log(parts: Vec<Vec<String>>) -> Vec<String> {
        let mut all = vec![config(r#"{"msg-scope":"log"}"#)];
        all.extend(parts);
        h(all)
    }

    #[test]
    fn per_log_msgs_repeat_across_logs_and_are_judged_apart() {
        // The same numbers in two logs: two messages each, all read.
        let parts = || {
            vec![
                send(0, "a", 1, 0),
                send(0, "b", 1, 0),
                send(0, "a", 2, 1),
                send(0, "b", 2, 1),
            ]
        };
        let mut clean = parts();
        clean.push(poll(10, "a", &[(0, 1), (1, 2)]));
        clean.push(poll(10, "b", &[(0, 1), (1, 2)]));
        let r = check(&per_log(clean.clone()));
        assert_only(&r, &[]);
        assert_eq!((r.counts["sent"], r.counts["read"]), (4, 4));
        // The same history in splitbrain's own format is bad input.
        assert!(matches!(
            try_check(&h(clean)),
            Err(CheckError::MessageInTwoLogs { .. })
        ));
        // Message 1 of log b lost (log a's 1 was read): one lost-write, in b.
        let mut lost = parts();
        lost.push(poll(10, "a", &[(0, 1), (1, 2)]));
        lost.push(poll(10, "b", &[(1, 2)]));
        let r = check(&per_log(lost));
        assert_only(&r, &[("lost-write", 1)]);
        assert_eq!(r.anomalies["lost-write"].examples[0]["key"], "b");
        // A value repeated within one log is still a duplicate.
        let mut dup = parts();
        dup.push(poll(10, "a", &[(0, 1), (1, 2), (2, 1)]));
        dup.push(poll(10, "b", &[(0, 1), (1, 2)]));
        let r = check(&per_log(dup));
        assert_only(&r, &[("duplicate", 1)]);
        assert_eq!(r.anomalies["duplicate"].examples[0]["key"], "a");
        // Read from a log it was never sent to: a phantom there.
        let mut phantom = parts();
        phantom.push(poll(10, "a", &[(0, 1), (1, 2)]));
        phantom.push(poll(10, "b", &[(0, 1), (1, 2)]));
        phantom.push(poll(11, "c", &[(0, 2)]));
        let r = check(&per_log(phantom));
        assert_only(&r, &[("phantom", 1)]);
        assert_eq!(r.anomalies["phantom"].examples[0]["key"], "c");
        // An offset of one log holding different messages: per log.
        let mut conflict = parts();
        conflict.push(poll(10, "a", &[(0, 1), (1, 2)]));
        conflict.push(poll(10, "b", &[(0, 2), (1, 2)]));
        let r = check(&per_log(conflict));
        assert_eq!(count(&r, "inconsistent-offsets"), 1);
    }

    #[test]
    fn unfinished_send_counts_as_unknown() {
        let bodies = h(vec![
            config("{}"),
            vec![msg_line(0, "invoke", "send", "q", 1, None)],
        ]);
        let r = check(&bodies);
        assert_eq!(r.counts["unknown"], 1);
        assert_eq!(r.counts["info-sends"], 1);
        assert_only(&r, &[("dlq-lost", 1)]);
    }

    #[test]
    fn completion_without_value_uses_the_invoke() {
        let bodies = vec![
            msg_line(0, "invoke", "send", "q", 1, None),
            r#""process":0,"type":"fail","f":"send","value":null"#.to_string(),
        ];
        let r = check(&bodies);
        assert_eq!(r.counts["failed"], 1);
    }

    #[test]
    fn message_state_stays_40_bytes() {
        // The checker's memory per message (docs: <= 100 bytes/op in all).
        assert_eq!(std::mem::size_of::<MsgState>(), 40);
    }

    #[test]
    fn sparse_message_values_and_offsets_work() {
        let big = 1u64 << 50;
        let parts = vec![
            send(0, "q", big, 1 << 40),
            send(0, "q", 5, (1 << 40) + 1),
            poll(10, "q", &[(1 << 40, big), ((1 << 40) + 1, 5)]),
        ];
        assert_only(&check(&h(parts)), &[]);
    }
}
