//! `splitbrain run [TEST.toml]`: one test from nodes to verdict (see
//! `splitbrain_runner::run`). Options override the test file; the full
//! config, seed included, is stored with the run.

use crate::exit::Exit;
use anyhow::Context;
use splitbrain_runner::run::interrupt::{Interrupt, Press};
use splitbrain_runner::{run, store, TestConfig};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Run one test: set up nodes, start ZooKeeper and Kafka, run the queue
/// workload under a fault schedule, heal, read everything back, check, and
/// store history, results.json, junit.xml, report.html, logs and configs in
/// `STORE/<name>/<timestamp>/`.
///
/// Exits 0 when the run passed (valid, or exactly the anomalies the test
/// expects), 1 when it did not, 2 on error. Ctrl-C stops the load and the
/// faults at once, heals, drains, replays, reads back, tears down and still
/// reports; a second Ctrl-C skips drain and final read and tears down now
/// (still reporting); a third removes the environment and exits 130.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A TOML test file (every field optional; see campaigns/ for examples).
    /// Options below override it.
    pub test: Option<PathBuf>,
    /// Store directory.
    #[arg(long, default_value = store::DEFAULT_STORE)]
    pub store: PathBuf,
    /// Test name (default: "test").
    #[arg(long)]
    pub name: Option<String>,
    /// Random seed for the fault schedule (default: 0 = pick one; recorded).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds of load; the faults happen during it (default: 60).
    #[arg(long)]
    pub time_limit: Option<u64>,
    /// Anomalies the test expects, comma-separated (default: none).
    #[arg(long, value_delimiter = ',')]
    pub expect: Option<Vec<String>>,
    /// Environment: netns, ssh, docker or existing (default: netns).
    #[arg(long = "env")]
    pub env_kind: Option<String>,
    /// Hosts TOML file for --env ssh.
    #[arg(long)]
    pub hosts: Option<String>,
    /// Environment name for --env existing.
    #[arg(long)]
    pub env_name: Option<String>,
    /// Nodes to create (default: 0 = ZooKeeper + Kafka + newcomers needed).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// For --env ssh: install what the hosts lack (Java 17+, iptables) with
    /// their package manager (env.install; default: no, a host that lacks
    /// them is an error).
    #[arg(long)]
    pub install: bool,
    /// For --env ssh: where the jars go on the hosts (env.artifacts_dir;
    /// default /opt/splitbrain/artifacts).
    #[arg(long, value_name = "DIR")]
    pub artifacts_dir: Option<String>,
    /// ZooKeeper servers (default: 3).
    #[arg(long)]
    pub zk: Option<usize>,
    /// Kafka brokers (default: 3).
    #[arg(long)]
    pub kafka: Option<usize>,
    /// ZooKeeper server i and broker i share node i (cluster.colocate):
    /// max(--zk, --kafka) nodes instead of their sum, plus the newcomers a
    /// rapid-add/safe-add needs.
    #[arg(long)]
    pub colocate: bool,
    /// Producer acks: all, 1 or 0 (default: all).
    #[arg(long)]
    pub acks: Option<String>,
    /// Producer enable.idempotence (default: true).
    #[arg(long)]
    pub idempotence: Option<bool>,
    /// Brokers' min.insync.replicas (default: 2).
    #[arg(long)]
    pub min_insync_replicas: Option<u16>,
    /// Brokers' unclean.leader.election.enable (default: false).
    #[arg(long)]
    pub unclean_leader_election: Option<bool>,
    /// Test topic's replication factor (default: 3).
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// Test topic's partitions (default: 3).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Sends per second (default: 200).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Concurrent senders (default: 8).
    #[arg(long)]
    pub senders: Option<usize>,
    /// Consumers (default: 2).
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Consumer mode: group or assign (default: group).
    #[arg(long)]
    pub consumer_mode: Option<String>,
    /// Producer message.timeout.ms (default: 5000).
    #[arg(long)]
    pub message_timeout_ms: Option<u64>,
    /// Fault mix, comma-separated: partition:<kind>,
    /// kill:<zk|kafka>[:<one|minority|primary|all>], pause:..., rapid-add,
    /// safe-add (default: none).
    #[arg(long, value_delimiter = ',')]
    pub nemesis: Option<Vec<String>>,
    /// Seconds of calm before each fault, the first included (default: 10).
    #[arg(long)]
    pub nemesis_quiet: Option<u64>,
    /// Seconds each fault lasts (default: 20).
    #[arg(long)]
    pub nemesis_duration: Option<u64>,
    /// Faults at most (default: 0 = as many as fit).
    #[arg(long)]
    pub max_faults: Option<usize>,
    /// ZooKeeper servers rapid-add/safe-add start (default: 4).
    #[arg(long)]
    pub add_count: Option<usize>,
    /// rapid-add moves the last broker onto the new servers (default: true).
    #[arg(long)]
    pub move_broker: Option<bool>,
    /// Examples per anomaly whose servers' evidence (segment dumps, log
    /// lines) is collected before the cluster goes down (default: 20; 0: none).
    #[arg(long, value_name = "N")]
    pub evidence: Option<usize>,
    /// Most faults active at once (default: 1).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Replay a stored run (a run directory, store/<test>/<timestamp>):
    /// its test.toml (seed included) and the exact schedule its history
    /// records, each fault at its recorded time after the start of the
    /// load and on the servers or links it hit. The new run's results.json
    /// and report link the original and say whether the same anomaly kinds
    /// came back. Only --store applies besides it.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "test")]
    pub replay: Option<PathBuf>,
}

/// Loads a test file.
pub fn load_test(path: &Path) -> anyhow::Result<TestConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the test file {}", path.display()))?;
    TestConfig::from_toml(&text).with_context(|| {
        format!(
            "{} is not a valid test file (fields: docs/running.md)",
            path.display()
        )
    })
}

fn apply(args: &RunArgs, c: &mut TestConfig) {
    macro_rules! set {
        ($field:expr, $value:expr) => {
            if let Some(v) = $value.clone() {
                $field = v;
            }
        };
    }
    set!(c.name, args.name);
    set!(c.seed, args.seed);
    set!(c.time_limit, args.time_limit);
    set!(c.expect, args.expect);
    set!(c.env.kind, args.env_kind);
    if args.hosts.is_some() {
        c.env.hosts = args.hosts.clone();
    }
    if args.env_name.is_some() {
        c.env.name = args.env_name.clone();
    }
    if args.install {
        c.env.install = true;
    }
    if args.artifacts_dir.is_some() {
        c.env.artifacts_dir = args.artifacts_dir.clone();
    }
    set!(c.env.nodes, args.nodes);
    set!(c.cluster.zookeeper, args.zk);
    set!(c.cluster.kafka, args.kafka);
    if args.colocate {
        c.cluster.colocate = true;
    }
    set!(c.kafka.acks, args.acks);
    set!(c.kafka.idempotence, args.idempotence);
    set!(c.kafka.min_insync_replicas, args.min_insync_replicas);
    set!(
        c.kafka.unclean_leader_election,
        args.unclean_leader_election
    );
    set!(c.kafka.replication_factor, args.replication_factor);
    set!(c.kafka.partitions, args.partitions);
    set!(c.workload.rate, args.rate);
    set!(c.workload.senders, args.senders);
    set!(c.workload.consumers, args.consumers);
    set!(c.workload.consumer_mode, args.consumer_mode);
    set!(c.workload.message_timeout_ms, args.message_timeout_ms);
    set!(c.nemesis.faults, args.nemesis);
    set!(c.nemesis.quiet, args.nemesis_quiet);
    set!(c.nemesis.duration, args.nemesis_duration);
    set!(c.nemesis.max_faults, args.max_faults);
    set!(c.nemesis.add_count, args.add_count);
    set!(c.nemesis.move_broker, args.move_broker);
    set!(c.evidence, args.evidence);
    set!(c.nemesis.concurrency, args.concurrency);
}

/// The process's Ctrl-C (and SIGTERM) handler, installed once: each signal
/// presses the runs' [`Interrupt`] and says what happens now.
pub fn interrupt_handler() -> anyhow::Result<Interrupt> {
    static INTERRUPT: OnceLock<Interrupt> = OnceLock::new();
    if let Some(i) = INTERRUPT.get() {
        return Ok(i.clone());
    }
    let interrupt = Interrupt::new();
    let i = interrupt.clone();
    ctrlc::set_handler(move || match i.press() {
        Press::StopLoad => eprintln!(
            "\n[splitbrain] Ctrl-C: stopping the load and the faults now, healing; then drain, DLQ replay, final read, teardown and report. Ctrl-C again to skip drain and final read"
        ),
        Press::StopNow => eprintln!(
            "\n[splitbrain] Ctrl-C again: skipping drain, DLQ replay and final read; tearing down now (history, results.json and report are still written). Ctrl-C a third time to exit at once"
        ),
        Press::Exit => {
            eprintln!("\n[splitbrain] Ctrl-C a third time: removing the run's environment and exiting; no report");
            eprintln!("[splitbrain] {}", i.abandon());
            Exit::Interrupted.now();
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    let _ = INTERRUPT.set(interrupt.clone());
    Ok(interrupt)
}

/// Runs the command.
pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    if let Some(original) = &args.replay {
        let interrupt = interrupt_handler()?;
        let outcome = splitbrain_runner::replay::replay(original, &args.store, interrupt)
            .with_context(|| format!("cannot replay {}", original.display()))?;
        println!("{}", outcome.summary);
        if let Some(e) = &outcome.error {
            println!("error: {e}");
        }
        println!("{}", replay_verdict(&outcome.dir));
        println!("{}", outcome.dir.display());
        return Ok(Exit::of_run(&outcome));
    }
    let mut cfg = match &args.test {
        Some(path) => load_test(path)?,
        None => TestConfig::default(),
    };
    apply(&args, &mut cfg);
    if let Err(e) = cfg.validate() {
        anyhow::bail!("{e} (see `splitbrain run --help`)");
    }
    let interrupt = interrupt_handler()?;
    let outcome = run::run_test(cfg, &args.store, interrupt)?;
    println!("{}", outcome.summary);
    if let Some(e) = &outcome.error {
        println!("error: {e}");
    }
    println!("{}", outcome.dir.display());
    Ok(Exit::of_run(&outcome))
}

/// One line: whether a replay found the original's anomaly kinds again.
fn replay_verdict(dir: &Path) -> String {
    let results: serde_json::Value = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let link = &results["links"]["replay-of"];
    match link["same-anomalies"].as_bool() {
        Some(same) => format!(
            "replay of {}: {} anomaly kinds (original: {}; replay: {})",
            link["run"].as_str().unwrap_or("?"),
            if same { "the same" } else { "NOT the same" },
            link["anomalies"],
            link["this-run-anomalies"]
        ),
        None => "replay: no comparison (the run wrote no results)".into(),
    }
}
