//! Subcommands. Each lives in its own module and returns the process exit code:
//! 0 valid / success, 1 anomalies found, 2 error (bad input, usage, environment).

mod env;
mod nemesis;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Jepsen-style black-box verification of real ZooKeeper and Kafka clusters.
///
/// splitbrain starts real nodes, runs real ZooKeeper and Kafka on them, injects
/// faults, records every client operation in a history and checks it for lost,
/// duplicated, reordered or phantom messages and for split brain.
#[derive(Debug, Parser)]
#[command(name = "splitbrain", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect and remove the nodes (netns, ssh).
    Env(env::EnvArgs),
    /// Plan and run fault schedules; heal what faults left behind.
    Nemesis(nemesis::NemesisArgs),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Env(args) => env::run(args),
        Command::Nemesis(args) => nemesis::run(args),
    }
}
