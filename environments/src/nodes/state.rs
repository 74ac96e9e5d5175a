//! The recorded state of an environment: which nodes it has and what was
//! created for it, stored as JSON so that any later process (`env status`,
//! `env down` after a crash, a test run, the cluster layer) can find the nodes
//! by the environment's name.
//!
//! Layout: `<state root>/<env>/state.json`, where the state root is
//! `$SPLITBRAIN_STATE_DIR` if set, else `/var/lib/splitbrain/envs`.

use crate::nodes::{EnvError, Owner};
use serde::{Deserialize, Serialize};
use splitbrain_core::control::{Control, ControlError, Node};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Environment variable overriding the state root.
pub const STATE_DIR_VAR: &str = "SPLITBRAIN_STATE_DIR";
/// Default state root.
pub const DEFAULT_STATE_ROOT: &str = "/var/lib/splitbrain/envs";
/// File name of the state inside an environment's directory.
pub const STATE_FILE: &str = "state.json";

/// Where an environment's nodes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    /// Network namespaces on this machine (the default).
    Netns,
    /// Existing hosts listed in a TOML file.
    Ssh,
    /// Docker containers on this machine.
    Docker,
}

impl std::fmt::Display for EnvKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnvKind::Netns => "netns",
            EnvKind::Ssh => "ssh",
            EnvKind::Docker => "docker",
        })
    }
}

/// A directory every node can read, for artifacts (jars, configs) shared by
/// all nodes: the control node writes under `control_path`, nodes read the
/// same files under `node_path`. For netns both are the same host path (the
/// nodes share the host's filesystem).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedDir {
    /// Path on the control node.
    pub control_path: PathBuf,
    /// Path on every node.
    pub node_path: PathBuf,
}

/// What the netns environment created (also derivable from the name alone,
/// so `down` works without this record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsDetails {
    /// The /24, e.g. `10.88.7.0/24`.
    pub subnet: String,
    /// The control node's address on the bridge (the subnet's `.1`).
    pub host_address: Ipv4Addr,
    /// Bridge interface on the host.
    pub bridge: String,
    /// One namespace per node, in node order (`<env>-n1`, ...).
    pub namespaces: Vec<String>,
    /// Host-side veth interfaces, in node order.
    pub veths: Vec<String>,
    /// Comment tagging the host iptables rules this environment added.
    pub iptables_comment: String,
}

/// What the ssh environment was created from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshDetails {
    /// The hosts file given to `env up`.
    pub hosts_file: PathBuf,
    /// Directories made on every host that `env down` keeps on purpose (the
    /// jar store, so the next environment reuses the uploaded jars) unless
    /// asked to purge them (`env down --purge-artifacts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_dirs: Vec<KeptDir>,
}

/// A directory on the hosts that outlives its environment (see
/// [`SshDetails::kept_dirs`]); removed only when it still carries `marker`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptDir {
    /// The directory, the same on every host.
    pub dir: PathBuf,
    /// The marker file inside it that says splitbrain made it.
    pub marker: String,
}

/// An environment's recorded state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvState {
    /// Environment name (unique on this control node).
    pub name: String,
    /// Its kind.
    pub kind: EnvKind,
    /// False while `up` is still creating it (the record is written first, as
    /// intent, so a crash leaves enough for `down`).
    pub ready: bool,
    /// The nodes, in order (`n1`, `n2`, ...).
    pub nodes: Vec<Node>,
    /// Directory readable by every node, if the environment has one (netns:
    /// yes; ssh: no, upload instead; docker: a bind mount).
    #[serde(default)]
    pub shared: Option<SharedDir>,
    /// netns specifics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<NetnsDetails>,
    /// ssh specifics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshDetails>,
    /// Unix time (seconds) when `up` started.
    pub created_unix: u64,
    /// The process that owns the environment and removes it when it ends
    /// (a run, a test); `None` for one handed to the user by `env up`. See
    /// [`EnvState::owner_status`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// The state root: `$SPLITBRAIN_STATE_DIR` or `/var/lib/splitbrain/envs`.
/// A relative override is made absolute (paths in it end up in sshd configs
/// and node records read by other processes).
pub fn state_root() -> PathBuf {
    match std::env::var_os(STATE_DIR_VAR) {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir()
                    .map(|cwd| cwd.join(&dir))
                    .unwrap_or(dir)
            }
        }
        _ => PathBuf::from(DEFAULT_STATE_ROOT),
    }
}

/// Checks an environment name: 1–40 characters of `a-z`, `0-9` and `-`,
/// starting with a letter or digit. Names end up in namespace names, file
/// paths and iptables comments, hence the strict alphabet.
pub fn validate_name(name: &str) -> Result<(), EnvError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(EnvError::BadName {
            name: name.to_string(),
        })
    }
}

impl EnvState {
    /// The state `up` of a local environment (netns or docker) writes first,
    /// as intent: node `nK` at the K-th of `addresses`, reached as root on
    /// port 22 with the environment's key and known_hosts under
    /// `<env dir>/ssh`, its directory `<env dir>/nodes/nK`, and the shared
    /// directory `<env dir>/shared` at the same path on every node.
    /// `ready` is false, this process is the owner, and the kind's details
    /// are left for the caller.
    pub(crate) fn planned(
        name: &str,
        kind: EnvKind,
        addresses: impl IntoIterator<Item = (usize, IpAddr)>,
    ) -> EnvState {
        let dir = EnvState::dir_of(name);
        let ssh = dir.join("ssh");
        let nodes = addresses
            .into_iter()
            .map(|(k, address)| Node {
                name: format!("n{k}"),
                address,
                host: None,
                port: 22,
                user: "root".into(),
                key_path: ssh.join("id_ed25519"),
                known_hosts: ssh.join("known_hosts"),
                dir: dir.join("nodes").join(format!("n{k}")),
            })
            .collect();
        let shared = dir.join("shared");
        EnvState {
            name: name.to_string(),
            kind,
            ready: false,
            nodes,
            shared: Some(SharedDir {
                control_path: shared.clone(),
                node_path: shared,
            }),
            netns: None,
            ssh: None,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            owner: Some(Owner::this_process()),
        }
    }

    /// Directory of environment `name` under the state root.
    pub fn dir_of(name: &str) -> PathBuf {
        state_root().join(name)
    }

    /// This environment's directory under the state root.
    pub fn dir(&self) -> PathBuf {
        Self::dir_of(&self.name)
    }

    /// Path of the state file of environment `name`.
    pub fn path_of(name: &str) -> PathBuf {
        Self::dir_of(name).join(STATE_FILE)
    }

    /// Loads environment `name` from the state root.
    pub fn load(name: &str) -> Result<EnvState, EnvError> {
        validate_name(name)?;
        Self::load_from(&Self::path_of(name), name)
    }

    /// Loads environment `name` if its state file exists.
    pub fn try_load(name: &str) -> Result<Option<EnvState>, EnvError> {
        validate_name(name)?;
        let path = Self::path_of(name);
        if path.exists() {
            Self::load_from(&path, name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn load_from(path: &Path, name: &str) -> Result<EnvState, EnvError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EnvError::NotFound {
                    name: name.to_string(),
                    path: path.to_path_buf(),
                }
            } else {
                EnvError::io(format!("read {}", path.display()), e)
            }
        })?;
        serde_json::from_str(&text).map_err(|source| EnvError::BadState {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the state file atomically (temp file + rename).
    pub fn save(&self) -> Result<(), EnvError> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| EnvError::io(format!("create {}", dir.display()), e))?;
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_string_pretty(self).map_err(|source| EnvError::BadState {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, json + "\n")
            .map_err(|e| EnvError::io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| EnvError::io(format!("rename to {}", path.display()), e))
    }

    /// Names of all environments with a state file under the state root.
    pub fn list() -> Result<Vec<String>, EnvError> {
        let root = state_root();
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EnvError::io(format!("list {}", root.display()), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Connects a [`Control`] to every node (see [`Control::connect`]).
    pub fn control(&self, timeout: Duration) -> Result<Control, ControlError> {
        Control::connect(&self.nodes, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "default", "t-my-test-12-3", "x9"] {
            validate_name(good).unwrap();
        }
        for bad in ["", "-a", "A", "a b", "a/b", "a_b", &"x".repeat(41)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let state = EnvState {
            name: "e".into(),
            kind: EnvKind::Netns,
            ready: true,
            nodes: vec![Node {
                name: "n1".into(),
                address: "10.88.3.2".parse().unwrap(),
                host: None,
                port: 22,
                user: "root".into(),
                key_path: "/k".into(),
                known_hosts: "/kh".into(),
                dir: "/d/n1".into(),
            }],
            shared: Some(SharedDir {
                control_path: "/s".into(),
                node_path: "/s".into(),
            }),
            netns: None,
            ssh: None,
            created_unix: 1,
            owner: Some(Owner {
                pid: 7,
                start_ticks: 8,
            }),
        };
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains("\"kind\":\"netns\""), "{json}");
        let back: EnvState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
    }
}
