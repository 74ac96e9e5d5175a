//! Jepsen's Kafka test (`jepsen.tests.kafka`): the `history.edn` of a run,
//! one operation per top-level form (`{...}` or a record
//! `#jepsen.history.Op{...}`; a vector of them is read too). The mapping to
//! a history is documented in docs/history.md, "Jepsen's Kafka histories".
//!
//! In short: a client operation (`:send`, `:poll`, `:txn`) holds
//! micro-operations, `[:send k v]` (completed `[:send k [offset v]]`) and
//! `[:poll]` (completed `[:poll {k [[offset v] ...]}]`); each becomes one
//! operation of splitbrain's format, with the Jepsen operation's completion
//! type. `:assign` and `:subscribe` keep their meaning. A log is a key; a
//! message is its value, unique within its key (`"msg-scope":"log"`).

use crate::writer::{self, Entry};
use crate::{Converted, ImportError, Source};
use edn_format::{Keyword, ParserOptions, Value as Edn};
use rustc_hash::FxHashMap;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Non-integer values (keywords, strings: Jepsen's unit tests use `:a`,
/// `:b`) are numbered from here, in order of first appearance.
pub const INTERNED_BASE: u64 = 1 << 40;

type Line = (Value, &'static str, &'static str, Value);

fn kw(name: &str) -> Edn {
    Edn::Keyword(Keyword::from_name(name))
}

fn get<'a>(m: &'a BTreeMap<Edn, Edn>, name: &str) -> Option<&'a Edn> {
    m.get(&kw(name))
}

fn name_of(v: &Edn) -> Option<String> {
    match v {
        Edn::Keyword(k) => Some(match k.namespace() {
            Some(ns) => format!("{ns}/{}", k.name()),
            None => k.name().to_string(),
        }),
        Edn::Symbol(s) => Some(s.name().to_string()),
        Edn::String(s) => Some(s.clone()),
        Edn::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Numbers values: non-negative integers are themselves, anything else is
/// interned.
#[derive(Default)]
struct Values {
    interned: FxHashMap<String, u64>,
}

impl Values {
    fn msg(&mut self, v: &Edn) -> Option<u64> {
        match v {
            Edn::Integer(i) if *i >= 0 && (*i as u64) < INTERNED_BASE => Some(*i as u64),
            Edn::Nil | Edn::Vector(_) | Edn::List(_) | Edn::Map(_) => None,
            other => {
                let text = edn_format::emit_str(other);
                let next = INTERNED_BASE + self.interned.len() as u64;
                Some(*self.interned.entry(text).or_insert(next))
            }
        }
    }
}

/// One micro-operation, as the completion (or, lacking one, the invoke)
/// gives it.
enum Micro {
    Send {
        key: String,
        msg: u64,
        offset: Option<u64>,
    },
    Poll {
        records: Vec<(String, Vec<(u64, u64)>)>,
    },
}

fn micro_ops(value: &Edn, values: &mut Values) -> Result<Vec<Micro>, String> {
    let (Edn::Vector(ops) | Edn::List(ops)) = value else {
        return Err(format!(
            "a :value of micro-operations, got {}",
            edn_format::emit_str(value)
        ));
    };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let (Edn::Vector(parts) | Edn::List(parts)) = op else {
            return Err(format!(
                "a micro-operation [:send k v] or [:poll], got {}",
                edn_format::emit_str(op)
            ));
        };
        match parts.first().and_then(name_of).as_deref() {
            Some("send") => {
                let key = parts
                    .get(1)
                    .and_then(name_of)
                    .ok_or("[:send k v] without a key")?;
                let (offset, v) = match parts.get(2) {
                    Some(Edn::Vector(ov)) | Some(Edn::List(ov)) if ov.len() == 2 => {
                        let offset = match &ov[0] {
                            Edn::Integer(o) if *o >= 0 => Some(*o as u64),
                            Edn::Nil => None,
                            other => {
                                return Err(format!(
                                    "an offset, got {}",
                                    edn_format::emit_str(other)
                                ))
                            }
                        };
                        (offset, &ov[1])
                    }
                    Some(v) => (None, v),
                    None => return Err("[:send k v] without a value".into()),
                };
                let msg = values
                    .msg(v)
                    .ok_or("a send's value must be a number, keyword or string")?;
                out.push(Micro::Send { key, msg, offset });
            }
            Some("poll") => {
                let mut records = Vec::new();
                if let Some(Edn::Map(by_key)) = parts.get(1) {
                    for (k, pairs) in by_key {
                        let key =
                            name_of(k).ok_or("a poll's key must be a keyword, number or string")?;
                        let (Edn::Vector(pairs) | Edn::List(pairs)) = pairs else {
                            return Err("a poll's records must be [[offset value] ...]".into());
                        };
                        let mut recs = Vec::with_capacity(pairs.len());
                        for pair in pairs {
                            let (Edn::Vector(ov) | Edn::List(ov)) = pair else {
                                return Err("a poll's record must be [offset value]".into());
                            };
                            let (Some(Edn::Integer(o)), Some(v)) = (ov.first(), ov.get(1)) else {
                                return Err("a poll's record must be [offset value]".into());
                            };
                            let msg = values
                                .msg(v)
                                .ok_or("a polled value must be a number, keyword or string")?;
                            recs.push((u64::try_from(*o).map_err(|_| "a negative offset")?, msg));
                        }
                        records.push((key, recs));
                    }
                }
                out.push(Micro::Poll { records });
            }
            _ => {
                return Err(format!(
                    "an unknown micro-operation {}",
                    edn_format::emit_str(op)
                ))
            }
        }
    }
    Ok(out)
}

/// An operation of the history.edn, as far as the conversion needs it.
struct JepsenOp {
    line: u64,
    time: u64,
    process: Option<i64>,
    named_process: Option<String>,
    op_type: String,
    f: String,
    value: Edn,
}

fn read_ops(src: &Source<'_>) -> Result<Vec<JepsenOp>, ImportError> {
    let bad = |line: u64, reason: String| ImportError::Malformed {
        source_name: src.name.to_string(),
        line,
        reason,
    };
    let mut out = Vec::new();
    // One form per line is what Jepsen writes; parse line by line so that
    // errors name the line, and fall back to the whole text for other
    // layouts (a vector of maps, maps across lines).
    let lines: Vec<&str> = src.text.lines().collect();
    let per_line: Result<Vec<(u64, Edn)>, (u64, String)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            edn_format::parse_str(l)
                .map(|v| (i as u64 + 1, v))
                .map_err(|e| (i as u64 + 1, format!("{e:?}")))
        })
        .collect();
    let forms = match per_line {
        Ok(forms) => forms,
        Err((line, first_error)) => {
            let mut forms = Vec::new();
            for form in edn_format::Parser::from_str(src.text, ParserOptions::default()) {
                match form {
                    Ok(v) => forms.push((1, v)),
                    Err(_) => {
                        return Err(bad(
                            line,
                            format!("not EDN ({first_error}); pass Jepsen's history.edn"),
                        ))
                    }
                }
            }
            forms
        }
    };
    let mut stack: Vec<(u64, Edn)> = forms.into_iter().rev().collect();
    while let Some((line, form)) = stack.pop() {
        let map = match form {
            Edn::TaggedElement(_, inner) => match *inner {
                Edn::Map(m) => m,
                other => {
                    return Err(bad(
                        line,
                        format!(
                            "a tagged operation that is not a map: {}",
                            edn_format::emit_str(&other)
                        ),
                    ))
                }
            },
            Edn::Map(m) => m,
            Edn::Vector(items) | Edn::List(items) => {
                stack.extend(items.into_iter().rev().map(|v| (line, v)));
                continue;
            }
            other => {
                return Err(bad(
                    line,
                    format!("an operation map, got {}", edn_format::emit_str(&other)),
                ))
            }
        };
        let op_type = get(&map, "type")
            .and_then(name_of)
            .ok_or_else(|| bad(line, "an operation without :type".into()))?;
        let f = get(&map, "f").and_then(name_of).unwrap_or_default();
        let (process, named_process) = match get(&map, "process") {
            Some(Edn::Integer(p)) => (Some(*p), None),
            Some(other) => (None, name_of(other)),
            None => (None, Some("unknown".into())),
        };
        let time = match get(&map, "time") {
            Some(Edn::Integer(t)) if *t >= 0 => *t as u64,
            _ => 0,
        };
        out.push(JepsenOp {
            line,
            time,
            process,
            named_process,
            op_type,
            f,
            value: get(&map, "value").cloned().unwrap_or(Edn::Nil),
        });
    }
    Ok(out)
}

/// Converts a Jepsen Kafka test's `history.edn`.
pub fn convert(src: &Source<'_>) -> Result<Converted, ImportError> {
    let ops = read_ops(src)?;
    let bad = |line: u64, reason: String| ImportError::Malformed {
        source_name: src.name.to_string(),
        line,
        reason,
    };
    let mut values = Values::default();
    let mut entries = Vec::new();
    // Jepsen process → ours; a new one after an `info` (ours may not
    // invoke again, and neither does Jepsen's in real runs).
    let mut ours: FxHashMap<i64, u64> = FxHashMap::default();
    let mut next_process = 0u64;
    let mut invokes: FxHashMap<i64, (u64, Edn, String)> = FxHashMap::default();
    let mut clock = 0u64;
    let fresh = |next: &mut u64| {
        *next += 1;
        *next - 1
    };
    for op in &ops {
        clock = clock.max(op.time);
        let order = (0usize, op.line * 1_000_000 + entries.len() as u64);
        let Some(jp) = op.process else {
            // Nemesis and other named processes: an event, its value kept
            // as EDN text.
            let name = op.named_process.clone().unwrap_or_default();
            if op.op_type != "invoke" {
                entries.push(Entry {
                    time: clock,
                    order,
                    lines: vec![(
                        json!(name),
                        "info",
                        leak(&op.f),
                        json!({"edn": edn_format::emit_str(&op.value)}),
                    )],
                });
            }
            continue;
        };
        if op.op_type == "invoke" {
            invokes.insert(jp, (op.line, op.value.clone(), op.f.clone()));
            continue;
        }
        let completion: &'static str = match op.op_type.as_str() {
            "ok" => "ok",
            "fail" => "fail",
            "info" => "info",
            other => return Err(bad(op.line, format!("an unknown :type :{other}"))),
        };
        let invoke = invokes.remove(&jp);
        let p = *ours.entry(jp).or_insert_with(|| fresh(&mut next_process));
        let lines = expand(
            &op.f,
            completion,
            &op.value,
            invoke.as_ref().map(|i| &i.1),
            p,
            &mut values,
            &mut next_process,
        )
        .map_err(|e| bad(op.line, e))?;
        if completion == "info" {
            ours.insert(jp, fresh(&mut next_process));
        }
        entries.push(Entry {
            time: clock,
            order,
            lines,
        });
    }
    // Invoked, never completed: unknown outcome.
    let mut pending: Vec<(i64, (u64, Edn, String))> = invokes.into_iter().collect();
    pending.sort_by_key(|(_, (line, _, _))| *line);
    for (jp, (line, value, f)) in pending {
        let p = *ours.entry(jp).or_insert_with(|| fresh(&mut next_process));
        let lines = expand(
            &f,
            "info",
            &Edn::Nil,
            Some(&value),
            p,
            &mut values,
            &mut next_process,
        )
        .map_err(|e| bad(line, e))?;
        entries.push(Entry {
            time: clock,
            order: (1, line),
            lines,
        });
    }
    let head = vec![Entry {
        time: 0,
        order: (0, 0),
        lines: vec![(
            json!("import"),
            "ok",
            "config",
            json!({"source": "jepsen", "dlq": false, "msg-scope": "log", "history": src.name}),
        )],
    }];
    let (history, operations) = writer::write(head, entries);
    Ok(Converted {
        history,
        operations,
        warnings: Vec::new(),
    })
}

/// The `f` of an event: the few names in use are kept static.
fn leak(f: &str) -> &'static str {
    match f {
        "start-partition" | "start" => "start-partition",
        "stop-partition" | "stop" | "heal" => "heal",
        "kill" => "kill",
        "restart" => "restart",
        "pause" => "pause",
        "resume" => "resume",
        _ => "nemesis",
    }
}

/// The lines of one completed Jepsen operation by our process `p`.
fn expand(
    f: &str,
    completion: &'static str,
    value: &Edn,
    invoke_value: Option<&Edn>,
    p: u64,
    values: &mut Values,
    next_process: &mut u64,
) -> Result<Vec<Line>, String> {
    let mut lines = Vec::new();
    match f {
        "assign" | "subscribe" => {
            let source = if matches!(value, Edn::Nil) {
                invoke_value.unwrap_or(&Edn::Nil)
            } else {
                value
            };
            let keys: Vec<String> = match source {
                Edn::Set(s) => s.iter().filter_map(name_of).collect(),
                Edn::Vector(ks) | Edn::List(ks) => ks.iter().filter_map(name_of).collect(),
                _ => Vec::new(),
            };
            let f: &'static str = if f == "assign" { "assign" } else { "subscribe" };
            lines.push((json!(p), "invoke", f, json!(keys)));
            lines.push((
                json!(p),
                completion,
                f,
                if completion == "ok" {
                    json!(keys)
                } else {
                    Value::Null
                },
            ));
        }
        "send" | "poll" | "txn" => {
            let source = if matches!(value, Edn::Nil) {
                invoke_value.unwrap_or(&Edn::Nil)
            } else {
                value
            };
            let micros = micro_ops(source, values)?;
            // An `info` ends a process: each micro-operation of an `info`
            // operation gets its own.
            let mut process = p;
            for (i, m) in micros.into_iter().enumerate() {
                if completion == "info" && i > 0 {
                    process = *next_process;
                    *next_process += 1;
                }
                match m {
                    Micro::Send { key, msg, offset } => {
                        lines.push((
                            json!(process),
                            "invoke",
                            "send",
                            json!({"key": key, "msg": msg}),
                        ));
                        let mut v = json!({"key": key, "msg": msg});
                        if let (Some(o), "ok") = (offset, completion) {
                            v["offset"] = json!(o);
                        }
                        lines.push((json!(process), completion, "send", v));
                    }
                    Micro::Poll { records } => {
                        lines.push((json!(process), "invoke", "poll", Value::Null));
                        let v = if completion == "ok" {
                            let mut recs = serde_json::Map::new();
                            for (k, pairs) in records {
                                recs.insert(k, json!(pairs));
                            }
                            json!({"records": Value::Object(recs)})
                        } else {
                            Value::Null
                        };
                        lines.push((json!(process), completion, "poll", v));
                    }
                }
            }
        }
        // Other client operations (e.g. :crash, :debug-topic-partitions)
        // are not judged.
        _ => {}
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<serde_json::Value> {
        let c = convert(&Source {
            name: "h.edn",
            text,
        })
        .expect("converts");
        String::from_utf8(c.history)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn reads_records_nemesis_and_unfinished_ops() {
        let h = lines(concat!(
            "#jepsen.history.Op{:index 0, :time 5, :type :invoke, :process 0, :f :txn, :value [[:send 3 7] [:poll]]}\n",
            "{:index 1, :time 6, :type :info, :process :nemesis, :f :kill, :value {\"n1\" :killed}}\n",
            "#jepsen.history.Op{:index 2, :time 9, :type :ok, :process 0, :f :txn, :value [[:send 3 [0 7]] [:poll {3 [[0 7]]}]]}\n",
            "{:index 3, :time 10, :type :invoke, :process 1, :f :send, :value [[:send 3 :a]]}\n",
        ));
        let f: Vec<(&str, &str)> = h
            .iter()
            .map(|l| (l["f"].as_str().unwrap(), l["type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            f,
            vec![
                ("config", "ok"),
                ("kill", "info"),
                ("send", "invoke"),
                ("send", "ok"),
                ("poll", "invoke"),
                ("poll", "ok"),
                ("send", "invoke"),
                ("send", "info"),
            ]
        );
        assert_eq!(h[3]["value"], json!({"key": "3", "msg": 7, "offset": 0}));
        assert_eq!(h[5]["value"]["records"]["3"], json!([[0, 7]]));
        // A keyword value is interned.
        assert_eq!(h[7]["value"]["msg"], json!(INTERNED_BASE));
        assert_eq!(h[0]["value"]["msg-scope"], "log");
    }

    #[test]
    fn an_info_op_splits_over_fresh_processes() {
        let h = lines(concat!(
            "{:type :invoke, :process 4, :f :send, :value [[:send :x 1] [:send :x 2]]}\n",
            "{:type :info, :process 4, :f :send, :value [[:send :x [0 1]] [:send :x 2]]}\n",
            "{:type :invoke, :process 4, :f :poll, :value [[:poll]]}\n",
            "{:type :ok, :process 4, :f :poll, :value [[:poll {:x [[0 1]]}]]}\n",
        ));
        let procs: Vec<u64> = h[1..]
            .iter()
            .map(|l| l["process"].as_u64().unwrap())
            .collect();
        assert_eq!(procs, vec![0, 0, 1, 1, 2, 2]);
        // An info send carries no offset.
        assert_eq!(h[2]["value"], json!({"key": "x", "msg": 1}));
    }

    #[test]
    fn bad_input_names_the_line() {
        let e = convert(&Source {
            name: "h.edn",
            text: "{:type :ok, :process 0, :f :send, :value [[:frob]]}\n",
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("h.edn:1:"), "{e}");
        let e = convert(&Source {
            name: "h.edn",
            text: "{:type :ok :process 0}\n{:a\n",
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("h.edn:2:"), "{e}");
    }
}
