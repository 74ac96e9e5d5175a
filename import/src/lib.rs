//! Converters from what other tools recorded to splitbrain histories
//! (docs/history.md), so that `splitbrain check` judges them with the same
//! checkers, and `splitbrain import` writes them out for `report` and
//! `explain`.
//!
//! - [`jepsen`]: the `history.edn` of Jepsen's Kafka test (`jepsen.tests.kafka`).
//! - [`kafka_verifiable`]: the JSON event streams of Kafka's own
//!   `VerifiableProducer` and `VerifiableConsumer` (Kafka's system tests).
//!
//! Converters are pure: they take the text of each input (the caller reads
//! the files) and return the history's text, [`Converted`]. Their output
//! starts with a `config` event of process `"import"` that says no DLQ
//! was in use and that messages are numbered per log (`"msg-scope":"log"`).
#![warn(missing_docs)]

pub mod jepsen;
pub mod kafka_verifiable;
mod writer;

/// One input: its name (for error messages, usually the file's path) and
/// its text.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// What to call it in errors.
    pub name: &'a str,
    /// Its whole text.
    pub text: &'a str,
}

/// A converted history.
#[derive(Clone, Debug, Default)]
pub struct Converted {
    /// The history: JSON Lines in splitbrain's format.
    pub history: Vec<u8>,
    /// Its lines.
    pub operations: u64,
    /// What was accepted but is worth saying (e.g. a truncated last line).
    pub warnings: Vec<String>,
}

/// Why an input cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not what the format says.
    #[error("{source_name}:{line}: {reason}")]
    Malformed {
        /// The input's name.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// What was wrong, and what to do.
        reason: String,
    },
    /// The inputs as a whole cannot be judged (e.g. records without data).
    #[error("{0}")]
    Unusable(String),
}
