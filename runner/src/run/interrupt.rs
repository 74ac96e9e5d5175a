//! Ctrl-C as the runs of one process see it, in three steps:
//!
//! 1. The first stops the load at once: the workload starts no new send
//!    (its [`StopLevel::Load`]), the fault schedule stops and heals, and the
//!    run goes on as usual: drain, DLQ replay, final read, teardown, report.
//! 2. The second skips what is left of the drain, replay and final read
//!    ([`StopLevel::Now`]: sends in flight are abandoned as `info`), stops
//!    waiting for partition leaders, and tears down at once; the history,
//!    results.json and the report are still written.
//! 3. The third gives up: [`Interrupt::abandon`] removes the run's own
//!    environment (best effort, which also stops every server in it) and
//!    the caller exits; nothing more is written.
//!
//! The signal handler itself is the caller's (the CLI's): it calls
//! [`Interrupt::press`] and says what happens.

use splitbrain_workloads::stop::{StopHandle, StopLevel};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// What a Ctrl-C does, by how many came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Press {
    /// The first: stop the load and the faults, heal, then read back,
    /// tear down and report.
    StopLoad,
    /// The second: skip drain, replay and final read; tear down now.
    StopNow,
    /// The third or later: remove the environment and exit.
    Exit,
}

/// Shared by the Ctrl-C handler and the runs of this process (a campaign's
/// runs share one: once pressed, the tests not started are skipped). Cheap
/// to clone.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    presses: AtomicU32,
    /// Set on the first press; what `env up` polls between its steps.
    requested: AtomicBool,
    /// The workload's stop, raised one level per press.
    stop: StopHandle,
    /// The environment the current run created, for [`Interrupt::abandon`].
    env: Mutex<Option<String>>,
}

impl Interrupt {
    /// Not pressed yet.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// One more Ctrl-C: raises the stop and says what it does.
    pub fn press(&self) -> Press {
        let n = self.inner.presses.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.requested.store(true, Ordering::SeqCst);
        self.inner.stop.escalate();
        tracing::info!("Ctrl-C ({n})");
        match n {
            1 => Press::StopLoad,
            2 => Press::StopNow,
            _ => Press::Exit,
        }
    }

    /// Whether Ctrl-C came at all.
    pub fn requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Whether the second Ctrl-C came: tear down now.
    pub fn now(&self) -> bool {
        self.inner.stop.reached(StopLevel::Now)
    }

    /// The flag set by the first Ctrl-C (for `env up`).
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.inner.requested
    }

    /// The workload's stop: the same levels as the presses.
    pub(crate) fn workload_stop(&self) -> StopHandle {
        self.inner.stop.clone()
    }

    /// Records the environment the current run created (`None` when it is
    /// gone, or the run uses an existing one).
    pub(crate) fn set_run_env(&self, name: Option<String>) {
        *self.inner.env.lock().unwrap_or_else(|p| p.into_inner()) = name;
    }

    /// The last resort of the third Ctrl-C: removes the environment the
    /// current run created (its servers go with it), best effort. Returns
    /// what was done, in words, for the user. From here on the run's
    /// teardown, cut short, writes its errors to the log only.
    pub fn abandon(&self) -> String {
        crate::logging::quiet_stderr();
        let env = self
            .inner
            .env
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match env {
            None => "no environment of this run to remove; check `splitbrain env list`".into(),
            Some(name) => match splitbrain_environments::nodes::down(&name) {
                Ok(summary) => summary,
                Err(e) => format!(
                    "could not remove environment {name}: {e}; run `splitbrain env down --env-name {name}`"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presses_raise_the_workload_stop_one_level_each() {
        let i = Interrupt::new();
        let stop = i.workload_stop();
        assert!(!i.requested() && !i.now());
        assert!(!i.flag().load(Ordering::SeqCst));
        assert_eq!(stop.level(), StopLevel::Running);

        assert_eq!(i.clone().press(), Press::StopLoad);
        assert!(i.requested() && !i.now());
        assert!(i.flag().load(Ordering::SeqCst));
        assert_eq!(stop.level(), StopLevel::Load);

        assert_eq!(i.press(), Press::StopNow);
        assert!(i.now());
        assert_eq!(stop.level(), StopLevel::Now);

        assert_eq!(i.press(), Press::Exit);
        assert_eq!(i.press(), Press::Exit);
    }

    #[test]
    fn abandon_without_an_environment_only_says_so() {
        let i = Interrupt::new();
        assert!(i.abandon().contains("env list"));
    }
}
