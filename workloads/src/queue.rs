//! The queue workload: producers sending unique integers to the partitions
//! of one topic with retries and a dead-letter queue, idempotent consumers,
//! and the closing phases (heal, drain, DLQ replay, final read). Every client
//! operation goes to the history; so do the phases (`process: "workload"`).
//!
//! Phases, in order (each announced by a `phase` event):
//! 1. `load`: `senders` processes send for `load_duration` (or until
//!    `max_messages`), consumers read all along;
//! 2. `heal`: the caller's hook runs (the runner heals its faults there);
//! 3. `drain`: consumers read until every acknowledged offset of every log
//!    has been read, or `drain_timeout` passes; a `drain` event says which;
//! 4. `replay`: every DLQ entry is re-sent (`f: "replay"`), same backoff;
//! 5. `final-read`: as `drain`, for the replayed messages too
//!    (`final-read` event); then the consumers stop.
//!
//! After the final read the consumers stop and the effect store is read
//! back into an `effects` event (process `"effects"`): per message how many
//! times its effect was applied (docs/history.md).
//!
//! [`QueueOptions::stop`] ends a run early from outside (Ctrl-C): see
//! [`crate::stop`]. [`QueueOptions::consumer_crashes`] crashes consumers
//! during the load (see [`crate::consumer`]).

use crate::backoff::{millis, Backoff};
use crate::consumer::{
    log_key, run_consumer, ConsumerMode, ConsumerSpec, ConsumerStats, ReadProgress,
};
use crate::dlq::{DlqEntry, DlqJournal};
use crate::effects::{self, EffectStore, EffectsMode, EffectsSummary, EFFECTS_FILE};
use crate::error::WorkloadError;
use crate::producer::{QueueProducer, SendOutcome};
use crate::settings::{ConsumerSettings, ProducerSettings};
use crate::stop::{StopHandle, StopLevel};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use splitbrain_core::history::{HistoryError, HistoryWriter, OpType, Process};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of the queue workload. Defaults suit a 3-broker test cluster.
#[derive(Clone, Debug, Serialize)]
pub struct QueueOptions {
    /// Kafka bootstrap servers, `host:port,...`.
    pub bootstrap: String,
    /// The topic; it must exist with `partitions` partitions.
    pub topic: String,
    /// Partitions of the topic (default 3); history keys are
    /// `"<topic>-0"` .. `"<topic>-<partitions-1>"`.
    pub partitions: i32,
    /// librdkafka producer clients (default 1).
    pub producers: usize,
    /// Sending processes, spread over the producer clients; each has at
    /// most one send in flight (default 8).
    pub senders: usize,
    /// Consumers (default 2).
    pub consumers: usize,
    /// Group or assign (default group).
    pub consumer_mode: ConsumerMode,
    /// Target sends per second over all senders; 0 = as fast as they can
    /// (default 200).
    pub rate: f64,
    /// Payload bytes per message (default 100; at least the message's
    /// decimal digits).
    pub payload_size: usize,
    /// How long the load phase sends (default 20 s).
    #[serde(with = "millis")]
    pub load_duration: Duration,
    /// Stop sending after this many messages, if set.
    pub max_messages: Option<u64>,
    /// Longest wait for the consumers to catch up after the heal
    /// (default 60 s).
    #[serde(with = "millis")]
    pub drain_timeout: Duration,
    /// Same, after the replay (default 60 s).
    #[serde(with = "millis")]
    pub final_read_timeout: Duration,
    /// Longest wait of one poll for its first record (default 100 ms).
    #[serde(with = "millis")]
    pub poll_timeout: Duration,
    /// Most records in one recorded poll (default 500).
    pub max_poll_records: usize,
    /// Application-level retries.
    pub backoff: Backoff,
    /// Producer client settings.
    pub producer: ProducerSettings,
    /// Consumer client settings.
    pub consumer: ConsumerSettings,
    /// How consumers apply effects and order their commits (default: the
    /// idempotent consumer, dedup on, commit after the effects).
    pub effects: EffectsMode,
    /// Crash consumers during the load (default none).
    pub consumer_crashes: Option<CrashSchedule>,
    /// Directory for the DLQ journal (`dlq.jsonl`) and the consumers'
    /// effect store (`effects.sqlite`); on the control node.
    pub state_dir: PathBuf,
    /// The external stop: keep a clone and call [`StopHandle::escalate`]
    /// (or [`StopHandle::request`]) to end the run early. Not part of the
    /// recorded configuration. Clones of the options share it: give each
    /// run a fresh one (`StopHandle::new()`).
    #[serde(skip)]
    pub stop: StopHandle,
}

impl QueueOptions {
    /// Defaults for a cluster at `bootstrap`, keeping state in `state_dir`.
    pub fn new(bootstrap: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        QueueOptions {
            bootstrap: bootstrap.into(),
            topic: "queue".into(),
            partitions: 3,
            producers: 1,
            senders: 8,
            consumers: 2,
            consumer_mode: ConsumerMode::Group,
            rate: 200.0,
            payload_size: 100,
            load_duration: Duration::from_secs(20),
            max_messages: None,
            drain_timeout: Duration::from_secs(60),
            final_read_timeout: Duration::from_secs(60),
            poll_timeout: Duration::from_millis(100),
            max_poll_records: 500,
            backoff: Backoff::default(),
            producer: ProducerSettings::default(),
            consumer: ConsumerSettings::default(),
            effects: EffectsMode::default(),
            consumer_crashes: None,
            state_dir: state_dir.into(),
            stop: StopHandle::new(),
        }
    }
}

/// Consumer crashes: every `every`, one consumer, drawn with `seed`, is
/// told to crash at its next poll with records (in the window between its
/// effects and its commit); a replacement with a new process number takes
/// its place. Only during the load phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CrashSchedule {
    /// Time between crash requests.
    #[serde(with = "millis")]
    pub every: Duration,
    /// Seed of the choice of consumer.
    pub seed: u64,
}

/// Counts of sends (or replays) by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SendStats {
    /// Messages attempted (each at least once).
    pub messages: u64,
    /// Attempts invoked.
    pub attempts: u64,
    /// Attempts acknowledged.
    pub ok: u64,
    /// Attempts that definitely failed.
    pub fail: u64,
    /// Attempts with unknown outcome.
    pub info: u64,
    /// Messages attempted more than once (re-sent with the same `msg`).
    pub retried: u64,
    /// Messages that exhausted their attempts (for sends: stored in the DLQ).
    pub exhausted: u64,
    /// Of `exhausted`: messages given up before their attempts ran out
    /// because of an external stop (for sends: DLQ'd for the replay).
    pub cut_short: u64,
}

#[derive(Default)]
struct SendCounters {
    messages: AtomicU64,
    attempts: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
    retried: AtomicU64,
    exhausted: AtomicU64,
    cut_short: AtomicU64,
}

impl SendCounters {
    fn snapshot(&self) -> SendStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SendStats {
            messages: g(&self.messages),
            attempts: g(&self.attempts),
            ok: g(&self.ok),
            fail: g(&self.fail),
            info: g(&self.info),
            retried: g(&self.retried),
            exhausted: g(&self.exhausted),
            cut_short: g(&self.cut_short),
        }
    }
}

/// Whether the consumers caught up in a reading phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadUp {
    /// Every acknowledged offset of every log was read.
    pub complete: bool,
    /// How long it waited.
    #[serde(with = "millis")]
    pub waited: Duration,
    /// Logs not caught up: key, highest acknowledged offset, highest read.
    pub behind: Vec<(String, i64, i64)>,
    /// Cut short (or skipped) by an external stop-now.
    pub stopped: bool,
}

/// What became of the messages: the counts a run's summary states.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeliverySummary {
    /// Messages sent (each with one or more attempts).
    pub messages: u64,
    /// Send attempts that ended `ok`.
    pub sends_ok: u64,
    /// Send attempts that ended `fail`.
    pub sends_fail: u64,
    /// Send attempts that ended `info` (outcome unknown).
    pub sends_info: u64,
    /// Messages re-sent with the same `msg` after a `fail` or `info`.
    pub resent: u64,
    /// Messages stored in the DLQ (their sends never acknowledged).
    pub dlq: u64,
    /// DLQ'd messages re-sent in the replay phase.
    pub replayed: u64,
    /// Replays acknowledged.
    pub replayed_ok: u64,
    /// DLQ'd messages the consumers had read by the end of the final read
    /// (read after their replay, or already before: an `info` send that
    /// was persisted after all).
    pub dlq_read: u64,
    /// Whether the DLQ was exercised: some message went to it. When false,
    /// the run says "DLQ not exercised in this run" rather than implying
    /// the DLQ path was verified.
    pub dlq_exercised: bool,
}

impl DeliverySummary {
    /// The summary of these send and replay counts, `dlq` DLQ entries and
    /// `dlq_read` of them read.
    pub fn new(sends: &SendStats, replays: &SendStats, dlq: u64, dlq_read: u64) -> Self {
        DeliverySummary {
            messages: sends.messages,
            sends_ok: sends.ok,
            sends_fail: sends.fail,
            sends_info: sends.info,
            resent: sends.retried,
            dlq,
            replayed: replays.messages,
            replayed_ok: replays.ok,
            dlq_read,
            dlq_exercised: dlq > 0,
        }
    }
}

impl std::fmt::Display for DeliverySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages sent: {} sends ok, {} fail, {} info; {} re-sent with the same msg; ",
            self.messages, self.sends_ok, self.sends_fail, self.sends_info, self.resent
        )?;
        if self.dlq_exercised {
            write!(
                f,
                "{} DLQ'd, {} replayed ({} acknowledged), {} of the DLQ'd read by the end",
                self.dlq, self.replayed, self.replayed_ok, self.dlq_read
            )
        } else if self.sends_fail + self.sends_info == 0 {
            write!(
                f,
                "DLQ not exercised in this run (no send failed or was unknown)"
            )
        } else {
            write!(
                f,
                "DLQ not exercised in this run (every failed or unknown send was \
                 acknowledged on a retry)"
            )
        }
    }
}

/// What the workload did.
#[derive(Clone, Debug, Serialize)]
pub struct QueueReport {
    /// First sends and their retries.
    pub sends: SendStats,
    /// DLQ replays.
    pub replays: SendStats,
    /// Entries in the DLQ journal at replay time.
    pub dlq_entries: usize,
    /// Length of the load phase.
    #[serde(with = "millis")]
    pub load_elapsed: Duration,
    /// The drain after the heal.
    pub drain: ReadUp,
    /// The final read after the replay.
    pub final_read: ReadUp,
    /// Per consumer slot (a crashed consumer and its replacements share
    /// one).
    pub consumers: Vec<ConsumerStats>,
    /// What the effect store held at the end (also recorded as the
    /// `effects` event).
    pub effects: EffectsSummary,
    /// Producer clients replaced after a fatal librdkafka error.
    pub producer_restarts: u64,
    /// The counts the run's summary states (sends by outcome, re-sends,
    /// DLQ, replay, read), and whether the DLQ was exercised.
    pub delivery: DeliverySummary,
    /// How far an external stop went (`running`: none came).
    pub stopped: StopLevel,
}

struct Shared {
    opts: QueueOptions,
    writer: HistoryWriter,
    next_process: Arc<AtomicU64>,
    next_msg: AtomicU64,
    acked: Vec<AtomicI64>,
    producers: Vec<Mutex<Arc<QueueProducer>>>,
    dlq: DlqJournal,
    /// Raised to `Load` at the end of the load (its time, an error or an
    /// external stop): senders start no new message.
    load_over: StopHandle,
    /// The external stop.
    stop: StopHandle,
    sends: SendCounters,
    replays: SendCounters,
    producer_restarts: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Send,
    Replay,
}

pub(crate) fn workload_event(
    writer: &HistoryWriter,
    f: &str,
    value: &serde_json::Value,
) -> Result<u64, HistoryError> {
    writer.record(&Process::Named("workload".into()), OpType::Ok, f, value)
}

/// The payload of message `msg`: its decimal digits, padded with `.` to
/// `size` bytes.
pub fn payload(msg: u64, size: usize) -> Vec<u8> {
    let mut p = msg.to_string().into_bytes();
    if p.len() < size {
        p.resize(size, b'.');
    }
    p
}

impl Shared {
    fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    fn producer(&self, i: usize) -> Arc<QueueProducer> {
        self.producers[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces producer `i` if `used` (still current) hit a fatal error.
    fn replace_if_fatal(&self, i: usize, used: &Arc<QueueProducer>) -> Result<(), WorkloadError> {
        let Some((code, reason)) = used.fatal_error() else {
            return Ok(());
        };
        let mut slot = self.producers[i].lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&slot, used) {
            return Ok(());
        }
        let fresh = QueueProducer::new(&self.opts.bootstrap, &self.opts.topic, &self.opts.producer)
            .map_err(|source| WorkloadError::Kafka {
                what: format!("recreating producer {i}"),
                source,
            })?;
        *slot = Arc::new(fresh);
        self.producer_restarts.fetch_add(1, Ordering::Relaxed);
        workload_event(
            &self.writer,
            "producer-restart",
            &json!({"producer": i, "error": format!("{code:?}: {reason}")}),
        )?;
        Ok(())
    }

    /// Sends (or replays) one message with retries; a send that exhausts
    /// its attempts goes to the DLQ. Returns whether it was acknowledged.
    ///
    /// An external stop cuts this short: from stop-load on, a send (not a
    /// replay) starts no further attempt; from stop-now on, nothing does, and
    /// an attempt in flight is abandoned and recorded `info`. A message cut
    /// short this way goes to the DLQ like an exhausted one.
    async fn deliver(
        &self,
        producer: usize,
        process: &mut u64,
        kind: Kind,
        partition: i32,
        msg: u64,
    ) -> Result<bool, WorkloadError> {
        let key = log_key(&self.opts.topic, partition);
        let body = payload(msg, self.opts.payload_size);
        let key_bytes = msg.to_string();
        let (counters, no_retry_from) = match kind {
            Kind::Send => (&self.sends, StopLevel::Load),
            Kind::Replay => (&self.replays, StopLevel::Now),
        };
        counters.messages.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut cut_short = false;
        loop {
            attempts += 1;
            counters.attempts.fetch_add(1, Ordering::Relaxed);
            if attempts == 2 {
                counters.retried.fetch_add(1, Ordering::Relaxed);
            }
            let rec = self.writer.client(*process);
            match kind {
                Kind::Send => rec.invoke_send(&key, msg)?,
                Kind::Replay => rec.invoke_replay(&key, msg)?,
            };
            let used = self.producer(producer);
            let outcome = tokio::select! {
                outcome = used.send(partition, key_bytes.as_bytes(), &body) => outcome,
                () = self.stop.wait_for(StopLevel::Now) => SendOutcome::Info {
                    error: "abandoned in flight: the workload was told to stop now".into(),
                },
            };
            match &outcome {
                SendOutcome::Ok {
                    partition: p,
                    offset,
                } => {
                    // We name the partition; a report for another one would
                    // be a client bug: record where it really went.
                    let k = if *p == partition {
                        key.clone()
                    } else {
                        log_key(&self.opts.topic, *p)
                    };
                    match kind {
                        Kind::Send => rec.ok_send(&k, msg, *offset)?,
                        Kind::Replay => rec.ok_replay(&k, msg, *offset)?,
                    };
                    counters.ok.fetch_add(1, Ordering::Relaxed);
                    if let Some(a) = self.acked.get(*p as usize) {
                        a.fetch_max(*offset as i64, Ordering::Relaxed);
                    }
                    return Ok(true);
                }
                SendOutcome::Fail { error } => {
                    tracing::debug!(msg, %error, "send failed");
                    match kind {
                        Kind::Send => rec.fail_send(&key, msg)?,
                        Kind::Replay => rec.fail_replay(&key, msg)?,
                    };
                    counters.fail.fetch_add(1, Ordering::Relaxed);
                }
                SendOutcome::Info { error } => {
                    tracing::debug!(msg, %error, "send outcome unknown");
                    match kind {
                        Kind::Send => rec.info_send(&key, msg)?,
                        Kind::Replay => rec.info_replay(&key, msg)?,
                    };
                    counters.info.fetch_add(1, Ordering::Relaxed);
                    // A process that ended `info` never invokes again.
                    *process = self.new_process();
                }
            }
            self.replace_if_fatal(producer, &used)?;
            let delay = self.opts.backoff.delay(attempts, &mut rand::rng());
            if !self
                .opts
                .backoff
                .may_retry(attempts, started.elapsed(), delay)
            {
                break;
            }
            if self.stop.reached(no_retry_from) {
                cut_short = true;
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.wait_for(no_retry_from) => {
                    cut_short = true;
                    break;
                }
            }
        }
        counters.exhausted.fetch_add(1, Ordering::Relaxed);
        if cut_short {
            counters.cut_short.fetch_add(1, Ordering::Relaxed);
        }
        if kind == Kind::Send {
            self.dlq
                .append(&DlqEntry {
                    topic: self.opts.topic.clone(),
                    partition,
                    key: key.clone(),
                    msg,
                })
                .map_err(|source| WorkloadError::State {
                    what: "DLQ journal",
                    path: self.dlq.path().to_owned(),
                    source,
                })?;
            // Synced: now the history may say so.
            self.writer.dlq(&key, msg)?;
        }
        Ok(false)
    }

    async fn sender(self: Arc<Self>, slot: usize, slot_rate: f64) -> Result<(), WorkloadError> {
        let producer = slot % self.producers.len();
        let mut process = self.new_process();
        let mut pace = (slot_rate > 0.0).then(|| {
            let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / slot_rate));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            if let Some(p) = pace.as_mut() {
                tokio::select! {
                    _ = p.tick() => {}
                    () = self.load_over.wait_for(StopLevel::Load) => {}
                }
            }
            if self.load_over.reached(StopLevel::Load) {
                return Ok(());
            }
            let msg = self.next_msg.fetch_add(1, Ordering::Relaxed);
            if self.opts.max_messages.is_some_and(|max| msg >= max) {
                return Ok(());
            }
            let partition = (msg % self.opts.partitions as u64) as i32;
            self.deliver(producer, &mut process, Kind::Send, partition, msg)
                .await?;
        }
    }

    async fn replayer(
        self: Arc<Self>,
        slot: usize,
        queue: Arc<Mutex<VecDeque<DlqEntry>>>,
    ) -> Result<(), WorkloadError> {
        let producer = slot % self.producers.len();
        let mut process = self.new_process();
        while !self.stop.reached(StopLevel::Now) {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some(entry) = next else { return Ok(()) };
            self.deliver(
                producer,
                &mut process,
                Kind::Replay,
                entry.partition,
                entry.msg,
            )
            .await?;
        }
        Ok(())
    }

    /// Waits until every acknowledged offset has been read, or `timeout`,
    /// or an external stop-now (at once if it came already).
    async fn read_up(&self, progress: &ReadProgress, timeout: Duration, f: &str) -> ReadUp {
        let started = Instant::now();
        loop {
            let behind: Vec<(String, i64, i64)> = self
                .acked
                .iter()
                .zip(&progress.read)
                .enumerate()
                .filter_map(|(p, (a, r))| {
                    let (a, r) = (a.load(Ordering::Relaxed), r.load(Ordering::Relaxed));
                    (r < a).then(|| (log_key(&self.opts.topic, p as i32), a, r))
                })
                .collect();
            let stopped = self.stop.reached(StopLevel::Now);
            if behind.is_empty() || stopped || started.elapsed() >= timeout {
                let up = ReadUp {
                    complete: behind.is_empty(),
                    waited: started.elapsed(),
                    stopped: stopped && !behind.is_empty(),
                    behind,
                };
                tracing::info!(phase = f, complete = up.complete, "read-up");
                return up;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = self.stop.wait_for(StopLevel::Now) => {}
            }
        }
    }
}

/// Runs the queue workload, recording into `writer`; `heal` runs between
/// the load and the drain (also when the load phase failed; not when the
/// workload could not start, e.g. a missing topic). Blocking: it runs its
/// own tokio runtime, so call it from a plain thread (or `spawn_blocking`),
/// not from async code. `opts.state_dir` must not hold an earlier run's DLQ
/// or effect store.
/// `next_process` hands out client process numbers; share it with anything
/// else recording client processes in the same history.
pub fn run(
    opts: &QueueOptions,
    writer: &HistoryWriter,
    next_process: Arc<AtomicU64>,
    heal: impl FnOnce(),
) -> Result<QueueReport, WorkloadError> {
    if opts.partitions < 1 || opts.senders == 0 || opts.producers == 0 {
        return Err(WorkloadError::Options(
            "partitions, senders and producers must each be at least 1".into(),
        ));
    }
    if !opts.rate.is_finite() || opts.rate < 0.0 {
        return Err(WorkloadError::Options(format!(
            "rate {} is not a non-negative number of sends per second",
            opts.rate
        )));
    }
    let state = |what, name: &str| {
        let path = opts.state_dir.join(name);
        move |source| WorkloadError::State { what, path, source }
    };
    std::fs::create_dir_all(&opts.state_dir).map_err(state("state directory", ""))?;
    // One DLQ and one effect store per run: an earlier run's would replay
    // or suppress messages of this one (message numbers restart at 0).
    for name in ["dlq.jsonl", EFFECTS_FILE] {
        let path = opts.state_dir.join(name);
        if path.exists() {
            return Err(WorkloadError::Options(format!(
                "{} exists from an earlier run; give each run its own state directory",
                path.display()
            )));
        }
    }
    let dlq = DlqJournal::open(opts.state_dir.join("dlq.jsonl"))
        .map_err(state("DLQ journal", "dlq.jsonl"))?;
    let effects_path = opts.state_dir.join(EFFECTS_FILE);
    EffectStore::create(&effects_path)?;
    let mut producers = Vec::with_capacity(opts.producers);
    for i in 0..opts.producers {
        let p =
            QueueProducer::new(&opts.bootstrap, &opts.topic, &opts.producer).map_err(|source| {
                WorkloadError::Kafka {
                    what: format!("creating producer {i}"),
                    source,
                }
            })?;
        producers.push(Mutex::new(Arc::new(p)));
    }
    // The topic must exist with the expected partitions (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(15);
    let probe = producers[0].lock().expect("fresh").clone();
    loop {
        match probe.partition_count(Duration::from_secs(2)) {
            Ok(n) if n == opts.partitions as usize => break,
            result if Instant::now() >= deadline => {
                return Err(WorkloadError::Topic {
                    topic: opts.topic.clone(),
                    bootstrap: opts.bootstrap.clone(),
                    expected: opts.partitions,
                    found: match result {
                        Ok(n) => n.to_string(),
                        Err(e) => format!("no answer ({e})"),
                    },
                })
            }
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    drop(probe);

    workload_event(
        writer,
        "config",
        &serde_json::to_value(json!({
            // The checker's `dlq-lost` applies only to a writer with a DLQ
            // (docs/history.md): this workload always has one.
            "dlq": true,
            "options": opts,
            "producer-properties": opts.producer.properties(),
            "consumer-properties": opts.consumer.properties(),
        }))
        .unwrap_or_default(),
    )?;

    let partitions = opts.partitions as usize;
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        writer: writer.clone(),
        next_process: next_process.clone(),
        next_msg: AtomicU64::new(0),
        acked: (0..partitions).map(|_| AtomicI64::new(-1)).collect(),
        producers,
        dlq,
        load_over: StopHandle::new(),
        stop: opts.stop.clone(),
        sends: SendCounters::default(),
        replays: SendCounters::default(),
        producer_restarts: AtomicU64::new(0),
    });
    let progress = Arc::new(ReadProgress::new(partitions));
    let stop_consumers = Arc::new(AtomicBool::new(false));

    // Consumers on their own threads (librdkafka's poll blocks), one thread
    // per slot: a consumer that crashes is replaced there by a new one.
    let crash_requests: Vec<Arc<AtomicBool>> = (0..opts.consumers)
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let mut consumer_threads = Vec::new();
    for (c, crash_request) in crash_requests.iter().enumerate() {
        let assigned: Vec<i32> = (0..opts.partitions)
            .filter(|p| *p as usize % opts.consumers == c)
            .collect();
        let spec =
            move |process: u64, resume: bool, o: &QueueOptions, path: &PathBuf| ConsumerSpec {
                process,
                bootstrap: o.bootstrap.clone(),
                topic: o.topic.clone(),
                partitions: o.partitions,
                mode: o.consumer_mode,
                assigned: assigned.clone(),
                settings: o.consumer.clone(),
                poll_timeout: o.poll_timeout,
                max_poll_records: o.max_poll_records.max(1),
                resume,
                effects_path: path.clone(),
                effects: o.effects,
            };
        let (w, p, stop, crash, o, path, np) = (
            writer.clone(),
            progress.clone(),
            stop_consumers.clone(),
            crash_request.clone(),
            opts.clone(),
            effects_path.clone(),
            next_process.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("consumer-{c}"))
            .spawn(move || -> Result<ConsumerStats, WorkloadError> {
                let mut total = ConsumerStats::default();
                let mut resume = false;
                loop {
                    let process = np.fetch_add(1, Ordering::Relaxed);
                    let exit = run_consumer(
                        spec(process, resume, &o, &path),
                        w.clone(),
                        p.clone(),
                        stop.clone(),
                        crash.clone(),
                    )?;
                    total.absorb(&exit.stats);
                    if !exit.crashed || stop.load(Ordering::Relaxed) {
                        return Ok(total);
                    }
                    resume = true;
                }
            })
            .map_err(|source| WorkloadError::Runtime {
                what: "a consumer thread",
                source,
            })?;
        consumer_threads.push(handle);
    }
    // The crash schedule: during the load only.
    let crasher = opts.consumer_crashes.map(|schedule| {
        let (requests, load_over) = (crash_requests.clone(), shared.load_over.clone());
        std::thread::spawn(move || crash_schedule(schedule, &requests, &load_over))
    });
    // Whatever happens below, the consumer threads are stopped and joined.
    type ConsumerThread = std::thread::JoinHandle<Result<ConsumerStats, WorkloadError>>;
    let join_consumers = |threads: Vec<ConsumerThread>| {
        stop_consumers.store(true, Ordering::Relaxed);
        let mut stats = Vec::new();
        let mut error = None;
        for t in threads {
            match t.join() {
                Ok(Ok(s)) => stats.push(s),
                Ok(Err(e)) => error = Some(e),
                Err(_) => error = Some(WorkloadError::Panicked("a consumer thread".into())),
            }
        }
        (stats, error)
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(source) => {
            join_consumers(consumer_threads);
            return Err(WorkloadError::Runtime {
                what: "the tokio runtime",
                source,
            });
        }
    };
    // Each rise of the external stop is recorded when it is noticed.
    let stops = StopRecorder::new(opts.stop.clone(), writer.clone());
    let stop_watcher = runtime.spawn(stops.clone().watch());
    // The heal hook runs outside the runtime (it may block, or run its own),
    // and runs even when the load phase failed: faults must not outlive us.
    let load = runtime.block_on(load_phase(shared.clone()));
    stops.record_reached();
    let healing = workload_event(writer, "phase", &json!({"phase": "heal"}));
    heal();
    let result = load.and_then(|load_elapsed| {
        healing?;
        runtime
            .block_on(closing_phases(shared.clone(), progress.clone()))
            .map(|(drain, dlq, final_read)| (load_elapsed, drain, dlq, final_read))
    });
    if let Some(c) = crasher {
        // The load is over (or failed): the schedule has ended.
        shared.load_over.request(StopLevel::Load);
        let _ = c.join();
    }
    let (consumer_stats, consumer_error) = join_consumers(consumer_threads);
    for p in &shared.producers {
        p.lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush(Duration::from_secs(1));
    }
    stop_watcher.abort();
    let (load_elapsed, drain, dlq, final_read) = result?;
    if let Some(e) = consumer_error {
        return Err(e);
    }
    // Every consumer has stopped: what the store holds now is final.
    let effects = effects::read_summary(&effects_path)?;
    let mut value = serde_json::to_value(&effects).unwrap_or_default();
    value["store"] = json!("sqlite");
    value["dedup"] = json!(opts.effects.dedup);
    value["commit"] = json!(opts.effects.commit.as_str());
    writer.record(
        &Process::Named("effects".into()),
        OpType::Ok,
        "effects",
        &value,
    )?;
    workload_event(writer, "phase", &json!({"phase": "done"}))?;
    let (sends, replays) = (shared.sends.snapshot(), shared.replays.snapshot());
    // A DLQ'd message counts as read when its effect is in the store.
    let dlq_read = dlq.iter().filter(|e| effects.times(e.msg) > 0).count() as u64;
    let delivery = DeliverySummary::new(&sends, &replays, dlq.len() as u64, dlq_read);
    tracing::info!("workload: {delivery}");
    Ok(QueueReport {
        sends,
        replays,
        dlq_entries: dlq.len(),
        load_elapsed,
        drain,
        final_read,
        consumers: consumer_stats,
        effects,
        producer_restarts: shared.producer_restarts.load(Ordering::Relaxed),
        delivery,
        stopped: opts.stop.level(),
    })
}

/// Raises one consumer's crash request every `schedule.every` until the
/// load is over; then lowers every request not yet acted on, so the closing
/// phases run without crashes.
fn crash_schedule(schedule: CrashSchedule, requests: &[Arc<AtomicBool>], load_over: &StopHandle) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(schedule.seed);
    let tick = Duration::from_millis(50);
    let mut next = Instant::now() + schedule.every;
    while !load_over.reached(StopLevel::Load) && !requests.is_empty() {
        if Instant::now() >= next {
            let victim = rng.random_range(0..requests.len());
            requests[victim].store(true, Ordering::SeqCst);
            tracing::info!(slot = victim, "crash requested");
            next += schedule.every;
        }
        std::thread::sleep(tick);
    }
    for r in requests {
        r.store(false, Ordering::SeqCst);
    }
}

/// Records a `stop` event (`{"level": "load"|"now"}`) each time the
/// external stop rises. A watcher task records rises as it notices them;
/// the workload also calls [`StopRecorder::record_reached`] before it writes
/// what a stop causes (the `heal` phase), so the history never shows the
/// effect of a stop before the stop, however late the watcher is scheduled.
pub(crate) struct StopRecorder {
    stop: StopHandle,
    writer: HistoryWriter,
    recorded: Mutex<StopLevel>,
}

impl StopRecorder {
    pub(crate) fn new(stop: StopHandle, writer: HistoryWriter) -> Arc<Self> {
        Arc::new(Self {
            stop,
            writer,
            recorded: Mutex::new(StopLevel::Running),
        })
    }

    /// Records each level the stop rose through since the last record, in
    /// order: `now` implies the load stopped too, so a stop that went
    /// `load` -> `now` before anyone looked is still recorded as both.
    pub(crate) fn record_reached(&self) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        let reached = self.stop.level();
        for level in [StopLevel::Load, StopLevel::Now] {
            if level > *recorded && level <= reached {
                *recorded = level;
                tracing::info!(?level, "workload: external stop");
                if let Err(e) = workload_event(&self.writer, "stop", &json!({ "level": level })) {
                    tracing::warn!(error = %e, "could not record the stop");
                }
            }
        }
    }

    /// Records each rise of the stop until it reaches `Now`.
    pub(crate) async fn watch(self: Arc<Self>) {
        for next in [StopLevel::Load, StopLevel::Now] {
            self.stop.wait_for(next).await;
            self.record_reached();
        }
    }
}

async fn load_phase(shared: Arc<Shared>) -> Result<Duration, WorkloadError> {
    let opts = shared.opts.clone();
    let writer = shared.writer.clone();
    workload_event(&writer, "phase", &json!({"phase": "load"}))?;
    let started = Instant::now();
    let slot_rate = if opts.rate > 0.0 {
        opts.rate / opts.senders as f64
    } else {
        0.0
    };
    let mut senders = tokio::task::JoinSet::new();
    for slot in 0..opts.senders {
        senders.spawn(shared.clone().sender(slot, slot_rate));
    }
    // The load ends after its time, or at once on an external stop.
    let stopper = {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(opts.load_duration) => {}
                () = shared.stop.wait_for(StopLevel::Load) => {}
            }
            shared.load_over.request(StopLevel::Load);
        })
    };
    let mut first_error = None;
    while let Some(r) = senders.join_next().await {
        let r = r.unwrap_or_else(|e| Err(WorkloadError::Panicked(format!("sender task ({e})"))));
        if let Err(e) = r {
            // Stop the others; keep the first error.
            shared.load_over.request(StopLevel::Load);
            first_error.get_or_insert(e);
        }
    }
    stopper.abort();
    let load_elapsed = started.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(load_elapsed),
    }
}

async fn closing_phases(
    shared: Arc<Shared>,
    progress: Arc<ReadProgress>,
) -> Result<(ReadUp, Vec<DlqEntry>, ReadUp), WorkloadError> {
    let opts = shared.opts.clone();
    let writer = shared.writer.clone();
    workload_event(&writer, "phase", &json!({"phase": "drain"}))?;
    let drain = shared.read_up(&progress, opts.drain_timeout, "drain").await;
    workload_event(
        &writer,
        "drain",
        &serde_json::to_value(&drain).unwrap_or_default(),
    )?;

    let entries = shared
        .dlq
        .entries()
        .map_err(|source| WorkloadError::State {
            what: "DLQ journal",
            path: shared.dlq.path().to_owned(),
            source,
        })?;
    let dlq_entries = entries.len();
    workload_event(
        &writer,
        "phase",
        &json!({"phase": "replay", "dlq-entries": dlq_entries}),
    )?;
    let queue = Arc::new(Mutex::new(VecDeque::from(entries.clone())));
    let mut replayers = tokio::task::JoinSet::new();
    for slot in 0..opts.senders.min(dlq_entries) {
        replayers.spawn(shared.clone().replayer(slot, queue.clone()));
    }
    while let Some(r) = replayers.join_next().await {
        r.unwrap_or_else(|e| Err(WorkloadError::Panicked(format!("replay task ({e})"))))?;
    }

    workload_event(&writer, "phase", &json!({"phase": "final-read"}))?;
    let final_read = shared
        .read_up(&progress, opts.final_read_timeout, "final-read")
        .await;
    workload_event(
        &writer,
        "final-read",
        &serde_json::to_value(&final_read).unwrap_or_default(),
    )?;
    Ok((drain, entries, final_read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_the_message_and_has_the_size() {
        let p = payload(1234, 10);
        assert_eq!(p, b"1234......");
        assert_eq!(crate::consumer::parse_msg(&p), Some(1234));
        assert_eq!(payload(123456, 3), b"123456");
    }

    #[test]
    fn the_summary_says_when_the_dlq_was_not_exercised() {
        let clean = SendStats {
            messages: 10,
            attempts: 10,
            ok: 10,
            ..SendStats::default()
        };
        let s = DeliverySummary::new(&clean, &SendStats::default(), 0, 0);
        assert!(!s.dlq_exercised);
        assert_eq!(
            s.to_string(),
            "10 messages sent: 10 sends ok, 0 fail, 0 info; 0 re-sent with the same msg; \
             DLQ not exercised in this run (no send failed or was unknown)"
        );
        // Failures that a retry fixed: still nothing went to the DLQ.
        let retried = SendStats {
            attempts: 12,
            fail: 1,
            info: 1,
            retried: 2,
            ..clean.clone()
        };
        let s = DeliverySummary::new(&retried, &SendStats::default(), 0, 0);
        assert!(!s.dlq_exercised);
        assert!(s.to_string().ends_with(
            "2 re-sent with the same msg; DLQ not exercised in this run (every failed or \
             unknown send was acknowledged on a retry)"
        ));
        // Two DLQ'd, both replayed, one acknowledged, both read.
        let dlq = SendStats {
            attempts: 16,
            ok: 8,
            fail: 4,
            info: 4,
            retried: 3,
            exhausted: 2,
            ..clean
        };
        let replays = SendStats {
            messages: 2,
            attempts: 3,
            ok: 1,
            info: 2,
            ..SendStats::default()
        };
        let s = DeliverySummary::new(&dlq, &replays, 2, 2);
        assert!(s.dlq_exercised);
        assert_eq!(
            s.to_string(),
            "10 messages sent: 8 sends ok, 4 fail, 4 info; 3 re-sent with the same msg; \
             2 DLQ'd, 2 replayed (1 acknowledged), 2 of the DLQ'd read by the end"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["dlq-exercised"], true);
        assert_eq!(json["sends-info"], 4);
    }

    #[test]
    fn bad_options_are_refused_before_touching_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let w = HistoryWriter::from_writer(std::io::sink(), "sink");
        let mut o = QueueOptions::new("127.0.0.1:9", dir.path());
        o.partitions = 0;
        let e = run(&o, &w, Arc::new(AtomicU64::new(0)), || {}).unwrap_err();
        assert!(matches!(e, WorkloadError::Options(_)), "{e}");
        let mut o = QueueOptions::new("127.0.0.1:9", dir.path());
        o.rate = f64::NAN;
        let e = run(&o, &w, Arc::new(AtomicU64::new(0)), || {}).unwrap_err();
        assert!(e.to_string().contains("rate"), "{e}");
        let o = QueueOptions::new("127.0.0.1:9", dir.path());
        std::fs::write(dir.path().join("dlq.jsonl"), "").unwrap();
        let e = run(&o, &w, Arc::new(AtomicU64::new(0)), || {}).unwrap_err();
        assert!(e.to_string().contains("earlier run"), "{e}");
    }

    /// The levels of the stop events in a history file, in order.
    fn stop_levels(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|op| op["f"] == "stop")
            .map(|op| op["value"]["level"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_stop_is_recorded_before_its_effects_even_when_the_watcher_is_late() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let w = HistoryWriter::create(&path).unwrap();
        let stop = StopHandle::new();
        let stops = StopRecorder::new(stop.clone(), w.clone());
        // Nothing raised: nothing recorded.
        stops.record_reached();
        assert!(stop_levels(&path).is_empty());
        // The stop rises while no watcher has run yet: the workload's own
        // call records it before it writes the heal phase.
        stop.request(StopLevel::Load);
        stops.record_reached();
        workload_event(&w, "phase", &json!({"phase": "heal"})).unwrap();
        // The watcher runs late and records nothing twice; a later rise to
        // `now` is recorded once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        stop.request(StopLevel::Now);
        rt.block_on(stops.clone().watch());
        stops.record_reached();
        assert_eq!(stop_levels(&path), ["load", "now"]);
        // A stop that rose through both levels before anything was recorded
        // (two Ctrl-C in quick succession, a late watcher): both, in order.
        let path2 = dir.path().join("h2.jsonl");
        let stop2 = StopHandle::new();
        let stops2 = StopRecorder::new(stop2.clone(), HistoryWriter::create(&path2).unwrap());
        stop2.escalate();
        stop2.escalate();
        stops2.record_reached();
        rt.block_on(stops2.watch());
        assert_eq!(stop_levels(&path2), ["load", "now"]);
        let text = std::fs::read_to_string(&path).unwrap();
        let heal_at = text.find("\"heal\"").unwrap();
        let load_at = text.find("\"load\"").unwrap();
        let now_at = text.find("\"now\"").unwrap();
        assert!(load_at < heal_at && heal_at < now_at, "{text}");
    }
}
