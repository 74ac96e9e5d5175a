//! End-to-end: Ctrl-C (SIGINT) during a run's load heals the fault at once,
//! tears the cluster and environment down, and still checks and reports what
//! was recorded. Needs root, sshd and the artifact cache (scripts/setup).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_heals_tears_down_and_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args([
            "run",
            "--name",
            "ctrlc",
            "--time-limit",
            "25",
            "--nemesis",
            "pause:kafka",
            "--nemesis-quiet",
            "2",
            "--nemesis-duration",
            "60",
            "--store",
        ])
        .arg(dir.path().join("store"))
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut lines = vec![];
    let mut env_name = None;
    let mut interrupted = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        eprintln!("{line}");
        if env_name.is_none() {
            env_name = line
                .split_whitespace()
                .find(|w| w.starts_with("sb-ctrlc-"))
                .map(String::from);
        }
        // Interrupt once the fault is in effect.
        if !interrupted && line.contains("faults: pause kafka") {
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            interrupted = true;
        }
        lines.push(line);
        assert!(Instant::now() < deadline, "run did not end within 240 s");
    }
    let status = child.wait().unwrap();
    assert!(interrupted, "the fault never showed in the progress lines");
    // Interrupted runs report what they recorded; the verdict decides 0 or 1.
    assert!(matches!(status.code(), Some(0) | Some(1)), "{status:?}");
    let run_dir = dir.path().join("store/ctrlc/latest");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["interrupted"], "interrupted by Ctrl-C");
    // The pause was undone as soon as Ctrl-C came, not at the load's end:
    // the fault interval closes well before the 60 s it was planned for.
    let events: Vec<&str> = results["nemesis-events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["f"].as_str().unwrap())
        .filter(|f| *f != "schedule")
        .collect();
    assert_eq!(events.first(), Some(&"pause"), "{events:?}");
    assert!(events.contains(&"heal-all"), "{events:?}");
    let fault = &results["faults"][0];
    let held_s = (fault["end-ns"].as_u64().expect("the pause was undone")
        - fault["start-ns"].as_u64().unwrap()) as f64
        / 1e9;
    assert!(held_s < 30.0, "pause held {held_s} s: {fault}");
    assert!(run_dir.join("report.html").is_file());
    assert!(lines.iter().any(|l| l.contains("phase: env down")));
    // Nothing of the environment is left.
    let list = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["env", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    let name = env_name.expect("the environment's name in the progress lines");
    assert!(!listed.contains(&name), "{name} still listed:\n{listed}");
}
