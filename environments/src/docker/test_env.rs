//! A Docker environment for tests: unique name and subnet, engine started if
//! need be, everything removed in `Drop` (panics included), and the private
//! engine stopped when the last test using it is done. Mirrors
//! [`crate::netns::TestEnv`], so a test can run on either.

use super::engine::EngineLease;
use super::image::LOCAL_BASE_IMAGE;
use super::{down, up, DockerCli, DockerError, DockerOptions};
use crate::state::EnvState;
use splitbrain_core::control::{Control, Node};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The artifact cache as the cluster layer finds it by default:
/// `$SPLITBRAIN_ARTIFACTS`, else `<repo>/.cache/artifacts` (spelled
/// `<environments crate>/../.cache/artifacts`, the same string the cluster
/// layer uses, so its commands resolve in the containers too).
pub fn default_artifacts() -> PathBuf {
    match std::env::var_os("SPLITBRAIN_ARTIFACTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/artifacts"),
    }
}

/// A running Docker environment owned by one test.
#[derive(Debug)]
pub struct DockerTestEnv {
    state: EnvState,
    cli: DockerCli,
    torn_down: bool,
    lease: Option<EngineLease>,
}

impl DockerTestEnv {
    /// Brings up `nodes` containers for the test `test_name`. The base image
    /// is `$SPLITBRAIN_DOCKER_BASE`, else the locally made
    /// [`LOCAL_BASE_IMAGE`] (no registry needed); the artifact cache
    /// ([`default_artifacts`]) is mounted read-only at the same path. Errors
    /// say why Docker can't be used here, for the test to print.
    pub fn up(test_name: &str, nodes: usize) -> Result<DockerTestEnv, DockerError> {
        Self::up_with(EngineLease::acquire()?, test_name, nodes)
    }

    /// As [`Self::up`], on an engine the test already leased (to look at the
    /// engine after `down`, keep a lease of your own too).
    pub fn up_with(
        lease: EngineLease,
        test_name: &str,
        nodes: usize,
    ) -> Result<DockerTestEnv, DockerError> {
        let opts = DockerOptions {
            name: Self::unique_name(test_name),
            nodes,
            subnet: None,
            base_image: std::env::var("SPLITBRAIN_DOCKER_BASE")
                .unwrap_or_else(|_| LOCAL_BASE_IMAGE.to_string()),
            artifacts: Some(default_artifacts()),
            start_engine: false,
        };
        let state = up(&opts, None)?;
        Ok(DockerTestEnv {
            state,
            cli: lease.cli().clone(),
            torn_down: false,
            lease: Some(lease),
        })
    }

    /// `td-<test name, slugged>-<pid>-<counter>`: unique per process and call.
    fn unique_name(test_name: &str) -> String {
        let slug: String = test_name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let slug: String = slug.trim_matches('-').chars().take(14).collect();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        format!(
            "td-{}-{}-{n}",
            slug.trim_end_matches('-'),
            std::process::id()
        )
    }

    /// The environment's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Its recorded state (also loadable with `EnvState::load(name)`).
    pub fn state(&self) -> &EnvState {
        &self.state
    }

    /// Its nodes (`n1`..).
    pub fn nodes(&self) -> &[Node] {
        &self.state.nodes
    }

    /// The engine this environment lives in.
    pub fn cli(&self) -> &DockerCli {
        &self.cli
    }

    /// Connects a [`Control`] to all nodes.
    pub fn control(&self) -> Result<Control, DockerError> {
        Ok(Control::connect(&self.state.nodes, Duration::from_secs(20))
            .map_err(crate::EnvError::from)?)
    }

    /// Tears down now and reports errors (`Drop` then does nothing more).
    pub fn down(mut self) -> Result<(), DockerError> {
        self.torn_down = true;
        let result = down(&self.state.name, false);
        self.lease.take();
        result
    }
}

impl Drop for DockerTestEnv {
    fn drop(&mut self) {
        if !self.torn_down {
            if let Err(e) = down(&self.state.name, false) {
                eprintln!(
                    "DockerTestEnv {}: teardown incomplete: {e}",
                    self.state.name
                );
            }
        }
        // The lease ends after the containers are gone, so it may stop the
        // engine it started.
        self.lease.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = DockerTestEnv::unique_name("Five Nodes & more, much more text");
        let b = DockerTestEnv::unique_name("Five Nodes & more, much more text");
        assert_ne!(a, b);
        crate::state::validate_name(&a).unwrap();
        assert!(a.starts_with("td-five-nodes-"), "{a}");
    }
}
