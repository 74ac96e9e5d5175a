//! Kafka 3.9.1 in KRaft mode on netns nodes (issue 16's must-show test):
//! 3 dedicated controllers + 3 brokers, exactly one quorum leader (confirmed
//! with Kafka's own `kafka-metadata-quorum` tool), 1,000 idempotent messages
//! through the queue workload read back once, then the quorum leader killed
//! and restarted. Needs root, sshd, java and the artifact cache.

use splitbrain_checkers::{CheckOptions, HistoryChecker};
use splitbrain_core::cluster::{ControllerRole, ControllerView};
use splitbrain_core::history::{HistoryReader, HistoryWriter};
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterGuard, ClusterLayout};
use splitbrain_environments::db::kraft::{self, KraftCluster, KraftSettings, QuorumStatus};
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_environments::probes::{observe, ProbeError};
use splitbrain_workloads::consumer::ConsumerMode;
use splitbrain_workloads::queue::{self, QueueOptions};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound of each wait. A KRaft broker opens its listeners only once it has
/// caught up with the metadata log and registered; on a loaded 2-core
/// machine that took over 76 s (tests/kraft_membership.rs).
const WAIT: Duration = Duration::from_secs(150);
const TOPIC: &str = "queue";

/// The leader as each controller answers alone: `Some(id)` for the one
/// that describes the quorum as its leader; every other answer must be the
/// refusal a non-leader gives (NOT_LEADER_OR_FOLLOWER) or no answer.
fn leaders(k: &KraftCluster) -> Vec<i32> {
    kraft::describe_each(&k.controllers, &k.settings, Duration::from_secs(1))
        .into_iter()
        .filter_map(|(id, answer)| match answer {
            Ok(q) if q.leader_id == Some(id) => Some(id),
            Ok(q) => panic!(
                "controller {id} describes a quorum led by {:?}",
                q.leader_id
            ),
            Err(ProbeError::KafkaServer { code: 6, .. }) | Err(ProbeError::Io { .. }) => None,
            Err(e) => panic!("controller {id}: {e}"),
        })
        .collect()
}

/// Kafka's tool, run on the first broker's node against the controllers
/// of `k`, until it names a leader other than `not` and, if `healthy`,
/// every voter has replicated up to the high watermark (asked through
/// DescribeQuorum of that leader).
fn tool_until(
    env: &TestEnv,
    layout: &ClusterLayout,
    k: &KraftCluster,
    not: Option<i32>,
    healthy: bool,
) -> QuorumStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = kraft::tool_status(
            &env.control(),
            &layout.kafka[0].node.name,
            &layout.artifacts,
            &k.bootstrap_controllers(),
        );
        if let Ok(s) = &status {
            let caught_up = !healthy
                || kraft::describe_each(&k.controllers, &k.settings, Duration::from_secs(1))
                    .into_iter()
                    .filter_map(|(_, a)| a.ok())
                    .any(|q| {
                        q.voters.len() == 3
                            && q.voters
                                .iter()
                                .all(|v| v.log_end_offset >= q.high_watermark)
                    });
            if Some(s.leader_id) != not && caught_up {
                return s.clone();
            }
        }
        assert!(Instant::now() < deadline, "last tool status: {status:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn kraft_cluster_one_leader_messages_once_and_leader_restart() {
    let env = TestEnv::up("kraft", 6);
    let control = env.control();
    let layout = ClusterLayout::plan_kraft(
        env.name(),
        env.nodes(),
        3,
        3,
        KraftSettings::default(),
        Artifacts::locate().unwrap(),
    )
    .unwrap();
    let guard = ClusterGuard::new(control.clone(), layout);
    let t = Instant::now();
    cluster::up(&control, guard.layout(), WAIT).unwrap();
    eprintln!("KRaft cluster up in {:?}", t.elapsed());
    let layout = guard.layout().clone();
    let k = layout.kraft.clone().unwrap();
    let voters: Vec<i32> = k.controllers.iter().map(|c| c.id).collect();
    assert_eq!(voters, [1001, 1002, 1003]);

    // Exactly one leader, by splitbrain's probe and by Kafka's own tool.
    let q = kraft::wait_quorum(&k, &voters, WAIT).unwrap();
    let leader = q.leader_id.unwrap();
    assert_eq!(leaders(&k), [leader]);
    let status = tool_until(&env, &layout, &k, None, false);
    eprintln!("kafka-metadata-quorum: {status:?}");
    assert_eq!(status.leader_id, leader);
    assert_eq!(status.voters, voters);
    assert!(status.leader_epoch >= q.leader_epoch);
    // The observation pinned to each server says the same: one leader with
    // quorum backing, every broker following it.
    let deadline = Instant::now() + WAIT;
    let obs = loop {
        let obs = observe::observe_with(&layout, Duration::from_secs(1));
        let followed: Vec<Option<i32>> = obs.kafka.iter().map(|b| b.quorum_leader).collect();
        if obs.controllers.iter().any(|c| c.leads_with_quorum())
            && followed.iter().all(|f| *f == Some(leader))
        {
            break obs;
        }
        assert!(Instant::now() < deadline, "{obs:#?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let leading: Vec<&ControllerView> = obs
        .controllers
        .iter()
        .filter(|c| c.role == ControllerRole::Leader)
        .collect();
    assert_eq!(leading.len(), 1, "{obs:#?}");
    assert_eq!(leading[0].controller_id, leader);
    assert_eq!(leading[0].voters, voters);
    assert!(obs
        .controllers
        .iter()
        .filter(|c| c.controller_id != leader)
        .all(|c| c.role == ControllerRole::NotLeader));
    let mut observers = status.observers.clone();
    observers.sort_unstable();
    assert_eq!(observers, [1, 2, 3], "brokers observe the quorum");

    // 1,000 idempotent messages through the queue workload, read back once.
    cluster::create_topic(&layout, TOPIC, 3, 3, WAIT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let writer = HistoryWriter::create(&history).unwrap();
    let mut opts = QueueOptions::new(layout.bootstrap_servers(), dir.path().join("state"));
    opts.consumer_mode = ConsumerMode::Assign;
    opts.max_messages = Some(1000);
    opts.rate = 500.0;
    opts.load_duration = Duration::from_secs(30);
    let report = queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {}).unwrap();
    eprintln!("{report:#?}");
    assert_eq!(report.sends.ok, 1000, "{:?}", report.sends);
    assert!(report.final_read.complete, "{:?}", report.final_read);
    let mut reader = HistoryReader::open(&history).unwrap();
    let mut checker = HistoryChecker::new(&CheckOptions::default());
    while let Some(op) = reader.next_op() {
        checker.observe(&op.unwrap()).unwrap();
    }
    let verdict = checker.finish();
    assert!(verdict.valid, "{:?}", verdict.anomalies);
    assert_eq!(verdict.counts["acknowledged"], 1000);
    assert_eq!(verdict.counts["read"], 1000);
    for name in ["lost-write", "unseen", "duplicate"] {
        assert_eq!(verdict.count(name), 0, "{name}");
    }

    // Kill the quorum leader: another controller leads; restart it: the
    // quorum is whole again (three voters, all caught up).
    let old = k.controller(leader).unwrap().clone();
    let t = Instant::now();
    old.service().kill(&control, &old.node.name).unwrap();
    // The survivors, asked alone, until one of them leads.
    let survivors = KraftCluster {
        controllers: k
            .controllers
            .iter()
            .filter(|c| c.id != leader)
            .cloned()
            .collect(),
        ..k.clone()
    };
    let new_leader = loop {
        if let [l] = leaders(&survivors)[..] {
            break l;
        }
        assert!(t.elapsed() < WAIT, "no new leader after {:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "controller {new_leader} leads {:?} after the kill",
        t.elapsed()
    );
    // Kafka's tool, asking the survivors only, agrees.
    let after_kill = tool_until(&env, &layout, &survivors, Some(leader), false);
    eprintln!("after killing {leader}: {after_kill:?}");
    assert_eq!(after_kill.leader_id, new_leader);
    assert_ne!(after_kill.leader_id, leader);
    assert!(after_kill.leader_epoch > status.leader_epoch);
    old.service().start(&control, &old.node.name).unwrap();
    let healed = tool_until(&env, &layout, &k, None, true);
    eprintln!(
        "after restarting {leader}: {healed:?} ({:?} after the kill)",
        t.elapsed()
    );
    assert_eq!(healed.voters, voters);
    assert_eq!(leaders(&k).len(), 1);
    // Brokers still serve the topic.
    cluster::wait_for_leaders(&layout, TOPIC, 3, WAIT).unwrap();
    drop(guard);
}
