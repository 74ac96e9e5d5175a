//! The effects checker: were the consumers' effects applied exactly once?
//!
//! The verdict comes from the effect store as read back at the end of the
//! run (the `effects` event of process `"effects"`, docs/history.md), not
//! from the consumers' own account (`applied` in their polls):
//!
//! - `effect-duplicate`: a message the store holds more than once;
//! - `effect-lost`: a message never applied although a consumer read it
//!   (an `ok` poll returned it), or although it was acknowledged and the
//!   consumers read its log past its offset. Acknowledged messages nobody
//!   read that far are `unseen` (the queue checker's): the consumers may
//!   not have got there, so their missing effect is no proof of anything.
//!
//! A history without an `effects` event (recorded before the store
//! existed, or by another workload) is judged as before: `effect-duplicate`
//! counts messages named in more than one poll's `applied`, and
//! `effect-lost` is not judged; the count `effects-recorded` is then 0.

use crate::msg_table::{MsgTable, Slot};
use crate::verdict::Anomaly;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::json;
use splitbrain_core::history::{MessageValue, Op, OpType, OpValue};
use std::collections::BTreeMap;

/// Names of the anomalies this checker reports.
pub const EFFECT_ANOMALIES: &[&str] = &["effect-duplicate", "effect-lost"];

const READ: u8 = 1;
const ACKED: u8 = 2;
const NO_KEY: u32 = u32::MAX;

/// What is known of one message. 16 bytes.
#[derive(Clone, Copy)]
struct MsgEffect {
    key: u32,
    flags: u8,
    /// How many polls' `applied` name it (saturating).
    claims: u8,
    /// The offset its acknowledgement gave (`u64::MAX`: none).
    acked_offset: u64,
}

impl Slot for MsgEffect {
    const EMPTY: MsgEffect = MsgEffect {
        key: NO_KEY,
        flags: 0,
        claims: 0,
        acked_offset: u64::MAX,
    };
    fn is_empty(&self) -> bool {
        self.key == NO_KEY && self.flags == 0 && self.claims == 0
    }
}

/// The value of the `effects` event: what the store held at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StoreSummary {
    /// Distinct messages applied.
    #[serde(default)]
    pub messages: u64,
    /// Effects applied in all.
    #[serde(default)]
    pub applications: u64,
    /// Messages applied exactly once: inclusive ranges, ascending.
    #[serde(default)]
    pub once: Vec<(u64, u64)>,
    /// Messages applied more than once: `(msg, times)`, ascending.
    #[serde(default)]
    pub more: Vec<(u64, u64)>,
}

impl StoreSummary {
    /// How many times the store applied `msg`.
    pub fn times(&self, msg: u64) -> u64 {
        if let Ok(i) = self.more.binary_search_by_key(&msg, |(m, _)| *m) {
            return self.more[i].1;
        }
        let i = self.once.partition_point(|(first, _)| *first <= msg);
        u64::from(i > 0 && self.once[i - 1].1 >= msg)
    }

    fn sort(&mut self) {
        self.once.sort_unstable();
        self.more.sort_unstable();
    }
}

/// Result of the effects checker.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectsResult {
    /// Every anomaly of [`EFFECT_ANOMALIES`], zero counts included.
    pub anomalies: BTreeMap<String, Anomaly>,
    /// `effects-recorded` (1 when the history holds the store's summary,
    /// else 0), and with it `applied-messages` and `applications`.
    pub counts: BTreeMap<String, u64>,
}

/// The streaming effects checker. See the module documentation.
pub struct EffectsChecker {
    examples: usize,
    msgs: MsgTable<MsgEffect>,
    key_ids: FxHashMap<String, u32>,
    key_names: Vec<String>,
    /// Per log, the highest offset any consumer read.
    max_read: Vec<Option<u64>>,
    /// Sends in flight per process (a completion without a value takes
    /// its invoke's).
    in_flight: FxHashMap<u64, (u32, u64)>,
    store: Option<StoreSummary>,
    malformed: u64,
}

impl EffectsChecker {
    /// A checker keeping up to `examples` examples per anomaly.
    pub fn new(examples: usize) -> Self {
        EffectsChecker {
            examples,
            msgs: MsgTable::default(),
            key_ids: FxHashMap::default(),
            key_names: Vec::new(),
            max_read: Vec::new(),
            in_flight: FxHashMap::default(),
            store: None,
            malformed: 0,
        }
    }

    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.key_ids.get(key) {
            return *id;
        }
        let id = self.key_names.len() as u32;
        self.key_ids.insert(key.to_string(), id);
        self.key_names.push(key.to_string());
        self.max_read.push(None);
        id
    }

    /// Feeds one operation; those it does not need are ignored.
    pub fn observe(&mut self, op: &Op<'_>) {
        match op.f.as_ref() {
            "send" | "replay" => {
                let Some(p) = op.client() else { return };
                let given = match &op.value {
                    OpValue::Message(MessageValue { key, msg, offset }) => {
                        Some((self.key_id(key), *msg, *offset))
                    }
                    _ => None,
                };
                if op.op_type == OpType::Invoke {
                    if let Some((key, msg, _)) = given {
                        self.in_flight.insert(p, (key, msg));
                    }
                    return;
                }
                let invoked = self.in_flight.remove(&p);
                if op.op_type != OpType::Ok {
                    return;
                }
                let Some((key, msg, offset)) = given.or_else(|| invoked.map(|(k, m)| (k, m, None)))
                else {
                    return;
                };
                let s = self.msgs.get_mut(msg);
                if s.key == NO_KEY {
                    s.key = key;
                }
                s.flags |= ACKED;
                if let Some(o) = offset {
                    s.acked_offset = o;
                }
            }
            "poll" => {
                let (Some(_), OpType::Ok, OpValue::Poll(poll)) =
                    (op.client(), op.op_type, &op.value)
                else {
                    return;
                };
                for (key, pairs) in &poll.records.0 {
                    let key = self.key_id(key);
                    for &(offset, msg) in pairs {
                        let m = &mut self.max_read[key as usize];
                        *m = Some(m.map_or(offset, |x| x.max(offset)));
                        let s = self.msgs.get_mut(msg);
                        if s.key == NO_KEY {
                            s.key = key;
                        }
                        s.flags |= READ;
                    }
                }
                for &msg in &poll.applied {
                    let s = self.msgs.get_mut(msg);
                    s.claims = s.claims.saturating_add(1);
                }
            }
            "effects" => {
                let parsed = match &op.value {
                    OpValue::Other(raw) => serde_json::from_str::<StoreSummary>(raw).ok(),
                    _ => None,
                };
                match parsed {
                    Some(mut summary) => {
                        summary.sort();
                        self.store = Some(summary);
                    }
                    None => self.malformed += 1,
                }
            }
            _ => {}
        }
    }

    fn key_name(&self, key: u32) -> &str {
        self.key_names.get(key as usize).map_or("?", String::as_str)
    }

    /// Decides and returns the result.
    pub fn finish(self) -> EffectsResult {
        let n = self.examples;
        let mut duplicate = Anomaly::default();
        let mut lost = Anomaly::default();
        let mut counts = BTreeMap::new();
        counts.insert("effects-recorded".to_string(), 0);
        if self.malformed > 0 {
            counts.insert("effects-malformed".to_string(), self.malformed);
        }
        match &self.store {
            Some(store) => {
                counts.insert("effects-recorded".to_string(), 1);
                counts.insert("applied-messages".to_string(), store.messages);
                counts.insert("applications".to_string(), store.applications);
                let key_of = |msg: u64| self.msgs.get(msg).map_or("?", |s| self.key_name(s.key));
                for &(msg, times) in &store.more {
                    if times > 1 {
                        duplicate.add(n, || {
                            json!({"key": key_of(msg), "msg": msg, "applied": times,
                                   "from": "store"})
                        });
                    }
                }
                for (msg, s) in self.msgs.iter() {
                    if store.times(msg) > 0 {
                        continue;
                    }
                    let read = s.flags & READ != 0;
                    let read_past = s.flags & ACKED != 0
                        && s.acked_offset != u64::MAX
                        && self.max_read[s.key as usize].is_some_and(|m| m >= s.acked_offset);
                    if read || read_past {
                        let why = if read {
                            "read by a consumer, never applied"
                        } else {
                            "acknowledged, consumers read past its offset, never applied"
                        };
                        lost.add(n, || {
                            json!({"key": self.key_name(s.key), "msg": msg,
                                   "acknowledged": s.flags & ACKED != 0, "why": why})
                        });
                    }
                }
            }
            None => {
                // The consumers' own account, as before the store existed.
                for (msg, s) in self.msgs.iter() {
                    if s.claims > 1 {
                        duplicate.add(n, || {
                            json!({"key": self.key_name(s.key), "msg": msg,
                                   "applied": s.claims, "from": "polls"})
                        });
                    }
                }
            }
        }
        let anomalies = [
            ("effect-duplicate".to_string(), duplicate),
            ("effect-lost".to_string(), lost),
        ]
        .into_iter()
        .collect();
        EffectsResult { anomalies, counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::history::HistoryReader;

    /// Checks a history given as line bodies (after index and time), read
    /// with the real reader so every test history is a valid one.
    fn check(bodies: &[String]) -> EffectsResult {
        let text: String = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{{\"index\":{i},\"time\":{},{b}}}\n", i * 10))
            .collect();
        let mut reader = HistoryReader::new(text.as_bytes(), "test.jsonl");
        let mut checker = EffectsChecker::new(5);
        while let Some(op) = reader.next_op() {
            checker.observe(&op.expect("test history must be valid"));
        }
        checker.finish()
    }

    fn send(p: u64, msg: u64, offset: u64) -> Vec<String> {
        vec![
            format!(
                r#""process":{p},"type":"invoke","f":"send","value":{{"key":"q","msg":{msg}}}"#
            ),
            format!(
                r#""process":{p},"type":"ok","f":"send","value":{{"key":"q","msg":{msg},"offset":{offset}}}"#
            ),
        ]
    }
    /// A poll of log `q` reading `(offset, msg)` pairs and claiming `applied`.
    fn poll(p: u64, records: &[(u64, u64)], applied: &[u64]) -> Vec<String> {
        let recs: Vec<String> = records.iter().map(|(o, m)| format!("[{o},{m}]")).collect();
        let applied: Vec<String> = applied.iter().map(u64::to_string).collect();
        vec![
            format!(r#""process":{p},"type":"invoke","f":"poll","value":null"#),
            format!(
                r#""process":{p},"type":"ok","f":"poll","value":{{"records":{{"q":[{}]}},"applied":[{}]}}"#,
                recs.join(","),
                applied.join(",")
            ),
        ]
    }
    fn effects(once: &str, more: &str) -> Vec<String> {
        vec![format!(
            r#""process":"effects","type":"ok","f":"effects","value":{{"store":"sqlite","messages":0,"applications":0,"once":{once},"more":{more}}}"#
        )]
    }
    fn h(parts: Vec<Vec<String>>) -> Vec<String> {
        parts.into_iter().flatten().collect()
    }
    fn counts(r: &EffectsResult) -> (u64, u64) {
        (
            r.anomalies["effect-duplicate"].count,
            r.anomalies["effect-lost"].count,
        )
    }
    fn three_sent_read_by_two() -> Vec<Vec<String>> {
        // Consumer 10 reads 1 and 2 and crashes before committing; 11
        // re-reads 2 and reads 3.
        vec![
            send(0, 1, 0),
            send(0, 2, 1),
            send(0, 3, 2),
            poll(10, &[(0, 1), (1, 2)], &[1, 2]),
            poll(11, &[(1, 2), (2, 3)], &[3]),
        ]
    }

    #[test]
    fn effect_duplicate_present_and_absent_from_the_store() {
        let mut parts = three_sent_read_by_two();
        parts.push(effects("[[1,1],[3,3]]", "[[2,2]]"));
        let r = check(&h(parts));
        assert_eq!(counts(&r), (1, 0));
        let ex = &r.anomalies["effect-duplicate"].examples[0];
        assert_eq!(
            (ex["msg"].clone(), ex["applied"].clone()),
            (json!(2), json!(2))
        );
        assert_eq!(ex["key"], "q");
        assert_eq!(r.counts["effects-recorded"], 1);
        let mut parts = three_sent_read_by_two();
        parts.push(effects("[[1,3]]", "[]"));
        assert_eq!(counts(&check(&h(parts))), (0, 0));
    }

    /// The store, not the consumers' claims, decides: claims of a double
    /// application the store does not hold are no duplicate, and a
    /// duplicate the consumers did not claim is one.
    #[test]
    fn the_store_overrides_the_consumers_account() {
        let mut parts = three_sent_read_by_two();
        parts.push(poll(12, &[(1, 2)], &[2]));
        let claims_only = h(parts.clone());
        let r = check(&claims_only);
        assert_eq!(counts(&r), (1, 0), "without a store: the claims");
        assert_eq!(r.counts["effects-recorded"], 0);
        parts.push(effects("[[1,3]]", "[]"));
        assert_eq!(counts(&check(&h(parts))), (0, 0));
        let mut parts = three_sent_read_by_two();
        parts.push(effects("[[1,2]]", "[[3,3]]"));
        let r = check(&h(parts));
        assert_eq!(counts(&r), (1, 0));
        assert_eq!(r.anomalies["effect-duplicate"].examples[0]["applied"], 3);
    }

    #[test]
    fn effect_lost_present_and_absent() {
        // Consumer 10 read 1 and 2, committed, crashed before applying; 11
        // read 3 after it: 1 and 2 were read and never applied.
        let base = vec![
            send(0, 1, 0),
            send(0, 2, 1),
            send(0, 3, 2),
            poll(10, &[(0, 1), (1, 2)], &[]),
            poll(11, &[(2, 3)], &[3]),
        ];
        let mut parts = base.clone();
        parts.push(effects("[[3,3]]", "[]"));
        let r = check(&h(parts));
        assert_eq!(counts(&r), (0, 2));
        assert_eq!(
            r.anomalies["effect-lost"].examples[0]["why"],
            "read by a consumer, never applied"
        );
        let mut parts = base;
        parts.push(effects("[[1,3]]", "[]"));
        assert_eq!(counts(&check(&h(parts))), (0, 0));
    }

    /// An acknowledged message nobody read: lost when the consumers read its
    /// log past it, not judged (unseen) when they never got that far.
    #[test]
    fn acknowledged_and_unread_is_lost_only_below_what_was_read() {
        let mut parts = vec![
            send(0, 1, 0),
            send(0, 2, 1),
            send(0, 3, 2),
            poll(10, &[(0, 1), (2, 3)], &[1, 3]),
        ];
        parts.push(effects("[[1,1],[3,3]]", "[]"));
        let r = check(&h(parts));
        assert_eq!(counts(&r), (0, 1));
        assert_eq!(r.anomalies["effect-lost"].examples[0]["msg"], 2);
        assert_eq!(r.anomalies["effect-lost"].examples[0]["acknowledged"], true);
        let mut parts = vec![
            send(0, 1, 0),
            send(0, 2, 1),
            send(0, 3, 2),
            poll(10, &[(0, 1)], &[1]),
        ];
        parts.push(effects("[[1,1]]", "[]"));
        assert_eq!(counts(&check(&h(parts))), (0, 0));
    }

    #[test]
    fn a_malformed_store_summary_is_counted_not_trusted() {
        let mut parts = three_sent_read_by_two();
        parts.push(vec![
            r#""process":"effects","type":"ok","f":"effects","value":{"once":"lots"}"#.to_string(),
        ]);
        let r = check(&h(parts));
        assert_eq!(r.counts["effects-recorded"], 0);
        assert_eq!(r.counts["effects-malformed"], 1);
    }

    #[test]
    fn summary_lookup() {
        let s = StoreSummary {
            messages: 6,
            applications: 7,
            once: vec![(0, 2), (5, 6)],
            more: vec![(3, 2)],
        };
        let times: Vec<u64> = (0..8).map(|m| s.times(m)).collect();
        assert_eq!(times, [1, 1, 1, 2, 0, 1, 1, 0]);
    }
}
