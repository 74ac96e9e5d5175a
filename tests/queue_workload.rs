//! The queue workload on a real 3 ZooKeeper + 3 Kafka cluster in network
//! namespaces (issue 4's must-show tests). Needs root, sshd, java and the
//! artifact cache (`environments/artifacts/fetch`).

use splitbrain_checkers::{CheckOptions, HistoryChecker, Verdict};
use splitbrain_core::history::{HistoryReader, HistoryWriter};
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterGuard, ClusterLayout};
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_environments::probes::observe;
use splitbrain_workloads::backoff::Backoff;
use splitbrain_workloads::consumer::ConsumerMode;
use splitbrain_workloads::effects::{CommitOrder, EffectsMode};
use splitbrain_workloads::observer::{Observer, ObserverConfig};
use splitbrain_workloads::queue::{self, CrashSchedule, QueueOptions};
use splitbrain_workloads::stop::StopLevel;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);
const TOPIC: &str = "queue";

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

/// Runs the built `splitbrain check` on the history: exit code and results.json.
fn check_binary(path: &Path, dir: &Path) -> (i32, serde_json::Value) {
    let json = dir.join("results.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .arg("check")
        .arg(path)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    let results = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (out.status.code().unwrap_or(-1), results)
}

fn up(env: &TestEnv) -> ClusterGuard {
    let control = env.control();
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 3, Artifacts::locate().unwrap()).unwrap();
    let guard = ClusterGuard::new(control.clone(), layout);
    let t = Instant::now();
    cluster::up(&control, guard.layout(), WAIT).unwrap();
    cluster::create_topic(guard.layout(), TOPIC, 3, 3, WAIT).unwrap();
    eprintln!("cluster and topic up in {:?}", t.elapsed());
    guard
}

#[test]
fn queue_workload_without_faults_is_valid() {
    let env = TestEnv::up("wl-clean", 6);
    let guard = up(&env);
    let layout = guard.layout().clone();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let writer = HistoryWriter::create(&history).unwrap();

    // The observer samples every server's view throughout.
    let observed = layout.clone();
    let observer = Observer::start(
        writer.clone(),
        ObserverConfig {
            interval: Duration::from_millis(500),
            ..ObserverConfig::default()
        },
        move || observe::observe(&observed),
    )
    .unwrap();

    let mut opts = QueueOptions::new(layout.bootstrap_servers(), dir.path().join("state"));
    opts.consumer_mode = ConsumerMode::Group;
    opts.load_duration = Duration::from_secs(20);
    opts.senders = 64;
    opts.rate = 500.0;
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {}).unwrap();
    let observer = observer.stop();
    eprintln!("{report:#?}\n{observer:?}");
    assert!(observer.error.is_none(), "{observer:?}");
    assert!(observer.samples > 10, "{observer:?}");
    assert!(report.drain.complete, "{:?}", report.drain);
    assert!(report.final_read.complete, "{:?}", report.final_read);
    // 500/s for 20 s is the target; a loaded machine gets less.
    assert!(report.sends.ok > 2_000, "{:?}", report.sends);
    assert_eq!(report.dlq_entries, 0);

    // The client settings are stated in the history, before any operation.
    let text = std::fs::read_to_string(&history).unwrap();
    let config: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|op| op["process"] == "workload" && op["f"] == "config")
        .expect("a config event");
    let props = &config["value"]["producer-properties"];
    assert!(props
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(["enable.idempotence", "true"])));
    assert!(props
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(["acks", "all"])));
    let phases: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|op| op["process"] == "workload" && op["f"] == "phase")
        .map(|op| op["value"]["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phases,
        ["load", "heal", "drain", "replay", "final-read", "done"]
    );

    let verdict = check(&history);
    eprintln!(
        "counts {:?}\nanomalies {:?}",
        verdict.counts,
        verdict
            .anomalies
            .iter()
            .filter(|(_, a)| a.count > 0)
            .collect::<Vec<_>>()
    );
    assert!(verdict.valid);
    for name in [
        "lost-write",
        "unseen",
        "duplicate",
        "effect-duplicate",
        "dlq-lost",
    ] {
        assert_eq!(
            verdict.count(name),
            0,
            "{name}: {:?}",
            verdict.anomalies[name]
        );
    }
    assert_eq!(verdict.counts["acknowledged"], verdict.counts["read"]);
    assert_eq!(verdict.counts["acknowledged"], report.sends.ok);
    assert!(verdict.checkers.iter().any(|c| c == "split-brain"));

    let (code, results) = check_binary(&history, dir.path());
    assert_eq!(code, 0, "{results}");
    assert_eq!(results["valid"], true);
    for name in ["lost-write", "duplicate", "effect-duplicate"] {
        assert_eq!(results["anomalies"][name]["count"], 0, "{name}");
    }
    assert_eq!(results["counts"]["acknowledged"], results["counts"]["read"]);
    drop(guard);
}

#[test]
fn queue_workload_with_brokers_paused_fills_and_replays_the_dlq() {
    let env = TestEnv::up("wl-pause", 6);
    let guard = up(&env);
    let layout = guard.layout().clone();
    let control = env.control();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let writer = HistoryWriter::create(&history).unwrap();

    let mut opts = QueueOptions::new(layout.bootstrap_servers(), dir.path().join("state"));
    opts.consumer_mode = ConsumerMode::Assign;
    opts.load_duration = Duration::from_secs(15);
    opts.senders = 64;
    opts.rate = 300.0;
    opts.producer.message_timeout_ms = 3000;
    opts.producer.request_timeout_ms = 2000;
    opts.backoff = Backoff {
        max_attempts: 3,
        initial: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        max_total: Duration::from_secs(10),
    };

    // Every Kafka process paused (SIGSTOP) from 4 s into the load until the
    // heal; the cluster guard kills them on any failure path.
    let pauser = {
        let (control, layout) = (control.clone(), layout.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(4));
            for b in &layout.kafka {
                b.service().pause(&control, &b.node.name).unwrap();
            }
            Instant::now()
        })
    };
    let heal = || {
        let paused_at = pauser.join().unwrap();
        for b in &layout.kafka {
            b.service().resume(&control, &b.node.name).unwrap();
        }
        eprintln!("brokers paused for {:?}", paused_at.elapsed());
        cluster::wait_for_leaders(&layout, TOPIC, 3, WAIT).unwrap();
    };
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), heal).unwrap();
    eprintln!("{report:#?}");
    assert!(
        report.sends.fail + report.sends.info > 0,
        "{:?}",
        report.sends
    );
    assert!(report.dlq_entries > 0);
    assert_eq!(report.dlq_entries as u64, report.sends.exhausted);
    assert_eq!(report.replays.messages, report.dlq_entries as u64);
    assert!(report.final_read.complete, "{:?}", report.final_read);

    let verdict = check(&history);
    eprintln!(
        "counts {:?}\nanomalies {:?}",
        verdict.counts,
        verdict
            .anomalies
            .iter()
            .filter(|(_, a)| a.count > 0)
            .collect::<Vec<_>>()
    );
    eprintln!(
        "duplicate {}, retry-duplicate {} (DLQ entries {}, unknown {}, info-sends {}, resent {})",
        verdict.count("duplicate"),
        verdict.count("retry-duplicate"),
        report.dlq_entries,
        verdict.counts["unknown"],
        verdict.counts["info-sends"],
        verdict.counts["resent"]
    );
    assert!(verdict.counts["dlq"] > 0);
    assert_eq!(
        verdict.count("dlq-lost"),
        0,
        "{:?}",
        verdict.anomalies["dlq-lost"]
    );
    assert_eq!(verdict.count("effect-duplicate"), 0);
    assert_eq!(verdict.count("lost-write"), 0);

    let (code, results) = check_binary(&history, dir.path());
    assert_eq!(results["anomalies"]["dlq-lost"]["count"], 0);
    assert_eq!(results["anomalies"]["effect-duplicate"]["count"], 0);
    assert_eq!(code, if verdict.valid { 0 } else { 1 });
    drop(guard);
}

/// The events of process "workload" with this `f`, as (time ns, value).
fn workload_events(history: &Path, f: &str) -> Vec<(u64, serde_json::Value)> {
    std::fs::read_to_string(history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|op| op["process"] == "workload" && op["f"] == f)
        .map(|op| (op["time"].as_u64().unwrap(), op["value"].clone()))
        .collect()
}

#[test]
fn queue_workload_stops_at_once_on_external_stop() {
    let env = TestEnv::up("wl-stop", 6);
    let guard = up(&env);
    let layout = guard.layout().clone();
    let control = env.control();
    let dir = tempfile::tempdir().unwrap();

    // Run A: stop-load 5 s into a 120 s load. The load ends at once, then
    // drain, replay and final read run as usual and the history is valid.
    let history = dir.path().join("a.jsonl");
    let writer = HistoryWriter::create(&history).unwrap();
    let mut opts = QueueOptions::new(layout.bootstrap_servers(), dir.path().join("state-a"));
    opts.consumer_mode = ConsumerMode::Group;
    opts.load_duration = Duration::from_secs(120);
    opts.senders = 64;
    opts.rate = 300.0;
    let stop = opts.stop.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        stop.escalate()
    });
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {}).unwrap();
    eprintln!("{report:#?}\n{}", report.delivery);
    assert_eq!(stopper.join().unwrap(), StopLevel::Load);
    assert_eq!(report.stopped, StopLevel::Load);
    assert!(
        report.load_elapsed < Duration::from_secs(12),
        "{:?}",
        report.load_elapsed
    );
    assert!(report.drain.complete && !report.drain.stopped);
    assert!(report.final_read.complete, "{:?}", report.final_read);
    assert_eq!(report.delivery.sends_ok, report.sends.ok);
    assert!(report.delivery.messages > 500, "{:?}", report.delivery);
    if report.delivery.sends_fail + report.delivery.sends_info == 0 {
        assert!(!report.delivery.dlq_exercised);
        assert!(report
            .delivery
            .to_string()
            .contains("DLQ not exercised in this run"));
    }
    let stops = workload_events(&history, "stop");
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].1["level"], "load");
    let heal = workload_events(&history, "phase")
        .into_iter()
        .find(|(_, v)| v["phase"] == "heal")
        .unwrap();
    // The stop is in the history before what it causes (the heal phase).
    let after = heal.0.checked_sub(stops[0].0);
    assert!(
        after.is_some_and(|ns| ns < 8_000_000_000),
        "heal at {} ns, the stop at {} ns: heal must follow within 8 s",
        heal.0,
        stops[0].0
    );
    let verdict = check(&history);
    assert!(verdict.valid, "{:?}", verdict.anomalies);
    assert_eq!(verdict.counts["acknowledged"], report.sends.ok);

    // Run B: brokers paused 3 s in, so sends hang in flight; stop-load at
    // 5 s waits for them, stop-now at 6 s abandons them (`info`, DLQ'd) and
    // cuts the closing phases; the heal hook still runs.
    cluster::create_topic(&layout, "queue-b", 3, 3, WAIT).unwrap();
    let history = dir.path().join("b.jsonl");
    let writer = HistoryWriter::create(&history).unwrap();
    let mut opts = QueueOptions::new(layout.bootstrap_servers(), dir.path().join("state-b"));
    opts.topic = "queue-b".into();
    opts.consumer_mode = ConsumerMode::Assign;
    opts.load_duration = Duration::from_secs(120);
    opts.senders = 64;
    opts.rate = 300.0;
    opts.producer.message_timeout_ms = 20_000;
    opts.producer.request_timeout_ms = 10_000;
    let stop = opts.stop.clone();
    let pauser = {
        let (control, layout) = (control.clone(), layout.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            for b in &layout.kafka {
                b.service().pause(&control, &b.node.name).unwrap();
            }
            std::thread::sleep(Duration::from_secs(2));
            assert_eq!(stop.escalate(), StopLevel::Load);
            std::thread::sleep(Duration::from_secs(1));
            assert_eq!(stop.escalate(), StopLevel::Now);
        })
    };
    let heal = || {
        pauser.join().unwrap();
        for b in &layout.kafka {
            b.service().resume(&control, &b.node.name).unwrap();
        }
    };
    let started = Instant::now();
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), heal).unwrap();
    eprintln!(
        "{report:#?}\n{}\nrun B took {:?}",
        report.delivery,
        started.elapsed()
    );
    assert_eq!(report.stopped, StopLevel::Now);
    // Without stop-now the sends in flight would hang for 20 s + 5 s.
    assert!(
        report.load_elapsed < Duration::from_secs(12),
        "{:?}",
        report.load_elapsed
    );
    assert!(report.sends.info > 0, "{:?}", report.sends);
    assert!(report.sends.cut_short > 0, "{:?}", report.sends);
    assert_eq!(report.dlq_entries as u64, report.sends.exhausted);
    assert!(report.delivery.dlq_exercised);
    assert_eq!(report.replays.messages, 0, "replay skipped");
    let levels: Vec<_> = workload_events(&history, "stop")
        .into_iter()
        .map(|(_, v)| v["level"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(levels, ["load", "now"]);
    // Every invoke has its completion (the reader warns otherwise).
    let verdict = check(&history);
    assert_eq!(verdict.counts["dlq"], report.dlq_entries as u64);
    drop(guard);
}

/// One run of the queue workload with consumers crashing every 3 s during
/// a 24 s load, effects applied as `mode` says; returns the verdict, the
/// report and the history's `effects` event.
fn run_with_consumer_crashes(
    env_name: &str,
    mode: EffectsMode,
) -> (Verdict, queue::QueueReport, serde_json::Value) {
    let env = TestEnv::up(env_name, 6);
    let guard = up(&env);
    let layout = guard.layout().clone();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let writer = HistoryWriter::create(&history).unwrap();
    let mut opts = QueueOptions::new(layout.bootstrap_servers(), dir.path().join("state"));
    opts.consumer_mode = ConsumerMode::Group;
    opts.consumers = 2;
    opts.load_duration = Duration::from_secs(24);
    opts.rate = 300.0;
    opts.effects = mode;
    opts.consumer_crashes = Some(CrashSchedule {
        every: Duration::from_secs(3),
        seed: 12,
    });
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {}).unwrap();
    eprintln!("{mode:?}\n{report:#?}");
    let crashes: u64 = report.consumers.iter().map(|c| c.crashes).sum();
    assert!(crashes >= 3, "consumers crashed {crashes} times");
    assert_eq!(
        crashes,
        workload_events_of(&history, "nemesis", "crash").len() as u64
    );
    assert!(report.final_read.complete, "{:?}", report.final_read);
    let effects = workload_events_of(&history, "effects", "effects");
    assert_eq!(effects.len(), 1, "one effects event");
    let verdict = check(&history);
    eprintln!(
        "counts {:?}\nfound {:?}",
        verdict.counts,
        verdict
            .anomalies
            .iter()
            .filter(|(_, a)| a.count > 0)
            .collect::<Vec<_>>()
    );
    assert_eq!(verdict.counts["effects-recorded"], 1);
    // Kafka itself did nothing wrong: only the effects may differ.
    for name in ["lost-write", "duplicate", "dlq-lost", "phantom", "G1a"] {
        assert_eq!(
            verdict.count(name),
            0,
            "{name}: {:?}",
            verdict.anomalies[name]
        );
    }
    drop(guard);
    (verdict, report, effects[0].1.clone())
}

/// The events of `process` with this `f`, as (time ns, value).
fn workload_events_of(history: &Path, process: &str, f: &str) -> Vec<(u64, serde_json::Value)> {
    std::fs::read_to_string(history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|op| op["process"] == process && op["f"] == f)
        .map(|op| (op["time"].as_u64().unwrap(), op["value"].clone()))
        .collect()
}

#[test]
fn crashing_idempotent_consumers_apply_every_effect_once() {
    let (verdict, report, effects) = run_with_consumer_crashes("wl-idem", EffectsMode::default());
    assert_eq!(
        verdict.count("effect-duplicate"),
        0,
        "{:?}",
        verdict.anomalies["effect-duplicate"]
    );
    assert_eq!(
        verdict.count("effect-lost"),
        0,
        "{:?}",
        verdict.anomalies["effect-lost"]
    );
    // Every acknowledged message's effect is in the store, once.
    assert_eq!(
        verdict.counts["applied-messages"],
        verdict.counts["acknowledged"]
    );
    assert_eq!(
        verdict.counts["applications"],
        verdict.counts["applied-messages"]
    );
    assert_eq!(effects["more"], serde_json::json!([]));
    // Redeliveries happened (the crashes hit before the commit): the
    // consumers read more records than they applied.
    let records: u64 = report.consumers.iter().map(|c| c.records).sum();
    let applied: u64 = report.consumers.iter().map(|c| c.applied).sum();
    assert!(records > applied, "records {records}, applied {applied}");
    assert!(verdict.valid, "{:?}", verdict.anomalies);
}

#[test]
fn crashing_consumers_without_dedup_apply_effects_twice() {
    let (verdict, _, effects) = run_with_consumer_crashes(
        "wl-nodedup",
        EffectsMode {
            dedup: false,
            commit: CommitOrder::AfterApply,
        },
    );
    assert!(
        verdict.count("effect-duplicate") > 0,
        "{:?}",
        verdict.counts
    );
    assert_eq!(
        verdict.count("effect-lost"),
        0,
        "{:?}",
        verdict.anomalies["effect-lost"]
    );
    assert!(!effects["more"].as_array().unwrap().is_empty());
    assert!(!verdict.valid);
}

#[test]
fn crashing_consumers_that_commit_before_applying_lose_effects() {
    let (verdict, _, _) = run_with_consumer_crashes(
        "wl-before",
        EffectsMode {
            dedup: true,
            commit: CommitOrder::BeforeApply,
        },
    );
    assert!(verdict.count("effect-lost") > 0, "{:?}", verdict.counts);
    assert_eq!(
        verdict.count("effect-duplicate"),
        0,
        "{:?}",
        verdict.anomalies["effect-duplicate"]
    );
    assert!(!verdict.valid);
}
