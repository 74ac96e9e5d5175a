//! Running local system commands (`ip`, `iptables`, `ssh-keygen`) on the
//! control node, with errors that show the command line.

use crate::nodes::EnvError;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `program args...`, returning stdout; a non-zero exit is an error
/// carrying stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, EnvError> {
    let line = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EnvError::Command {
            command: line(),
            status: -1,
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else if matches!(
        out.status.signal(),
        Some(libc::SIGINT) | Some(libc::SIGTERM)
    ) {
        // Ctrl-C in a terminal reaches our children too, often before our own
        // handler has run: an interrupted child means we were interrupted.
        Err(EnvError::Cancelled)
    } else {
        Err(EnvError::Command {
            command: line(),
            status: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs a command whose failure is acceptable (cleanup of what may not
/// exist); returns whether it succeeded.
pub(crate) fn run_quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// True when this process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Errors unless running as root.
pub(crate) fn require_root(what: &str) -> Result<(), EnvError> {
    if is_root() {
        Ok(())
    } else {
        Err(EnvError::NotRoot {
            what: what.to_string(),
        })
    }
}

/// Errors unless `program` is found (absolute path, or on PATH).
pub(crate) fn require_tool(program: &str, purpose: &str) -> Result<(), EnvError> {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).exists()))
            .unwrap_or(false)
    };
    if found {
        Ok(())
    } else {
        Err(EnvError::MissingTool {
            program: program.to_string(),
            purpose: purpose.to_string(),
        })
    }
}

/// Sends `signal` to `pid`; false if it does not exist.
pub(crate) fn kill(pid: i32, signal: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    pid > 0 && unsafe { libc::kill(pid, signal) } == 0
}

/// True while process `pid` exists (and is not a zombie we could reap).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; `Z` is a zombie: dead for our purposes.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}
