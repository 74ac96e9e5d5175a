//! One test from start to verdict, in named phases, each a function here:
//! `env_up` → `cluster_up` → `load` (the queue workload with the observer
//! and the fault schedule beside it; when the load period ends the workload
//! calls `heal`, then drains, replays its DLQ and reads everything back) →
//! `collect_logs` → `cluster_down` → env down (the environment's guard) →
//! `check_and_report`.
//!
//! The threads beside the workload are owned by one `LoadThreads`
//! (`run/load.rs`), which stops and joins them on every path. Whatever
//! happens after the history is opened (an error, Ctrl-C), the run still
//! heals, tears down, checks what was recorded and writes its reports.
//! What each Ctrl-C does is in [`interrupt`].

pub mod config;
pub mod faults;
pub mod interrupt;
mod load;
pub mod progress;

use crate::error::{Result, RunError};
use crate::report::{self, HISTORY_FILE};
use crate::{logging, store};
use config::TestConfig;
use interrupt::Interrupt;
use load::LoadThreads;
use progress::Progress;
use rand::Rng;
use splitbrain_checkers::CheckOptions;
use splitbrain_core::control::Control;
use splitbrain_core::history::HistoryWriter;
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterGuard, ClusterLayout, LAYOUT_FILE};
use splitbrain_environments::db::cluster_control::{enable_reconfig, EnvCluster};
use splitbrain_environments::db::prepare;
use splitbrain_environments::nodes::{docker, netns};
use splitbrain_environments::EnvState;
use splitbrain_nemeses::Schedule;
use splitbrain_workloads::queue;
use splitbrain_workloads::txn;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The test topic.
pub const TOPIC: &str = "queue";

/// The topic of the transactional workload's tests.
pub const TXN_TOPIC: &str = "txn";

/// The test's topic: `txn` for the transactional workload, else `queue`.
pub fn topic(cfg: &TestConfig) -> &'static str {
    if cfg.workload.kind == "txn" {
        TXN_TOPIC
    } else {
        TOPIC
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// Exactly the expected anomalies (none, by default) were found, and
    /// the run did what it planned: its outcome is PASS.
    pub passed: bool,
    /// PASS, FAIL, ERROR or UNKNOWN, from the history (see
    /// [`report::Outcome::status`]); an [`RunOutcome::error`] comes on top.
    pub status: report::Status,
    /// The history is valid.
    pub valid: bool,
    /// One line: the outcome.
    pub summary: String,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The run could not complete (the error, with its causes), though what
    /// was recorded was checked.
    pub error: Option<String>,
}

/// Runs one test, storing it under `store`. `interrupt` is pressed by
/// Ctrl-C (see [`interrupt`]).
pub fn run_test(cfg: TestConfig, store: &Path, interrupt: Interrupt) -> Result<RunOutcome> {
    run_planned(cfg, store, interrupt, Planned::default())
}

/// What a run takes besides its config when it is a replay or a shrink
/// candidate (whose exact schedule is the config's `nemesis.schedule`).
#[derive(Clone, Debug, Default)]
pub struct Planned {
    /// Links to other runs, written to `links.json` before the run starts
    /// (see [`crate::replay::add_link`]).
    pub links: Vec<(String, serde_json::Value)>,
}

/// [`run_test`] with a given schedule and links.
pub fn run_planned(
    mut cfg: TestConfig,
    store: &Path,
    interrupt: Interrupt,
    planned: Planned,
) -> Result<RunOutcome> {
    let started = Instant::now();
    if cfg.seed == 0 {
        // TOML integers are i64: keep the seed storable.
        cfg.seed = rand::rng().random_range(1..i64::MAX as u64);
    }
    cfg.validate()?;
    let dir = store::create_run_dir(store, &cfg.name)?;
    let config_file = dir.join(report::CONFIG_FILE);
    std::fs::write(&config_file, cfg.to_toml()).map_err(RunError::io(format!(
        "cannot write {}; is the store writable?",
        config_file.display()
    )))?;
    for (key, value) in &planned.links {
        crate::replay::add_link(&dir, key, value.clone())?;
    }
    logging::to_file(&dir.join("splitbrain.log"))?;
    let mut progress = Progress::new(&cfg.name, cfg.time_limit);
    progress.line(&format!("run directory {}", dir.display()));
    tracing::info!(test = %cfg.name, seed = cfg.seed, dir = %dir.display(), "run starts");
    warn_of_orphans(&mut progress);

    let history = dir.join(HISTORY_FILE);
    // The evidence phase checks the finished history; the reports reuse it.
    let mut checked_history = None;
    let error = phases(
        &cfg,
        &dir,
        &history,
        &interrupt,
        &mut progress,
        &mut checked_history,
    )
    .err()
    .map(|e| {
        let msg = e.chain();
        tracing::error!("run failed: {msg}");
        progress.line(&format!("error: {msg}"));
        msg
    });
    let interrupted = if interrupt.now() {
        Some("interrupted by Ctrl-C twice: drain, DLQ replay and final read skipped".to_string())
    } else if interrupt.requested() {
        Some("interrupted by Ctrl-C".to_string())
    } else {
        error.clone()
    };
    if let Some(why) = &interrupted {
        let _ = std::fs::write(dir.join("interrupted.txt"), format!("{why}\n"));
    }
    let checked = check_and_report(
        &dir,
        &history,
        interrupted,
        error.as_deref(),
        &mut progress,
        checked_history,
    )?;
    Ok(RunOutcome {
        dir,
        passed: checked.passed && error.is_none(),
        status: checked.status,
        valid: checked.valid,
        summary: checked.summary,
        elapsed: started.elapsed(),
        error,
    })
}

/// One line naming the environments left behind by a killed owner (their
/// servers may still run, using memory, ports and subnets), and how to
/// remove them.
fn warn_of_orphans(progress: &mut Progress) {
    let orphans = splitbrain_environments::nodes::orphans();
    if orphans.is_empty() {
        return;
    }
    let named: Vec<String> = orphans
        .iter()
        .map(|o| format!("{} ({})", o.name, o.why))
        .collect();
    let line = format!(
        "warning: orphaned environment(s), whose servers may still run: {}; remove each with `splitbrain env down --env-name {}`",
        named.join(", "),
        if orphans.len() == 1 { &orphans[0].name } else { "NAME" }
    );
    tracing::warn!("{line}");
    progress.line(&line);
}

/// Every phase from nodes to teardown; the history is complete when it
/// returns, whether it succeeded or not. `checked` gets the evidence
/// phase's analysis of the finished history, when it made one.
fn phases(
    cfg: &TestConfig,
    dir: &Path,
    history: &Path,
    interrupt: &Interrupt,
    progress: &mut Progress,
    checked: &mut Option<report::Analysis>,
) -> Result<()> {
    let plan = faults::schedule(cfg)?;
    check_client_settings(cfg)?;

    progress.phase("env up");
    // Dropped last: removes the environment the run created.
    let mut env = env_up(cfg, interrupt)?;
    progress.line(&format!(
        "environment {} ({} nodes)",
        env.state.name,
        env.state.nodes.len()
    ));
    if env.state.nodes.len() < cfg.nodes_needed() {
        return Err(RunError::TooFewNodes {
            env: env.state.name.clone(),
            have: env.state.nodes.len(),
            need: cfg.nodes_needed(),
        });
    }
    check_interrupt(interrupt)?;
    let prepared = prepare_nodes(cfg, &mut env.state, interrupt, progress)?;
    check_interrupt(interrupt)?;

    progress.phase("cluster up");
    let mut cluster = cluster_up(cfg, &env.state)?;
    cluster.prepared = prepared;
    progress.line(&placement_line(&cluster.layout));
    let result = check_interrupt(interrupt)
        .and_then(|()| load(cfg, dir, history, &plan, &cluster, interrupt, progress));

    if interrupt.now() {
        progress.line("Ctrl-C twice: not collecting the servers' logs; tearing down now");
    } else {
        if cfg.workload.kind == "txn" {
            dump_txn_segments(cfg, &cluster);
        }
        collect_logs(&cluster, dir, progress);
        *checked = gather_evidence(cfg, &cluster, dir, history, progress);
    }
    cluster_down(cluster, progress);
    progress.phase("env down");
    result
}

/// One line saying which node runs which server, e.g. `servers: ZooKeeper
/// on n1,n2,n3; Kafka on n1,n2,n3 (colocated: n1,n2,n3 run two servers
/// each)`.
fn placement_line(layout: &ClusterLayout) -> String {
    let names = |nodes: Vec<&str>| nodes.join(",");
    let metadata = if layout.is_kraft() {
        format!(
            "KRaft controllers on {}",
            names(
                layout
                    .controllers()
                    .iter()
                    .map(|c| c.node.name.as_str())
                    .collect()
            )
        )
    } else {
        format!(
            "ZooKeeper on {}",
            names(
                layout
                    .zookeeper
                    .iter()
                    .map(|s| s.node.name.as_str())
                    .collect()
            )
        )
    };
    let shared = layout.shared_nodes();
    format!(
        "servers: {metadata}; Kafka on {}{}",
        names(layout.kafka.iter().map(|b| b.node.name.as_str()).collect()),
        if shared.is_empty() {
            String::new()
        } else {
            format!(
                " (colocated: {} run two servers each)",
                names(shared.iter().map(|n| n.name.as_str()).collect())
            )
        }
    )
}

/// Settings librdkafka would refuse, caught before anything starts.
fn check_client_settings(cfg: &TestConfig) -> Result<()> {
    if cfg.kafka.idempotence && !matches!(cfg.kafka.acks.as_str(), "all" | "-1") {
        return Err(RunError::Config {
            reason: format!(
                "kafka.idempotence = true needs kafka.acks = \"all\" (librdkafka refuses otherwise); set idempotence = false to test acks = {}",
                cfg.kafka.acks
            ),
        });
    }
    Ok(())
}

/// The run's environment; its guard removes it, when the run made it.
struct RunEnv {
    state: EnvState,
    _guard: EnvGuard,
}

/// Removes an environment the run created, on every path (made before the
/// environment, so a half-made one goes too). While it lives, a third
/// Ctrl-C removes the environment itself ([`Interrupt::abandon`]).
struct EnvGuard {
    name: String,
    owned: bool,
    interrupt: Interrupt,
}

impl EnvGuard {
    fn new(name: &str, owned: bool, interrupt: &Interrupt) -> EnvGuard {
        if owned {
            interrupt.set_run_env(Some(name.to_string()));
        }
        EnvGuard {
            name: name.to_string(),
            owned,
            interrupt: interrupt.clone(),
        }
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        if self.owned {
            self.interrupt.set_run_env(None);
            match splitbrain_environments::nodes::down(&self.name) {
                Ok(summary) => tracing::info!("env down: {summary}"),
                Err(e) => tracing::error!(
                    "env down {}: {e}; run `splitbrain env down --env-name {}`",
                    self.name,
                    self.name
                ),
            }
        }
    }
}

/// A fresh environment name from the test name (netns names are short).
fn env_name(test: &str) -> String {
    let base = splitbrain_core::slug::slug(test, 20);
    let suffix = std::process::id() % 100_000;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 10_000);
    format!("sb-{base}-{suffix}-{stamp}")
}

/// Phase "env up": creates the nodes (netns, ssh, docker), owned by this process
/// (see `splitbrain env list`), or loads an existing environment.
fn env_up(cfg: &TestConfig, interrupt: &Interrupt) -> Result<RunEnv> {
    let owned = |name: &str| EnvGuard::new(name, true, interrupt);
    match cfg.env.kind.as_str() {
        "netns" => {
            let name = env_name(&cfg.name);
            let guard = owned(&name);
            let options = netns::UpOptions {
                name,
                nodes: cfg.nodes_needed(),
                subnet: None,
            };
            let state = netns::up(&options, Some(interrupt.flag()))?;
            Ok(RunEnv {
                state,
                _guard: guard,
            })
        }
        "ssh" => {
            let name = env_name(&cfg.name);
            let guard = owned(&name);
            let hosts = PathBuf::from(cfg.env.hosts.clone().unwrap_or_default());
            let state =
                splitbrain_environments::nodes::ssh::up(&name, &hosts, Duration::from_secs(60))?;
            Ok(RunEnv {
                state,
                _guard: guard,
            })
        }
        "docker" => {
            let name = env_name(&cfg.name);
            // Made before the containers: on every later path (an error,
            // Ctrl-C, a panic unwinding) the guard removes them.
            let guard = owned(&name);
            let options = docker_options(cfg, name);
            let state = docker::up(&options, Some(interrupt.flag()))?;
            Ok(RunEnv {
                state,
                _guard: guard,
            })
        }
        _ => {
            let name = cfg.env.name.clone().unwrap_or_default();
            let state = EnvState::load(&name).map_err(|source| RunError::NoEnvironment {
                name: name.clone(),
                source: Box::new(source),
            })?;
            Ok(RunEnv {
                state,
                _guard: EnvGuard::new(&name, false, interrupt),
            })
        }
    }
}

/// The options `splitbrain env up --kind docker` would choose: the node
/// image on `env.docker_base` (else `$SPLITBRAIN_DOCKER_BASE`, else Debian's
/// image from a registry), the artifact cache ([`Artifacts::cache_dir`])
/// mounted read-only at the same path, a free subnet, and a Docker engine
/// started if none answers.
fn docker_options(cfg: &TestConfig, name: String) -> docker::DockerOptions {
    let base_image = cfg
        .env
        .docker_base
        .clone()
        .or_else(|| {
            std::env::var(DOCKER_BASE_ENV)
                .ok()
                .filter(|b| !b.is_empty())
        })
        .unwrap_or_else(|| docker::image::DEFAULT_BASE_IMAGE.to_string());
    docker::DockerOptions {
        name,
        nodes: cfg.nodes_needed(),
        subnet: None,
        base_image,
        artifacts: Some(Artifacts::cache_dir()),
        start_engine: true,
    }
}

/// The variable naming the Docker node image's base (as for `env up`).
pub const DOCKER_BASE_ENV: &str = "SPLITBRAIN_DOCKER_BASE";

/// Kind `ssh`: gets the hosts ready for the cluster (Java, iptables, the
/// jars: `environments::db::prepare`) with the test's `env.install` and
/// `env.artifacts_dir`; returns what it did, for the history. Other kinds'
/// nodes come ready.
fn prepare_nodes(
    cfg: &TestConfig,
    state: &mut EnvState,
    interrupt: &Interrupt,
    progress: &mut Progress,
) -> Result<Option<prepare::PrepareReport>> {
    if cfg.env.kind != "ssh" {
        return Ok(None);
    }
    let opts = prepare::PrepareOptions::from_settings(
        cfg.env.install,
        cfg.env.artifacts_dir.as_deref().map(Path::new),
    );
    progress.line(&format!(
        "preparing {} host(s): Java {}+, iptables{}{}",
        state.nodes.len(),
        prepare::MIN_JAVA,
        if opts.upload {
            format!(", jars into {}", opts.artifacts_dir.display())
        } else {
            String::new()
        },
        if opts.install {
            " (installing what is missing)"
        } else {
            ""
        }
    ));
    let report = prepare::prepare(
        state,
        &opts,
        &mut |line| progress.line(line),
        Some(interrupt.flag()),
    )?;
    tracing::info!(report = ?report, "nodes prepared");
    progress.line(&report.summary());
    Ok(Some(report))
}

/// ZooKeeper and Kafka running on the run's nodes.
struct RunCluster {
    control: Control,
    layout: ClusterLayout,
    /// Where `splitbrain nemesis`/`cluster` find the layout meanwhile.
    layout_path: PathBuf,
    /// Stops every server if the run ends without [`cluster_down`].
    guard: ClusterGuard,
    /// The cluster as the nemeses see it (added servers included), shared
    /// with the observer.
    db: Arc<EnvCluster>,
    /// What preparing the hosts did (kind `ssh`), recorded as the history's
    /// `prepare` event (process `env`) when the history opens.
    prepared: Option<prepare::PrepareReport>,
}

/// Phase "cluster up": plans the layout with the test's settings, starts
/// the servers and creates the test topic.
fn cluster_up(cfg: &TestConfig, state: &EnvState) -> Result<RunCluster> {
    let control =
        Control::connect(&state.nodes, Duration::from_secs(30)).map_err(RunError::Unreachable)?;
    let artifacts = Artifacts::for_env(state).map_err(RunError::Artifacts)?;
    let mut layout = if cfg.cluster.is_kraft() {
        let settings = splitbrain_environments::db::kraft::KraftSettings {
            quorum: cfg
                .cluster
                .quorum
                .parse()
                .map_err(|reason| RunError::Config { reason })?,
            broker_session_timeout_ms: cfg.cluster.zk_session_timeout_ms,
            ..Default::default()
        };
        ClusterLayout::plan_kraft_placed(
            &state.name,
            &state.nodes,
            cfg.cluster.controllers,
            cfg.cluster.kafka,
            settings,
            cfg.cluster.placement(),
            artifacts,
        )?
    } else {
        ClusterLayout::plan_placed(
            &state.name,
            &state.nodes,
            cfg.cluster.zookeeper,
            cfg.cluster.kafka,
            cfg.cluster.placement(),
            artifacts,
        )?
    };
    let safe_add = faults::mix(cfg)?.iter().any(|f| {
        matches!(
            f,
            splitbrain_nemeses::Fault::AddZookeeper {
                procedure: splitbrain_core::db::JoinProcedure::Safe,
                ..
            }
        )
    });
    if safe_add {
        enable_reconfig(&mut layout.zk_settings);
    }
    let ks = &mut layout.kafka_settings;
    ks.min_insync_replicas = cfg.kafka.min_insync_replicas;
    ks.unclean_leader_election = cfg.kafka.unclean_leader_election;
    ks.zookeeper_session_timeout_ms = cfg.cluster.zk_session_timeout_ms;
    ks.default_replication_factor = cfg.kafka.replication_factor as u16;
    let layout_path = EnvState::dir_of(&state.name).join(LAYOUT_FILE);
    layout.save(&layout_path)?;
    let guard = ClusterGuard::new(control.clone(), layout.clone());
    let wait = Duration::from_secs(cfg.cluster.ready_timeout);
    cluster::up(&control, &layout, wait).map_err(RunError::ClusterUp)?;
    cluster::create_topic(
        &layout,
        topic(cfg),
        cfg.kafka.partitions,
        cfg.kafka.replication_factor,
        wait,
    )?;
    let db = Arc::new(EnvCluster::new(
        control.clone(),
        state.nodes.clone(),
        layout.clone(),
    ));
    Ok(RunCluster {
        control,
        layout,
        layout_path,
        guard,
        db,
        prepared: None,
    })
}

/// Phase "load": opens the history, starts the observer and the fault
/// schedule ([`LoadThreads`]) and runs the queue workload, which calls
/// [`heal`] when the load period ends and then drains, replays its DLQ and
/// reads everything back.
fn load(
    cfg: &TestConfig,
    dir: &Path,
    history: &Path,
    plan: &Schedule,
    cluster: &RunCluster,
    interrupt: &Interrupt,
    progress: &mut Progress,
) -> Result<()> {
    let writer = HistoryWriter::create(history)?;
    crate::evidence::write_clock(dir, writer.started_at())?;
    if let Some(report) = &cluster.prepared {
        writer.record(
            &splitbrain_core::history::Process::Named("env".into()),
            splitbrain_core::history::OpType::Info,
            "prepare",
            report,
        )?;
    }
    let mut threads =
        LoadThreads::start(cfg, plan, &cluster.db, &cluster.control, &writer, interrupt)?;
    if cfg.workload.kind == "txn" {
        return load_txn(cfg, cluster, interrupt, progress, writer, threads);
    }
    let mut opts = load::queue_options(cfg, cluster.layout.bootstrap_servers(), dir);
    // Ctrl-C stops the workload itself: no new send from the first.
    opts.stop = interrupt.workload_stop();
    progress.phase("load");
    progress.start_load(writer.clone(), threads.current_fault(), interrupt.clone());
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {
        heal(cfg, &mut threads, &cluster.db, interrupt)
    });
    progress.stop_load();
    let result = match report {
        Ok(report) => {
            tracing::info!(?report, "workload done");
            load::record_delivery(&writer, &report);
            Ok(())
        }
        Err(e) => Err(RunError::from(e)),
    };
    let observed = threads.stop();
    tracing::info!(?observed, "observer stopped");
    result
}

/// Phase "load" of the transactional workload (`workload.kind = "txn"`):
/// as [`load`], with `txn::run` in place of the queue workload.
fn load_txn(
    cfg: &TestConfig,
    cluster: &RunCluster,
    interrupt: &Interrupt,
    progress: &mut Progress,
    writer: HistoryWriter,
    mut threads: LoadThreads,
) -> Result<()> {
    let mut opts = load::txn_options(cfg, cluster.layout.bootstrap_servers());
    opts.stop = interrupt.workload_stop();
    progress.phase("load");
    progress.start_load(writer.clone(), threads.current_fault(), interrupt.clone());
    let report = txn::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {
        heal(cfg, &mut threads, &cluster.db, interrupt)
    });
    progress.stop_load();
    let result = match report {
        Ok(report) => {
            tracing::info!(?report, "txn workload done");
            Ok(())
        }
        Err(e) => Err(RunError::from(e)),
    };
    let observed = threads.stop();
    tracing::info!(?observed, "observer stopped");
    result
}

/// Phase "heal", at the end of the load (or at the first Ctrl-C): stops
/// the fault schedule (which heals what it did) and waits for every
/// partition to have a leader, unless Ctrl-C came twice.
fn heal(cfg: &TestConfig, threads: &mut LoadThreads, db: &EnvCluster, interrupt: &Interrupt) {
    progress::stage(if interrupt.requested() && !interrupt.now() {
        "stopping: heal (Ctrl-C again to skip drain and final read)"
    } else {
        "heal"
    });
    for p in threads.stop_faults() {
        tracing::error!("faults: {p}");
        progress::announce(&format!("fault problem: {p}"));
    }
    // In short slices, so that a second Ctrl-C ends the wait.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !interrupt.now() {
        match cluster::wait_for_leaders(
            &db.layout(),
            topic(cfg),
            cfg.kafka.partitions,
            Duration::from_secs(2),
        ) {
            Ok(()) => break,
            Err(e) if Instant::now() >= deadline => {
                tracing::warn!("after heal: {e}");
                break;
            }
            Err(_) => {}
        }
    }
    progress::stage(if interrupt.now() {
        "Ctrl-C twice: skipping drain, DLQ replay and final read; tearing down"
    } else if interrupt.requested() {
        "stopping: drain, DLQ replay, final read (Ctrl-C again to skip drain and final read)"
    } else {
        "drain, DLQ replay, final read"
    });
}

/// Before "collect logs" of a txn test: every broker dumps its segments of
/// the test's topic (records, producer ids, COMMIT/ABORT markers) into its
/// log directory, so that a transactional anomaly can be checked against
/// what the replicas hold (`nodes/<node>/kafka/logs_segments-txn.txt`).
fn dump_txn_segments(cfg: &TestConfig, cluster: &RunCluster) {
    for (node, e) in cluster::dump_segments(
        &cluster.control,
        &cluster.db.layout(),
        topic(cfg),
        Duration::from_secs(60),
    ) {
        tracing::warn!("dumping the segments of {node}: {e}");
    }
}

/// Phase "collect logs": every server's logs and configs into the run
/// directory (added servers included).
fn collect_logs(cluster: &RunCluster, dir: &Path, progress: &mut Progress) {
    progress.phase("collect logs");
    if let Err(e) = cluster::collect(&cluster.control, &cluster.db.layout(), &dir.join("nodes")) {
        tracing::warn!("collecting logs: {e}");
    }
}

/// Phase "evidence": the servers' side of each anomaly example (segment
/// dumps, log lines) into `evidence.json`, while the cluster is still up.
/// Never fails the run: what could not be collected is said in the
/// evidence or logged. Returns the analysis of the history it made, for
/// the reports (see [`crate::evidence::for_reports`]).
fn gather_evidence(
    cfg: &TestConfig,
    cluster: &RunCluster,
    dir: &Path,
    history: &Path,
    progress: &mut Progress,
) -> Option<report::Analysis> {
    if cfg.evidence == 0 || !std::fs::metadata(history).is_ok_and(|m| m.len() > 0) {
        return None;
    }
    progress.phase("evidence");
    let layout = cluster.db.layout();
    match crate::evidence::collect(
        &cluster.control,
        &layout,
        dir,
        history,
        topic(cfg),
        cfg.evidence,
    ) {
        Ok((file, analysis)) => {
            let (lost, confirmed, explained, _) = file.lost_write_counts();
            let line = format!(
                "evidence for {} example(s) in {:.1} s (history check {:.1} s, segment dumps {:.1} s){}",
                file.examples.len(),
                file.collected_in_ms as f64 / 1000.0,
                file.analysis_ms as f64 / 1000.0,
                file.dump_ms as f64 / 1000.0,
                if lost > 0 {
                    format!(
                        "; lost writes: {lost}, confirmed by the segments: {confirmed}, explained by the logs: {explained}"
                    )
                } else {
                    String::new()
                }
            );
            tracing::info!("{line}");
            progress.line(&line);
            Some(crate::evidence::for_reports(analysis))
        }
        Err(e) => {
            tracing::warn!("collecting evidence: {}", e.chain());
            progress.line(&format!("evidence not collected: {}", e.chain()));
            None
        }
    }
}

/// Phase "cluster down": stops every server and forgets the layout.
fn cluster_down(cluster: RunCluster, progress: &mut Progress) {
    progress.phase("cluster down");
    for e in cluster::stop_all(&cluster.control, &cluster.db.layout(), false) {
        tracing::warn!("cluster down: {e}");
    }
    drop(cluster.guard);
    let _ = std::fs::remove_file(&cluster.layout_path);
}

/// What the check of a run's history says.
struct Checked {
    passed: bool,
    status: report::Status,
    valid: bool,
    summary: String,
}

/// Phases "check" and "reports": checks what was recorded (also after an
/// error or Ctrl-C; or takes `checked`, the evidence phase's check of the
/// finished history) and writes results.json, junit.xml and report.html.
fn check_and_report(
    dir: &Path,
    history: &Path,
    interrupted: Option<String>,
    error: Option<&str>,
    progress: &mut Progress,
    checked: Option<report::Analysis>,
) -> Result<Checked> {
    progress.phase("check");
    let has_ops = std::fs::metadata(history).is_ok_and(|m| m.len() > 0);
    if !has_ops {
        logging::close();
        return Err(RunError::NothingRecorded {
            why: error
                .unwrap_or("the run recorded no operations")
                .to_string(),
            dir: dir.to_path_buf(),
        });
    }
    let mut info = report::load_run_info(dir)?;
    info.interrupted = interrupted;
    let analysis = match checked {
        Some(a) => a,
        None => report::analyze(history, &CheckOptions::default())?,
    };
    progress.phase("reports");
    report::write_all(dir, &analysis, &info)?;
    let outcome = report::Outcome::of_run(&analysis, &info);
    let summary = outcome.describe();
    progress.line(&format!(
        "{summary} ({} operations); report: {}",
        analysis.operations,
        dir.join(report::REPORT_FILE).display()
    ));
    tracing::info!("{summary}");
    progress.finish();
    logging::close();
    Ok(Checked {
        passed: outcome.passed(),
        status: outcome.status(),
        valid: analysis.verdict.valid,
        summary,
    })
}

fn check_interrupt(interrupt: &Interrupt) -> Result<()> {
    if interrupt.requested() {
        return Err(RunError::Interrupted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_short_slugs() {
        let name = env_name("Incident_2020.acks-1 with a long tail");
        assert!(name.starts_with("sb-incident-2020-acks-1-"), "{name}");
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn idempotence_needs_acks_all() {
        let mut cfg = TestConfig::default();
        assert!(check_client_settings(&cfg).is_ok());
        cfg.kafka.acks = "1".into();
        let e = check_client_settings(&cfg).unwrap_err().to_string();
        assert!(e.contains("set idempotence = false"), "{e}");
        cfg.kafka.idempotence = false;
        assert!(check_client_settings(&cfg).is_ok());
    }
}
