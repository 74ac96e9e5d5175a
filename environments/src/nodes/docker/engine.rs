//! The Docker engine splitbrain talks to: `$DOCKER_HOST` (users' CI), the
//! system engine, or a private `dockerd` started by `environments/docker/engine`
//! (installed from Debian's `docker.io` when missing). The script is compiled
//! into the binary so `splitbrain` works from any directory.

use super::cli::{run_bounded, DockerCli};
use crate::nodes::EnvError;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The engine script (`environments/docker/engine`).
pub const ENGINE_SCRIPT: &str = include_str!("../../../docker/engine");

/// Where the private engine keeps its socket, pid file and locks.
pub fn run_dir() -> PathBuf {
    std::env::var_os("SPLITBRAIN_DOCKER_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/splitbrain/docker"))
}

/// Starting may install `docker.io`, which takes minutes on a slow mirror.
const START_TIMEOUT: Duration = Duration::from_secs(900);
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

fn run_script(action: &str, timeout: Duration) -> Result<super::cli::CmdOutput, EnvError> {
    // `bash -c SCRIPT NAME ARG`: NAME becomes $0, which the script's messages
    // print, so users see the path they can run by hand.
    run_bounded(
        "bash",
        &["-c", ENGINE_SCRIPT, "environments/docker/engine", action],
        &[],
        None,
        timeout,
    )
}

fn parse_host(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("DOCKER_HOST="))
        .map(str::to_string)
}

/// Starts an engine if none answers (needs root), and returns a CLI for the
/// one that answers.
pub fn start() -> Result<DockerCli, EnvError> {
    let out = run_script("start", START_TIMEOUT)?;
    match (out.status, parse_host(&out.stdout)) {
        (0, Some(host)) => Ok(DockerCli::new(host)),
        _ => Err(EnvError::DockerEngine {
            action: "start",
            detail: out.stderr.trim().to_string(),
        }),
    }
}

/// The engine that answers now, without starting one.
pub fn find() -> Result<DockerCli, EnvError> {
    let out = run_script("status", STATUS_TIMEOUT)?;
    match (out.status, parse_host(&out.stdout)) {
        (0, Some(host)) => Ok(DockerCli::new(host)),
        _ => Err(EnvError::DockerEngine {
            action: "find",
            detail: format!(
                "{} (start one with: sudo environments/docker/engine start)",
                out.stderr.trim()
            ),
        }),
    }
}

/// Stops the private dockerd (never a system or `$DOCKER_HOST` engine).
pub fn stop_private() -> Result<(), EnvError> {
    let out = run_script("stop", STOP_TIMEOUT)?;
    if out.status != 0 {
        return Err(EnvError::DockerEngine {
            action: "stop",
            detail: out.stderr.trim().to_string(),
        });
    }
    Ok(())
}

/// An advisory `flock` on a file, released on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
}

impl FileLock {
    fn open(path: &Path) -> Result<File, EnvError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| EnvError::Io {
                what: format!("create {}", dir.display()),
                source,
            })?;
        }
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| EnvError::Io {
                what: format!("open lock file {}", path.display()),
                source,
            })
    }

    fn flock(path: &Path, op: libc::c_int) -> Result<Option<FileLock>, EnvError> {
        let file = Self::open(path)?;
        // SAFETY: flock on a file descriptor we own, no memory involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(Some(FileLock { file }));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        Err(EnvError::Io {
            what: format!("lock {}", path.display()),
            source: err,
        })
    }

    /// Waits for an exclusive lock.
    pub(crate) fn exclusive(path: &Path) -> Result<FileLock, EnvError> {
        Self::flock(path, libc::LOCK_EX)?.ok_or_else(|| would_block(path))
    }

    /// An exclusive lock if nobody holds one, else `None`.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<FileLock>, EnvError> {
        Self::flock(path, libc::LOCK_EX | libc::LOCK_NB)
    }

    /// Waits for a shared lock.
    pub(crate) fn shared(path: &Path) -> Result<FileLock, EnvError> {
        Self::flock(path, libc::LOCK_SH)?.ok_or_else(|| would_block(path))
    }
}

/// A blocking `flock` never reports "would block"; kept as an error, not a
/// panic, should a kernel ever do so.
fn would_block(path: &Path) -> EnvError {
    EnvError::Io {
        what: format!("lock {}", path.display()),
        source: std::io::ErrorKind::WouldBlock.into(),
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing would release it too.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// A test's use of the engine: starts one if none answers, and when the last
/// lease (across processes) ends, stops the private dockerd again — but only
/// if a lease started it and no container is left on it, so a user's running
/// environment is never taken down.
#[derive(Debug)]
pub struct EngineLease {
    cli: DockerCli,
    started: bool,
    _shared: FileLock,
}

impl EngineLease {
    /// Starts or finds the engine. Fails with a message saying why Docker
    /// can't be used here (for tests to print when they skip).
    pub fn acquire() -> Result<EngineLease, EnvError> {
        let dir = run_dir();
        let shared = FileLock::shared(&dir.join("leases.lock"))?;
        let mut started = false;
        let cli = match find() {
            Ok(cli) => cli,
            Err(_) => {
                started = true;
                let cli = start()?;
                std::fs::write(dir.join("started-for-tests"), b"").map_err(|source| {
                    EnvError::Io {
                        what: format!("write {}", dir.join("started-for-tests").display()),
                        source,
                    }
                })?;
                cli
            }
        };
        Ok(EngineLease {
            cli,
            started,
            _shared: shared,
        })
    }

    /// Whether this lease started the engine (it was not answering).
    pub fn started_engine(&self) -> bool {
        self.started
    }

    /// The CLI for the leased engine.
    pub fn cli(&self) -> &DockerCli {
        &self.cli
    }
}

impl Drop for EngineLease {
    fn drop(&mut self) {
        let dir = run_dir();
        // Our shared lock goes first (fields drop after this body), so take a
        // fresh descriptor: the exclusive try succeeds only when no other
        // lease holds a shared lock.
        let marker = dir.join("started-for-tests");
        if !marker.exists() {
            return;
        }
        // Release ours by swapping in a lock on a scratch file.
        let scratch = dir.join("lease-scratch.lock");
        if let Ok(lock) = FileLock::shared(&scratch) {
            let _ = std::mem::replace(&mut self._shared, lock);
        }
        let Ok(Some(_exclusive)) = FileLock::try_exclusive(&dir.join("leases.lock")) else {
            return;
        };
        let leftover = self
            .cli
            .ok(&["ps", "-aq"], Duration::from_secs(30))
            .map(|ids| !ids.is_empty())
            .unwrap_or(true);
        if leftover {
            return;
        }
        if stop_private().is_ok() {
            let _ = std::fs::remove_file(&marker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_host_finds_the_line() {
        assert_eq!(
            parse_host("noise\nDOCKER_HOST=unix:///x.sock\n").as_deref(),
            Some("unix:///x.sock")
        );
        assert_eq!(parse_host("nothing"), None);
    }

    #[test]
    fn exclusive_lock_excludes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = FileLock::exclusive(&path).unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn shared_locks_coexist_but_block_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let a = FileLock::shared(&path).unwrap();
        let b = FileLock::shared(&path).unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(a);
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(b);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
    }
}
