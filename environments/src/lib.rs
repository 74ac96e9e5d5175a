//! splitbrain-environments: where splitbrain's nodes come from (netns, ssh,
//! docker) and how ZooKeeper and Kafka run on them.
//!
//! Every environment records an [`EnvState`] (JSON in its state directory)
//! that other code loads by name to get the nodes, then talks to them only
//! over SSH through [`splitbrain_core::control`].
//!
//! ZooKeeper and Kafka on the nodes: [`artifacts`] (the jars), [`zookeeper`]
//! and [`kafka`] (configuration, installation), [`service`] (start, stop,
//! kill, pause over SSH), [`cluster`] (layout, bring-up, topics, log
//! collection, the incident's rapid add) and [`observe`] (what every server
//! believes, over TCP from the control node).
#![warn(missing_docs)]

pub mod artifacts;
pub mod cluster;
pub mod cluster_control;
pub mod docker;
pub mod error;
pub mod kafka;
pub mod kafka_client;
pub mod netns;
pub mod observe;
pub mod service;
pub mod ssh;
pub mod state;
mod sys;
mod test_names;
pub mod wire;
pub mod zk_client;
pub mod zookeeper;

pub use error::EnvError;
pub use state::{EnvKind, EnvState, SharedDir};

use splitbrain_core::control::Session;
use std::net::IpAddr;
use std::time::Duration;

/// Removes environment `name`, whatever its kind (read from its state file).
/// Without a state file it still removes any netns resources named after it
/// and any docker containers and network labelled with it (a crash before the
/// state file was written, or a deleted state dir).
/// Returns a one-line summary of what was removed.
pub fn down(name: &str) -> Result<String, EnvError> {
    let loaded = EnvState::try_load(name);
    let had_state = matches!(loaded, Ok(Some(_)));
    let kind = match loaded {
        Ok(Some(state)) => state.kind,
        // A docker `up` that crashed before its state file: its record says so.
        Ok(None) | Err(EnvError::BadState { .. })
            if EnvState::dir_of(name).join(docker::RECORD_FILE).exists() =>
        {
            EnvKind::Docker
        }
        // Unreadable or missing state: netns leaves traces findable by name
        // (docker's labels are looked for too, below).
        Ok(None) | Err(EnvError::BadState { .. }) => EnvKind::Netns,
        Err(e) => return Err(e),
    };
    match kind {
        EnvKind::Netns => {
            let r = netns::down(name)?;
            if !had_state {
                // Could also be a docker environment whose records are gone:
                // its labels lead to it, if an engine is running.
                if let Some(summary) =
                    docker::down_orphans(name).map_err(|e| EnvError::Incomplete {
                        name: name.to_string(),
                        problems: vec![e.to_string()],
                    })?
                {
                    return Ok(summary);
                }
            }
            Ok(if r.is_empty() {
                format!("nothing of environment {name} found; nothing to do")
            } else {
                format!(
                    "removed environment {name}: {} process(es), {} namespace(s), {} link(s), {} iptables rule(s){}",
                    r.processes.len(),
                    r.namespaces.len(),
                    r.links.len(),
                    r.iptables_rules.len(),
                    if r.removed_state_dir { ", state directory" } else { "" }
                )
            })
        }
        EnvKind::Ssh => {
            ssh::down(name, Duration::from_secs(10))?;
            Ok(format!("removed splitbrain's files, processes and firewall rules from the hosts of {name}, and its state"))
        }
        EnvKind::Docker => {
            docker::down(name, true).map_err(|e| EnvError::Incomplete {
                name: name.to_string(),
                problems: vec![e.to_string()],
            })?;
            Ok(format!(
                "removed environment {name}: its containers, network and state"
            ))
        }
    }
}

/// Whether one node answers over SSH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
    /// `Ok(hostname it reports)` when sshd answered and `hostname` ran,
    /// `Err(reason)` otherwise.
    pub answer: Result<String, String>,
}

/// Asks every node of `state` over SSH (concurrently, one connection each)
/// for its hostname.
pub fn node_status(state: &EnvState, timeout: Duration) -> Vec<NodeStatus> {
    let handles: Vec<_> = state
        .nodes
        .iter()
        .cloned()
        .map(|node| {
            std::thread::spawn(move || {
                let answer = Session::connect(&node, timeout)
                    .and_then(|mut s| s.exec_ok("hostname", timeout))
                    .map(|out| out.stdout.trim().to_string())
                    .map_err(|e| e.to_string());
                NodeStatus {
                    name: node.name.clone(),
                    address: node.address,
                    answer,
                }
            })
        })
        .collect();
    handles
        .into_iter()
        .zip(&state.nodes)
        .map(|(h, node)| {
            h.join().unwrap_or_else(|_| NodeStatus {
                name: node.name.clone(),
                address: node.address,
                answer: Err("status check panicked".into()),
            })
        })
        .collect()
}

use std::path::PathBuf;

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
    ZooKeeper(#[from] zk_client::ZkClientError),
    /// Talking to a Kafka broker failed.
    #[error(transparent)]
    Kafka(#[from] kafka_client::KafkaClientError),
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
