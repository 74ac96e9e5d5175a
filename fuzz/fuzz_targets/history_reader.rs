//! Feeds arbitrary bytes to the history reader and every op it accepts to the
//! checkers: nothing may panic, whatever the input.
//! Run: `cd fuzz && cargo +nightly fuzz run history_reader`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splitbrain_checkers::{CheckOptions, HistoryChecker};
use splitbrain_core::history::HistoryReader;

fuzz_target!(|data: &[u8]| {
    let mut reader = HistoryReader::new(data, "fuzz.jsonl");
    let mut checker = HistoryChecker::new(&CheckOptions::default());
    while let Some(op) = reader.next_op() {
        match op {
            Ok(op) => {
                if checker.observe(&op).is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = reader.finish();
    let _ = checker.finish();
});
