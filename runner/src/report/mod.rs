//! Reports of a run, all built from its stored history in one pass:
//! `results.json` (verdict, anomalies, stats, fault timeline; schema in
//! docs/results.md), `junit.xml` (one test case per checker) and
//! `report.html` (one self-contained page with SVG plots).

pub mod html;
pub mod junit;
pub mod links;
pub mod run_events;
pub mod stats;
pub mod svg;
pub mod words;

use crate::error::{Result, RunError};
use run_events::{Problem, ProblemKind, RunEvents};
use serde_json::{json, Value};
use splitbrain_checkers::{catalog, CheckOptions, HistoryChecker, Verdict};
use splitbrain_core::history::HistoryReader;
use stats::{Stats, StatsCollector};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// File names inside a run directory.
pub const HISTORY_FILE: &str = "history.jsonl";
/// The test's full configuration (with its seed), as TOML.
pub const CONFIG_FILE: &str = "test.toml";
/// The verdict and stats.
pub const RESULTS_FILE: &str = "results.json";
/// JUnit XML for CI systems.
pub const JUNIT_FILE: &str = "junit.xml";
/// The HTML report.
pub const REPORT_FILE: &str = "report.html";

/// What a history says: the checkers' verdict and the run's statistics.
#[derive(Debug)]
pub struct Analysis {
    /// The history read.
    pub history: PathBuf,
    /// Lines read.
    pub operations: u64,
    /// Tolerated oddities of the history (truncated last line...).
    pub warnings: Vec<String>,
    /// Every checker's result.
    pub verdict: Verdict,
    /// Ops, latencies, throughput, faults, modes, controllers.
    pub stats: Stats,
    /// The run's own events: fault errors, the observer's stop, the final
    /// read, the workload's delivery counts.
    pub events: RunEvents,
    /// The operations the anomaly examples name, for their sentences.
    pub example_ops: words::OpRefs,
}

/// Reads a history once, feeding both the checkers and the statistics.
pub fn analyze(history: &Path, options: &CheckOptions) -> Result<Analysis> {
    let mut reader = HistoryReader::open(history).map_err(RunError::HistoryOpen)?;
    let mut checker = HistoryChecker::new(options);
    let mut stats = StatsCollector::new();
    let mut events = RunEvents::default();
    while let Some(op) = reader.next_op() {
        let op = op.map_err(RunError::HistoryMalformed)?;
        checker
            .observe(&op)
            .map_err(|source| RunError::HistoryUnjudgeable {
                path: history.to_path_buf(),
                source,
            })?;
        stats.observe(&op);
        events.observe(&op);
    }
    let operations = reader.ops_read();
    let warnings = reader.finish().iter().map(ToString::to_string).collect();
    if operations == 0 {
        return Err(RunError::EmptyHistory {
            path: history.to_path_buf(),
        });
    }
    let verdict = checker.finish();
    let example_ops = words::resolve_ops(history, &verdict)?;
    Ok(Analysis {
        history: history.to_path_buf(),
        operations,
        warnings,
        verdict,
        stats: stats.finish(),
        events,
        example_ops,
    })
}

/// The checker an anomaly belongs to.
pub fn checker_of(anomaly: &str) -> &'static str {
    catalog::checker_of(anomaly).unwrap_or(catalog::QUEUE)
}

/// Anomalies found (count > 0); informational findings (`unseen`,
/// `retry-duplicate`) excluded as they do not invalidate.
pub fn found(verdict: &Verdict) -> BTreeSet<String> {
    verdict
        .anomalies
        .iter()
        .filter(|(n, a)| a.count > 0 && catalog::is_anomaly(n))
        .map(|(n, _)| n.clone())
        .collect()
}

/// A run's outcome, in order of precedence: ERROR, then FAIL, then
/// UNKNOWN, then PASS (docs/results.md, "Outcomes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Exactly the expected anomalies, and the run did what it planned.
    Pass,
    /// An anomaly neither expected nor tolerated, or an expected one missing.
    Fail,
    /// The run did not test what it says: a fault error, the observer
    /// stopped early. Whatever the checkers found is still reported.
    Error,
    /// No verdict on loss can be given: the consumers did not read
    /// everything back (and nothing unexpected was found).
    Unknown,
}

impl Status {
    /// `PASS`, `FAIL`, `ERROR` or `UNKNOWN`: how results.json's `outcome`
    /// starts.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// How a run's verdict compares with what its test expected, and whether
/// the run itself can be trusted.
///
/// A test may expect anomalies (`expect = ["split-brain"]` in its TOML): it
/// then *passes* when exactly those anomalies are found, no more, no fewer —
/// except anomalies it *tolerates* (`tolerate = ["nonmonotonic-poll"]`),
/// which may or may not appear. Without either it passes when the history
/// is valid. A run with [`Problem`]s (from its own events,
/// [`RunEvents::problems`]) is ERROR or UNKNOWN instead, see [`Outcome::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Anomalies the test expected.
    pub expected: BTreeSet<String>,
    /// Expected but not found.
    pub missing: BTreeSet<String>,
    /// Found but neither expected nor tolerated.
    pub unexpected: BTreeSet<String>,
    /// Found and tolerated.
    pub tolerated: BTreeSet<String>,
    /// Why the run is ERROR or UNKNOWN (empty when neither).
    pub problems: Vec<Problem>,
}

impl Outcome {
    /// Compares a verdict with the expected and tolerated anomalies; the
    /// run's `problems` may make it ERROR or UNKNOWN.
    pub fn of(
        verdict: &Verdict,
        expected: &[String],
        tolerated: &[String],
        problems: Vec<Problem>,
    ) -> Outcome {
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        let found = found(verdict);
        let (tolerated, unexpected) = found
            .difference(&expected)
            .cloned()
            .partition(|n| tolerated.contains(n));
        Outcome {
            missing: expected.difference(&found).cloned().collect(),
            unexpected,
            tolerated,
            expected,
            problems,
        }
    }

    /// The outcome of an analysed run with its test's expectations.
    pub fn of_run(analysis: &Analysis, info: &RunInfo) -> Outcome {
        Outcome::of(
            &analysis.verdict,
            &info.expect,
            &info.tolerate,
            analysis.events.problems(),
        )
    }

    fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }

    /// ERROR when the run did not test what it planned (whatever was
    /// found); else FAIL when an anomaly was found that the test neither
    /// expects nor tolerates (proof, whatever was not read); else UNKNOWN
    /// when the final read was incomplete and nothing is missing but queue
    /// anomalies (which may sit in what was not read); else FAIL when an
    /// expected anomaly is missing; else PASS.
    pub fn status(&self) -> Status {
        if self.has(ProblemKind::Error) {
            Status::Error
        } else if !self.unexpected.is_empty() {
            Status::Fail
        } else if self.has(ProblemKind::Unknown)
            && self
                .missing
                .iter()
                .all(|n| catalog::checker_of(n) == Some(catalog::QUEUE))
        {
            Status::Unknown
        } else if !self.missing.is_empty() {
            Status::Fail
        } else {
            Status::Pass
        }
    }

    /// True when the outcome is PASS.
    pub fn passed(&self) -> bool {
        self.status() == Status::Pass
    }

    /// The checkers' findings against the expectations, without the status:
    /// "no anomalies", "found exactly the expected ...", "unexpected ...".
    pub fn expectations(&self) -> String {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        let tolerated = if self.tolerated.is_empty() {
            String::new()
        } else {
            format!(" (and the tolerated {})", list(&self.tolerated))
        };
        if self.missing.is_empty() && self.unexpected.is_empty() {
            if self.expected.is_empty() {
                format!("no anomalies{tolerated}")
            } else {
                format!(
                    "found exactly the expected {}{tolerated}",
                    list(&self.expected)
                )
            }
        } else {
            let mut parts = vec![];
            if !self.unexpected.is_empty() {
                parts.push(format!("unexpected {}", list(&self.unexpected)));
            }
            if !self.missing.is_empty() {
                parts.push(format!("expected but not found {}", list(&self.missing)));
            }
            parts.join("; ")
        }
    }

    /// One line for humans, starting with the status: `PASS: ...`,
    /// `FAIL: ...`, `ERROR: <why>; checkers: ...`, `UNKNOWN: <why>; ...`.
    pub fn describe(&self) -> String {
        let status = self.status();
        let why = |kind: ProblemKind| {
            self.problems
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.what.clone())
                .collect::<Vec<_>>()
                .join("; ")
        };
        match status {
            Status::Pass | Status::Fail => {
                let also = if self.has(ProblemKind::Unknown) {
                    format!("; also: {}", why(ProblemKind::Unknown))
                } else {
                    String::new()
                };
                format!("{}: {}{also}", status.label(), self.expectations())
            }
            Status::Error | Status::Unknown => {
                let kind = if status == Status::Error {
                    ProblemKind::Error
                } else {
                    ProblemKind::Unknown
                };
                format!(
                    "{}: {}; checkers: {}",
                    status.label(),
                    why(kind),
                    self.expectations()
                )
            }
        }
    }
}

/// What a report shows besides the analysis: the test's name and config.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// Test name.
    pub test: String,
    /// The test's full configuration as JSON (from its TOML), if known.
    pub config: Option<Value>,
    /// Anomalies the test expects (see [`Outcome`]).
    pub expect: Vec<String>,
    /// Anomalies the test tolerates (see [`Outcome`]).
    pub tolerate: Vec<String>,
    /// The run ended early (Ctrl-C or an error): what was recorded is
    /// still checked, and the report says why it is partial.
    pub interrupted: Option<String>,
    /// The servers' side of the anomaly examples (`evidence.json`), if
    /// collected.
    pub evidence: Option<crate::evidence::EvidenceFile>,
    /// Its links to other runs (`links.json`: replay, shrink), if any.
    pub links: Option<Value>,
}

/// The results.json document.
pub fn results_json(analysis: &Analysis, info: &RunInfo) -> Value {
    let v = &analysis.verdict;
    let outcome = Outcome::of_run(analysis, info);
    json!({
        "test": info.test,
        "valid": v.valid,
        "expect": info.expect,
        "tolerate": info.tolerate,
        "passed": outcome.passed(),
        "status": outcome.status().label(),
        "outcome": outcome.describe(),
        "problems": outcome.problems.iter().map(Problem::to_json).collect::<Vec<_>>(),
        "interrupted": info.interrupted,
        "delivery": delivery_json(analysis),
        "ssh-sessions": analysis.events.ssh_sessions_json(),
        "history": analysis.history,
        "operations": analysis.operations,
        "warnings": analysis.warnings,
        "checkers": v.checkers,
        "counts": v.counts,
        "anomalies": anomalies_json(v, info),
        "stats": analysis.stats.to_json(),
        "faults": analysis.stats.faults,
        "nemesis-events": analysis.stats.nemesis,
        "config": info.config,
        "evidence-summary": info.evidence.as_ref().map(crate::evidence::EvidenceFile::summary),
        "links": links::links_json(analysis, info),
    })
}

/// The anomalies as results.json shows them: each example with its
/// `evidence` object when evidence was collected.
fn anomalies_json(v: &Verdict, info: &RunInfo) -> Value {
    let mut a = serde_json::to_value(&v.anomalies).unwrap_or(Value::Null);
    if let Some(file) = &info.evidence {
        crate::evidence::attach(&mut a, file);
    }
    a
}

/// The workload's delivery counts as recorded (`null` when the history has
/// none), with `dlq-status`: "DLQ not exercised in this run" when no
/// message went to the DLQ.
pub fn delivery_json(analysis: &Analysis) -> Value {
    let status = analysis
        .events
        .dlq_status(analysis.verdict.counts.get("dlq").copied());
    match &analysis.events.delivery {
        Some(Value::Object(d)) => {
            let mut d = d.clone();
            d.insert("dlq-status".into(), json!(status));
            Value::Object(d)
        }
        _ => json!({"dlq-status": status}),
    }
}

/// Writes results.json, junit.xml and report.html into `dir`.
pub fn write_all(dir: &Path, analysis: &Analysis, info: &RunInfo) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(RunError::io(format!(
            "cannot write {}; is the directory writable?",
            path.display()
        )))
    };
    let results = serde_json::to_string_pretty(&results_json(analysis, info))?;
    write(RESULTS_FILE, results + "\n")?;
    write(JUNIT_FILE, junit::render(analysis, info))?;
    write(REPORT_FILE, html::render(analysis, info))?;
    Ok(())
}

/// Reads a run directory's test config (`test.toml`), if present: the
/// config as JSON, its `name`, `expect` and `tolerate` lists.
pub fn load_run_info(dir: &Path) -> Result<RunInfo> {
    let path = dir.join(CONFIG_FILE);
    let fallback_name = dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "test".into());
    let links = std::fs::read_to_string(dir.join(crate::replay::LINKS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .filter(Value::is_object);
    if !path.exists() {
        return Ok(RunInfo {
            test: fallback_name,
            evidence: crate::evidence::load(dir),
            links,
            ..RunInfo::default()
        });
    }
    let text = std::fs::read_to_string(&path).map_err(RunError::io(format!(
        "cannot read {}; check its permissions",
        path.display()
    )))?;
    let config: toml::Value = toml::from_str(&text).map_err(|source| RunError::Toml {
        what: format!("{} is not valid TOML; fix or remove it", path.display()),
        source,
    })?;
    let config = serde_json::to_value(config)?;
    let list = |key: &str| -> Vec<String> {
        config
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let expect = list("expect");
    let tolerate = list("tolerate");
    let test = config
        .get("name")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or(fallback_name);
    let interrupted = std::fs::read_to_string(dir.join("interrupted.txt"))
        .ok()
        .map(|s| s.trim().to_string());
    Ok(RunInfo {
        test,
        config: Some(config),
        expect,
        tolerate,
        interrupted,
        evidence: crate::evidence::load(dir),
        links,
    })
}

/// XML/HTML escaping for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_checkers::Anomaly;
    use std::collections::BTreeMap;

    fn verdict_with(found: &[&str]) -> Verdict {
        let mut v = Verdict::default();
        let mut a = BTreeMap::new();
        for name in ["lost-write", "split-brain", "unseen", "duplicate"] {
            let count = u64::from(found.contains(&name));
            a.insert(
                name.to_string(),
                Anomaly {
                    count,
                    examples: vec![],
                },
            );
        }
        v.merge("queue", a, BTreeMap::new());
        v
    }

    #[test]
    fn outcome_passes_on_exactly_the_expected() {
        let v = verdict_with(&["split-brain", "unseen"]);
        let o = Outcome::of(&v, &["split-brain".into()], &[], vec![]);
        assert!(o.passed(), "{}", o.describe());
        let o = Outcome::of(&v, &[], &[], vec![]);
        assert!(!o.passed());
        assert!(o.describe().contains("unexpected split-brain"));
        let o = Outcome::of(
            &v,
            &["split-brain".into(), "lost-write".into()],
            &[],
            vec![],
        );
        assert!(!o.passed());
        assert!(o.describe().contains("expected but not found lost-write"));
        let clean = verdict_with(&["unseen"]);
        assert!(Outcome::of(&clean, &[], &[], vec![]).passed());
        // Tolerated: may appear or not.
        let o = Outcome::of(&v, &[], &["split-brain".into()], vec![]);
        assert!(o.passed());
        assert!(
            o.describe().contains("tolerated split-brain"),
            "{}",
            o.describe()
        );
        assert!(Outcome::of(&clean, &[], &["duplicate".into()], vec![]).passed());
        let o = Outcome::of(&v, &[], &["duplicate".into()], vec![]);
        assert!(!o.passed());
    }

    fn problem(kind: ProblemKind) -> Vec<Problem> {
        vec![Problem {
            kind,
            what: "what happened".into(),
        }]
    }

    #[test]
    fn errors_come_first_then_failures_then_unknowns() {
        let clean = verdict_with(&["unseen"]);
        let o = Outcome::of(&clean, &[], &[], problem(ProblemKind::Error));
        assert_eq!(o.status(), Status::Error);
        assert!(!o.passed());
        assert_eq!(o.describe(), "ERROR: what happened; checkers: no anomalies");
        // An error outranks even an unexpected anomaly, which it still names.
        let bad = verdict_with(&["lost-write"]);
        let o = Outcome::of(&bad, &[], &[], problem(ProblemKind::Error));
        assert_eq!(o.status(), Status::Error);
        assert!(o.describe().ends_with("checkers: unexpected lost-write"));
        // An unexpected anomaly is proof, whatever was not read.
        let o = Outcome::of(&bad, &[], &[], problem(ProblemKind::Unknown));
        assert_eq!(o.status(), Status::Fail);
        assert!(o
            .describe()
            .starts_with("FAIL: unexpected lost-write; also: what happened"));
        // Nothing found, but not everything read: unknown.
        let o = Outcome::of(&clean, &[], &[], problem(ProblemKind::Unknown));
        assert_eq!(o.status(), Status::Unknown);
        assert_eq!(
            o.describe(),
            "UNKNOWN: what happened; checkers: no anomalies"
        );
        // A missing queue anomaly may sit in what was not read ...
        let o = Outcome::of(
            &clean,
            &["lost-write".into()],
            &[],
            problem(ProblemKind::Unknown),
        );
        assert_eq!(o.status(), Status::Unknown);
        // ... a missing split brain does not depend on the read.
        let o = Outcome::of(
            &clean,
            &["split-brain".into()],
            &[],
            problem(ProblemKind::Unknown),
        );
        assert_eq!(o.status(), Status::Fail);
        assert_eq!(Outcome::of(&clean, &[], &[], vec![]).status(), Status::Pass);
    }

    #[test]
    fn escape_escapes() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1}b"), "ab");
    }

    #[test]
    fn anomalies_map_to_checkers() {
        assert_eq!(checker_of("multiple-controllers"), "split-brain");
        assert_eq!(checker_of("lost-write"), "queue");
    }
}
