//! The transactional workload (Jepsen's Kafka `txn` workload): transactional
//! producers, each transaction sending unique integers to several logs of
//! one topic (and, with consume-transform-produce, polling in the same
//! transaction and committing its offsets with it); a fraction of the
//! transactions aborted on purpose; readers with `isolation.level =
//! read_committed` (`read_uncommitted` as a control) recording every poll.
//!
//! Every operation is `f: "txn"` with a list of micro-operations
//! (docs/history.md, Transactions):
//! - invoke: `[["send","txn-0",17],["poll"]]`;
//! - `ok` (committed): each send with `[offset, msg]`, each poll with what
//!   it read per log, `{"txn-0": [[offset, msg], ...]}`;
//! - `fail` (aborted, on purpose or after an error; the commit was never
//!   requested or the abort succeeded): the micro-operations, sends with
//!   `[offset, msg]` where the offset is known;
//! - `info` (a commit whose outcome is unknown): the process never invokes
//!   again; the slot carries on with a new producer and a new process.
//!
//! Readers record polls as `f: "txn"` operations holding one `["poll"]`.
//!
//! Phases (`phase` events, as the queue workload): `load`, `heal` (the
//! caller's hook), `final-read` (readers read until every log's last
//! committed offset is read by every reader, or the timeout), `done`. The
//! settings go first, as one `txn-settings` event.
//!
//! Error handling follows librdkafka's transactional API: a retriable error
//! of `init_transactions` / `commit_transaction` / `abort_transaction` is
//! retried (at most `txn_call_attempts` calls, each bounded by
//! `txn_call_timeout`); an abortable error (`txn_requires_abort`, or a send
//! that failed) aborts the transaction; a fatal error, or retries run out,
//! replaces the producer (same `transactional.id`: its `init_transactions`
//! fences the old one and resolves what it left open).

use crate::backoff::millis;
use crate::consumer::RebalanceContext;
use crate::consumer::{log_key, poll_call, PollGatherer, ReadProgress};
use crate::error::WorkloadError;
use crate::producer::{QueueProducer, SendOutcome};
use crate::queue::{payload, workload_event, ReadUp, StopRecorder};
use crate::settings::{ConsumerSettings, ProducerSettings};
use crate::stop::{StopHandle, StopLevel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::{json, Value};
use splitbrain_core::history::{HistoryError, HistoryWriter, OpType, Process};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The history's `f` of every transactional operation.
pub const TXN: &str = "txn";
/// The `f` of the settings event (process `workload`, type `info`).
pub const TXN_SETTINGS: &str = "txn-settings";

/// Options of the transactional workload. Defaults suit a 3-broker test
/// cluster (`transaction.state.log.replication.factor` 3, `min.isr` 2).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TxnOptions {
    /// Kafka bootstrap servers, `host:port,...`.
    pub bootstrap: String,
    /// The topic; it must exist with `partitions` partitions. History keys
    /// are `"<topic>-<partition>"`.
    pub topic: String,
    /// Partitions of the topic (default 3).
    pub partitions: i32,
    /// Transactional producer slots (default 4); each runs one producer at
    /// a time, with `transactional.id` `<transactional_id_prefix>-<slot>`.
    pub producers: usize,
    /// Readers (default 2), each reading every log from the beginning.
    pub consumers: usize,
    /// Transactions per second over all producers; 0: as fast as they can
    /// (default 20).
    pub rate: f64,
    /// Sends per transaction: 1 to this many, to logs drawn at random
    /// (default 4).
    pub sends_per_txn: usize,
    /// Fraction of transactions aborted on purpose, 0 to 1 (default 0.2).
    pub abort_fraction: f64,
    /// Consume-transform-produce: each transaction first polls (its own
    /// consumer, group `<prefix>-ctp-<slot>`) and commits the polled
    /// offsets with `send_offsets_to_transaction` (default false).
    pub consume_transform_produce: bool,
    /// Records at most in one consume-transform-produce poll (default 20).
    pub ctp_poll_records: usize,
    /// `isolation.level` of the readers and of the consume-transform-produce
    /// consumers: `read_committed` (default) or `read_uncommitted` (the
    /// control: must show aborted reads).
    pub isolation_level: String,
    /// Prefix of the `transactional.id`s (default `splitbrain-txn`).
    pub transactional_id_prefix: String,
    /// `transaction.timeout.ms`: how long the coordinator lets a
    /// transaction stay open before aborting it (default 10000; short, so a
    /// producer killed mid-transaction does not hold read_committed readers
    /// back for long).
    pub transaction_timeout_ms: u64,
    /// Bound of one `init_transactions`, `commit_transaction`,
    /// `abort_transaction` or `send_offsets_to_transaction` call
    /// (default 10 s).
    #[serde(with = "millis")]
    pub txn_call_timeout: Duration,
    /// Calls at most of one of those when it fails retriably (default 3).
    pub txn_call_attempts: u32,
    /// Producer client settings (idempotence is required and forced on).
    pub producer: ProducerSettings,
    /// How long the load phase runs (default 20 s).
    #[serde(with = "millis")]
    pub load_duration: Duration,
    /// Stop after this many transactions, if set.
    pub max_txns: Option<u64>,
    /// Longest wait of the final read (default 60 s).
    #[serde(with = "millis")]
    pub final_read_timeout: Duration,
    /// Longest wait of one poll for its first record (default 100 ms).
    #[serde(with = "millis")]
    pub poll_timeout: Duration,
    /// Most records in one recorded reader poll (default 500).
    pub max_poll_records: usize,
    /// Seed of the transactions' plans (logs, sizes, which abort).
    pub seed: u64,
    /// The external stop (see [`crate::stop`]); not recorded.
    #[serde(skip)]
    pub stop: StopHandle,
}

impl TxnOptions {
    /// Defaults for a cluster at `bootstrap`.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        TxnOptions {
            bootstrap: bootstrap.into(),
            topic: "txn".into(),
            partitions: 3,
            producers: 4,
            consumers: 2,
            rate: 20.0,
            sends_per_txn: 4,
            abort_fraction: 0.2,
            consume_transform_produce: false,
            ctp_poll_records: 20,
            isolation_level: "read_committed".into(),
            transactional_id_prefix: "splitbrain-txn".into(),
            transaction_timeout_ms: 10_000,
            txn_call_timeout: Duration::from_secs(10),
            txn_call_attempts: 3,
            producer: ProducerSettings::default(),
            load_duration: Duration::from_secs(20),
            max_txns: None,
            final_read_timeout: Duration::from_secs(60),
            poll_timeout: Duration::from_millis(100),
            max_poll_records: 500,
            seed: 0,
            stop: StopHandle::new(),
        }
    }

    /// Why these options cannot work, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.partitions < 1 {
            return Some(format!("partitions = {}: at least 1", self.partitions));
        }
        if self.producers == 0 || self.consumers == 0 {
            return Some("producers and consumers must each be at least 1".into());
        }
        if self.sends_per_txn == 0 {
            return Some("sends_per_txn must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.abort_fraction) {
            return Some(format!(
                "abort_fraction = {}: use a number from 0 to 1",
                self.abort_fraction
            ));
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Some(format!("rate = {}: use 0 or a positive number", self.rate));
        }
        if !matches!(
            self.isolation_level.as_str(),
            "read_committed" | "read_uncommitted"
        ) {
            return Some(format!(
                "isolation_level {:?}: use read_committed or read_uncommitted",
                self.isolation_level
            ));
        }
        if self.txn_call_attempts == 0 {
            return Some("txn_call_attempts must be at least 1".into());
        }
        None
    }

    /// How long the load's end waits for a producer to finish its
    /// transaction before leaving it behind as stuck: room for every
    /// bounded step of one transaction (sends, offsets, commit or abort
    /// with their retries), and a margin.
    pub fn stuck_after(&self) -> Duration {
        let calls = self.txn_call_timeout * (3 * self.txn_call_attempts);
        let sends = (Duration::from_millis(self.producer.message_timeout_ms)
            + Duration::from_secs(5))
            * self.sends_per_txn as u32;
        calls + sends + Duration::from_secs(30)
    }

    /// The `transactional.id` of producer slot `slot`.
    pub fn transactional_id(&self, slot: usize) -> String {
        format!("{}-{slot}", self.transactional_id_prefix)
    }

    /// The librdkafka properties of producer slot `slot`.
    pub fn producer_properties(&self, slot: usize) -> Vec<(String, String)> {
        let mut p = self.producer.properties();
        p.push(("enable.idempotence".into(), "true".into()));
        p.push(("transactional.id".into(), self.transactional_id(slot)));
        p.push((
            "transaction.timeout.ms".into(),
            self.transaction_timeout_ms.to_string(),
        ));
        p
    }

    /// The settings of reader `group` (also of the consume-transform-produce
    /// consumers): the isolation level under test, from the beginning.
    fn consumer_settings(&self, group: String) -> ConsumerSettings {
        ConsumerSettings {
            group_id: group,
            isolation_level: self.isolation_level.clone(),
            ..ConsumerSettings::default()
        }
    }
}

/// What one poll read: per log, `(offset, msg)` in the order received.
pub type LogReads = Vec<(String, Vec<(u64, u64)>)>;

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    /// `["send", key, msg]`, or `["send", key, [offset, msg]]` once the
    /// offset is known.
    Send {
        /// The log.
        key: String,
        /// The message.
        msg: u64,
        /// Where it was written, from the delivery report.
        offset: Option<u64>,
    },
    /// `["poll"]`, or `["poll", {key: [[offset, msg], ...]}]` once done.
    Poll {
        /// Per log, `(offset, msg)` in the order received.
        records: Option<LogReads>,
    },
}

impl MicroOp {
    /// The micro-operation as the history writes it.
    pub fn to_json(&self) -> Value {
        match self {
            MicroOp::Send {
                key,
                msg,
                offset: None,
            } => json!(["send", key, msg]),
            MicroOp::Send {
                key,
                msg,
                offset: Some(o),
            } => json!(["send", key, [o, msg]]),
            MicroOp::Poll { records: None } => json!(["poll"]),
            MicroOp::Poll {
                records: Some(records),
            } => {
                let map: serde_json::Map<String, Value> = records
                    .iter()
                    .map(|(k, pairs)| (k.clone(), json!(pairs)))
                    .collect();
                json!(["poll", map])
            }
        }
    }
}

/// Records one process's `txn` operations.
#[derive(Clone, Debug)]
pub struct TxnRecorder {
    writer: HistoryWriter,
    process: Process,
}

impl TxnRecorder {
    /// A recorder for client process `process`.
    pub fn new(writer: &HistoryWriter, process: u64) -> Self {
        TxnRecorder {
            writer: writer.clone(),
            process: Process::Client(process),
        }
    }

    /// Records a `txn` of this type with these micro-operations.
    pub fn record(&self, op_type: OpType, ops: &[MicroOp]) -> Result<u64, HistoryError> {
        let value: Vec<Value> = ops.iter().map(MicroOp::to_json).collect();
        self.writer.record(&self.process, op_type, TXN, &value)
    }
}

/// Counts of what the producers did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TxnStats {
    /// Transactions invoked.
    pub invoked: u64,
    /// Committed (`ok`).
    pub committed: u64,
    /// Aborted on purpose (`fail`).
    pub aborted: u64,
    /// Aborted after an error (`fail`).
    pub aborted_on_error: u64,
    /// Commit outcome unknown (`info`).
    pub unknown: u64,
    /// Producers created (one per slot, plus one per replacement).
    pub producers_started: u64,
    /// Producer starts whose `init_transactions` failed.
    pub init_failures: u64,
    /// Recorded reader polls.
    pub reader_polls: u64,
    /// Records those polls returned.
    pub reader_records: u64,
}

#[derive(Default)]
struct Counters {
    invoked: AtomicU64,
    committed: AtomicU64,
    aborted: AtomicU64,
    aborted_on_error: AtomicU64,
    unknown: AtomicU64,
    producers_started: AtomicU64,
    init_failures: AtomicU64,
    reader_polls: AtomicU64,
    reader_records: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TxnStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TxnStats {
            invoked: g(&self.invoked),
            committed: g(&self.committed),
            aborted: g(&self.aborted),
            aborted_on_error: g(&self.aborted_on_error),
            unknown: g(&self.unknown),
            producers_started: g(&self.producers_started),
            init_failures: g(&self.init_failures),
            reader_polls: g(&self.reader_polls),
            reader_records: g(&self.reader_records),
        }
    }
}

/// What the workload did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TxnReport {
    /// Transactions by outcome, producers, reader polls.
    pub stats: TxnStats,
    /// Length of the load phase.
    #[serde(with = "millis")]
    pub load_elapsed: Duration,
    /// The final read.
    pub final_read: ReadUp,
    /// How far an external stop went.
    pub stopped: StopLevel,
}

struct Shared {
    opts: TxnOptions,
    writer: HistoryWriter,
    next_process: Arc<AtomicU64>,
    next_msg: AtomicU64,
    /// Per partition, the highest offset written by a committed transaction.
    committed: Vec<AtomicI64>,
    load_over: StopHandle,
    counters: Counters,
    /// Set when the load's end waited too long for a producer stuck in a
    /// librdkafka call: its thread is left behind and records nothing more.
    abandoned: AtomicBool,
}

impl Shared {
    fn load_over(&self) -> bool {
        self.load_over.reached(StopLevel::Load)
            || self.opts.stop.reached(StopLevel::Load)
            || self
                .opts
                .max_txns
                .is_some_and(|m| self.counters.invoked.load(Ordering::Relaxed) >= m)
    }
}

/// What a transaction's end means for its producer.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Go on with the next transaction.
    Continue,
    /// Replace the producer (and the process).
    Replace,
}

/// How a librdkafka transactional call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnErrorKind {
    /// May be retried as is.
    Retriable,
    /// The transaction must be aborted.
    Abortable,
    /// The producer is unusable.
    Fatal,
    /// Anything else: treated as fatal for the producer.
    Other,
}

/// Classifies an error of a transactional call, as librdkafka's
/// documentation prescribes (fatal first, then abortable, then retriable).
pub fn classify_txn_error(error: &KafkaError) -> TxnErrorKind {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => TxnErrorKind::Fatal,
        KafkaError::Transaction(e) if e.txn_requires_abort() => TxnErrorKind::Abortable,
        KafkaError::Transaction(e) if e.is_retriable() => TxnErrorKind::Retriable,
        _ => TxnErrorKind::Other,
    }
}

/// Calls `call` until it succeeds, fails other than retriably, or
/// `attempts` calls were made.
fn with_retries(
    attempts: u32,
    what: &str,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let mut n = 0;
    loop {
        n += 1;
        let started = Instant::now();
        let result = call();
        // librdkafka bounds these calls by their timeout; say so when one
        // did not return in time (seen: a call blocking for minutes).
        if started.elapsed() > Duration::from_secs(30) {
            tracing::warn!(
                what,
                elapsed = ?started.elapsed(),
                result = ?result.as_ref().err().map(|e| e.to_string()),
                "a transactional call took longer than 30 s"
            );
        }
        match result {
            Ok(()) => return Ok(()),
            Err(e) if n < attempts && classify_txn_error(&e) == TxnErrorKind::Retriable => {
                tracing::debug!(what, error = %e, attempt = n, "retriable transactional error");
                std::thread::sleep(Duration::from_millis(100 * u64::from(n)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One transaction planned: its logs and messages, whether to abort.
struct Plan {
    sends: Vec<(i32, u64)>,
    abort: bool,
}

/// One producer slot's current producer (and consume-transform-produce
/// consumer), as one process.
struct Client {
    process: u64,
    producer: QueueProducer,
    ctp: Option<BaseConsumer<RebalanceContext>>,
    recorder: TxnRecorder,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// A new producer for `slot`, its transactions initialised.
    fn start(shared: &Shared, slot: usize, process: u64) -> Result<Client, String> {
        let o = &shared.opts;
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &o.bootstrap);
        for (k, v) in o.producer_properties(slot) {
            config.set(k, v);
        }
        let report_timeout =
            Duration::from_millis(o.producer.message_timeout_ms) + Duration::from_secs(5);
        let producer = QueueProducer::with_config(&config, &o.topic, report_timeout)
            .map_err(|e| format!("creating the producer: {e}"))?;
        shared
            .counters
            .producers_started
            .fetch_add(1, Ordering::Relaxed);
        with_retries(o.txn_call_attempts, "init_transactions", || {
            producer.client().init_transactions(o.txn_call_timeout)
        })
        .map_err(|e| format!("init_transactions: {e}"))?;
        let ctp = if o.consume_transform_produce {
            let c: BaseConsumer<RebalanceContext> = o
                .consumer_settings(format!("{}-ctp-{slot}", o.transactional_id_prefix))
                .client_config(&o.bootstrap)
                .create_with_context(RebalanceContext::default())
                .map_err(|e| format!("creating the consume-transform-produce consumer: {e}"))?;
            let mut tpl = TopicPartitionList::new();
            for p in 0..o.partitions {
                // The committed offsets (those of committed transactions),
                // else the beginning.
                tpl.add_partition_offset(&o.topic, p, Offset::Stored)
                    .map_err(|e| format!("assign: {e}"))?;
            }
            c.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
            Some(c)
        } else {
            None
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime: {e}"))?;
        Ok(Client {
            process,
            producer,
            ctp,
            recorder: TxnRecorder::new(&shared.writer, process),
            runtime,
        })
    }

    /// Aborts the open transaction (bounded retries).
    fn abort(&self, o: &TxnOptions) -> Result<(), KafkaError> {
        with_retries(o.txn_call_attempts, "abort_transaction", || {
            self.producer.client().abort_transaction(o.txn_call_timeout)
        })
    }

    /// After an abort: the consume-transform-produce consumer goes back to
    /// where this transaction's poll started (its offsets were not
    /// committed). Returns false when it could not.
    fn rewind(&self, o: &TxnOptions, firsts: &[(i32, u64)]) -> bool {
        let Some(c) = &self.ctp else { return true };
        firsts.iter().all(|(p, offset)| {
            c.seek(
                &o.topic,
                *p,
                Offset::Offset(*offset as i64),
                Duration::from_secs(5),
            )
            .map_err(|e| tracing::warn!(error = %e, "seek after abort"))
            .is_ok()
        })
    }

    /// Records the transaction's completion, unless the workload has given
    /// up waiting for this producer (then it stays without completion: the
    /// checker takes it as `info`, and nothing is written after the run).
    fn complete(
        &self,
        shared: &Shared,
        op_type: OpType,
        ops: &[MicroOp],
    ) -> Result<(), WorkloadError> {
        if shared.abandoned.load(Ordering::SeqCst) {
            tracing::warn!(
                process = self.process,
                ?op_type,
                "completion after abandonment not recorded"
            );
            return Ok(());
        }
        self.recorder.record(op_type, ops)?;
        Ok(())
    }

    /// Runs one transaction and records it.
    fn run_txn(&self, shared: &Shared, plan: &Plan) -> Result<Next, WorkloadError> {
        let o = &shared.opts;
        let c = &shared.counters;
        let mut ops: Vec<MicroOp> = Vec::new();
        if self.ctp.is_some() {
            ops.push(MicroOp::Poll { records: None });
        }
        ops.extend(plan.sends.iter().map(|(p, msg)| MicroOp::Send {
            key: log_key(&o.topic, *p),
            msg: *msg,
            offset: None,
        }));
        c.invoked.fetch_add(1, Ordering::Relaxed);
        self.recorder.record(OpType::Invoke, &ops)?;
        if let Err(e) = self.producer.client().begin_transaction() {
            // Nothing was sent: the transaction did not happen.
            tracing::warn!(process = self.process, error = %e, "begin_transaction");
            c.aborted_on_error.fetch_add(1, Ordering::Relaxed);
            self.complete(shared, OpType::Fail, &ops)?;
            return Ok(Next::Replace);
        }
        let mut error: Option<String> = None;
        // Consume: what the transaction reads, and where each log's poll
        // began (to rewind to on abort) and ended (the offsets to commit).
        let mut firsts: Vec<(i32, u64)> = Vec::new();
        let mut nexts = TopicPartitionList::new();
        if let Some(consumer) = &self.ctp {
            let mut gatherer = PollGatherer::default();
            let poll = gatherer.gather(o.ctp_poll_records.max(1), o.poll_timeout, |t| {
                (poll_call(consumer, t, o.partitions), Vec::new())
            });
            if let Some(e) = &poll.error {
                error = Some(format!("consume: {e}"));
            }
            for (p, pairs) in &poll.records {
                if let (Some(first), Some(last)) = (pairs.first(), pairs.last()) {
                    firsts.push((*p, first.0));
                    let _ =
                        nexts.add_partition_offset(&o.topic, *p, Offset::Offset(last.0 as i64 + 1));
                }
            }
            ops[0] = MicroOp::Poll {
                records: Some(
                    poll.records
                        .iter()
                        .map(|(p, pairs)| (log_key(&o.topic, *p), pairs.clone()))
                        .collect(),
                ),
            };
        }
        // Produce: one send at a time, each awaited; the first error ends
        // the sending (the transaction must then be aborted).
        let first_send = usize::from(self.ctp.is_some());
        for (op, (partition, _)) in ops[first_send..].iter_mut().zip(&plan.sends) {
            let MicroOp::Send { key, msg, offset } = op else {
                continue;
            };
            if error.is_some() {
                break;
            }
            let partition = *partition;
            let outcome = self.runtime.block_on(self.producer.send(
                partition,
                msg.to_string().as_bytes(),
                &payload(*msg, 16),
            ));
            match outcome {
                SendOutcome::Ok { offset: at, .. } => *offset = Some(at),
                SendOutcome::Fail { error: e } | SendOutcome::Info { error: e } => {
                    error = Some(format!("send {msg} to {key}: {e}"));
                }
            }
        }
        if let (Some(consumer), None, false) = (&self.ctp, &error, nexts.count() == 0) {
            match consumer.group_metadata() {
                Some(cgm) => {
                    if let Err(e) =
                        with_retries(o.txn_call_attempts, "send_offsets_to_transaction", || {
                            self.producer.client().send_offsets_to_transaction(
                                &nexts,
                                &cgm,
                                o.txn_call_timeout,
                            )
                        })
                    {
                        error = Some(format!("send_offsets_to_transaction: {e}"));
                    }
                }
                None => error = Some("no consumer group metadata".into()),
            }
        }
        if error.is_some() || plan.abort {
            if let Some(e) = &error {
                tracing::debug!(process = self.process, error = %e, "aborting after an error");
            }
            let aborted = self.abort(o);
            // The commit was never requested: the transaction cannot have
            // committed, whether the abort call succeeded or not.
            let counter = if error.is_some() {
                &c.aborted_on_error
            } else {
                &c.aborted
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.complete(shared, OpType::Fail, &ops)?;
            return Ok(match aborted {
                Ok(()) if self.rewind(o, &firsts) => Next::Continue,
                Ok(()) => Next::Replace,
                Err(e) => {
                    tracing::warn!(process = self.process, error = %e, "abort_transaction");
                    Next::Replace
                }
            });
        }
        let committed = with_retries(o.txn_call_attempts, "commit_transaction", || {
            self.producer
                .client()
                .commit_transaction(o.txn_call_timeout)
        });
        match committed {
            Ok(()) => {
                c.committed.fetch_add(1, Ordering::Relaxed);
                self.complete(shared, OpType::Ok, &ops)?;
                for (op, (p, _)) in ops[first_send..].iter().zip(&plan.sends) {
                    if let (
                        MicroOp::Send {
                            offset: Some(at), ..
                        },
                        Some(slot),
                    ) = (op, shared.committed.get(*p as usize))
                    {
                        slot.fetch_max(*at as i64, Ordering::Relaxed);
                    }
                }
                Ok(Next::Continue)
            }
            // librdkafka: the commit failed and the transaction must be
            // aborted; once the abort succeeds it is definitely not
            // committed.
            Err(e) if classify_txn_error(&e) == TxnErrorKind::Abortable => {
                tracing::info!(process = self.process, error = %e, "commit needs an abort");
                match self.abort(o) {
                    Ok(()) => {
                        c.aborted_on_error.fetch_add(1, Ordering::Relaxed);
                        self.complete(shared, OpType::Fail, &ops)?;
                        Ok(if self.rewind(o, &firsts) {
                            Next::Continue
                        } else {
                            Next::Replace
                        })
                    }
                    Err(e) => {
                        tracing::warn!(process = self.process, error = %e, "abort after commit");
                        c.unknown.fetch_add(1, Ordering::Relaxed);
                        self.complete(shared, OpType::Info, &ops)?;
                        Ok(Next::Replace)
                    }
                }
            }
            Err(e) => {
                tracing::info!(process = self.process, error = %e, "commit outcome unknown");
                c.unknown.fetch_add(1, Ordering::Relaxed);
                self.complete(shared, OpType::Info, &ops)?;
                Ok(Next::Replace)
            }
        }
    }
}

/// One producer slot: producers one after another (a new process each)
/// until the load is over.
fn producer_slot(shared: Arc<Shared>, slot: usize) -> Result<(), WorkloadError> {
    let o = &shared.opts;
    let mut rng = StdRng::seed_from_u64(o.seed ^ (slot as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let interval = if o.rate > 0.0 {
        Duration::from_secs_f64(o.producers as f64 / o.rate)
    } else {
        Duration::ZERO
    };
    let mut next_at = Instant::now();
    while !shared.load_over() {
        let process = shared.next_process.fetch_add(1, Ordering::Relaxed);
        workload_event(
            &shared.writer,
            "txn-producer",
            &json!({"slot": slot, "process": process,
                    "transactional-id": o.transactional_id(slot)}),
        )?;
        let client = match Client::start(&shared, slot, process) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(slot, process, error = %e, "producer start failed");
                shared
                    .counters
                    .init_failures
                    .fetch_add(1, Ordering::Relaxed);
                // Bounded by the load's end: a short pause, then a new try.
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until && !shared.load_over() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
        };
        while !shared.load_over() {
            let now = Instant::now();
            if next_at > now {
                std::thread::sleep(next_at - now);
            }
            next_at = next_at.max(now) + interval;
            let n = rng.random_range(1..=o.sends_per_txn);
            let sends = (0..n)
                .map(|_| {
                    (
                        rng.random_range(0..o.partitions),
                        shared.next_msg.fetch_add(1, Ordering::Relaxed),
                    )
                })
                .collect();
            let plan = Plan {
                sends,
                abort: rng.random_bool(o.abort_fraction),
            };
            if client.run_txn(&shared, &plan)? == Next::Replace {
                break;
            }
        }
        // Flush what is queued; dropping the producer then ends it (an open
        // transaction is aborted by the coordinator, or by the next
        // producer's init_transactions).
        client.producer.flush(Duration::from_secs(1));
    }
    Ok(())
}

/// One reader: polls every log from the beginning until `stop`.
fn reader(
    shared: Arc<Shared>,
    index: usize,
    progress: Arc<ReadProgress>,
    stop: Arc<AtomicBool>,
) -> Result<(), WorkloadError> {
    let o = &shared.opts;
    let process = shared.next_process.fetch_add(1, Ordering::Relaxed);
    let kafka = |what: &str| {
        let what = format!("reader {process}: {what}");
        move |source| WorkloadError::Kafka { what, source }
    };
    let consumer: BaseConsumer<RebalanceContext> = o
        .consumer_settings(format!("{}-read-{index}", o.transactional_id_prefix))
        .client_config(&o.bootstrap)
        .create_with_context(RebalanceContext::default())
        .map_err(kafka("could not create"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..o.partitions {
        tpl.add_partition_offset(&o.topic, p, Offset::Beginning)
            .map_err(kafka("assign"))?;
    }
    consumer.assign(&tpl).map_err(kafka("assign"))?;
    let recorder = TxnRecorder::new(&shared.writer, process);
    let mut gatherer = PollGatherer::default();
    let invoke = [MicroOp::Poll { records: None }];
    while !stop.load(Ordering::Relaxed) {
        recorder.record(OpType::Invoke, &invoke)?;
        let poll = gatherer.gather(o.max_poll_records.max(1), o.poll_timeout, |t| {
            (poll_call(&consumer, t, o.partitions), Vec::new())
        });
        if poll.records.is_empty() {
            if let Some(e) = &poll.error {
                tracing::debug!(process, error = %e, "poll error");
                recorder.record(OpType::Fail, &invoke)?;
                continue;
            }
        }
        let records: LogReads = poll
            .records
            .iter()
            .map(|(p, pairs)| (log_key(&o.topic, *p), pairs.clone()))
            .collect();
        recorder.record(
            OpType::Ok,
            &[MicroOp::Poll {
                records: Some(records),
            }],
        )?;
        let c = &shared.counters;
        c.reader_polls.fetch_add(1, Ordering::Relaxed);
        for (p, pairs) in &poll.records {
            c.reader_records
                .fetch_add(pairs.len() as u64, Ordering::Relaxed);
            if let Some(last) = pairs.iter().map(|(o, _)| *o).max() {
                progress.read[*p as usize].fetch_max(last as i64, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// The settings event's value: every setting, and each client's properties.
pub fn settings_value(opts: &TxnOptions) -> Value {
    let mut v = serde_json::to_value(opts).unwrap_or_default();
    v["transactional-ids"] = json!((0..opts.producers)
        .map(|s| opts.transactional_id(s))
        .collect::<Vec<_>>());
    v["producer-properties"] = json!(opts.producer_properties(0));
    v["consumer-properties"] = json!(opts
        .consumer_settings(format!("{}-read-N", opts.transactional_id_prefix))
        .properties());
    v
}

/// Waits until every reader has read every log up to its last committed
/// offset, or `timeout` passes, or a stop-now comes.
fn read_up(shared: &Shared, readers: &[Arc<ReadProgress>], timeout: Duration) -> ReadUp {
    let start = Instant::now();
    let behind = || -> Vec<(String, i64, i64)> {
        shared
            .committed
            .iter()
            .enumerate()
            .filter_map(|(p, c)| {
                let c = c.load(Ordering::Relaxed);
                let read = readers
                    .iter()
                    .map(|r| r.read[p].load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(-1);
                (read < c).then(|| (log_key(&shared.opts.topic, p as i32), c, read))
            })
            .collect()
    };
    loop {
        let left = behind();
        let stopped = shared.opts.stop.reached(StopLevel::Now);
        if left.is_empty() || stopped || start.elapsed() >= timeout {
            return ReadUp {
                complete: left.is_empty(),
                waited: start.elapsed(),
                behind: left,
                stopped,
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the workload: settings, load, `heal()`, final read. `next_process`
/// hands out process numbers (shared with anyone else recording).
pub fn run(
    opts: &TxnOptions,
    writer: &HistoryWriter,
    next_process: Arc<AtomicU64>,
    heal: impl FnOnce(),
) -> Result<TxnReport, WorkloadError> {
    if let Some(problem) = opts.problem() {
        return Err(WorkloadError::Options(problem));
    }
    writer.record(
        &Process::Named("workload".into()),
        OpType::Info,
        TXN_SETTINGS,
        &settings_value(opts),
    )?;
    // The run's events read `config` as "the workload started".
    workload_event(
        writer,
        "config",
        &json!({"workload": "txn",
                "producer-properties": opts.producer_properties(0)}),
    )?;
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        writer: writer.clone(),
        next_process,
        next_msg: AtomicU64::new(0),
        committed: (0..opts.partitions).map(|_| AtomicI64::new(-1)).collect(),
        load_over: StopHandle::new(),
        counters: Counters::default(),
        abandoned: AtomicBool::new(false),
    });
    let stop_readers = Arc::new(AtomicBool::new(false));
    let progress: Vec<Arc<ReadProgress>> = (0..opts.consumers)
        .map(|_| Arc::new(ReadProgress::new(opts.partitions as usize)))
        .collect();
    let mut readers = Vec::new();
    for (i, p) in progress.iter().enumerate() {
        let (s, p, stop) = (shared.clone(), p.clone(), stop_readers.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("txn-reader-{i}"))
            .spawn(move || reader(s, i, p, stop));
        match spawned {
            Ok(h) => readers.push(h),
            Err(source) => {
                stop_readers.store(true, Ordering::Relaxed);
                for h in readers {
                    let _ = h.join();
                }
                return Err(WorkloadError::Runtime {
                    what: "a reader thread",
                    source,
                });
            }
        }
    }
    let join_all = |handles: Vec<std::thread::JoinHandle<Result<(), WorkloadError>>>,
                    what: &str|
     -> Option<WorkloadError> {
        let mut error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error = Some(e),
                Err(_) => error = Some(WorkloadError::Panicked(what.to_string())),
            }
        }
        error
    };
    // Each rise of the external stop is recorded when it is noticed, until
    // the workload ends.
    let workload_over = StopHandle::new();
    let stops = StopRecorder::new(opts.stop.clone(), writer.clone());
    let stop_watcher = {
        let (stops, over) = (stops.clone(), workload_over.clone());
        std::thread::Builder::new()
            .name("txn-stop-watcher".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    tokio::select! {
                        () = stops.watch() => {}
                        () = over.wait_for(StopLevel::Load) => {}
                    }
                });
                Ok::<(), std::io::Error>(())
            })
    };

    let load = (|| -> Result<Duration, WorkloadError> {
        workload_event(writer, "phase", &json!({"phase": "load"}))?;
        let started = Instant::now();
        let mut producers = Vec::new();
        for slot in 0..opts.producers {
            let s = shared.clone();
            match std::thread::Builder::new()
                .name(format!("txn-producer-{slot}"))
                .spawn(move || producer_slot(s, slot))
            {
                Ok(h) => producers.push(h),
                Err(source) => {
                    shared.load_over.request(StopLevel::Load);
                    join_all(producers, "a producer thread");
                    return Err(WorkloadError::Runtime {
                        what: "a producer thread",
                        source,
                    });
                }
            }
        }
        while started.elapsed() < opts.load_duration
            && !shared.load_over()
            && !producers.iter().all(|h| h.is_finished())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        shared.load_over.request(StopLevel::Load);
        let elapsed = started.elapsed();
        // A producer finishes its transaction first: every call in it is
        // bounded, so it is done within `stuck_after`; one that is not is
        // stuck inside librdkafka and is left behind.
        let stuck_after = opts.stuck_after();
        let waiting = Instant::now();
        while !producers.iter().all(|h| h.is_finished()) && waiting.elapsed() < stuck_after {
            std::thread::sleep(Duration::from_millis(50));
        }
        let (done, stuck): (Vec<_>, Vec<_>) = producers
            .into_iter()
            .enumerate()
            .partition(|(_, h)| h.is_finished());
        if !stuck.is_empty() {
            shared.abandoned.store(true, Ordering::SeqCst);
            let slots: Vec<usize> = stuck.iter().map(|(slot, _)| *slot).collect();
            tracing::warn!(
                ?slots,
                ?stuck_after,
                "producers stuck in librdkafka: left behind"
            );
            writer.record(
                &Process::Named("workload".into()),
                OpType::Info,
                "txn-producers-abandoned",
                &json!({"slots": slots, "waited-ms": waiting.elapsed().as_millis() as u64}),
            )?;
        }
        match join_all(
            done.into_iter().map(|(_, h)| h).collect(),
            "a producer thread",
        ) {
            Some(e) => Err(e),
            None => Ok(elapsed),
        }
    })();
    stops.record_reached();
    let healing = workload_event(writer, "phase", &json!({"phase": "heal"}));
    heal();
    let result = load.and_then(|elapsed| {
        healing?;
        workload_event(writer, "phase", &json!({"phase": "final-read"}))?;
        let final_read = read_up(&shared, &progress, opts.final_read_timeout);
        workload_event(
            writer,
            "final-read",
            &serde_json::to_value(&final_read).unwrap_or_default(),
        )?;
        Ok((elapsed, final_read))
    });
    stop_readers.store(true, Ordering::Relaxed);
    let reader_error = join_all(readers, "a reader thread");
    workload_over.request(StopLevel::Load);
    if let Ok(h) = stop_watcher {
        let _ = h.join();
    }
    let (load_elapsed, final_read) = result?;
    if let Some(e) = reader_error {
        return Err(e);
    }
    let stats = shared.counters.snapshot();
    workload_event(
        writer,
        "txn-counts",
        &serde_json::to_value(&stats).unwrap_or_default(),
    )?;
    workload_event(writer, "phase", &json!({"phase": "done"}))?;
    tracing::info!(?stats, "txn workload done");
    Ok(TxnReport {
        stats,
        load_elapsed,
        final_read,
        stopped: opts.stop.level(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_ops_are_written_as_jepsen_writes_them() {
        let send = MicroOp::Send {
            key: "txn-0".into(),
            msg: 17,
            offset: None,
        };
        assert_eq!(send.to_json(), json!(["send", "txn-0", 17]));
        let sent = MicroOp::Send {
            key: "txn-0".into(),
            msg: 17,
            offset: Some(5),
        };
        assert_eq!(sent.to_json(), json!(["send", "txn-0", [5, 17]]));
        assert_eq!(MicroOp::Poll { records: None }.to_json(), json!(["poll"]));
        let poll = MicroOp::Poll {
            records: Some(vec![("txn-0".into(), vec![(4, 12), (5, 17)])]),
        };
        assert_eq!(
            poll.to_json(),
            json!(["poll", {"txn-0": [[4, 12], [5, 17]]}])
        );
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = HistoryWriter::from_writer(Sink(buf.clone()), "mem");
        TxnRecorder::new(&w, 3)
            .record(OpType::Ok, &[sent, poll])
            .unwrap();
        let line = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["process"], 3);
        assert_eq!(v["type"], "ok");
        assert_eq!(v["f"], "txn");
        assert_eq!(
            v["value"],
            json!([["send", "txn-0", [5, 17]], ["poll", {"txn-0": [[4, 12], [5, 17]]}]])
        );
    }

    #[test]
    fn bad_options_are_refused_before_touching_kafka() {
        let w = HistoryWriter::from_writer(std::io::sink(), "sink");
        type Change = fn(&mut TxnOptions);
        let cases: Vec<(Change, &str)> = vec![
            (|o| o.abort_fraction = 1.5, "abort_fraction"),
            (|o| o.isolation_level = "snapshot".into(), "isolation_level"),
            (|o| o.sends_per_txn = 0, "sends_per_txn"),
            (|o| o.producers = 0, "producers"),
            (|o| o.rate = f64::NAN, "rate"),
        ];
        for (change, word) in cases {
            let mut o = TxnOptions::new("127.0.0.1:9");
            change(&mut o);
            let e = run(&o, &w, Arc::new(AtomicU64::new(0)), || {}).unwrap_err();
            assert!(matches!(e, WorkloadError::Options(_)), "{e}");
            assert!(e.to_string().contains(word), "{e}");
        }
    }

    #[test]
    fn the_settings_name_every_transactional_id_and_the_isolation_level() {
        let mut o = TxnOptions::new("b:9092");
        o.producers = 2;
        o.isolation_level = "read_uncommitted".into();
        let v = settings_value(&o);
        assert_eq!(
            v["transactional-ids"],
            json!(["splitbrain-txn-0", "splitbrain-txn-1"])
        );
        assert_eq!(v["isolation-level"], "read_uncommitted");
        assert_eq!(v["abort-fraction"], 0.2);
        assert_eq!(v["consume-transform-produce"], false);
        assert!(v["producer-properties"]
            .as_array()
            .unwrap()
            .contains(&json!(["transactional.id", "splitbrain-txn-0"])));
        assert!(v["consumer-properties"]
            .as_array()
            .unwrap()
            .contains(&json!(["isolation.level", "read_uncommitted"])));
    }

    #[test]
    fn transactional_errors_are_classified_fatal_first() {
        // Not a transactional error: the producer is not trusted further.
        let e = KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(classify_txn_error(&e), TxnErrorKind::Other);
        let mut calls = 0;
        let r = with_retries(3, "test", || {
            calls += 1;
            Err(e.clone())
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "only retriable errors are retried");
    }

    /// Against an address nothing listens on, `init_transactions` fails
    /// within its bound: the slot records no transaction.
    #[test]
    fn a_producer_that_cannot_reach_the_cluster_records_no_transaction() {
        let mut o = TxnOptions::new("127.0.0.1:9");
        o.txn_call_timeout = Duration::from_millis(500);
        o.txn_call_attempts = 1;
        o.load_duration = Duration::from_millis(1500);
        o.final_read_timeout = Duration::from_millis(200);
        o.producers = 1;
        o.consumers = 1;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = HistoryWriter::from_writer(Sink(buf.clone()), "mem");
        let started = Instant::now();
        let report = run(&o, &w, Arc::new(AtomicU64::new(0)), || {}).unwrap();
        assert!(started.elapsed() < Duration::from_secs(15), "bounded");
        assert_eq!(report.stats.invoked, 0);
        assert!(report.stats.init_failures >= 1, "{:?}", report.stats);
        assert!(
            report.final_read.complete,
            "nothing committed, nothing to read"
        );
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(text.contains("\"f\":\"txn-settings\""));
        assert!(!text.contains("\"f\":\"txn\",\"value\":[[\"send\""));
    }
}
