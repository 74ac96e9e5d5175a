//! Evidence from a real 3 ZooKeeper + 3 Kafka cluster in network namespaces
//! (issue 13): messages acknowledged at known offsets are found by
//! DumpLogSegments on every replica, and a replica whose node cannot be
//! reached over SSH is reported as unreachable while the others are still
//! read. Needs root, sshd, java and the artifact cache.

use splitbrain_core::history::HistoryWriter;
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterGuard, ClusterLayout};
use splitbrain_environments::db::segments::{self, DumpStatus};
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_runner::evidence::{self, assemble, Target};
use splitbrain_workloads::queue::{self, QueueOptions};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);
const TOPIC: &str = "queue";

/// Acknowledged sends of the history: (key, msg, offset), in order.
fn acked(history: &std::path::Path) -> Vec<(String, u64, u64)> {
    std::fs::read_to_string(history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|op| op["f"] == "send" && op["type"] == "ok")
        .map(|op| {
            let v = &op["value"];
            (
                v["key"].as_str().unwrap().to_string(),
                v["msg"].as_u64().unwrap(),
                v["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn target(key: &str, msg: u64, offset: u64) -> Target {
    let e = serde_json::json!({"key": key, "msg": msg, "offset": offset});
    assemble::target("lost-write", 0, &e, &|_| None)
}

#[test]
fn segments_of_every_replica_hold_acknowledged_messages_and_an_unreachable_node_is_said_so() {
    let env = TestEnv::up("evidence", 6);
    let control = env.control();
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 3, Artifacts::locate().unwrap()).unwrap();
    let guard = ClusterGuard::new(control.clone(), layout);
    cluster::up(&control, guard.layout(), WAIT).unwrap();
    cluster::create_topic(guard.layout(), TOPIC, 3, 3, WAIT).unwrap();
    let layout = guard.layout().clone();

    // A few seconds of the queue workload (acks=all): every acknowledged
    // message is on all three replicas.
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let writer = HistoryWriter::create(&history).unwrap();
    let mut opts = QueueOptions::new(layout.bootstrap_servers(), dir.path().join("state"));
    opts.load_duration = Duration::from_secs(6);
    opts.senders = 4;
    opts.rate = 100.0;
    queue::run(&opts, &writer, Arc::new(AtomicU64::new(0)), || {}).unwrap();
    drop(writer);
    let sent = acked(&history);
    // Three are enough; a loaded machine acknowledges far fewer than 600.
    assert!(sent.len() >= 3, "{} acknowledged", sent.len());
    // The first, a middle and the last acknowledged message.
    let picks = [&sent[0], &sent[sent.len() / 2], &sent[sent.len() - 1]];
    let targets: Vec<Target> = picks.iter().map(|(k, m, o)| target(k, *m, *o)).collect();
    let windows = assemble::windows(&targets);

    let t = Instant::now();
    let dumps =
        segments::dump_segments(&control, &layout, TOPIC, &windows, Duration::from_secs(30));
    let took = t.elapsed();
    eprintln!(
        "dumped {} windows from {} brokers in {took:?}",
        windows.len(),
        dumps.len()
    );
    assert_eq!(dumps.len(), 3);
    // Every broker has a replica of every partition asked about.
    let mut asked: Vec<i32> = windows.iter().map(|w| w.partition).collect();
    asked.dedup();
    for d in &dumps {
        assert_eq!(d.status, DumpStatus::Read, "{d:?}");
        assert_eq!(d.partitions, asked, "{d:?}");
    }
    for (t, (key, msg, offset)) in targets.iter().zip(picks) {
        let e = assemble::assemble(t, Some(&dumps), &[], None);
        // A message that was not lost: the evidence says so, on every replica.
        assert_eq!(e.confirmed, Some(false), "{}", e.segments);
        assert!(
            e.segments.starts_with(&format!(
                "msg {msg} is still at offset {offset} on broker(s) 1, 2 and 3"
            )),
            "{key}: {}",
            e.segments
        );
        for r in &e.replicas {
            assert_eq!(r.msg_at, vec![*offset], "{r:?}");
        }
    }
    // Both copies' record fields are those of the workload's producer
    // (idempotent: a producer id and sequence numbers).
    let rec = dumps[0].records.iter().find(|r| r.msg.is_some()).unwrap();
    assert!(
        rec.producer_id.unwrap() >= 0 && rec.sequence.unwrap() >= 0,
        "{rec:?}"
    );

    // Broker 2's node stops answering SSH for 25 s (a firewall rule inside
    // the node, removed by itself; the netns goes with the environment).
    let node = layout.broker(2).unwrap().node.name.clone();
    control
        .exec_ok(
            &node,
            "nohup sh -c 'iptables -I INPUT -p tcp --dport 22 -j DROP; sleep 25; iptables -D INPUT -p tcp --dport 22 -j DROP' >/dev/null 2>&1 &",
            Duration::from_secs(10),
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let dumps = segments::dump_segments(&control, &layout, TOPIC, &windows, Duration::from_secs(3));
    let took = t.elapsed();
    eprintln!("with {node} unreachable: {took:?}");
    assert!(took < Duration::from_secs(15), "bounded: {took:?}");
    let by_broker = |b: i32| dumps.iter().find(|d| d.broker == b).unwrap();
    assert_eq!(
        by_broker(2).status,
        DumpStatus::Unreachable,
        "{:?}",
        by_broker(2)
    );
    assert_eq!(by_broker(1).status, DumpStatus::Read);
    assert_eq!(by_broker(3).status, DumpStatus::Read);
    let e = assemble::assemble(&targets[0], Some(&dumps), &[], None);
    assert!(
        e.segments.contains("broker 2 unreachable (not read)"),
        "{}",
        e.segments
    );
    let text = evidence::explain_text(&e, true);
    assert!(text.contains("broker 2 ("), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    // Let the rule lapse so that teardown can stop broker 2 over SSH.
    std::thread::sleep(Duration::from_secs(25).saturating_sub(t.elapsed()));
}
