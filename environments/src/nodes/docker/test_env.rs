//! A Docker environment for tests: unique name and subnet, engine started if
//! need be, everything removed in `Drop` (panics included), and the private
//! engine stopped when the last test using it is done. Mirrors
//! [`crate::nodes::netns::TestEnv`], so a test can run on either.

use super::engine::EngineLease;
use super::image::LOCAL_BASE_IMAGE;
use super::{down, up, DockerCli, DockerOptions};
use crate::nodes::state::EnvState;
use crate::nodes::EnvError;
use splitbrain_core::control::{Control, Node};
use std::path::PathBuf;
use std::time::Duration;

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
    pub fn up(test_name: &str, nodes: usize) -> Result<DockerTestEnv, EnvError> {
        Self::up_with(EngineLease::acquire()?, test_name, nodes)
    }

    /// As [`Self::up`], on an engine the test already leased (to look at the
    /// engine after `down`, keep a lease of your own too).
    pub fn up_with(
        lease: EngineLease,
        test_name: &str,
        nodes: usize,
    ) -> Result<DockerTestEnv, EnvError> {
        reap_orphaned_test_envs(lease.cli());
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
        crate::nodes::test_names::unique_name("td", test_name)
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
    pub fn control(&self) -> Result<Control, EnvError> {
        Ok(Control::connect(
            &self.state.nodes,
            Duration::from_secs(20),
        )?)
    }

    /// Tears down now and reports errors (`Drop` then does nothing more).
    pub fn down(mut self) -> Result<(), EnvError> {
        self.torn_down = true;
        let result = down(&self.state.name, false);
        self.lease.take();
        result
    }
}

/// An engine lease for a test, or `None` after printing why the test is
/// skipped: not root, or no Docker engine could be found or started. Under
/// CI (`$CI` set) or with `SPLITBRAIN_REQUIRE_DOCKER=1`, an engine that
/// cannot be started fails the test instead: CI must run these tests.
pub fn lease_for_test() -> Option<EngineLease> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let required = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("SPLITBRAIN_REQUIRE_DOCKER").is_some_and(|v| v == "1");
    let why = if !root {
        "the Docker environment needs root (to start dockerd and run debootstrap); run the tests as root".to_string()
    } else {
        match EngineLease::acquire() {
            Ok(lease) => return Some(lease),
            Err(e) => format!("no Docker engine could be found or started: {e}"),
        }
    };
    if required {
        panic!("Docker is required here (CI or SPLITBRAIN_REQUIRE_DOCKER=1) but {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// The pid in a [`DockerTestEnv`] name (`td-<slug>-<pid>-<counter>`).
fn test_env_pid(name: &str) -> Option<i32> {
    crate::nodes::test_names::pid_of("td", name)
}

/// Removes Docker test environments whose test process no longer exists
/// (killed before `Drop` ran), so they don't pile up and hold subnets. Best
/// effort; returns the names removed.
pub fn reap_orphaned_test_envs(cli: &DockerCli) -> Vec<String> {
    let format = format!("{{{{.Label \"{}\"}}}}", super::ENV_LABEL);
    let mut names: Vec<String> = Vec::new();
    for args in [
        vec!["ps", "-a", "--format", format.as_str()],
        vec!["network", "ls", "--format", format.as_str()],
    ] {
        if let Ok(out) = cli.ok(&args, Duration::from_secs(30)) {
            names.extend(out.lines().map(str::trim).map(str::to_string));
        }
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| test_env_pid(n).is_some_and(|pid| !crate::nodes::sys::alive(pid)))
        .filter(|n| down(n, false).is_ok())
        .collect()
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
    fn test_env_pid_is_parsed_from_the_name() {
        assert_eq!(test_env_pid("td-five-nodes-1234-0"), Some(1234));
        assert_eq!(test_env_pid("td-x-77-12"), Some(77));
        assert_eq!(test_env_pid("t-x-77-12"), None);
        assert_eq!(test_env_pid("td-cli-1234"), None);
        assert_eq!(test_env_pid("d1"), None);
        let name = DockerTestEnv::unique_name("anything");
        assert_eq!(test_env_pid(&name), Some(std::process::id() as i32));
    }

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = DockerTestEnv::unique_name("Five Nodes & more, much more text");
        let b = DockerTestEnv::unique_name("Five Nodes & more, much more text");
        assert_ne!(a, b);
        crate::nodes::state::validate_name(&a).unwrap();
        assert!(a.starts_with("td-five-nodes-"), "{a}");
    }
}
