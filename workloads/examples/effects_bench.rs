//! How much the effect store costs a consumer: messages applied per second
//! through `EffectStore::apply` (SQLite, WAL, one connection per consumer,
//! one transaction per poll-sized batch, effect + dedup record per message)
//! against the same work without a database (a per-consumer in-memory dedup
//! set and effect list). Consumers run on their own threads and apply
//! disjoint messages, as a consumer group's members do. Run by
//! `bench/effects.sh`.
//!
//!   effects_bench [MESSAGES] [BATCH] [CONSUMERS] [ROUNDS]

use splitbrain_workloads::effects::{EffectStore, EFFECTS_FILE};
use std::collections::HashSet;
use std::time::Instant;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("numeric arguments"))
        .unwrap_or(default)
}

/// Consumer `c`'s messages, in poll-sized batches of `(partition, msg)`.
fn batches(messages: u64, consumers: u64, c: u64, batch: u64) -> Vec<Vec<(i32, u64)>> {
    let mine: Vec<(i32, u64)> = (0..messages)
        .filter(|m| m % consumers == c)
        .map(|m| ((m % 3) as i32, m))
        .collect();
    mine.chunks(batch as usize).map(<[_]>::to_vec).collect()
}

/// Messages per second applied by `consumers` threads running `work`.
fn rate(messages: u64, consumers: u64, work: impl Fn(u64) + Sync) -> f64 {
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..consumers {
            let work = &work;
            s.spawn(move || work(c));
        }
    });
    messages as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let messages = arg(1, 200_000);
    let batch = arg(2, 500).max(1);
    let consumers = arg(3, 2).max(1);
    let rounds = arg(4, 3).max(1);
    println!("{messages} messages, batches of {batch}, {consumers} consumers, {rounds} rounds");
    let (mut best_with, mut best_without) = (0f64, 0f64);
    for round in 1..=rounds {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join(EFFECTS_FILE);
        EffectStore::create(&path).expect("create the store");
        let with = rate(messages, consumers, |c| {
            let mut store = EffectStore::open(&path).expect("open the store");
            for b in batches(messages, consumers, c, batch) {
                let applied = store.apply(c, &b, true).expect("apply");
                assert_eq!(applied.len(), b.len());
            }
        });
        let without = rate(messages, consumers, |c| {
            let mut dedup = HashSet::new();
            let mut effects = Vec::new();
            let mut balance = [0u64; 3];
            for b in batches(messages, consumers, c, batch) {
                for (p, m) in b {
                    if dedup.insert(m) {
                        effects.push((m, p, c));
                        balance[p as usize] += m;
                    }
                }
            }
            std::hint::black_box((effects, balance));
        });
        println!(
            "round {round}: with SQLite {with:.0} msgs/s, without {without:.0} msgs/s, \
             ratio {:.4}",
            with / without
        );
        best_with = best_with.max(with);
        best_without = best_without.max(without);
    }
    println!(
        "best: with SQLite {best_with:.0} msgs/s, without {best_without:.0} msgs/s, ratio {:.4}; \
         the store adds {:.2} us per message per consumer thread",
        best_with / best_without,
        (1e6 / best_with - 1e6 / best_without) * consumers as f64
    );
}
