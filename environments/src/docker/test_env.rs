//! A Docker environment for tests: unique name and subnet, engine started if
//! need be, everything removed in `Drop` (panics included), and the private
//! engine stopped when the last test using it is done.

use super::engine::EngineLease;
use super::image::LOCAL_BASE_IMAGE;
use super::{down, up, DockerError, DockerOptions, DockerRecord};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running Docker environment owned by one test.
#[derive(Debug)]
pub struct DockerTestEnv {
    /// What `up` made.
    pub record: DockerRecord,
    /// Its state directory (key pair, known_hosts, record).
    pub state_dir: PathBuf,
    _state_root: tempfile::TempDir,
    lease: Option<EngineLease>,
}

impl DockerTestEnv {
    /// Brings up `nodes` containers for the test `test_name`. The base image
    /// is `$SPLITBRAIN_DOCKER_BASE`, else the locally made
    /// [`LOCAL_BASE_IMAGE`] (no registry needed). Errors say why Docker can't
    /// be used here, for the test to print when it skips.
    pub fn up(test_name: &str, nodes: usize) -> Result<DockerTestEnv, DockerError> {
        let lease = EngineLease::acquire()?;
        Self::up_with(lease, test_name, nodes)
    }

    /// As [`Self::up`], on an engine the test already leased (to look at the
    /// engine after `down`, keep a lease of your own).
    pub fn up_with(
        lease: EngineLease,
        test_name: &str,
        nodes: usize,
    ) -> Result<DockerTestEnv, DockerError> {
        let slug: String = test_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(16)
            .collect();
        let env = format!(
            "t{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            slug.trim_matches('-')
        );
        let state_root = tempfile::Builder::new()
            .prefix("splitbrain-docker-test.")
            .tempdir()
            .map_err(|source| DockerError::Io {
                what: "create a state directory".into(),
                source,
            })?;
        let state_dir = state_root.path().join(&env);
        let artifacts = std::env::var_os("SPLITBRAIN_ARTIFACTS").map(PathBuf::from);
        let opts = DockerOptions {
            env,
            nodes,
            subnet: None,
            base_image: std::env::var("SPLITBRAIN_DOCKER_BASE")
                .unwrap_or_else(|_| LOCAL_BASE_IMAGE.to_string()),
            artifacts,
            state_dir: state_dir.clone(),
            start_engine: false,
        };
        let record = up(&opts)?;
        Ok(DockerTestEnv {
            record,
            state_dir,
            _state_root: state_root,
            lease: Some(lease),
        })
    }

    /// The engine this environment lives in.
    pub fn cli(&self) -> super::DockerCli {
        super::DockerCli::new(self.record.docker_host.clone())
    }

    /// Tears down now and reports errors (`Drop` does the same silently).
    pub fn down(mut self) -> Result<(), DockerError> {
        let result = down(&self.record.env, &self.state_dir, false);
        self.lease.take();
        result
    }
}

impl Drop for DockerTestEnv {
    fn drop(&mut self) {
        if self.lease.is_some() {
            if let Err(e) = down(&self.record.env, &self.state_dir, false) {
                eprintln!("DockerTestEnv: env down {} failed: {e}", self.record.env);
            }
        }
        // The lease drops after the containers are gone, so it may stop the
        // engine it started.
        self.lease.take();
    }
}
