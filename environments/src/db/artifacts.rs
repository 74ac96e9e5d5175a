//! Where the ZooKeeper and Kafka jars are, as the nodes see them.
//!
//! `environments/artifacts/fetch` fills a cache directory (default
//! `<repo>/.cache/artifacts`, or `$SPLITBRAIN_ARTIFACTS`) with
//! `zookeeper/lib/*.jar` and `kafka/lib/*.jar`. Network-namespace nodes share
//! the host's file system, so the same path works on them; Docker nodes have
//! the cache mounted at the host's path; SSH hosts need a copy, named by
//! `$SPLITBRAIN_NODE_ARTIFACTS`. [`Artifacts::for_env`] is the one rule every
//! caller uses.

use crate::db::ClusterError;
use crate::nodes::docker::DockerRecord;
use crate::nodes::{EnvKind, EnvState};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable naming the artifact cache.
pub const ARTIFACTS_ENV: &str = "SPLITBRAIN_ARTIFACTS";

/// Environment variable naming where the cache already is on every node
/// (copied there by the user), whatever the environment's kind.
pub const NODE_ARTIFACTS_ENV: &str = "SPLITBRAIN_NODE_ARTIFACTS";

/// The artifact cache and the `java` that runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    /// Directory holding `zookeeper/lib` and `kafka/lib`.
    pub root: PathBuf,
    /// The `java` command on the nodes.
    pub java: String,
    /// `root` is a path on the nodes only (ssh hosts: the tree their
    /// preparation uploaded and checked there, or `$SPLITBRAIN_NODE_ARTIFACTS`),
    /// not on this machine: [`Artifacts::check`] cannot look at it here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_nodes: bool,
}

impl Artifacts {
    /// The cache at `root`, unchecked, run with `java` from `PATH`.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            java: "java".into(),
            on_nodes: false,
        }
    }

    /// A tree at `root` on every node (not on this machine), run with
    /// `java` there.
    pub fn on_nodes(root: &Path, java: &str) -> Self {
        Self {
            root: root.to_path_buf(),
            java: java.to_string(),
            on_nodes: true,
        }
    }

    /// Where the cache is, unchecked: `$SPLITBRAIN_ARTIFACTS` (when not
    /// empty), else `./.cache/artifacts` if present, else
    /// `<source repo>/.cache/artifacts`.
    pub fn cache_dir() -> PathBuf {
        match std::env::var_os(ARTIFACTS_ENV).filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let here = PathBuf::from(".cache/artifacts");
                if here.is_dir() {
                    std::fs::canonicalize(&here).unwrap_or(here)
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/artifacts")
                }
            }
        }
    }

    /// Finds the cache ([`Artifacts::cache_dir`]) and checks it is complete.
    pub fn locate() -> Result<Self, ClusterError> {
        let art = Self::at(&Self::cache_dir());
        art.check()?;
        Ok(art)
    }

    /// The jars as the nodes of `state` see them: `$SPLITBRAIN_NODE_ARTIFACTS`
    /// when set (the cache already copied to that path on every node,
    /// unchecked: it is on the nodes, not here); else the local cache for
    /// netns nodes (they share this file system, see [`Artifacts::locate`])
    /// and the cache recorded for a docker environment (mounted read-only at
    /// the same path); for ssh hosts the tree their preparation uploaded
    /// (recorded by [`crate::db::prepare::prepare`] with the environment).
    pub fn for_env(state: &EnvState) -> Result<Self, ClusterError> {
        if let Some(path) = std::env::var_os(NODE_ARTIFACTS_ENV) {
            return Ok(Self::on_nodes(&PathBuf::from(path), "java"));
        }
        match state.kind {
            EnvKind::Netns => Self::locate(),
            EnvKind::Docker => {
                let record = DockerRecord::load(&state.name)?;
                let root = record
                    .artifacts
                    .ok_or_else(|| ClusterError::NoArtifactsMounted {
                        env: state.name.clone(),
                    })?;
                let artifacts = Self::at(&root);
                artifacts.check()?;
                Ok(artifacts)
            }
            EnvKind::Ssh => match super::prepare::NodeArtifacts::load(&state.name)? {
                Some(record) => Ok(record.artifacts()),
                None => Err(ClusterError::NotPreparedEnv {
                    env: state.name.clone(),
                }),
            },
        }
    }

    /// Checks that both servers' main jars are in the cache. A tree
    /// [`Artifacts::on_nodes`] is not on this machine to look at: it passes
    /// (an uploaded tree was checked on each node when it was made).
    pub fn check(&self) -> Result<(), ClusterError> {
        if self.on_nodes {
            return Ok(());
        }
        for (dir, prefix) in [("zookeeper", "zookeeper-3."), ("kafka", "kafka_2.13-")] {
            let lib = self.root.join(dir).join("lib");
            let found = std::fs::read_dir(&lib)
                .map(|entries| {
                    entries.flatten().any(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.starts_with(prefix) && name.ends_with(".jar")
                    })
                })
                .unwrap_or(false);
            if !found {
                return Err(ClusterError::MissingJars {
                    path: lib,
                    jar: prefix,
                });
            }
        }
        Ok(())
    }

    /// [`Artifacts::check`] where the jars are: here for a local cache; on
    /// every node of `control` for a tree [`Artifacts::on_nodes`] (one `ls`
    /// each, in parallel), so a tree removed since it was uploaded (e.g. by
    /// another environment's `env down --purge-artifacts`) is named before
    /// any server fails to start.
    pub fn check_where_used(
        &self,
        control: &splitbrain_core::control::Control,
    ) -> Result<(), ClusterError> {
        if !self.on_nodes {
            return self.check();
        }
        let cmd = format!(
            "ls {}/zookeeper-3.*.jar {}/kafka_2.13-*.jar >/dev/null",
            splitbrain_core::control::shell_quote(
                &self.root.join("zookeeper/lib").to_string_lossy()
            ),
            splitbrain_core::control::shell_quote(&self.root.join("kafka/lib").to_string_lossy()),
        );
        let mut missing = Vec::new();
        for (node, result) in control.exec_all(&cmd, std::time::Duration::from_secs(30)) {
            match result {
                Ok(out) if out.success() => {}
                Ok(_) => missing.push(node),
                Err(e) => return Err(e.into()),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::JarsGoneFromNodes {
                root: self.root.clone(),
                nodes: missing,
            })
        }
    }

    /// `-cp` value for ZooKeeper.
    pub fn zookeeper_classpath(&self) -> String {
        format!("{}/zookeeper/lib/*", self.root.display())
    }

    /// `-cp` value for Kafka (broker and tools).
    pub fn kafka_classpath(&self) -> String {
        format!("{}/kafka/lib/*", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_hosts_need_a_preparation_or_the_node_variable() {
        let state = EnvState {
            name: "hosts".into(),
            kind: EnvKind::Ssh,
            ready: true,
            nodes: vec![],
            shared: None,
            netns: None,
            ssh: None,
            created_unix: 0,
            owner: None,
        };
        match std::env::var_os(NODE_ARTIFACTS_ENV) {
            // Set by whoever runs the tests: it wins, for every kind.
            Some(path) => assert_eq!(
                Artifacts::for_env(&state).unwrap(),
                Artifacts::on_nodes(&PathBuf::from(path), "java")
            ),
            None => {
                let err = Artifacts::for_env(&state).unwrap_err().to_string();
                assert!(err.contains("'hosts' (ssh hosts) has no jars"), "{err}");
                assert!(err.contains("env up --kind ssh"), "{err}");
                assert!(err.contains(NODE_ARTIFACTS_ENV), "{err}");
            }
        }
    }

    /// A node-side tree is not looked for on this machine (where it is
    /// not), so `cluster up` on real remote hosts does not fail there; and
    /// layouts written before the field read as local caches.
    #[test]
    fn node_side_trees_are_not_checked_here_and_old_layouts_still_read() {
        let remote = Artifacts::on_nodes(Path::new("/opt/splitbrain/artifacts/trees/x"), "java");
        remote.check().unwrap();
        assert!(Artifacts::at(&remote.root).check().is_err());
        let json = serde_json::to_string(&Artifacts::at(Path::new("/c"))).unwrap();
        assert!(!json.contains("on_nodes"), "{json}");
        let old: Artifacts = serde_json::from_str(r#"{"root":"/c","java":"java"}"#).unwrap();
        assert_eq!(old, Artifacts::at(Path::new("/c")));
        let back: Artifacts =
            serde_json::from_str(&serde_json::to_string(&remote).unwrap()).unwrap();
        assert_eq!(back, remote);
    }

    #[test]
    fn check_names_the_missing_part_and_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let art = Artifacts::at(tmp.path());
        let err = art.check().unwrap_err().to_string();
        assert!(err.contains("zookeeper"), "{err}");
        assert!(err.contains("environments/artifacts/fetch"), "{err}");
        std::fs::create_dir_all(tmp.path().join("zookeeper/lib")).unwrap();
        std::fs::write(tmp.path().join("zookeeper/lib/zookeeper-3.8.4.jar"), b"").unwrap();
        let err = art.check().unwrap_err().to_string();
        assert!(err.contains("kafka"), "{err}");
        std::fs::create_dir_all(tmp.path().join("kafka/lib")).unwrap();
        std::fs::write(tmp.path().join("kafka/lib/kafka_2.13-3.9.1.jar"), b"").unwrap();
        art.check().unwrap();
        assert_eq!(
            art.kafka_classpath(),
            format!("{}/kafka/lib/*", tmp.path().display())
        );
    }
}
