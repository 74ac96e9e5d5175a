//! `splitbrain cluster`: real ZooKeeper and Kafka on an environment's nodes.
//!
//! `cluster up` needs an environment first (`splitbrain env up --nodes N`,
//! N ≥ zk + kafka: ZooKeeper and Kafka run on separate nodes; with
//! `--colocate` N ≥ max(zk, kafka), they share nodes). It records the
//! layout in the environment's state directory *before* starting anything,
//! so `cluster down` (or `env down`, which kills every process of the
//! environment) cleans up after a failed or interrupted `up`.

use crate::exit::Exit;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use splitbrain_core::cluster::Observation;
use splitbrain_core::control::Control;
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{
    self, ClusterGuard, ClusterLayout, Placement, LAYOUT_FILE,
};
use splitbrain_environments::db::kraft::{self, KraftSettings};
use splitbrain_environments::probes::observe;
use splitbrain_environments::EnvState;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bring up (`up`), inspect (`status`) and remove (`down`) ZooKeeper and Kafka.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Environment whose nodes run the cluster (see `splitbrain env`).
    #[arg(
        long,
        global = true,
        env = "SPLITBRAIN_ENV",
        default_value = "splitbrain"
    )]
    pub env_name: String,
    #[command(subcommand)]
    pub action: ClusterAction,
}

/// What to do with the cluster.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Configure and start ZooKeeper on the first `--zk` nodes and Kafka on
    /// the next `--kafka` nodes (with `--colocate`, on the same nodes);
    /// returns once every ZooKeeper server serves and every broker is
    /// registered and answering.
    Up {
        /// `zookeeper` (Kafka on ZooKeeper) or `kraft` (Kafka's own Raft
        /// quorum: `--controllers` controllers on their own nodes, no
        /// ZooKeeper).
        #[arg(long, default_value = "zookeeper", value_parser = ["zookeeper", "kraft"])]
        mode: String,
        /// KRaft mode: number of controllers (the metadata quorum's voters).
        #[arg(long, default_value_t = 3)]
        controllers: usize,
        /// KRaft mode: `dynamic` (KIP-853: controller.quorum.bootstrap.servers,
        /// storage formatted with --initial-controllers) or `static`
        /// (controller.quorum.voters).
        #[arg(long, default_value = "dynamic", value_parser = ["dynamic", "static"])]
        quorum: String,
        /// Number of ZooKeeper servers.
        #[arg(long, default_value_t = 3)]
        zk: usize,
        /// Number of Kafka brokers.
        #[arg(long, default_value_t = 3)]
        kafka: usize,
        /// Seconds to wait for ZooKeeper, then for Kafka, to be ready.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
        /// Put ZooKeeper server i (KRaft: controller i) and broker i on
        /// node i, each with its own directory, pid file and ports: needs
        /// max(--zk, --kafka) nodes instead of their sum.
        #[arg(long)]
        colocate: bool,
    },
    /// Ask every server what it believes (mode, zxid, membership, controller).
    Status {
        /// Print the observation as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Stop every server, remove its data and logs, forget the layout.
    Down {
        /// SIGKILL at once instead of SIGTERM with up to 10 s grace.
        #[arg(long)]
        kill: bool,
        /// Copy every server's configs and logs into this directory first.
        #[arg(long, value_name = "DIR")]
        collect: Option<PathBuf>,
        /// Keep data and logs on the nodes.
        #[arg(long)]
        keep_data: bool,
    },
}

/// Runs `splitbrain cluster …`.
pub fn run(args: ClusterArgs) -> anyhow::Result<Exit> {
    let name = args.env_name;
    match args.action {
        ClusterAction::Up {
            mode,
            controllers,
            quorum,
            zk,
            kafka,
            timeout,
            colocate,
        } => {
            let placement = Placement::from_colocate(colocate);
            if mode == "kraft" {
                up_kraft(&name, controllers, &quorum, kafka, timeout, placement)
            } else {
                up(&name, zk, kafka, timeout, placement)
            }
        }
        ClusterAction::Status { json } => status(&name, json),
        ClusterAction::Down {
            kill,
            collect,
            keep_data,
        } => down(&name, kill, collect, keep_data),
    }
}

fn layout_path(env: &str) -> PathBuf {
    EnvState::dir_of(env).join(LAYOUT_FILE)
}

fn load_env(name: &str) -> anyhow::Result<EnvState> {
    let state = EnvState::load(name).with_context(|| {
        format!("no environment '{name}': create one first, e.g. `splitbrain env up --nodes 6 --env-name {name}`")
    })?;
    if !state.ready {
        bail!("environment '{name}' is not ready (an `env up` failed or is running): `splitbrain env down --env-name {name}` and `env up` again");
    }
    Ok(state)
}

fn connect(state: &EnvState, nodes: &[splitbrain_core::control::Node]) -> anyhow::Result<Control> {
    Control::connect(nodes, Duration::from_secs(15)).with_context(|| {
        format!(
            "cannot reach the nodes of '{}' over SSH: check `splitbrain env status --env-name {}`",
            state.name, state.name
        )
    })
}

fn up(
    name: &str,
    zk: usize,
    kafka: usize,
    timeout: u64,
    placement: Placement,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let state = load_env(name)?;
    let path = layout_path(name);
    if path.exists() {
        bail!(
            "a cluster is already recorded for '{name}' ({}): `splitbrain cluster down --env-name {name}` first",
            path.display()
        );
    }
    let artifacts = Artifacts::for_env(&state)?;
    let layout = ClusterLayout::plan_placed(name, &state.nodes, zk, kafka, placement, artifacts)?;
    // Intent first: a crash from here on leaves a layout `cluster down` can use.
    layout.save(&path)?;
    let t_connect = Instant::now();
    let control = connect(&state, &layout.nodes())?;
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let guard = ClusterGuard::new(control.clone(), layout.clone());
    let wait = Duration::from_secs(timeout);
    let t_install = Instant::now();
    cluster::install(&control, &layout)?;
    let install_secs = t_install.elapsed().as_secs_f64();
    let t_zk = Instant::now();
    cluster::start_zookeeper(&control, &layout, &layout.zookeeper, wait)
        .with_context(|| format!("ZooKeeper did not start; every server was stopped. Logs: `splitbrain cluster down --collect DIR --env-name {name}`"))?;
    let zk_secs = t_zk.elapsed().as_secs_f64();
    let t_kafka = Instant::now();
    cluster::start_kafka(&control, &layout, wait).context(
        "Kafka did not start; the guard stopped every server (see kafka/logs under each node dir)",
    )?;
    let kafka_secs = t_kafka.elapsed().as_secs_f64();
    guard.disarm();
    println!(
        "cluster up on '{name}': {zk} ZooKeeper ({}), {kafka} Kafka ({}) in {:.1} s \
         (ssh {connect_secs:.1} s, configs {install_secs:.1} s, ZooKeeper ready in {zk_secs:.1} s, \
         Kafka in {kafka_secs:.1} s)",
        layout
            .zookeeper
            .iter()
            .map(|s| s.node.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        layout
            .kafka
            .iter()
            .map(|b| b.node.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        started.elapsed().as_secs_f64()
    );
    if !layout.kafka.is_empty() {
        println!("bootstrap.servers={}", layout.bootstrap_servers());
    }
    println!(
        "zookeeper.connect={}",
        layout
            .zk_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(Exit::Success)
}

fn up_kraft(
    name: &str,
    controllers: usize,
    quorum: &str,
    kafka: usize,
    timeout: u64,
    placement: Placement,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let state = load_env(name)?;
    let path = layout_path(name);
    if path.exists() {
        bail!(
            "a cluster is already recorded for '{name}' ({}): `splitbrain cluster down --env-name {name}` first",
            path.display()
        );
    }
    let artifacts = Artifacts::for_env(&state)?;
    let settings = KraftSettings {
        quorum: quorum.parse().map_err(anyhow::Error::msg)?,
        ..KraftSettings::default()
    };
    let layout = ClusterLayout::plan_kraft_placed(
        name,
        &state.nodes,
        controllers,
        kafka,
        settings,
        placement,
        artifacts,
    )?;
    layout.artifacts.check()?;
    // Intent first: a crash from here on leaves a layout `cluster down` can use.
    layout.save(&path)?;
    let t_connect = Instant::now();
    let control = connect(&state, &layout.nodes())?;
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let guard = ClusterGuard::new(control.clone(), layout.clone());
    let t_start = Instant::now();
    cluster::install_and_start_kraft(&control, &layout, Duration::from_secs(timeout)).with_context(|| {
        format!("the KRaft cluster did not start (configs, format or start failed, or it was not ready in time); the guard stopped every server. Logs: `splitbrain cluster down --collect DIR --env-name {name}`")
    })?;
    let start_secs = t_start.elapsed().as_secs_f64();
    guard.disarm();
    let names = |nodes: Vec<&str>| nodes.join(",");
    println!(
        "cluster up on '{name}' (KRaft, {quorum} quorum): {controllers} controllers ({}), {kafka} Kafka ({}) in {:.1} s \
         (ssh {connect_secs:.1} s, configs, format, start, quorum and brokers ready in {start_secs:.1} s)",
        names(layout.controllers().iter().map(|c| c.node.name.as_str()).collect()),
        names(layout.kafka.iter().map(|b| b.node.name.as_str()).collect()),
        started.elapsed().as_secs_f64()
    );
    println!("bootstrap.servers={}", layout.bootstrap_servers());
    if let Some(k) = &layout.kraft {
        println!("bootstrap.controllers={}", k.bootstrap_controllers());
    }
    Ok(Exit::Success)
}

fn load_layout(name: &str) -> anyhow::Result<ClusterLayout> {
    Ok(ClusterLayout::load(&layout_path(name))?)
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".into(), |v| v.to_string())
}

/// Renders an observation as two tables.
fn render(obs: &Observation, layout: &ClusterLayout) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<5} {:<5} {:<16} {:<12} {:<14} {:<6} {:<16} {:<7} {:<10} {}\n",
        "NODE",
        "ZK",
        "ADDRESS",
        "MODE",
        "ZXID",
        "EPOCH",
        "MEMBERS",
        "ZNODES",
        "CONTROLLER",
        "CLUSTER ID / ERROR"
    ));
    for v in &obs.zookeeper {
        let addr = layout
            .zk_server(v.server_id)
            .map(|s| s.client_addr(&layout.zk_settings).to_string())
            .unwrap_or_default();
        let members = v
            .members
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let last = match (&v.cluster_id, &v.error) {
            (_, Some(e)) => e.clone(),
            (Some(id), None) => id.clone(),
            (None, None) => "-".into(),
        };
        out.push_str(&format!(
            "{:<5} {:<5} {:<16} {:<12} {:<14} {:<6} {:<16} {:<7} {:<10} {}\n",
            v.node,
            v.server_id,
            addr,
            format!("{:?}", v.mode).to_lowercase(),
            v.zxid.map_or("-".into(), |z| format!("{z:#x}")),
            opt(&v.epoch),
            if members.is_empty() {
                "-".into()
            } else {
                members
            },
            opt(&v.znode_count),
            opt(&v.controller),
            last
        ));
    }
    if !obs.kafka.is_empty() {
        out.push_str(&format!(
            "\n{:<5} {:<7} {:<16} {:<10} {}\n",
            "NODE", "BROKER", "ADDRESS", "CONTROLLER", "ERROR"
        ));
        for b in &obs.kafka {
            let addr = layout
                .broker(b.broker_id)
                .map(|x| x.addr(&layout.kafka_settings).to_string())
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<5} {:<7} {:<16} {:<10} {}\n",
                b.node,
                b.broker_id,
                addr,
                opt(&b.controller),
                b.error.as_deref().unwrap_or("-")
            ));
        }
    }
    out
}

/// KRaft mode: each controller asked alone for the quorum (only the
/// leader describes it; the others say why not).
fn render_quorum(k: &kraft::KraftCluster) -> String {
    let mut out = format!(
        "\n{:<5} {:<10} {:<16} {:<7} {:<6} {:<10} {}\n",
        "NODE", "CONTROLLER", "ADDRESS", "LEADER", "EPOCH", "HW", "VOTERS / ERROR"
    );
    let answers = kraft::describe_each(&k.controllers, &k.settings, Duration::from_millis(500));
    for (c, (_, answer)) in k.controllers.iter().zip(answers) {
        let (leader, epoch, hw, last) = match answer {
            Ok(q) => (
                opt(&q.leader_id),
                q.leader_epoch.to_string(),
                q.high_watermark.to_string(),
                q.voters
                    .iter()
                    .map(|v| v.replica_id.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Err(e) => ("-".into(), "-".into(), "-".into(), e.to_string()),
        };
        out.push_str(&format!(
            "{:<5} {:<10} {:<16} {:<7} {:<6} {:<10} {}\n",
            c.node.name,
            c.id,
            c.addr(&k.settings).to_string(),
            leader,
            epoch,
            hw,
            last
        ));
    }
    out
}

fn status(name: &str, json: bool) -> anyhow::Result<Exit> {
    let layout = load_layout(name)?;
    let obs = observe::observe(&layout);
    if json {
        println!("{}", serde_json::to_string_pretty(&obs)?);
    } else {
        print!("{}", render(&obs, &layout));
        if let Some(k) = &layout.kraft {
            print!("{}", render_quorum(k));
            for b in &obs.kafka {
                println!(
                    "broker {} follows controller {} (epoch {})",
                    b.broker_id,
                    opt(&b.quorum_leader),
                    opt(&b.quorum_epoch)
                );
            }
        }
    }
    Ok(Exit::Success)
}

fn down(name: &str, kill: bool, collect: Option<PathBuf>, keep_data: bool) -> anyhow::Result<Exit> {
    let path = layout_path(name);
    let layout = match ClusterLayout::load(&path) {
        Ok(l) => l,
        Err(_) if !path.exists() => {
            println!("no cluster recorded for '{name}'; nothing to do");
            return Ok(Exit::Success);
        }
        Err(e) => return Err(e.into()),
    };
    let state = load_env(name)?;
    let control = connect(&state, &layout.nodes())?;
    if let Some(dir) = collect {
        let files = cluster::collect(&control, &layout, &dir)?;
        println!("collected {} files into {}", files.len(), dir.display());
    }
    let errors = cluster::stop_all(&control, &layout, !kill);
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        bail!("{} server(s) could not be stopped; `splitbrain env down --env-name {name}` kills every process of the environment", errors.len());
    }
    if !keep_data {
        cluster::wipe_all(&control, &layout)?;
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    println!(
        "cluster on '{name}' stopped ({} servers){}",
        layout.services().len(),
        if keep_data { "" } else { ", data removed" }
    );
    Ok(Exit::Success)
}
