//! End-to-end: `splitbrain run` with `env.kind = "ssh"` on hosts it did not
//! make (the nodes of a netns environment, reached only over SSH). The run
//! prepares them (Java checked, jars uploaded into `env.artifacts_dir`),
//! records what it did as the history's `prepare` event, runs the cluster
//! from the uploaded jars and passes; a second run uploads nothing. Needs
//! root, sshd and the artifact cache (scripts/setup).

use serde_json::Value;
use splitbrain_environments::nodes::netns::TestEnv;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The `prepare` event of a run's history.
fn prepare_event(run_dir: &Path) -> Value {
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let line = history
        .lines()
        .find(|l| l.contains(r#""process":"env""#) && l.contains(r#""f":"prepare""#))
        .unwrap_or_else(|| panic!("no prepare event in {}", run_dir.display()));
    serde_json::from_str::<Value>(line).unwrap()["value"].clone()
}

#[test]
fn run_prepares_ssh_hosts_and_a_second_run_uploads_nothing() {
    let hosts_env = TestEnv::up("run_ssh_hosts", 2);
    let work = tempfile::tempdir().unwrap();
    let hosts = work.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        hosts_env.hosts_toml(|n| work.path().join("hosts").join(n)),
    )
    .unwrap();
    // The hosts share this machine's file system: the jar store goes under
    // the test's directory, not /opt/splitbrain.
    let store = work.path().join("jars");
    let test = work.path().join("ssh.toml");
    std::fs::write(
        &test,
        format!(
            r#"
name = "ssh-prepare"
seed = 7
time_limit = 10
cluster = {{ zookeeper = 1, kafka = 1 }}
kafka = {{ replication_factor = 1, min_insync_replicas = 1 }}
workload = {{ rate = 50, senders = 2, consumers = 1 }}
env = {{ kind = "ssh", hosts = "{}", artifacts_dir = "{}" }}
"#,
            hosts.display(),
            store.display()
        ),
    )
    .unwrap();
    let mut seconds = vec![];
    let mut bytes = vec![];
    for round in 1..=2 {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
            .arg("run")
            .arg(&test)
            .arg("--store")
            .arg(work.path().join("store"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "round {round}: {stdout}\n{stderr}\nrun took {:?}",
            started.elapsed()
        );
        assert!(out.status.success(), "round {round} did not pass");
        assert!(
            stdout.contains("prepared 2 node(s)") || stderr.contains("prepared 2 node(s)"),
            "no preparation line"
        );
        let run_dir = work.path().join("store/ssh-prepare/latest");
        let results: Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(results["status"], "PASS", "{}", results["outcome"]);
        let event = prepare_event(&run_dir);
        eprintln!("round {round} prepare event: {event}");
        assert_eq!(event["artifacts_dir"], store.display().to_string());
        let nodes = event["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2);
        for n in nodes {
            assert!(n["java_version"].as_u64().unwrap() >= 17, "{n}");
        }
        bytes.push(
            nodes
                .iter()
                .map(|n| n["bytes_uploaded"].as_u64().unwrap())
                .sum::<u64>(),
        );
        seconds.push(event["seconds"].as_f64().unwrap());
        // The run removed its environment: node directories gone, jars kept.
        assert!(!work.path().join("hosts/n1").exists());
        assert!(store.join("blobs").is_dir());
    }
    eprintln!(
        "prepare: first run {:.2}s, {} bytes; second run {:.2}s, {} bytes",
        seconds[0], bytes[0], seconds[1], bytes[1]
    );
    assert!(
        bytes[0] > 50_000_000,
        "first run uploaded {} bytes",
        bytes[0]
    );
    assert_eq!(bytes[1], 0, "the second run uploaded again");
    assert!(seconds[1] < seconds[0]);
}
