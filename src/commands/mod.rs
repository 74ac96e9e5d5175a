//! Subcommands. Each lives in its own module, parses its flags, calls the
//! library crates and returns an [`Exit`] (0 valid / success, 1 anomalies
//! found, 2 error: bad input, usage, environment; see `crate::exit`).

mod bench_producer;
mod campaign;
mod check;
mod cluster;
mod env;
mod explain;
mod foreign;
mod gen_history;
mod import;
mod nemesis;
mod report;
mod run;
mod serve;

use crate::exit::Exit;
use clap::{Parser, Subcommand};

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
    /// Check a history; exit 0 valid, 1 anomalies, 2 bad input or an ERROR/UNKNOWN run.
    Check(check::CheckArgs),
    /// Write a synthetic history with planted anomalies.
    GenHistory(gen_history::GenHistoryArgs),
    /// Run one test: nodes, cluster, workload under faults, check, reports.
    Run(Box<run::RunArgs>),
    /// Run a campaign: a list or matrix of tests, one after another.
    Campaign(campaign::CampaignArgs),
    /// Regenerate a run's reports from its stored history.
    Report(report::ReportArgs),
    /// Serve the store's reports on 127.0.0.1.
    Serve(serve::ServeArgs),
    /// Benchmark the queue workload's producers (used by bench/producer.sh).
    #[command(hide = true)]
    BenchProducer(bench_producer::BenchProducerArgs),
    /// Run real ZooKeeper and Kafka on an environment's nodes.
    Cluster(cluster::ClusterArgs),
    /// Plan and run fault schedules; heal what faults left behind.
    Nemesis(nemesis::NemesisArgs),
    /// Print the servers' side of a stored run's anomalies, without a cluster.
    Explain(explain::ExplainArgs),
    /// Convert what another tool recorded to a splitbrain history.
    Import(import::ImportArgs),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Env(args) => env::run(args),
        Command::Check(args) => check::run(args),
        Command::GenHistory(args) => gen_history::run(args),
        Command::Run(args) => run::run(*args),
        Command::Campaign(args) => campaign::run(args),
        Command::Report(args) => report::run(args),
        Command::Serve(args) => serve::run(args),
        Command::BenchProducer(args) => bench_producer::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Nemesis(args) => nemesis::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Import(args) => import::run(args),
    }
}
