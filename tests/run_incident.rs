//! End-to-end: `splitbrain run` of a shortened `incident-2020` on real
//! ZooKeeper and Kafka in network namespaces (root, the artifact cache and
//! sshd needed: scripts/setup), asserting the verdict from results.json.

use std::process::Command;
use std::time::Instant;
mod common;
use common::KeepOnPanic;

/// campaigns/incident-2020.toml's first test, shortened for CI, with the
/// campaign's own client settings (a 1.5 s message timeout and one attempt,
/// so sends that hit the split fail or end unknown and go to the DLQ). The
/// fault's duration counts from its planned start, and the rapid-add with a
/// broker move takes 10–30 s to start (broker restart, session expiry, zxid
/// writes), so it is held long enough for the split to last many observer
/// samples (the split-brain checker needs 2 consecutive ones). Nothing is
/// tolerated, as in the campaign: a replay of a send that did persist is
/// `retry-duplicate` (informational), and a real `duplicate` fails the test.
const TEST: &str = r#"
name = "incident-2020-ci"
seed = 2020
time_limit = 60
expect = ["split-brain", "multiple-controllers", "divergent-ensembles"]
cluster = { zookeeper = 3, kafka = 3, zk_session_timeout_ms = 6000 }
kafka = { acks = "all", idempotence = true, replication_factor = 3, min_insync_replicas = 2 }
workload = { rate = 200, senders = 8, consumers = 2, message_timeout_ms = 1500, max_attempts = 1, read_timeout = 40 }
nemesis = { faults = ["rapid-add"], quiet = 5, duration = 50, max_faults = 1, add_count = 4, move_broker = true }
"#;

#[test]
fn shortened_incident_2020_detects_the_split_and_loses_nothing() {
    // Kept on failure (the path is printed) so the run can be inspected.
    let dir = tempfile::tempdir().unwrap();
    eprintln!("run kept in {} if the test fails", dir.path().display());
    let dir = KeepOnPanic(Some(dir));
    let common::FinishedRun {
        out,
        run_dir,
        results,
    } = common::run_test_file(dir.path(), "incident.toml", TEST, "incident-2020-ci");
    let count = |name: &str| results["anomalies"][name]["count"].as_u64().unwrap();
    let counts = &results["counts"];
    eprintln!("anomalies: {}", results["outcome"]);

    // The split is detected ...
    assert!(count("split-brain") >= 1, "{}", results["anomalies"]);
    assert!(
        count("multiple-controllers") >= 1,
        "{}",
        results["anomalies"]
    );
    assert_eq!(results["stats"]["max-simultaneous-leaders"], 2);
    // ... and no message is lost or applied twice.
    assert_eq!(count("lost-write"), 0);
    assert_eq!(count("dlq-lost"), 0);
    assert_eq!(count("effect-duplicate"), 0);
    // Every failed or unknown send went to the DLQ.
    let unacked = counts["failed"].as_u64().unwrap() + counts["unknown"].as_u64().unwrap();
    assert!(counts["dlq"].as_u64().unwrap() >= unacked, "{counts}");
    // The workload's own counts: with one attempt per send, every send
    // that failed or ended unknown put its message in the DLQ, and every
    // DLQ'd message was replayed and read by the end.
    let d = &results["delivery"];
    eprintln!("delivery: {d}");
    let get = |k: &str| {
        d[k].as_u64()
            .unwrap_or_else(|| panic!("delivery.{k} missing: {d}"))
    };
    let unacked_sends = get("sends-fail") + get("sends-info");
    if unacked_sends > 0 {
        assert_eq!(get("resent"), 0, "one attempt per send: {d}");
        assert_eq!(
            get("dlq"),
            unacked_sends,
            "every failed or unknown send DLQ'd: {d}"
        );
        assert_eq!(
            get("replayed"),
            get("dlq"),
            "every DLQ'd message replayed: {d}"
        );
        assert_eq!(get("dlq-read"), get("dlq"), "every DLQ'd message read: {d}");
        assert_eq!(d["dlq-exercised"], true, "{d}");
    } else {
        assert_eq!(d["dlq-exercised"], false, "{d}");
        assert!(
            d["dlq-status"]
                .as_str()
                .unwrap()
                .starts_with("DLQ not exercised in this run"),
            "{d}"
        );
        let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
        assert!(html.contains("DLQ not exercised in this run"));
    }
    assert_eq!(results["status"], "PASS", "{}", results["outcome"]);
    assert_eq!(results["passed"], true, "{}", results["outcome"]);
    assert_eq!(out.status.code(), Some(0));

    // The run directory holds everything.
    for f in [
        "history.jsonl",
        "results.json",
        "junit.xml",
        "report.html",
        "splitbrain.log",
        "test.toml",
    ] {
        assert!(run_dir.join(f).is_file(), "{f} missing");
    }
    assert!(run_dir.join("nodes").is_dir(), "server logs not collected");
    let faults = results["faults"].as_array().unwrap();
    assert!(faults.iter().any(|f| f["f"] == "rapid-add"), "{faults:?}");

    // The real run's report renders in headless Chromium with its verdict,
    // the two leaders and the second controller.
    let dom = chromium_dom(&run_dir.join("report.html"));
    for id in ["latency", "throughput", "zk-modes", "controllers"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "plot {id} missing");
    }
    assert!(dom.contains(
        "<div class=\"status\">PASS</div><div class=\"line\">found exactly the expected"
    ));
    assert!(dom.contains("data-value=\"2 leaders\""));
    assert!(dom.contains("data-value=\"controller 3\""));
}

/// The DOM of `page` as headless Chromium renders it (Debian's chromium,
/// installed by scripts/setup).
fn chromium_dom(page: &std::path::Path) -> String {
    let bin = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed: run scripts/setup");
    let profile = tempfile::tempdir().unwrap();
    let out_path = profile.path().join("dom.html");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::read_to_string(out_path).unwrap()
}
