//! Errors of the nodes (netns, docker, ssh): one enum, each variant says
//! what to do next.

use splitbrain_core::control::ControlError;
use std::path::PathBuf;

/// Why creating, inspecting or removing an environment (netns, docker or
/// ssh) failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The operation needs root (namespaces, bridges, iptables, sshd).
    #[error("{what} needs root (network namespaces, bridges, iptables and sshd); run it as root, e.g. `sudo splitbrain env up`")]
    NotRoot {
        /// What was attempted.
        what: String,
    },
    /// A required program is missing.
    #[error("{program} not found ({purpose}); install it with `sudo scripts/setup` (openssh-server, iproute2, iptables)")]
    MissingTool {
        /// Program path or name.
        program: String,
        /// Why it is needed.
        purpose: String,
    },
    /// Invalid environment name.
    #[error("invalid environment name {name:?}: use 1-40 characters of a-z, 0-9 and '-', not starting with '-'")]
    BadName {
        /// The name given.
        name: String,
    },
    /// Bad user input (node count, subnet, hosts file content, ...).
    #[error("{0}")]
    BadInput(String),
    /// No state file for this environment.
    #[error("no environment named {name:?} (no {path}); create it with `splitbrain env up --env-name {name}`, or list environments with `splitbrain env list`")]
    NotFound {
        /// Environment name.
        name: String,
        /// State file looked for.
        path: PathBuf,
    },
    /// The environment (or something with its names) already exists.
    #[error("environment {name:?} already exists ({detail}); remove it first with `splitbrain env down --env-name {name}` or pick another --env-name")]
    Exists {
        /// Environment name.
        name: String,
        /// What was found.
        detail: String,
    },
    /// The state file could not be parsed.
    #[error("state file {path} is unreadable: {source}; `splitbrain env down` still cleans up from what it finds on the system")]
    BadState {
        /// State file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// No free /24 in 10.88.0.0/16.
    #[error("no free /24 left in 10.88.0.0/16 (all locked or in use); remove unused environments with `splitbrain env down`")]
    NoFreeSubnet,
    /// A system command failed.
    #[error("`{command}` failed (status {status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status (-1 if killed or not started).
        status: i32,
        /// Its stderr (trimmed).
        stderr: String,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Talking to a node over SSH failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A docker command could not be started (not installed?).
    #[error("could not run `{command}`: {source} (is Docker installed? sudo environments/docker/engine start installs it)")]
    DockerSpawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A docker command ran past its time limit and was killed.
    #[error("`{command}` did not finish within {timeout:?}; is the Docker engine overloaded or hung? (environments/docker/engine status)")]
    DockerTimeout {
        /// The command line.
        command: String,
        /// Its limit.
        timeout: std::time::Duration,
    },
    /// The Docker engine could not be started, found or stopped.
    #[error("Docker engine {action}: {detail}")]
    DockerEngine {
        /// start, find or stop.
        action: &'static str,
        /// What the engine script said.
        detail: String,
    },
    /// A Docker image could not be made.
    #[error("image {image} could not be built: {detail}")]
    DockerImage {
        /// The image.
        image: String,
        /// The build's last lines.
        detail: String,
    },
    /// A container's node did not become reachable.
    #[error("node {node} (container {container}) not ready: {detail}")]
    ContainerNotReady {
        /// The node.
        node: String,
        /// Its container.
        container: String,
        /// What was seen last.
        detail: String,
    },
    /// Something of the Docker environment is in the way.
    #[error("{0}")]
    Conflict(String),
    /// Asking a node for its status panicked.
    #[error("the status check of node {node} panicked (a bug in splitbrain: please report it); run `splitbrain env status` again")]
    StatusCheckPanicked {
        /// The node.
        node: String,
    },
    /// `up` was interrupted (Ctrl-C); everything it created was removed.
    #[error("interrupted; everything `env up` had created was removed")]
    Cancelled,
    /// A login user other than root may not use sudo without a password.
    #[error("{node}: {what} needs root, and user {user}'s `sudo -n` wants a password; allow it passwordless sudo on that host (`echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/splitbrain` as root, mode 0440), or log in as root (user = \"root\" in the hosts file)")]
    SudoNeedsPassword {
        /// The node.
        node: String,
        /// The login user.
        user: String,
        /// What needed root.
        what: String,
    },
    /// A login user other than root, on a host without sudo.
    #[error("{node}: {what} needs root, user {user} is not root and the host has no sudo; install sudo there and allow {user} passwordless sudo (`{user} ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/splitbrain), or log in as root (user = \"root\" in the hosts file)")]
    NoSudo {
        /// The node.
        node: String,
        /// The login user.
        user: String,
        /// What needed root.
        what: String,
    },
    /// `down` could not remove everything.
    #[error("env down {name}: could not remove everything: {}; re-run `splitbrain env down --env-name {name}` (it is idempotent)", problems.join("; "))]
    Incomplete {
        /// Environment name.
        name: String,
        /// What was left and why.
        problems: Vec<String>,
    },
}

impl EnvError {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> EnvError {
        EnvError::Io {
            what: what.into(),
            source,
        }
    }
}
