//! One test from start to verdict: env up → cluster up → workload +
//! observer + fault schedule → heal → drain → DLQ replay → final read →
//! collect logs → cluster down → env down → check → reports.
//!
//! Whatever happens after the history is opened (an error, Ctrl-C), the run
//! still heals, tears down, checks what was recorded and writes its reports.

pub mod config;
pub mod faults;
pub mod progress;

use crate::report::{self, HISTORY_FILE};
use anyhow::{bail, Context};
use config::TestConfig;
use progress::Progress;
use rand::Rng;
use splitbrain_checkers::CheckOptions;
use splitbrain_core::control::Control;
use splitbrain_core::history::HistoryWriter;
use splitbrain_environments::artifacts::Artifacts;
use splitbrain_environments::cluster::{self, ClusterGuard, ClusterLayout, LAYOUT_FILE};
use splitbrain_environments::cluster_control::{enable_reconfig, EnvCluster};
use splitbrain_environments::{netns, observe, EnvState};
use splitbrain_nemeses::Nemesis;
use splitbrain_workloads::backoff::Backoff;
use splitbrain_workloads::consumer::ConsumerMode;
use splitbrain_workloads::observer::{Observer, ObserverConfig};
use splitbrain_workloads::queue::{self, QueueOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The test topic.
pub const TOPIC: &str = "queue";

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// Exactly the expected anomalies (none, by default) were found.
    pub passed: bool,
    /// The history is valid.
    pub valid: bool,
    /// One line: the outcome.
    pub summary: String,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The run could not complete (the error), though what was recorded
    /// was checked.
    pub error: Option<String>,
}

/// Removes an environment the run created, on every path.
struct EnvGuard {
    name: String,
    owned: bool,
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        if self.owned {
            match splitbrain_environments::down(&self.name) {
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
    let base: String = test
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(20)
        .collect();
    let base = base.trim_matches('-');
    let suffix = std::process::id() % 100_000;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 10_000);
    format!("sb-{base}-{suffix}-{stamp}")
}

/// Runs one test, storing it under `store`. `cancel` is set by Ctrl-C.
pub fn run_test(
    mut cfg: TestConfig,
    store: &Path,
    cancel: Arc<AtomicBool>,
) -> anyhow::Result<RunOutcome> {
    let started = Instant::now();
    if cfg.seed == 0 {
        // TOML integers are i64: keep the seed storable.
        cfg.seed = rand::rng().random_range(1..i64::MAX as u64);
    }
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("test config: {e}"))?;
    let dir = crate::store::create_run_dir(store, &cfg.name)?;
    std::fs::write(dir.join(report::CONFIG_FILE), cfg.to_toml())
        .with_context(|| format!("writing {}", dir.join(report::CONFIG_FILE).display()))?;
    crate::logging::to_file(&dir.join("splitbrain.log"))?;
    let mut progress = Progress::new(&cfg.name, cfg.time_limit);
    progress.line(&format!("run directory {}", dir.display()));
    tracing::info!(test = %cfg.name, seed = cfg.seed, dir = %dir.display(), "run starts");

    let history = dir.join(HISTORY_FILE);
    let result = phases(&cfg, &dir, &history, &cancel, &mut progress);
    let error = match &result {
        Ok(()) => None,
        Err(e) => {
            let msg = format!("{e:#}");
            tracing::error!("run failed: {msg}");
            progress.line(&format!("error: {msg}"));
            Some(msg)
        }
    };
    let interrupted = if cancel.load(Ordering::SeqCst) {
        Some("interrupted by Ctrl-C".to_string())
    } else {
        error.clone()
    };
    if let Some(why) = &interrupted {
        let _ = std::fs::write(dir.join("interrupted.txt"), format!("{why}\n"));
    }

    progress.phase("check");
    let has_ops = std::fs::metadata(&history).is_ok_and(|m| m.len() > 0);
    if !has_ops {
        crate::logging::close();
        bail!(
            "{}; nothing was recorded, so there is nothing to check (run directory {})",
            error.unwrap_or_else(|| "the run recorded no operations".into()),
            dir.display()
        );
    }
    let mut info = report::load_run_info(&dir)?;
    info.interrupted = interrupted;
    let analysis = report::analyze(&history, &CheckOptions::default())?;
    progress.phase("reports");
    report::write_all(&dir, &analysis, &info)?;
    let outcome = report::Outcome::of(&analysis.verdict, &info.expect, &info.tolerate);
    let summary = outcome.describe();
    progress.line(&format!(
        "{summary} ({} operations); report: {}",
        analysis.operations,
        dir.join(report::REPORT_FILE).display()
    ));
    tracing::info!("{summary}");
    progress.finish();
    crate::logging::close();
    Ok(RunOutcome {
        dir,
        passed: outcome.passed() && error.is_none(),
        valid: analysis.verdict.valid,
        summary,
        elapsed: started.elapsed(),
        error,
    })
}

fn phases(
    cfg: &TestConfig,
    dir: &Path,
    history: &Path,
    cancel: &Arc<AtomicBool>,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let plan = faults::schedule(cfg).map_err(anyhow::Error::msg)?;
    if cfg.kafka.idempotence && !matches!(cfg.kafka.acks.as_str(), "all" | "-1") {
        bail!("kafka.idempotence = true needs kafka.acks = \"all\" (librdkafka refuses otherwise); set idempotence = false to test acks = {}", cfg.kafka.acks);
    }

    // Environment.
    progress.phase("env up");
    let (state, _env_guard) = match cfg.env.kind.as_str() {
        "netns" => {
            let name = env_name(&cfg.name);
            let guard = EnvGuard {
                name: name.clone(),
                owned: true,
            };
            let state = netns::up(
                &netns::UpOptions {
                    name,
                    nodes: cfg.nodes_needed(),
                    subnet: None,
                },
                Some(cancel),
            )?;
            (state, guard)
        }
        "ssh" => {
            let name = env_name(&cfg.name);
            let guard = EnvGuard {
                name: name.clone(),
                owned: true,
            };
            let hosts = PathBuf::from(cfg.env.hosts.clone().unwrap_or_default());
            let state = splitbrain_environments::ssh::up(&name, &hosts, Duration::from_secs(60))?;
            (state, guard)
        }
        _ => {
            let name = cfg.env.name.clone().unwrap_or_default();
            let state = EnvState::load(&name).with_context(|| {
                format!("no environment {name}: `splitbrain env up --env-name {name}` first")
            })?;
            (state, EnvGuard { name, owned: false })
        }
    };
    progress.line(&format!(
        "environment {} ({} nodes)",
        state.name,
        state.nodes.len()
    ));
    if state.nodes.len() < cfg.nodes_needed() {
        bail!(
            "environment {} has {} nodes, the test needs {}",
            state.name,
            state.nodes.len(),
            cfg.nodes_needed()
        );
    }
    check_cancel(cancel)?;

    // Cluster.
    progress.phase("cluster up");
    let control = Control::connect(&state.nodes, Duration::from_secs(30))
        .context("cannot reach the nodes over SSH")?;
    let mut layout = ClusterLayout::plan(
        &state.name,
        &state.nodes,
        cfg.cluster.zookeeper,
        cfg.cluster.kafka,
        Artifacts::locate().context("ZooKeeper/Kafka jars not found: run scripts/setup")?,
    )?;
    if cfg.nemesis.faults.iter().any(|f| f == "safe-add") {
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
    cluster::up(&control, &layout, wait).context("cluster up")?;
    cluster::create_topic(
        &layout,
        TOPIC,
        cfg.kafka.partitions,
        cfg.kafka.replication_factor,
        wait,
    )?;
    check_cancel(cancel)?;

    // The history and everything that records into it. The cluster as the
    // nemeses see it (added servers included), shared with the observer.
    let writer = HistoryWriter::create(history)?;
    let db = Arc::new(EnvCluster::new(
        control.clone(),
        state.nodes.clone(),
        layout.clone(),
    ));
    let observer = {
        let db = db.clone();
        Observer::start(
            writer.clone(),
            ObserverConfig {
                interval: Duration::from_millis(cfg.workload.observe_interval_ms),
                ..ObserverConfig::default()
            },
            move || observe::observe(&db.layout()),
        )?
    };
    let result = (|| -> anyhow::Result<()> {
        let opts = queue_options(cfg, &layout, dir);
        let stop_faults = Arc::new(AtomicBool::new(false));
        let current = Arc::new(Mutex::new(String::new()));
        // The fault schedule on its own thread; it ends with heal_all.
        let schedule = {
            let (db, control, writer, stop, cancel, current, plan, seed) = (
                db.clone(),
                control.clone(),
                writer.clone(),
                stop_faults.clone(),
                cancel.clone(),
                current.clone(),
                plan.clone(),
                cfg.seed,
            );
            std::thread::Builder::new()
                .name("nemesis".into())
                .spawn(move || -> Vec<String> {
                    let begin = Instant::now();
                    // Ctrl-C or the end of the load stops the schedule; the
                    // progress line shows the planned fault in effect.
                    let watcher = {
                        let (stop, cancel, current, plan) =
                            (stop.clone(), cancel.clone(), current.clone(), plan.clone());
                        std::thread::spawn(move || {
                            while !stop.load(Ordering::SeqCst) {
                                if cancel.load(Ordering::SeqCst) {
                                    stop.store(true, Ordering::SeqCst);
                                }
                                let now = begin.elapsed().as_millis() as u64;
                                *current.lock().expect("current") = faults::current(&plan, now)
                                    .map(faults::describe)
                                    .unwrap_or_default();
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            current.lock().expect("current").clear();
                        })
                    };
                    let mut nemesis = Nemesis::new(&*db, control, Some(writer.clone()), seed);
                    let mut problems = vec![];
                    match splitbrain_nemeses::schedule::run(
                        &mut nemesis,
                        &plan,
                        Some(&writer),
                        &stop,
                    ) {
                        Ok(report) => problems.extend(report.errors.iter().map(|e| e.to_string())),
                        Err(e) => problems.push(format!("fault schedule: {e}")),
                    }
                    if let Err(e) = nemesis.remove_rules() {
                        problems.push(format!("removing drop rules: {e}"));
                    }
                    stop.store(true, Ordering::SeqCst);
                    let _ = watcher.join();
                    problems
                })?
        };
        progress.phase("load");
        progress.start_load(writer.clone(), current.clone(), cancel.clone());
        let heal_db = db.clone();
        let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {
            progress::stage("heal");
            stop_faults.store(true, Ordering::SeqCst);
            let problems = schedule
                .join()
                .unwrap_or_else(|_| vec!["fault schedule panicked".into()]);
            for p in problems {
                tracing::error!("faults: {p}");
                progress::announce(&format!("fault problem: {p}"));
            }
            if let Err(e) = cluster::wait_for_leaders(
                &heal_db.layout(),
                TOPIC,
                cfg.kafka.partitions,
                Duration::from_secs(60),
            ) {
                tracing::warn!("after heal: {e}");
            }
            progress::stage("drain, DLQ replay, final read");
        });
        progress.stop_load();
        let report = report?;
        tracing::info!(?report, "workload done");
        Ok(())
    })();
    let observed = observer.stop();
    tracing::info!(?observed, "observer stopped");

    // Logs and configs of every server, then the cluster goes.
    progress.phase("collect logs");
    let final_layout = db.layout();
    if let Err(e) = cluster::collect(&control, &final_layout, &dir.join("nodes")) {
        tracing::warn!("collecting logs: {e}");
    }
    progress.phase("cluster down");
    for e in cluster::stop_all(&control, &final_layout, false) {
        tracing::warn!("cluster down: {e}");
    }
    drop(guard);
    let _ = std::fs::remove_file(&layout_path);
    progress.phase("env down");
    result
}

fn check_cancel(cancel: &AtomicBool) -> anyhow::Result<()> {
    if cancel.load(Ordering::SeqCst) {
        bail!("interrupted by Ctrl-C");
    }
    Ok(())
}

fn queue_options(cfg: &TestConfig, layout: &ClusterLayout, dir: &Path) -> QueueOptions {
    let w = &cfg.workload;
    let mut o = QueueOptions::new(layout.bootstrap_servers(), dir.join("workload-state"));
    o.topic = TOPIC.into();
    o.partitions = cfg.kafka.partitions;
    o.producers = w.producers.max(1);
    o.senders = w.senders.max(1);
    o.consumers = w.consumers.max(1);
    o.consumer_mode = if w.consumer_mode == "assign" {
        ConsumerMode::Assign
    } else {
        ConsumerMode::Group
    };
    o.rate = w.rate;
    o.payload_size = w.payload;
    o.load_duration = Duration::from_secs(cfg.time_limit);
    o.drain_timeout = Duration::from_secs(w.read_timeout);
    o.final_read_timeout = Duration::from_secs(w.read_timeout);
    o.producer.acks = cfg.kafka.acks.clone();
    o.producer.enable_idempotence = cfg.kafka.idempotence;
    o.producer.message_timeout_ms = w.message_timeout_ms;
    o.producer.request_timeout_ms = w.message_timeout_ms.min(3000);
    o.backoff = Backoff {
        max_attempts: w.max_attempts.max(1),
        initial: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        max_total: Duration::from_millis(
            w.message_timeout_ms * w.max_attempts.max(1) as u64 + 5000,
        ),
    };
    o
}
