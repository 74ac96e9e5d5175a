//! The runner's one error type, [`RunError`]: what went wrong and what to do
//! next, with the failing library's error as its source.

use splitbrain_core::control::ControlError;
use splitbrain_core::history::HistoryError;
use splitbrain_environments::{ClusterError, EnvError};
use splitbrain_workloads::observer::ObserverError;
use splitbrain_workloads::WorkloadError;
use std::path::PathBuf;

/// Why a run, a campaign, the store or a report failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The test configuration is unusable; nothing was touched.
    #[error("test config: {reason}")]
    Config {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A fault of the test's mix is not in the fault grammar; nothing was
    /// touched.
    #[error("test config: nemesis.faults")]
    Faults(#[from] splitbrain_nemeses::FaultSpecError),
    /// The campaign file is unusable; nothing was run.
    #[error("campaign: {reason}")]
    Campaign {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A TOML document (campaign, test file, stored test.toml) does not parse.
    #[error("{what}")]
    Toml {
        /// Which document, and what to do.
        what: String,
        /// The parser's complaint.
        #[source]
        source: toml::de::Error,
    },
    /// A stored run cannot be replayed or shrunk.
    #[error("{what}")]
    Replay {
        /// Which run, what is missing, and what to do.
        what: String,
    },
    /// A test name that cannot be a directory name.
    #[error("test name {name:?} is not usable as a directory name; use letters, digits, '.', '_' and '-' (at most 100)")]
    TestName {
        /// The name given.
        name: String,
    },
    /// Reading or writing a file of the store or a run failed.
    #[error("{what}")]
    Io {
        /// What was attempted, on which path, and what to do.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Creating or removing the run's environment failed.
    #[error(transparent)]
    Environment(Box<EnvError>),
    /// The `existing` environment the test names is not there.
    #[error("no environment {name}: `splitbrain env up --env-name {name}` first")]
    NoEnvironment {
        /// Its name.
        name: String,
        /// Why loading it failed.
        #[source]
        source: Box<EnvError>,
    },
    /// The environment has fewer nodes than the test needs.
    #[error("environment {env} has {have} nodes, the test needs {need}")]
    TooFewNodes {
        /// The environment.
        env: String,
        /// Nodes it has.
        have: usize,
        /// Nodes the test needs.
        need: usize,
    },
    /// The nodes cannot be reached over SSH.
    #[error("cannot reach the nodes over SSH")]
    Unreachable(#[source] ControlError),
    /// The ZooKeeper/Kafka jars are missing.
    #[error("locating the ZooKeeper/Kafka jars for the nodes")]
    Artifacts(#[source] ClusterError),
    /// Planning, starting or configuring the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The cluster did not come up.
    #[error("cluster up")]
    ClusterUp(#[source] ClusterError),
    /// Writing the history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The history to check cannot be opened.
    #[error("cannot open the history; pass the history.jsonl of a run")]
    HistoryOpen(#[source] HistoryError),
    /// The history to check has a malformed line.
    #[error("the history is malformed; fix or truncate the named line")]
    HistoryMalformed(#[source] HistoryError),
    /// The history is well-formed but breaks a rule the checkers rely on
    /// (e.g. one message sent to two logs).
    #[error("{} is not a history the checkers can judge", .path.display())]
    HistoryUnjudgeable {
        /// The history.
        path: PathBuf,
        /// The broken rule, naming the line.
        #[source]
        source: splitbrain_checkers::CheckError,
    },
    /// The history to check holds no operation.
    #[error("{} holds no operations: check that it is the history of a run that started", .path.display())]
    EmptyHistory {
        /// The history.
        path: PathBuf,
    },
    /// The run ended with nothing recorded, so nothing can be checked.
    #[error("{why}; nothing was recorded, so there is nothing to check (run directory {})", .dir.display())]
    NothingRecorded {
        /// Why the run ended.
        why: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// The observer could not start.
    #[error(transparent)]
    Observer(#[from] ObserverError),
    /// The queue workload failed.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// Ctrl-C stopped the run before its load.
    #[error("interrupted by Ctrl-C")]
    Interrupted,
    /// A results document could not be serialized.
    #[error("cannot serialize the results: {0}; please report this as a bug")]
    Json(#[from] serde_json::Error),
}

impl RunError {
    /// The error and its causes on one line, `outer: inner: ...` (as
    /// `anyhow` prints with `{:#}`), for run outcomes and logs.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            out.push_str(": ");
            out.push_str(&e.to_string());
            source = e.source();
        }
        out
    }

    /// An I/O error with what was attempted.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
        let what = what.into();
        move |source| RunError::Io { what, source }
    }
}

impl From<EnvError> for RunError {
    fn from(e: EnvError) -> Self {
        RunError::Environment(Box::new(e))
    }
}

/// The runner's result type.
pub type Result<T, E = RunError> = std::result::Result<T, E>;
