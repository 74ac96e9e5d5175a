//! ZooKeeper and Kafka on the nodes: [`artifacts`] (the jars),
//! [`zookeeper`] and [`kafka`] (configuration, installation), [`service`]
//! (start, stop, kill, pause over SSH), [`cluster`] (layout, bring-up,
//! topics, log collection, the incident's rapid add) and [`cluster_control`]
//! (the nemeses' view of a running cluster).
//!
//! Kafka runs in ZooKeeper mode by default; [`kraft`] is KRaft mode
//! (controllers on their own nodes, no ZooKeeper), beside [`kafka`]. Where the nodes come from is [`crate::nodes`]; the
//! pinned clients that ask one server what it believes are [`crate::probes`].

pub mod artifacts;
pub mod cluster;
pub mod cluster_control;
pub mod controller_membership;
pub mod kafka;
pub mod kraft;
pub mod prepare;
pub mod segments;
pub mod service;
pub mod zookeeper;

use crate::nodes::{EnvError, EnvKind};
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
    #[error("artifacts in {path}: no {jar}*.jar: run environments/artifacts/fetch (or scripts/setup), or set {} to a directory it filled", artifacts::ARTIFACTS_ENV)]
    MissingJars {
        /// The `lib` directory looked in.
        path: PathBuf,
        /// The jar name's prefix (`zookeeper-3.`, `kafka_2.13-`).
        jar: &'static str,
    },
    /// A Docker environment made without an artifact cache mounted.
    #[error("docker environment '{env}' has no artifact cache mounted: recreate it with `splitbrain env up --env docker --artifacts DIR`")]
    NoArtifactsMounted {
        /// The environment.
        env: String,
    },
    /// The environment's nodes do not share this machine's files.
    #[error("environment '{env}' is of kind {kind:?}, whose nodes do not share this machine's files: copy the artifact cache (environments/artifacts/fetch) to the same path on every node and set {} to that path", artifacts::NODE_ARTIFACTS_ENV)]
    ArtifactsNotShared {
        /// The environment.
        env: String,
        /// Its kind.
        kind: EnvKind,
    },
    /// Reading what the environment recorded about its nodes failed.
    #[error(transparent)]
    Nodes(#[from] EnvError),
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
    /// Asking one ZooKeeper server or Kafka broker failed.
    #[error(transparent)]
    Probe(#[from] probes::ProbeError),
    /// The requested layout does not fit the environment.
    #[error("{0}")]
    Layout(String),
    /// Reading or writing the cluster's state file or run directory failed.
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No cluster layout file where one was expected.
    #[error("{path}: {source}: is a cluster up? (`splitbrain cluster up`)")]
    NoLayout {
        /// The layout file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The layout file is not a cluster layout (or the layout could not be
    /// written as one).
    #[error("{path}: not a cluster layout: {source}")]
    BadLayout {
        /// The layout file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The Kafka admin API failed (topic creation).
    #[error("kafka admin: {action}: {source}")]
    Admin {
        /// What was being done.
        action: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// The runtime for the Kafka admin client could not start.
    #[error("kafka admin: starting a runtime: {0}")]
    AdminRuntime(#[source] std::io::Error),
    /// Some nodes could not be prepared (Java, commands, jars); each
    /// problem names its node, what is missing and the fix.
    #[error("preparing the nodes failed: {}", problems.join("; "))]
    NotPrepared {
        /// One line per node that failed.
        problems: Vec<String>,
    },
    /// An ssh environment whose nodes were never given the jars.
    #[error("environment '{env}' (ssh hosts) has no jars on its nodes: recreate it with `splitbrain env up --kind ssh --hosts FILE` (it uploads them), or copy the artifact cache to the same path on every node and set {} to that path", artifacts::NODE_ARTIFACTS_ENV)]
    NotPreparedEnv {
        /// The environment.
        env: String,
    },
    /// The uploaded jars are no longer where the environment recorded them.
    #[error("the ZooKeeper/Kafka jars are not in {root} on {} (removed since the environment was prepared, e.g. by `env down --purge-artifacts` of another environment?): run again (`splitbrain run` prepares its hosts), or re-create the environment with `splitbrain env up --kind ssh`", nodes.join(", "))]
    JarsGoneFromNodes {
        /// The tree looked for.
        root: PathBuf,
        /// The nodes without it.
        nodes: Vec<String>,
    },
    /// A broker refused to create a topic.
    #[error("kafka admin: create topic {topic}: {code} (does it exist already? are {replication} brokers up?)")]
    TopicNotCreated {
        /// The topic.
        topic: String,
        /// Kafka's error code.
        code: rdkafka::types::RDKafkaErrorCode,
        /// The replication factor asked for.
        replication: i32,
    },
}
