//! How fast one history's lines parse into operations, by three parsers:
//! `serde` (serde_json with the typed visitors, what the reader did before
//! the fast scanner), `scanner` (what `Op::parse` does now: the scanner for
//! the writers' layout, serde for other lines) and `sonic` (sonic-rs
//! driving the same typed visitors, serde for the lines it cannot read),
//! against `ignored` (serde_json's syntax-only parse, the yardstick of
//! bench/check.sh). The file is read into memory first. Prints seconds per
//! mode. Used by bench/check.sh to choose the parser by measurement.
//!
//! Usage: op_parse FILE [serde|scanner|sonic|ignored]...

use splitbrain_core::history::Op;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: op_parse FILE MODE...")?;
    let text = std::fs::read_to_string(&path)?;
    for mode in args {
        let start = Instant::now();
        let mut n = 0u64;
        for line in text.lines() {
            match mode.as_str() {
                "serde" => {
                    std::hint::black_box(Op::parse_with_serde(line)?);
                }
                "scanner" => {
                    std::hint::black_box(Op::parse(line)?);
                }
                "sonic" => {
                    // sonic-rs cannot give serde_json's RawValue (other
                    // `f`s' values): those lines fall back, as they would
                    // in a real integration.
                    let op = match sonic_rs::from_str::<Op>(line) {
                        Ok(op) => op,
                        Err(_) => Op::parse_with_serde(line)?,
                    };
                    std::hint::black_box(op);
                }
                "ignored" => {
                    std::hint::black_box(serde_json::from_str::<serde::de::IgnoredAny>(line)?);
                }
                other => return Err(format!("unknown mode {other}").into()),
            }
            n += 1;
        }
        println!(
            "{mode}: {n} lines in {:.3} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
