//! ZooKeeper and Kafka on the nodes: [`artifacts`] (the jars),
//! [`zookeeper`] and [`kafka`] (configuration, installation), [`service`]
//! (start, stop, kill, pause over SSH), [`cluster`] (layout, bring-up,
//! topics, log collection, the incident's rapid add) and [`cluster_control`]
//! (the nemeses' view of a running cluster).
//!
//! Kafka runs in ZooKeeper mode; a KRaft mode would be one more module here
//! beside [`kafka`]. Where the nodes come from is [`crate::nodes`]; the
//! pinned clients that ask one server what it believes are [`crate::probes`].

pub mod artifacts;
pub mod cluster;
pub mod cluster_control;
pub mod kafka;
pub mod service;
pub mod zookeeper;

use crate::probes;
use std::path::PathBuf;
use std::time::Duration;

/// Failure setting up, running or observing ZooKeeper and Kafka.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A command on a node failed.
    #[error(transparent)]
    Control(#[from] splitbrain_core::control::ControlError),
    /// The ZooKeeper/Kafka jars are missing.
    #[error("artifacts in {path}: {detail}")]
    Artifacts {
        /// Where they were looked for.
        path: PathBuf,
        /// What is missing and how to get it.
        detail: String,
    },
    /// Servers did not reach the expected state in time.
    #[error("timed out after {timeout:?} waiting for {what}: {detail}; see the server logs under each node's directory (or `splitbrain cluster status`)")]
    NotReady {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
        /// The last state seen.
        detail: String,
    },
    /// Talking to a ZooKeeper server failed.
    #[error(transparent)]
    ZooKeeper(#[from] probes::zk_client::ZkClientError),
    /// Talking to a Kafka broker failed.
    #[error(transparent)]
    Kafka(#[from] probes::kafka_client::KafkaClientError),
    /// The requested layout does not fit the environment.
    #[error("{0}")]
    Layout(String),
    /// Reading or writing the cluster's state file or run directory failed.
    #[error("{path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The Kafka admin API failed (topic creation).
    #[error("kafka admin: {0}")]
    Admin(String),
}
