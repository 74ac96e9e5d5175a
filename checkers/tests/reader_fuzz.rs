//! The fuzz target's property in the normal test suite: whatever bytes a
//! history holds, reading it and checking what was read never panics.
//! Inputs are mutations of real generated histories (so most lines get deep
//! into the checkers) and arbitrary bytes.

use proptest::prelude::*;
use splitbrain_checkers::synth::{Synth, SynthOptions};
use splitbrain_checkers::{CheckOptions, HistoryChecker};
use splitbrain_core::history::HistoryReader;

fn read_and_check(data: &[u8]) {
    let mut reader = HistoryReader::new(data, "fuzz.jsonl");
    let mut checker = HistoryChecker::new(&CheckOptions::default());
    while let Some(op) = reader.next_op() {
        match op {
            Ok(op) => {
                if let Err(e) = checker.observe(&op) {
                    // Bad input must name its line.
                    assert!(e.to_string().starts_with("line "), "{e}");
                    break;
                }
            }
            Err(e) => {
                // Errors must name the file and a line.
                assert!(e.to_string().starts_with("fuzz.jsonl"), "{e}");
                break;
            }
        }
    }
    let _ = reader.finish();
    let _ = checker.finish();
}

fn sample_history() -> Vec<u8> {
    let mut s = Synth::new(SynthOptions {
        ops: 400,
        seed: 11,
        observe_every: 50,
        ..Default::default()
    })
    .unwrap();
    let mut out = Vec::new();
    while s.next_chunk(&mut out) {}
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_and_check(&data);
    }

    #[test]
    fn mutated_histories(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                         cut in any::<prop::sample::Index>()) {
        let mut data = sample_history();
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        let end = cut.index(data.len() + 1);
        read_and_check(&data[..end]);
    }

    #[test]
    fn swapped_and_dropped_lines(swaps in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4),
                                 drop in proptest::option::of(any::<prop::sample::Index>())) {
        let text = sample_history();
        let mut lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        for (a, b) in swaps {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
        }
        if let Some(d) = drop {
            let d = d.index(lines.len());
            lines.remove(d);
        }
        read_and_check(&lines.concat());
    }
}
