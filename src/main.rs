//! The `splitbrain` command line: parses arguments and hands each subcommand
//! to its module under `commands/`, which calls the library crates (the
//! runner, environments, nemeses, checkers). The exit status is decided in
//! `exit.rs`.

mod commands;
mod exit;

use clap::Parser;
use exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `splitbrain check h.jsonl | head` would panic
    // on a closed stdout; behave like any Unix tool and end quietly instead.
    // SAFETY: called before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let exit = commands::run(commands::Cli::parse()).unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        Exit::Error
    });
    exit.into()
}
