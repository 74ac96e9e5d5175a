//! The `splitbrain` command line: parses arguments and hands each subcommand to
//! its module under `commands/`. Kept thin on purpose; the work lives in the
//! library crates.

mod commands;
mod logging;
mod report;
mod run;
mod store;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
