//! One Kafka producer (librdkafka through rdkafka) and the mapping of its
//! outcomes onto the history's `ok` / `fail` / `info`.
//!
//! The mapping (also in `docs/workloads.md`):
//! - delivery report without error: `ok`, with the offset the broker gave;
//! - delivery report with an error: librdkafka's own persistence status of
//!   the message (`rd_kafka_message_status`) decides. `NOT_PERSISTED` (never
//!   sent, or the broker definitely rejected it) is `fail`; `POSSIBLY_PERSISTED`
//!   (e.g. timed out while in flight) and anything else is `info`;
//! - `send` refused before the message entered librdkafka's queue (queue full,
//!   unknown partition, message too large): `fail` — nothing left the client;
//! - no delivery report within the message timeout plus a margin, or the
//!   report lost (producer torn down): `info`.

use crate::settings::ProducerSettings;
use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use std::time::Duration;
use tokio::sync::oneshot;

/// What became of one send, as the history records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Acknowledged at this partition and offset.
    Ok {
        /// The partition the broker wrote it to.
        partition: i32,
        /// Its offset there.
        offset: u64,
    },
    /// Definitely not written.
    Fail {
        /// Why, in librdkafka's words.
        error: String,
    },
    /// Maybe written.
    Info {
        /// Why, in librdkafka's words.
        error: String,
    },
}

impl SendOutcome {
    /// `"ok"`, `"fail"` or `"info"`.
    pub fn kind(&self) -> &'static str {
        match self {
            SendOutcome::Ok { .. } => "ok",
            SendOutcome::Fail { .. } => "fail",
            SendOutcome::Info { .. } => "info",
        }
    }
}

/// librdkafka's verdict on whether a message reached the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersistStatus {
    /// Definitely not in the log.
    NotPersisted,
    /// Maybe in the log.
    PossiblyPersisted,
    /// In the log.
    Persisted,
}

/// Maps a failed delivery to `fail` or `info` from its persistence status.
/// Only a message librdkafka says was not persisted is a `fail`.
pub fn classify_error(error: &KafkaError, status: PersistStatus) -> SendOutcome {
    let error = format!("{error} (status {status:?})");
    match status {
        PersistStatus::NotPersisted => SendOutcome::Fail { error },
        PersistStatus::PossiblyPersisted | PersistStatus::Persisted => SendOutcome::Info { error },
    }
}

/// The producer's context: turns each delivery report into a [`SendOutcome`]
/// for the task waiting on it.
pub struct DeliveryContext;

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka producer error");
    }
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::trace!(?level, fac, log_message, "librdkafka");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<oneshot::Sender<SendOutcome>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(m) => match u64::try_from(m.offset()) {
                Ok(offset) => SendOutcome::Ok {
                    partition: m.partition(),
                    offset,
                },
                // acks=0 gives no offset: we cannot say where it went.
                Err(_) => SendOutcome::Info {
                    error: format!("acknowledged without an offset ({})", m.offset()),
                },
            },
            Err((error, m)) => {
                // SAFETY: the message pointer is valid for the duration of the
                // delivery callback, which is where we are.
                let raw = unsafe { rdsys::rd_kafka_message_status(m.ptr()) };
                let status = match raw {
                    rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => {
                        PersistStatus::NotPersisted
                    }
                    rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_PERSISTED => {
                        PersistStatus::Persisted
                    }
                    _ => PersistStatus::PossiblyPersisted,
                };
                classify_error(error, status)
            }
        };
        // The waiting task may have given up (timeout): nothing to do then.
        let _ = reply.send(outcome);
    }
}

/// A producer for one topic.
pub struct QueueProducer {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    report_timeout: Duration,
}

impl std::fmt::Debug for QueueProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueProducer")
            .field("topic", &self.topic)
            .finish()
    }
}

impl QueueProducer {
    /// A producer with these settings.
    pub fn new(
        bootstrap: &str,
        topic: &str,
        settings: &ProducerSettings,
    ) -> Result<QueueProducer, KafkaError> {
        let producer = settings
            .client_config(bootstrap)
            .create_with_context(DeliveryContext)?;
        Ok(QueueProducer {
            producer,
            topic: topic.to_string(),
            // librdkafka reports every message within message.timeout.ms;
            // the margin covers its timer granularity and a busy machine.
            report_timeout: Duration::from_millis(settings.message_timeout_ms)
                + Duration::from_secs(5),
        })
    }

    /// A producer made from a full librdkafka configuration (e.g. one with
    /// `transactional.id`), whose delivery reports are awaited up to
    /// `report_timeout`.
    pub fn with_config(
        config: &ClientConfig,
        topic: &str,
        report_timeout: Duration,
    ) -> Result<QueueProducer, KafkaError> {
        Ok(QueueProducer {
            producer: config.create_with_context(DeliveryContext)?,
            topic: topic.to_string(),
            report_timeout,
        })
    }

    /// The librdkafka producer itself: for the transactional workload's
    /// `init_transactions`, `begin_transaction`, `commit_transaction`, ...
    pub fn client(&self) -> &ThreadedProducer<DeliveryContext> {
        &self.producer
    }

    /// Sends `payload` to `partition` and waits for the outcome (bounded by
    /// the message timeout plus a margin).
    pub async fn send(&self, partition: i32, key: &[u8], payload: &[u8]) -> SendOutcome {
        let (tx, rx) = oneshot::channel();
        let record = BaseRecord::with_opaque_to(&self.topic, Box::new(tx))
            .partition(partition)
            .key(key)
            .payload(payload);
        if let Err((error, _)) = self.producer.send(record) {
            return SendOutcome::Fail {
                error: format!("not enqueued: {error}"),
            };
        }
        match tokio::time::timeout(self.report_timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => SendOutcome::Info {
                error: "delivery report lost (producer torn down)".into(),
            },
            Err(_) => SendOutcome::Info {
                error: format!("no delivery report within {:?}", self.report_timeout),
            },
        }
    }

    /// librdkafka's fatal error, if the producer has hit one (an idempotent
    /// producer can: it must then be replaced).
    pub fn fatal_error(&self) -> Option<(RDKafkaErrorCode, String)> {
        self.producer.client().fatal_error()
    }

    /// Partitions of the topic as the cluster reports them, asked with a
    /// bounded timeout.
    pub fn partition_count(&self, timeout: Duration) -> Result<usize, KafkaError> {
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), timeout)?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0))
    }

    /// Waits (bounded) for every queued message to be reported.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_not_persisted_is_a_failure() {
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(
            classify_error(&e, PersistStatus::NotPersisted).kind(),
            "fail"
        );
        assert_eq!(
            classify_error(&e, PersistStatus::PossiblyPersisted).kind(),
            "info"
        );
        assert_eq!(classify_error(&e, PersistStatus::Persisted).kind(), "info");
        let SendOutcome::Info { error } = classify_error(&e, PersistStatus::PossiblyPersisted)
        else {
            unreachable!()
        };
        assert!(error.contains("PossiblyPersisted"), "{error}");
    }

    /// Against an address nothing listens on, librdkafka never sends the
    /// message: it times out `NOT_PERSISTED`, which must be a `fail`.
    #[test]
    fn unreachable_cluster_times_out_as_not_persisted_fail() {
        let settings = ProducerSettings {
            message_timeout_ms: 1000,
            request_timeout_ms: 500,
            ..ProducerSettings::default()
        };
        // Port 9 (discard) on loopback: nothing listens there.
        let p = QueueProducer::new("127.0.0.1:9", "queue", &settings).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(p.send(0, b"k", b"1"));
        match outcome {
            SendOutcome::Fail { error } => assert!(error.contains("NotPersisted"), "{error}"),
            other => panic!("expected fail, got {other:?}"),
        }
    }
}
