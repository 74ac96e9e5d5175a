//! Pure checkers over splitbrain histories: queue anomalies and DLQ
//! reconciliation ([`queue`]), effects applied once ([`effects`]), split
//! brain ([`splitbrain`]), transactions ([`txn`]), and a generator of synthetic histories with
//! planted anomalies ([`synth`]).
//!
//! Checkers do no I/O and read no clock: they are fed parsed operations
//! ([`splitbrain_core::history::Op`]) one at a time and return a
//! [`verdict::Verdict`]. Every anomaly name they report is listed, with its
//! checker and whether it invalidates a history, in [`catalog`].
#![warn(missing_docs)]

pub mod catalog;
pub mod effects;
mod error;
mod msg_table;
pub mod queue;
pub mod splitbrain;
pub mod synth;
pub mod synth_txn;
pub mod txn;

pub mod verdict;

pub use error::CheckError;
use splitbrain_core::history::Op;
pub use verdict::{Anomaly, Verdict};

/// Settings of the combined checker.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Examples kept per anomaly.
    pub examples: usize,
    /// How long a broker may name a controller that ZooKeeper no longer
    /// registers before it is counted as `stale-controller-view`
    /// (nanoseconds).
    pub controller_grace_ns: u64,
    /// Consecutive observer samples a split-brain anomaly must hold in
    /// before it is reported.
    pub split_brain_min_samples: u32,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            examples: 10,
            controller_grace_ns: splitbrain::DEFAULT_CONTROLLER_GRACE_NS,
            split_brain_min_samples: splitbrain::DEFAULT_MIN_SAMPLES,
        }
    }
}

/// Runs every checker over a history fed one operation at a time: the queue
/// and effects checkers always, the split-brain checker when observer
/// samples exist, the transaction checker when `txn` operations exist.
pub struct HistoryChecker {
    queue: queue::QueueChecker,
    effects: effects::EffectsChecker,
    split_brain: splitbrain::SplitBrainChecker,
    txn: txn::TxnChecker,
    examples: usize,
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
            )
            .min_samples(options.split_brain_min_samples),
            txn: txn::TxnChecker::new(options.examples),
            examples: options.examples,
            ops: 0,
        }
    }

    /// Feeds one operation. Fails on input no verdict can be given for
    /// (see [`CheckError`]); stop feeding then.
    #[inline]
    pub fn observe(&mut self, op: &Op<'_>) -> Result<(), CheckError> {
        self.ops += 1;
        if op.f == "observe" {
            self.split_brain.observe(op);
            Ok(())
        } else if op.f == txn::TXN_F || op.f == txn::SETTINGS_F {
            self.txn.observe(op)
        } else {
            self.effects.observe(op);
            self.queue.observe(op)
        }
    }

    /// The combined verdict.
    pub fn finish(self) -> Verdict {
        let mut verdict = Verdict::default();
        let q = self.queue.finish();
        let mut counts = q.counts;
        counts.insert("operations".into(), self.ops);
        verdict.merge(catalog::QUEUE, q.anomalies, counts);
        let e = self.effects.finish();
        verdict.merge(catalog::EFFECTS, e.anomalies, e.counts);
        if let Some(sb) = self.split_brain.finish() {
            verdict.merge(catalog::SPLIT_BRAIN, sb.anomalies, sb.counts);
        }
        if self.txn.saw_transactions() {
            let t = self.txn.finish();
            // Names shared with the queue checker: one count for both.
            let mut own = std::collections::BTreeMap::new();
            for (name, a) in t.anomalies {
                match verdict.anomalies.get_mut(&name) {
                    Some(existing) => {
                        existing.count += a.count;
                        existing.examples.extend(a.examples);
                        existing.examples.truncate(self.examples);
                    }
                    None => {
                        own.insert(name, a);
                    }
                }
            }
            verdict.merge(catalog::TXN, own, t.counts);
        }
        verdict
    }
}
