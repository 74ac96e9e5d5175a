//! Anomaly examples in words: one sentence per example, from its fields
//! (shapes in docs/results.md) and the operations it names (`send-op`,
//! `read-op`, `ops`, …), looked up in the history for their process and
//! time, e.g. "msg 1669 sent to queue-1 by process 7, acknowledged at offset
//! 556 at 23.4 s; never read, although queue-1 was read up to offset 3248".

use crate::error::{Result, RunError};
use serde_json::Value;
use splitbrain_checkers::Verdict;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;

/// An operation an example names: who did it, when, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRef {
    /// Nanoseconds since the test started.
    pub time_ns: u64,
    /// The process: a client number or a name.
    pub process: String,
    /// invoke / ok / fail / info.
    pub op_type: String,
    /// The operation.
    pub f: String,
}

/// The operations named by examples, by their `index`.
pub type OpRefs = BTreeMap<u64, OpRef>;

/// Every op index an example names (`*-op` fields and `ops` pairs).
fn named_ops(example: &Value, into: &mut BTreeSet<u64>) {
    if let Value::Object(fields) = example {
        for (k, v) in fields {
            if k.ends_with("-op") {
                if let Some(i) = v.as_u64() {
                    into.insert(i);
                }
            } else if k == "ops" {
                into.extend(v.as_array().into_iter().flatten().filter_map(Value::as_u64));
            }
        }
    }
}

/// Looks up, in a second streaming pass over `history`, the operations the
/// verdict's examples name. A line's `index` is its position (the reader
/// has checked that), so only the named lines are parsed.
pub fn resolve_ops(history: &Path, verdict: &Verdict) -> Result<OpRefs> {
    let mut wanted = BTreeSet::new();
    for a in verdict.anomalies.values() {
        for e in &a.examples {
            named_ops(e, &mut wanted);
        }
    }
    let mut found = OpRefs::new();
    let Some(&last) = wanted.last() else {
        return Ok(found);
    };
    let file = std::fs::File::open(history).map_err(RunError::io(format!(
        "cannot read {} again to describe the examples; check its permissions",
        history.display()
    )))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut index = 0u64;
    while index <= last {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(RunError::io(format!(
                "cannot read {} again to describe the examples",
                history.display()
            )))?;
        if n == 0 {
            break;
        }
        if wanted.contains(&index) {
            if let Ok(op) = serde_json::from_slice::<Value>(&line) {
                found.insert(
                    index,
                    OpRef {
                        time_ns: op["time"].as_u64().unwrap_or(0),
                        process: match &op["process"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                        op_type: op["type"].as_str().unwrap_or("?").to_string(),
                        f: op["f"].as_str().unwrap_or("?").to_string(),
                    },
                );
            }
        }
        index += 1;
    }
    Ok(found)
}

fn secs(ns: u64) -> String {
    format!("{:.1} s", ns as f64 / 1e9)
}

/// A JSON scalar or list as plain text: `3`, `queue-1`, `1, 4`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

/// " (epoch 4)", or nothing when the epoch is unknown.
fn epoch(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        format!(" (epoch {})", text(v))
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "by process 7 at 23.4 s" for an op index, if the op is known.
fn by_at(ops: &OpRefs, index: &Value) -> Option<(String, String)> {
    let op = ops.get(&index.as_u64()?)?;
    Some((op.process.clone(), secs(op.time_ns)))
}

/// The two offsets an order example names (from, to), as text.
fn offset_step(e: &Value) -> (String, String) {
    let offsets = e["offsets"].as_array();
    let at = |i: usize| offsets.and_then(|o| o.get(i)).map(text).unwrap_or_default();
    (at(0), at(1))
}

/// Process and time of the last operation an example names.
fn last_op_at(e: &Value, ops: &OpRefs) -> Option<(String, String)> {
    e["ops"]
        .as_array()
        .and_then(|o| o.last())
        .and_then(|i| by_at(ops, i))
}

/// One sentence for an example of anomaly `name`; `None` for a name this
/// module does not know (the raw JSON is then all there is).
pub fn sentence(name: &str, e: &Value, ops: &OpRefs) -> Option<String> {
    let key = text(&e["key"]);
    let msg = text(&e["msg"]);
    let s = match name {
        "lost-write" | "unseen" => {
            let sent = match by_at(ops, &e["send-op"]) {
                Some((p, t)) => format!(
                    "msg {msg} sent to {key} by process {p}, acknowledged at offset {} at {t}",
                    text(&e["offset"])
                ),
                None => format!(
                    "msg {msg} sent to {key}, acknowledged at offset {}",
                    text(&e["offset"])
                ),
            };
            if name == "lost-write" {
                format!(
                    "{sent}; never read, although {key} was read up to offset {} (msg {})",
                    text(&e["max-read-offset"]),
                    text(&e["max-read-msg"])
                )
            } else if e["max-read-offset"].is_null() {
                format!("{sent}; never read, and nothing of {key} was read: not proof of loss")
            } else {
                format!(
                    "{sent}; never read, but {key} was read only up to offset {}: not proof of loss",
                    text(&e["max-read-offset"])
                )
            }
        }
        "duplicate" | "retry-duplicate" => {
            let attempts = e["attempts"].as_u64().unwrap_or(0);
            let mut how = vec![];
            if e["resent"] == true {
                how.push("re-sent");
            }
            if e["replayed"] == true {
                how.push("replayed from the DLQ");
            }
            let how = if how.is_empty() {
                "sent once".to_string()
            } else {
                how.join(" and ")
            };
            let last = by_at(ops, &e["send-op"])
                .map(|(p, t)| format!(" (last attempt by process {p} at {t})"))
                .unwrap_or_default();
            let verdict = if name == "duplicate" {
                "more copies than attempts that could have written it"
            } else {
                "each copy explained by the workload's own attempts"
            };
            format!(
                "msg {msg} ({how}) is at offsets {} of {key}, with {} that could have written it{last}: {verdict}",
                text(&e["offsets"]),
                plural(attempts, "attempt", "attempts")
            )
        }
        "inconsistent-offsets" => {
            let at = by_at(ops, &e["first-disagreeing-op"])
                .map(|(p, t)| format!(", first seen by process {p} at {t}"))
                .unwrap_or_default();
            format!(
                "offset {} of {key} held different messages in different reads: msgs {}{at}",
                text(&e["offset"]),
                text(&e["msgs"])
            )
        }
        "nonmonotonic-poll" | "nonmonotonic-send" | "poll-skip" => {
            let (from, to) = offset_step(e);
            let when = last_op_at(e, ops)
                .map(|(_, t)| format!(" at {t}"))
                .unwrap_or_default();
            let p = text(&e["process"]);
            match name {
                "nonmonotonic-poll" => format!(
                    "process {p} read {key} at offset {from}, then at offset {to} (msg {msg}){when}: going backwards or repeating"
                ),
                "nonmonotonic-send" => format!(
                    "process {p}'s acknowledged sends to {key} went from offset {from} to offset {to} (msg {msg}){when}: not increasing"
                ),
                _ => {
                    let skipped: Vec<String> = e["skipped"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|pair| format!("msg {} at offset {}", text(&pair[1]), text(&pair[0])))
                        .collect();
                    format!(
                        "process {p} read {key} at offset {from}, then jumped to offset {to}{when}, skipping {}",
                        skipped.join(", ")
                    )
                }
            }
        }
        "G1a" => {
            let read = by_at(ops, &e["read-op"])
                .map(|(p, t)| format!(" by process {p} at {t}"))
                .unwrap_or_default();
            format!("msg {msg} was read from {key}{read}, although every attempt to send it failed")
        }
        "phantom" => {
            let read = by_at(ops, &e["read-op"])
                .map(|(p, t)| format!(" by process {p} at {t}"))
                .unwrap_or_default();
            format!("msg {msg} was read from {key}{read}: {}", text(&e["why"]))
        }
        "dlq-lost" => {
            let sent = by_at(ops, &e["send-op"])
                .map(|(p, t)| format!(" (last by process {p} at {t})"))
                .unwrap_or_default();
            format!(
                "msg {msg} sent to {key}{sent} was never acknowledged and never read: {}",
                text(&e["why"])
            )
        }
        "effect-duplicate" => format!(
            "msg {msg} of {key} was applied {} times across the consumers",
            text(&e["applied"])
        ),
        "effect-lost" => format!(
            "msg {msg} of {key} never reached the consumers' effect store: {}",
            text(&e["why"])
        ),
        "duplicate-leader-epoch" => {
            let epochs: Vec<String> = e["epochs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    let who: Vec<String> = x["leaders"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| format!("{} ({})", text(&l["controller-id"]), text(&l["node"])))
                        .collect();
                    format!("epoch {} by {}", text(&x["epoch"]), who.join(" and "))
                })
                .collect();
            format!(
                "KRaft controllers {} led the metadata quorum in the same leader epoch from {} to {} ({}): {}",
                text(&e["leader-ids"]),
                secs(e["start-ns"].as_u64().unwrap_or(0)),
                secs(e["end-ns"].as_u64().unwrap_or(0)),
                plural(e["samples"].as_u64().unwrap_or(0), "sample", "samples"),
                epochs.join("; ")
            )
        }
        "split-brain" | "multiple-controllers" | "divergent-ensembles" => {
            let span = format!(
                "from {} to {} ({})",
                secs(e["start-ns"].as_u64().unwrap_or(0)),
                secs(e["end-ns"].as_u64().unwrap_or(0)),
                plural(e["samples"].as_u64().unwrap_or(0), "sample", "samples")
            );
            match name {
                "split-brain" => {
                    let sides: Vec<String> = e["leaders"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| {
                            // A KRaft leader (no ZooKeeper server id).
                            if l["leader"].get("controller-id").is_some() {
                                return format!(
                                    "controller {} ({}, epoch {}) backed by voters {}",
                                    text(&l["leader"]["controller-id"]),
                                    text(&l["leader"]["node"]),
                                    text(&l["leader"]["epoch"]),
                                    text(&l["side"])
                                );
                            }
                            format!(
                                "server {} ({}{}) followed by servers {}",
                                text(&l["leader"]["server-id"]),
                                text(&l["leader"]["node"]),
                                match &l["leader"]["epoch"] {
                                    Value::Null => String::new(),
                                    e => format!(", epoch {}", text(e)),
                                },
                                text(&l["side"])
                            )
                        })
                        .collect();
                    format!(
                        "ZooKeeper servers {} each led a quorum {span}: {}",
                        text(&e["leader-ids"]),
                        sides.join("; ")
                    )
                }
                "multiple-controllers" => {
                    let mut how: Vec<String> = e["registered"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            format!(
                                "the ensemble led by server {} (servers {}) registered broker {}{}",
                                text(&r["leader"]),
                                text(&r["servers"]),
                                text(&r["controller"]),
                                epoch(&r["controller-epoch"])
                            )
                        })
                        .collect();
                    for s in e["same-epoch"].as_array().into_iter().flatten() {
                        let holders: Vec<String> = s["controllers"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(b, who)| format!("broker {b} as served by {}", text(who)))
                            .collect();
                        how.push(format!(
                            "controller epoch {} was held by {}",
                            text(&s["controller-epoch"]),
                            holders.join(" and ")
                        ));
                    }
                    if let Some(f) = e["brokers-following"].as_object() {
                        for (leader, brokers) in f {
                            how.push(format!(
                                "brokers {} followed quorum leader {leader}",
                                text(brokers)
                            ));
                        }
                    }
                    format!(
                        "brokers {} acted as Kafka controller at once {span}: {}",
                        text(&e["controller-ids"]),
                        how.join("; ")
                    )
                }
                _ => {
                    let groups: Vec<String> = e["groups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|g| {
                            format!(
                                "servers {} served {}",
                                text(&g["servers"]),
                                text(&g["value"])
                            )
                        })
                        .collect();
                    format!(
                        "ZooKeeper servers served different {} {span}: {}",
                        text(&e["path"]),
                        groups.join("; ")
                    )
                }
            }
        }
        "G0" | "G0-process" | "G0-realtime" | "G1c" | "G1c-process" | "G1c-realtime" => {
            // A cycle: each step is an operation and the edge to the next.
            let steps: Vec<String> = e["cycle"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    format!(
                        "process {}'s transaction (op {}) -{}-> the next: {}",
                        text(&s["process"]),
                        text(&s["op"]),
                        text(&s["edge"]),
                        text(&s["why"])
                    )
                })
                .collect();
            let what = if name.starts_with("G0") {
                "a cycle of transactions ordered by their sends (allowed by Kafka, which does not isolate sends)"
            } else {
                "a cycle of transactions each reading what the other wrote"
            };
            let length = e["length"].as_u64().unwrap_or(steps.len() as u64);
            let end = if (steps.len() as u64) < length {
                format!(
                    "; … and {} more steps back to the first",
                    length - steps.len() as u64
                )
            } else {
                "; back to the first".to_string()
            };
            format!("{what}, {length} long: {}{end}", steps.join("; "))
        }
        "precommitted-read" => {
            let read = by_at(ops, &e["read-op"])
                .map(|(p, t)| format!(" by process {p} at {t}"))
                .unwrap_or_default();
            format!(
                "the transaction{read} polled msg {msg} from {key} at offset {}, which it sent itself before committing",
                text(&e["offset"])
            )
        }
        "int-poll-skip" | "int-send-skip" | "int-nonmonotonic-poll" | "int-nonmonotonic-send" => {
            let (from, to) = offset_step(e);
            let when = last_op_at(e, ops)
                .map(|(_, t)| format!(" (completed at {t})"))
                .unwrap_or_default();
            let p = text(&e["process"]);
            let skipped = || {
                e["skipped"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|pair| format!("msg {} at offset {}", text(&pair[1]), text(&pair[0])))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match name {
                "int-poll-skip" => format!(
                    "one transaction of process {p}{when} polled {key} at offset {from}, then at offset {to}, skipping {}",
                    skipped()
                ),
                "int-send-skip" => format!(
                    "one transaction of process {p}{when} sent to {key} at offsets {from} and {to}, with {} between (another transaction's: normal in Kafka)",
                    skipped()
                ),
                "int-nonmonotonic-poll" => format!(
                    "one transaction of process {p}{when} polled {key} at offset {from}, then at offset {to} (msg {msg}): going backwards or repeating"
                ),
                _ => format!(
                    "one transaction of process {p}{when} sent to {key} at offset {from}, then at offset {to} (msg {msg}): not increasing"
                ),
            }
        }
        _ => return None,
    };
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use splitbrain_checkers::catalog;

    fn ops() -> OpRefs {
        let op = |t: u64, p: &str| OpRef {
            time_ns: t,
            process: p.into(),
            op_type: "ok".into(),
            f: "send".into(),
        };
        OpRefs::from([(10, op(23_400_000_000, "7")), (20, op(30_000_000_000, "5"))])
    }

    /// One example of every anomaly in the catalog, in the checkers' shapes
    /// (checkers/src/queue.rs, splitbrain.rs): a name added to the catalog
    /// fails here until it has an example and a sentence.
    fn example(name: &str) -> Value {
        match name {
            "lost-write" => json!({"key": "queue-1", "msg": 1669, "offset": 556, "send-op": 10,
                                   "max-read-offset": 3248, "max-read-msg": 9001, "max-read-op": 20}),
            "unseen" => json!({"key": "queue-1", "msg": 1669, "offset": 556, "send-op": 10,
                               "max-read-offset": 500}),
            "duplicate" | "retry-duplicate" => {
                json!({"key": "queue-0", "msg": 3, "offsets": [4, 9],
                "attempts": 1, "resent": false, "replayed": false, "send-op": 10})
            }
            "inconsistent-offsets" => json!({"key": "queue-2", "offset": 7, "msgs": [1, 2],
                                             "first-disagreeing-op": 20}),
            "nonmonotonic-poll" | "nonmonotonic-send" => json!({"process": 5, "key": "queue-0",
                "offsets": [9, 4], "msg": 11, "ops": [10, 20]}),
            "poll-skip" => json!({"process": 5, "key": "queue-0", "offsets": [2, 6],
                                  "skipped": [[3, 30], [4, 31]], "ops": [10, 20]}),
            "G1a" => json!({"key": "queue-0", "msg": 8, "send-op": 10, "read-op": 20}),
            "phantom" => json!({"key": "queue-0", "msg": 8, "read-op": 20,
                                "why": "no process ever sent it"}),
            "dlq-lost" => json!({"key": "queue-0", "msg": 8, "send-op": 10,
                                 "why": "stored in the DLQ, never replayed"}),
            "effect-duplicate" => json!({"key": "queue-0", "msg": 8, "applied": 2}),
            "effect-lost" => json!({"key": "queue-0", "msg": 8, "acknowledged": true,
                                    "why": "read by a consumer, never applied"}),
            "split-brain" => json!({"start-ns": 21_000_000_000u64, "end-ns": 39_500_000_000u64,
                "samples": 38, "first-op": 20, "leader-ids": [1, 7],
                "leaders": [{"leader": {"node": "n1", "server-id": 1, "epoch": 1}, "side": [1, 2, 3]},
                            {"leader": {"node": "n7", "server-id": 7, "epoch": 1}, "side": [4, 5, 6, 7]}]}),
            "multiple-controllers" => {
                json!({"start-ns": 21_000_000_000u64, "end-ns": 39_500_000_000u64,
                "samples": 38, "first-op": 20, "controller-ids": [1, 3],
                "registered": [{"leader": 1, "servers": [1, 2, 3], "controller": 1, "controller-epoch": 4},
                               {"leader": 7, "servers": [4, 5, 6, 7], "controller": 3, "controller-epoch": 1}],
                "same-epoch": [{"controller-epoch": 4, "controllers": {"1": ["zk 1 (n1)"], "3": ["zk 4 (n4)"]}}]})
            }
            "divergent-ensembles" => {
                json!({"start-ns": 21_000_000_000u64, "end-ns": 39_500_000_000u64,
                "samples": 38, "first-op": 20, "path": "/controller",
                "groups": [{"value": 1, "leader": 1, "servers": [1, 2, 3]},
                           {"value": 3, "leader": 7, "servers": [4, 5, 6, 7]}]})
            }
            "G0" | "G0-process" | "G0-realtime" | "G1c" | "G1c-process" | "G1c-realtime" => {
                json!({"cycle": [
                    {"op": 10, "process": 7, "edge": "wr",
                     "why": "it sent msg 1 to txn-0 at offset 0, which process 5's transaction (op 20) polled"},
                    {"op": 20, "process": 5, "edge": "wr",
                     "why": "it sent msg 2 to txn-1 at offset 0, which process 7's transaction (op 10) polled"}],
                   "ops": [10, 20]})
            }
            "precommitted-read" => json!({"process": 5, "key": "txn-0", "msg": 8, "offset": 3,
                                          "read-op": 20}),
            "int-poll-skip" | "int-send-skip" => json!({"process": 5, "key": "txn-0",
                "offsets": [2, 6], "skipped": [[3, 30], [4, 31]], "ops": [20]}),
            "int-nonmonotonic-poll" | "int-nonmonotonic-send" => json!({"process": 5,
                "key": "txn-0", "offsets": [9, 4], "msg": 11, "ops": [20]}),
            "duplicate-leader-epoch" => {
                json!({"start-ns": 21_000_000_000u64, "end-ns": 22_000_000_000u64,
                "samples": 3, "first-op": 20, "leader-ids": [1001, 1005],
                "epochs": [{"epoch": 3, "leaders": [{"node": "n1", "controller-id": 1001},
                                                   {"node": "n8", "controller-id": 1005}]}]})
            }
            other => panic!("no example of {other}: add one here and a sentence in words.rs"),
        }
    }

    #[test]
    fn every_catalog_anomaly_has_a_sentence() {
        for name in catalog::names() {
            let s = sentence(name, &example(name), &ops())
                .unwrap_or_else(|| panic!("{name} has no sentence"));
            assert!(!s.contains("?"), "{name}: a field was not found: {s}");
            assert!(s.len() > 30, "{name}: {s}");
        }
        assert_eq!(sentence("no-such-anomaly", &json!({}), &ops()), None);
    }

    #[test]
    fn sentences_say_what_happened() {
        assert_eq!(
            sentence("lost-write", &example("lost-write"), &ops()).unwrap(),
            "msg 1669 sent to queue-1 by process 7, acknowledged at offset 556 at 23.4 s; \
             never read, although queue-1 was read up to offset 3248 (msg 9001)"
        );
        // Without the op (not looked up): still a sentence, without who and when.
        assert_eq!(
            sentence("unseen", &example("unseen"), &OpRefs::new()).unwrap(),
            "msg 1669 sent to queue-1, acknowledged at offset 556; never read, but queue-1 \
             was read only up to offset 500: not proof of loss"
        );
        let d = sentence("duplicate", &example("duplicate"), &ops()).unwrap();
        assert!(
            d.starts_with("msg 3 (sent once) is at offsets 4, 9 of queue-0, with 1 attempt"),
            "{d}"
        );
        let s = sentence("split-brain", &example("split-brain"), &ops()).unwrap();
        assert!(
            s.contains("servers 1, 7 each led a quorum from 21.0 s to 39.5 s (38 samples)"),
            "{s}"
        );
        assert!(
            s.contains("server 7 (n7, epoch 1) followed by servers 4, 5, 6, 7"),
            "{s}"
        );
        let m = sentence(
            "multiple-controllers",
            &example("multiple-controllers"),
            &ops(),
        )
        .unwrap();
        assert!(m.contains("registered broker 3 (epoch 1)"), "{m}");
        assert!(
            m.contains(
                "controller epoch 4 was held by broker 1 as served by zk 1 (n1) and broker 3"
            ),
            "{m}"
        );
    }

    #[test]
    fn the_named_ops_are_looked_up_in_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(
            &path,
            "{\"index\":0,\"time\":5,\"process\":3,\"type\":\"invoke\",\"f\":\"send\",\"value\":null}\n\
             {\"index\":1,\"time\":2500000000,\"process\":3,\"type\":\"ok\",\"f\":\"send\",\"value\":null}\n\
             {\"index\":2,\"time\":2600000000,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"heal\",\"value\":null}\n",
        )
        .unwrap();
        let mut v = Verdict::default();
        let mut a = BTreeMap::new();
        a.insert(
            "lost-write".to_string(),
            splitbrain_checkers::Anomaly {
                count: 1,
                examples: vec![json!({"send-op": 1, "max-read-op": 2})],
            },
        );
        v.merge("queue", a, BTreeMap::new());
        let ops = resolve_ops(&path, &v).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[&1].process, "3");
        assert_eq!(ops[&1].time_ns, 2_500_000_000);
        assert_eq!(ops[&2].process, "nemesis");
    }
}
