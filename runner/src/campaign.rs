//! Campaigns: a list and/or matrix of tests (what `splitbrain campaign
//! FILE.toml` runs), run one after another, then a summary table.
//!
//! ```toml
//! name = "kills"                 # campaign name (prefix of matrix test names)
//! [defaults]                     # merged into every test (TestConfig fields)
//! time_limit = 60
//! nemesis.faults = ["kill:kafka"]
//! [[test]]                       # explicit tests (defaults merged under them)
//! name = "kills-safe"
//! [[matrix.kafka]]               # matrix axes: each axis a list of values for
//! label = "safe"                 # that field; a table may carry a `label`
//! acks = "all"                   # naming it in the test name
//! ```
//!
//! Tests of `[[test]]` run first, then every combination of the matrix
//! axes (in file order), named `<campaign>-<label>-<label>...`, each label
//! a slug (`splitbrain_core::slug`).

use crate::error::{Result, RunError};
use crate::report::Status;
use crate::run::config::TestConfig;
use crate::run::interrupt::Interrupt;
use crate::run::{self, RunOutcome};
use std::path::Path;
use std::time::Duration;
use toml::{Table, Value};

fn refuse(reason: impl Into<String>) -> RunError {
    RunError::Campaign {
        reason: reason.into(),
    }
}

/// Merges `over` into `base`, tables recursively.
fn merge(base: &mut Table, over: &Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Sets `path` (dotted) in `table` to `value`, merging tables.
fn set_path(table: &mut Table, path: &str, value: &Value) {
    let mut parts = path.split('.').peekable();
    let mut t = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            match (t.get_mut(p), value) {
                (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
                _ => {
                    t.insert(p.to_string(), value.clone());
                }
            }
            return;
        }
        t = match t
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
        {
            Value::Table(inner) => inner,
            other => {
                *other = Value::Table(Table::new());
                other.as_table_mut().expect("just set")
            }
        };
    }
}

fn label_of(axis: &str, i: usize, v: &Value) -> String {
    let raw = match v {
        Value::Table(t) => t
            .get("label")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("{}{i}", axis.rsplit('.').next().unwrap_or(axis))),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join("+"),
        other => other.to_string(),
    };
    splitbrain_core::slug::slug(&raw, 100)
}

/// The tests of a campaign file, in order.
pub fn expand(text: &str) -> Result<Vec<TestConfig>> {
    let doc: Table = toml::from_str(text).map_err(|source| RunError::Toml {
        what: "the campaign is not valid TOML".into(),
        source,
    })?;
    for k in doc.keys() {
        if !matches!(
            k.as_str(),
            "name" | "description" | "defaults" | "test" | "matrix"
        ) {
            return Err(refuse(format!(
                "unknown key {k:?}; use name, description, defaults, [[test]], [matrix]"
            )));
        }
    }
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("campaign")
        .to_string();
    let defaults = match doc.get("defaults") {
        Some(Value::Table(t)) => t.clone(),
        None => Table::new(),
        Some(_) => return Err(refuse("defaults must be a table")),
    };
    let mut tables: Vec<Table> = vec![];
    if let Some(tests) = doc.get("test") {
        let tests = tests
            .as_array()
            .ok_or_else(|| refuse("use [[test]] for each test"))?;
        for (i, t) in tests.iter().enumerate() {
            let t = t
                .as_table()
                .ok_or_else(|| refuse("each [[test]] is a table"))?;
            let mut merged = defaults.clone();
            merge(&mut merged, t);
            if !merged.contains_key("name") {
                merged.insert("name".into(), Value::String(format!("{name}-{i}")));
            }
            tables.push(merged);
        }
    }
    if let Some(matrix) = doc.get("matrix") {
        let axes = matrix
            .as_table()
            .ok_or_else(|| refuse("[matrix] must be a table"))?;
        let axes: Vec<(&String, &Vec<Value>)> = axes
            .iter()
            .map(|(k, v)| {
                v.as_array()
                    .map(|a| (k, a))
                    .ok_or_else(|| refuse(format!("matrix axis {k} must be a list")))
            })
            .collect::<Result<_>>()?;
        let mut combos: Vec<(Table, Vec<String>)> = vec![(defaults.clone(), vec![])];
        for (axis, values) in axes {
            if values.is_empty() {
                return Err(refuse(format!("matrix axis {axis} is empty")));
            }
            let mut next = vec![];
            for (table, labels) in &combos {
                for (i, v) in values.iter().enumerate() {
                    let mut t = table.clone();
                    let mut v = v.clone();
                    if let Value::Table(vt) = &mut v {
                        vt.remove("label");
                    }
                    set_path(&mut t, axis, &v);
                    let mut l = labels.clone();
                    l.push(label_of(axis, i, values.get(i).unwrap_or(&v)));
                    next.push((t, l));
                }
            }
            combos = next;
        }
        for (mut t, labels) in combos {
            t.insert(
                "name".into(),
                Value::String(format!("{name}-{}", labels.join("-"))),
            );
            tables.push(t);
        }
    }
    if tables.is_empty() {
        return Err(refuse(format!(
            "{name} has no [[test]] and no [matrix]: nothing to run; add one"
        )));
    }
    tables
        .into_iter()
        .map(|t| {
            let cfg: TestConfig =
                Value::Table(t).try_into().map_err(|source| {
                    RunError::Toml {
                what: "campaign: a test has an unknown or mistyped field (fields: docs/running.md)"
                    .into(),
                source,
            }
                })?;
            cfg.validate()
                .map_err(|e| refuse(format!("test {}: {e}", cfg.name)))?;
            Ok(cfg)
        })
        .collect()
}

/// How one test of a campaign ended.
#[derive(Debug)]
pub enum TestResult {
    /// It ran (and may still have ended in an error, see
    /// [`RunOutcome::error`]).
    Ran(RunOutcome),
    /// It could not run; nothing was checked.
    Failed(RunError),
    /// Ctrl-C came before it started.
    Skipped,
}

/// One test of a campaign: its name and how it ended.
#[derive(Debug)]
pub struct CampaignRow {
    /// The test's name.
    pub name: String,
    /// How it ended.
    pub result: TestResult,
}

impl CampaignRow {
    /// The test could not run or complete (an error, or skipped), or its
    /// outcome is ERROR or UNKNOWN.
    pub fn is_error(&self) -> bool {
        match &self.result {
            TestResult::Ran(o) => {
                o.error.is_some() || matches!(o.status, Status::Error | Status::Unknown)
            }
            TestResult::Failed(_) | TestResult::Skipped => true,
        }
    }

    /// The test ran and passed.
    pub fn passed(&self) -> bool {
        matches!(&self.result, TestResult::Ran(o) if o.passed)
    }
}

/// Runs `tests` one after another, storing each under `store`; after
/// Ctrl-C (`interrupt`), the tests not started yet are skipped.
pub fn run_all(tests: Vec<TestConfig>, store: &Path, interrupt: &Interrupt) -> Vec<CampaignRow> {
    let mut rows = vec![];
    for cfg in tests {
        let name = cfg.name.clone();
        if interrupt.requested() {
            rows.push(CampaignRow {
                name,
                result: TestResult::Skipped,
            });
            continue;
        }
        let result = match run::run_test(cfg, store, interrupt.clone()) {
            Ok(outcome) => TestResult::Ran(outcome),
            Err(e) => TestResult::Failed(e),
        };
        rows.push(CampaignRow { name, result });
        // Let the previous run's sockets and namespaces settle.
        std::thread::sleep(Duration::from_secs(1));
    }
    rows
}

/// The summary table of a campaign: one row per test, its result, time,
/// verdict and run directory.
pub fn summary(rows: &[CampaignRow]) -> String {
    let mut out = format!(
        "{:<52} {:<7} {:>8}  {}\n",
        "TEST", "RESULT", "TIME", "OUTCOME / RUN"
    );
    for row in rows {
        let name = &row.name;
        match &row.result {
            TestResult::Ran(o) => {
                let result = if o.error.is_some() {
                    "ERROR"
                } else {
                    o.status.label()
                };
                // The checker's verdict on the history, then whether that is
                // what the test expected (an incident test *expects* anomalies).
                let verdict = if o.valid {
                    "history valid"
                } else {
                    "history invalid"
                };
                out.push_str(&format!(
                    "{:<52} {:<7} {:>7.0}s  {verdict}; {}{}\n{:<70}{}\n",
                    name,
                    result,
                    o.elapsed.as_secs_f64(),
                    o.summary,
                    o.error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default(),
                    "",
                    o.dir.display()
                ));
            }
            TestResult::Failed(e) => out.push_str(&format!(
                "{name:<52} {:<7} {:>8}  {}\n",
                "ERROR",
                "-",
                e.chain()
            )),
            TestResult::Skipped => out.push_str(&format!(
                "{name:<52} {:<7} {:>8}  skipped after Ctrl-C\n",
                "ERROR", "-"
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_matrices_expand_with_defaults() {
        let tests = expand(
            r#"
name = "kills"
[defaults]
time_limit = 30
nemesis.faults = ["kill:kafka"]
[[test]]
name = "kills-first"
seed = 5
[[matrix.kafka]]
label = "safe"
acks = "all"
[[matrix.kafka]]
label = "unsafe"
acks = "1"
idempotence = false
unclean_leader_election = true
[matrix]
"nemesis.faults" = [["kill:zk"], ["pause:kafka", "kill:kafka"]]
"#,
        )
        .unwrap();
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "kills-first",
                "kills-safe-kill-zk",
                "kills-safe-pause-kafka-kill-kafka",
                "kills-unsafe-kill-zk",
                "kills-unsafe-pause-kafka-kill-kafka"
            ]
        );
        assert_eq!(tests[0].seed, 5);
        assert_eq!(tests[0].nemesis.faults, vec!["kill:kafka"]);
        assert!(tests.iter().all(|t| t.time_limit == 30));
        assert_eq!(tests[3].kafka.acks, "1");
        assert!(tests[3].kafka.unclean_leader_election);
        assert_eq!(tests[3].kafka.min_insync_replicas, 2);
        assert_eq!(tests[4].nemesis.faults, vec!["pause:kafka", "kill:kafka"]);
    }

    #[test]
    fn bad_campaigns_are_refused() {
        assert!(expand("name = \"x\"\n").is_err());
        assert!(expand("[[test]]\nkafka.ack = \"1\"\n").is_err());
        assert!(expand("[[test]]\nexpect = [\"nope\"]\n").is_err());
        assert!(expand("[bogus]\n").is_err());
    }
}
