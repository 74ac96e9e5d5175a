//! Where the nodes come from: Linux network namespaces ([`netns`]), Docker
//! containers ([`docker`]) or hosts reached over SSH ([`ssh`]); each records
//! an [`EnvState`] that the rest of splitbrain loads by name.
//!
//! Nothing here knows about ZooKeeper or Kafka (that is [`crate::db`]).

pub mod docker;
mod error;
pub mod netns;
mod owner;
pub mod ssh;
pub mod state;
mod sys;
mod test_names;

pub use error::EnvError;
pub use owner::{orphans, Orphan, Owner, OwnerStatus};
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
    down_with(name, false)
}

/// [`down`]; with `purge_kept`, an ssh environment's hosts also lose the
/// directories kept on purpose (the uploaded jars, see
/// [`ssh::down_purging`]); other kinds keep nothing on their nodes.
pub fn down_with(name: &str, purge_kept: bool) -> Result<String, EnvError> {
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
            let kept = ssh::down_purging(name, Duration::from_secs(10), purge_kept)?;
            let kept_note = match (kept.is_empty(), purge_kept) {
                (true, _) => String::new(),
                (false, true) => format!(
                    "; also removed the uploaded jars ({})",
                    kept.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (false, false) => format!(
                    "; kept the uploaded jars in {} on each host, for the next environment \
                     there to reuse (`splitbrain env down --purge-artifacts` removes them with \
                     the environment; now that it is gone, `rm -rf` that directory on each host)",
                    kept.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            Ok(format!("removed splitbrain's files, processes and firewall rules from the hosts of {name}, and its state{kept_note}"))
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
#[derive(Debug)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
    /// `Ok(hostname it reports)` when sshd answered and `hostname` ran,
    /// `Err(why not)` otherwise.
    pub answer: Result<String, EnvError>,
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
                    .map_err(EnvError::from);
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
                answer: Err(EnvError::StatusCheckPanicked {
                    node: node.name.clone(),
                }),
            })
        })
        .collect()
}
