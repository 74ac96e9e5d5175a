//! `splitbrain report DIR`: regenerates results.json, junit.xml and
//! report.html of a stored run from its history (and its test.toml).

use crate::exit::Exit;
use anyhow::Context;
use splitbrain_checkers::CheckOptions;
use splitbrain_runner::report::{self, HISTORY_FILE};
use std::path::PathBuf;

/// Regenerate a run's reports (results.json, junit.xml, report.html) from its
/// stored history.
///
/// Exits 0 when the run passed (valid, or exactly its expected anomalies),
/// 1 when it failed, 2 on error or when the run's outcome is ERROR or
/// UNKNOWN (a fault error, the observer stopped early, an incomplete final
/// read: see docs/results.md).
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run directory (`store/<test>/<timestamp>` or `store/<test>/latest`)
    /// holding history.jsonl and, optionally, test.toml.
    pub dir: PathBuf,
    /// Examples to keep per anomaly.
    #[arg(long, value_name = "N", default_value_t = 10)]
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
}

/// Runs the command.
pub fn run(args: ReportArgs) -> anyhow::Result<Exit> {
    if !(args.controller_grace >= 0.0 && args.controller_grace.is_finite()) {
        anyhow::bail!("--controller-grace must be a non-negative number of seconds");
    }
    let history = args.dir.join(HISTORY_FILE);
    if !history.exists() {
        anyhow::bail!(
            "{} not found; pass a run directory such as store/<test>/latest",
            history.display()
        );
    }
    let info = report::load_run_info(&args.dir)?;
    let options = CheckOptions {
        examples: args.examples,
        controller_grace_ns: (args.controller_grace * 1e9) as u64,
        split_brain_min_samples: args.split_brain_samples,
    };
    let analysis = report::analyze(&history, &options)?;
    report::write_all(&args.dir, &analysis, &info).context("writing the reports")?;
    let outcome = report::Outcome::of_run(&analysis, &info);
    println!("{}", outcome.describe());
    println!("wrote {}", args.dir.join(report::REPORT_FILE).display());
    Ok(Exit::of_status(outcome.status()))
}
