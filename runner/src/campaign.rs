//! `splitbrain campaign FILE.toml`: a list and/or matrix of tests, run one
//! after another, then a summary table.
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
//! axes (in file order), named `<campaign>-<label>-<label>...`.

use super::run::cancel_flag;
use crate::run::config::TestConfig;
use crate::run::{self, RunOutcome};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use toml::{Table, Value};

/// Run a campaign of tests (list or matrix) one after another and print a
/// summary table.
///
/// Exits 0 when every test passed, 1 when some did not, 2 when a test could
/// not run.
#[derive(Debug, clap::Args)]
pub struct CampaignArgs {
    /// The campaign file (see campaigns/).
    pub file: PathBuf,
    /// Store directory.
    #[arg(long, default_value = crate::store::DEFAULT_STORE)]
    pub store: PathBuf,
    /// Only print the tests the campaign would run, with their configs.
    #[arg(long)]
    pub dry_run: bool,
    /// Override every test's time limit (seconds), e.g. for a short CI run.
    #[arg(long)]
    pub time_limit: Option<u64>,
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
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The tests of a campaign file, in order.
pub fn expand(text: &str) -> anyhow::Result<Vec<TestConfig>> {
    let doc: Table = toml::from_str(text).context("the campaign is not valid TOML")?;
    for k in doc.keys() {
        if !matches!(
            k.as_str(),
            "name" | "description" | "defaults" | "test" | "matrix"
        ) {
            bail!(
                "campaign: unknown key {k:?}; use name, description, defaults, [[test]], [matrix]"
            );
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
        Some(_) => bail!("campaign: defaults must be a table"),
    };
    let mut tables: Vec<Table> = vec![];
    if let Some(tests) = doc.get("test") {
        let tests = tests
            .as_array()
            .context("campaign: use [[test]] for each test")?;
        for (i, t) in tests.iter().enumerate() {
            let t = t.as_table().context("campaign: each [[test]] is a table")?;
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
            .context("campaign: [matrix] must be a table")?;
        let axes: Vec<(&String, &Vec<Value>)> = axes
            .iter()
            .map(|(k, v)| {
                v.as_array()
                    .map(|a| (k, a))
                    .with_context(|| format!("campaign: matrix axis {k} must be a list"))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut combos: Vec<(Table, Vec<String>)> = vec![(defaults.clone(), vec![])];
        for (axis, values) in axes {
            if values.is_empty() {
                bail!("campaign: matrix axis {axis} is empty");
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
        bail!("campaign {name}: no [[test]] and no [matrix]: nothing to run");
    }
    tables
        .into_iter()
        .map(|t| {
            let cfg: TestConfig = Value::Table(t)
                .try_into()
                .context("campaign: a test has an unknown or mistyped field")?;
            cfg.validate()
                .map_err(|e| anyhow::anyhow!("campaign test {}: {e}", cfg.name))?;
            Ok(cfg)
        })
        .collect()
}

fn summary(rows: &[(String, Result<RunOutcome, String>)]) -> String {
    let mut out = format!(
        "{:<52} {:<6} {:>8}  {}\n",
        "TEST", "RESULT", "TIME", "OUTCOME / RUN"
    );
    for (name, r) in rows {
        match r {
            Ok(o) => {
                let result = if o.error.is_some() {
                    "ERROR"
                } else if o.passed {
                    "PASS"
                } else {
                    "FAIL"
                };
                // The checker's verdict on the history, then whether that is
                // what the test expected (an incident test *expects* anomalies).
                let verdict = if o.valid {
                    "history valid"
                } else {
                    "history invalid"
                };
                out.push_str(&format!(
                    "{:<52} {:<6} {:>7.0}s  {verdict}; {}{}\n{:<69}{}\n",
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
            Err(e) => out.push_str(&format!("{name:<52} {:<6} {:>8}  {e}\n", "ERROR", "-")),
        }
    }
    out
}

/// Runs the command.
pub fn run(args: CampaignArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the campaign {}", args.file.display()))?;
    let mut tests = expand(&text)?;
    if let Some(t) = args.time_limit {
        for c in &mut tests {
            c.time_limit = t;
        }
    }
    if args.dry_run {
        for t in &tests {
            println!("# {}\n{}", t.name, t.to_toml());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cancel = cancel_flag()?;
    let mut rows = vec![];
    for cfg in tests {
        if cancel.load(Ordering::SeqCst) {
            rows.push((cfg.name.clone(), Err("skipped after Ctrl-C".to_string())));
            continue;
        }
        let name = cfg.name.clone();
        let r = run::run_test(cfg, &args.store, cancel.clone()).map_err(|e| format!("{e:#}"));
        rows.push((name, r));
        // Let the previous run's sockets and namespaces settle.
        std::thread::sleep(Duration::from_secs(1));
    }
    print!("{}", summary(&rows));
    let code = if rows
        .iter()
        .any(|(_, r)| r.as_ref().map_or(true, |o| o.error.is_some()))
    {
        ExitCode::from(2)
    } else if rows.iter().all(|(_, r)| r.as_ref().is_ok_and(|o| o.passed)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    Ok(code)
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
