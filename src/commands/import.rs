//! `splitbrain import --format F ... -o history.jsonl`: converts what
//! another tool recorded to a splitbrain history, so that `check`,
//! `report` and `explain` work on it as on a run's own.

use crate::exit::Exit;
use anyhow::Context;
use std::path::PathBuf;

/// Convert another tool's records to a splitbrain history (docs/history.md
/// describes each format's mapping).
///
/// Examples: `splitbrain import --format kafka-verifiable --producer p.jsonl
/// --consumer c.jsonl -o history.jsonl`; `splitbrain import --format jepsen
/// store/.../history.edn -o history.jsonl`; then `splitbrain check
/// history.jsonl`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The history to convert, for formats read from one file (`jepsen`:
    /// its history.edn).
    pub history: Option<PathBuf>,
    /// What to convert.
    #[command(flatten)]
    pub input: super::foreign::ForeignInput,
    /// Where to write the history (JSON Lines).
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,
}

/// Runs the conversion.
pub fn run(args: ImportArgs) -> anyhow::Result<Exit> {
    let converted = super::foreign::convert(&args.input, args.history.as_deref())?;
    std::fs::write(&args.output, &converted.history).with_context(|| {
        format!(
            "cannot write {}; choose a writable path",
            args.output.display()
        )
    })?;
    for w in &converted.warnings {
        println!("warning: {w}");
    }
    println!(
        "{} operations written to {}",
        converted.operations,
        args.output.display()
    );
    Ok(Exit::Success)
}
