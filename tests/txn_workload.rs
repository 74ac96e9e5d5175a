//! The transactional workload on a real 3 ZooKeeper + 3 Kafka cluster in
//! network namespaces (issue 15): with `read_committed` readers and no
//! faults the history is valid and holds committed and aborted
//! transactions; with `read_uncommitted` readers (the control) the readers
//! see messages of aborted transactions (G1a). Needs root, sshd, java and
//! the artifact cache.

use serde_json::Value;
use splitbrain_checkers::{CheckOptions, HistoryChecker, Verdict};
use splitbrain_core::history::{HistoryReader, HistoryWriter};
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterGuard, ClusterLayout};
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_workloads::txn::{self, TxnOptions, TxnReport};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

/// Runs the checkers in-process over the history.
fn check(path: &Path) -> Verdict {
    let mut reader = HistoryReader::open(path).unwrap();
    let mut checker = HistoryChecker::new(&CheckOptions::default());
    while let Some(op) = reader.next_op() {
        checker.observe(&op.unwrap()).unwrap();
    }
    let warnings = reader.finish();
    assert!(warnings.is_empty(), "{warnings:?}");
    checker.finish()
}

/// What a txn history says, read straight from its lines (independently of
/// the checker).
#[derive(Debug, Default)]
struct Seen {
    committed: BTreeSet<u64>,
    aborted: BTreeSet<u64>,
    unknown: u64,
    /// Per reading process, the messages it read.
    read_by: BTreeMap<u64, BTreeSet<u64>>,
    /// Processes that sent (producers); the others only polled.
    producers: BTreeSet<u64>,
    /// Transactions whose own poll returned records.
    ctp_polls_with_records: u64,
}

impl Seen {
    fn of(path: &Path) -> Seen {
        let mut seen = Seen::default();
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let op: Value = serde_json::from_str(line).unwrap();
            let (Some(process), "txn") = (op["process"].as_u64(), op["f"].as_str().unwrap()) else {
                continue;
            };
            let kind = op["type"].as_str().unwrap();
            let micro = op["value"].as_array().unwrap();
            let sends: Vec<u64> = micro
                .iter()
                .filter(|m| m[0] == "send")
                .map(|m| m[2].as_u64().unwrap_or_else(|| m[2][1].as_u64().unwrap()))
                .collect();
            if !sends.is_empty() {
                seen.producers.insert(process);
            }
            match kind {
                "ok" => seen.committed.extend(&sends),
                "fail" => seen.aborted.extend(&sends),
                "info" => seen.unknown += 1,
                _ => {}
            }
            if kind != "ok" {
                continue;
            }
            for m in micro.iter().filter(|m| m[0] == "poll") {
                let mut any = false;
                for pairs in m[1].as_object().unwrap().values() {
                    for pair in pairs.as_array().unwrap() {
                        any = true;
                        seen.read_by
                            .entry(process)
                            .or_default()
                            .insert(pair[1].as_u64().unwrap());
                    }
                }
                if any && !sends.is_empty() {
                    seen.ctp_polls_with_records += 1;
                }
            }
        }
        seen
    }

    /// Messages of aborted transactions that anyone read.
    fn aborted_reads(&self) -> BTreeSet<u64> {
        self.read_by
            .values()
            .flat_map(|r| r.intersection(&self.aborted).copied())
            .collect()
    }

    /// The reading-only processes (the readers).
    fn readers(&self) -> Vec<u64> {
        self.read_by
            .keys()
            .filter(|p| !self.producers.contains(p))
            .copied()
            .collect()
    }
}

fn run_txn(dir: &Path, name: &str, opts: &TxnOptions) -> (TxnReport, std::path::PathBuf) {
    let history = dir.join(format!("{name}.jsonl"));
    let writer = HistoryWriter::create(&history).unwrap();
    let t = Instant::now();
    let report = txn::run(opts, &writer, Arc::new(AtomicU64::new(0)), || {}).unwrap();
    eprintln!("{name}: {:?} in {:?}", report, t.elapsed());
    (report, history)
}

#[test]
fn txn_workload_read_committed_is_valid_and_read_uncommitted_reads_aborted_writes() {
    let env = TestEnv::up("wl-txn", 6);
    let control = env.control();
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 3, Artifacts::locate().unwrap()).unwrap();
    let guard = ClusterGuard::new(control.clone(), layout);
    let t = Instant::now();
    cluster::up(&control, guard.layout(), WAIT).unwrap();
    // Two topics: one per run, so each history starts from empty logs.
    cluster::create_topic(guard.layout(), "txn", 3, 3, WAIT).unwrap();
    cluster::create_topic(guard.layout(), "txnru", 3, 3, WAIT).unwrap();
    eprintln!("cluster and topics up in {:?}", t.elapsed());
    let bootstrap = guard.layout().bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();

    // 1. read_committed readers, consume-transform-produce on, no faults.
    let mut opts = TxnOptions::new(bootstrap.clone());
    opts.producers = 3;
    opts.consumers = 2;
    opts.rate = 30.0;
    opts.abort_fraction = 0.3;
    opts.consume_transform_produce = true;
    opts.load_duration = Duration::from_secs(12);
    opts.seed = 1;
    let (report, history) = run_txn(dir.path(), "committed", &opts);
    assert!(report.final_read.complete, "{:?}", report.final_read);
    let seen = Seen::of(&history);
    eprintln!(
        "read_committed: {} committed msgs, {} aborted msgs, {} unknown txns, readers {:?}, \
         {} txns with a poll that read",
        seen.committed.len(),
        seen.aborted.len(),
        seen.unknown,
        seen.readers(),
        seen.ctp_polls_with_records
    );
    assert!(report.stats.committed >= 20, "{:?}", report.stats);
    assert!(report.stats.aborted >= 5, "{:?}", report.stats);
    assert_eq!(report.stats.unknown, 0, "no faults: {:?}", report.stats);
    assert_eq!(seen.readers().len(), 2);
    // The isolation under test: no aborted write is read ...
    assert_eq!(seen.aborted_reads(), BTreeSet::new());
    // ... and every reader reads every committed write.
    for r in seen.readers() {
        let missing: Vec<u64> = seen
            .committed
            .difference(&seen.read_by[&r])
            .copied()
            .collect();
        assert!(missing.is_empty(), "reader {r} missed {missing:?}");
    }
    // Consume-transform-produce: transactions read what others committed.
    assert!(seen.ctp_polls_with_records > 0);
    let settings: Value = std::fs::read_to_string(&history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|op| op["f"] == "txn-settings")
        .expect("a txn-settings event");
    assert_eq!(settings["type"], "info");
    assert_eq!(settings["value"]["isolation-level"], "read_committed");
    assert_eq!(
        settings["value"]["transactional-ids"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let verdict = check(&history);
    eprintln!(
        "read_committed verdict: valid {} {:?}",
        verdict.valid, verdict.counts
    );
    assert!(verdict.valid, "{:?}", verdict.anomalies);
    // The checker sees the committed and the aborted transactions.
    assert!(
        verdict.checkers.iter().any(|c| c == "txn"),
        "{:?}",
        verdict.checkers
    );
    assert!(verdict.counts["txns-ok"] >= report.stats.committed);
    assert!(verdict.counts["txns-failed"] >= report.stats.aborted);
    for name in ["G1a", "G1c", "lost-write", "duplicate", "int-poll-skip"] {
        assert_eq!(
            verdict.count(name),
            0,
            "{name}: {:?}",
            verdict.anomalies[name]
        );
    }

    // 2. The control: read_uncommitted readers see aborted writes.
    let mut opts = TxnOptions::new(bootstrap);
    opts.topic = "txnru".into();
    opts.transactional_id_prefix = "splitbrain-txnru".into();
    opts.producers = 2;
    opts.consumers = 2;
    opts.rate = 30.0;
    opts.abort_fraction = 0.5;
    opts.isolation_level = "read_uncommitted".into();
    opts.load_duration = Duration::from_secs(8);
    opts.seed = 2;
    let (report, history) = run_txn(dir.path(), "uncommitted", &opts);
    assert!(report.final_read.complete, "{:?}", report.final_read);
    let seen = Seen::of(&history);
    let aborted_reads = seen.aborted_reads();
    eprintln!(
        "read_uncommitted: {} aborted msgs, {} of them read",
        seen.aborted.len(),
        aborted_reads.len()
    );
    assert!(report.stats.aborted >= 5, "{:?}", report.stats);
    assert!(
        !aborted_reads.is_empty(),
        "the control must read aborted writes"
    );
    let verdict = check(&history);
    eprintln!(
        "read_uncommitted verdict: valid {} G1a {} {:?}",
        verdict.valid,
        verdict.count("G1a"),
        verdict.counts
    );
    // The check that can fail: the checker finds the aborted reads.
    assert!(!verdict.valid);
    assert!(verdict.count("G1a") > 0, "{:?}", verdict.anomalies["G1a"]);
    drop(guard);
}
