//! [`TestEnv`]: a netns environment owned by one test (behind the
//! `test-support` feature, not part of the default API).

use super::{
    down, lease_subnet, system_namespaces, up_with_lease, DownReport, Subnet, SubnetLease,
};
use crate::nodes::sys;
use crate::nodes::{EnvError, EnvKind, EnvState};
use splitbrain_core::control::{Control, Node};
use std::time::Duration;

/// The pid embedded in a [`TestEnv`] name (`t-<test>-<pid>-<counter>`).
fn test_env_pid(name: &str) -> Option<i32> {
    crate::nodes::test_names::pid_of("t", name)
}

/// Removes netns environments left behind by [`TestEnv`]s of test processes
/// that no longer exist (killed before their `Drop` ran), so they do not
/// pile up and use subnets. Best effort; returns the names removed.
pub fn reap_orphaned_test_envs() -> Vec<String> {
    let mut names: Vec<String> = EnvState::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            EnvState::load(n)
                .map(|s| s.kind == EnvKind::Netns)
                .unwrap_or(true)
        })
        .collect();
    for ns in system_namespaces().unwrap_or_default() {
        if let Some((env, k)) = ns.rsplit_once("-n") {
            if k.bytes().all(|b| b.is_ascii_digit()) && !names.iter().any(|n| n == env) {
                names.push(env.to_string());
            }
        }
    }
    names
        .into_iter()
        .filter(|n| test_env_pid(n).is_some_and(|pid| !sys::alive(pid)))
        .filter(|n| down(n).is_ok())
        .collect()
}

/// A netns environment for one test: unique name and subnet (safe across
/// parallel tests and processes), torn down on drop, also when the test
/// panics. Needs root.
///
/// ```no_run
/// use splitbrain_environments::nodes::netns::TestEnv;
/// let env = TestEnv::up("my_test", 3);
/// let control = env.control();
/// let out = control.exec_ok("n1", "hostname", std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(out.stdout.trim(), "n1");
/// ```
#[derive(Debug)]
pub struct TestEnv {
    state: EnvState,
    lease: Option<SubnetLease>,
    torn_down: bool,
}

impl TestEnv {
    /// Creates an environment with `nodes` nodes named after `test_name`;
    /// panics with the reason if it cannot (a test helper).
    pub fn up(test_name: &str, nodes: usize) -> TestEnv {
        Self::try_up(test_name, nodes)
            .unwrap_or_else(|e| panic!("TestEnv::up({test_name:?}, {nodes}): {e}"))
    }

    /// Like [`TestEnv::up`] but returns the error.
    pub fn try_up(test_name: &str, nodes: usize) -> Result<TestEnv, EnvError> {
        let name = Self::unique_name(test_name);
        for orphan in reap_orphaned_test_envs() {
            eprintln!("TestEnv: removed {orphan}, left by a test process that no longer exists");
        }
        let lease = lease_subnet(None)?;
        let state = up_with_lease(&name, nodes, &lease, None)?;
        Ok(TestEnv {
            state,
            lease: Some(lease),
            torn_down: false,
        })
    }

    /// `t-<test name, slugged>-<pid>-<counter>`: unique per process and call.
    fn unique_name(test_name: &str) -> String {
        crate::nodes::test_names::unique_name("t", test_name)
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

    /// A hosts file (the `ssh` environment's format) listing these nodes as
    /// SSH hosts, each with its node directory at `dir_of(node name)`.
    pub fn hosts_toml(&self, dir_of: impl Fn(&str) -> std::path::PathBuf) -> String {
        self.nodes()
            .iter()
            .map(|node| {
                format!(
                    "[[nodes]]\nname = \"{}\"\naddress = \"{}\"\nkey_path = \"{}\"\nknown_hosts = \"{}\"\ndir = \"{}\"\n\n",
                    node.name,
                    node.address,
                    node.key_path.display(),
                    node.known_hosts.display(),
                    dir_of(&node.name).display()
                )
            })
            .collect()
    }

    /// Node `name`; panics if there is none.
    pub fn node(&self, name: &str) -> &Node {
        self.state
            .node(name)
            .unwrap_or_else(|| panic!("no node {name} in {}", self.state.name))
    }

    /// The environment's /24.
    pub fn subnet(&self) -> Subnet {
        self.lease.as_ref().expect("lease held until drop").subnet()
    }

    /// Connects a [`Control`] to all nodes; panics if it cannot.
    pub fn control(&self) -> Control {
        Control::connect(&self.state.nodes, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.state.name))
    }

    /// Tears down now and returns what was removed (drop then does nothing).
    pub fn down(mut self) -> Result<DownReport, EnvError> {
        self.torn_down = true;
        down(&self.state.name)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if !self.torn_down {
            if let Err(e) = down(&self.state.name) {
                eprintln!("TestEnv {}: teardown incomplete: {e}", self.state.name);
            }
        }
        // The lease is released after teardown (field drop order).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_env_pid_is_parsed_from_the_name() {
        assert_eq!(test_env_pid("t-five-nodes-1234-0"), Some(1234));
        assert_eq!(test_env_pid("t-x-77-12"), Some(77));
        assert_eq!(test_env_pid("t-cli-kill-1234"), None);
        assert_eq!(test_env_pid("splitbrain"), None);
        assert_eq!(test_env_pid("t-1-2"), None);
        let name = TestEnv::unique_name("anything");
        assert_eq!(test_env_pid(&name), Some(std::process::id() as i32));
    }

    #[test]
    fn test_env_names_are_valid_and_unique() {
        let a = TestEnv::unique_name("partition_then_heal::Works!");
        let b = TestEnv::unique_name("partition_then_heal::Works!");
        assert_ne!(a, b);
        crate::nodes::state::validate_name(&a).unwrap();
        crate::nodes::state::validate_name(&TestEnv::unique_name(&"y".repeat(100))).unwrap();
    }
}
