//! End-to-end: Ctrl-C (SIGINT) during a run's load. The first stops the
//! load and heals the fault at once, then the run reads back, tears down
//! and reports, well before its time limit; a second skips the DLQ replay
//! and the final read and tears down at once, still writing results.json.
//! Needs root, sshd and the artifact cache (scripts/setup).

use serde_json::Value;
use splitbrain_environments::nodes::netns;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Load period of these runs: what the run would last without Ctrl-C.
const TIME_LIMIT_S: u64 = 120;

/// One run at a time: each starts a whole cluster, and the timings measured
/// mean little on a machine busy with another.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A `splitbrain run` whose stderr lines arrive with their arrival time.
struct Run {
    _one_at_a_time: MutexGuard<'static, ()>,
    child: Child,
    started: Instant,
    lines: Receiver<(Instant, String)>,
    seen: Vec<String>,
    store: tempfile::TempDir,
}

impl Run {
    /// Starts `splitbrain run --name NAME` with a long pause of `target`
    /// Kafka brokers from 2 s into the load (beyond its end).
    fn start(name: &str, target: &str) -> Run {
        let one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let store = tempfile::tempdir().unwrap();
        let time_limit = TIME_LIMIT_S.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
            .args(["run", "--name", name, "--time-limit", &time_limit])
            .args(["--nemesis", target, "--nemesis-quiet", "2"])
            .args(["--nemesis-duration", "300", "--store"])
            .arg(store.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Run {
            _one_at_a_time: one_at_a_time,
            child,
            started: Instant::now(),
            lines,
            seen: vec![],
            store,
        }
    }

    /// When the first line containing `what` arrived (within `limit`).
    fn wait_for_line(&mut self, what: &str, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((at, line)) => {
                    let found = line.contains(what);
                    self.seen.push(line);
                    if found {
                        return at;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("no line with {what:?} within {limit:?}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the run ended before a line with {what:?}")
                }
            }
        }
    }

    /// Sends SIGINT (what Ctrl-C sends); when.
    fn interrupt(&self) -> Instant {
        // SAFETY: kill(2) of the child this test started.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) },
            0
        );
        Instant::now()
    }

    /// Waits for the run to end (killing it after `limit`); its status and
    /// when it ended.
    fn wait_for_exit(&mut self, limit: Duration) -> (ExitStatus, Instant) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let ended = Instant::now();
                self.seen.extend(self.lines.try_iter().map(|(_, l)| l));
                return (status, ended);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the run did not end within {limit:?} of waiting");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn run_dir(&self, name: &str) -> PathBuf {
        self.store.path().join(name).join("latest")
    }

    /// The environment's name, from the progress lines.
    fn env_name(&self) -> String {
        self.seen
            .iter()
            .find_map(|l| {
                let (_, rest) = l.split_once(": environment sb-")?;
                rest.split_whitespace().next().map(|n| format!("sb-{n}"))
            })
            .expect("the environment's name in the progress lines")
    }
}

/// The history's operations.
fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn seconds(op: &Value) -> f64 {
    op["time"].as_u64().unwrap() as f64 / 1e9
}

/// The workload's `stop` event at `level` ("load" or "now").
fn stop_event<'a>(ops: &'a [Value], level: &str) -> &'a Value {
    ops.iter()
        .find(|o| o["process"] == "workload" && o["f"] == "stop" && o["value"]["level"] == level)
        .unwrap_or_else(|| {
            panic!("no stop event at level {level}: Ctrl-C did not reach the workload")
        })
}

fn results(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json"))
        .unwrap_or_else(|e| panic!("no results.json in {}: {e}", dir.display()));
    serde_json::from_str(&text).unwrap()
}

/// Nothing of environment `name` is listed or left on the system.
fn assert_env_gone(name: &str) {
    let list = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["env", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(!listed.contains(name), "{name} still listed:\n{listed}");
    let left = netns::leftovers(name);
    assert!(left.is_empty(), "left of {name}: {left:?}");
}

#[test]
fn ctrl_c_stops_the_load_heals_at_once_and_still_reports() {
    let mut run = Run::start("ctrlc", "pause:kafka");
    let load_seen = run.wait_for_line("phase: load", Duration::from_secs(180));
    // Ctrl-C 25 s into the load, the pause (from 2 s on) in effect.
    std::thread::sleep(Duration::from_secs(25));
    let signalled = run.interrupt();
    let (status, ended) = run.wait_for_exit(Duration::from_secs(TIME_LIMIT_S + 180));
    let to_exit = (ended - signalled).as_secs_f64();
    eprintln!(
        "MEASURED: Ctrl-C at {:.1} s of the load ({:.1} s after start); exit {to_exit:.1} s later, {:.1} s after start",
        (signalled - load_seen).as_secs_f64(),
        (signalled - run.started).as_secs_f64(),
        (ended - run.started).as_secs_f64()
    );
    // One Ctrl-C still reads everything back: PASS or FAIL, not UNKNOWN.
    assert!(matches!(status.code(), Some(0) | Some(1)), "{status:?}");
    // Without Ctrl-C the load alone would go on for 95 s more.
    assert!(to_exit < 45.0, "exit {to_exit:.1} s after Ctrl-C");
    assert!(
        run.seen
            .iter()
            .any(|l| l.contains("Ctrl-C again to skip drain and final read")),
        "the progress never said how to skip"
    );

    let dir = run.run_dir("ctrlc");
    let results = results(&dir);
    assert_eq!(results["interrupted"], "interrupted by Ctrl-C");
    assert!(dir.join("report.html").is_file());
    let ops = history(&dir);
    // The history's clock starts a little before the "phase: load" line, so
    // this is at most the signal's time in it.
    let signal_s = (signalled - load_seen).as_secs_f64();
    let stop_s = seconds(stop_event(&ops, "load"));
    let heal = ops
        .iter()
        .find(|o| o["process"] == "nemesis" && (o["f"] == "heal" || o["f"] == "heal-all"))
        .expect("no heal event");
    let heal_s = seconds(heal);
    eprintln!("MEASURED: stop event at {stop_s:.2} s, heal at {heal_s:.2} s of the history");
    assert!(
        heal_s >= stop_s,
        "healed at {heal_s} s, before Ctrl-C at {stop_s} s"
    );
    // Within 3 s (under 1 s here); left to the load's end it would come
    // 95 s later.
    assert!(heal_s - stop_s <= 3.0, "heal {heal_s} s, Ctrl-C {stop_s} s");
    assert!(
        heal_s <= signal_s + 3.0,
        "heal {heal_s} s, Ctrl-C at most {signal_s} s"
    );
    // No new send after the stop (sends in flight may still end).
    let late: Vec<&Value> = ops
        .iter()
        .filter(|o| o["f"] == "send" && o["type"] == "invoke" && seconds(o) > stop_s + 0.5)
        .collect();
    assert!(late.is_empty(), "sends started after Ctrl-C: {late:?}");
    // The run still read back everything: the final read happened.
    assert!(
        ops.iter().any(|o| o["f"] == "final-read"),
        "no final read after one Ctrl-C"
    );
    assert!(run.seen.iter().any(|l| l.contains("phase: env down")));
    assert_env_gone(&run.env_name());
}

#[test]
fn a_second_ctrl_c_skips_replay_and_final_read_and_still_reports() {
    // Every broker paused from 2 s on: a send gives up after 3 attempts of
    // 5 s (and backoff), so by 25 s the DLQ has entries to replay whatever
    // the second Ctrl-C finds in flight. (At 15 s it could hold none: the
    // first Ctrl-C heals at once, and the sends in flight could all be
    // acknowledged by the resumed brokers before the second, 0.3 s later.)
    let mut run = Run::start("ctrlc2", "pause:kafka:all");
    run.wait_for_line("phase: load", Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(25));
    let first = run.interrupt();
    std::thread::sleep(Duration::from_millis(300));
    let second = run.interrupt();
    let (status, ended) = run.wait_for_exit(Duration::from_secs(TIME_LIMIT_S + 180));
    let to_exit = (ended - second).as_secs_f64();
    eprintln!(
        "MEASURED: second Ctrl-C {:.1} s after the first; exit {to_exit:.1} s after the second",
        (second - first).as_secs_f64()
    );
    // The outcome decides: a final read cut short is UNKNOWN (2), and DLQ
    // entries left unreplayed count as `dlq-lost` today (FAIL, 1).
    assert!(matches!(status.code(), Some(0..=2)), "{status:?}");
    assert!(
        to_exit < 30.0,
        "exit {to_exit:.1} s after the second Ctrl-C"
    );
    assert!(
        run.seen
            .iter()
            .any(|l| l.contains("skipping drain, DLQ replay and final read")),
        "the progress never said the drain was skipped"
    );

    let dir = run.run_dir("ctrlc2");
    let results = results(&dir);
    assert!(
        results["interrupted"]
            .as_str()
            .is_some_and(|s| s.contains("Ctrl-C twice")),
        "{}",
        results["interrupted"]
    );
    assert!(dir.join("report.html").is_file());
    let ops = history(&dir);
    let load_s = seconds(stop_event(&ops, "load"));
    let now_s = seconds(stop_event(&ops, "now"));
    assert!(now_s >= load_s);
    // What one Ctrl-C would have replayed was not: the DLQ has entries,
    // and no replay was sent.
    let replay_phase = ops
        .iter()
        .find(|o| o["f"] == "phase" && o["value"]["phase"] == "replay")
        .expect("no replay phase event");
    let entries = replay_phase["value"]["dlq-entries"].as_u64().unwrap();
    eprintln!("MEASURED: {entries} DLQ entries when the replay was skipped");
    assert!(
        entries > 0,
        "the DLQ is empty: the test cannot tell a skipped replay"
    );
    let replays = ops
        .iter()
        .filter(|o| o["f"] == "replay" && o["type"] == "invoke")
        .count();
    assert_eq!(replays, 0, "{replays} replays after the second Ctrl-C");
    assert!(run.seen.iter().any(|l| l.contains("phase: env down")));
    assert_env_gone(&run.env_name());
}

#[test]
fn a_third_ctrl_c_removes_the_environment_and_exits_130() {
    let mut run = Run::start("ctrlc3", "pause:kafka:all");
    run.wait_for_line("phase: load", Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(10));
    for _ in 0..2 {
        run.interrupt();
        std::thread::sleep(Duration::from_millis(300));
    }
    let third = run.interrupt();
    let (status, ended) = run.wait_for_exit(Duration::from_secs(TIME_LIMIT_S + 180));
    let to_exit = (ended - third).as_secs_f64();
    eprintln!("MEASURED: exit {to_exit:.1} s after the third Ctrl-C");
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(to_exit < 20.0, "exit {to_exit:.1} s after the third Ctrl-C");
    assert!(
        run.seen.iter().any(|l| l.contains("a third time")),
        "the progress never said what the third Ctrl-C does"
    );
    // The history written so far stays.
    assert!(!history(&run.run_dir("ctrlc3")).is_empty());
    assert_env_gone(&run.env_name());
}
