//! Replay on real nodes: a seeded schedule of random partitions runs on
//! five netns nodes (iptables cuts, proved by TCP probes; no server needs
//! to run), its exact schedule is read back from the history, and carried
//! out again by a nemesis with another seed. The replay cuts the same links
//! at the same times (within a tolerance); the control, the same plan
//! without pins, draws other cuts. Needs root and sshd.

use serde_json::Value;
use splitbrain_core::history::HistoryWriter;
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::ClusterLayout;
use splitbrain_environments::db::cluster_control::EnvCluster;
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_nemeses::replay;
use splitbrain_nemeses::schedule::{self, Action, Interval, Schedule, ScheduleSpec};
use splitbrain_nemeses::{Fault, Nemesis, PartitionKind};
use std::sync::atomic::AtomicBool;

/// Most a replayed start may drift from the original's, relative to the
/// start of the schedule (this machine is shared and busy).
const TOLERANCE_MS: i64 = 1500;

/// `(ms after the schedule event, f, value)` of every nemesis event.
fn timed_events(text: &str) -> Vec<(i64, String, Value)> {
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["process"] == "nemesis")
        .collect();
    let t0 = lines
        .iter()
        .find(|v| v["f"] == "schedule")
        .map(|v| v["time"].as_i64().unwrap())
        .unwrap();
    lines
        .into_iter()
        .map(|v| {
            (
                (v["time"].as_i64().unwrap() - t0) / 1_000_000,
                v["f"].as_str().unwrap().to_string(),
                v["value"].clone(),
            )
        })
        .collect()
}

/// `(ms, kind, grudge)` of every partition start; the time is when its
/// rules went in (the event is recorded after the probes that prove them).
fn partitions(events: &[(i64, String, Value)]) -> Vec<(i64, Value, Value)> {
    events
        .iter()
        .filter(|(_, f, _)| f == "start-partition")
        .map(|(t, _, v)| {
            let probing = v["elapsed-ms"].as_i64().unwrap_or(0);
            (t - probing, v["kind"].clone(), v["grudge"].clone())
        })
        .collect()
}

fn run(db: &EnvCluster, env: &TestEnv, plan: &Schedule, seed: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let history = HistoryWriter::create(&path).unwrap();
    let mut nemesis = Nemesis::new(db, env.control(), Some(history.clone()), seed);
    let report =
        schedule::run(&mut nemesis, plan, Some(&history), &AtomicBool::new(false)).unwrap();
    assert!(report.is_clean(), "{report:?}");
    nemesis.remove_rules().unwrap();
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn a_replay_cuts_the_same_links_at_the_same_times() {
    let env = TestEnv::up("nemesis-replay", 5);
    // Servers are planned (the topology names their nodes) but not started.
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 2, Artifacts::locate().unwrap()).unwrap();
    let db = EnvCluster::new(env.control(), env.nodes().to_vec(), layout);
    let plan = Schedule::plan(&ScheduleSpec {
        seed: 3,
        faults: vec![
            Fault::Partition {
                kind: PartitionKind::RandomHalves,
            },
            Fault::Partition {
                kind: PartitionKind::IsolateOne,
            },
            Fault::Partition {
                kind: PartitionKind::MajoritiesRing,
            },
        ],
        quiet: Interval::Random {
            min_ms: 300,
            max_ms: 900,
        },
        fault: Interval::Random {
            min_ms: 1000,
            max_ms: 2000,
        },
        total_ms: 12_000,
        concurrency: 1,
    });
    let starts = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Start { .. }))
        .count();
    assert!(starts >= 4, "{plan:?}");

    let original_text = run(&db, &env, &plan, 21);
    let original = timed_events(&original_text);
    let recorded = replay::recorded(&replay::nemesis_events(&original_text)).unwrap();
    assert!(recorded.steps.iter().all(|s| match s.action {
        Action::Start { .. } => s.pin.is_some(),
        Action::Stop => s.pin.is_none(),
    }));

    let replayed = timed_events(&run(&db, &env, &recorded, 99));
    let (a, b) = (partitions(&original), partitions(&replayed));
    assert_eq!(a.len(), starts);
    assert_eq!(a.len(), b.len());
    let mut worst = 0;
    for ((ta, ka, ga), (tb, kb, gb)) in a.iter().zip(&b) {
        assert_eq!((ka, ga), (kb, gb), "same fault, same cuts");
        worst = worst.max((ta - tb).abs());
    }
    assert!(worst <= TOLERANCE_MS, "starts drift by {worst} ms");
    // Heals too: as many, at the same times.
    let heals = |e: &[(i64, String, Value)]| -> Vec<i64> {
        e.iter()
            .filter(|(_, f, _)| f == "heal")
            .map(|(t, ..)| *t)
            .collect()
    };
    let (ha, hb) = (heals(&original), heals(&replayed));
    assert_eq!(ha.len(), hb.len());
    for (x, y) in ha.iter().zip(&hb) {
        assert!((x - y).abs() <= TOLERANCE_MS, "heal drift {x} vs {y}");
    }
    assert!(replayed
        .iter()
        .filter(|(_, f, _)| f == "start-partition")
        .all(|(_, _, v)| v["pinned"] == true));
    eprintln!(
        "replay: {} partitions, same cuts, worst start drift {worst} ms",
        a.len()
    );

    // The control: the same plan with the other seed and no pins draws
    // other cuts, so the comparison above can fail.
    let drawn = partitions(&timed_events(&run(&db, &env, &plan, 99)));
    assert_ne!(
        a.iter().map(|x| &x.2).collect::<Vec<_>>(),
        drawn.iter().map(|x| &x.2).collect::<Vec<_>>(),
        "another seed draws other cuts"
    );
}

#[test]
fn overlapping_partitions_hold_at_once_and_heal_in_reverse_order() {
    let env = TestEnv::up("nemesis-overlap", 5);
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 2, Artifacts::locate().unwrap()).unwrap();
    let db = EnvCluster::new(env.control(), env.nodes().to_vec(), layout);
    let spec = ScheduleSpec {
        seed: 8,
        faults: vec![],
        quiet: Interval::Fixed(700),
        fault: Interval::Fixed(3000),
        total_ms: 8000,
        concurrency: 2,
    };
    let part = |kind| Fault::Partition { kind };
    // Two partitions overlap and stop together, then a third alone.
    let plan = Schedule::from_intervals(
        spec,
        vec![
            (500, 5000, part(PartitionKind::IsolateOne), None),
            (1500, 5000, part(PartitionKind::RandomHalves), None),
            (5500, 7000, part(PartitionKind::IsolateOne), None),
        ],
    );
    assert_eq!(plan.max_overlap(), 2, "{plan:?}");
    let events = timed_events(&run(&db, &env, &plan, 5));
    // Replayed from the events: how many faults were active after each.
    let mut active: Vec<u64> = Vec::new();
    let mut most = 0;
    let mut heals: Vec<u64> = Vec::new();
    for (_, f, v) in &events {
        let id = v["fault-id"].as_u64();
        match f.as_str() {
            "start-partition" => active.push(id.unwrap()),
            "heal" => {
                heals.push(id.unwrap());
                active.retain(|a| Some(*a) != id);
            }
            _ => {}
        }
        most = most.max(active.len());
    }
    assert_eq!(most, 2, "two partitions held at once: {events:?}");
    assert!(active.is_empty(), "every partition healed");
    // The two stopping together heal newest first.
    assert_eq!(heals, vec![1, 0, 2]);
    eprintln!("overlap: 3 partitions, at most {most} at once, heals in order {heals:?}");
}
