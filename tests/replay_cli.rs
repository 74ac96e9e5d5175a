//! `splitbrain run --replay` end to end on a real cluster (netns, ZooKeeper
//! and Kafka): a short run with random kills and pauses of brokers, then
//! its replay. The replay hits the same brokers in the same order, each
//! start within a tolerance of the original's time after the start of the
//! load; its test.toml holds the exact schedule and its results.json links
//! the original. Needs root, sshd, java and the artifact cache (~5 min).

mod common;

use common::{run, text};
use serde_json::Value;
use std::path::Path;

/// Kafka restarts (a stop's undo) take seconds, and the next start waits
/// for them: starts drift by that much on a busy machine.
const TOLERANCE_S: f64 = 15.0;

/// `(s after the schedule event, f, broker id)` of every kill and pause.
fn hits(dir: &Path) -> Vec<(f64, String, i64)> {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let ops: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["process"] == "nemesis")
        .collect();
    let t0 = ops.iter().find(|v| v["f"] == "schedule").unwrap()["time"]
        .as_f64()
        .unwrap();
    ops.iter()
        .filter(|v| v["f"] == "kill" || v["f"] == "pause")
        .map(|v| {
            (
                (v["time"].as_f64().unwrap() - t0) / 1e9,
                v["f"].as_str().unwrap().to_string(),
                v["value"]["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn latest(store: &Path, test: &str) -> std::path::PathBuf {
    std::fs::canonicalize(store.join(test).join("latest")).unwrap()
}

#[test]
fn a_replay_hits_the_same_brokers_at_the_same_times() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let out = run(&[
        "run",
        "--store",
        s,
        "--name",
        "replay-e2e",
        "--time-limit",
        "30",
        "--rate",
        "50",
        "--nemesis",
        "kill:kafka:one,pause:kafka:one",
        "--nemesis-quiet",
        "4",
        "--nemesis-duration",
        "5",
    ]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let original = latest(store.path(), "replay-e2e");
    let a = hits(&original);
    assert!(a.len() >= 2, "{a:?}");

    let out = run(&["run", "--store", s, "--replay", original.to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("replay of replay-e2e/"));
    let replay = latest(store.path(), "replay-e2e");
    assert_ne!(replay, original);
    let b = hits(&replay);
    let who = |h: &[(f64, String, i64)]| -> Vec<(String, i64)> {
        h.iter().map(|(_, f, id)| (f.clone(), *id)).collect()
    };
    assert_eq!(who(&a), who(&b), "same faults on the same brokers");
    for ((ta, ..), (tb, ..)) in a.iter().zip(&b) {
        assert!((ta - tb).abs() <= TOLERANCE_S, "{a:?} vs {b:?}");
    }
    let toml = std::fs::read_to_string(replay.join("test.toml")).unwrap();
    assert!(toml.contains("[nemesis.schedule"), "{toml}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(replay.join("results.json")).unwrap())
            .unwrap();
    let link = &results["links"]["replay-of"];
    assert!(
        link["run"].as_str().unwrap().starts_with("replay-e2e/"),
        "{link}"
    );
    assert!(link["same-anomalies"].is_boolean(), "{link}");
    eprintln!("original {a:?}\nreplay   {b:?}\nlink {link}");
}

/// `nemesis.concurrency = 2` in a real run: a broker is killed while a
/// partition holds (or the other way round), as the events show, and the
/// run still heals everything and reports.
#[test]
fn two_faults_hold_at_once_in_a_real_run() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path().to_str().unwrap();
    let out = run(&[
        "run",
        "--store",
        s,
        "--name",
        "overlap-e2e",
        "--seed",
        "3",
        "--time-limit",
        "30",
        "--rate",
        "50",
        "--nemesis",
        "kill:kafka:one,partition:isolate-one",
        "--concurrency",
        "2",
        "--nemesis-quiet",
        "3",
        "--nemesis-duration",
        "12",
    ]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let dir = latest(store.path(), "overlap-e2e");
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let mut active: Vec<u64> = Vec::new();
    let (mut most, mut kinds_at_most) = (0, Vec::new());
    let mut kinds: std::collections::BTreeMap<u64, String> = Default::default();
    for v in text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["process"] == "nemesis")
    {
        let Some(id) = v["value"]["fault-id"].as_u64() else {
            continue;
        };
        match v["f"].as_str().unwrap() {
            f @ ("kill" | "start-partition") => {
                active.push(id);
                kinds.insert(id, f.to_string());
            }
            "restart" | "heal" => active.retain(|a| *a != id),
            _ => {}
        }
        if active.len() > most {
            most = active.len();
            kinds_at_most = active.iter().map(|a| kinds[a].clone()).collect();
        }
    }
    assert_eq!(most, 2, "two faults at once: {text}");
    assert!(active.is_empty(), "all undone");
    let plan = text
        .lines()
        .find(|l| l.contains("\"f\":\"schedule\""))
        .unwrap();
    assert!(plan.contains("\"concurrency\":2"), "{plan}");
    eprintln!("at most {most} at once: {kinds_at_most:?}");
}
