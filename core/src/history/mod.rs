//! The history: what a test run did, as JSON Lines, one operation per line.
//!
//! The format is a public interface, described in `docs/history.md`. This
//! module holds its types ([`Op`] and the typed values of the documented
//! `f`s), a streaming [`HistoryReader`] that validates every line as it goes,
//! and the [`HistoryWriter`] that every task of a run records through.

mod fast;
mod op;
mod reader;
mod writer;

pub use op::{
    LogRecords, MessageValue, Op, OpType, OpValue, PollValue, Process, ProcessRef, Records,
};
pub use reader::{HistoryReader, ReadWarning};
pub use writer::{ClientRecorder, HistoryWriter, PollRecords};

use std::path::PathBuf;

/// What can go wrong reading or writing a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be opened, read or written.
    #[error("{path}: {cause} (check the path and its permissions)")]
    Io {
        /// The history file.
        path: PathBuf,
        /// The underlying error (already part of the message).
        cause: std::io::Error,
    },
    /// A line is not a valid operation, or breaks the format's rules.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// The history file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was wrong, in words.
        reason: String,
    },
}
