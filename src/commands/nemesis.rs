//! `splitbrain nemesis`: plan and run fault schedules against a running
//! cluster, and heal whatever faults left behind.

use crate::exit::Exit;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use splitbrain_core::firewall;
use splitbrain_core::history::HistoryWriter;
use splitbrain_environments::db::cluster::{ClusterLayout, LAYOUT_FILE};
use splitbrain_environments::db::cluster_control::EnvCluster;
use splitbrain_environments::EnvState;
use splitbrain_nemeses::schedule::{self, Interval, Schedule, ScheduleSpec};
use splitbrain_nemeses::{Fault, Nemesis};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Plan (`plan`), run (`run`) and clean up after (`heal`) fault schedules.
#[derive(Debug, Args)]
pub struct NemesisArgs {
    /// Environment whose cluster the faults hit.
    #[arg(
        long,
        global = true,
        env = "SPLITBRAIN_ENV",
        default_value = "splitbrain"
    )]
    pub env_name: String,
    #[command(subcommand)]
    pub action: NemesisAction,
}

/// A schedule, as options.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Seed of every random choice; the same seed gives the same schedule.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A fault of the mix (repeat for several): partition:<kind>,
    /// kill:<zk|zookeeper|kafka>[:<one|minority|primary|all>], pause:…,
    /// rapid-add[:<count>[:<broker>]], safe-add[:<count>[:<broker>]].
    #[arg(long = "fault", required = true)]
    pub faults: Vec<Fault>,
    /// Quiet time before each fault, ms: fixed (10000) or bounds (5000..15000).
    #[arg(long, default_value = "5000..15000")]
    pub quiet: Interval,
    /// How long each fault lasts, ms: fixed or bounds.
    #[arg(long = "fault-for", default_value = "10000")]
    pub fault_for: Interval,
    /// Length of the whole schedule, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Most faults active at once (1: one at a time; N > 1: a fault may
    /// start while others hold, each undone at its own stop).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
}

impl SpecArgs {
    fn spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            seed: self.seed,
            faults: self.faults.clone(),
            quiet: self.quiet,
            fault: self.fault_for,
            total_ms: self.seconds.saturating_mul(1000),
            concurrency: self.concurrency,
        }
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum NemesisAction {
    /// Print the schedule a spec plans, as JSON, without touching anything.
    Plan(SpecArgs),
    /// Run a schedule against the environment's cluster, recording every
    /// fault in a history; heals everything at the end or on Ctrl-C.
    Run {
        #[command(flatten)]
        spec: SpecArgs,
        /// History file to write (must not exist); default
        /// `<env state dir>/runs/nemesis-<unix time>.jsonl`.
        #[arg(long)]
        history: Option<PathBuf>,
    },
    /// Empty splitbrain's firewall chain on every node and resume every
    /// paused server of the cluster (after a crash or an interrupted run).
    Heal {
        /// Also delete the chain and its jumps.
        #[arg(long)]
        remove: bool,
    },
}

/// Runs `splitbrain nemesis …`.
pub fn run(args: NemesisArgs) -> anyhow::Result<Exit> {
    match args.action {
        NemesisAction::Plan(spec) => {
            let schedule = Schedule::plan(&spec.spec());
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string_pretty(&schedule)?
            );
            Ok(Exit::Success)
        }
        NemesisAction::Run { spec, history } => run_schedule(&args.env_name, &spec, history),
        NemesisAction::Heal { remove } => heal(&args.env_name, remove),
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

fn load_cluster(name: &str) -> anyhow::Result<(EnvState, Option<ClusterLayout>)> {
    let state = EnvState::load(name)
        .with_context(|| format!("environment {name}: create it with `splitbrain env up`"))?;
    let path = state.dir().join(LAYOUT_FILE);
    let layout = if path.exists() {
        Some(ClusterLayout::load(&path)?)
    } else {
        None
    };
    Ok((state, layout))
}

fn run_schedule(name: &str, spec: &SpecArgs, history: Option<PathBuf>) -> anyhow::Result<Exit> {
    let (state, layout) = load_cluster(name)?;
    let Some(layout) = layout else {
        bail!(
            "environment {name} has no cluster ({} is missing): start ZooKeeper and Kafka on it first",
            state.dir().join(LAYOUT_FILE).display()
        );
    };
    let control = state
        .control(CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to the nodes of {name}"))?;
    let path = match history {
        Some(p) => p,
        None => {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let dir = state.dir().join("runs");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(format!("nemesis-{secs}.jsonl"))
        }
    };
    let writer = HistoryWriter::create(&path)
        .with_context(|| format!("creating the history {}", path.display()))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    // Ctrl-C stops the schedule early; heal-all still runs.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let db = EnvCluster::new(control.clone(), state.nodes.clone(), layout);
    let mut nemesis = Nemesis::new(&db, control, Some(writer.clone()), spec.seed);
    let schedule = Schedule::plan(&spec.spec());
    eprintln!(
        "running {} fault(s) over {} s (seed {}); history: {}",
        schedule.steps.len() / 2,
        spec.seconds,
        spec.seed,
        path.display()
    );
    let report = schedule::run(&mut nemesis, &schedule, Some(&writer), &cancel)
        .context("the schedule did not finish cleanly; run `splitbrain nemesis heal`")?;
    eprintln!(
        "{} fault(s) applied and verified, {} fault error(s){}",
        report.faults_applied,
        report.errors.len(),
        if report.cancelled {
            " (interrupted)"
        } else {
            ""
        }
    );
    if report.is_clean() {
        eprintln!("everything healed");
        return Ok(Exit::Success);
    }
    for e in &report.errors {
        eprintln!("  {e}");
    }
    eprintln!(
        "a fault did not take effect (or its undo did not): see the `fault-error` and nemesis \
         events in {}; if anything is left, run `splitbrain nemesis heal`",
        path.display()
    );
    Ok(Exit::Error)
}

fn heal(name: &str, remove: bool) -> anyhow::Result<Exit> {
    let (state, layout) = load_cluster(name)?;
    let control = state
        .control(CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to the nodes of {name}"))?;
    let mut failed = Vec::new();
    let mut rules = 0;
    for (node, r) in control.on_all(move |_, s| {
        let before = firewall::blocked(s, CONNECT_TIMEOUT)?.len();
        if remove {
            firewall::remove(s, CONNECT_TIMEOUT)?;
        } else {
            firewall::heal(s, CONNECT_TIMEOUT)?;
        }
        Ok(before)
    }) {
        match r {
            Ok(n) => rules += n,
            Err(e) => failed.push(format!("{node}: {e}")),
        }
    }
    let mut resumed = Vec::new();
    if let Some(layout) = layout {
        use splitbrain_core::db::ClusterControl;
        let db = EnvCluster::new(control, state.nodes.clone(), layout);
        for s in db.servers() {
            match db.is_paused(&s) {
                Ok(true) => match db.resume(&s) {
                    Ok(_) => resumed.push(s.to_string()),
                    Err(e) => failed.push(e.to_string()),
                },
                Ok(false) => {}
                Err(e) => failed.push(e.to_string()),
            }
        }
    }
    println!(
        "healed {name}: {rules} rule(s) {}, {} paused server(s) resumed{}",
        if remove {
            "and the chain removed"
        } else {
            "removed"
        },
        resumed.len(),
        if resumed.is_empty() {
            String::new()
        } else {
            format!(" ({})", resumed.join(", "))
        }
    );
    if failed.is_empty() {
        Ok(Exit::Success)
    } else {
        for f in &failed {
            eprintln!("error: {f}");
        }
        eprintln!("some nodes could not be healed; `splitbrain env down` removes everything");
        Ok(Exit::Error)
    }
}
