//! The shrinker's oracle on the real cluster: each candidate runs as a
//! test of its own (fresh environment and cluster, the original's config
//! and seed, the candidate's exact schedule and load length) up to `tries`
//! times, and is kept when any try finds every anomaly kind the original
//! found. Candidate runs are stored as `<test>-shrink` and link the
//! original; at the end the original and the minimal run link each other
//! (`shrunk-to`, `shrunk-from`), and the minimal run's directory gets the
//! minimal test file (`minimal.toml`) and the summary (`shrink.json`).

use super::{shrink, Candidate, Shrunk, Verdict};
use crate::error::{Result, RunError};
use crate::replay::{self, StoredTest};
use crate::report;
use crate::run::config::TestConfig;
use crate::run::interrupt::Interrupt;
use crate::run::{self, Planned};
use serde_json::{json, Value};
use splitbrain_checkers::CheckOptions;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The minimal test file, in the minimal run's directory.
pub const MINIMAL_FILE: &str = "minimal.toml";
/// The shrink's summary, in the minimal run's directory.
pub const SUMMARY_FILE: &str = "shrink.json";

/// How hard to try.
#[derive(Clone, Debug)]
pub struct ShrinkOptions {
    /// Runs per candidate at most (anomalies are probabilistic).
    pub tries: usize,
    /// Wall time for the whole shrink: no run starts that would not end
    /// within it (judged by the longest run so far).
    pub budget: Duration,
}

/// What a shrink did.
#[derive(Debug)]
pub struct ShrinkOutcome {
    /// The candidates tried and the minimal one.
    pub shrunk: Shrunk,
    /// Real runs spent.
    pub runs: usize,
    /// Wall time spent.
    pub wall: Duration,
    /// The minimal failing run (the original if nothing smaller failed).
    pub minimal_dir: PathBuf,
    /// The summary written to `shrink.json`.
    pub summary: Value,
}

/// The config a candidate runs with.
fn candidate_config(stored: &StoredTest, c: &Candidate) -> TestConfig {
    let mut cfg = stored.config.clone();
    let base = cfg.name.trim_end_matches("-shrink").to_string();
    cfg.name = format!("{}-shrink", &base[..base.len().min(90)]);
    cfg.time_limit = c.load_ms.div_ceil(1000).max(1);
    cfg.nemesis.schedule = Some(c.schedule(&stored.schedule.spec));
    cfg
}

/// The summary of one side (original or minimal).
fn side(c: &Candidate, run: &str) -> Value {
    json!({
        "run": run,
        "faults": c.faults.len(),
        "fault-seconds": c.fault_ms() as f64 / 1000.0,
        "load-seconds": c.load_ms as f64 / 1000.0,
        "schedule": c.faults.iter().map(|f| json!({
            "fault": f.fault, "pin": f.pin,
            "start-s": f.start_ms as f64 / 1000.0, "stop-s": f.stop_ms as f64 / 1000.0,
        })).collect::<Vec<_>>(),
    })
}

/// Regenerates a run's results.json and report (after its links changed).
fn rereport(dir: &Path) -> Result<()> {
    let info = report::load_run_info(dir)?;
    let analysis = report::analyze(&dir.join(report::HISTORY_FILE), &CheckOptions::default())?;
    report::write_all(dir, &analysis, &info)
}

/// Shrinks the failing run in `original` (see the module docs); `say`
/// gets one progress line per step.
pub fn shrink_run(
    original: &Path,
    store: &Path,
    options: &ShrinkOptions,
    interrupt: Interrupt,
    say: &mut dyn FnMut(&str),
) -> Result<ShrinkOutcome> {
    let started = Instant::now();
    let stored = replay::load(original)?;
    if stored.anomalies.is_empty() {
        return Err(RunError::Replay {
            what: format!(
                "{} found no anomaly: nothing to shrink; pass a failing run",
                original.display()
            ),
        });
    }
    let target: BTreeSet<String> = stored.anomalies.clone();
    let original_name = replay::store_name(original);
    let start = Candidate::of_schedule(&stored.schedule);
    say(&format!(
        "shrinking {original_name}: {}; anomalies {target:?}; up to {} tries per candidate, budget {:?}",
        start.describe(),
        options.tries,
        options.budget
    ));
    let mut runs = 0usize;
    let mut longest = Duration::ZERO;
    let mut failing_dirs: Vec<(Candidate, PathBuf)> = Vec::new();
    let mut tried = 0usize;
    let shrunk = shrink(start.clone(), |c| {
        tried += 1;
        for attempt in 1..=options.tries.max(1) {
            // A first run's length is unknown: guess load + 3 min.
            let expected = if longest.is_zero() {
                Duration::from_millis(c.load_ms) + Duration::from_secs(180)
            } else {
                longest
            };
            if interrupt.requested() || started.elapsed() + expected > options.budget {
                say("budget spent: stopping with the smallest failing test so far");
                return Verdict::OutOfBudget;
            }
            let cfg = candidate_config(&stored, c);
            let link = json!({"run": original_name, "anomalies": target});
            say(&format!(
                "run {}: candidate {tried} (try {attempt}/{}): {}",
                runs + 1,
                options.tries,
                c.describe()
            ));
            let run_started = Instant::now();
            let outcome = run::run_planned(
                cfg,
                store,
                interrupt.clone(),
                Planned {
                    links: vec![("shrink-candidate-of".into(), link)],
                },
            );
            runs += 1;
            longest = longest.max(run_started.elapsed());
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    say(&format!("  run failed to complete: {}", e.chain()));
                    continue;
                }
            };
            let found = replay::stored_anomalies(&outcome.dir).unwrap_or_default();
            let same = target.is_subset(&found) && outcome.error.is_none();
            say(&format!(
                "  {} in {:.0} s: found {found:?}: {}",
                replay::store_name(&outcome.dir),
                run_started.elapsed().as_secs_f64(),
                if same {
                    "still fails: kept"
                } else {
                    "not reproduced"
                }
            ));
            if same {
                failing_dirs.push((c.clone(), outcome.dir));
                return Verdict::Fails;
            }
        }
        Verdict::Passes
    });
    let minimal_dir = failing_dirs
        .iter()
        .rev()
        .find(|(c, _)| *c == shrunk.minimal)
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| original.to_path_buf());
    let minimal_name = replay::store_name(&minimal_dir);
    let wall = started.elapsed();
    let summary = json!({
        "original": side(&shrunk.original, &original_name),
        "minimal": side(&shrunk.minimal, &minimal_name),
        "anomalies": target,
        "tries-per-candidate": options.tries,
        "candidates-tried": shrunk.attempts.len(),
        "candidates-kept": shrunk.attempts.iter().filter(|a| a.verdict == Verdict::Fails).count(),
        "runs": runs,
        "wall-seconds": wall.as_secs(),
        "budget-seconds": options.budget.as_secs(),
        "stopped-by-budget": shrunk.out_of_budget,
        "attempts": shrunk.attempts.iter().map(|a| json!({
            "candidate": a.candidate.describe(), "verdict": format!("{:?}", a.verdict),
        })).collect::<Vec<_>>(),
    });
    let line = format!(
        "{} -> {} ({} runs, {} s)",
        shrunk.original.describe(),
        shrunk.minimal.describe(),
        runs,
        wall.as_secs()
    );
    let write = |name: &str, text: String| -> Result<()> {
        let path = minimal_dir.join(name);
        std::fs::write(&path, text).map_err(RunError::io(format!(
            "cannot write {}; is the store writable?",
            path.display()
        )))
    };
    let mut minimal_cfg = candidate_config(&stored, &shrunk.minimal);
    minimal_cfg.name = format!("{}-minimal", stored.config.name);
    write(MINIMAL_FILE, minimal_cfg.to_toml())?;
    write(SUMMARY_FILE, serde_json::to_string_pretty(&summary)? + "\n")?;
    if minimal_dir != original {
        replay::add_link(
            original,
            "shrunk-to",
            json!({"run": minimal_name, "summary": line}),
        )?;
        replay::add_link(
            &minimal_dir,
            "shrunk-from",
            json!({"run": original_name, "anomalies": target, "summary": line}),
        )?;
        rereport(original)?;
        rereport(&minimal_dir)?;
    }
    say(&format!(
        "minimal: {line}; test file {}",
        minimal_dir.join(MINIMAL_FILE).display()
    ));
    Ok(ShrinkOutcome {
        shrunk,
        runs,
        wall,
        minimal_dir,
        summary,
    })
}
