//! What checkers return: per anomaly a count and a few concrete examples, plus
//! counters. Serialized as `results.json` (schema in `docs/results.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Acknowledged messages nobody read past the highest position anyone read:
/// informational (see [`crate::catalog`]), not proof of loss, as consumers
/// may simply not have got that far.
pub const UNSEEN: &str = "unseen";

/// One kind of anomaly: how often it occurred and up to N examples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// How many times it occurred (examples may be fewer).
    pub count: u64,
    /// Concrete cases: keys, messages, offsets and the indices of the
    /// operations involved. Shapes per anomaly in `docs/results.md`.
    pub examples: Vec<Value>,
}

impl Anomaly {
    /// Counts one occurrence, keeping the example while fewer than `limit`
    /// are kept. The example is built only when kept.
    pub fn add(&mut self, limit: usize, example: impl FnOnce() -> Value) {
        self.count += 1;
        if self.examples.len() < limit {
            self.examples.push(example());
        }
    }
}

/// The combined result of every checker that ran on a history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when nothing but informational findings (`unseen`,
    /// `retry-duplicate`; see [`crate::catalog`]) occurred.
    pub valid: bool,
    /// Names of the checkers that ran (`"queue"`, `"split-brain"`).
    pub checkers: Vec<String>,
    /// Counters (`sent`, `acknowledged`, ..., `observations`).
    pub counts: BTreeMap<String, u64>,
    /// Every anomaly name of every checker that ran, zero counts included.
    pub anomalies: BTreeMap<String, Anomaly>,
}

impl Verdict {
    /// Adds one checker's anomalies and counts, and recomputes `valid`.
    pub fn merge(
        &mut self,
        checker: &str,
        anomalies: BTreeMap<String, Anomaly>,
        counts: BTreeMap<String, u64>,
    ) {
        self.checkers.push(checker.to_string());
        self.anomalies.extend(anomalies);
        self.counts.extend(counts);
        self.valid = self
            .anomalies
            .iter()
            .all(|(name, a)| a.count == 0 || !crate::catalog::is_anomaly(name));
    }

    /// Count of one anomaly (0 when absent).
    pub fn count(&self, name: &str) -> u64 {
        self.anomalies.get(name).map_or(0, |a| a.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn informational_alone_is_valid_anything_else_is_not() {
        let mut v = Verdict::default();
        let mut a = BTreeMap::new();
        a.insert(
            UNSEEN.to_string(),
            Anomaly {
                count: 3,
                examples: vec![],
            },
        );
        a.insert("duplicate".to_string(), Anomaly::default());
        let mut retried = Anomaly::default();
        retried.add(1, || Value::Null);
        a.insert("retry-duplicate".to_string(), retried);
        v.merge("queue", a, BTreeMap::new());
        assert!(v.valid);
        let mut b = BTreeMap::new();
        let mut dup = Anomaly::default();
        dup.add(0, || Value::Null);
        b.insert("split-brain".to_string(), dup);
        v.merge("split-brain", b, BTreeMap::new());
        assert!(!v.valid);
        assert_eq!(v.count("split-brain"), 1);
        assert!(v.anomalies["split-brain"].examples.is_empty());
    }
}
