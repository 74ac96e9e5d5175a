//! End-to-end: the `check` and `gen-history` commands as a user runs them.

use std::path::Path;
use std::process::Command;

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

#[test]
fn clean_generated_history_checks_valid_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = splitbrain(
        &[
            "gen-history",
            "--ops",
            "5000",
            "--seed",
            "9",
            "-o",
            "h.jsonl",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = splitbrain(&["check", "h.jsonl", "--json", "results.json"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("VALID"), "{out}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["valid"], true);
    assert_eq!(results["anomalies"]["lost-write"]["count"], 0);
    assert_eq!(results["anomalies"]["split-brain"]["count"], 0);
    assert!(results["counts"]["acknowledged"].as_u64().unwrap() > 0);
}

#[test]
fn planted_anomalies_give_exit_1_and_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = splitbrain(
        &[
            "gen-history",
            "--ops",
            "8000",
            "--seed",
            "4",
            "--plant",
            "lost-write=3,duplicate=2,phantom=1",
            "-o",
            "h.jsonl",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = splitbrain(
        &["check", "h.jsonl", "--json", "r.json", "--examples", "1"],
        dir.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("INVALID"), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(r["anomalies"]["lost-write"]["count"], 3);
    assert_eq!(
        r["anomalies"]["lost-write"]["examples"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(r["anomalies"]["duplicate"]["count"], 2);
    assert_eq!(r["anomalies"]["phantom"]["count"], 1);
    assert_eq!(r["valid"], false);
}

#[test]
fn bad_input_and_usage_give_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.jsonl"), "not json\n").unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    std::fs::write(
        dir.path().join("orphan.jsonl"),
        "{\"index\":0,\"time\":0,\"process\":1,\"type\":\"ok\",\"f\":\"poll\",\"value\":null}\n",
    )
    .unwrap();
    // msg 1 sent to log "a", then to log "b": bad input, not a phantom.
    let send = |i: u64, p: u64, t: &str, key: &str, off: &str| {
        format!(
            "{{\"index\":{i},\"time\":{i},\"process\":{p},\"type\":\"{t}\",\"f\":\"send\",\"value\":{{\"key\":\"{key}\",\"msg\":1{off}}}}}\n"
        )
    };
    std::fs::write(
        dir.path().join("twologs.jsonl"),
        [
            send(0, 0, "invoke", "a", ""),
            send(1, 0, "ok", "a", ",\"offset\":0"),
            send(2, 1, "invoke", "b", ""),
            send(3, 1, "ok", "b", ",\"offset\":0"),
        ]
        .concat(),
    )
    .unwrap();
    for (args, needle) in [
        (
            &["check", "twologs.jsonl"][..],
            "twologs.jsonl is not a history the checkers can judge: line 3 (operation 2): msg 1",
        ),
        (&["check", "garbage.jsonl"][..], "garbage.jsonl:1:"),
        (&["check", "empty.jsonl"][..], "holds no operations"),
        (&["check", "orphan.jsonl"][..], "no operation in flight"),
        (&["check", "missing.jsonl"][..], "missing.jsonl"),
        (&["check"][..], "HISTORY"),
        (
            &["gen-history", "--ops", "10", "--plant", "nope=1"][..],
            "choose from",
        ),
    ] {
        let (code, out, err) = splitbrain(args, dir.path());
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn retry_duplicates_are_counted_but_leave_the_history_valid() {
    let dir = tempfile::tempdir().unwrap();
    let gen = |plant: &str, out: &str| {
        let (code, _, err) = splitbrain(
            &[
                "gen-history",
                "--ops",
                "6000",
                "--seed",
                "5",
                "--plant",
                plant,
                "-o",
                out,
            ],
            dir.path(),
        );
        assert_eq!(code, 0, "{err}");
    };
    gen("retry-duplicate=2", "retried.jsonl");
    let (code, out, err) = splitbrain(&["check", "retried.jsonl", "--json", "r.json"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("VALID"), "{out}");
    assert!(out.contains("retry-duplicate: 2 (informational"), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(r["anomalies"]["retry-duplicate"]["count"], 2);
    assert_eq!(r["anomalies"]["duplicate"]["count"], 0);
    assert!(r["counts"]["info-sends"].as_u64().unwrap() >= 2);
    // The same history with a single-attempt duplicate instead is invalid.
    gen("duplicate=1", "dup.jsonl");
    let (code, out, _) = splitbrain(&["check", "dup.jsonl"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("found duplicate 1"), "{out}");
}

#[test]
fn truncated_last_line_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, _) = splitbrain(
        &["gen-history", "--ops", "2000", "-o", "h.jsonl"],
        dir.path(),
    );
    assert_eq!(code, 0);
    let path = dir.path().join("h.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"index\":");
    std::fs::write(&path, text).unwrap();
    let (code, out, _) = splitbrain(&["check", "h.jsonl"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: line"), "{out}");
}

#[test]
fn the_documented_example_history_is_valid() {
    // The last ```json block of docs/history.md is a complete history.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/history.md")).unwrap();
    let block = doc
        .rsplit("```json\n")
        .next()
        .and_then(|b| b.split("```").next())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.jsonl"), block).unwrap();
    let (code, out, err) = splitbrain(&["check", "h.jsonl"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replayed=1"), "{out}");
}

/// One observer line: `leaders` lists the server ids that report leader;
/// `controllers` is the `/controller` each of servers 1..=4 serves.
fn observe_line(index: usize, time_s: u64, leaders: &[u64], controllers: [i32; 4]) -> String {
    let zk: Vec<String> = (1..=4u64)
        .map(|id| {
            let mode = if leaders.contains(&id) { "leader" } else { "follower" };
            // Server 4 believes in a membership of its own (as the
            // incident's newcomers did), so leading it is a second brain.
            let (epoch, members) = if id == 4 { (1, "[4]") } else { (2, "[1,2,3]") };
            format!(
                r#"{{"node":"n{id}","server_id":{id},"mode":"{mode}","epoch":{epoch},"members":{members},"controller":{},"cluster_id":"c1"}}"#,
                controllers[id as usize - 1]
            )
        })
        .collect();
    format!(
        r#"{{"index":{index},"time":{},"process":"observer","type":"ok","f":"observe","value":{{"zookeeper":[{}],"kafka":[{{"node":"k1","broker_id":1,"controller":{}}}]}}}}"#,
        time_s * 1_000_000_000,
        zk.join(","),
        controllers[0]
    )
}

#[test]
fn observer_samples_add_the_split_brain_checker_to_one_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"send","value":{"key":"q","msg":1}}"#.to_string(),
        r#"{"index":1,"time":1,"process":0,"type":"ok","f":"send","value":{"key":"q","msg":1,"offset":0}}"#.to_string(),
    ];
    // Healthy, then 10 s with server 4 leading its own group and serving
    // another controller, then healthy again.
    for s in 0..14u64 {
        let split = (2..12).contains(&s);
        let (leaders, ctl): (&[u64], [i32; 4]) = if split {
            (&[1, 4], [1, 1, 1, 3])
        } else {
            (&[1], [1, 1, 1, 1])
        };
        lines.push(observe_line(lines.len(), 1 + s, leaders, ctl));
    }
    let n = lines.len();
    lines.push(format!(
        r#"{{"index":{n},"time":99000000000,"process":5,"type":"invoke","f":"poll","value":null}}"#
    ));
    lines.push(format!(
        r#"{{"index":{},"time":99000000001,"process":5,"type":"ok","f":"poll","value":{{"records":{{"q":[[0,1]]}},"applied":[1]}}}}"#,
        n + 1
    ));
    std::fs::write(dir.path().join("h.jsonl"), lines.join("\n") + "\n").unwrap();
    let (code, out, err) = splitbrain(&["check", "h.jsonl", "--json", "r.json"], dir.path());
    assert_eq!(code, 1, "{out}{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(
        r["checkers"],
        serde_json::json!(["queue", "effects", "split-brain"])
    );
    assert_eq!(r["anomalies"]["split-brain"]["count"], 1);
    assert_eq!(r["anomalies"]["multiple-controllers"]["count"], 1);
    assert_eq!(r["anomalies"]["divergent-ensembles"]["count"], 1);
    assert_eq!(
        r["anomalies"]["divergent-ensembles"]["examples"][0]["path"],
        "/controller"
    );
    assert_eq!(r["anomalies"]["lost-write"]["count"], 0);
    assert_eq!(r["counts"]["observations"], 14);
    // The split lasted 10 samples: requiring 11 consecutive ones reports
    // none of it (and the queue part is valid).
    let (code, out, err) = splitbrain(
        &[
            "check",
            "h.jsonl",
            "--split-brain-samples",
            "11",
            "--json",
            "r2.json",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let r2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r2.json")).unwrap())
            .unwrap();
    assert_eq!(r2["anomalies"]["split-brain"]["count"], 0);
    assert_eq!(r2["anomalies"]["multiple-controllers"]["count"], 0);
    let (code, _, err) = splitbrain(
        &["check", "h.jsonl", "--split-brain-samples", "0"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn transactional_histories_get_the_txn_checker_with_cycles_explained() {
    let dir = tempfile::tempdir().unwrap();
    // Clean: Kafka's own G0 and int-send-skip are informational.
    let (code, _, err) = splitbrain(
        &[
            "gen-history",
            "--txn",
            "--ops",
            "4000",
            "--seed",
            "2",
            "-o",
            "clean.jsonl",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = splitbrain(&["check", "clean.jsonl", "--json", "c.json"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("VALID"), "{out}");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("c.json")).unwrap()).unwrap();
    assert!(
        c["checkers"].as_array().unwrap().contains(&"txn".into()),
        "{c}"
    );
    assert!(c["counts"]["txns"].as_u64().unwrap() >= 4000);
    assert!(c["anomalies"]["G0"]["count"].as_u64().unwrap() > 0);

    let (code, _, err) = splitbrain(
        &[
            "gen-history",
            "--txn",
            "--ops",
            "4000",
            "--seed",
            "3",
            "--plant",
            "G1c=2,G1c-realtime=1,G1a=1,lost-write=1",
            "-o",
            "h.jsonl",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = splitbrain(&["check", "h.jsonl", "--json", "r.json"], dir.path());
    assert_eq!(code, 1, "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    for (name, n) in [
        ("G1c", 2),
        ("G1c-realtime", 1),
        ("G1a", 1),
        ("lost-write", 1),
        ("G1c-process", 0),
    ] {
        assert_eq!(
            r["anomalies"][name]["count"], n,
            "{name}: {}",
            r["anomalies"][name]
        );
    }
    let step = &r["anomalies"]["G1c"]["examples"][0]["cycle"][0];
    assert_eq!(step["edge"], "wr", "{step}");
    assert!(step["why"].as_str().unwrap().contains("polled"), "{step}");
    // Transactional plants are refused without --txn, and the other way round.
    let (code, _, err) = splitbrain(
        &[
            "gen-history",
            "--txn",
            "--ops",
            "10",
            "--plant",
            "phantom=1",
        ],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot be planted in a transactional history"),
        "{err}"
    );
}
