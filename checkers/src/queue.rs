//! The queue checker: lost, duplicated, reordered, phantom and aborted reads
//! of messages in Kafka-like logs, and reconciliation of the dead-letter queue.
//!
//! Semantics follow Jepsen's Kafka checker (`jepsen.tests.kafka`); the names
//! of the anomalies are the ones documented in `docs/results.md`.
//!
//! It is fed one operation at a time ([`QueueChecker::observe`]) and keeps
//! only compact state: per message one fixed-size record (messages are
//! integers, so usually a dense vector indexed by the message), per log a
//! vector indexed by offset, per process its position in each log. Anything
//! that can only be decided once the whole log is known (lost writes, skipped
//! messages, reads of failed sends) is decided in [`QueueChecker::finish`].

use crate::fxhash::FxHashMap;
use crate::verdict::{Anomaly, UNSEEN};
use serde_json::{json, Value};
use splitbrain_core::history::{MessageValue, Op, OpType, OpValue, PollValue};
use std::collections::BTreeMap;

/// Names of the anomalies this checker reports, in report order.
pub const QUEUE_ANOMALIES: &[&str] = &[
    "lost-write",
    UNSEEN,
    "duplicate",
    "inconsistent-offsets",
    "nonmonotonic-poll",
    "poll-skip",
    "nonmonotonic-send",
    "G1a",
    "phantom",
    "dlq-lost",
];

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
/// Read from a log other than the one it was sent to.
const WRONG_KEY: u16 = 1 << 10;

const ACKED: u16 = SEND_OK | REPLAY_OK;
const MAYBE_WRITTEN: u16 = SEND_OK | SEND_INFO | REPLAY_OK | REPLAY_INFO;

/// Everything known about one message. 40 bytes.
#[derive(Clone, Copy)]
struct MsgState {
    /// Interned log it belongs to (`u32::MAX`: not seen yet).
    key: u32,
    flags: u16,
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
        key: u32::MAX,
        flags: 0,
        send_index: NONE,
        read_index: NONE,
        first_offset: NONE,
        last_offset: NONE,
    };
    fn is_empty(&self) -> bool {
        self.key == u32::MAX && self.flags == 0
    }
}

/// Messages by value: a dense vector while the values are dense (the usual
/// case: a counter), a hash map for values far beyond what was seen.
#[derive(Default)]
struct MsgTable {
    dense: Vec<MsgState>,
    dense_used: usize,
    sparse: FxHashMap<u64, MsgState>,
}

impl MsgTable {
    #[inline]
    fn get_mut(&mut self, msg: u64) -> &mut MsgState {
        // A message once put in the sparse part stays there.
        if !self.sparse.is_empty() && self.sparse.contains_key(&msg) {
            return self.sparse.get_mut(&msg).expect("just checked");
        }
        if (msg as usize as u64) == msg && (msg as usize) < self.dense.len() {
            let s = &mut self.dense[msg as usize];
            if s.is_empty() {
                self.dense_used += 1;
            }
            return s;
        }
        // Grow the dense part when that wastes at most about half of it.
        let limit = (self.dense_used as u64).saturating_mul(2) + (1 << 20);
        if msg < limit {
            let new_len = (msg as usize + 1).max(self.dense.len() * 3 / 2);
            self.dense.resize(new_len, MsgState::EMPTY);
            self.dense_used += 1;
            return &mut self.dense[msg as usize];
        }
        self.sparse.entry(msg).or_insert(MsgState::EMPTY)
    }

    fn get(&self, msg: u64) -> Option<&MsgState> {
        if let Some(s) = self.sparse.get(&msg) {
            return Some(s);
        }
        if (msg as usize as u64) == msg && (msg as usize) < self.dense.len() {
            let s = &self.dense[msg as usize];
            return (!s.is_empty()).then_some(s);
        }
        self.sparse.get(&msg)
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &MsgState)> {
        self.dense
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(m, s)| (m as u64, s))
            .chain(self.sparse.iter().map(|(m, s)| (*m, s)))
            .filter(|(_, s)| !s.is_empty())
    }
}

/// One log: which message sits at which offset.
#[derive(Default)]
struct OffsetLog {
    /// `msg + 1` at each offset; 0 where nothing is known.
    slots: Vec<u64>,
    /// Offsets too far beyond the dense part to index densely.
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
    /// Every anomaly of [`QUEUE_ANOMALIES`], zero counts included.
    pub anomalies: BTreeMap<String, Anomaly>,
    /// `sent`, `acknowledged`, `failed`, `unknown`, `read`, `dlq`,
    /// `replayed`, `polls`, `client-ops` (definitions in docs/results.md).
    pub counts: BTreeMap<String, u64>,
}

/// The streaming queue checker. See the module documentation.
pub struct QueueChecker {
    examples: usize,
    key_ids: FxHashMap<String, u32>,
    key_names: Vec<String>,
    msgs: MsgTable,
    logs: Vec<OffsetLog>,
    procs: FxHashMap<u64, ProcState>,
    gaps: Vec<GapCandidate>,
    /// Messages seen at more than two offsets: all their offsets.
    extra_offsets: FxHashMap<u64, Vec<u64>>,
    nonmonotonic_poll: Anomaly,
    nonmonotonic_send: Anomaly,
    polls: u64,
    client_ops: u64,
}

impl QueueChecker {
    /// A checker keeping up to `examples` examples per anomaly.
    pub fn new(examples: usize) -> Self {
        QueueChecker {
            examples,
            key_ids: FxHashMap::default(),
            key_names: Vec::new(),
            msgs: MsgTable::default(),
            logs: Vec::new(),
            procs: FxHashMap::default(),
            gaps: Vec::new(),
            extra_offsets: FxHashMap::default(),
            nonmonotonic_poll: Anomaly::default(),
            nonmonotonic_send: Anomaly::default(),
            polls: 0,
            client_ops: 0,
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

    /// Feeds one operation. Operations the checker does not know are ignored.
    pub fn observe(&mut self, op: &Op<'_>) {
        match op.f.as_ref() {
            "send" | "replay" => {
                if let Some(p) = op.client() {
                    self.client_ops += 1;
                    self.on_send(p, op, op.f == "replay");
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
                if let OpValue::Message(m) = &op.value {
                    let key = self.key_id(&m.key);
                    let s = self.msgs.get_mut(m.msg);
                    if s.key == u32::MAX {
                        s.key = key;
                    }
                    s.flags |= DLQ;
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
    }

    fn on_send(&mut self, p: u64, op: &Op<'_>, replay: bool) {
        let given = match &op.value {
            OpValue::Message(MessageValue { key, msg, offset }) => {
                Some((self.key_id(key), *msg, *offset))
            }
            _ => None,
        };
        let st = self.procs.entry(p).or_default();
        if op.op_type == OpType::Invoke {
            if let Some((key, msg, _)) = given {
                st.in_flight = Some((replay, key, msg, op.index));
                let s = self.msgs.get_mut(msg);
                if s.key == u32::MAX {
                    s.key = key;
                }
                s.flags |= if replay { REPLAYED } else { SENT };
                s.send_index = op.index;
            }
            return;
        }
        // A completion: its own value if it has one, else the invoke's.
        let in_flight = st.in_flight.take();
        let Some((key, msg, offset)) = given.or_else(|| in_flight.map(|(_, k, m, _)| (k, m, None)))
        else {
            return;
        };
        let flag = match (replay, op.op_type) {
            (false, OpType::Ok) => SEND_OK,
            (false, OpType::Fail) => SEND_FAIL,
            (false, _) => SEND_INFO,
            (true, OpType::Ok) => REPLAY_OK,
            (true, OpType::Fail) => REPLAY_FAIL,
            (true, _) => REPLAY_INFO,
        };
        {
            let s = self.msgs.get_mut(msg);
            if s.key == u32::MAX {
                s.key = key;
            }
            s.flags |= flag;
            s.send_index = op.index;
        }
        if op.op_type != OpType::Ok {
            return;
        }
        let Some(offset) = offset else { return };
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
        let s = self.msgs.get_mut(msg);
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
                .entry(msg)
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
                let s = self.msgs.get_mut(msg);
                if s.key == u32::MAX {
                    s.key = key;
                } else if s.key != key {
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
        for (replay, _, msg, _) in in_flight {
            self.msgs.get_mut(msg).flags |= if replay { REPLAY_INFO } else { SEND_INFO };
        }
        let mut anomalies: BTreeMap<String, Anomaly> = QUEUE_ANOMALIES
            .iter()
            .map(|name| (name.to_string(), Anomaly::default()))
            .collect();
        let keys = &self.key_names;

        // The read bound per log (Jepsen's rule): the highest first-position
        // of any message read from it.
        let mut bound = vec![None::<u64>; keys.len()];
        for (_, s) in self.msgs.iter() {
            if s.flags & READ != 0 && s.first_offset != NONE && s.flags & WRONG_KEY == 0 {
                let b = &mut bound[s.key as usize];
                *b = Some(b.map_or(s.first_offset, |b| b.max(s.first_offset)));
            }
        }

        let mut counts: BTreeMap<String, u64> = [
            "sent",
            "acknowledged",
            "failed",
            "unknown",
            "read",
            "dlq",
            "replayed",
        ]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect();
        let mut bump = |name: &str| *counts.get_mut(name).expect("known counter") += 1;

        for (msg, s) in self.msgs.iter() {
            let f = s.flags;
            let key = keys.get(s.key as usize).map(String::as_str).unwrap_or("?");
            if f & SENT != 0 {
                bump("sent");
                if f & SEND_OK == 0 {
                    if f & SEND_INFO != 0 {
                        bump("unknown");
                    } else if f & SEND_FAIL != 0 {
                        bump("failed");
                    }
                }
            }
            if f & ACKED != 0 {
                bump("acknowledged");
            }
            if f & READ != 0 {
                bump("read");
            }
            if f & DLQ != 0 {
                bump("dlq");
            }
            if f & REPLAYED != 0 {
                bump("replayed");
            }

            if f & READ == 0 && f & ACKED != 0 {
                let b = bound[s.key as usize];
                let lost = s.last_offset != NONE && b.is_some_and(|b| s.last_offset <= b);
                if lost {
                    let b = b.expect("checked");
                    let witness = self.logs[s.key as usize].at(b);
                    let witness_read = witness.and_then(|w| self.msgs.get(w)).map(|w| w.read_index);
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
                let offsets = self
                    .extra_offsets
                    .get(&msg)
                    .cloned()
                    .map(|mut v| {
                        v.sort_unstable();
                        v
                    })
                    .unwrap_or_else(|| vec![s.first_offset, s.last_offset]);
                anomalies
                    .get_mut("duplicate")
                    .expect("known")
                    .add(n, || json!({"key": key, "msg": msg, "offsets": offsets}));
            }
            if f & READ != 0 && f & (SENT | REPLAYED) == 0 {
                anomalies.get_mut("phantom").expect("known").add(n, || {
                    json!({"key": key, "msg": msg, "read-op": s.read_index,
                           "why": "no process ever sent it"})
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
            if f & SENT != 0 && f & SEND_OK == 0 && f & READ == 0 {
                let why = if f & DLQ == 0 {
                    "send failed or unknown, never stored in the DLQ"
                } else if f & REPLAYED == 0 {
                    "stored in the DLQ, never replayed"
                } else if f & REPLAY_OK != 0 {
                    "replayed and acknowledged, never read"
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
        counts.insert("polls".into(), self.polls);
        counts.insert("client-ops".into(), self.client_ops);
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
        let text: String = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{{\"index\":{i},\"time\":{},{b}}}\n", i * 10))
            .collect();
        let mut reader = HistoryReader::new(text.as_bytes(), "test.jsonl");
        let mut checker = QueueChecker::new(5);
        while let Some(op) = reader.next_op() {
            checker.observe(&op.expect("test history must be valid"));
        }
        checker.finish()
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
        for name in QUEUE_ANOMALIES {
            let want = expected.iter().find(|(n, _)| n == name).map_or(0, |e| e.1);
            assert_eq!(count(r, name), want, "{name}: {:?}", r.anomalies[*name]);
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
        let r = check(&h(vec![send_ends(0, "q", 1, "fail")]));
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
    fn unfinished_send_counts_as_unknown() {
        let bodies = vec![msg_line(0, "invoke", "send", "q", 1, None)];
        let r = check(&bodies);
        assert_eq!(r.counts["unknown"], 1);
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
