//! Kafka's own verifiable clients (VerifiableProducer, VerifiableConsumer
//! from the kafka-tools jar) against a real 3 ZooKeeper + 3 Kafka cluster
//! in network namespaces, one broker killed and restarted while they run;
//! `splitbrain check --format kafka-verifiable` judges their output (issue
//! 18's must-show test). Needs root, sshd, java and the artifact cache.

use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::cluster::{self, ClusterGuard, ClusterLayout};
use splitbrain_environments::nodes::netns::TestEnv;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);
const TOPIC: &str = "verifiable";
const MESSAGES: u64 = 3000;

/// A Java tool of the kafka-tools jar, run on the control host (it reaches
/// the nodes over the bridge), stdout to `out`.
fn kafka_tool(class: &str, args: &[&str], out: &Path) -> Child {
    let lib = Artifacts::locate().unwrap().root.join("kafka").join("lib");
    Command::new("java")
        .arg("-Xmx256m")
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg(class)
        .args(args)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the child on drop (failure paths included).
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines_named(path: &Path, name: &str) -> usize {
    let needle = format!("\"name\":\"{name}\"");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

fn check(producer: &Path, consumer: &Path, dir: &Path) -> (i32, serde_json::Value, String) {
    let json = dir.join("results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["check", "--format", "kafka-verifiable", "--producer"])
        .arg(producer)
        .arg("--consumer")
        .arg(consumer)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let results = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (out.status.code().unwrap_or(-1), results, stdout)
}

#[test]
fn verifiable_clients_under_a_broker_kill_are_valid_and_a_dropped_record_is_one_lost_write() {
    let env = TestEnv::up("kverif", 6);
    let control = env.control();
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 3, Artifacts::locate().unwrap()).unwrap();
    let guard = ClusterGuard::new(control.clone(), layout);
    cluster::up(&control, guard.layout(), WAIT).unwrap();
    cluster::create_topic(guard.layout(), TOPIC, 3, 3, WAIT).unwrap();
    let bootstrap = guard.layout().bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let producer_out: PathBuf = dir.path().join("producer.jsonl");
    let consumer_out: PathBuf = dir.path().join("consumer.jsonl");

    let consumer = Reaped(kafka_tool(
        "org.apache.kafka.tools.VerifiableConsumer",
        &[
            "--topic",
            TOPIC,
            "--group-id",
            "verifiable",
            "--bootstrap-server",
            &bootstrap,
            "--verbose",
            "--session-timeout",
            "10000",
        ],
        &consumer_out,
    ));
    let max = MESSAGES.to_string();
    let mut producer = Reaped(kafka_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &[
            "--topic",
            TOPIC,
            "--bootstrap-server",
            &bootstrap,
            "--max-messages",
            &max,
            "--throughput",
            "400",
            "--value-prefix",
            "1",
            "--acks",
            "-1",
        ],
        &producer_out,
    ));

    // A third of the way in, kill one broker (SIGKILL, by its pid file);
    // restart it two seconds later.
    let t = Instant::now();
    while lines_named(&producer_out, "producer_send_success") < (MESSAGES / 3) as usize {
        assert!(t.elapsed() < WAIT, "the producer made no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    let victim = guard.layout().kafka[1].clone();
    let killed = victim.service().kill(&control, &victim.node.name).unwrap();
    eprintln!("killed broker {} (pid {killed})", victim.id);
    std::thread::sleep(Duration::from_secs(2));
    victim.service().start(&control, &victim.node.name).unwrap();
    eprintln!("restarted broker {}", victim.id);

    // The producer stops after MESSAGES sends; the consumer once it has read
    // every acknowledged record (or the bound passes: the check then says
    // what is missing).
    let t = Instant::now();
    while producer.0.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "the producer did not finish"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let acked = lines_named(&producer_out, "producer_send_success");
    let t = Instant::now();
    while lines_named(&consumer_out, "record_data") < acked && t.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the consumer print its last summary, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    drop(consumer);
    let errors = lines_named(&producer_out, "producer_send_error");
    eprintln!(
        "{acked} acknowledged, {errors} send errors, {} records read",
        lines_named(&consumer_out, "record_data")
    );

    let (code, results, stdout) = check(&producer_out, &consumer_out, dir.path());
    assert_eq!(code, 0, "valid: {stdout}");
    assert_eq!(results["valid"], true);
    assert_eq!(results["counts"]["dlq-in-use"], 0);
    assert_eq!(results["counts"]["acknowledged"], acked as u64);

    // Drop one acknowledged record, read below the highest offset read of
    // its partition, from the consumer's stream: exactly one lost-write.
    let consumer_text = std::fs::read_to_string(&consumer_out).unwrap();
    let producer_text = std::fs::read_to_string(&producer_out).unwrap();
    let acked_values: Vec<&str> = producer_text
        .lines()
        .filter(|l| l.contains("\"producer_send_success\""))
        .filter_map(|l| l.split("\"value\":\"").nth(1)?.split('"').next())
        .collect();
    let dropped = acked_values[acked_values.len() / 4];
    let needle = format!("\"value\":\"{dropped}\"");
    let without: String = consumer_text
        .lines()
        .filter(|l| !(l.contains("\"record_data\"") && l.contains(&needle)))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(without.len() < consumer_text.len(), "{dropped} was read");
    let dropped_out = dir.path().join("consumer-dropped.jsonl");
    std::fs::write(&dropped_out, without).unwrap();
    let (code, results, stdout) = check(&producer_out, &dropped_out, dir.path());
    assert_eq!(code, 1, "invalid: {stdout}");
    let found: Vec<(String, u64)> = results["anomalies"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, a)| a["count"].as_u64().unwrap_or(0) > 0)
        .map(|(n, a)| (n.clone(), a["count"].as_u64().unwrap()))
        .collect();
    // Exactly one lost-write. The consumer's own position jumps over the
    // dropped offset too, and the producer's acknowledgement says what sits
    // there: that same record is a `poll-skip` (Jepsen reports both); no
    // other anomaly.
    assert_eq!(results["anomalies"]["lost-write"]["count"], 1, "{stdout}");
    let lost = &results["anomalies"]["lost-write"]["examples"][0];
    for (name, count) in &found {
        match name.as_str() {
            "lost-write" => assert_eq!(*count, 1),
            "poll-skip" => {
                for ex in results["anomalies"]["poll-skip"]["examples"]
                    .as_array()
                    .unwrap()
                {
                    assert_eq!(ex["key"], lost["key"]);
                    assert_eq!(
                        ex["skipped"],
                        serde_json::json!([[lost["offset"], lost["msg"]]])
                    );
                }
            }
            other => panic!("unexpected {other}: {stdout}"),
        }
    }
    drop(guard);
}
