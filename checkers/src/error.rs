//! Histories a checker refuses: input that breaks an assumption every
//! checker relies on, where any verdict would be wrong.

/// Why a history cannot be checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// One `msg` sent (or stored in the DLQ) under two different logs, in a
    /// history whose msgs are unique across the test (splitbrain's own
    /// format: no `"msg-scope":"log"` in its `config` event). Such a
    /// history breaks its own promise, so reads of the msg cannot be told
    /// apart from `phantom`s.
    #[error(
        "line {line} (operation {index}): msg {msg} is given log {key:?}, but operation \
         {earlier_op} already gave it log {earlier_key:?}; every msg must belong to one log, \
         so number the messages of all logs from one counter"
    )]
    MessageInTwoLogs {
        /// 1-based line of the offending operation (the history format
        /// requires `index` to be its line number minus one).
        line: u64,
        /// Its `index`.
        index: u64,
        /// The message.
        msg: u64,
        /// The log this operation names.
        key: String,
        /// The log an earlier operation named.
        earlier_key: String,
        /// `index` of that earlier operation (its latest send or replay, or
        /// the DLQ entry).
        earlier_op: u64,
    },
    /// A `txn` operation whose value is not a list of micro-operations
    /// (docs/history.md, `txn`).
    #[error(
        "line {line} (operation {index}): the txn value is not a list of micro-operations \
         ({reason}); write [[\"send\", key, msg], [\"poll\", {{key: [[offset, msg], ...]}}], ...] \
         as docs/history.md describes"
    )]
    MalformedTxn {
        /// 1-based line of the operation.
        line: u64,
        /// Its `index`.
        index: u64,
        /// What the parser said.
        reason: String,
    },
}
