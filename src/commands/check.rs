//! `splitbrain check HISTORY`: reads a history once, streaming, runs every
//! checker that has input in it, prints the verdict and writes results.json.

use crate::exit::Exit;
use anyhow::{bail, Context};
use serde_json::json;
use splitbrain_checkers::{CheckOptions, HistoryChecker, Verdict};
use splitbrain_core::history::HistoryReader;
use splitbrain_runner::report::run_events::{Problem, RunEvents};
use splitbrain_runner::report::Outcome;
use std::path::PathBuf;
use std::time::Instant;

/// Check a history for lost, duplicated, reordered or phantom messages, DLQ
/// gaps and split brain.
///
/// Reads splitbrain's own history (HISTORY), or with `--format` what other
/// tools recorded: `--format kafka-verifiable --producer P.jsonl [--producer
/// ...] --consumer C.jsonl [...]` judges the output of Kafka's
/// VerifiableProducer and VerifiableConsumer (run with --verbose); the
/// mapping is in docs/history.md. `--format jepsen HISTORY.edn` judges the
/// history.edn of Jepsen's Kafka test. Such histories had no dead-letter
/// queue, so `dlq-lost` does not apply to them, and their messages are
/// numbered per log.
///
/// Exits 0 when the history is valid, 1 when anomalies were found, 2 on bad
/// input or usage, or when the history's own events make the run ERROR (a
/// `fault-error`, the observer stopped early) or UNKNOWN (an incomplete
/// final read): see docs/results.md.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The history file (JSON Lines; see docs/history.md). With `--format
    /// kafka-verifiable`, give `--producer`/`--consumer` instead.
    #[arg(required_unless_present_any = ["producer", "consumer"])]
    pub history: Option<PathBuf>,
    /// Format of what to check.
    #[command(flatten)]
    pub input: super::foreign::ForeignInput,
    /// Also write the full result as JSON here (schema: docs/results.md).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Examples to keep and print per anomaly.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub examples: usize,
    /// Seconds a broker may name a controller that ZooKeeper no longer
    /// registers before it is counted as `stale-controller-view`
    /// (informational, not an anomaly).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub controller_grace: f64,
    /// Consecutive observer samples a split-brain anomaly (`split-brain`,
    /// `multiple-controllers`, `divergent-ensembles`) must hold in before it
    /// is reported.
    #[arg(long, value_name = "N", default_value_t = splitbrain_checkers::splitbrain::DEFAULT_MIN_SAMPLES,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub split_brain_samples: u32,
    /// Print time, throughput and peak memory to stderr (for benchmarks).
    #[arg(long)]
    pub stats: bool,
}

/// Runs the check.
pub fn run(args: CheckArgs) -> anyhow::Result<Exit> {
    if !(args.controller_grace >= 0.0 && args.controller_grace.is_finite()) {
        bail!("--controller-grace must be a non-negative number of seconds");
    }
    let start = Instant::now();
    let options = CheckOptions {
        examples: args.examples,
        controller_grace_ns: (args.controller_grace * 1e9) as u64,
        split_brain_min_samples: args.split_brain_samples,
    };
    let (mut reader, history_name, import_warnings) = match &args.history {
        Some(path) if args.input.format == super::foreign::Format::Splitbrain => {
            let file = std::fs::File::open(path).with_context(|| {
                format!(
                    "cannot open {}; pass the history.jsonl of a run",
                    path.display()
                )
            })?;
            let src: Box<dyn std::io::Read> = Box::new(file);
            (HistoryReader::new(src, path), path.clone(), Vec::new())
        }
        _ => {
            let converted = super::foreign::convert(&args.input, args.history.as_deref())?;
            let name = PathBuf::from(format!("<{} converted>", args.input.format.name()));
            let src: Box<dyn std::io::Read> = Box::new(std::io::Cursor::new(converted.history));
            (
                HistoryReader::new(src, name.clone()),
                name,
                converted.warnings,
            )
        }
    };
    let mut checker = HistoryChecker::new(&options);
    let mut events = RunEvents::default();
    while let Some(op) = reader.next_op() {
        let op = op.context("the history is malformed; fix or truncate the named line")?;
        checker.observe(&op).with_context(|| {
            format!(
                "{} is not a history the checkers can judge",
                history_name.display()
            )
        })?;
        events.observe(&op);
    }
    let ops = reader.ops_read();
    let mut warnings: Vec<String> = import_warnings;
    warnings.extend(reader.finish().iter().map(ToString::to_string));
    if ops == 0 {
        bail!(
            "{} holds no operations: check that it is the history of a run that started",
            history_name.display()
        );
    }
    let verdict = checker.finish();
    let elapsed = start.elapsed();

    print_summary(&verdict, ops, &warnings, args.examples);
    // No expectations here: the run's own events may still make it ERROR
    // or UNKNOWN.
    let outcome = Outcome::of(&verdict, &[], &[], events.problems());
    for p in &outcome.problems {
        println!(
            "{}",
            p.to_json()["kind"].as_str().unwrap_or_default().to_owned() + ": " + &p.what
        );
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "valid": verdict.valid,
            "status": outcome.status().label(),
            "problems": outcome.problems.iter().map(Problem::to_json).collect::<Vec<_>>(),
            "history": history_name,
            "operations": ops,
            "warnings": warnings,
            "checkers": verdict.checkers,
            "counts": verdict.counts,
            "anomalies": verdict.anomalies,
        });
        let text = serde_json::to_string_pretty(&doc).context("serializing results")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}; choose a writable path", path.display()))?;
    }
    if args.stats {
        let secs = elapsed.as_secs_f64();
        let peak = peak_rss_bytes();
        eprintln!(
            "stats: {ops} ops in {secs:.3} s = {:.0} ops/s; peak RSS {} bytes = {:.1} bytes/op",
            ops as f64 / secs,
            peak.map_or("unknown".into(), |b| b.to_string()),
            peak.map_or(f64::NAN, |b| b as f64 / ops as f64)
        );
    }
    Ok(Exit::of_status(outcome.status()))
}

fn print_summary(verdict: &Verdict, ops: u64, warnings: &[String], examples: usize) {
    let found: Vec<(&String, u64)> = verdict
        .anomalies
        .iter()
        .filter(|(_, a)| a.count > 0)
        .map(|(n, a)| (n, a.count))
        .collect();
    if verdict.valid {
        println!(
            "VALID: {ops} operations checked ({}); no anomalies",
            verdict.checkers.join(", ")
        );
    } else {
        let list: Vec<String> = found.iter().map(|(n, c)| format!("{n} {c}")).collect();
        println!(
            "INVALID: {ops} operations checked ({}); found {}",
            verdict.checkers.join(", "),
            list.join(", ")
        );
    }
    for w in warnings {
        println!("warning: {w}");
    }
    let counts: Vec<String> = verdict
        .counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("counts: {}", counts.join(" "));
    for (name, anomaly) in &verdict.anomalies {
        if anomaly.count == 0 {
            continue;
        }
        let note = if name == splitbrain_checkers::verdict::UNSEEN {
            " (not proof of loss: nobody read that far)"
        } else if !splitbrain_checkers::catalog::is_anomaly(name) {
            " (informational: not an anomaly)"
        } else {
            ""
        };
        println!("{name}: {}{note}", anomaly.count);
        for ex in anomaly.examples.iter().take(examples) {
            println!("  {ex}");
        }
        if anomaly.count as usize > anomaly.examples.len().min(examples) {
            println!("  ...");
        }
    }
}

/// Peak resident set size of this process (Linux `VmHWM`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
