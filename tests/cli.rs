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
    for (args, needle) in [
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
