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
