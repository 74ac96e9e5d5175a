//! `splitbrain explain RUN_DIR [--msg M | --anomaly NAME [--n K]]`: the
//! servers' side of a stored run's anomalies (a timeline in words, the log
//! lines, each replica's segments), from its `evidence.json`, without a
//! cluster. A run stored without evidence gets the log evidence built now
//! from its history and collected server logs (no segments).

use crate::exit::Exit;
use splitbrain_runner::evidence;
use std::path::PathBuf;

/// Print the servers' side of a stored run's anomaly examples: a timeline
/// in words ("31.4 s broker 2 truncates queue-1 to offset 540"), whether
/// the replicas' segments confirm the anomaly and whether the logs explain
/// it, and the raw log lines. Exits 0 when something was printed, 1 when
/// nothing matched, 2 on error.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The run directory (`store/<test>/<timestamp>` or `store/<test>/latest`).
    pub dir: PathBuf,
    /// Only the examples about this message.
    #[arg(long, value_name = "M", conflicts_with = "anomaly")]
    pub msg: Option<u64>,
    /// Only the examples of this anomaly (e.g. lost-write).
    #[arg(long, value_name = "NAME")]
    pub anomaly: Option<String>,
    /// With --anomaly: only its K-th example (from 0).
    #[arg(long = "n", value_name = "K", requires = "anomaly")]
    pub n: Option<usize>,
    /// Leave out the raw log lines.
    #[arg(long)]
    pub brief: bool,
    /// Assemble the evidence again from the stored segment dumps, history
    /// and logs (as this version reads them) instead of printing the stored
    /// evidence.json.
    #[arg(long)]
    pub rebuild: bool,
}

/// Runs the command.
pub fn run(args: ExplainArgs) -> anyhow::Result<Exit> {
    if !args.dir.is_dir() {
        anyhow::bail!(
            "{} is not a run directory; pass one such as store/<test>/latest",
            args.dir.display()
        );
    }
    let file = if args.rebuild {
        evidence::rebuild(&args.dir, "queue")?
    } else {
        evidence::of_stored_run(&args.dir, "queue")?
    };
    if file.dumps.is_none() {
        println!("(no segment dumps stored for this run: log evidence only)");
    }
    let chosen: Vec<&evidence::ExampleEvidence> = file
        .examples
        .iter()
        .filter(|e| args.msg.is_none_or(|m| e.msg == Some(m)))
        .filter(|e| args.anomaly.as_ref().is_none_or(|a| &e.anomaly == a))
        .filter(|e| args.n.is_none_or(|k| e.index == k))
        .collect();
    if chosen.is_empty() {
        println!(
            "no evidence matches in {} ({} example(s) with evidence)",
            args.dir.display(),
            file.examples.len()
        );
        return Ok(Exit::Failed);
    }
    for e in chosen {
        print!("{}", evidence::explain_text(e, !args.brief));
    }
    let (lost, confirmed, explained, unexplained) = file.lost_write_counts();
    if lost > 0 && args.msg.is_none() {
        println!(
            "lost writes with evidence: {lost}; confirmed by the segments: {confirmed}; explained by the logs: {explained}; not both: {unexplained}"
        );
    }
    Ok(Exit::Success)
}
