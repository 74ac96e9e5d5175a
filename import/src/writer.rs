//! Builds a history's lines in memory, then orders them by time.

use serde_json::Value;

/// One line-to-be, or two that must stay adjacent (an invoke and its
/// completion).
pub(crate) struct Entry {
    /// Nanoseconds since the start of the inputs.
    pub time: u64,
    /// Which input it came from and its position there: keeps each input's
    /// own order among equal times.
    pub order: (usize, u64),
    /// `(process, type, f, value)` per line, in order.
    pub lines: Vec<(Value, &'static str, &'static str, Value)>,
}

/// Sorts entries by time (stable: each input's order is kept, since its
/// times never decrease), numbers the lines and writes them.
pub(crate) fn write(mut head: Vec<Entry>, mut entries: Vec<Entry>) -> (Vec<u8>, u64) {
    entries.sort_by_key(|e| (e.time, e.order));
    head.extend(entries);
    let mut out = Vec::new();
    let mut index = 0u64;
    for e in head {
        for (process, op_type, f, value) in e.lines {
            // The documented field order (docs/history.md): `f` and `type`
            // before `value`, so the reader parses values in one pass.
            out.extend_from_slice(
                format!(
                    "{{\"index\":{index},\"time\":{},\"process\":{process},\"type\":\"{op_type}\",\"f\":\"{f}\",\"value\":{value}}}\n",
                    e.time
                )
                .as_bytes(),
            );
            index += 1;
        }
    }
    (out, index)
}
