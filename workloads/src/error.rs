//! The crate's error: everything the queue workload and its consumers can
//! fail with. (The observer keeps its own `ObserverError`: it runs apart
//! from the workload and reports through `ObserverReport`.)

use rdkafka::error::KafkaError;
use splitbrain_core::history::HistoryError;
use std::path::PathBuf;

/// Why the workload could not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Options that cannot work.
    #[error("queue workload options: {0} (fix the test's workload settings)")]
    Options(String),
    /// The DLQ journal or applied-set could not be used.
    #[error("{what} {path}: {source} (check the state directory exists and is writable)")]
    State {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A Kafka client could not be created or set up.
    #[error(
        "kafka: {what}: {source} (check the cluster is up and reachable at the bootstrap servers)"
    )]
    Kafka {
        /// What was being done, by which client.
        what: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The topic is missing or has another partition count.
    #[error(
        "topic {topic:?} at {bootstrap}: expected {expected} partitions, found {found}; create it \
         first (e.g. splitbrain_environments::db::cluster::create_topic)"
    )]
    Topic {
        /// The topic.
        topic: String,
        /// Where it was looked for.
        bootstrap: String,
        /// Partitions expected.
        expected: i32,
        /// What the cluster said (a count or an error).
        found: String,
    },
    /// Recording in the history failed; the run's evidence is incomplete.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A consumer thread or a sender task panicked.
    #[error("{0} panicked (a bug in splitbrain: please report it with the run's log)")]
    Panicked(String),
    /// The async runtime or a consumer thread could not start.
    #[error("could not start {what}: {source} (the machine may be out of threads or memory)")]
    Runtime {
        /// The runtime or which thread.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
