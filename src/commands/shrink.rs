//! `splitbrain shrink RUN_DIR`: the smallest schedule that still fails the
//! way a stored run failed (see `splitbrain_runner::shrink`).

use crate::exit::Exit;
use anyhow::Context;
use splitbrain_runner::shrink::real::{self, ShrinkOptions};
use splitbrain_runner::store;
use std::path::PathBuf;
use std::time::Duration;

/// Shrink a failing run: delta debugging over its recorded schedule (drop
/// faults, shorten holds and quiet periods, shorten the load, move faults
/// earlier). Each candidate runs on a fresh cluster with the run's config
/// and seed, its faults pinned to the targets they hit, up to --tries times;
/// it is kept when any try finds every anomaly kind the run found. Stops
/// within --budget. Writes the smallest failing test (minimal.toml, to run
/// with `splitbrain run`) and the summary (shrink.json: original vs
/// minimal: faults, fault time, load time; runs spent) into the minimal
/// run's directory, and links the two runs both ways (links.json, the
/// reports, `serve`).
///
/// Exits 0 when a smaller failing test was found, 1 when none was, 2 on error.
#[derive(Debug, clap::Args)]
pub struct ShrinkArgs {
    /// The failing run's directory (store/<test>/<timestamp>).
    pub run_dir: PathBuf,
    /// Runs per candidate at most (anomalies are probabilistic).
    #[arg(long, default_value_t = 2)]
    pub tries: usize,
    /// Wall time for the whole shrink: 90s, 30m, 1h, 1h30m or seconds.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub budget: Duration,
    /// Store directory (candidate runs go in as <test>-shrink).
    #[arg(long, default_value = store::DEFAULT_STORE)]
    pub store: PathBuf,
}

/// `90s`, `30m`, `1h`, `1h30m`, `2h5m10s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("duration `{s}`: use e.g. 90s, 30m, 1h, 1h30m or seconds");
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Runs the command.
pub fn run(args: ShrinkArgs) -> anyhow::Result<Exit> {
    let interrupt = super::run::interrupt_handler()?;
    let options = ShrinkOptions {
        tries: args.tries.max(1),
        budget: args.budget,
    };
    let mut say = |line: &str| eprintln!("[shrink] {line}");
    let outcome = real::shrink_run(&args.run_dir, &args.store, &options, interrupt, &mut say)
        .with_context(|| format!("cannot shrink {}", args.run_dir.display()))?;
    println!(
        "original: {}\nminimal:  {}\nruns: {}, wall time: {} s{}",
        outcome.shrunk.original.describe(),
        outcome.shrunk.minimal.describe(),
        outcome.runs,
        outcome.wall.as_secs(),
        if outcome.shrunk.out_of_budget {
            " (stopped by the budget)"
        } else {
            ""
        }
    );
    println!("{}", outcome.minimal_dir.join(real::MINIMAL_FILE).display());
    Ok(if outcome.shrunk.minimal != outcome.shrunk.original {
        Exit::Success
    } else {
        Exit::Failed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "1x", "m", "1h30", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
