//! The incident on real servers: a 3-server ZooKeeper ensemble and two Kafka
//! brokers in network namespaces; 4 ZooKeeper servers join and broker 2 is
//! moved onto them. With `rapid-add` the split-brain checker must report
//! `split-brain` and `multiple-controllers`; with `safe-add` neither. After
//! either, nothing may be left behind: no splitbrain firewall rule, no
//! paused process, no extra ZooKeeper server.
//!
//! Needs root, sshd, java and the artifact cache
//! (`environments/artifacts/fetch`). `bench/rapid-add.sh` repeats both.

use splitbrain_checkers::splitbrain::{SplitBrainChecker, DEFAULT_CONTROLLER_GRACE_NS};
use splitbrain_core::cluster::ZkMode;
use splitbrain_core::control::Control;
use splitbrain_core::db::{ClusterControl, JoinProcedure, ServerKind};
use splitbrain_core::firewall;
use splitbrain_core::history::{HistoryReader, HistoryWriter};
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterLayout};
use splitbrain_environments::db::cluster_control::{enable_reconfig, EnvCluster};
use splitbrain_environments::db::service::{Service, ServiceKind};
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_environments::probes::observe;
use splitbrain_nemeses::{Fault, Nemesis};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);
/// How long the fault stays after it took effect: longer than the
/// checker's 5 s grace for controller disagreement.
const HOLD: Duration = Duration::from_secs(10);
const BROKER_MOVED: i64 = 2;

/// Both scenarios start 9 JVMs: one at a time on a 2-core machine.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What one scenario saw.
struct Outcome {
    anomalies: BTreeMap<String, u64>,
    /// Some sample had all 7 servers serving with one leader and every one
    /// listing all 7 as voters: one ensemble of seven.
    one_ensemble_of_seven: bool,
    fault_value: serde_json::Value,
    elapsed: Duration,
}

/// Every node: no splitbrain rule, no paused JVM; the ensemble is back to
/// its 3 servers with one leader, and nothing runs on the joiners' nodes.
fn assert_nothing_left(control: &Control, cluster: &EnvCluster, joiners: &[String]) {
    for (node, r) in control.on_all(|node, s| {
        let rules = firewall::blocked(s, Duration::from_secs(10))?;
        // Processes splitbrain started on this node write pid files under
        // <node dir>/run: is any of them stopped (state T)? (Nodes share the
        // host's pid namespace, so `pgrep` would see other tests' JVMs.)
        let paused = s.exec_ok(
            &format!(
                "for f in {}/run/*.pid; do p=$(cat $f 2>/dev/null); \
                 [ -n \"$p\" ] && [ -r /proc/$p/stat ] && sed 's/.*) //' /proc/$p/stat | cut -d' ' -f1; \
                 done | grep -c T; true",
                node.dir.display()
            ),
            Duration::from_secs(10),
        )?;
        Ok((rules, paused.stdout.trim().to_string()))
    }) {
        let (rules, paused) = r.unwrap();
        assert!(rules.is_empty(), "{node}: splitbrain rules left: {rules:?}");
        assert_eq!(paused, "0", "{node}: paused processes left");
    }
    let zk: Vec<_> = cluster
        .servers()
        .into_iter()
        .filter(|s| s.kind == ServerKind::Zookeeper)
        .collect();
    assert_eq!(zk.len(), 3, "extra ZooKeeper servers left: {zk:?}");
    for node in joiners {
        let dir = control.node(node).unwrap().dir.clone();
        let zk = Service::new(ServiceKind::Zookeeper, &dir);
        assert_eq!(
            zk.pid(control, node).unwrap(),
            None,
            "a ZooKeeper server still runs on {node}"
        );
    }
    let obs = observe::observe(&cluster.layout());
    let leaders = obs
        .zookeeper
        .iter()
        .filter(|v| v.mode == ZkMode::Leader)
        .count();
    assert_eq!(leaders, 1, "{obs:#?}");
}

fn scenario(procedure: JoinProcedure) -> Outcome {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let name = match procedure {
        JoinProcedure::Rapid => "rapid-add",
        JoinProcedure::Safe => "safe-add",
    };
    let env = TestEnv::up(name, 9);
    let control = env.control();
    let mut layout = ClusterLayout::plan(
        env.name(),
        &env.nodes()[..5],
        3,
        2,
        Artifacts::locate().unwrap(),
    )
    .unwrap();
    if procedure == JoinProcedure::Safe {
        enable_reconfig(&mut layout.zk_settings);
    }
    // Kills every server (joiners too) on every exit path, panics included.
    let db =
        EnvCluster::new(control.clone(), env.nodes().to_vec(), layout.clone()).kill_on_drop(true);
    cluster::up(&control, &layout, WAIT).unwrap();
    eprintln!("{name}: cluster up after {:?}", started.elapsed());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let history = HistoryWriter::create(&path).unwrap();
    let stop = AtomicBool::new(false);
    let joiners: Vec<String> = env.nodes()[5..].iter().map(|n| n.name.clone()).collect();
    let fault_value = std::thread::scope(|scope| {
        // The observer: every server's own view, every 250 ms.
        let observer = scope.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) && n < 2_000 {
                history.observe(&observe::observe(&db.layout())).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let mut nemesis = Nemesis::new(&db, control.clone(), Some(history.clone()), 1);
        let fault = Fault::AddZookeeper {
            procedure,
            count: 4,
            move_broker: Some(BROKER_MOVED),
        };
        let result = nemesis.start(&fault);
        if result.is_ok() {
            std::thread::sleep(HOLD);
        }
        // Every server's logs, joiners' included, before `remove` wipes them.
        let logs =
            std::env::temp_dir().join(format!("splitbrain-nemeses-{name}-{}", std::process::id()));
        match cluster::collect(&control, &db.layout(), &logs) {
            Ok(_) => eprintln!(
                "{name}: server logs in {} (kept if the test fails)",
                logs.display()
            ),
            Err(e) => eprintln!("{name}: collecting logs: {e}"),
        }
        let healed = nemesis.heal_all();
        let removed = nemesis.remove_rules();
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        observer.join().unwrap();
        result.unwrap();
        healed.unwrap();
        removed.unwrap();
        eprintln!("{name}: fault done after {:?}", started.elapsed());
        // What the nemesis recorded about the fault.
        let mut reader = HistoryReader::open(&path).unwrap();
        let mut value = serde_json::Value::Null;
        while let Some(op) = reader.next_op() {
            let op = op.unwrap();
            if let (true, splitbrain_core::history::OpValue::Other(raw)) = (op.f == name, &op.value)
            {
                value = serde_json::from_str(raw).unwrap();
            }
        }
        (value, logs)
    });
    let (fault_value, logs) = fault_value;
    eprintln!("{name}: {fault_value}");
    assert_nothing_left(&control, &db, &joiners);

    let mut checker = SplitBrainChecker::new(5, DEFAULT_CONTROLLER_GRACE_NS);
    let mut reader = HistoryReader::open(&path).unwrap();
    let mut one_ensemble_of_seven = false;
    let seven: Vec<u64> = (1..=7).collect();
    while let Some(op) = reader.next_op() {
        let op = op.unwrap();
        if let splitbrain_core::history::OpValue::Observation(obs) = &op.value {
            let zk = &obs.zookeeper;
            one_ensemble_of_seven |= zk.len() == 7
                && zk.iter().filter(|v| v.mode == ZkMode::Leader).count() == 1
                && zk.iter().all(|v| {
                    matches!(v.mode, ZkMode::Leader | ZkMode::Follower) && v.members == seven
                });
        }
        checker.observe(&op);
    }
    let result = checker.finish().expect("observer samples were recorded");
    eprintln!(
        "{name}: {}",
        serde_json::to_string(&result.anomalies).unwrap_or_default()
    );
    // Reached only when nothing above failed: the logs are not needed.
    let _ = std::fs::remove_dir_all(&logs);
    Outcome {
        anomalies: result
            .anomalies
            .iter()
            .map(|(k, a)| (k.clone(), a.count))
            .collect(),
        one_ensemble_of_seven,
        fault_value,
        elapsed: started.elapsed(),
    }
}

#[test]
fn rapid_add_with_a_moved_broker_splits_the_brain() {
    let out = scenario(JoinProcedure::Rapid);
    eprintln!("rapid-add: {} in {:?}", out.fault_value, out.elapsed);
    // The proof the broker was cut from the old servers only.
    let cut = &out.fault_value["move"]["cut-verified"];
    assert_eq!(cut["ok"], true, "{cut}");
    assert_eq!(cut["cut"].as_array().unwrap().len(), 3, "{cut}");
    assert_eq!(cut["kept"].as_array().unwrap().len(), 4, "{cut}");
    // The proof the newcomers run: each answers as a ZooKeeper member.
    assert_eq!(
        out.fault_value["verified"]["ok"], true,
        "{}",
        out.fault_value
    );
    for id in 4..=7 {
        assert!(
            out.fault_value["verified"]["serving-as"][id.to_string()].is_string(),
            "server {id}: {}",
            out.fault_value
        );
    }
    assert_eq!(
        out.fault_value["new_servers"],
        serde_json::json!([4, 5, 6, 7])
    );
    assert_eq!(
        out.fault_value["move"]["registered_on_new_servers"], true,
        "broker {BROKER_MOVED} registered on the new servers"
    );
    assert!(!out.one_ensemble_of_seven, "the newcomers never joined");
    assert!(out.anomalies["split-brain"] >= 1, "{:?}", out.anomalies);
    assert!(
        out.anomalies["multiple-controllers"] >= 1,
        "{:?}",
        out.anomalies
    );
}

#[test]
fn safe_add_with_a_moved_broker_keeps_one_brain() {
    let out = scenario(JoinProcedure::Safe);
    eprintln!("safe-add: {} in {:?}", out.fault_value, out.elapsed);
    // The proof the broker was cut from the old servers only.
    let cut = &out.fault_value["move"]["cut-verified"];
    assert_eq!(cut["ok"], true, "{cut}");
    assert_eq!(cut["cut"].as_array().unwrap().len(), 3, "{cut}");
    assert_eq!(cut["kept"].as_array().unwrap().len(), 4, "{cut}");
    // The proof the newcomers run: each answers as a ZooKeeper member.
    assert_eq!(
        out.fault_value["verified"]["ok"], true,
        "{}",
        out.fault_value
    );
    for id in 4..=7 {
        assert!(
            out.fault_value["verified"]["serving-as"][id.to_string()].is_string(),
            "server {id}: {}",
            out.fault_value
        );
    }
    assert_eq!(
        out.fault_value["new_servers"],
        serde_json::json!([4, 5, 6, 7])
    );
    assert_eq!(
        out.fault_value["move"]["registered_on_new_servers"], true,
        "broker {BROKER_MOVED} registered as the new servers see it"
    );
    assert!(
        out.one_ensemble_of_seven,
        "the newcomers joined the one ensemble"
    );
    assert_eq!(out.anomalies["split-brain"], 0, "{:?}", out.anomalies);
    assert_eq!(
        out.anomalies["multiple-controllers"], 0,
        "{:?}",
        out.anomalies
    );
}

/// Both scenarios `SPLITBRAIN_REPEAT` times (default 5), counting how often
/// each anomaly was reported: `bench/rapid-add.sh`.
#[test]
#[ignore = "slow: run with bench/rapid-add.sh"]
fn repeat_both_scenarios() {
    let n: usize = std::env::var("SPLITBRAIN_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for procedure in [JoinProcedure::Rapid, JoinProcedure::Safe] {
        let mut split = 0;
        let mut controllers = 0;
        for i in 0..n {
            let out = scenario(procedure);
            split += usize::from(out.anomalies["split-brain"] > 0);
            controllers += usize::from(out.anomalies["multiple-controllers"] > 0);
            eprintln!(
                "run {} {procedure:?}: {:?} in {:?}",
                i + 1,
                out.anomalies,
                out.elapsed
            );
        }
        println!(
            "{procedure:?}: split-brain in {split}/{n} runs, multiple-controllers in {controllers}/{n} runs"
        );
    }
}
