//! The load phase's threads and the workload's options.
//!
//! [`LoadThreads`] is the one owner of the threads that run beside the
//! workload: the observer (samples every server's view into the history)
//! and the fault schedule (the nemesis, with a watcher that publishes the
//! fault in effect and turns Ctrl-C into the schedule's stop). Stopping it,
//! or dropping it on an error path, stops and joins them all, so no fault
//! outlives the load and no thread outlives the run. It also records the
//! control layer's session events (a node's SSH session dropped,
//! reconnected, given up on) into the history as `ssh-reconnect`.

use super::config::TestConfig;
use super::interrupt::Interrupt;
use super::{faults, TOPIC};
use crate::error::{Result, RunError};
use crate::report::run_events::{DELIVERY, FAULT_ERROR, OBSERVER_STOPPED, SSH_RECONNECT};
use serde_json::json;
use splitbrain_core::control::{Control, SessionEvent};
use splitbrain_core::history::{HistoryWriter, OpType, Process};
use splitbrain_environments::db::cluster_control::EnvCluster;
use splitbrain_environments::probes::observe;
use splitbrain_nemeses::{Nemesis, Schedule};
use splitbrain_workloads::backoff::Backoff;
use splitbrain_workloads::consumer::ConsumerMode;
use splitbrain_workloads::effects::EffectsMode;
use splitbrain_workloads::observer::{Observer, ObserverConfig, ObserverReport, StopReason};
use splitbrain_workloads::queue::{QueueOptions, QueueReport};
use splitbrain_workloads::txn::TxnOptions;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The observer and the fault schedule, running beside the workload.
pub(super) struct LoadThreads {
    observer: Option<Observer>,
    /// Set to end the fault schedule (it heals what it did as it ends).
    stop_faults: Arc<AtomicBool>,
    /// The schedule's thread; it returns the problems it met.
    schedule: Option<JoinHandle<Vec<String>>>,
    /// The planned fault in effect, for the progress line.
    current_fault: Arc<Mutex<String>>,
    /// Where the observer's stop is recorded.
    writer: HistoryWriter,
    /// Records the nodes' SSH session events while the load runs.
    session_events: Option<SessionEventRecorder>,
}

impl LoadThreads {
    /// Starts the observer, then the fault schedule `plan` on `db`.
    pub(super) fn start(
        cfg: &TestConfig,
        plan: &Schedule,
        db: &Arc<EnvCluster>,
        control: &Control,
        writer: &HistoryWriter,
        interrupt: &Interrupt,
    ) -> Result<LoadThreads> {
        let observer = {
            let db = db.clone();
            Observer::start(writer.clone(), observer_config(cfg), move || {
                observe::observe(&db.layout())
            })?
        };
        let mut threads = LoadThreads {
            observer: Some(observer),
            stop_faults: Arc::new(AtomicBool::new(false)),
            schedule: None,
            current_fault: Arc::new(Mutex::new(String::new())),
            writer: writer.clone(),
            session_events: None,
        };
        threads.session_events = Some(SessionEventRecorder::start(
            control.subscribe(),
            writer.clone(),
        )?);
        // On an error here, dropping `threads` stops the observer.
        threads.schedule = Some(spawn_schedule(
            plan.clone(),
            cfg.seed,
            db.clone(),
            control.clone(),
            writer.clone(),
            threads.stop_faults.clone(),
            interrupt.clone(),
            threads.current_fault.clone(),
        )?);
        Ok(threads)
    }

    /// The planned fault in effect ("" when none), updated while the
    /// schedule runs.
    pub(super) fn current_fault(&self) -> Arc<Mutex<String>> {
        self.current_fault.clone()
    }

    /// Ends the fault schedule and waits for it (it heals as it ends);
    /// the problems it met. Nothing after the first call.
    pub(super) fn stop_faults(&mut self) -> Vec<String> {
        self.stop_faults.store(true, Ordering::SeqCst);
        match self.schedule.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| vec!["fault schedule panicked".into()]),
            None => vec![],
        }
    }

    /// Stops everything still running: the fault schedule (when the
    /// workload ended without healing), then the observer; what the
    /// observer recorded.
    pub(super) fn stop(mut self) -> Option<ObserverReport> {
        for p in self.stop_faults() {
            tracing::error!("faults: {p}");
        }
        let report = self.stop_observer();
        if let Some(recorder) = self.session_events.take() {
            recorder.stop();
        }
        report
    }

    /// Stops the observer and records how it ended (`observer-stopped`):
    /// any reason but `requested` means it stopped on its own, before this
    /// call, and makes the run ERROR (docs/results.md).
    fn stop_observer(&mut self) -> Option<ObserverReport> {
        let report = self.observer.take().map(Observer::stop)?;
        let reason = match report.stopped {
            StopReason::Requested => "requested",
            StopReason::MaxSamples => "max-samples",
            StopReason::MaxDuration => "max-duration",
            StopReason::Error => "error",
        };
        let value = json!({"samples": report.samples, "reason": reason, "error": report.error});
        if let Err(e) = self.writer.record(
            &Process::Named("observer".into()),
            OpType::Info,
            OBSERVER_STOPPED,
            &value,
        ) {
            tracing::error!("cannot record the observer's stop: {e}");
        }
        Some(report)
    }
}

impl Drop for LoadThreads {
    fn drop(&mut self) {
        for p in self.stop_faults() {
            tracing::error!("faults: {p}");
        }
        if let Some(report) = self.stop_observer() {
            if let Some(error) = report.error {
                tracing::warn!(%error, "observer stopped with an error");
            }
        }
        if let Some(recorder) = self.session_events.take() {
            recorder.stop();
        }
    }
}

/// A thread that writes each [`SessionEvent`] of the run's [`Control`] to
/// the history as it arrives (`ssh-reconnect`, process `control`), until
/// stopped; events still queued then are written before it ends.
struct SessionEventRecorder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SessionEventRecorder {
    fn start(
        events: mpsc::Receiver<SessionEvent>,
        writer: HistoryWriter,
    ) -> Result<SessionEventRecorder> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ssh-events".into())
            .spawn(move || loop {
                match events.recv_timeout(Duration::from_millis(100)) {
                    Ok(event) => record_session_event(&writer, &event),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if thread_stop.load(Ordering::SeqCst) {
                            for event in events.try_iter() {
                                record_session_event(&writer, &event);
                            }
                            return;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(RunError::io(
                "cannot start the thread recording SSH session events; free some memory or \
                 threads and run again",
            ))?;
        Ok(SessionEventRecorder { stop, thread })
    }

    /// Writes what is queued, then ends the thread.
    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Records one session event (docs/history.md, `ssh-reconnect`).
fn record_session_event(writer: &HistoryWriter, event: &SessionEvent) {
    let value = json!({
        "node": event.node,
        "kind": event.kind.as_str(),
        "attempts": event.attempts,
        "elapsed_ms": event.elapsed.as_millis() as u64,
        "cause": event.cause,
    });
    if let Err(e) = writer.record(
        &Process::Named("control".into()),
        OpType::Info,
        SSH_RECONNECT,
        &value,
    ) {
        tracing::error!("cannot record an SSH session event ({event:?}): {e}");
    }
}

/// The observer's settings: the test's interval, and bounds that cover the
/// whole run (load, drain, replay, final read, with room to spare), so
/// reaching them means something went wrong.
fn observer_config(cfg: &TestConfig) -> ObserverConfig {
    let interval = Duration::from_millis(cfg.workload.observe_interval_ms);
    let max_duration = Duration::from_secs(cfg.time_limit + 3 * cfg.workload.read_timeout + 1800);
    ObserverConfig {
        interval,
        max_samples: (max_duration.as_millis() / interval.as_millis().max(1)) as u64 + 1,
        max_duration,
    }
}

/// Records the workload's delivery counts (`process: "workload"`,
/// `f: "delivery"`): its `DeliverySummary` and, as `summary`, its sentence,
/// so results.json and the report can state them from the history alone.
pub(super) fn record_delivery(writer: &HistoryWriter, report: &QueueReport) {
    let mut value = serde_json::to_value(&report.delivery).unwrap_or_default();
    value["summary"] = json!(report.delivery.to_string());
    if let Err(e) = writer.record(
        &Process::Named("workload".into()),
        OpType::Ok,
        DELIVERY,
        &value,
    ) {
        tracing::error!("cannot record the delivery counts: {e}");
    }
}

/// Records a fault problem the schedule did not record itself (`fault-error`,
/// `phase` says where), so the run's outcome, read from the history, is ERROR.
fn record_fault_error(writer: &HistoryWriter, phase: &str, error: &str) {
    let value = json!({"fault": null, "phase": phase, "error": error});
    if let Err(e) = writer.nemesis(OpType::Info, FAULT_ERROR, &value) {
        tracing::error!("cannot record a fault error ({error}): {e}");
    }
}

/// The fault schedule on its own thread, ending with the nemesis's heal;
/// a watcher beside it publishes the fault in effect and stops the
/// schedule on Ctrl-C (within 100 ms).
#[allow(clippy::too_many_arguments)] // the thread's whole world, moved in
fn spawn_schedule(
    plan: Schedule,
    seed: u64,
    db: Arc<EnvCluster>,
    control: Control,
    writer: HistoryWriter,
    stop: Arc<AtomicBool>,
    interrupt: Interrupt,
    current: Arc<Mutex<String>>,
) -> Result<JoinHandle<Vec<String>>> {
    std::thread::Builder::new()
        .name("nemesis".into())
        .spawn(move || -> Vec<String> {
            let begin = Instant::now();
            // Ctrl-C (at once, not at the load's end) or the end of the
            // load stops the schedule, which heals; the progress line shows
            // the planned fault in effect.
            let watcher = {
                let (stop, interrupt, current, plan) = (
                    stop.clone(),
                    interrupt.clone(),
                    current.clone(),
                    plan.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        if interrupt.requested() {
                            tracing::info!("Ctrl-C: stopping the fault schedule, which heals");
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
            match splitbrain_nemeses::schedule::run(&mut nemesis, &plan, Some(&writer), &stop) {
                // Every fault error is recorded as `fault-error` already.
                Ok(report) => problems.extend(report.errors.iter().map(|e| e.to_string())),
                // Only when the history could not be written; tried anyway.
                Err(e) => {
                    record_fault_error(&writer, "schedule", &e.to_string());
                    problems.push(format!("fault schedule: {e}"));
                }
            }
            if let Err(e) = nemesis.remove_rules() {
                record_fault_error(&writer, "remove-rules", &e.to_string());
                problems.push(format!("removing drop rules: {e}"));
            }
            stop.store(true, Ordering::SeqCst);
            let _ = watcher.join();
            problems
        })
        .map_err(RunError::io(
            "cannot start the fault schedule's thread; free some memory or threads and run again",
        ))
}

/// The queue workload's options for this test: the workload's defaults
/// (`QueueOptions::new`) with the test's settings over them.
pub(super) fn queue_options(cfg: &TestConfig, bootstrap: String, dir: &Path) -> QueueOptions {
    let w = &cfg.workload;
    let mut o = QueueOptions::new(bootstrap, dir.join("workload-state"));
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
    // Below the message timeout, so a request can time out and be retried.
    o.producer.request_timeout_ms = w.message_timeout_ms.min(o.producer.request_timeout_ms);
    let attempts = w.max_attempts.max(1);
    o.backoff = Backoff {
        max_attempts: attempts,
        // Room for every attempt to time out, and the delays between them.
        max_total: Duration::from_millis(w.message_timeout_ms * u64::from(attempts) + 5000),
        ..Backoff::default()
    };
    o.effects = EffectsMode {
        dedup: w.dedup,
        // Checked by `TestConfig::validate`.
        commit: w.commit.parse().unwrap_or_default(),
    };
    o.consumer_crashes = faults::consumer_crashes(cfg);
    o
}

/// The transactional workload's options for this test (`workload.kind =
/// "txn"`): its defaults (`TxnOptions::new`) with the test's settings over
/// them; `rate` is transactions per second, `producers` the transactional
/// producers, `consumers` the readers.
pub(super) fn txn_options(cfg: &TestConfig, bootstrap: String) -> TxnOptions {
    let w = &cfg.workload;
    let t = &w.txn;
    let mut o = TxnOptions::new(bootstrap);
    o.topic = super::topic(cfg).into();
    o.partitions = cfg.kafka.partitions;
    o.producers = w.producers.max(1);
    o.consumers = w.consumers.max(1);
    o.rate = w.rate;
    o.sends_per_txn = t.sends_per_txn.max(1);
    o.abort_fraction = t.abort_fraction;
    o.consume_transform_produce = t.consume_transform_produce;
    o.isolation_level = t.isolation_level.clone();
    o.transaction_timeout_ms = t.transaction_timeout_ms;
    o.txn_call_timeout = Duration::from_secs(t.call_timeout.max(1));
    o.load_duration = Duration::from_secs(cfg.time_limit);
    o.final_read_timeout = Duration::from_secs(w.read_timeout);
    o.producer.message_timeout_ms = w.message_timeout_ms;
    o.producer.request_timeout_ms = w.message_timeout_ms.min(o.producer.request_timeout_ms);
    o.seed = cfg.seed;
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::control::SessionEventKind;
    use splitbrain_workloads::effects::CommitOrder;

    #[test]
    fn session_events_are_recorded_and_the_history_still_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let writer = HistoryWriter::create(&path).unwrap();
        let producer = writer.client(0);
        producer.invoke_send("queue-0", 1).unwrap();
        producer.ok_send("queue-0", 1, 0).unwrap();
        let (tx, rx) = mpsc::channel();
        let recorder = SessionEventRecorder::start(rx, writer.clone()).unwrap();
        let event = |kind, attempts, ms| SessionEvent {
            node: "n2".into(),
            kind,
            attempts,
            elapsed: Duration::from_millis(ms),
            cause: "`echo x`: ssh error: socket disconnect".into(),
        };
        tx.send(event(SessionEventKind::Dropped, 0, 0)).unwrap();
        tx.send(event(SessionEventKind::Reconnected, 2, 840))
            .unwrap();
        // Queued when the load ends: still recorded.
        tx.send(event(SessionEventKind::GaveUp, 10, 90_000))
            .unwrap();
        recorder.stop();
        writer.client(1).invoke_poll().unwrap();
        writer
            .record(
                &Process::Client(1),
                OpType::Ok,
                "poll",
                &json!({"records": {"queue-0": [[0, 1]]}}),
            )
            .unwrap();
        drop(writer);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["f"] == SSH_RECONNECT)
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["process"], "control");
        assert_eq!(lines[0]["type"], "info");
        assert_eq!(
            lines[1]["value"],
            json!({"node": "n2", "kind": "reconnected", "attempts": 2, "elapsed_ms": 840,
                   "cause": "`echo x`: ssh error: socket disconnect"})
        );
        assert_eq!(lines[2]["value"]["kind"], "gave-up");
        // The checkers and the run's outcome ignore the events.
        let analysis =
            crate::report::analyze(&path, &splitbrain_checkers::CheckOptions::default()).unwrap();
        assert_eq!(analysis.operations, 7);
        assert!(crate::report::found(&analysis.verdict).is_empty());
        assert_eq!(analysis.events.problems(), vec![]);
    }

    #[test]
    fn crash_consumer_and_the_controls_reach_the_workload() {
        let mut cfg = TestConfig::default();
        let o = queue_options(&cfg, "b:9092".into(), Path::new("/run"));
        assert_eq!(o.effects, EffectsMode::default());
        assert_eq!(o.consumer_crashes, None);
        cfg.seed = 9;
        cfg.nemesis.faults = vec!["crash:consumer".into(), "kill:kafka".into()];
        cfg.workload.crash_every = 7;
        cfg.workload.dedup = false;
        cfg.workload.commit = "before-apply".into();
        cfg.validate().unwrap();
        let o = queue_options(&cfg, "b:9092".into(), Path::new("/run"));
        assert_eq!(
            o.effects,
            EffectsMode {
                dedup: false,
                commit: CommitOrder::BeforeApply
            }
        );
        let crashes = o.consumer_crashes.unwrap();
        assert_eq!((crashes.every, crashes.seed), (Duration::from_secs(7), 9));
        // The nemesis schedule draws only from the other faults.
        assert_eq!(faults::mix(&cfg).unwrap().len(), 1);
        cfg.workload.commit = "whenever".into();
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn a_default_test_runs_the_workload_as_before() {
        let o = queue_options(&TestConfig::default(), "b:9092".into(), Path::new("/run"));
        assert_eq!((o.senders, o.rate, o.consumers), (8, 200.0, 2));
        assert_eq!(o.consumer_mode, ConsumerMode::Group);
        assert_eq!(o.load_duration, Duration::from_secs(60));
        assert_eq!(o.producer.message_timeout_ms, 5000);
        assert_eq!(o.producer.request_timeout_ms, 3000);
        assert_eq!(o.backoff.max_attempts, 3);
        assert_eq!(o.backoff.initial, Duration::from_millis(200));
        assert_eq!(o.backoff.max_delay, Duration::from_secs(2));
        assert_eq!(o.backoff.max_total, Duration::from_secs(20));
        assert_eq!(o.state_dir, Path::new("/run/workload-state"));
    }

    #[test]
    fn the_test_settings_override_the_workload_defaults() {
        let mut cfg = TestConfig::default();
        cfg.workload.senders = 3;
        cfg.workload.consumer_mode = "assign".into();
        cfg.workload.message_timeout_ms = 1000;
        cfg.workload.max_attempts = 0;
        cfg.kafka.acks = "1".into();
        let o = queue_options(&cfg, "b:9092".into(), Path::new("/run"));
        assert_eq!(o.senders, 3);
        assert_eq!(o.consumer_mode, ConsumerMode::Assign);
        assert_eq!(o.producer.request_timeout_ms, 1000);
        assert_eq!(o.producer.acks, "1");
        assert_eq!(o.backoff.max_attempts, 1);
        assert_eq!(o.backoff.max_total, Duration::from_secs(6));
    }

    #[test]
    fn the_txn_settings_reach_the_txn_workload() {
        let mut cfg = TestConfig::default();
        cfg.workload.kind = "txn".into();
        cfg.workload.rate = 30.0;
        cfg.workload.producers = 3;
        cfg.workload.txn.abort_fraction = 0.3;
        cfg.workload.txn.consume_transform_produce = true;
        cfg.workload.txn.isolation_level = "read_uncommitted".into();
        cfg.seed = 5;
        let o = txn_options(&cfg, "b:9092".into());
        assert_eq!(o.topic, "txn");
        assert_eq!((o.producers, o.rate, o.abort_fraction), (3, 30.0, 0.3));
        assert!(o.consume_transform_produce);
        assert_eq!(o.isolation_level, "read_uncommitted");
        assert_eq!(o.seed, 5);
        assert_eq!(o.load_duration, Duration::from_secs(60));
        assert!(o.problem().is_none());
    }
}
