//! Consumers that apply effects: each poll's messages are applied to the
//! run's effect store (SQLite, one connection per consumer: see
//! [`crate::effects`]) and the poll is recorded with the records it returned
//! per log, the messages whose effect this consumer applied, and the logs
//! newly assigned by a group rebalance. Offsets are committed by hand,
//! synchronously, after the effects' transaction (or before it, in the
//! `before-apply` control).
//!
//! A consumer can be told to crash ([`run_consumer`]'s `crash` flag): at its
//! next poll with records it stops abruptly in the window between applying
//! the effects and committing the offsets (the other way round under
//! `before-apply`): no commit, no close, no leave-group; librdkafka's handle
//! is destroyed with `RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE`, so the group
//! coordinator learns of it only when the session times out, as after a
//! killed process. The caller then starts a replacement with a new process
//! number.
//!
//! A recorded poll is one blocking librdkafka poll call (waiting up to the
//! poll timeout) followed by non-blocking calls taking only the records
//! already fetched, up to `max_poll_records`; it ends at the first call that
//! returns no record. No assignment change ever falls inside one: the
//! rebalance callbacks run inside a poll call (rdkafka serves a rebalance
//! in a call that then returns no record), and [`PollGatherer`] puts the
//! newly assigned logs into the `rebalance` field of the recorded poll whose
//! records all come after the change: the poll during which it happened if
//! that poll had no records before it, else the very next one. The checker
//! restarts the consumer's position in those logs at the start of that poll,
//! which is then exactly where the consumer's position really restarted.

use crate::effects::{CommitOrder, EffectStore, EffectsMode};
use crate::error::WorkloadError;
use crate::settings::ConsumerSettings;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use splitbrain_core::history::{HistoryWriter, OpType, PollRecords, Process};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How consumers get their partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumerMode {
    /// One consumer group (`subscribe`): Kafka spreads the partitions and
    /// rebalances them; records carry `rebalance`.
    Group,
    /// Each consumer is assigned a fixed share of the partitions
    /// (round-robin), from the beginning of each (`assign`, recorded).
    Assign,
}

/// Rebalance bookkeeping: partitions assigned by rebalance callbacks that
/// ran since the last [`RebalanceContext::take_assigned`].
#[derive(Default)]
pub struct RebalanceContext {
    newly_assigned: Mutex<Vec<i32>>,
}

impl RebalanceContext {
    /// The partitions assigned since the last call (in callback order,
    /// each once), and forgets them.
    pub fn take_assigned(&self) -> Vec<i32> {
        std::mem::take(
            &mut *self
                .newly_assigned
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }
}

impl ClientContext for RebalanceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka consumer error");
    }
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::trace!(?level, fac, log_message, "librdkafka");
    }
}

impl ConsumerContext for RebalanceContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut v = self
                    .newly_assigned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                for p in tpl.elements().iter().map(|e| e.partition()) {
                    if !v.contains(&p) {
                        v.push(p);
                    }
                }
                tracing::debug!(partitions = ?v, "rebalance: assigned");
            }
            // A revoked log keeps its recorded position: if it comes back,
            // its assignment restarts the position.
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::debug!(partitions = ?parts, "rebalance: revoked");
            }
            Rebalance::Error(e) => tracing::debug!(error = %e, "rebalance error"),
        }
    }
}

/// One librdkafka poll call, reduced to what the history needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollCall {
    /// A record of partition `partition` at `offset`, holding message `msg`.
    Record {
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: u64,
        /// The message number in its payload.
        msg: u64,
    },
    /// A record that cannot be recorded (no message number in the payload,
    /// no offset, or a partition outside the topic).
    Unparsable,
    /// No record: the wait ran out, or the call served an event (a
    /// rebalance, a commit report).
    Nothing,
    /// A consumer error.
    Error(KafkaError),
}

/// What one recorded poll holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatheredPoll {
    /// Per partition (in the order first seen), `(offset, msg)` pairs in
    /// the order received.
    pub records: Vec<(i32, Vec<(u64, u64)>)>,
    /// Partitions newly assigned before any of `records`.
    pub rebalance: Vec<i32>,
    /// The error that ended the poll, if one did.
    pub error: Option<KafkaError>,
    /// Records that could not be recorded.
    pub unparsable: u64,
}

impl GatheredPoll {
    /// Every message read, in the order received per partition.
    pub fn msgs(&self) -> Vec<u64> {
        self.records
            .iter()
            .flat_map(|(_, pairs)| pairs.iter().map(|(_, m)| *m))
            .collect()
    }

    /// Adds what one call gave; returns whether the poll goes on.
    fn absorb(&mut self, outcome: PollCall, taken: &mut usize) -> bool {
        match outcome {
            PollCall::Record {
                partition,
                offset,
                msg,
            } => {
                *taken += 1;
                match self.records.iter_mut().find(|(p, _)| *p == partition) {
                    Some((_, pairs)) => pairs.push((offset, msg)),
                    None => self.records.push((partition, vec![(offset, msg)])),
                }
                true
            }
            PollCall::Unparsable => {
                *taken += 1;
                self.unparsable += 1;
                true
            }
            PollCall::Nothing => false,
            PollCall::Error(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

/// Turns a consumer's poll calls into recorded polls such that no
/// assignment change falls inside one (see the module documentation).
#[derive(Debug, Default)]
pub struct PollGatherer {
    /// An assignment that came after records of the poll being gathered:
    /// it belongs to the next one, with what its call returned.
    carried: Option<(Vec<i32>, PollCall)>,
}

impl PollGatherer {
    /// Gathers one recorded poll. `call(timeout)` makes one librdkafka poll
    /// call and returns what it gave and the partitions newly assigned by
    /// rebalance callbacks during it. The first call waits `first_timeout`,
    /// later ones do not wait; at most `max_records` records are taken.
    pub fn gather(
        &mut self,
        max_records: usize,
        first_timeout: Duration,
        mut call: impl FnMut(Duration) -> (PollCall, Vec<i32>),
    ) -> GatheredPoll {
        let mut poll = GatheredPoll::default();
        let mut taken = 0usize;
        if let Some((assigned, outcome)) = self.carried.take() {
            poll.rebalance = assigned;
            // The usual case: the call that served the rebalance returned
            // nothing, and this poll goes on to read.
            if outcome != PollCall::Nothing && !poll.absorb(outcome, &mut taken) {
                return poll;
            }
        }
        while taken < max_records.max(1) {
            // Only the first call waits: later ones take what is ready.
            let timeout = if taken == 0 {
                first_timeout
            } else {
                Duration::ZERO
            };
            let (outcome, assigned) = call(timeout);
            if !assigned.is_empty() {
                if !poll.records.is_empty() {
                    // Records came before the change: they close this poll,
                    // the change opens the next.
                    self.carried = Some((assigned, outcome));
                    break;
                }
                for p in assigned {
                    if !poll.rebalance.contains(&p) {
                        poll.rebalance.push(p);
                    }
                }
            }
            if !poll.absorb(outcome, &mut taken) {
                break;
            }
        }
        poll
    }
}

/// Shared by the consumers and the phase logic: per partition, the highest
/// offset read by any consumer (-1: none).
#[derive(Debug)]
pub struct ReadProgress {
    /// Highest offset read, per partition.
    pub read: Vec<AtomicI64>,
}

impl ReadProgress {
    /// Nothing read yet in `partitions` partitions.
    pub fn new(partitions: usize) -> Self {
        ReadProgress {
            read: (0..partitions).map(|_| AtomicI64::new(-1)).collect(),
        }
    }
}

/// Counts of one consumer's work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerStats {
    /// Polls recorded `ok`.
    pub polls_ok: u64,
    /// Polls recorded `fail` (an error and no records).
    pub polls_failed: u64,
    /// Records returned.
    pub records: u64,
    /// Messages whose effect this consumer applied.
    pub applied: u64,
    /// Records whose payload did not hold a message number (not recorded).
    pub unparsable: u64,
    /// Commits that failed (offsets are committed again with the next poll).
    pub commit_errors: u64,
    /// Recorded polls carrying a `rebalance` (an assignment change).
    pub rebalances: u64,
    /// Crashes (each followed by a replacement with a new process).
    pub crashes: u64,
}

impl ConsumerStats {
    /// Adds the counts of `other` (e.g. a replacement's) to these.
    pub fn absorb(&mut self, other: &ConsumerStats) {
        self.polls_ok += other.polls_ok;
        self.polls_failed += other.polls_failed;
        self.records += other.records;
        self.applied += other.applied;
        self.unparsable += other.unparsable;
        self.commit_errors += other.commit_errors;
        self.rebalances += other.rebalances;
        self.crashes += other.crashes;
    }
}

/// How a consumer ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerExit {
    /// Its counts.
    pub stats: ConsumerStats,
    /// It crashed (on request) rather than being stopped.
    pub crashed: bool,
}

/// Everything one consumer needs.
pub struct ConsumerSpec {
    /// Its process number.
    pub process: u64,
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Topic to read.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Group or assign.
    pub mode: ConsumerMode,
    /// In assign mode: the partitions this consumer reads.
    pub assigned: Vec<i32>,
    /// Client settings.
    pub settings: ConsumerSettings,
    /// Longest wait of one poll for its first record.
    pub poll_timeout: Duration,
    /// Most records gathered into one recorded poll.
    pub max_poll_records: usize,
    /// In assign mode: start from the group's committed offsets (a
    /// replacement) rather than from the beginning.
    pub resume: bool,
    /// The run's effect store.
    pub effects_path: PathBuf,
    /// How effects and commits are ordered.
    pub effects: EffectsMode,
}

/// The history key of a partition: `"<topic>-<partition>"`.
pub fn log_key(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// The message number at the start of a payload (decimal digits).
pub fn parse_msg(payload: &[u8]) -> Option<u64> {
    let digits = payload.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&payload[..digits]).ok()?.parse().ok()
}

/// One librdkafka poll call of `consumer` (waiting up to `timeout`),
/// reduced to what the history needs; `partitions` bounds the partitions
/// a record may come from.
pub fn poll_call<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    timeout: Duration,
    partitions: i32,
) -> PollCall {
    match consumer.poll(timeout) {
        None => PollCall::Nothing,
        Some(Err(e)) => PollCall::Error(e),
        Some(Ok(m)) => match (
            m.payload().and_then(parse_msg),
            u64::try_from(m.offset()),
            (0..partitions).contains(&m.partition()),
        ) {
            (Some(msg), Ok(offset), true) => PollCall::Record {
                partition: m.partition(),
                offset,
                msg,
            },
            _ => PollCall::Unparsable,
        },
    }
}

/// Destroys a consumer's librdkafka handle as a crash would leave it: no
/// commit, no consumer close, no leave-group, no rebalance callback. The
/// group coordinator notices only when the member's session times out.
fn crash(consumer: BaseConsumer<RebalanceContext>) {
    let rk = consumer.client().native_ptr();
    // rdkafka's Drop would close the consumer cleanly (leaving the group):
    // skip it. What it would have freed on our side (the context, the queue
    // handle) leaks: a few kilobytes per crash.
    std::mem::forget(consumer);
    // SAFETY: `rk` is the live handle of the consumer just forgotten; no one
    // else holds it and it is never used again.
    unsafe {
        rdkafka::bindings::rd_kafka_destroy_flags(
            rk,
            rdkafka::bindings::RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
        );
    }
}

/// Runs one consumer until `stop` is set, or until it crashes at the
/// first poll with records after `crash` is raised (it lowers it). Blocking:
/// run it on its own thread.
pub fn run_consumer(
    spec: ConsumerSpec,
    writer: HistoryWriter,
    progress: Arc<ReadProgress>,
    stop: Arc<AtomicBool>,
    crash_request: Arc<AtomicBool>,
) -> Result<ConsumerExit, WorkloadError> {
    let kafka = |what: &str| {
        let what = format!("consumer {}: {what}", spec.process);
        move |source| WorkloadError::Kafka { what, source }
    };
    let mut store = EffectStore::open(&spec.effects_path)?;
    let consumer: BaseConsumer<RebalanceContext> = spec
        .settings
        .client_config(&spec.bootstrap)
        .create_with_context(RebalanceContext::default())
        .map_err(kafka("could not create"))?;
    let process = Process::Client(spec.process);
    let recorder = writer.client(spec.process);
    let rec = |t: OpType, f: &str, keys: &Vec<String>| writer.record(&process, t, f, keys);
    match spec.mode {
        ConsumerMode::Group => {
            let keys = vec![spec.topic.clone()];
            rec(OpType::Invoke, "subscribe", &keys)?;
            consumer
                .subscribe(&[&spec.topic])
                .map_err(kafka("subscribe"))?;
            // The assignment comes later, with rebalances: record none here.
            rec(OpType::Ok, "subscribe", &Vec::<String>::new())?;
        }
        ConsumerMode::Assign => {
            let keys: Vec<String> = spec
                .assigned
                .iter()
                .map(|p| log_key(&spec.topic, *p))
                .collect();
            rec(OpType::Invoke, "assign", &keys)?;
            let start = if spec.resume {
                Offset::Stored
            } else {
                Offset::Beginning
            };
            let mut tpl = TopicPartitionList::new();
            for p in &spec.assigned {
                tpl.add_partition_offset(&spec.topic, *p, start)
                    .map_err(kafka("assign"))?;
            }
            consumer.assign(&tpl).map_err(kafka("assign"))?;
            rec(OpType::Ok, "assign", &keys)?;
        }
    }
    let mut stats = ConsumerStats::default();
    let mut gatherer = PollGatherer::default();
    let mut call = |timeout: Duration| {
        let outcome = poll_call(&consumer, timeout, spec.partitions);
        // Rebalance callbacks run inside `poll`: what they assigned
        // happened during this call.
        (outcome, consumer.context().take_assigned())
    };
    let mut crashed = false;
    while !stop.load(Ordering::Relaxed) {
        recorder.invoke_poll()?;
        let poll = gatherer.gather(spec.max_poll_records, spec.poll_timeout, &mut call);
        stats.unparsable += poll.unparsable;
        if poll.records.is_empty() && poll.rebalance.is_empty() {
            if let Some(e) = &poll.error {
                // Nothing read: the poll had no effect.
                tracing::debug!(process = spec.process, error = %e, "poll error");
                recorder.fail_poll()?;
                stats.polls_failed += 1;
                continue;
            }
        }
        let msgs: Vec<(i32, u64)> = poll
            .records
            .iter()
            .flat_map(|(p, pairs)| pairs.iter().map(move |(_, m)| (*p, *m)))
            .collect();
        let mut offsets = TopicPartitionList::new();
        for (p, pairs) in &poll.records {
            let last = pairs.iter().map(|(o, _)| *o).max().unwrap_or(0) as i64;
            let _ = offsets.add_partition_offset(&spec.topic, *p, Offset::Offset(last + 1));
        }
        // A crash falls only on a poll with records: between its effects
        // and its commit.
        let crash_now = !msgs.is_empty() && crash_request.swap(false, Ordering::SeqCst);
        let commit = |stats: &mut ConsumerStats| {
            if msgs.is_empty() {
                return;
            }
            if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                tracing::debug!(process = spec.process, error = %e, "commit failed");
                stats.commit_errors += 1;
            }
        };
        let applied = match spec.effects.commit {
            CommitOrder::AfterApply => store.apply(spec.process, &msgs, spec.effects.dedup)?,
            CommitOrder::BeforeApply => {
                commit(&mut stats);
                if crash_now {
                    Vec::new()
                } else {
                    store.apply(spec.process, &msgs, spec.effects.dedup)?
                }
            }
        };
        let records = PollRecords {
            records: poll
                .records
                .iter()
                .map(|(p, pairs)| (log_key(&spec.topic, *p), pairs.clone()))
                .collect(),
            applied,
            rebalance: poll
                .rebalance
                .iter()
                .map(|p| log_key(&spec.topic, *p))
                .collect(),
        };
        // The poll read its records (and applied what `applied` says)
        // before any crash: it is recorded `ok`.
        recorder.ok_poll(&records)?;
        stats.polls_ok += 1;
        stats.rebalances += u64::from(!poll.rebalance.is_empty());
        stats.records += msgs.len() as u64;
        stats.applied += records.applied.len() as u64;
        for (p, pairs) in &poll.records {
            let last = pairs.iter().map(|(o, _)| *o).max().unwrap_or(0) as i64;
            progress.read[*p as usize].fetch_max(last, Ordering::Relaxed);
        }
        if crash_now {
            let window = match spec.effects.commit {
                CommitOrder::AfterApply => "effects applied, offsets not committed",
                CommitOrder::BeforeApply => "offsets committed, effects not applied",
            };
            writer.record(
                &Process::Named("nemesis".into()),
                OpType::Info,
                "crash",
                &serde_json::json!({"target": "consumer", "process": spec.process,
                                    "records": msgs.len(), "window": window}),
            )?;
            tracing::info!(process = spec.process, window, "consumer crashes");
            crashed = true;
            break;
        }
        if spec.effects.commit == CommitOrder::AfterApply {
            commit(&mut stats);
        }
    }
    if crashed {
        stats.crashes += 1;
        crash(consumer);
    }
    Ok(ConsumerExit { stats, crashed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_start_with_the_message_number() {
        assert_eq!(parse_msg(b"123xxxx"), Some(123));
        assert_eq!(parse_msg(b"0"), Some(0));
        assert_eq!(parse_msg(b"x12"), None);
        assert_eq!(parse_msg(b""), None);
        assert_eq!(parse_msg(b"99999999999999999999999"), None);
        assert_eq!(log_key("queue", 2), "queue-2");
    }

    fn rec(partition: i32, offset: u64) -> PollCall {
        PollCall::Record {
            partition,
            offset,
            msg: 1000 + offset,
        }
    }

    /// Plays scripted poll calls (what each returned, what rebalance
    /// callbacks assigned during it); `Nothing` once the script is out.
    fn script(calls: Vec<(PollCall, Vec<i32>)>) -> impl FnMut(Duration) -> (PollCall, Vec<i32>) {
        let mut calls = calls.into_iter();
        move |_| calls.next().unwrap_or((PollCall::Nothing, vec![]))
    }

    fn offsets(poll: &GatheredPoll, partition: i32) -> Vec<u64> {
        poll.records
            .iter()
            .filter(|(p, _)| *p == partition)
            .flat_map(|(_, pairs)| pairs.iter().map(|(o, _)| *o))
            .collect()
    }

    /// The bug this replaces: records read before a rebalance were recorded
    /// in the poll that carried the rebalance, so the checker restarted the
    /// position before them and compared the re-read after the rebalance
    /// (from the last commit: 90) with them: a false `nonmonotonic-poll`.
    #[test]
    fn a_rebalance_after_records_opens_the_next_poll() {
        let mut g = PollGatherer::default();
        let mut calls = script(vec![
            (rec(0, 101), vec![]),
            (rec(0, 102), vec![]),
            // rdkafka serves the rebalance in a call that returns nothing.
            (PollCall::Nothing, vec![0, 1]),
            (rec(0, 90), vec![]),
            (rec(1, 7), vec![]),
        ]);
        let first = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!(offsets(&first, 0), [101, 102]);
        assert!(first.rebalance.is_empty(), "{first:?}");
        let second = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!(second.rebalance, [0, 1]);
        assert_eq!(offsets(&second, 0), [90]);
        assert_eq!(offsets(&second, 1), [7]);
        assert_eq!(second.msgs(), [1090, 1007]);
        let third = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!(third, GatheredPoll::default());
    }

    #[test]
    fn a_rebalance_before_any_record_stays_in_its_poll() {
        let mut g = PollGatherer::default();
        let mut calls = script(vec![(PollCall::Nothing, vec![2]), (rec(2, 0), vec![])]);
        let first = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!(first.rebalance, [2]);
        assert!(first.records.is_empty());
        let second = g.gather(500, Duration::ZERO, &mut calls);
        assert!(second.rebalance.is_empty());
        assert_eq!(offsets(&second, 2), [0]);
    }

    /// Should a rebalance come in a call that also returns a record, the
    /// record belongs after it, with it.
    #[test]
    fn a_record_returned_with_a_rebalance_goes_with_it() {
        let mut g = PollGatherer::default();
        let mut calls = script(vec![(rec(0, 5), vec![]), (rec(0, 3), vec![0])]);
        let first = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!(
            (offsets(&first, 0), first.rebalance.clone()),
            (vec![5], vec![])
        );
        let second = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!((offsets(&second, 0), second.rebalance), (vec![3], vec![0]));
        // Within a poll, a second assignment before any record joins the first.
        let mut calls = script(vec![(rec(1, 0), vec![1]), (rec(2, 0), vec![2, 1])]);
        let mut g = PollGatherer::default();
        let p = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!((offsets(&p, 1), p.rebalance.clone()), (vec![0], vec![1]));
        let p = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!((offsets(&p, 2), p.rebalance), (vec![0], vec![2, 1]));
    }

    #[test]
    fn only_the_first_call_waits_and_the_batch_is_bounded() {
        let mut waits = Vec::new();
        let mut next = 0u64;
        let mut call = |t: Duration| {
            waits.push(t);
            next += 1;
            (rec(0, next), vec![])
        };
        let mut g = PollGatherer::default();
        let p = g.gather(3, Duration::from_millis(100), &mut call);
        assert_eq!(offsets(&p, 0), [1, 2, 3]);
        assert_eq!(
            waits,
            [Duration::from_millis(100), Duration::ZERO, Duration::ZERO]
        );
    }

    #[test]
    fn an_error_ends_the_poll_and_unparsable_records_are_counted() {
        let e =
            KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::BrokerNotAvailable);
        let mut calls = script(vec![
            (PollCall::Unparsable, vec![]),
            (rec(0, 1), vec![]),
            (PollCall::Error(e.clone()), vec![]),
            (rec(0, 2), vec![]),
        ]);
        let mut g = PollGatherer::default();
        let p = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!(p.unparsable, 1);
        assert_eq!(offsets(&p, 0), [1]);
        assert_eq!(p.error, Some(e));
        let p = g.gather(500, Duration::ZERO, &mut calls);
        assert_eq!((offsets(&p, 0), p.error), (vec![2], None));
    }
}
