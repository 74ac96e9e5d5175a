//! Which process owns an environment, and whether it still runs.
//!
//! The process that creates an environment records itself in the state
//! ([`EnvState::owner`]): a `splitbrain run` or a test owns its environment
//! and removes it when it ends. Killed (SIGKILL), it cannot, and the nodes
//! and servers keep running until `splitbrain env down`: such an environment
//! is *orphaned*. `splitbrain env up` hands its finished environment over to
//! the user (no owner: it lives until `env down`).
//!
//! A pid alone can be reused by a later process, so the owner is the pid and
//! the process's start time (field 22 of `/proc/<pid>/stat`, clock ticks
//! since boot).

use crate::nodes::{netns, sys, EnvState};
use serde::{Deserialize, Serialize};

/// The process owning an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its process id.
    pub pid: i32,
    /// When it started, in clock ticks since boot (`/proc/<pid>/stat` field
    /// 22); 0 when it could not be read (then the pid alone is checked).
    pub start_ticks: u64,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        let pid = std::process::id() as i32;
        Owner {
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether the owner still runs: its pid exists, is not a zombie, and
    /// (when recorded) started when the owner did.
    pub fn is_alive(&self) -> bool {
        sys::alive(self.pid)
            && (self.start_ticks == 0 || start_ticks(self.pid) == Some(self.start_ticks))
    }
}

/// The start time of process `pid` (clock ticks since boot), if it exists.
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces and parentheses):
    // state is field 3, starttime field 22.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether an environment's owner still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerStatus {
    /// No owner process: made by `splitbrain env up`, kept until `env down`.
    None,
    /// Its owner (this pid) still runs.
    Alive(i32),
    /// Its owner (this pid) is gone: the environment is orphaned.
    Gone(i32),
}

impl EnvState {
    /// Hands the environment over to the user (what `splitbrain env up`
    /// does once it is ready): no owner process any more, so it is never
    /// reported orphaned; it lives until `env down`. Saves the state.
    pub fn hand_over(&mut self) -> Result<(), crate::nodes::EnvError> {
        self.owner = None;
        self.save()
    }

    /// Whether this environment's owner still runs. Without an owner record
    /// (a state written before owners were recorded), a test environment's
    /// name still tells its process (`t-<test>-<pid>-<n>`, `td-…`).
    pub fn owner_status(&self) -> OwnerStatus {
        match self.owner {
            Some(owner) if owner.is_alive() => OwnerStatus::Alive(owner.pid),
            Some(owner) => OwnerStatus::Gone(owner.pid),
            None => match test_env_pid(&self.name) {
                Some(pid) if sys::alive(pid) => OwnerStatus::Alive(pid),
                Some(pid) => OwnerStatus::Gone(pid),
                None => OwnerStatus::None,
            },
        }
    }
}

/// The pid in a test environment's name, if it is one.
fn test_env_pid(name: &str) -> Option<i32> {
    use crate::nodes::test_names::pid_of;
    pid_of("t", name).or_else(|| pid_of("td", name))
}

/// An environment left behind by its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// The environment's name.
    pub name: String,
    /// Why it is orphaned, in words.
    pub why: String,
}

/// Environments whose owner process is gone, and netns leftovers without a
/// state file; each is removed by `splitbrain env down --env-name NAME`.
pub fn orphans() -> Vec<Orphan> {
    let mut found: Vec<Orphan> = netns::orphans_on_system()
        .into_iter()
        .map(|name| Orphan {
            name,
            why: "no state file: leftovers of a crash".into(),
        })
        .collect();
    for name in EnvState::list().unwrap_or_default() {
        if let Ok(state) = EnvState::load(&name) {
            if let OwnerStatus::Gone(pid) = state.owner_status() {
                found.push(Orphan {
                    name,
                    why: format!("its owner process {pid} is gone"),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Owner::this_process();
        assert!(me.start_ticks > 0, "{me:?}");
        assert!(me.is_alive());
        // Same pid, another start time: a later process that got the pid.
        let reused = Owner {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn a_finished_process_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let owner = Owner {
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
        };
        child.wait().unwrap();
        assert!(!owner.is_alive());
    }

    #[test]
    fn test_environment_names_carry_their_owner() {
        assert_eq!(test_env_pid("t-my-test-1234-0"), Some(1234));
        assert_eq!(test_env_pid("td-my-test-99-3"), Some(99));
        assert_eq!(test_env_pid("sb-run-1234-5678"), None);
        assert_eq!(test_env_pid("splitbrain"), None);
    }
}
