//! Process faults and a schedule on a real 3-server ZooKeeper ensemble and
//! one Kafka broker in network namespaces: a fault with no target is an
//! error; a partition, a broker kill, a leader kill and a pause (and their
//! undos) each carry the proof that they happened; a seeded schedule mixing
//! a partition, a pause and a kill is clean, and `heal-all` leaves nothing
//! behind. Needs root, sshd, java and the artifact cache.

use splitbrain_core::cluster::ZkMode;
use splitbrain_core::db::{ClusterControl, ServerKind};
use splitbrain_core::firewall;
use splitbrain_core::history::{HistoryReader, HistoryWriter};
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterLayout};
use splitbrain_environments::db::cluster_control::EnvCluster;
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_environments::probes::observe;
use splitbrain_nemeses::schedule::{self, Interval, Schedule, ScheduleSpec};
use splitbrain_nemeses::{Fault, Nemesis, PartitionKind, Target};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

fn leaders(db: &EnvCluster) -> Vec<i64> {
    db.zk_leaders().unwrap()
}

/// Waits (bounded) until exactly one server leads and every server serves.
fn wait_healthy(db: &EnvCluster) {
    let deadline = Instant::now() + WAIT;
    loop {
        let obs = observe::observe(&db.layout());
        let serving = obs
            .zookeeper
            .iter()
            .all(|v| matches!(v.mode, ZkMode::Leader | ZkMode::Follower));
        let n = obs
            .zookeeper
            .iter()
            .filter(|v| v.mode == ZkMode::Leader)
            .count();
        if serving && n == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "not healthy: {obs:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(f, value)` of every nemesis event in the history at `path`.
fn nemesis_values(path: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["process"] == "nemesis")
        .map(|v| (v["f"].as_str().unwrap().to_string(), v["value"].clone()))
        .collect()
}

/// The value of the last `f` event.
fn last_value(path: &std::path::Path, f: &str) -> serde_json::Value {
    nemesis_values(path)
        .into_iter()
        .rev()
        .find(|(g, _)| g == f)
        .unwrap_or_else(|| panic!("no {f} event"))
        .1
}

#[test]
fn kill_pause_and_a_schedule_on_a_real_ensemble() {
    let env = TestEnv::up("nemesis-proc", 4);
    let control = env.control();
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 1, Artifacts::locate().unwrap()).unwrap();
    let db =
        EnvCluster::new(control.clone(), env.nodes().to_vec(), layout.clone()).kill_on_drop(true);
    cluster::up(&control, &layout, WAIT).unwrap();
    wait_healthy(&db);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let history = HistoryWriter::create(&path).unwrap();
    let mut nemesis = Nemesis::new(&db, control.clone(), Some(history.clone()), 7);

    // A fault with no target cannot apply: an error, nothing recorded as done.
    let err = nemesis
        .start(&Fault::Kill {
            service: ServerKind::Kafka,
            target: Target::Ids(vec![9]),
        })
        .unwrap_err();
    assert!(err.to_string().contains("kafka ids [9]"), "{err}");

    // A partition proves itself: sampled cut pairs do not connect, kept
    // pairs do; its heal proves the cut pairs connect again.
    let part = nemesis
        .start(&Fault::Partition {
            kind: PartitionKind::IsolateOne,
        })
        .unwrap();
    nemesis.stop(part).unwrap();
    let start = last_value(&path, "start-partition");
    eprintln!("start-partition {start}");
    let proof = &start["verified"];
    assert_eq!(proof["ok"], true, "{start}");
    let cut = proof["cut"].as_array().unwrap();
    let kept = proof["kept"].as_array().unwrap();
    // isolate-one of 4 nodes: 6 ordered pairs cut and 6 kept, 4 of each probed.
    assert_eq!((cut.len(), kept.len()), (4, 4), "{start}");
    assert!(cut.iter().all(|p| p["reached"] == false), "{start}");
    assert!(kept.iter().all(|p| p["reached"] == true), "{start}");
    // Recorded after its probes, it says how long ago its rules went in.
    assert!(
        start["elapsed-ms"].as_u64().unwrap() >= proof["after-ms"].as_u64().unwrap(),
        "{start}"
    );
    let heal = last_value(&path, "heal");
    eprintln!("heal {heal}");
    assert_eq!(heal["verified"]["ok"], true, "{heal}");
    assert_eq!(heal["verified"]["kept"].as_array().unwrap().len(), 4);

    // Kill the broker: gone; its restart answers a metadata request.
    let kafka_kill = nemesis
        .start(&Fault::Kill {
            service: ServerKind::Kafka,
            target: Target::One,
        })
        .unwrap();
    let killed = last_value(&path, "kill");
    eprintln!("kill {killed}");
    assert_eq!(killed["service"], "kafka", "{killed}");
    assert_eq!(killed["verified"]["process"], "gone", "{killed}");
    // A broker restarted before its old ZooKeeper session expires finds its
    // own stale `/brokers/ids` entry and exits: wait the session out.
    std::thread::sleep(db.broker_session_timeout() + Duration::from_secs(2));
    nemesis.stop(kafka_kill).unwrap();
    let restarted = last_value(&path, "restart");
    eprintln!("restart {restarted}");
    assert!(
        matches!(
            restarted["verified"]["serving-as"]["1"].as_str(),
            Some("broker" | "controller")
        ),
        "{restarted}"
    );

    // Kill the leader: it is gone, another server leads; restart brings it back.
    let leader = leaders(&db)[0];
    let kill = nemesis
        .start(&Fault::Kill {
            service: ServerKind::Zookeeper,
            target: Target::Primary,
        })
        .unwrap();
    let victim = db
        .servers()
        .into_iter()
        .find(|s| s.kind == ServerKind::Zookeeper && s.id == leader)
        .unwrap();
    let svc = layout.zk_server(leader as u64).unwrap().service();
    assert_eq!(svc.pid(&control, &victim.node).unwrap(), None, "killed");
    let deadline = Instant::now() + WAIT;
    while !leaders(&db).iter().any(|&l| l != leader) {
        assert!(Instant::now() < deadline, "no new leader after the kill");
        std::thread::sleep(Duration::from_millis(200));
    }
    let killed = last_value(&path, "kill");
    assert_eq!(killed["verified"]["process"], "gone", "{killed}");
    nemesis.stop(kill).unwrap();
    let restarted = last_value(&path, "restart");
    assert!(
        restarted["verified"]["serving-as"][leader.to_string()].is_string(),
        "{restarted}"
    );
    assert!(
        svc.pid(&control, &victim.node).unwrap().is_some(),
        "restarted"
    );
    wait_healthy(&db);

    // Pause one server: its process is stopped; heal-all resumes it.
    nemesis
        .start(&Fault::Pause {
            service: ServerKind::Zookeeper,
            target: Target::One,
        })
        .unwrap();
    let paused: Vec<_> = db
        .servers()
        .into_iter()
        .filter(|s| db.is_paused(s).unwrap())
        .collect();
    assert_eq!(paused.len(), 1, "{paused:?}");
    let pause = last_value(&path, "pause");
    assert_eq!(pause["verified"]["state"], "T", "{pause}");
    nemesis.heal_all().unwrap();
    assert!(db.servers().iter().all(|s| !db.is_paused(s).unwrap()));
    wait_healthy(&db);

    // A seeded schedule: recorded in full, every fault undone, healed at the end.
    let spec = ScheduleSpec {
        seed: 11,
        faults: vec![
            Fault::Partition {
                kind: PartitionKind::IsolateOne,
            },
            Fault::Pause {
                service: ServerKind::Zookeeper,
                target: Target::Minority,
            },
            Fault::Kill {
                service: ServerKind::Zookeeper,
                target: Target::One,
            },
        ],
        quiet: Interval::Random {
            min_ms: 500,
            max_ms: 1500,
        },
        fault: Interval::Fixed(2000),
        total_ms: 12_000,
        concurrency: 1,
    };
    let plan = Schedule::plan(&spec);
    let starts = plan.steps.len() / 2;
    assert!(starts >= 2, "{plan:?}");
    let report =
        schedule::run(&mut nemesis, &plan, Some(&history), &AtomicBool::new(false)).unwrap();
    assert_eq!(report.faults_applied, starts, "{report:?}");
    assert!(report.is_clean(), "{report:?}");
    nemesis.remove_rules().unwrap();

    // The history holds the plan, each start and its undo, and the final heal.
    let mut reader = HistoryReader::open(&path).unwrap();
    let mut fs: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(op) = reader.next_op() {
        let op = op.unwrap();
        if let splitbrain_core::history::OpValue::Other(raw) = &op.value {
            eprintln!("{} {raw}", op.f);
        }
        *fs.entry(op.f.into_owned()).or_default() += 1;
    }
    eprintln!("nemesis events: {fs:?}");
    assert_eq!(fs["schedule"], 1);
    assert_eq!(fs["heal-all"], 2);
    assert_eq!(fs.get("start-partition"), fs.get("heal"));
    assert_eq!(fs.get("kill"), fs.get("restart"));
    assert_eq!(fs.get("pause"), fs.get("resume"));
    // Every start and every undo carries its proof, and it holds.
    for (f, value) in nemesis_values(&path) {
        if [
            "start-partition",
            "heal",
            "kill",
            "restart",
            "pause",
            "resume",
        ]
        .contains(&f.as_str())
        {
            assert_eq!(value["verified"]["ok"], true, "{f} {value}");
        }
    }

    // Nothing left: no rule, no paused process, one healthy ensemble.
    for (node, r) in control.on_all(|_, s| firewall::blocked(s, Duration::from_secs(10))) {
        assert!(r.unwrap().is_empty(), "{node}: rules left");
    }
    assert!(db.servers().iter().all(|s| !db.is_paused(s).unwrap()));
    wait_healthy(&db);
}
