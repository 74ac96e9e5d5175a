//! `splitbrain campaign FILE.toml`: runs a campaign (format in
//! `splitbrain_runner::campaign`) and prints its summary table.

use super::run::interrupt_handler;
use crate::exit::Exit;
use anyhow::Context;
use splitbrain_runner::{campaign, store};
use std::path::PathBuf;

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
    #[arg(long, default_value = store::DEFAULT_STORE)]
    pub store: PathBuf,
    /// Only print the tests the campaign would run, with their configs.
    #[arg(long)]
    pub dry_run: bool,
    /// Override every test's time limit (seconds), e.g. for a short CI run.
    #[arg(long)]
    pub time_limit: Option<u64>,
    /// Run every test with ZooKeeper (or KRaft controllers) and Kafka on
    /// the same nodes (cluster.colocate = true; hosts needed:
    /// docs/environments.md).
    #[arg(long)]
    pub colocate: bool,
    /// Override every test's env.nodes (nodes to create; 0: as many as
    /// the test needs).
    #[arg(long, value_name = "N")]
    pub nodes: Option<usize>,
}

/// Runs the command.
pub fn run(args: CampaignArgs) -> anyhow::Result<Exit> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the campaign {}", args.file.display()))?;
    let mut tests = campaign::expand(&text)?;
    if let Some(t) = args.time_limit {
        for c in &mut tests {
            c.time_limit = t;
        }
    }
    let mut kept = Vec::with_capacity(tests.len());
    for mut c in tests {
        if args.colocate {
            c.cluster.colocate = true;
        }
        if let Some(n) = args.nodes {
            c.env.nodes = n;
        }
        // Overrides may make a test invalid. A fault a colocated layout
        // cannot make (zk-from-kafka, majorities-ring on 3 nodes) leaves
        // that test out, said here, so the rest of the campaign still runs.
        match c.validate() {
            Ok(()) => kept.push(c),
            Err(e) if args.colocate => {
                eprintln!("[splitbrain] not run with --colocate: {}: {e}", c.name)
            }
            Err(e) => {
                return Err(e).with_context(|| format!("test {} with the options given", c.name))
            }
        }
    }
    let tests = kept;
    if tests.is_empty() {
        anyhow::bail!(
            "no test of {} can run with the options given (see the lines above)",
            args.file.display()
        );
    }
    if args.dry_run {
        for t in &tests {
            println!(
                "# {}\n# hosts needed: {}\n{}",
                t.name,
                t.nodes_needed(),
                t.to_toml()
            );
        }
        return Ok(Exit::Success);
    }
    let interrupt = interrupt_handler()?;
    let rows = campaign::run_all(tests, &args.store, &interrupt);
    print!("{}", campaign::summary(&rows));
    Ok(Exit::of_campaign(&rows))
}
