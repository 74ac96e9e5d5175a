//! The benchmark's yardstick: a bare line-by-line `serde_json` parse of a
//! history, nothing else. Prints the seconds it took.
//!
//! `parse_baseline FILE value` parses each line into a `serde_json::Value`
//! (what a naive checker would do); `parse_baseline FILE ignored` only
//! validates each line's syntax (`IgnoredAny`: the fastest possible parse).

use std::io::BufRead;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: parse_baseline FILE value|ignored")?;
    let mode = args.next().unwrap_or_else(|| "value".into());
    let start = Instant::now();
    let mut src = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let mut line = Vec::with_capacity(4096);
    let mut lines = 0u64;
    loop {
        line.clear();
        if src.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        match mode.as_str() {
            "value" => {
                let v: serde_json::Value = serde_json::from_slice(&line)?;
                std::hint::black_box(v);
            }
            "ignored" => {
                let v: serde::de::IgnoredAny = serde_json::from_slice(&line)?;
                std::hint::black_box(v);
            }
            other => return Err(format!("unknown mode {other}: use value or ignored").into()),
        }
        lines += 1;
    }
    println!("{:.3} {lines}", start.elapsed().as_secs_f64());
    Ok(())
}
