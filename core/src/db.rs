//! The database under test, as the nemeses see it (Jepsen's `db` protocol):
//! the lifecycle operations that process and membership faults need, without
//! knowing how ZooKeeper and Kafka are installed or where their nodes come
//! from.
//!
//! `environments` implements [`ClusterControl`] for its cluster; `nemeses`
//! takes a `&dyn ClusterControl`. Keeping the trait here keeps the crates'
//! dependencies pointing one way (both depend on `core`, neither on the
//! other).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Which kind of server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// A ZooKeeper server.
    Zookeeper,
    /// A Kafka broker.
    Kafka,
    /// A KRaft controller (KRaft mode only).
    Controller,
}

impl ServerKind {
    /// `"zookeeper"`, `"kafka"` or `"controller"`.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Zookeeper => "zookeeper",
            ServerKind::Kafka => "kafka",
            ServerKind::Controller => "controller",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One server of the cluster: a ZooKeeper server (by `myid`) or a broker (by
/// `broker.id`), and the node it runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Server {
    /// ZooKeeper or Kafka.
    pub kind: ServerKind,
    /// `myid` or `broker.id`.
    pub id: i64,
    /// Name of the node it runs on.
    pub node: String,
    /// That node's address (what partitions cut).
    pub address: IpAddr,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.kind, self.id, self.node)
    }
}

/// How new ZooKeeper servers join (see `docs/nemeses.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinProcedure {
    /// The incident's mistake: all newcomers start at once, each listing the
    /// old servers and every newcomer as participants; the running ensemble
    /// is not reconfigured.
    Rapid,
    /// ZooKeeper's documented procedure: one newcomer at a time, configured
    /// with the current membership plus itself, then `reconfig -add` on the
    /// running ensemble before the next one starts. Needs `reconfigEnabled`.
    Safe,
}

/// A server's process as `/proc/<pid>/stat` shows it: the proof a kill or a
/// pause took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    /// Its pid.
    pub pid: u32,
    /// The state letter (`R` running, `S` sleeping, `T` stopped by a
    /// signal, `Z` zombie, …).
    pub state: char,
}

impl ProcessState {
    /// Stopped by a signal (`T`, or `t` when traced): paused.
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }

    /// Dead but not yet reaped (`Z`) or dying (`X`): as good as gone.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Why a cluster operation failed. The message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No server of that kind and id.
    #[error("no {kind} server with id {id} in the cluster; list the cluster's servers with `splitbrain cluster status`")]
    UnknownServer {
        /// Kind asked for.
        kind: ServerKind,
        /// Id asked for.
        id: i64,
    },
    /// The operation cannot be done on this cluster as configured.
    #[error("{0}")]
    Unsupported(String),
    /// Running the operation failed.
    #[error("{what}: {detail}")]
    Failed {
        /// The operation.
        what: String,
        /// What went wrong (the underlying error).
        detail: String,
    },
}

impl DbError {
    /// A [`DbError::Failed`] for `what` from any error.
    pub fn failed(what: impl Into<String>, detail: impl fmt::Display) -> Self {
        DbError::Failed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// What [`ClusterControl::add_controllers`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControllersAdded {
    /// The new controllers (started; whether they joined is in `report`).
    pub servers: Vec<Server>,
    /// What the servers did: per newcomer the formatting output and its
    /// quorum answer, `add-controller` outputs and refusals, the leader's
    /// voter set before and after.
    pub report: serde_json::Value,
}

/// The cluster operations faults are made of. Implementations must be safe
/// to call from several threads (a schedule and a test may share one).
///
/// Every mutating call is bounded in time by the implementation and returns
/// only once its effect has happened (or failed): a killed server is gone, a
/// started one serves, added servers are running.
pub trait ClusterControl: Send + Sync {
    /// Every server splitbrain runs now (ZooKeeper first, then brokers, each
    /// in id order), running or not; servers added by
    /// [`ClusterControl::add_zk_servers`] included.
    fn servers(&self) -> Vec<Server>;

    /// Nodes of the environment that run no server (where new ZooKeeper
    /// servers can go), by name.
    fn free_nodes(&self) -> Vec<String>;

    /// SIGKILLs the server's process and waits until it is gone. Returns the
    /// pid killed, `None` if it was not running.
    fn kill(&self, server: &Server) -> Result<Option<u32>, DbError>;

    /// Starts the server (no-op when it runs) and waits until it serves (a
    /// ZooKeeper server answers `srvr` with a role; a broker's listener
    /// answers).
    fn start(&self, server: &Server, timeout: Duration) -> Result<(), DbError>;

    /// SIGSTOPs the server's process. Returns the pid, `None` if not running.
    fn pause(&self, server: &Server) -> Result<Option<u32>, DbError>;

    /// SIGCONTs the server's process. Returns the pid, `None` if not running.
    fn resume(&self, server: &Server) -> Result<Option<u32>, DbError>;

    /// The server's process (pid and state letter from `/proc/<pid>/stat`),
    /// `None` when no process of it runs.
    fn process_state(&self, server: &Server) -> Result<Option<ProcessState>, DbError>;

    /// Whether the server's process exists and is stopped by a signal
    /// (paused).
    fn is_paused(&self, server: &Server) -> Result<bool, DbError> {
        Ok(self.process_state(server)?.is_some_and(|p| p.is_stopped()))
    }

    /// What the server answers as when asked now, `None` if it does not
    /// answer or does not serve: a ZooKeeper server's `srvr` mode
    /// (`leader`, `follower`, `observer`, `standalone`); for a broker that
    /// answers a metadata request, `controller` or `broker`. One question,
    /// bounded by a short timeout: the proof that a server serves.
    fn serving_as(&self, server: &Server) -> Result<Option<String>, DbError>;

    /// The `myid`s of every ZooKeeper server now reporting `leader` (more
    /// than one is a split brain).
    fn zk_leaders(&self) -> Result<Vec<i64>, DbError>;

    /// The broker id the brokers name as controller, if one is named by a
    /// majority of those that answer.
    fn kafka_controller(&self) -> Result<Option<i64>, DbError>;

    /// KRaft mode: the `node.id` of the controller that leads the metadata
    /// quorum, as the controllers answer; `None` when none leads, or in
    /// ZooKeeper mode (the default).
    fn kraft_leader(&self) -> Result<Option<i64>, DbError> {
        Ok(None)
    }

    /// Starts ZooKeeper servers on `nodes` (free nodes), joining the way
    /// `procedure` says, and waits until each serves. Returns the new
    /// servers. New `myid`s follow the highest existing one.
    fn add_zk_servers(
        &self,
        nodes: &[String],
        procedure: JoinProcedure,
        timeout: Duration,
    ) -> Result<Vec<Server>, DbError>;

    /// KRaft mode: starts one controller on each of `nodes` (free nodes),
    /// joining the way `procedure` says (`Rapid`: all at once, each with a
    /// static voter set of old and new controllers, the incident's mistake;
    /// `Safe`: KIP-853's `add-controller`, one at a time). Returns the new
    /// controllers and what the servers did (tool output, refusals, voter
    /// sets before and after). ZooKeeper mode: unsupported (the default).
    fn add_controllers(
        &self,
        nodes: &[String],
        procedure: JoinProcedure,
        timeout: Duration,
    ) -> Result<ControllersAdded, DbError> {
        let _ = (nodes, procedure, timeout);
        Err(DbError::Unsupported(
            "adding KRaft controllers needs a KRaft-mode cluster: set cluster.mode = \"kraft\""
                .into(),
        ))
    }

    /// KRaft mode: takes controllers out: voters among them are first
    /// removed from the quorum with `remove-controller`, one at a time; then
    /// each is killed, its data wiped, and it is forgotten. Returns what
    /// the servers did.
    fn remove_controllers(
        &self,
        ids: &[i64],
        timeout: Duration,
    ) -> Result<serde_json::Value, DbError> {
        let _ = (ids, timeout);
        Err(DbError::Unsupported(
            "removing KRaft controllers needs a KRaft-mode cluster: set cluster.mode = \"kraft\""
                .into(),
        ))
    }

    /// Takes ZooKeeper servers out: members added by the safe procedure are
    /// first removed from the ensemble with `reconfig -remove`; then each is
    /// killed and its data wiped, and it is forgotten.
    fn remove_zk_servers(&self, ids: &[i64], timeout: Duration) -> Result<(), DbError>;

    /// The ZooKeeper servers (by `myid`) of broker `broker`'s
    /// `zookeeper.connect`.
    fn broker_connect(&self, broker: i64) -> Result<Vec<i64>, DbError>;

    /// Rewrites broker `broker`'s `zookeeper.connect` to list the ZooKeeper
    /// servers `zk_ids` and restarts it (SIGKILL, start, wait until it
    /// answers) so it takes effect. A no-op if it lists exactly those
    /// already.
    fn set_broker_connect(
        &self,
        broker: i64,
        zk_ids: &[i64],
        timeout: Duration,
    ) -> Result<(), DbError>;

    /// The broker's `zookeeper.session.timeout.ms`.
    fn broker_session_timeout(&self) -> Duration;

    /// The last zxid ZooKeeper server `zk_id` reports (`srvr`), `None` if it
    /// does not answer or serve.
    fn zxid(&self, zk_id: i64) -> Result<Option<u64>, DbError>;

    /// Writes throwaway znodes through ZooKeeper server `zk_id` until its
    /// ensemble's last zxid exceeds `beyond`. Returns the number of writes.
    /// Errors if the epoch of that ensemble is lower than `beyond`'s (no
    /// number of writes can pass it) or the time runs out.
    fn advance_zxid(&self, zk_id: i64, beyond: u64, timeout: Duration) -> Result<u64, DbError>;

    /// Creates the persistent znodes `paths` (and their parents) through
    /// ZooKeeper server `zk_id`, empty and open to all; existing ones are
    /// left as they are. Returns how many were created.
    fn create_paths(&self, zk_id: i64, paths: &[&str]) -> Result<u64, DbError>;

    /// Broker ids registered in `/brokers/ids` as ZooKeeper server `zk_id`
    /// serves it.
    fn registered_brokers(&self, zk_id: i64) -> Result<Vec<i64>, DbError>;
}
