//! Helpers shared by the end-to-end tests that drive the built `splitbrain`
//! binary as a user would.
#![allow(dead_code)] // each test crate uses the helpers it needs

use std::process::{Command, Output};

/// The `splitbrain` binary under test.
pub fn splitbrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_splitbrain"))
}

/// Runs `splitbrain ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    splitbrain().args(args).output().unwrap()
}

/// Exit status, stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temporary directory kept (not deleted) when the test panics, so the
/// failed run's store can be read afterwards.
pub struct KeepOnPanic(pub Option<tempfile::TempDir>);

impl KeepOnPanic {
    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        self.0.as_ref().expect("present").path()
    }
}

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(d) = self.0.take() {
                let _ = d.keep();
            }
        }
    }
}

/// A finished `splitbrain run` of a test file: its exit, its latest run
/// directory and that run's results.json.
pub struct FinishedRun {
    /// The process's exit status, stdout and stderr.
    pub out: Output,
    /// `<store>/<test name>/latest`.
    pub run_dir: std::path::PathBuf,
    /// The run's results.json.
    pub results: serde_json::Value,
}

/// Writes `toml` to `dir/file`, runs `splitbrain run` on it with its store
/// in `dir/store`, echoes its output and duration, and reads the results of
/// test `name` (panics, with stderr, when there are none).
pub fn run_test_file(dir: &std::path::Path, file: &str, toml: &str, name: &str) -> FinishedRun {
    let test = dir.join(file);
    std::fs::write(&test, toml).unwrap();
    let started = std::time::Instant::now();
    let out = splitbrain()
        .arg("run")
        .arg(&test)
        .arg("--store")
        .arg(dir.join("store"))
        .output()
        .expect("run splitbrain");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "{}\n{stderr}\nrun took {:?}",
        String::from_utf8_lossy(&out.stdout),
        started.elapsed()
    );
    let run_dir = dir.join("store").join(name).join("latest");
    let results = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("results.json"))
            .unwrap_or_else(|e| panic!("no results.json ({e}); stderr:\n{stderr}")),
    )
    .unwrap();
    FinishedRun {
        out,
        run_dir,
        results,
    }
}
