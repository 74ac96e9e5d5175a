//! The one list of anomaly names: which checker reports each, whether it
//! makes a history invalid, and what it means in one line. Everything that
//! needs anomaly names (validation of `expect`/`tolerate`, reports, the
//! synthetic generator) reads them from here; the full definitions are in
//! `docs/results.md`.

/// Name of the queue checker, as listed in [`crate::Verdict::checkers`].
pub const QUEUE: &str = "queue";
/// Name of the effects checker, as listed in [`crate::Verdict::checkers`].
pub const EFFECTS: &str = "effects";
/// Name of the split-brain checker, as listed in [`crate::Verdict::checkers`].
pub const SPLIT_BRAIN: &str = "split-brain";
/// Name of the transaction checker, as listed in [`crate::Verdict::checkers`].
/// It also reports `G1a`, `lost-write`, `duplicate` and
/// `inconsistent-offsets` over transactional writes; those rows stay the
/// queue checker's, and the two checkers' counts are added.
pub const TXN: &str = "txn";

/// Whether a finding makes the history invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A violation: any occurrence makes the history invalid.
    Anomaly,
    /// Counted and shown with examples, but expected in a correct system
    /// (e.g. the workload's own re-sends): never makes the history invalid.
    Informational,
}

/// One entry of [`ANOMALIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnomalyInfo {
    /// The name used in results.json, `expect` and `tolerate`.
    pub name: &'static str,
    /// The checker that reports it ([`QUEUE`], [`EFFECTS`] or [`SPLIT_BRAIN`]).
    pub checker: &'static str,
    /// Whether it makes the history invalid.
    pub severity: Severity,
    /// What it means, in one line.
    pub description: &'static str,
}

const fn entry(
    name: &'static str,
    checker: &'static str,
    severity: Severity,
    description: &'static str,
) -> AnomalyInfo {
    AnomalyInfo {
        name,
        checker,
        severity,
        description,
    }
}

use Severity::{Anomaly, Informational};

/// Every anomaly any checker reports, in report order.
pub const ANOMALIES: &[AnomalyInfo] = &[
    entry(
        "lost-write",
        QUEUE,
        Anomaly,
        "an acknowledged message nobody read, although later positions of its log were read",
    ),
    entry(
        "unseen",
        QUEUE,
        Informational,
        "an acknowledged message never read, beyond what consumers read: not proof of loss",
    ),
    entry(
        "duplicate",
        QUEUE,
        Anomaly,
        "a message at more offsets than the workload made attempts that could have written it",
    ),
    entry(
        "retry-duplicate",
        QUEUE,
        Informational,
        "a message at several offsets, each explained by the workload's own re-sends or replay",
    ),
    entry(
        "inconsistent-offsets",
        QUEUE,
        Anomaly,
        "one offset of a log holding different messages in different reads",
    ),
    entry(
        "nonmonotonic-poll",
        QUEUE,
        Anomaly,
        "a consumer's consecutive reads of a log going backwards or repeating",
    ),
    entry(
        "poll-skip",
        QUEUE,
        Anomaly,
        "a consumer's consecutive reads of a log jumping over known messages",
    ),
    entry(
        "nonmonotonic-send",
        QUEUE,
        Anomaly,
        "a producer's consecutive acknowledged sends to a log with offsets going backwards",
    ),
    entry(
        "G1a",
        QUEUE,
        Anomaly,
        "aborted read: a message read although every attempt to send it failed",
    ),
    entry(
        "phantom",
        QUEUE,
        Anomaly,
        "a message read that was never sent, or read from a log it was not sent to",
    ),
    entry(
        "dlq-lost",
        QUEUE,
        Anomaly,
        "a message never acknowledged and never read: the DLQ did not bring it home",
    ),
    entry(
        "effect-duplicate",
        EFFECTS,
        Anomaly,
        "a message whose effect the consumers' store holds more than once",
    ),
    entry(
        "effect-lost",
        EFFECTS,
        Anomaly,
        "a message read (or acknowledged and read past) whose effect the store never got",
    ),
    entry(
        "split-brain",
        SPLIT_BRAIN,
        Anomaly,
        "two ZooKeeper leaders, each followed by a quorum of its own membership, in consecutive samples",
    ),
    entry(
        "multiple-controllers",
        SPLIT_BRAIN,
        Anomaly,
        "two brokers registered as controller in two quorum-backed ensembles, or in the same controller epoch",
    ),
    entry(
        "divergent-ensembles",
        SPLIT_BRAIN,
        Anomaly,
        "groups of ZooKeeper servers serving different data for the same path",
    ),
    entry(
        "G0",
        TXN,
        Informational,
        "write cycle: transactions ordered both ways by their sends' offsets (Kafka does not isolate sends)",
    ),
    entry(
        "G0-process",
        TXN,
        Informational,
        "a write cycle that needs one process's order of transactions to close",
    ),
    entry(
        "G0-realtime",
        TXN,
        Informational,
        "a write cycle that needs the real-time order of transactions to close",
    ),
    entry(
        "G1c",
        TXN,
        Anomaly,
        "circular information flow: transactions each read what the other wrote",
    ),
    entry(
        "G1c-process",
        TXN,
        Anomaly,
        "a read cycle that needs one process's order of transactions to close",
    ),
    entry(
        "G1c-realtime",
        TXN,
        Anomaly,
        "a read cycle that needs the real-time order of transactions to close",
    ),
    entry(
        "precommitted-read",
        TXN,
        Anomaly,
        "a transaction polled a message it sent itself, before it committed",
    ),
    entry(
        "int-poll-skip",
        TXN,
        Anomaly,
        "one transaction's consecutive polls of a log jumped over committed messages",
    ),
    entry(
        "int-nonmonotonic-poll",
        TXN,
        Anomaly,
        "one transaction's consecutive polls of a log went backwards or repeated",
    ),
    entry(
        "int-send-skip",
        TXN,
        Informational,
        "another transaction's message landed between two sends of one transaction to a log (normal in Kafka)",
    ),
    entry(
        "int-nonmonotonic-send",
        TXN,
        Anomaly,
        "one transaction's consecutive sends to a log got offsets going backwards",
    ),
    entry(
        "duplicate-leader-epoch",
        SPLIT_BRAIN,
        Anomaly,
        "two KRaft controllers leading the metadata quorum in the same leader epoch",
    ),
];

/// The entry of `name`, if it is a known anomaly.
pub fn lookup(name: &str) -> Option<&'static AnomalyInfo> {
    ANOMALIES.iter().find(|a| a.name == name)
}

/// Whether a nonzero count of `name` makes a history invalid. Unknown names
/// do: a checker reporting a name missing from [`ANOMALIES`] is a bug, and
/// the safe reading of it is "invalid".
pub fn is_anomaly(name: &str) -> bool {
    !matches!(lookup(name), Some(a) if a.severity == Severity::Informational)
}

/// The checker that reports `name`, if it is known.
pub fn checker_of(name: &str) -> Option<&'static str> {
    lookup(name).map(|a| a.checker)
}

/// Every known name, in report order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ANOMALIES.iter().map(|a| a.name)
}

/// The names one checker reports, in report order.
pub fn names_of(checker: &str) -> impl Iterator<Item = &'static str> + '_ {
    ANOMALIES
        .iter()
        .filter(move |a| a.checker == checker)
        .map(|a| a.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_described() {
        let names: BTreeSet<&str> = names().collect();
        assert_eq!(names.len(), ANOMALIES.len());
        for a in ANOMALIES {
            assert!(!a.description.is_empty(), "{}", a.name);
            assert!(
                [QUEUE, EFFECTS, SPLIT_BRAIN, TXN].contains(&a.checker),
                "{}",
                a.name
            );
        }
    }

    /// The split-brain checker keeps its own list of what it reports; this
    /// table must name exactly those, so a name added there fails here until
    /// it is added to the table.
    #[test]
    fn split_brain_rows_match_what_its_checker_reports() {
        let table: BTreeSet<&str> = names_of(SPLIT_BRAIN).collect();
        let reported: BTreeSet<&str> = crate::splitbrain::SPLIT_BRAIN_ANOMALIES
            .iter()
            .copied()
            .collect();
        assert_eq!(table, reported);
    }

    /// Likewise for the effects checker.
    #[test]
    fn effects_rows_match_what_its_checker_reports() {
        let table: BTreeSet<&str> = names_of(EFFECTS).collect();
        let reported: BTreeSet<&str> = crate::effects::EFFECT_ANOMALIES.iter().copied().collect();
        assert_eq!(table, reported);
    }

    /// Likewise for the transaction checker: its own rows, plus the queue
    /// rows it shares.
    #[test]
    fn txn_rows_match_what_its_checker_reports() {
        let table: BTreeSet<&str> = names_of(TXN)
            .chain(crate::txn::SHARED_WITH_QUEUE.iter().copied())
            .collect();
        let reported: BTreeSet<&str> = crate::txn::TXN_ANOMALIES.iter().copied().collect();
        assert_eq!(table, reported);
        for shared in crate::txn::SHARED_WITH_QUEUE {
            assert_eq!(checker_of(shared), Some(QUEUE), "{shared}");
        }
    }

    #[test]
    fn informational_names_do_not_invalidate_unknown_names_do() {
        assert!(is_anomaly("duplicate"));
        assert!(!is_anomaly("retry-duplicate"));
        assert!(!is_anomaly("unseen"));
        assert!(is_anomaly("no-such-anomaly"));
        assert_eq!(checker_of("split-brain"), Some(SPLIT_BRAIN));
        assert_eq!(checker_of("lost-write"), Some(QUEUE));
        assert_eq!(checker_of("no-such-anomaly"), None);
    }
}
