//! `splitbrain env` as a user runs it, including being killed or interrupted
//! in the middle of `env up`. Needs root.

mod common;

use common::{run, splitbrain, text};
use splitbrain_environments::nodes::netns;
use splitbrain_environments::EnvState;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_name(tag: &str) -> String {
    format!("t-cli-{tag}-{}", std::process::id())
}

/// Removes the environment on drop, whatever the test did.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = netns::down(&self.0);
    }
}

/// Starts `env up` in its own process group and returns once it is visibly
/// mid-way: its state file says not ready and a namespace exists.
// The lint cannot see that the caller waits on the returned child; the
// failure paths here kill and wait.
#[allow(clippy::zombie_processes)]
fn start_up_and_wait_until_midway(name: &str, nodes: &str) -> Child {
    let mut child = splitbrain()
        .args(["env", "up", "--env-name", name, "--nodes", nodes])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let ns = netns::namespace_name(name, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        let has_ns = listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&ns));
        let problem = if has_ns {
            match EnvState::load(name) {
                Ok(state) if !state.ready => return child,
                Ok(_) => "env up already finished: cannot test mid-way".to_string(),
                Err(e) => format!("no state file while resources exist: {e}"),
            }
        } else if Instant::now() > deadline {
            format!("env up never created {ns}")
        } else {
            String::new()
        };
        if !problem.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{problem}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn killed_env_up_is_cleaned_by_env_down() {
    let name = env_name("kill");
    let _cleanup = Cleanup(name.clone());
    let mut child = start_up_and_wait_until_midway(&name, "9");
    // SIGKILL: no handler runs; the state file and the system are all `down`
    // has to go by.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !netns::leftovers(&name).is_empty(),
        "nothing left behind by a killed up: the test proves nothing"
    );

    // Even without its state file the environment is listed and removable.
    std::fs::remove_file(EnvState::path_of(&name)).unwrap();
    let out = run(&["env", "list"]);
    assert!(
        text(&out).contains(&format!("{name}\tnetns\tno state file")),
        "{}",
        text(&out)
    );
    let out = run(&["env", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        netns::leftovers(&name).is_empty(),
        "left after down: {:?}",
        netns::leftovers(&name)
    );
    // Idempotent.
    let out = run(&["env", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
}

#[test]
fn interrupted_env_up_leaves_nothing_behind() {
    let name = env_name("int");
    let _cleanup = Cleanup(name.clone());
    let child = start_up_and_wait_until_midway(&name, "9");
    // Ctrl-C in a terminal signals the whole foreground process group.
    let pgid = child.id() as i32;
    // SAFETY: plain kill(2) on the child's process group.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(
        netns::leftovers(&name).is_empty(),
        "left after Ctrl-C: {:?}",
        netns::leftovers(&name)
    );
}

#[test]
fn up_status_down_through_the_binary() {
    let name = env_name("ok");
    let _cleanup = Cleanup(name.clone());
    let out = run(&["env", "up", "--env-name", &name, "--nodes", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["env", "status", "--env-name", &name]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("n1") && shown.contains("sshd answers (hostname n1)"),
        "{shown}"
    );
    assert!(shown.contains("sshd answers (hostname n2)"), "{shown}");

    // A node whose sshd died is reported, with exit status 1.
    let state = EnvState::load(&name).unwrap();
    let pid_file = state.dir().join("sshd/n2/sshd.pid");
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) of the sshd this test's environment started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = run(&["env", "status", "--env-name", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("n2\t") && text(&out).contains("does NOT answer"));

    let out = run(&["env", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(netns::leftovers(&name).is_empty());
    let out = run(&["env", "status", "--env-name", &name]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("no environment named"),
        "{}",
        text(&out)
    );
}

#[test]
fn env_up_as_non_root_says_so() {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["env", "up", "--env-name", &env_name("user"), "--nodes", "1"])
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let out = run(&[
        "env",
        "up",
        "--env-name",
        &env_name("bad"),
        "--subnet",
        "192.168.0.0/24",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("10.88.0.0/16"), "{}", text(&out));
    let out = run(&["env", "up", "--env-name", &env_name("bad"), "--kind", "ssh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--hosts"), "{}", text(&out));
}

#[test]
fn state_dir_can_be_moved_with_splitbrain_state_dir() {
    let name = env_name("dir");
    let _cleanup = Cleanup(name.clone());
    let root = tempfile::tempdir().unwrap();
    let with_root = |args: &[&str]| {
        splitbrain()
            .args(args)
            .env("SPLITBRAIN_STATE_DIR", root.path())
            .output()
            .unwrap()
    };
    let out = with_root(&["env", "up", "--env-name", &name, "--nodes", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let state_file = root.path().join(&name).join("state.json");
    let state: EnvState =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert!(
        state.nodes[0].dir.starts_with(root.path()),
        "{:?}",
        state.nodes[0].dir
    );
    assert!(
        !EnvState::path_of(&name).exists(),
        "also wrote to the default root"
    );
    let out = with_root(&["env", "status", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let out = with_root(&["env", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!state_file.exists());
    assert!(netns::leftovers(&name).is_empty());
}

#[test]
fn ssh_kind_through_the_binary() {
    let hosts_env = netns::TestEnv::up("cli_ssh_hosts", 2);
    let work = tempfile::tempdir().unwrap();
    let toml = hosts_env.hosts_toml(|n| work.path().join(n));
    let hosts = work.path().join("hosts.toml");
    std::fs::write(&hosts, toml).unwrap();
    let name = env_name("ssh");
    let hosts_arg = hosts.to_str().unwrap();
    // The hosts share this machine's file system: jars under the test's
    // directory, not /opt/splitbrain.
    let store = work.path().join("jars");
    let up = [
        "env",
        "up",
        "--env-name",
        &name,
        "--kind",
        "ssh",
        "--hosts",
        hosts_arg,
        "--artifacts-dir",
        store.to_str().unwrap(),
    ];
    let out = run(&up);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("prepared 2 node(s)"), "{}", text(&out));
    assert!(work.path().join("n1/.splitbrain-node").exists());
    assert!(store.join("trees").is_dir(), "{}", text(&out));
    let out = run(&["env", "status", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ssh, 2 node(s)"), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("jars on every host: {}/trees/", store.display())),
        "{}",
        text(&out)
    );
    // `cluster up` finds the uploaded jars by the same rule as `run`.
    let cluster = |action: &[&str]| {
        let mut args = vec!["cluster"];
        args.extend_from_slice(action);
        args.extend_from_slice(&["--env-name", &name]);
        run(&args)
    };
    let out = cluster(&["up", "--zk", "1", "--kafka", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let script = std::fs::read_to_string(work.path().join("n1/zookeeper/run.sh")).unwrap();
    assert!(
        script.contains(&format!("{}/trees/", store.display())),
        "{script}"
    );
    let out = cluster(&["down"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["env", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--purge-artifacts"), "{}", text(&out));
    assert!(!work.path().join("n1").exists());
    assert!(store.join("blobs").is_dir(), "the jars were not kept");
    assert!(EnvState::try_load(&name).unwrap().is_none());
    // Again: nothing to upload; then down removes the jars too.
    let out = run(&up);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 uploaded (0.0 MB)"), "{}", text(&out));
    let out = run(&["env", "down", "--env-name", &name, "--purge-artifacts"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!store.exists(), "{}", text(&out));
    // The hosts themselves are still up.
    let c = hosts_env.control();
    assert_eq!(
        c.exec_ok("n2", "hostname", Duration::from_secs(5))
            .unwrap()
            .stdout
            .trim(),
        "n2"
    );
}

/// The line of `env list` about environment `name`.
fn listed_line(name: &str) -> String {
    let out = run(&["env", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split('\t').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{}", text(&out)))
        .to_string()
}

#[test]
fn env_list_and_run_name_environments_whose_owner_is_gone() {
    let name = env_name("orphan");
    let _cleanup = Cleanup(name.clone());
    let mut child = start_up_and_wait_until_midway(&name, "9");
    // Frozen mid-way, its owner still exists: not orphaned.
    let pid = child.id() as i32;
    // SAFETY: kill(2) of the child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let line = listed_line(&name);
    assert!(
        line.contains(&format!("owned by running process {pid}")) && !line.contains("ORPHANED"),
        "{line}"
    );
    // Killed: no handler runs, the namespaces stay, the owner is gone.
    child.kill().unwrap();
    child.wait().unwrap();
    let line = listed_line(&name);
    assert!(
        line.contains("ORPHANED")
            && line.contains(&format!("owner process {pid} is gone"))
            && line.contains(&format!("splitbrain env down --env-name {name}")),
        "{line}"
    );
    // `run` names it at its start (here it then fails: no such environment).
    let store = tempfile::tempdir().unwrap();
    let out = splitbrain()
        .args([
            "run",
            "--env",
            "existing",
            "--env-name",
            "t-cli-no-such-env",
        ])
        .arg("--store")
        .arg(store.path())
        .output()
        .unwrap();
    let warning = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.contains("warning: orphaned environment"))
        .map(String::from)
        .unwrap_or_else(|| panic!("no warning:\n{}", text(&out)));
    assert!(
        warning.contains(&format!("{name} (its owner process {pid} is gone)"))
            && warning.contains("splitbrain env down --env-name"),
        "{warning}"
    );
    let out = run(&["env", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(netns::leftovers(&name).is_empty());
}

#[test]
fn an_environment_made_by_env_up_is_kept_not_orphaned() {
    let name = env_name("kept");
    let _cleanup = Cleanup(name.clone());
    let out = run(&["env", "up", "--env-name", &name, "--nodes", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    // `env up` has exited: the environment is the user's now.
    assert_eq!(EnvState::load(&name).unwrap().owner, None);
    let line = listed_line(&name);
    assert!(
        line.contains("kept until env down") && !line.contains("ORPHANED"),
        "{line}"
    );
    let out = run(&["env", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
}
