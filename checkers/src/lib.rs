//! Pure checkers over splitbrain histories: queue anomalies and DLQ
//! reconciliation ([`queue`]), effects applied once ([`effects`]), split
//! brain ([`splitbrain`]), and a generator of synthetic histories with
//! planted anomalies ([`synth`]).
//!
//! Checkers do no I/O and read no clock: they are fed parsed operations
//! ([`splitbrain_core::history::Op`]) one at a time and return a
//! [`verdict::Verdict`].
#![warn(missing_docs)]

pub mod effects;
mod fxhash;
pub mod queue;
pub mod splitbrain;
pub mod synth;

pub mod verdict;

use splitbrain_core::history::Op;
pub use verdict::{Anomaly, Verdict};

/// Settings of the combined checker.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Examples kept per anomaly.
    pub examples: usize,
    /// How long brokers and ensembles may disagree about the controller
    /// before it is reported (nanoseconds).
    pub controller_grace_ns: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            examples: 10,
            controller_grace_ns: splitbrain::DEFAULT_CONTROLLER_GRACE_NS,
        }
    }
}

/// Runs every checker over a history fed one operation at a time: the queue
/// and effects checkers always (their anomalies reported together, as the
/// `queue` checker's), the split-brain checker when observer samples exist.
pub struct HistoryChecker {
    queue: queue::QueueChecker,
    effects: effects::EffectsChecker,
    split_brain: splitbrain::SplitBrainChecker,
    ops: u64,
}

impl HistoryChecker {
    /// A new checker.
    pub fn new(options: &CheckOptions) -> Self {
        HistoryChecker {
            queue: queue::QueueChecker::new(options.examples),
            effects: effects::EffectsChecker::new(options.examples),
            split_brain: splitbrain::SplitBrainChecker::new(
                options.examples,
                options.controller_grace_ns,
            ),
            ops: 0,
        }
    }

    /// Feeds one operation.
    #[inline]
    pub fn observe(&mut self, op: &Op<'_>) {
        self.ops += 1;
        if op.f == "observe" {
            self.split_brain.observe(op);
        } else {
            self.queue.observe(op);
            self.effects.observe(op);
        }
    }

    /// The combined verdict.
    pub fn finish(self) -> Verdict {
        let mut verdict = Verdict::default();
        let q = self.queue.finish();
        let e = self.effects.finish();
        let (mut anomalies, mut counts) = (q.anomalies, q.counts);
        anomalies.extend(e.anomalies);
        counts.extend(e.counts);
        counts.insert("operations".into(), self.ops);
        verdict.merge("queue", anomalies, counts);
        if let Some(sb) = self.split_brain.finish() {
            verdict.merge("split-brain", sb.anomalies, sb.counts);
        }
        verdict
    }
}
