//! Idempotent consumers: each poll is recorded with the records it returned
//! per log, the messages whose effect this consumer applied for the first
//! time (checked against the shared durable [`AppliedStore`]), and the logs
//! newly assigned by a group rebalance. Offsets are committed by hand after
//! the poll is processed and recorded.

use crate::applied::AppliedStore;
use crate::settings::ConsumerSettings;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use splitbrain_core::history::{HistoryWriter, OpType, PollRecords, Process};
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

/// Rebalance bookkeeping: partitions assigned since the last poll.
pub struct RebalanceContext {
    newly_assigned: Mutex<Vec<i32>>,
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
        if let Rebalance::Assign(tpl) = rebalance {
            let mut v = self
                .newly_assigned
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            v.extend(tpl.elements().iter().map(|e| e.partition()));
        }
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
    /// Messages applied for the first time.
    pub applied: u64,
    /// Records whose payload did not hold a message number (not recorded).
    pub unparsable: u64,
    /// Commits that failed (offsets are committed again with the next poll).
    pub commit_errors: u64,
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

/// Runs one consumer until `stop` is set. Blocking: run it on its own thread.
pub fn run_consumer(
    spec: ConsumerSpec,
    writer: HistoryWriter,
    store: Arc<AppliedStore>,
    progress: Arc<ReadProgress>,
    stop: Arc<AtomicBool>,
) -> Result<ConsumerStats, String> {
    let consumer: BaseConsumer<RebalanceContext> = spec
        .settings
        .client_config(&spec.bootstrap)
        .create_with_context(RebalanceContext {
            newly_assigned: Mutex::new(Vec::new()),
        })
        .map_err(|e| format!("consumer {}: could not create: {e}", spec.process))?;
    let process = Process::Client(spec.process);
    let recorder = writer.client(spec.process);
    let rec = |t: OpType, f: &str, keys: &Vec<String>| -> Result<(), String> {
        writer
            .record(&process, t, f, keys)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match spec.mode {
        ConsumerMode::Group => {
            let keys = vec![spec.topic.clone()];
            rec(OpType::Invoke, "subscribe", &keys)?;
            consumer
                .subscribe(&[&spec.topic])
                .map_err(|e| format!("consumer {}: subscribe: {e}", spec.process))?;
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
            let mut tpl = TopicPartitionList::new();
            for p in &spec.assigned {
                tpl.add_partition_offset(&spec.topic, *p, Offset::Beginning)
                    .map_err(|e| format!("consumer {}: assign: {e}", spec.process))?;
            }
            consumer
                .assign(&tpl)
                .map_err(|e| format!("consumer {}: assign: {e}", spec.process))?;
            rec(OpType::Ok, "assign", &keys)?;
        }
    }
    let mut stats = ConsumerStats::default();
    let partitions = spec.partitions.max(0) as usize;
    while !stop.load(Ordering::Relaxed) {
        recorder.invoke_poll().map_err(|e| e.to_string())?;
        let mut per_log: Vec<Vec<(u64, u64)>> = vec![Vec::new(); partitions];
        let mut order: Vec<i32> = Vec::new();
        let mut msgs: Vec<u64> = Vec::new();
        let mut error: Option<KafkaError> = None;
        let mut timeout = spec.poll_timeout;
        let mut n = 0usize;
        while n < spec.max_poll_records {
            match consumer.poll(timeout) {
                None => break,
                Some(Err(e)) => {
                    error = Some(e);
                    break;
                }
                Some(Ok(m)) => {
                    n += 1;
                    // Later polls of this batch take only what is ready.
                    timeout = Duration::ZERO;
                    let p = m.partition();
                    let (Some(msg), Ok(offset), true) = (
                        m.payload().and_then(parse_msg),
                        u64::try_from(m.offset()),
                        (0..spec.partitions).contains(&p),
                    ) else {
                        stats.unparsable += 1;
                        continue;
                    };
                    if per_log[p as usize].is_empty() {
                        order.push(p);
                    }
                    per_log[p as usize].push((offset, msg));
                    msgs.push(msg);
                }
            }
        }
        let rebalance: Vec<String> = {
            let mut v = consumer
                .context()
                .newly_assigned
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let keys = v.iter().map(|p| log_key(&spec.topic, *p)).collect();
            v.clear();
            keys
        };
        if n == 0 && rebalance.is_empty() {
            if let Some(e) = error {
                // Nothing read: the poll had no effect.
                tracing::debug!(process = spec.process, error = %e, "poll error");
                recorder.fail_poll().map_err(|e| e.to_string())?;
                stats.polls_failed += 1;
                continue;
            }
        }
        let applied = store
            .apply(&msgs)
            .map_err(|e| format!("applied-set store {}: {e}", store.path().display()))?;
        let records = PollRecords {
            records: order
                .iter()
                .map(|p| {
                    (
                        log_key(&spec.topic, *p),
                        std::mem::take(&mut per_log[*p as usize]),
                    )
                })
                .collect(),
            applied,
            rebalance,
        };
        recorder.ok_poll(&records).map_err(|e| e.to_string())?;
        stats.polls_ok += 1;
        stats.records += msgs.len() as u64;
        stats.applied += records.applied.len() as u64;
        // Processed and recorded: now commit, and publish progress.
        if !records.records.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (p, (_, pairs)) in order.iter().zip(&records.records) {
                let last = pairs.iter().map(|(o, _)| *o).max().unwrap_or(0) as i64;
                progress.read[*p as usize].fetch_max(last, Ordering::Relaxed);
                let _ = tpl.add_partition_offset(&spec.topic, *p, Offset::Offset(last + 1));
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(process = spec.process, error = %e, "commit failed");
                stats.commit_errors += 1;
            }
        }
    }
    Ok(stats)
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
}
