//! Reports of a run, all built from its stored history in one pass:
//! `results.json` (verdict, anomalies, stats, fault timeline; schema in
//! docs/results.md), `junit.xml` (one test case per checker) and
//! `report.html` (one self-contained page with SVG plots).

pub mod html;
pub mod junit;
pub mod stats;
pub mod svg;

use crate::error::{Result, RunError};
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
}

/// Reads a history once, feeding both the checkers and the statistics.
pub fn analyze(history: &Path, options: &CheckOptions) -> Result<Analysis> {
    let mut reader = HistoryReader::open(history).map_err(RunError::HistoryOpen)?;
    let mut checker = HistoryChecker::new(options);
    let mut stats = StatsCollector::new();
    while let Some(op) = reader.next_op() {
        let op = op.map_err(RunError::HistoryMalformed)?;
        checker
            .observe(&op)
            .map_err(|source| RunError::HistoryUnjudgeable {
                path: history.to_path_buf(),
                source,
            })?;
        stats.observe(&op);
    }
    let operations = reader.ops_read();
    let warnings = reader.finish().iter().map(ToString::to_string).collect();
    if operations == 0 {
        return Err(RunError::EmptyHistory {
            path: history.to_path_buf(),
        });
    }
    Ok(Analysis {
        history: history.to_path_buf(),
        operations,
        warnings,
        verdict: checker.finish(),
        stats: stats.finish(),
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

/// How a run's verdict compares with what its test expected.
///
/// A test may expect anomalies (`expect = ["split-brain"]` in its TOML): it
/// then *passes* when exactly those anomalies are found, no more, no fewer —
/// except anomalies it *tolerates* (`tolerate = ["nonmonotonic-poll"]`),
/// which may or may not appear. Without either it passes when the history
/// is valid.
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
}

impl Outcome {
    /// Compares a verdict with the expected and tolerated anomalies.
    pub fn of(verdict: &Verdict, expected: &[String], tolerated: &[String]) -> Outcome {
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
        }
    }

    /// True when exactly the expected anomalies were found.
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        let tolerated = if self.tolerated.is_empty() {
            String::new()
        } else {
            format!(" (and the tolerated {})", list(&self.tolerated))
        };
        match (self.passed(), self.expected.is_empty()) {
            (true, true) => format!("PASS: no anomalies{tolerated}"),
            (true, false) => format!(
                "PASS: found exactly the expected {}{tolerated}",
                list(&self.expected)
            ),
            (false, _) => {
                let mut parts = vec![];
                if !self.unexpected.is_empty() {
                    parts.push(format!("unexpected {}", list(&self.unexpected)));
                }
                if !self.missing.is_empty() {
                    parts.push(format!("expected but not found {}", list(&self.missing)));
                }
                format!("FAIL: {}", parts.join("; "))
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
}

/// The results.json document.
pub fn results_json(analysis: &Analysis, info: &RunInfo) -> Value {
    let v = &analysis.verdict;
    let outcome = Outcome::of(v, &info.expect, &info.tolerate);
    json!({
        "test": info.test,
        "valid": v.valid,
        "expect": info.expect,
        "tolerate": info.tolerate,
        "passed": outcome.passed(),
        "outcome": outcome.describe(),
        "interrupted": info.interrupted,
        "history": analysis.history,
        "operations": analysis.operations,
        "warnings": analysis.warnings,
        "checkers": v.checkers,
        "counts": v.counts,
        "anomalies": v.anomalies,
        "stats": analysis.stats.to_json(),
        "faults": analysis.stats.faults,
        "nemesis-events": analysis.stats.nemesis,
        "config": info.config,
    })
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
    if !path.exists() {
        return Ok(RunInfo {
            test: fallback_name,
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
        let o = Outcome::of(&v, &["split-brain".into()], &[]);
        assert!(o.passed(), "{}", o.describe());
        let o = Outcome::of(&v, &[], &[]);
        assert!(!o.passed());
        assert!(o.describe().contains("unexpected split-brain"));
        let o = Outcome::of(&v, &["split-brain".into(), "lost-write".into()], &[]);
        assert!(!o.passed());
        assert!(o.describe().contains("expected but not found lost-write"));
        let clean = verdict_with(&["unseen"]);
        assert!(Outcome::of(&clean, &[], &[]).passed());
        // Tolerated: may appear or not.
        let o = Outcome::of(&v, &[], &["split-brain".into()]);
        assert!(o.passed());
        assert!(
            o.describe().contains("tolerated split-brain"),
            "{}",
            o.describe()
        );
        assert!(Outcome::of(&clean, &[], &["duplicate".into()]).passed());
        let o = Outcome::of(&v, &[], &["duplicate".into()]);
        assert!(!o.passed());
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
