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
