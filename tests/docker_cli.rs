//! `splitbrain env up/status/down --env docker` as a user runs it, including
//! being killed in the middle of `env up`. Needs root and a Docker engine,
//! which the tests start (and stop again if they started it).

mod common;

use common::text;
use splitbrain_environments::nodes::docker::engine::EngineLease;
use splitbrain_environments::nodes::docker::image::LOCAL_BASE_IMAGE;
use splitbrain_environments::nodes::docker::test_env::lease_for_test;
use splitbrain_environments::nodes::docker::{self, find_resources};
use splitbrain_environments::EnvState;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn splitbrain() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_splitbrain"));
    // No registry here: build the node image on the debootstrapped base
    // unless the caller chose another.
    if std::env::var_os("SPLITBRAIN_DOCKER_BASE").is_none() {
        cmd.env("SPLITBRAIN_DOCKER_BASE", LOCAL_BASE_IMAGE);
    }
    cmd
}

/// Removes the environment on drop, whatever the test did.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker::down(&self.0, false);
    }
}

fn lease_or_skip() -> Option<EngineLease> {
    lease_for_test()
}

#[test]
fn up_status_down_through_the_cli() {
    let Some(lease) = lease_or_skip() else { return };
    let name = format!("tc-docker-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    let out = splitbrain()
        .args([
            "env",
            "up",
            "--env",
            "docker",
            "--env-name",
            &name,
            "--nodes",
            "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(docker) up in"), "{stdout}");

    let out = splitbrain()
        .args(["env", "status", "--env-name", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for k in 1..=3 {
        assert!(
            stdout.contains(&format!("sshd answers (hostname n{k})")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("container {name}-n{k}\trunning")),
            "{stdout}"
        );
    }

    let out = splitbrain()
        .args(["env", "down", "--env-name", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(find_resources(lease.cli(), &name).unwrap().is_empty());
    assert!(!EnvState::dir_of(&name).exists());
}

#[test]
fn env_down_after_env_up_was_killed_midway() {
    let Some(lease) = lease_or_skip() else { return };
    let name = format!("tc-dkill-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    // On a fresh machine the first `env up` builds the node image (debootstrap
    // and `docker build`: minutes), which would outlast the mid-way deadline
    // below: build it first, so the deadline times only the containers.
    let base = std::env::var("SPLITBRAIN_DOCKER_BASE").unwrap_or_else(|_| LOCAL_BASE_IMAGE.into());
    splitbrain_environments::nodes::docker::image::ensure_node_image(lease.cli(), &base)
        .expect("building the node image");
    let mut child = splitbrain()
        .args([
            "env",
            "up",
            "--env",
            "docker",
            "--env-name",
            &name,
            "--nodes",
            "5",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Mid-way: containers exist but the state is not ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = find_resources(lease.cli(), &name).unwrap();
        let state = EnvState::load(&name).ok();
        if !found.containers.is_empty() && state.as_ref().is_some_and(|s| !s.ready) {
            break;
        }
        if state.is_some_and(|s| s.ready) || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("could not catch env up mid-way");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!find_resources(lease.cli(), &name).unwrap().is_empty());

    let out = splitbrain()
        .args(["env", "down", "--env-name", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(find_resources(lease.cli(), &name).unwrap().is_empty());
    assert!(!EnvState::dir_of(&name).exists());
    let out = splitbrain()
        .args(["env", "down", "--env-name", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "second down: {}", text(&out));
}

/// The environment name a run announces (`<test>: environment NAME (N nodes)`).
fn announced_env(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        let rest = l.split(": environment ").nth(1)?;
        Some(rest.split_whitespace().next()?.to_string())
    })
}

/// A small test file on `env.kind = "docker"`: 1 ZooKeeper + 1 Kafka, a few
/// seconds of load, no faults.
fn docker_test_file(dir: &std::path::Path, name: &str, time_limit: u64) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let toml = format!(
        "name = \"{name}\"\ntime_limit = {time_limit}\n\
         env = {{ kind = \"docker\" }}\n\
         cluster = {{ zookeeper = 1, kafka = 1 }}\n\
         kafka = {{ replication_factor = 1, min_insync_replicas = 1 }}\n\
         workload = {{ rate = 50, senders = 2, consumers = 1 }}\n"
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// Builds the node image before anything is timed (a fresh machine builds
/// it for minutes; see `env_down_after_env_up_was_killed_midway`).
fn build_node_image(lease: &EngineLease) {
    let base = std::env::var("SPLITBRAIN_DOCKER_BASE").unwrap_or_else(|_| LOCAL_BASE_IMAGE.into());
    splitbrain_environments::nodes::docker::image::ensure_node_image(lease.cli(), &base)
        .expect("building the node image");
}

#[test]
fn run_with_env_kind_docker_brings_its_containers_up_and_down() {
    let Some(lease) = lease_or_skip() else { return };
    build_node_image(&lease);
    let dir = tempfile::tempdir().unwrap();
    let test = docker_test_file(dir.path(), "docker-run", 8);
    let out = splitbrain()
        .arg("run")
        .arg(&test)
        .arg("--store")
        .arg(dir.path().join("store"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name =
        announced_env(&stderr).unwrap_or_else(|| panic!("no environment line: {}", text(&out)));
    let _cleanup = Cleanup(name.clone());
    assert!(out.status.success(), "{}", text(&out));
    assert!(stderr.contains("(2 nodes)"), "{stderr}");
    assert!(stderr.contains("phase: env down"), "{stderr}");
    // Down by the run itself: no container, network or state left.
    assert!(find_resources(lease.cli(), &name).unwrap().is_empty());
    assert!(!EnvState::dir_of(&name).exists());
    let results = std::fs::read_dir(dir.path().join("store/docker-run"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.path().join("results.json").exists());
    assert!(results, "no results.json under the store");
}

#[test]
fn run_with_env_kind_docker_removes_its_containers_after_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let Some(lease) = lease_or_skip() else { return };
    build_node_image(&lease);
    let dir = tempfile::tempdir().unwrap();
    let test = docker_test_file(dir.path(), "docker-ctrlc", 300);
    let mut child = splitbrain()
        .arg("run")
        .arg(&test)
        .arg("--store")
        .arg(dir.path().join("store"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Ctrl-C once the load runs: containers and servers are all up.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut name = None;
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run did not reach its load in time: {seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if name.is_none() {
            name = announced_env(&line);
        }
        if line.contains("phase: load") {
            break;
        }
    }
    let name = name.expect("environment line before the load");
    let _cleanup = Cleanup(name.clone());
    assert!(!find_resources(lease.cli(), &name)
        .unwrap()
        .containers
        .is_empty());
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let waited = Instant::now();
    let status = child.wait().unwrap();
    while rx.try_recv().is_ok() {}
    assert!(
        waited.elapsed() < Duration::from_secs(150),
        "the run took {:?} after Ctrl-C",
        waited.elapsed()
    );
    assert!(status.code().is_some(), "killed by a signal: {status:?}");
    assert!(find_resources(lease.cli(), &name).unwrap().is_empty());
    assert!(!EnvState::dir_of(&name).exists());
}

/// Environments in the engine (containers' and networks' labels) whose name
/// starts with `prefix`.
fn labelled_envs(lease: &EngineLease, prefix: &str) -> Vec<String> {
    let format = format!("{{{{.Label \"{}\"}}}}", docker::ENV_LABEL);
    let mut names = Vec::new();
    for args in [
        vec!["ps", "-a", "--format", format.as_str()],
        vec!["network", "ls", "--format", format.as_str()],
    ] {
        let out = lease.cli().ok(&args, Duration::from_secs(30)).unwrap();
        names.extend(
            out.lines()
                .map(str::trim)
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string),
        );
    }
    names
}

#[test]
fn run_with_env_kind_docker_removes_a_half_made_environment_after_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let Some(lease) = lease_or_skip() else { return };
    build_node_image(&lease);
    let dir = tempfile::tempdir().unwrap();
    let test = docker_test_file(dir.path(), "docker-upc", 300);
    let mut child = splitbrain()
        .arg("run")
        .arg(&test)
        .arg("--store")
        .arg(dir.path().join("store"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run's environment is `sb-<test>-<pid>-<stamp>`.
    let prefix = format!("sb-docker-upc-{}-", child.id() % 100_000);
    let _cleanup = {
        struct CleanupPrefix<'a>(&'a EngineLease, String);
        impl Drop for CleanupPrefix<'_> {
            fn drop(&mut self) {
                for name in labelled_envs(self.0, &self.1) {
                    let _ = docker::down(&name, false);
                }
            }
        }
        CleanupPrefix(&lease, prefix.clone())
    };
    // Read stderr to its end (a closed pipe would kill the run by SIGPIPE).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("phase: env up") {
            break;
        }
    }
    // Ctrl-C as soon as containers exist (or the environment is up, on a
    // fast machine): either way, nothing of it may be left.
    let deadline = Instant::now() + Duration::from_secs(60);
    while labelled_envs(&lease, &prefix).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !labelled_envs(&lease, &prefix).is_empty(),
        "no container or network of {prefix}* appeared: {seen}"
    );
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "killed by a signal: {status:?}");
    assert_eq!(labelled_envs(&lease, &prefix), Vec::<String>::new());
    assert!(!std::fs::read_dir(EnvState::dir_of("x").parent().unwrap())
        .map(|d| d
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix)))
        .unwrap_or(false));
}
