//! End-to-end: `splitbrain report` and `splitbrain serve` on a stored run,
//! and the HTML report rendered by headless Chromium.
//!
//! The history is written here by hand in the shape of the 2020 incident
//! (steady sends and polls; at 20 s four new ZooKeeper servers elect a second
//! leader and broker 3 makes itself controller there; its sends fail and go
//! to the DLQ; at 40 s recovery; replay at the end), so the report has two
//! leaders and two controllers to show.

use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn splitbrain(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run splitbrain");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Operations collected out of order, written sorted by time (stable).
struct History {
    ops: Vec<(u64, Value)>,
}

impl History {
    fn op(&mut self, time_ms: u64, process: Value, kind: &str, f: &str, value: Value) {
        self.ops.push((
            time_ms,
            json!({"process": process, "type": kind, "f": f, "value": value}),
        ));
    }

    fn render(mut self) -> String {
        self.ops.sort_by_key(|(t, _)| *t);
        let mut text = String::new();
        for (index, (t, mut op)) in self.ops.into_iter().enumerate() {
            op["index"] = json!(index);
            op["time"] = json!(t * 1_000_000);
            writeln!(text, "{op}").unwrap();
        }
        text
    }
}

fn observation(t: u64) -> Value {
    let split = (20_000..40_000).contains(&t);
    let mut zk = vec![];
    for id in 1..=3u64 {
        zk.push(json!({"node": format!("n{id}"), "server_id": id,
                       "mode": if id == 1 { "leader" } else { "follower" },
                       "epoch": 1, "members": [1, 2, 3], "controller": 1, "cluster_id": "A"}));
    }
    if split {
        for id in 4..=7u64 {
            let mode = if t < 21_000 {
                "looking"
            } else if id == 7 {
                "leader"
            } else {
                "follower"
            };
            zk.push(
                json!({"node": format!("n{id}"), "server_id": id, "mode": mode, "epoch": 1,
                           "members": [1, 2, 3, 4, 5, 6, 7], "controller": 3, "cluster_id": "B"}),
            );
        }
    }
    let kafka: Vec<Value> = (1..=3)
        .map(|b| {
            let c = if split && b == 3 && t >= 21_000 { 3 } else { 1 };
            json!({"node": format!("n{}", 7 + b), "broker_id": b, "controller": c})
        })
        .collect();
    json!({"zookeeper": zk, "kafka": kafka})
}

/// 60 s of history: 2 producers, 1 consumer, observer every 500 ms.
fn incident_history() -> String {
    let mut h = History { ops: vec![] };
    let mut offsets = [0u64; 3];
    let mut pending_read: Vec<(usize, u64, u64)> = vec![];
    let mut dlq = vec![];
    let mut msg = 0u64;
    for t in (0..60_000).step_by(100) {
        if t % 500 == 0 {
            h.op(t, json!("observer"), "ok", "observe", observation(t));
        }
        if t == 20_000 {
            h.op(
                t,
                json!("nemesis"),
                "info",
                "rapid-add",
                json!({"new_servers": [4, 5, 6, 7], "moved_broker": 3}),
            );
        }
        if t == 40_000 {
            h.op(
                t,
                json!("nemesis"),
                "info",
                "remove",
                json!({"servers": [4, 5, 6, 7]}),
            );
        }
        for p in 0..2u64 {
            let key = (msg % 3) as usize;
            let k = format!("queue-{key}");
            h.op(t, json!(p), "invoke", "send", json!({"key": k, "msg": msg}));
            // Log queue-2 is led by the moved broker while the split lasts.
            if key == 2 && (21_000..40_000).contains(&t) {
                h.op(
                    t + 30 + p * 7,
                    json!(p),
                    "fail",
                    "send",
                    json!({"key": k, "msg": msg}),
                );
                h.op(
                    t + 40,
                    json!("dlq"),
                    "ok",
                    "dlq",
                    json!({"key": k, "msg": msg}),
                );
                dlq.push((key, msg));
            } else {
                let lat = 2 + (msg * 7919) % 15;
                h.op(
                    t + lat,
                    json!(p),
                    "ok",
                    "send",
                    json!({"key": k, "msg": msg, "offset": offsets[key]}),
                );
                pending_read.push((key, offsets[key], msg));
                offsets[key] += 1;
            }
            msg += 1;
        }
        if t % 200 == 0 {
            read(&mut h, t + 50, &mut pending_read);
        }
    }
    // Replay the DLQ after recovery, then a final read.
    for (i, (key, m)) in dlq.into_iter().enumerate() {
        let t = 60_000 + i as u64 * 15;
        let k = format!("queue-{key}");
        h.op(t, json!(9), "invoke", "replay", json!({"key": k, "msg": m}));
        h.op(
            t + 5,
            json!(9),
            "ok",
            "replay",
            json!({"key": k, "msg": m, "offset": offsets[key]}),
        );
        pending_read.push((key, offsets[key], m));
        offsets[key] += 1;
    }
    read(&mut h, 62_000, &mut pending_read);
    h.render()
}

fn read(h: &mut History, t: u64, pending: &mut Vec<(usize, u64, u64)>) {
    let mut records = serde_json::Map::new();
    let mut applied = vec![];
    for (key, offset, m) in pending.drain(..) {
        records
            .entry(format!("queue-{key}"))
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(json!([offset, m]));
        applied.push(m);
    }
    h.op(t, json!(5), "invoke", "poll", Value::Null);
    h.op(
        t + 20,
        json!(5),
        "ok",
        "poll",
        json!({"records": records, "applied": applied}),
    );
}

/// The two leaders also serve different `/controller`s: divergent ensembles.
const EXPECT: &str = r#"["split-brain", "multiple-controllers", "divergent-ensembles"]"#;

fn stored_run(root: &Path, expect: &str) -> PathBuf {
    let dir = root.join("store/incident/20261122T000000Z");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("history.jsonl"), incident_history()).unwrap();
    std::fs::write(
        dir.join("test.toml"),
        format!("name = \"incident\"\nseed = 42\nexpect = {expect}\n[kafka]\nacks = \"all\"\n"),
    )
    .unwrap();
    dir
}

#[test]
fn report_of_an_incident_shows_expected_anomalies_and_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = stored_run(tmp.path(), EXPECT);
    let (code, out, err) = splitbrain(&["report", dir.to_str().unwrap()], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS: found exactly the expected"), "{out}");

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], false);
    assert_eq!(results["passed"], true);
    assert_eq!(results["anomalies"]["split-brain"]["count"], 1);
    assert_eq!(results["anomalies"]["multiple-controllers"]["count"], 1);
    assert_eq!(results["anomalies"]["divergent-ensembles"]["count"], 1);
    assert_eq!(results["anomalies"]["lost-write"]["count"], 0);
    assert_eq!(results["anomalies"]["dlq-lost"]["count"], 0);
    assert_eq!(results["stats"]["max-simultaneous-leaders"], 2);
    assert!(results["stats"]["ops"]["send"]["fail"].as_u64().unwrap() > 50);
    assert!(
        results["stats"]["latency-ms"]["send"]["p50"]
            .as_f64()
            .unwrap()
            >= 2.0
    );
    assert!(
        results["stats"]["latency-ms"]["send"]["max"]
            .as_f64()
            .unwrap()
            <= 45.0
    );
    let faults = results["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["f"], "rapid-add");
    assert_eq!(faults[0]["start-ns"], 20_000_000_000u64);
    assert_eq!(faults[0]["end-ns"], 40_000_000_000u64);
    assert_eq!(results["config"]["seed"], 42);

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"tests="5" failures="0" errors="0""#),
        "{junit}"
    );
    assert!(junit.contains(r#"name="run""#), "{junit}");
    assert!(!junit.contains("<error"), "{junit}");
    assert_eq!(results["status"], "PASS");
    // No delivery counts in this handmade history: the checker's DLQ count.
    assert!(
        results["delivery"]["dlq-status"]
            .as_str()
            .unwrap()
            .ends_with(
                "messages went to the DLQ (the workload's delivery counts were not recorded)"
            ),
        "{}",
        results["delivery"]
    );
    assert!(
        junit.contains("split-brain 1 (expected by the test)"),
        "{junit}"
    );
}

#[test]
fn unexpected_anomalies_fail_with_exit_1_and_junit_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = stored_run(tmp.path(), "[]");
    let (code, out, _) = splitbrain(&["report", dir.to_str().unwrap()], tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL: unexpected divergent-ensembles, multiple-controllers, split-brain"),
        "{out}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"tests="4" failures="1" errors="0""#),
        "{junit}"
    );
    assert!(
        junit.contains(
            "anomalies found: divergent-ensembles 1, multiple-controllers 1, split-brain 1"
        ),
        "{junit}"
    );
    let (code, _, err) = splitbrain(&["report", "/nonexistent/run"], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("store/<test>/latest"), "{err}");
}

/// A small run of a workload: 20 messages sent to queue-0 and read back,
/// the workload's `config`, `final-read` (complete or not) and `delivery`
/// events, and `extra` events (time ms, process, f, value) on top.
fn small_run(root: &Path, complete: bool, extra: &[(u64, &str, &str, Value)]) -> PathBuf {
    let mut h = History { ops: vec![] };
    h.op(0, json!("workload"), "ok", "config", json!({"options": {}}));
    let mut records = vec![];
    for m in 0..20u64 {
        let k = "queue-0";
        h.op(
            100 + m * 10,
            json!(0),
            "invoke",
            "send",
            json!({"key": k, "msg": m}),
        );
        h.op(
            105 + m * 10,
            json!(0),
            "ok",
            "send",
            json!({"key": k, "msg": m, "offset": m}),
        );
        // An incomplete read stops short of the last five.
        if complete || m < 15 {
            records.push(json!([m, m]));
        }
    }
    h.op(400, json!(1), "invoke", "poll", Value::Null);
    h.op(
        410,
        json!(1),
        "ok",
        "poll",
        json!({"records": {"queue-0": records}}),
    );
    let behind = if complete {
        json!([])
    } else {
        json!([["queue-0", 19, 14]])
    };
    h.op(
        500,
        json!("workload"),
        "ok",
        "final-read",
        json!({"complete": complete, "waited": 100, "behind": behind, "stopped": false}),
    );
    h.op(
        510,
        json!("workload"),
        "ok",
        "delivery",
        json!({"messages": 20, "sends-ok": 20, "sends-fail": 0, "sends-info": 0, "resent": 0,
               "dlq": 0, "replayed": 0, "replayed-ok": 0, "dlq-read": 0, "dlq-exercised": false,
               "summary": "20 messages sent: 20 sends ok, 0 fail, 0 info; 0 re-sent with the same msg; DLQ not exercised in this run (no send failed or was unknown)"}),
    );
    for (t, process, f, value) in extra {
        let kind = if *process == "nemesis" { "info" } else { "ok" };
        h.op(*t, json!(process), kind, f, value.clone());
    }
    let dir = root.join("store/small/20261129T000000Z");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("history.jsonl"), h.render()).unwrap();
    std::fs::write(dir.join("test.toml"), "name = \"small\"\nseed = 1\n").unwrap();
    dir
}

fn results_of(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn a_clean_small_run_passes_and_says_the_dlq_was_not_exercised() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_run(tmp.path(), true, &[]);
    let (code, out, err) = splitbrain(&["report", dir.to_str().unwrap()], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let r = results_of(&dir);
    assert_eq!(r["status"], "PASS");
    assert_eq!(r["outcome"], "PASS: no anomalies");
    assert_eq!(r["problems"], json!([]));
    assert_eq!(r["delivery"]["sends-ok"], 20);
    assert_eq!(r["delivery"]["dlq-exercised"], false);
    assert_eq!(
        r["delivery"]["dlq-status"],
        "DLQ not exercised in this run (no send failed or was unknown)"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<p id=\"dlq-status\"><b>DLQ not exercised in this run"));
    assert!(html.contains("dlq-lost <span class=\"note\">(DLQ not exercised in this run)"));
}

#[test]
fn a_fault_error_makes_the_run_error_with_exit_2_and_a_junit_error() {
    let tmp = tempfile::tempdir().unwrap();
    let error = json!({"fault": {"fault": "partition", "kind": "isolate-kafka-controller"},
                       "phase": "start", "error": "no Kafka controller known", "fatal": true});
    let dir = small_run(tmp.path(), true, &[(300, "nemesis", "fault-error", error)]);
    let (code, out, err) = splitbrain(&["report", dir.to_str().unwrap()], tmp.path());
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.starts_with("ERROR: fault error of partition isolate-kafka-controller (start) at 0.3 s: no Kafka controller known"), "{out}");
    let r = results_of(&dir);
    assert_eq!(r["status"], "ERROR");
    assert!(
        r["outcome"].as_str().unwrap().starts_with("ERROR:"),
        "{}",
        r["outcome"]
    );
    assert!(
        r["outcome"]
            .as_str()
            .unwrap()
            .ends_with("checkers: no anomalies"),
        "{}",
        r["outcome"]
    );
    assert_eq!(r["passed"], false);
    assert_eq!(r["valid"], true);
    assert_eq!(r["problems"][0]["kind"], "ERROR");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"failures="0" errors="1""#), "{junit}");
    assert!(
        junit.contains(r#"<error message="ERROR: fault error"#),
        "{junit}"
    );
    assert!(!junit.contains("<failure"), "{junit}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html
        .contains("<div id=\"outcome\" class=\"outcome error\"><div class=\"status\">ERROR</div>"));
    // `check` of the bare history says the same.
    let history = dir.join("history.jsonl");
    let (code, out, _) = splitbrain(&["check", history.to_str().unwrap()], tmp.path());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("VALID"), "{out}");
    assert!(out.contains("ERROR: fault error of partition"), "{out}");
}

#[test]
fn the_observer_stopping_on_its_own_makes_the_run_error() {
    let tmp = tempfile::tempdir().unwrap();
    let stopped = json!({"samples": 12, "reason": "error", "error": "history write failed"});
    let dir = small_run(
        tmp.path(),
        true,
        &[(200, "observer", "observer-stopped", stopped)],
    );
    let (code, out, _) = splitbrain(&["report", dir.to_str().unwrap()], tmp.path());
    assert_eq!(code, 2, "{out}");
    let r = results_of(&dir);
    assert_eq!(r["status"], "ERROR");
    assert!(
        r["outcome"].as_str().unwrap().contains(
            "the observer stopped on its own (error: history write failed) after 12 samples"
        ),
        "{}",
        r["outcome"]
    );
    // Stopped when asked, at the end: no problem.
    let tmp = tempfile::tempdir().unwrap();
    let stopped = json!({"samples": 12, "reason": "requested", "error": null});
    let dir = small_run(
        tmp.path(),
        true,
        &[(600, "observer", "observer-stopped", stopped)],
    );
    assert_eq!(
        splitbrain(&["report", dir.to_str().unwrap()], tmp.path()).0,
        0
    );
}

#[test]
fn an_incomplete_final_read_makes_the_run_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_run(tmp.path(), false, &[]);
    let (code, out, _) = splitbrain(&["report", dir.to_str().unwrap()], tmp.path());
    assert_eq!(code, 2, "{out}");
    let r = results_of(&dir);
    assert_eq!(r["status"], "UNKNOWN");
    assert!(
        r["outcome"].as_str().unwrap().starts_with(
            "UNKNOWN: the final read did not reach the end of every log: queue-0 read up to offset 14 of 19"
        ),
        "{}",
        r["outcome"]
    );
    assert_eq!(r["passed"], false);
    // The five unread messages are unseen (informational): the history is valid.
    assert_eq!(r["valid"], true);
    assert_eq!(r["anomalies"]["unseen"]["count"], 5);
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"type="UNKNOWN""#), "{junit}");
    // Each unseen example in words, its raw JSON folded under it.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("msg 15 sent to queue-0 by process 0, acknowledged at offset 15 at 0.3 s; never read, but queue-0 was read only up to offset 14: not proof of loss"),
        "{html}"
    );
    assert!(html.contains("<details><summary>raw JSON</summary>"));
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_lists_runs_and_serves_reports_on_localhost_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = stored_run(tmp.path(), EXPECT);
    assert_eq!(
        splitbrain(&["report", dir.to_str().unwrap()], tmp.path()).0,
        0
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["serve", "store", "--port", "0", "--max-requests", "3"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1];
    while !first.ends_with('\n') && Instant::now() < deadline {
        if stdout.read(&mut buf).unwrap() == 0 {
            break;
        }
        first.push(buf[0] as char);
    }
    assert!(first.contains("http://127.0.0.1:"), "{first}");
    let port: u16 = first
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let index = http_get(port, "/");
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(
        index.contains("incident/20261122T000000Z/report.html"),
        "{index}"
    );
    assert!(
        index.contains("PASS: found exactly the expected"),
        "{index}"
    );
    let report = http_get(port, "/incident/20261122T000000Z/report.html");
    assert!(
        report.contains("<svg class=\"plot\" id=\"zk-modes\""),
        "{}",
        &report[..200]
    );
    let escape = http_get(port, "/../../etc/passwd");
    assert!(escape.starts_with("HTTP/1.1 404"), "{escape}");
    let status = child.wait().unwrap();
    assert!(status.success());
}

/// Chromium's binary, if installed (Debian's `chromium`, see scripts/setup).
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs Chromium and returns its standard output (the DOM with --dump-dom).
fn run_chromium(bin: &Path, extra: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    // Output to a file, not a pipe: a full pipe would block the browser.
    let out_path = profile.path().join("stdout");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null());
    // Bounded: a hung browser fails the test instead of hanging it.
    let mut child = cmd.stdout(out_file).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            return std::fs::read_to_string(&out_path).unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PNG width and height from the IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        // Not silently green: say loudly why nothing was checked.
        panic!("chromium is not installed: run scripts/setup (installs Debian's chromium)");
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = stored_run(tmp.path(), EXPECT);
    assert_eq!(
        splitbrain(&["report", dir.to_str().unwrap()], tmp.path()).0,
        0
    );
    let url = format!("file://{}", dir.join("report.html").display());

    let dom = run_chromium(&bin, &["--dump-dom"], &url);
    for id in ["latency", "throughput", "zk-modes", "controllers"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "plot {id} missing");
    }
    assert!(
        dom.contains("INVALID: divergent-ensembles 1, multiple-controllers 1, split-brain 1"),
        "verdict missing"
    );
    assert!(dom.contains(
        "<div class=\"status\">PASS</div><div class=\"line\">found exactly the expected"
    ));
    // The outcome comes first, big, then the checkers' verdict.
    let outcome = dom
        .find("<div id=\"outcome\" class=\"outcome pass\"><div class=\"status\">PASS</div>")
        .expect("the outcome box");
    let verdict = dom.find("<div id=\"verdict\"").expect("the verdict box");
    let anomalies = dom
        .find("<table id=\"anomalies\"")
        .expect("the anomaly table");
    assert!(
        outcome < verdict && verdict < anomalies,
        "{outcome} {verdict} {anomalies}"
    );
    // Each example in words, with its raw JSON folded under it.
    assert!(
        dom.contains("ZooKeeper servers 1, 7 each led a quorum from 21.0 s"),
        "split-brain sentence missing"
    );
    assert!(dom.contains("brokers 1, 3 acted as Kafka controller at once"));
    assert!(dom.contains("<details><summary>raw JSON</summary>"));
    // Two leaders visible: the leaders lane has a "2 leaders" segment.
    assert!(dom.contains("data-value=\"2 leaders\""));
    assert!(dom.contains("data-value=\"controller 3\""));
    assert!(
        dom.matches("<circle").count() > 500,
        "latency points missing"
    );

    let shot = tmp.path().join("report.png");
    let blank_shot = tmp.path().join("blank.png");
    let size = "--window-size=1200,2000";
    run_chromium(
        &bin,
        &[&format!("--screenshot={}", shot.display()), size],
        &url,
    );
    run_chromium(
        &bin,
        &[&format!("--screenshot={}", blank_shot.display()), size],
        "data:text/html,<html><body></body></html>",
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    let blank = std::fs::read(&blank_shot).expect("a blank screenshot");
    assert_eq!(png_size(&png), (1200, 2000));
    // A blank page compresses to almost nothing; the rendered report's text
    // and plots do not.
    assert!(
        png.len() > 10 * blank.len(),
        "screenshot looks blank: {} bytes vs {} for an empty page",
        png.len(),
        blank.len()
    );
    if let Ok(keep) = std::env::var("SPLITBRAIN_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
