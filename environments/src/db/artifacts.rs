//! Where the ZooKeeper and Kafka jars are, as the nodes see them.
//!
//! `environments/artifacts/fetch` fills a cache directory (default
//! `<repo>/.cache/artifacts`, or `$SPLITBRAIN_ARTIFACTS`) with
//! `zookeeper/lib/*.jar` and `kafka/lib/*.jar`. Network-namespace nodes share
//! the host's file system, so the same path works on them.

use crate::db::ClusterError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable naming the artifact cache.
pub const ARTIFACTS_ENV: &str = "SPLITBRAIN_ARTIFACTS";

/// The artifact cache and the `java` that runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    /// Directory holding `zookeeper/lib` and `kafka/lib`.
    pub root: PathBuf,
    /// The `java` command on the nodes.
    pub java: String,
}

impl Artifacts {
    /// The cache at `root`, unchecked, run with `java` from `PATH`.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            java: "java".into(),
        }
    }

    /// Finds the cache: `$SPLITBRAIN_ARTIFACTS`, else `./.cache/artifacts`
    /// if present, else `<source repo>/.cache/artifacts`; checks it is complete.
    pub fn locate() -> Result<Self, ClusterError> {
        let root = match std::env::var_os(ARTIFACTS_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let here = PathBuf::from(".cache/artifacts");
                if here.is_dir() {
                    std::fs::canonicalize(&here).unwrap_or(here)
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/artifacts")
                }
            }
        };
        let art = Self::at(&root);
        art.check()?;
        Ok(art)
    }

    /// Checks that both servers' main jars are in the cache.
    pub fn check(&self) -> Result<(), ClusterError> {
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
                return Err(ClusterError::Artifacts {
                    path: lib,
                    detail: format!(
                        "no {prefix}*.jar: run environments/artifacts/fetch (or scripts/setup), \
                         or set {ARTIFACTS_ENV} to a directory it filled"
                    ),
                });
            }
        }
        Ok(())
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
