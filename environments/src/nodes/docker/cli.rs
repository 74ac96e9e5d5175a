//! Runs the `docker` command line, bounded in time. The CLI rather than the
//! Engine API (bollard): it keeps the environments crate blocking like the SSH
//! layer (no tokio runtime), it speaks every engine version users' CI has
//! (the client negotiates the API version), and a failing step can be re-run
//! by hand exactly as logged. See `docs/environments-docker.md`.

use crate::nodes::EnvError;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished command printed and returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdOutput {
    /// Exit status (`-1` when killed by a signal).
    pub status: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Runs `program args…` with `stdin` fed to it, killing it after `timeout`.
/// Any exit status is returned; only failing to start it or the timeout are
/// errors.
pub fn run_bounded(
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<CmdOutput, EnvError> {
    let shown = || format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|source| EnvError::DockerSpawn {
        command: shown(),
        source,
    })?;
    // Pipes are drained on their own threads so a chatty command can't block
    // on a full pipe while we wait for it.
    let feeder = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(EnvError::DockerTimeout {
                    command: shown(),
                    timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(EnvError::DockerSpawn {
                    command: shown(),
                    source,
                })
            }
        }
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(CmdOutput {
        status: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// The `docker` CLI pointed at one engine (`DOCKER_HOST`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerCli {
    /// The engine's address, e.g. `unix:///run/splitbrain/docker/docker.sock`.
    pub host: String,
}

impl DockerCli {
    /// A CLI talking to the engine at `host`.
    pub fn new(host: impl Into<String>) -> Self {
        DockerCli { host: host.into() }
    }

    /// Runs `docker args…`; any exit status is returned.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Result<CmdOutput, EnvError> {
        run_bounded(
            "docker",
            args,
            &[("DOCKER_HOST", &self.host)],
            None,
            timeout,
        )
    }

    /// Runs `docker args…` with `stdin`; any exit status is returned.
    pub fn run_with_stdin(
        &self,
        args: &[&str],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<CmdOutput, EnvError> {
        run_bounded(
            "docker",
            args,
            &[("DOCKER_HOST", &self.host)],
            Some(stdin),
            timeout,
        )
    }

    /// Runs `docker args…`; a non-zero exit is [`EnvError::Command`] with
    /// its status and standard error. Returns standard output, trimmed.
    pub fn ok(&self, args: &[&str], timeout: Duration) -> Result<String, EnvError> {
        let out = self.run(args, timeout)?;
        if out.status != 0 {
            return Err(EnvError::Command {
                command: format!("docker {}", args.join(" ")),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(out.stdout.trim().to_string())
    }

    /// Whether the engine answers (`docker version`) within `timeout`.
    pub fn answers(&self, timeout: Duration) -> bool {
        matches!(
            self.run(&["version", "--format", "{{.Server.Version}}"], timeout),
            Ok(out) if out.status == 0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_bounded_returns_status_and_output() {
        let out = run_bounded(
            "sh",
            &["-c", "cat; echo err >&2; exit 3"],
            &[],
            Some(b"hello"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn run_bounded_kills_after_timeout() {
        let start = Instant::now();
        let err = run_bounded("sleep", &["10"], &[], None, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, EnvError::DockerTimeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn run_bounded_reports_missing_program() {
        let err = run_bounded(
            "/nonexistent/docker",
            &[],
            &[],
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, EnvError::DockerSpawn { .. }), "{err}");
    }
}
