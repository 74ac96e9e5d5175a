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
    // Rust ignores SIGPIPE, so `splitbrain check h.jsonl | head` would panic
    // on a closed stdout; behave like any Unix tool and end quietly instead.
    // SAFETY: called before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
