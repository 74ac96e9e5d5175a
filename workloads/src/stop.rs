//! The external stop of the queue workload: what Ctrl-C (or any caller)
//! uses to end a run early, in two levels.
//!
//! - [`StopLevel::Load`]: stop the load now. No sender invokes a new send
//!   (a retry is a new send: a message that still needs one goes to the
//!   DLQ, to be replayed); sends in flight complete as usual (bounded by the
//!   message timeout) or end `info`. Then the heal hook, drain, replay and
//!   final read run as usual.
//! - [`StopLevel::Now`]: also abandon sends in flight (recorded `info`:
//!   their outcome is unknown), and skip whatever is left of the drain, the
//!   replay and the final read. The heal hook still runs, and everything
//!   recorded stays in the history.

use serde::Serialize;
use std::sync::Arc;
use tokio::sync::watch;

/// How far an external stop goes; levels only rise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopLevel {
    /// Not stopped.
    Running,
    /// Stop the load; drain, replay and read as usual.
    Load,
    /// Stop the load, abandon sends in flight, skip drain, replay and
    /// final read.
    Now,
}

/// A shared stop switch; clones control the same workload. Cheap to clone
/// and safe to use from any thread (also from a signal-handling thread).
#[derive(Clone, Debug)]
pub struct StopHandle {
    level: Arc<watch::Sender<StopLevel>>,
}

impl Default for StopHandle {
    fn default() -> Self {
        StopHandle::new()
    }
}

impl StopHandle {
    /// A switch at [`StopLevel::Running`].
    pub fn new() -> Self {
        StopHandle {
            level: Arc::new(watch::channel(StopLevel::Running).0),
        }
    }

    /// Raises the level to `level` (never lowers it). Returns the level now.
    pub fn request(&self, level: StopLevel) -> StopLevel {
        self.level.send_if_modified(|current| {
            let raise = level > *current;
            if raise {
                *current = level;
            }
            raise
        });
        self.level()
    }

    /// One level further: the first call stops the load, the second (and
    /// later) stops now. What a Ctrl-C handler calls on each signal.
    pub fn escalate(&self) -> StopLevel {
        let next = match self.level() {
            StopLevel::Running => StopLevel::Load,
            StopLevel::Load | StopLevel::Now => StopLevel::Now,
        };
        self.request(next)
    }

    /// The current level.
    pub fn level(&self) -> StopLevel {
        *self.level.borrow()
    }

    /// Whether the level is at least `level`.
    pub fn reached(&self, level: StopLevel) -> bool {
        self.level() >= level
    }

    /// Waits until the level is at least `level`.
    pub async fn wait_for(&self, level: StopLevel) {
        let mut rx = self.level.subscribe();
        // The sender lives in `self`: the channel cannot close while we wait.
        let _ = rx.wait_for(|l| *l >= level).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn levels_only_rise_and_escalate_goes_load_then_now() {
        let s = StopHandle::new();
        assert_eq!(s.level(), StopLevel::Running);
        assert!(!s.reached(StopLevel::Load));
        let clone = s.clone();
        assert_eq!(clone.escalate(), StopLevel::Load);
        assert!(s.reached(StopLevel::Load) && !s.reached(StopLevel::Now));
        assert_eq!(s.request(StopLevel::Running), StopLevel::Load);
        assert_eq!(s.escalate(), StopLevel::Now);
        assert_eq!(s.escalate(), StopLevel::Now);
        assert_eq!(s.request(StopLevel::Load), StopLevel::Now);
    }

    #[test]
    fn waiters_wake_when_the_level_is_reached_from_another_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let s = StopHandle::new();
        let remote = s.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            remote.request(StopLevel::Load);
            std::thread::sleep(Duration::from_millis(50));
            remote.request(StopLevel::Now);
        });
        rt.block_on(async {
            // Not yet: a short wait times out.
            let early =
                tokio::time::timeout(Duration::from_millis(10), s.wait_for(StopLevel::Load)).await;
            assert!(early.is_err());
            tokio::time::timeout(Duration::from_secs(5), s.wait_for(StopLevel::Load))
                .await
                .expect("woken by stop-load");
            assert!(!s.reached(StopLevel::Now));
            tokio::time::timeout(Duration::from_secs(5), s.wait_for(StopLevel::Now))
                .await
                .expect("woken by stop-now");
            // Already reached: returns at once.
            s.wait_for(StopLevel::Load).await;
        });
        t.join().unwrap();
    }
}
