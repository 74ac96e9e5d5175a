//! What the run's own events say about the run itself, beside the checkers'
//! verdict on the system: whether its faults happened, whether the observer
//! watched to the end, whether the consumers read everything back, and the
//! workload's delivery counts. Read from the history in the same pass as the
//! checkers, so `splitbrain report DIR` decides exactly as the run did.
//!
//! The rules (docs/results.md, "Outcomes"):
//! - a `fault-error` nemesis event (a fault that failed to start, stop or
//!   heal, found no target, or could not be shown applied) → ERROR;
//! - an `observer-stopped` event whose `reason` is not `requested` (the
//!   observer failed, or hit its bounds, before the runner stopped it after
//!   the final read) → ERROR;
//! - a history with a workload (its `config` event) whose `final-read` event
//!   says `complete: false`, or that has no `final-read` at all → UNKNOWN:
//!   acknowledged messages beyond what was read are `unseen`, so "nothing
//!   was lost" cannot be said.

use serde_json::{json, Value};
use splitbrain_core::history::{Op, OpValue, ProcessRef};

/// The `f` of the event the runner records when the observer stops
/// (process `observer`): `{"samples", "reason", "error"}`.
pub const OBSERVER_STOPPED: &str = "observer-stopped";
/// The `f` of the event the runner records with the workload's delivery
/// counts (process `workload`): the workload's `DeliverySummary` as JSON
/// plus `summary`, its sentence.
pub const DELIVERY: &str = "delivery";
/// The nemeses' event for a fault that did not happen as planned.
pub const FAULT_ERROR: &str = "fault-error";
/// The `f` of the event the runner records for each change in a node's SSH
/// session during the load (process `control`): `{"node", "kind":
/// "dropped"|"reconnected"|"gave-up", "attempts", "elapsed_ms", "cause"}`.
/// Informational: the checkers and the outcome ignore it.
pub const SSH_RECONNECT: &str = "ssh-reconnect";
/// What results.json and the report say when no message went to the DLQ.
pub const DLQ_NOT_EXERCISED: &str = "DLQ not exercised in this run";

/// How bad a run problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// The verdict cannot be given (consumers did not read everything back).
    Unknown,
    /// The run did not test what it says (a fault did not happen, the
    /// observer stopped).
    Error,
}

/// One reason a run's outcome is ERROR or UNKNOWN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// ERROR or UNKNOWN.
    pub kind: ProblemKind,
    /// What happened, in one sentence.
    pub what: String,
}

impl Problem {
    /// As results.json lists it: `{"kind": "ERROR"|"UNKNOWN", "what"}`.
    pub fn to_json(&self) -> Value {
        let kind = match self.kind {
            ProblemKind::Error => "ERROR",
            ProblemKind::Unknown => "UNKNOWN",
        };
        json!({"kind": kind, "what": self.what})
    }
}

/// The run's own events, collected while the history is read.
#[derive(Clone, Debug, Default)]
pub struct RunEvents {
    /// `fault-error` events: (time ns, value).
    pub fault_errors: Vec<(u64, Value)>,
    /// The `observer-stopped` event's value, if recorded.
    pub observer_stopped: Option<Value>,
    /// Observer samples seen.
    pub observations: u64,
    /// The workload recorded its `config`: it ran.
    pub workload_started: bool,
    /// The `final-read` event's value, if recorded.
    pub final_read: Option<Value>,
    /// The `delivery` event's value, if recorded.
    pub delivery: Option<Value>,
    /// The transactional workload ran (its `txn-settings` event): it has
    /// no DLQ.
    pub txn_workload: bool,
    /// `ssh-reconnect` events: (time ns, value).
    pub ssh_sessions: Vec<(u64, Value)>,
}

/// What results.json and the report say of the DLQ of a txn run.
pub const DLQ_NONE_TXN: &str =
    "no DLQ in the txn workload (an aborted transaction is recorded fail, not re-sent)";

fn value_of(op: &Op<'_>) -> Value {
    match &op.value {
        OpValue::Other(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

impl RunEvents {
    /// Feeds one operation; anything but the events above is ignored.
    pub fn observe(&mut self, op: &Op<'_>) {
        let ProcessRef::Named(name) = &op.process else {
            return;
        };
        match (name.as_ref(), op.f.as_ref()) {
            ("nemesis", FAULT_ERROR) => self.fault_errors.push((op.time, value_of(op))),
            ("observer", "observe") => self.observations += 1,
            ("observer", OBSERVER_STOPPED) => self.observer_stopped = Some(value_of(op)),
            ("workload", "config") => self.workload_started = true,
            ("workload", "final-read") => self.final_read = Some(value_of(op)),
            ("workload", DELIVERY) => self.delivery = Some(value_of(op)),
            ("workload", "txn-settings") => self.txn_workload = true,
            ("control", SSH_RECONNECT) => self.ssh_sessions.push((op.time, value_of(op))),
            _ => {}
        }
    }

    /// Why the run is ERROR or UNKNOWN (empty when neither), errors first.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = vec![];
        for (time, v) in &self.fault_errors {
            let fault = match &v["fault"] {
                Value::Null => String::new(),
                Value::Object(f) => {
                    let mut parts: Vec<String> = f
                        .values()
                        .filter_map(|x| match x {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect();
                    parts.dedup();
                    format!(" of {}", parts.join(" "))
                }
                other => format!(" of {other}"),
            };
            let phase = v["phase"]
                .as_str()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            let error = v["error"].as_str().unwrap_or("no error text recorded");
            problems.push(Problem {
                kind: ProblemKind::Error,
                what: format!(
                    "fault error{fault}{phase} at {:.1} s: {error}; the run did not test what it planned",
                    *time as f64 / 1e9
                ),
            });
        }
        if let Some(v) = &self.observer_stopped {
            let reason = v["reason"].as_str().unwrap_or("unknown");
            if reason != "requested" {
                let error = v["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                problems.push(Problem {
                    kind: ProblemKind::Error,
                    what: format!(
                        "the observer stopped on its own ({reason}{error}) after {} samples, \
                         before the end of the run: the split-brain checker did not see all of it",
                        v["samples"].as_u64().unwrap_or(self.observations)
                    ),
                });
            }
        }
        if self.workload_started {
            match &self.final_read {
                None => problems.push(Problem {
                    kind: ProblemKind::Unknown,
                    what: "no final read was recorded (the run ended before it): whether \
                           acknowledged messages were lost cannot be said"
                        .into(),
                }),
                Some(v) if v["complete"] == false => {
                    let behind: Vec<String> = v["behind"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|b| {
                                    format!(
                                        "{} read up to offset {} of {}",
                                        b[0].as_str().unwrap_or("?"),
                                        b[2],
                                        b[1]
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let cut = if v["stopped"] == true {
                        " (cut short by a stop)"
                    } else {
                        ""
                    };
                    problems.push(Problem {
                        kind: ProblemKind::Unknown,
                        what: format!(
                            "the final read did not reach the end of every log{cut}: {}; \
                             messages acknowledged beyond that are unseen, so whether they \
                             were lost cannot be said",
                            if behind.is_empty() {
                                "logs behind not recorded".to_string()
                            } else {
                                behind.join(", ")
                            }
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        problems.sort_by_key(|p| std::cmp::Reverse(p.kind));
        problems
    }

    /// What happened to the control node's SSH sessions during the load,
    /// as results.json shows it (`ssh-sessions`): counts per kind and each
    /// event; `null` when no session dropped. Informational: while a
    /// session is given up on, faults aimed at its node fail, and those
    /// fault errors are what make the run ERROR.
    pub fn ssh_sessions_json(&self) -> Value {
        if self.ssh_sessions.is_empty() {
            return Value::Null;
        }
        let events: Vec<Value> = self
            .ssh_sessions
            .iter()
            .map(|(t, v)| {
                let mut e = v.clone();
                if let Value::Object(m) = &mut e {
                    m.insert("at_s".into(), json!((*t as f64 / 1e8).round() / 10.0));
                }
                e
            })
            .collect();
        json!({
            "dropped": self.ssh_events_of("dropped").len(),
            "reconnected": self.ssh_events_of("reconnected").len(),
            "gave-up": self.ssh_events_of("gave-up").len(),
            "summary": self.ssh_sessions_summary(),
            "events": events,
        })
    }

    /// One sentence on the SSH sessions (`None` when none dropped), e.g.
    /// "SSH sessions: 2 dropped, 2 reconnected (in 0.1-0.4 s), none given up:
    /// n1, n3".
    pub fn ssh_sessions_summary(&self) -> Option<String> {
        if self.ssh_sessions.is_empty() {
            return None;
        }
        let (dropped, reconnected, gave_up) = (
            self.ssh_events_of("dropped"),
            self.ssh_events_of("reconnected"),
            self.ssh_events_of("gave-up"),
        );
        let took: Vec<f64> = reconnected
            .iter()
            .filter_map(|v| v["elapsed_ms"].as_u64())
            .map(|ms| ms as f64 / 1e3)
            .collect();
        let range = match (
            took.iter().cloned().reduce(f64::min),
            took.iter().cloned().reduce(f64::max),
        ) {
            (Some(lo), Some(hi)) if (hi - lo).abs() < 0.05 => format!(" (in {lo:.1} s)"),
            (Some(lo), Some(hi)) => format!(" (in {lo:.1}-{hi:.1} s)"),
            _ => String::new(),
        };
        let mut nodes: Vec<&str> = self
            .ssh_sessions
            .iter()
            .filter_map(|(_, v)| v["node"].as_str())
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let given_up = if gave_up.is_empty() {
            "none given up".to_string()
        } else {
            let lost: Vec<&str> = gave_up.iter().filter_map(|v| v["node"].as_str()).collect();
            format!(
                "{} given up ({}: commands to a node given up on fail until it answers \
                 again; a fault that fails so is a fault error, which makes the run ERROR)",
                gave_up.len(),
                lost.join(", ")
            )
        };
        Some(format!(
            "SSH sessions: {} dropped, {} reconnected{range}, {given_up}: {}",
            dropped.len(),
            reconnected.len(),
            nodes.join(", ")
        ))
    }

    /// The values of the `ssh-reconnect` events of one `kind`.
    fn ssh_events_of(&self, kind: &str) -> Vec<&Value> {
        self.ssh_sessions
            .iter()
            .map(|(_, v)| v)
            .filter(|v| v["kind"] == kind)
            .collect()
    }

    /// What the run says of its DLQ, from the workload's delivery counts
    /// (or, without them, the checker's `dlq` count): "DLQ not exercised in
    /// this run" when no message went to it.
    pub fn dlq_status(&self, checker_dlq: Option<u64>) -> String {
        if self.txn_workload && self.delivery.is_none() {
            return DLQ_NONE_TXN.to_string();
        }
        let d = self.delivery.as_ref();
        let dlq = d
            .and_then(|d| d["dlq"].as_u64())
            .or(checker_dlq)
            .unwrap_or(0);
        if dlq == 0 {
            let why = match d {
                Some(d)
                    if d["sends-fail"].as_u64().unwrap_or(0)
                        + d["sends-info"].as_u64().unwrap_or(0)
                        == 0 =>
                {
                    " (no send failed or was unknown)"
                }
                Some(_) => " (every failed or unknown send was acknowledged on a retry)",
                None => "",
            };
            return format!("{DLQ_NOT_EXERCISED}{why}");
        }
        match d {
            Some(d) => format!(
                "{dlq} messages went to the DLQ; {} replayed ({} acknowledged); {} of them read by the end",
                d["replayed"], d["replayed-ok"], d["dlq-read"]
            ),
            None => format!("{dlq} messages went to the DLQ (the workload's delivery counts were not recorded)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::history::HistoryReader;

    fn events(lines: &[&str]) -> RunEvents {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let text: String = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                format!(
                    "{{\"index\":{i},\"time\":{},{l}}}\n",
                    (i as u64 + 1) * 1_000_000_000
                )
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        let mut r = HistoryReader::open(&path).unwrap();
        let mut e = RunEvents::default();
        while let Some(op) = r.next_op() {
            e.observe(&op.unwrap());
        }
        e
    }

    const CONFIG: &str = r#""process":"workload","type":"ok","f":"config","value":{}"#;
    const COMPLETE: &str = r#""process":"workload","type":"ok","f":"final-read","value":{"complete":true,"waited":10,"behind":[],"stopped":false}"#;

    #[test]
    fn a_clean_run_has_no_problems() {
        let e = events(&[CONFIG, COMPLETE]);
        assert!(e.problems().is_empty());
        // A history without a workload (handmade, synthetic): no rule on reads.
        assert!(
            events(&[r#""process":"nemesis","type":"info","f":"heal","value":null"#])
                .problems()
                .is_empty()
        );
    }

    #[test]
    fn a_fault_error_is_an_error() {
        let e = events(&[
            CONFIG,
            r#""process":"nemesis","type":"info","f":"fault-error","value":{"fault":{"fault":"partition","kind":"isolate-kafka-controller"},"phase":"start","error":"no controller known"}"#,
            COMPLETE,
        ]);
        let p = e.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, ProblemKind::Error);
        assert!(
            p[0].what.contains("partition isolate-kafka-controller"),
            "{}",
            p[0].what
        );
        assert!(
            p[0].what.contains("(start) at 2.0 s: no controller known"),
            "{}",
            p[0].what
        );
    }

    #[test]
    fn the_observer_stopping_on_its_own_is_an_error() {
        let stopped = |reason: &str| {
            format!(
                r#""process":"observer","type":"info","f":"observer-stopped","value":{{"samples":3,"reason":"{reason}","error":null}}"#
            )
        };
        let e = events(&[CONFIG, &stopped("error"), COMPLETE]);
        assert_eq!(e.problems()[0].kind, ProblemKind::Error);
        assert!(e.problems()[0].what.contains("stopped on its own (error)"));
        assert_eq!(
            events(&[CONFIG, &stopped("max-samples"), COMPLETE])
                .problems()
                .len(),
            1
        );
        assert!(events(&[CONFIG, COMPLETE, &stopped("requested")])
            .problems()
            .is_empty());
    }

    #[test]
    fn an_incomplete_or_missing_final_read_is_unknown() {
        let e = events(&[
            CONFIG,
            r#""process":"workload","type":"ok","f":"final-read","value":{"complete":false,"waited":40000,"behind":[["queue-1",3248,3000]],"stopped":false}"#,
        ]);
        let p = e.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, ProblemKind::Unknown);
        assert!(
            p[0].what.contains("queue-1 read up to offset 3000 of 3248"),
            "{}",
            p[0].what
        );
        let p = events(&[CONFIG]).problems();
        assert_eq!(p[0].kind, ProblemKind::Unknown);
        assert!(p[0].what.contains("no final read"));
    }

    #[test]
    fn a_txn_run_says_it_has_no_dlq() {
        let e = events(&[
            r#""process":"workload","type":"info","f":"txn-settings","value":{"isolation-level":"read_committed"}"#,
        ]);
        assert!(e.txn_workload);
        assert_eq!(e.dlq_status(Some(0)), DLQ_NONE_TXN);
        assert!(!RunEvents::default().txn_workload);
    }

    #[test]
    fn the_dlq_status_says_when_it_was_not_exercised() {
        let delivery = |dlq: u64, fail: u64| {
            format!(
                r#""process":"workload","type":"ok","f":"delivery","value":{{"dlq":{dlq},"sends-fail":{fail},"sends-info":0,"replayed":{dlq},"replayed-ok":{dlq},"dlq-read":{dlq}}}"#
            )
        };
        let e = events(&[CONFIG, &delivery(0, 0)]);
        assert_eq!(
            e.dlq_status(Some(0)),
            "DLQ not exercised in this run (no send failed or was unknown)"
        );
        let e = events(&[CONFIG, &delivery(0, 2)]);
        assert!(e.dlq_status(Some(0)).starts_with(DLQ_NOT_EXERCISED));
        let e = events(&[CONFIG, &delivery(3, 3)]);
        assert_eq!(
            e.dlq_status(Some(3)),
            "3 messages went to the DLQ; 3 replayed (3 acknowledged); 3 of them read by the end"
        );
        // No delivery event: the checker's count decides.
        assert_eq!(RunEvents::default().dlq_status(Some(0)), DLQ_NOT_EXERCISED);
        assert!(RunEvents::default()
            .dlq_status(Some(2))
            .starts_with("2 messages went to the DLQ"));
    }

    fn ssh(node: &str, kind: &str, ms: u64) -> String {
        format!(
            r#""process":"control","type":"info","f":"ssh-reconnect","value":{{"node":"{node}","kind":"{kind}","attempts":1,"elapsed_ms":{ms},"cause":"x"}}"#
        )
    }

    #[test]
    fn dropped_and_reconnected_sessions_are_counted_and_named() {
        let lines = [
            CONFIG.to_string(),
            ssh("n3", "dropped", 0),
            ssh("n1", "dropped", 0),
            ssh("n3", "reconnected", 150),
            ssh("n1", "reconnected", 360),
            COMPLETE.to_string(),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let e = events(&refs);
        assert_eq!(
            e.ssh_sessions_summary().unwrap(),
            "SSH sessions: 2 dropped, 2 reconnected (in 0.1-0.4 s), none given up: n1, n3"
        );
        let j = e.ssh_sessions_json();
        assert_eq!(
            (
                j["dropped"].clone(),
                j["reconnected"].clone(),
                j["gave-up"].clone()
            ),
            (json!(2), json!(2), json!(0))
        );
        assert_eq!(j["events"][0]["node"], "n3");
        assert_eq!(j["events"][0]["at_s"], 2.0);
        // Informational: the outcome is not changed by them.
        assert!(e.problems().is_empty());
    }

    #[test]
    fn a_session_given_up_on_is_named() {
        let lines = [ssh("n2", "dropped", 0), ssh("n2", "gave-up", 90_000)];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let s = events(&refs).ssh_sessions_summary().unwrap();
        assert!(
            s.starts_with("SSH sessions: 1 dropped, 0 reconnected, 1 given up (n2"),
            "{s}"
        );
    }

    #[test]
    fn without_session_events_nothing_is_said() {
        let e = events(&[CONFIG, COMPLETE]);
        assert_eq!(e.ssh_sessions_summary(), None);
        assert_eq!(e.ssh_sessions_json(), Value::Null);
    }
}
