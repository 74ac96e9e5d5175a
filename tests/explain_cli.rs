//! `splitbrain explain` on a stored run, without a cluster: a synthetic
//! history with one planted lost write, and server logs written as Kafka
//! writes them, with and without the truncation that explains the loss.

mod common;

use common::{run, text};
use std::path::Path;

/// 2026-11-29 00:00:00 UTC, ms: the history's time 0 in `clock.json`.
const MIDNIGHT_MS: i64 = 1_795_910_400_000;

/// A run directory with a history holding one lost write; returns its
/// (key, msg, offset).
fn stored_run(dir: &Path) -> (String, u64, u64) {
    let history = dir.join("history.jsonl");
    let out = run(&[
        "gen-history",
        "--ops",
        "2000",
        "--plant",
        "lost-write=1",
        "--keys",
        "3",
        "--consumers",
        "3",
        "-o",
        history.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let json = dir.join("check.json");
    run(&[
        "check",
        history.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let e = &r["anomalies"]["lost-write"]["examples"][0];
    std::fs::write(
        dir.join("clock.json"),
        format!("{{\"history-start-unix-ms\": {MIDNIGHT_MS}}}\n"),
    )
    .unwrap();
    (
        e["key"].as_str().unwrap().to_string(),
        e["msg"].as_u64().unwrap(),
        e["offset"].as_u64().unwrap(),
    )
}

/// Broker 2's collected logs: it leads `key` before the run, and, when
/// `truncate_to` is given, cuts its log there 5 s into the run.
fn broker_logs(dir: &Path, key: &str, truncate_to: Option<u64>) {
    let k = dir.join("nodes/n5/kafka");
    std::fs::create_dir_all(&k).unwrap();
    std::fs::write(k.join("server.properties"), "broker.id=2\n").unwrap();
    std::fs::write(
        k.join("logs_state-change.log"),
        format!("[2026-11-28 23:59:59,000] INFO [Broker id=2] Leader {key} with topic id Some(x) starts at leader epoch 4 from offset 0 with partition epoch 4, high watermark 0, ISR [2,1,3], adding replicas [] and removing replicas [] . Previous leader None and previous leader epoch was -1. (state.change.logger)\n"),
    )
    .unwrap();
    let server = truncate_to.map_or(String::new(), |o| {
        format!("[2026-11-29 00:00:05,000] INFO [UnifiedLog partition={key}, dir=/n5/kafka/data] Truncating to offset {o} (kafka.log.UnifiedLog)\n")
    });
    std::fs::write(k.join("logs_server.log"), server).unwrap();
}

#[test]
fn explain_tells_a_lost_write_from_the_stored_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (key, msg, offset) = stored_run(dir);
    broker_logs(dir, &key, Some(offset.saturating_sub(2)));
    let out = run(&["explain", dir.to_str().unwrap(), "--anomaly", "lost-write"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("lost-write #0 {key} msg {msg} offset {offset}")),
        "{t}"
    );
    assert!(t.contains("log evidence only"), "{t}");
    assert!(
        t.contains("confirmed by the segments: unknown; explained by the logs: yes"),
        "{t}"
    );
    assert!(
        t.contains(&format!("broker 2 leads {key} (epoch 4)")),
        "{t}"
    );
    assert!(
        t.contains(&format!("acknowledged at offset {offset} by broker 2")),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "5.0 s broker 2 truncates {key} to offset {}",
            offset.saturating_sub(2)
        )),
        "{t}"
    );
    // The raw line, unless --brief.
    assert!(t.contains("Truncating to offset"), "{t}");
    let brief = run(&[
        "explain",
        dir.to_str().unwrap(),
        "--msg",
        &msg.to_string(),
        "--brief",
    ]);
    assert!(brief.status.success(), "{}", text(&brief));
    assert!(
        !text(&brief).contains("Truncating to offset"),
        "{}",
        text(&brief)
    );
    // Nothing about another message: exit 1.
    let none = run(&["explain", dir.to_str().unwrap(), "--msg", "999999999"]);
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
}

#[test]
fn without_a_truncation_the_loss_stays_unexplained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (key, _, offset) = stored_run(dir);
    // A truncation above the message's offset does not explain its loss.
    broker_logs(dir, &key, Some(offset + 10));
    let out = run(&[
        "explain",
        dir.to_str().unwrap(),
        "--anomaly",
        "lost-write",
        "--n",
        "0",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("explained by the logs: no"), "{t}");
}
