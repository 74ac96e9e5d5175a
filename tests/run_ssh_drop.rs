//! End-to-end: the SSH sessions of a run's control layer drop mid-load
//! (every node's session sshd processes killed, as a restart of sshd or a
//! network cut does to them). The run reconnects each node, records it in
//! the history as `ssh-reconnect` events, and still finishes: logs
//! collected, cluster and environment down. The sessions are idle when
//! they drop (between the nemesis's commands), so the next command on
//! each node runs on its recovered session and the faults still happen
//! (seen: PASS); a drop in the middle of a command would fail that
//! command (not retried) and make the run ERROR, as it should.
//! Needs root, sshd and the artifact cache (scripts/setup).

use serde_json::Value;
use splitbrain_environments::nodes::netns;
use splitbrain_environments::EnvState;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

const TIME_LIMIT_S: u64 = 40;

/// Parent pid and command name of every process on this machine.
fn process_table() -> HashMap<u32, (u32, String)> {
    let mut table = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        table.insert(pid, (ppid, comm));
    }
    table
}

/// The sshd processes below the listening sshd `listener` (one per open
/// connection, and their privilege-separated children): learned by parent
/// pid from one node's own sshd, never by a name pattern.
fn session_sshds(listener: u32) -> Vec<u32> {
    let table = process_table();
    let mut found = vec![];
    let mut frontier = vec![listener];
    while let Some(parent) = frontier.pop() {
        for (&pid, (ppid, comm)) in &table {
            if *ppid == parent && comm.starts_with("sshd") {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn dropped_sessions_are_reconnected_and_recorded_during_a_run() {
    let store = tempfile::tempdir().unwrap();
    let time_limit = TIME_LIMIT_S.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["run", "--name", "sshdrop", "--time-limit", &time_limit])
        .args(["--nemesis", "kill:kafka", "--store"])
        .arg(store.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut env_name = None;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some((_, rest)) = line.split_once(": environment sb-") {
                    env_name = rest.split_whitespace().next().map(|n| format!("sb-{n}"));
                }
                if line.contains("phase: load") {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("no load phase within 240 s");
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the run ended before its load"),
        }
    }
    let env_name = env_name.expect("the environment's name in the progress lines");
    let state = EnvState::load(&env_name).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    // Drop every node's control session mid-load.
    let mut killed = 0;
    for node in &state.nodes {
        let pid_file = state.dir().join("sshd").join(&node.name).join("sshd.pid");
        let listener: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for pid in session_sshds(listener) {
            // SAFETY: kill(2) of a pid learned from this node's sshd.
            if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    assert!(killed >= state.nodes.len(), "killed {killed} session sshds");
    let dropped_at = Instant::now();

    let deadline = Instant::now() + Duration::from_secs(TIME_LIMIT_S + 400);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The rest of the progress lines, up to the end of stderr.
    let mut seen = vec![];
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
        seen.push(line);
    }
    eprintln!(
        "run ended {:.1} s after the drop: {status:?}",
        dropped_at.elapsed().as_secs_f64()
    );

    let dir = store.path().join("sshdrop").join("latest");
    let ops = history(&dir);
    let events: Vec<&Value> = ops
        .iter()
        .filter(|o| o["process"] == "control" && o["f"] == "ssh-reconnect")
        .collect();
    for e in &events {
        eprintln!("MEASURED: {}", e["value"]);
    }
    let dropped: Vec<&str> = events
        .iter()
        .filter(|e| e["value"]["kind"] == "dropped")
        .filter_map(|e| e["value"]["node"].as_str())
        .collect();
    assert!(!dropped.is_empty(), "no drop recorded: {events:?}");
    for node in &dropped {
        assert!(
            events
                .iter()
                .any(|e| e["value"]["node"] == *node && e["value"]["kind"] == "reconnected"),
            "{node} dropped and was not reconnected: {events:?}"
        );
    }
    assert!(
        !events.iter().any(|e| e["value"]["kind"] == "gave-up"),
        "{events:?}"
    );
    // The run went on over the new sessions: it reported and tore down;
    // results.json and the report say which sessions dropped and came back.
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let ssh = &results["ssh-sessions"];
    eprintln!("MEASURED: {}", ssh["summary"]);
    assert_eq!(ssh["dropped"], dropped.len(), "{ssh}");
    assert_eq!(ssh["gave-up"], 0, "{ssh}");
    assert!(
        ssh["reconnected"].as_u64().unwrap() >= dropped.len() as u64,
        "{ssh}"
    );
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        report.contains("id=\"ssh-sessions\""),
        "no SSH line in report.html"
    );
    assert!(
        seen.iter().any(|l| l.contains("phase: env down")),
        "no env down"
    );
    let left = netns::leftovers(&env_name);
    assert!(left.is_empty(), "left of {env_name}: {left:?}");
}
