//! Kafka's verifiable clients: `org.apache.kafka.tools.VerifiableProducer`
//! and `VerifiableConsumer` (the latter run with `--verbose`), one JSON
//! object per line on their standard output. The mapping to a history is
//! documented in docs/history.md, "Kafka's verifiable clients".
//!
//! In short: every producer event is a `send` (an invoke and its completion
//! at the event's time); every consumer's `records_consumed` is one `poll`
//! holding the `record_data` lines printed before it; `partitions_assigned`
//! becomes the next poll's `rebalance`. A log is a topic-partition,
//! `"<topic>-<partition>"`; a message is its value, `N` or `P.N` (with
//! `--value-prefix P`), numbered `N` or `P·10^9 + N`.

use crate::writer::{self, Entry};
use crate::{Converted, ImportError, Source};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Exceptions that prove a send was refused before any attempt could have
/// written it (the client refused it, or every attempt is refused alike):
/// `fail`. Any other error (a disconnect, a timeout, a leader change, ...)
/// leaves the record possibly written: `info`.
const DEFINITE_REFUSALS: &[&str] = &[
    "RecordTooLargeException",
    "RecordBatchTooLargeException",
    "InvalidTopicException",
    "TopicAuthorizationException",
    "ClusterAuthorizationException",
    "SerializationException",
    "InvalidRecordException",
];

/// Whether an exception class named in `producer_send_error` proves the
/// record absent.
pub fn is_definite_refusal(exception: &str) -> bool {
    let class = exception.trim_start_matches("class ");
    let simple = class.rsplit('.').next().unwrap_or(class);
    DEFINITE_REFUSALS.contains(&simple)
}

/// A value's number: `N` → N, `P.N` → P·10^9 + N.
pub fn msg_of(value: &str) -> Option<u64> {
    match value.split_once('.') {
        None => value.parse().ok(),
        Some((p, n)) => {
            let (p, n): (u64, u64) = (p.parse().ok()?, n.parse().ok()?);
            (n < PREFIX_SCALE).then_some(p.checked_mul(PREFIX_SCALE)?.checked_add(n)?)
        }
    }
}

const PREFIX_SCALE: u64 = 1_000_000_000;

#[derive(Deserialize)]
struct TopicPartition {
    topic: String,
    partition: i64,
}

/// One event of either tool; fields absent from an event stay `None`.
#[derive(Deserialize)]
struct Event {
    timestamp: u64,
    name: String,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    partition: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    exception: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    sent: Option<u64>,
    #[serde(default)]
    partitions: Option<Vec<TopicPartition>>,
}

/// An invoke and its completion of type `t` for a send by `process`.
fn send_lines(process: u64, t: &'static str, value: Value) -> Vec<Line> {
    vec![
        (json!(process), "invoke", "send", Value::Null),
        (json!(process), t, "send", value),
    ]
}

type Line = (Value, &'static str, &'static str, Value);

fn log_name(topic: &str, partition: i64) -> String {
    format!("{topic}-{partition}")
}

/// Parses one tool's output: its events with their 1-based line numbers.
/// A last line that does not parse (the tool was killed mid-write) is
/// skipped with a warning; any other bad line is an error.
fn events(src: &Source<'_>, warnings: &mut Vec<String>) -> Result<Vec<(u64, Event)>, ImportError> {
    let lines: Vec<&str> = src.text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(trimmed) {
            Ok(e) => out.push((n, e)),
            Err(_) if i + 1 == lines.len() && !src.text.ends_with('\n') => {
                warnings.push(format!(
                    "{}:{n}: truncated last line ignored (the tool stopped mid-write)",
                    src.name
                ));
            }
            Err(e) => {
                return Err(ImportError::Malformed {
                    source_name: src.name.to_string(),
                    line: n,
                    reason: format!(
                        "not an event of VerifiableProducer/VerifiableConsumer ({e}); \
                         pass their standard output only"
                    ),
                })
            }
        }
    }
    Ok(out)
}

fn bad(src: &Source<'_>, line: u64, reason: impl Into<String>) -> ImportError {
    ImportError::Malformed {
        source_name: src.name.to_string(),
        line,
        reason: reason.into(),
    }
}

fn value_msg(src: &Source<'_>, line: u64, value: Option<&str>) -> Result<u64, ImportError> {
    let v = value.ok_or_else(|| bad(src, line, "event without `value`"))?;
    msg_of(v).ok_or_else(|| {
        bad(
            src,
            line,
            format!(
                "value {v:?} is not VerifiableProducer's `N` or `P.N` (with --value-prefix P, \
                 N below 10^9)"
            ),
        )
    })
}

/// Converts the outputs of VerifiableProducer (`producers`) and
/// VerifiableConsumer run with `--verbose` (`consumers`) to a history.
pub fn convert(
    producers: &[Source<'_>],
    consumers: &[Source<'_>],
) -> Result<Converted, ImportError> {
    let mut warnings = Vec::new();
    let produced: Vec<Vec<(u64, Event)>> = producers
        .iter()
        .map(|s| events(s, &mut warnings))
        .collect::<Result<_, _>>()?;
    let consumed: Vec<Vec<(u64, Event)>> = consumers
        .iter()
        .map(|s| events(s, &mut warnings))
        .collect::<Result<_, _>>()?;
    let t0 = produced
        .iter()
        .chain(&consumed)
        .flat_map(|evs| evs.first().map(|(_, e)| e.timestamp))
        .min()
        .unwrap_or(0);
    let ns = |ms: u64| ms.saturating_sub(t0).saturating_mul(1_000_000);
    let mut entries = Vec::new();
    let mut next_process = 0u64;

    // Consumers first: where each value was read tells where a send whose
    // outcome never named a partition went.
    let mut read_log: FxHashMap<(String, u64), String> = FxHashMap::default();
    let mut read_any: FxHashMap<u64, ()> = FxHashMap::default();
    let consumer_processes: Vec<u64> = consumers
        .iter()
        .map(|_| {
            next_process += 1;
            next_process - 1
        })
        .collect();
    for (c, (src, evs)) in consumers.iter().zip(&consumed).enumerate() {
        let process = consumer_processes[c];
        let mut clock = 0u64;
        let mut batch: Vec<(String, i64, u64)> = Vec::new();
        let mut rebalance: Vec<String> = Vec::new();
        let poll_at = |time: u64,
                       line: u64,
                       batch: &mut Vec<(String, i64, u64)>,
                       rebalance: &mut Vec<String>,
                       entries: &mut Vec<Entry>| {
            let mut records: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
            let mut order: Vec<String> = Vec::new();
            for (log, offset, msg) in batch.drain(..) {
                if !records.contains_key(&log) {
                    order.push(log.clone());
                }
                records.entry(log).or_default().push((offset, msg));
            }
            let mut recs = serde_json::Map::new();
            for log in order {
                let pairs = records.remove(&log).unwrap_or_default();
                recs.insert(log, json!(pairs));
            }
            let mut value = json!({ "records": Value::Object(recs) });
            if !rebalance.is_empty() {
                value["rebalance"] = json!(std::mem::take(rebalance));
            }
            entries.push(Entry {
                time,
                order: (producers.len() + c, line),
                lines: vec![
                    (json!(process), "invoke", "poll", Value::Null),
                    (json!(process), "ok", "poll", value),
                ],
            });
        };
        let mut last_line = 0;
        for (line, e) in evs {
            clock = clock.max(ns(e.timestamp));
            last_line = *line;
            match e.name.as_str() {
                "record_data" => {
                    let (Some(topic), Some(partition), Some(offset)) =
                        (&e.topic, e.partition, e.offset)
                    else {
                        return Err(bad(
                            src,
                            *line,
                            "record_data without topic, partition or offset",
                        ));
                    };
                    let msg = value_msg(src, *line, e.value.as_deref())?;
                    let log = log_name(topic, partition);
                    read_log
                        .entry((topic.clone(), msg))
                        .or_insert_with(|| log.clone());
                    read_any.insert(msg, ());
                    batch.push((log, offset, msg));
                }
                "records_consumed" => {
                    if e.count.unwrap_or(0) > 0 && batch.is_empty() {
                        return Err(bad(
                            src,
                            *line,
                            "records_consumed without record_data before it: run \
                             VerifiableConsumer with --verbose so that each record is printed",
                        ));
                    }
                    if !batch.is_empty() || !rebalance.is_empty() {
                        poll_at(clock, *line, &mut batch, &mut rebalance, &mut entries);
                    }
                }
                "partitions_assigned" => {
                    for tp in e.partitions.iter().flatten() {
                        rebalance.push(log_name(&tp.topic, tp.partition));
                    }
                }
                // Revocations need nothing: positions restart at the next
                // assignment. Commits, start and shutdown are not judged.
                _ => {}
            }
        }
        if !batch.is_empty() {
            // Printed, then the tool stopped before its summary: still read.
            poll_at(
                clock,
                last_line + 1,
                &mut batch,
                &mut rebalance,
                &mut entries,
            );
        }
    }

    // Producers.
    let mut prefixes: FxHashMap<Option<u64>, usize> = FxHashMap::default();
    for (p, (src, evs)) in producers.iter().zip(&produced).enumerate() {
        let mut process = next_process;
        next_process += 1;
        let mut clock = 0u64;
        let mut topic: Option<String> = None;
        let mut seen: FxHashMap<u64, ()> = FxHashMap::default();
        let mut prefix: Option<Option<u64>> = None;
        let mut sent = 0u64;
        let mut last_line = 0;
        for (line, e) in evs {
            clock = clock.max(ns(e.timestamp));
            last_line = *line;
            match e.name.as_str() {
                "producer_send_success" | "producer_send_error" => {
                    let msg = value_msg(src, *line, e.value.as_deref())?;
                    let this_prefix = e
                        .value
                        .as_deref()
                        .and_then(|v| v.split_once('.'))
                        .map(|(p, _)| p.parse().unwrap_or(0));
                    match prefix {
                        None => prefix = Some(this_prefix),
                        Some(pr) if pr != this_prefix => {
                            return Err(bad(
                                src,
                                *line,
                                "values with different prefixes in one producer's output",
                            ))
                        }
                        _ => {}
                    }
                    let t = e
                        .topic
                        .clone()
                        .ok_or_else(|| bad(src, *line, "send event without topic"))?;
                    topic.get_or_insert(t.clone());
                    seen.insert(msg, ());
                    let mut lines = if e.name == "producer_send_success" {
                        let (Some(partition), Some(offset)) = (e.partition, e.offset) else {
                            return Err(bad(
                                src,
                                *line,
                                "producer_send_success without partition or offset",
                            ));
                        };
                        let log = log_name(&t, partition);
                        let value = json!({"key": log, "msg": msg, "offset": offset});
                        send_lines(process, "ok", value)
                    } else {
                        let exception = e.exception.as_deref().unwrap_or("");
                        let t_ = if is_definite_refusal(exception) {
                            "fail"
                        } else {
                            "info"
                        };
                        let log = e
                            .partition
                            .map(|p| log_name(&t, p))
                            .or_else(|| read_log.get(&(t.clone(), msg)).cloned())
                            .unwrap_or_else(|| t.clone());
                        let value = json!({"key": log, "msg": msg, "error": exception,
                                           "message": e.message});
                        send_lines(process, t_, value)
                    };
                    // The invoke names the message too (a completion's value
                    // is its own; docs/history.md).
                    lines[0].3 = json!({"key": lines[1].3["key"], "msg": msg});
                    let info = lines[1].1 == "info";
                    entries.push(Entry {
                        time: clock,
                        order: (p, *line),
                        lines,
                    });
                    if info {
                        // An `info` ends the process (docs/history.md).
                        process = next_process;
                        next_process += 1;
                    }
                }
                "tool_data" => sent = sent.max(e.sent.unwrap_or(0)),
                _ => {}
            }
        }
        let pr = prefix.unwrap_or(None);
        if let Some(other) = prefixes.insert(pr, p) {
            return Err(ImportError::Unusable(format!(
                "{} and {} wrote values with the same prefix ({}): their messages cannot be \
                 told apart; run each VerifiableProducer with its own --value-prefix",
                producers[other].name,
                src.name,
                pr.map_or("none".to_string(), |p| p.to_string())
            )));
        }
        // Sends whose outcome never arrived: values are a counter from 0, so
        // every number below what the tool counted as sent, or below a
        // number a consumer read, was sent.
        let base = pr.map_or(0, |p| p * PREFIX_SCALE);
        let in_range =
            |m: u64| m >= base && (pr.is_some() || m < PREFIX_SCALE) && m < base + PREFIX_SCALE;
        let read_max = read_any
            .keys()
            .filter(|m| in_range(**m))
            .map(|m| m - base + 1)
            .max()
            .unwrap_or(0);
        let seen_max = seen.keys().map(|m| m - base + 1).max().unwrap_or(0);
        let upto = sent.max(read_max).max(seen_max);
        let topic = topic.unwrap_or_default();
        for n in 0..upto {
            let msg = base + n;
            if seen.contains_key(&msg) {
                continue;
            }
            let log = read_log
                .get(&(topic.clone(), msg))
                .cloned()
                .unwrap_or_else(|| topic.clone());
            let v = json!({"key": log, "msg": msg});
            entries.push(Entry {
                time: clock,
                order: (p, last_line + 1 + n),
                lines: vec![
                    (json!(process), "invoke", "send", v.clone()),
                    (
                        json!(process),
                        "info",
                        "send",
                        json!({"key": log, "msg": msg, "error": "no outcome recorded"}),
                    ),
                ],
            });
            process = next_process;
            next_process += 1;
        }
    }

    let names = |s: &[Source<'_>]| s.iter().map(|s| s.name.to_string()).collect::<Vec<_>>();
    let head = vec![Entry {
        time: 0,
        order: (0, 0),
        lines: vec![(
            json!("import"),
            "ok",
            "config",
            json!({"source": "kafka-verifiable", "dlq": false, "msg-scope": "log",
                   "producers": names(producers), "consumers": names(consumers)}),
        )],
    }];
    let (history, operations) = writer::write(head, entries);
    Ok(Converted {
        history,
        operations,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_checkers::{CheckOptions, HistoryChecker, Verdict};
    use splitbrain_core::history::HistoryReader;

    fn judge(producers: &[&str], consumers: &[&str]) -> Verdict {
        let ps: Vec<Source> = producers
            .iter()
            .map(|t| Source {
                name: "p.jsonl",
                text: t,
            })
            .collect();
        let cs: Vec<Source> = consumers
            .iter()
            .map(|t| Source {
                name: "c.jsonl",
                text: t,
            })
            .collect();
        let converted = convert(&ps, &cs).expect("converts");
        let mut reader = HistoryReader::new(converted.history.as_slice(), "converted");
        let mut checker = HistoryChecker::new(&CheckOptions::default());
        while let Some(op) = reader.next_op() {
            checker
                .observe(&op.expect("a valid history"))
                .expect("judgeable");
        }
        assert!(reader.finish().is_empty());
        checker.finish()
    }

    fn ok(ts: u64, value: &str, partition: u64, offset: u64) -> String {
        format!(
            r#"{{"timestamp":{ts},"name":"producer_send_success","key":null,"value":"{value}","offset":{offset},"topic":"t","partition":{partition}}}"#
        )
    }
    fn err(ts: u64, value: &str, exception: &str) -> String {
        format!(
            r#"{{"timestamp":{ts},"name":"producer_send_error","topic":"t","key":null,"value":"{value}","exception":"class org.apache.kafka.common.errors.{exception}","message":"x"}}"#
        )
    }
    fn rec(ts: u64, value: &str, partition: u64, offset: u64) -> String {
        format!(
            r#"{{"timestamp":{ts},"name":"record_data","key":null,"value":"{value}","topic":"t","partition":{partition},"offset":{offset}}}"#
        )
    }
    fn consumed(ts: u64, count: u64) -> String {
        format!(r#"{{"timestamp":{ts},"name":"records_consumed","count":{count},"partitions":[]}}"#)
    }
    const ASSIGNED: &str = r#"{"timestamp":1,"name":"partitions_assigned","partitions":[{"topic":"t","partition":0},{"topic":"t","partition":1}]}"#;

    fn text(lines: &[String]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Values 1.0–1.3 over two partitions, all acknowledged.
    fn producer() -> String {
        text(&[
            ok(10, "1.0", 0, 0),
            ok(11, "1.1", 1, 0),
            ok(12, "1.2", 0, 1),
            ok(13, "1.3", 1, 1),
        ])
    }

    #[test]
    fn clean_run_is_valid_and_a_dropped_record_is_one_lost_write() {
        let all = [
            rec(20, "1.0", 0, 0),
            rec(20, "1.2", 0, 1),
            rec(20, "1.1", 1, 0),
            rec(20, "1.3", 1, 1),
        ];
        let mut c = vec![ASSIGNED.to_string()];
        c.extend(all.iter().cloned());
        c.push(consumed(21, 4));
        let v = judge(&[&producer()], &[&text(&c)]);
        assert!(v.valid, "{:?}", v.anomalies);
        assert_eq!(v.counts["read"], 4);
        assert_eq!(v.counts["dlq-in-use"], 0);
        // 1.0 dropped: read past it in partition 0.
        let mut c = vec![ASSIGNED.to_string()];
        c.extend(all.iter().skip(1).cloned());
        c.push(consumed(21, 3));
        let v = judge(&[&producer()], &[&text(&c)]);
        assert_eq!(v.count("lost-write"), 1);
        assert!(!v.valid);
    }

    #[test]
    fn errors_are_info_unless_a_definite_refusal() {
        assert!(!is_definite_refusal(
            "class org.apache.kafka.common.errors.NetworkException"
        ));
        assert!(!is_definite_refusal(
            "class org.apache.kafka.common.errors.TimeoutException"
        ));
        assert!(is_definite_refusal(
            "class org.apache.kafka.common.errors.RecordTooLargeException"
        ));
        // A NetworkException send read later (it was written): valid; one
        // never read: an unknown send, not an anomaly (no DLQ).
        let p = text(&[
            ok(10, "1.0", 0, 0),
            err(11, "1.1", "NetworkException"),
            err(12, "1.2", "NetworkException"),
        ]);
        let c = text(&[
            ASSIGNED.to_string(),
            rec(20, "1.0", 0, 0),
            rec(20, "1.1", 0, 1),
            consumed(21, 2),
        ]);
        let v = judge(&[&p], &[&c]);
        assert!(v.valid, "{:?}", v.anomalies);
        assert_eq!(v.counts["unknown"], 2);
        // A definite refusal read anyway: an aborted read.
        let p = text(&[
            ok(10, "1.0", 0, 0),
            err(11, "1.1", "RecordTooLargeException"),
        ]);
        let v = judge(&[&p], &[&c]);
        assert_eq!(v.count("G1a"), 1);
        assert_eq!(v.counts["failed"], 1);
    }

    #[test]
    fn sends_without_outcome_are_unknown() {
        let mut p = vec![ok(10, "1.0", 0, 0)];
        p.push(r#"{"timestamp":30,"name":"tool_data","sent":3,"acked":1,"target_throughput":-1,"avg_throughput":1.0}"#.into());
        let c = text(&[
            ASSIGNED.to_string(),
            rec(20, "1.0", 0, 0),
            rec(20, "1.2", 1, 0),
            consumed(21, 2),
        ]);
        let v = judge(&[&text(&p)], &[&c]);
        assert!(v.valid, "{:?}", v.anomalies);
        assert_eq!((v.counts["sent"], v.counts["unknown"]), (3, 2));
        assert_eq!(v.counts["read"], 2);
    }

    #[test]
    fn refuses_consumers_without_verbose_and_shared_prefixes() {
        let p = producer();
        let c = text(&[ASSIGNED.to_string(), consumed(21, 4)]);
        let e = convert(
            &[Source {
                name: "p",
                text: &p,
            }],
            &[Source {
                name: "c",
                text: &c,
            }],
        )
        .unwrap_err();
        assert!(e.to_string().contains("--verbose"), "{e}");
        let e = convert(
            &[
                Source {
                    name: "p1",
                    text: &p,
                },
                Source {
                    name: "p2",
                    text: &p,
                },
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("--value-prefix"), "{e}");
        let e = convert(
            &[Source {
                name: "p",
                text: "{\"timestamp\":1,",
            }],
            &[],
        );
        assert!(e.is_ok(), "a truncated last line is only a warning");
        let e = convert(
            &[Source {
                name: "p",
                text: "nonsense\n{}\n",
            }],
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("p:1:"), "{e}");
    }

    #[test]
    fn values_map_to_numbers() {
        assert_eq!(msg_of("17"), Some(17));
        assert_eq!(msg_of("2.5"), Some(2_000_000_005));
        assert_eq!(msg_of("x"), None);
        assert_eq!(msg_of("1.1000000000"), None);
    }
}
