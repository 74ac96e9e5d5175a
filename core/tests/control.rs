//! The control layer against a real sshd on loopback (no namespaces needed).
//! Needs root (sshd's privilege separation) and Debian's openssh-server.

use splitbrain_core::control::{
    Control, ControlError, Node, ReconnectPolicy, Session, SessionEvent, SessionEventKind,
};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// An sshd on 127.0.0.1:<free port> with its own host key, config and
/// authorized key; killed on drop.
struct LocalSshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "splitbrain-test",
            "-f",
        ])
        .arg(path)
        .status()
        .expect("run ssh-keygen (install openssh-client: scripts/setup)");
    assert!(status.success(), "ssh-keygen failed");
}

impl LocalSshd {
    fn start() -> LocalSshd {
        assert!(
            unsafe_is_root(),
            "these tests start sshd and must run as root (sudo cargo test)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\nPidFile none\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nUseDNS no\nMaxSessions 50\nLogLevel ERROR\n\
             # Keep the host's ~/.bashrc (bash reads it for sshd commands) out.\n\
             SetEnv SHLVL=1\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Self::spawn(d, port);
        LocalSshd { dir, child, port }
    }

    /// Starts the listening sshd and waits until it accepts connections.
    fn spawn(d: &Path, port: u16) -> Child {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/sbin/sshd (install openssh-server: scripts/setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Stops the listening sshd (sessions already open stay, as with a
    /// real sshd restart): the node is down for new connections.
    fn stop_listening(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts listening again on the same port.
    fn listen_again(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.port);
    }

    fn node(&self, name: &str) -> Node {
        Node {
            name: name.into(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host: None,
            port: self.port,
            user: "root".into(),
            key_path: self.path("client_key"),
            known_hosts: self.path("known_hosts"),
            dir: self.path(&format!("node-{name}")),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for LocalSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn exec_reports_status_stdout_and_stderr_separately() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let out = s.exec("echo out; echo err >&2; exit 3", T).unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    // Same session reused.
    let out = s.exec("echo again", T).unwrap();
    assert_eq!((out.status, out.stdout.as_str()), (0, "again\n"));
}

#[test]
fn exec_ok_turns_nonzero_exit_into_error_naming_node_and_command() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n7"), T).unwrap();
    let err = s.exec_ok("echo nope >&2; false", T).unwrap_err();
    match &err {
        ControlError::Failed {
            node,
            command,
            status,
            stderr,
        } => {
            assert_eq!(node, "n7");
            assert_eq!(command, "echo nope >&2; false");
            assert_eq!(*status, 1);
            assert_eq!(stderr, "nope");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("n7") && text.contains("false"), "{text}");
}

#[test]
fn signal_death_reported_as_128_plus_signal() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let out = s.exec("kill -KILL $$", T).unwrap();
    assert_eq!(out.status, 137, "{out:?}");
}

#[test]
fn timeout_bounds_the_whole_command_and_session_stays_usable() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let started = Instant::now();
    // Output keeps arriving, so a per-read timeout would never fire.
    let err = s
        .exec(
            "while true; do echo tick; sleep 0.05; done",
            Duration::from_millis(500),
        )
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ControlError::Timeout { .. }), "{err:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let out = s.exec("echo alive", T).unwrap();
    assert_eq!(out.stdout, "alive\n");
}

#[test]
fn large_stdout_and_stderr_do_not_stall_each_other() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    // 4 MiB on stderr before anything on stdout: more than a channel window.
    let out = s
        .exec(
            "head -c 4194304 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o",
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stderr.len(), 4194304);
    assert_eq!(out.stdout.len(), 3000000);
    assert!(out.stdout.bytes().all(|b| b == b'o'));
}

#[test]
fn write_upload_download_round_trip() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let remote = sshd.path("remote/sub dir/hello.txt");
    s.write_file(&remote, b"hello\nworld\n", 0o640).unwrap();
    let out = s
        .exec_ok(
            &format!(
                "stat -c %a '{}'; cat '{}'",
                remote.display(),
                remote.display()
            ),
            T,
        )
        .unwrap();
    assert_eq!(out.stdout, "640\nhello\nworld\n");

    // A multi-window binary file.
    let local = sshd.path("local.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let remote_bin = sshd.path("remote/copy.bin");
    s.upload(&local, &remote_bin, 0o600).unwrap();
    let back = sshd.path("back.bin");
    s.download(&remote_bin, &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), data);

    let err = s
        .download(&sshd.path("remote/missing"), &sshd.path("x"))
        .unwrap_err();
    assert!(err.to_string().contains("n1"), "{err}");
}

#[test]
fn hashed_known_hosts_entries_are_accepted() {
    let sshd = LocalSshd::start();
    // Debian's ssh client writes hashed entries (HashKnownHosts yes).
    let hashed = sshd.path("hashed_known_hosts");
    std::fs::copy(sshd.path("known_hosts"), &hashed).unwrap();
    let st = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&hashed).unwrap();
    assert!(text.starts_with("|1|"), "not hashed: {text}");
    let mut node = sshd.node("n1");
    node.known_hosts = hashed;
    let mut s = Session::connect(&node, T).unwrap();
    assert_eq!(s.exec_ok("echo hi", T).unwrap().stdout, "hi\n");
}

#[test]
fn unknown_host_key_is_refused() {
    let sshd = LocalSshd::start();
    let mut node = sshd.node("n1");
    let empty = sshd.path("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    node.known_hosts = empty;
    let err = Session::connect(&node, T).unwrap_err();
    assert!(
        matches!(err, ControlError::HostKeyUnknown { .. }),
        "{err:?}"
    );
}

#[test]
fn changed_host_key_is_refused() {
    let sshd = LocalSshd::start();
    let other = sshd.path("other_host_key");
    keygen(&other);
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut fields = other_pub.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    let wrong = sshd.path("wrong_known_hosts");
    std::fs::write(&wrong, line).unwrap();
    let mut node = sshd.node("n1");
    node.known_hosts = wrong;
    let started = Instant::now();
    let err = Session::connect(&node, T).unwrap_err();
    assert!(
        matches!(err, ControlError::HostKeyChanged { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
}

#[test]
fn wrong_key_fails_authentication_without_retrying() {
    let sshd = LocalSshd::start();
    let stranger = sshd.path("stranger_key");
    keygen(&stranger);
    let mut node = sshd.node("n1");
    node.key_path = stranger;
    let started = Instant::now();
    let err = Session::connect(&node, T).unwrap_err();
    assert!(matches!(err, ControlError::Auth { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn connect_retries_until_sshd_appears_then_gives_up_within_bound() {
    let sshd = LocalSshd::start();
    // Nothing listens on this port: connect must fail within its timeout.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut node = sshd.node("n1");
    node.port = free;
    let started = Instant::now();
    let err = Session::connect(&node, Duration::from_millis(700)).unwrap_err();
    let took = started.elapsed();
    match err {
        ControlError::Connect { attempts, .. } => assert!(attempts >= 2, "retried: {attempts}"),
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn follow_delivers_existing_and_appended_lines() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let log = sshd.path("app.log");
    std::fs::write(&log, "first\nsecond\n").unwrap();
    {
        let mut f = s.follow(&log, true).unwrap();
        assert_eq!(f.next_line(T).unwrap().as_deref(), Some("first"));
        assert_eq!(f.next_line(T).unwrap().as_deref(), Some("second"));
        assert_eq!(f.next_line(Duration::from_millis(200)).unwrap(), None);
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(w, "noise").unwrap();
        writeln!(w, "binding to port 9092").unwrap();
        let line = f.wait_for(T, |l| l.contains("binding")).unwrap();
        assert_eq!(line, "binding to port 9092");
        // Positive control for the check below: the tail is visible now.
        let mut other = Session::connect(&sshd.node("n1"), T).unwrap();
        let out = other
            .exec_ok(
                &format!("pgrep -f '[t]ail -c .1 -F -- {}'", log.display()),
                T,
            )
            .unwrap();
        assert!(!out.stdout.trim().is_empty());
    }
    // The tail was stopped with the follower: the session is free and no
    // tail of this file is left running.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = s
            .exec(
                &format!("pgrep -f '[t]ail -c .1 -F -- {}' || true", log.display()),
                T,
            )
            .unwrap();
        if out.stdout.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tail still running: {}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn control_runs_on_all_nodes_concurrently_and_keeps_order() {
    let sshd = LocalSshd::start();
    let nodes: Vec<Node> = (1..=4).map(|i| sshd.node(&format!("n{i}"))).collect();
    let control = Control::connect(&nodes, T).unwrap();
    assert_eq!(control.nodes().len(), 4);
    // A barrier: each command registers, then waits (bounded) until all four
    // have registered. Run one after another, the first could never see four.
    let barrier = sshd.path("barrier");
    std::fs::create_dir(&barrier).unwrap();
    let results = control.on_all(move |node, s| {
        let b = barrier.display();
        let cmd = format!(
            "touch {b}/{n}; i=0; while [ $(ls {b} | wc -l) -lt 4 ] && [ $i -lt 150 ]; \
             do sleep 0.05; i=$((i+1)); done; ls {b} | wc -l; echo {n}",
            n = node.name
        );
        Ok(s.exec_ok(&cmd, Duration::from_secs(30))?.stdout)
    });
    for (i, (name, result)) in results.into_iter().enumerate() {
        assert_eq!(name, format!("n{}", i + 1), "results in node order");
        let out = result.unwrap();
        assert_eq!(
            out,
            format!("4\n{name}\n"),
            "{name} did not run concurrently"
        );
    }

    // Handles are cloneable and usable from other threads.
    let c2 = control.clone();
    let t = std::thread::spawn(move || c2.exec_ok("n2", "echo from-thread", T).unwrap().stdout);
    assert_eq!(t.join().unwrap(), "from-thread\n");

    let some = control.on_nodes(&["n3", "n1", "n8"], |node, s| {
        Ok(s.exec_ok("hostname >/dev/null; echo $((2+2))", T)?.stdout + &node.name)
    });
    assert_eq!(some.len(), 3);
    assert_eq!(
        (some[0].0.as_str(), some[0].1.as_ref().unwrap().as_str()),
        ("n3", "4\nn3")
    );
    assert_eq!(
        (some[1].0.as_str(), some[1].1.as_ref().unwrap().as_str()),
        ("n1", "4\nn1")
    );
    assert!(matches!(some[2].1, Err(ControlError::UnknownNode { .. })));

    let all = control.exec_all("exit 4", T);
    assert!(all.iter().all(|(_, r)| r.as_ref().unwrap().status == 4));

    let err = control.on("n9", |s| s.exec("true", T)).unwrap_err();
    assert!(matches!(err, ControlError::UnknownNode { .. }), "{err:?}");

    // A panicking closure is reported, and the worker survives it.
    let err = control
        .on("n1", |_s| -> Result<(), ControlError> { panic!("boom") })
        .unwrap_err();
    assert!(matches!(err, ControlError::Panicked { ref message, .. } if message == "boom"));
    assert_eq!(control.exec_ok("n1", "echo ok", T).unwrap().stdout, "ok\n");
}

#[test]
fn session_reconnect_after_the_connection_died() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    assert_eq!(s.exec_ok("echo one", T).unwrap().stdout, "one\n");
    // Kill this connection's own sshd process: the session is dead from
    // now on, and says so.
    let pid = session_sshd_pid(&mut s);
    kill_from_another_connection(&sshd, pid);
    let err = s.exec_ok("echo two", T).unwrap_err();
    assert!(
        matches!(err, ControlError::Ssh { .. } | ControlError::Timeout { .. }),
        "{err:?}"
    );
    assert!(s.take_suspect().is_some(), "the failure marks the session");
    assert!(!s.is_alive(T));
    s.reconnect(T).unwrap();
    assert_eq!(s.exec_ok("echo three", T).unwrap().stdout, "three\n");
}

#[test]
fn control_connect_fails_naming_the_unreachable_node() {
    let sshd = LocalSshd::start();
    let mut bad = sshd.node("n2");
    bad.port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Control::connect(&[sshd.node("n1"), bad], Duration::from_millis(500)).unwrap_err();
    assert_eq!(err.node(), "n2");
}

#[test]
fn stream_log_follows_on_its_own_connection() {
    let sshd = LocalSshd::start();
    let control = Control::connect(&[sshd.node("n1")], T).unwrap();
    let log = sshd.path("server.log");
    let stream = control.stream_log("n1", &log, false, T).unwrap();
    // The main session is free while the log is followed.
    control
        .exec_ok("n1", &format!("echo started >> '{}'", log.display()), T)
        .unwrap();
    let line = stream.wait_for(T, |l| l == "started").unwrap();
    assert_eq!(line, "started");
    let err = stream
        .wait_for(Duration::from_millis(300), |l| l == "never")
        .unwrap_err();
    assert!(matches!(err, ControlError::Timeout { .. }));
}

/// The pid of the sshd process serving `s`'s connection: the nearest
/// `sshd*` ancestor of the command's shell (its parent is the node-side
/// `timeout`).
fn session_sshd_pid(s: &mut Session) -> u32 {
    let out = s
        .exec_ok(
            "p=$$; while [ \"$p\" -gt 1 ]; do \
             case \"$(cat /proc/$p/comm)\" in sshd*) echo $p; exit 0;; esac; \
             p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status); done; exit 1",
            T,
        )
        .unwrap();
    out.stdout.trim().parse().unwrap()
}

/// Kills `pid` (learned, never a pattern) through a second connection.
fn kill_from_another_connection(sshd: &LocalSshd, pid: u32) {
    let mut other = Session::connect(&sshd.node("killer"), T).unwrap();
    other.exec_ok(&format!("kill -KILL {pid}"), T).unwrap();
}

/// Whether process `pid` still runs on this machine (the harness's node is
/// this machine); a zombie counts as gone.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `within` for every pid in `pids` to be gone.
fn all_gone(pids: &[u32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if pids.iter().all(|&p| !running(p)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Kills the pids a test learned (cleanup; never by pattern).
fn kill_pids(pids: &[u32]) {
    for &p in pids {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(p.to_string())
            .status();
    }
}

#[test]
fn a_timed_out_command_is_killed_on_the_node_with_its_children() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    assert!(
        s.node_timeouts(),
        "the harness's node has coreutils timeout"
    );
    // The shell and a background child: both in the command's group.
    let pids = sshd.path("pids");
    let cmd = format!(
        "echo $$ > {p}; sleep 300 & echo $! >> {p}; wait",
        p = pids.display()
    );
    let started = Instant::now();
    let err = s.exec(&cmd, Duration::from_secs(1)).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            ControlError::Timeout {
                stopped_on_node: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("stops it"), "{err}");
    assert!(took < Duration::from_secs(3), "status came back: {took:?}");
    let learned = read_pids(&pids);
    assert_eq!(learned.len(), 2, "{learned:?}");
    assert!(
        all_gone(&learned, Duration::from_secs(5)),
        "left running on the node: {learned:?}"
    );

    // A command that ignores SIGTERM gets SIGKILL after the grace.
    let stubborn = sshd.path("stubborn");
    let cmd = format!(
        "trap '' TERM; echo $$ > {p}; sleep 300 & echo $! >> {p}; wait; wait",
        p = stubborn.display()
    );
    let started = Instant::now();
    let err = s.exec(&cmd, Duration::from_millis(500)).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            ControlError::Timeout {
                stopped_on_node: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(2500),
        "KILL after grace: {took:?}"
    );
    let learned = read_pids(&stubborn);
    assert!(all_gone(&learned, Duration::from_secs(5)), "{learned:?}");
    // The session is alive and not suspected: the node answered.
    assert!(s.take_suspect().is_none());
    assert_eq!(s.exec_ok("echo alive", T).unwrap().stdout, "alive\n");
    // A command that exits 124 on its own is not a timeout.
    assert_eq!(s.exec("exit 124", T).unwrap().status, 124);
}

#[test]
fn control_without_the_node_side_deadline_a_timed_out_command_keeps_running() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    s.set_node_timeouts(false);
    let pids = sshd.path("pids");
    let cmd = format!(
        "echo $$ > {p}; sleep 300 & echo $! >> {p}; wait",
        p = pids.display()
    );
    let err = s.exec(&cmd, Duration::from_secs(1)).unwrap_err();
    assert!(
        matches!(
            err,
            ControlError::Timeout {
                stopped_on_node: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("may still be running"), "{err}");
    let learned = read_pids(&pids);
    assert_eq!(learned.len(), 2, "{learned:?}");
    let left = !all_gone(&learned, Duration::from_secs(3));
    kill_pids(&learned);
    assert!(left, "without the wrapper the command outlives its timeout");
}

#[test]
fn daemons_started_with_setsid_or_nohup_outlive_their_starter() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let out = s
        .exec_ok(
            "setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $!; \
             nohup sleep 301 > /dev/null 2>&1 < /dev/null & echo $!",
            T,
        )
        .unwrap();
    let pids: Vec<u32> = out
        .stdout
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    std::thread::sleep(Duration::from_millis(500));
    let alive: Vec<bool> = pids.iter().map(|&p| running(p)).collect();
    kill_pids(&pids);
    assert_eq!(
        alive,
        [true, true],
        "the starter's normal exit kills nothing"
    );
}

#[test]
fn commands_keep_the_login_shell_quoting_and_environment() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let out = s
        .exec_ok(
            "x='it'\"'\"'s'; printf '%s|%s|%s\\n' \"$x\" \"$(echo a b)\" $((6*7)); \
             [[ -n $SHELL ]] && echo \"bash-ism ok\"; command -v sh >/dev/null && echo path-ok",
            T,
        )
        .unwrap();
    assert_eq!(out.stdout, "it's|a b|42\nbash-ism ok\npath-ok\n");
    // Single quotes, backslashes and a here-document reach the shell intact.
    let out = s.exec_ok("cat <<'EOF'\na 'b' \\c $d\nEOF", T).unwrap();
    assert_eq!(out.stdout, "a 'b' \\c $d\n");
}

fn fast_policy(max_attempts: u32, max_total: Duration) -> ReconnectPolicy {
    ReconnectPolicy {
        max_attempts,
        max_total,
        attempt_timeout: Duration::from_millis(700),
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        probe_timeout: Duration::from_secs(2),
    }
}

fn next_event(events: &mpsc::Receiver<SessionEvent>, within: Duration) -> SessionEvent {
    events
        .recv_timeout(within)
        .unwrap_or_else(|e| panic!("no session event within {within:?}: {e}"))
}

#[test]
fn control_reconnects_a_dropped_session_and_reports_it() {
    let sshd = LocalSshd::start();
    let control = Control::connect(&[sshd.node("n1")], T).unwrap();
    let events = control.subscribe();
    // Dropped between commands: the next command finds the session dead
    // before anything of it reached the node, so it runs on a new one.
    let pid = control.on("n1", |s| Ok(session_sshd_pid(s))).unwrap();
    kill_from_another_connection(&sshd, pid);
    let started = Instant::now();
    assert_eq!(
        control.exec_ok("n1", "echo two", T).unwrap().stdout,
        "two\n"
    );
    eprintln!("a command after a drop took {:?}", started.elapsed());
    let dropped = next_event(&events, T);
    assert_eq!(
        (dropped.node.as_str(), dropped.kind),
        ("n1", SessionEventKind::Dropped)
    );
    assert!(
        dropped.cause.contains("echo two") && dropped.cause.contains("before the command started"),
        "{dropped:?}"
    );
    let back = next_event(&events, Duration::from_secs(30));
    assert_eq!(back.kind, SessionEventKind::Reconnected, "{back:?}");
    assert_eq!(back.attempts, 1);
    eprintln!("reconnected after a drop in {:?}", back.elapsed);

    // Dropped while a command runs: that command fails and is NOT run
    // again (it may have had an effect); the session is replaced after it.
    let pid = control.on("n1", |s| Ok(session_sshd_pid(s))).unwrap();
    let ran = sshd.path("ran");
    let cmd = format!("echo ran >> {}; kill -KILL {pid}; sleep 1", ran.display());
    let err = control.exec_ok("n1", &cmd, T).unwrap_err();
    assert!(
        matches!(err, ControlError::Ssh { .. } | ControlError::Timeout { .. }),
        "{err:?}"
    );
    let dropped = next_event(&events, T);
    assert_eq!(dropped.kind, SessionEventKind::Dropped);
    assert!(dropped.cause.contains("echo ran"), "{dropped:?}");
    assert_eq!(next_event(&events, T).kind, SessionEventKind::Reconnected);
    // Later commands use the new session; the failed one ran once.
    assert_eq!(
        control
            .exec_ok("n1", &format!("cat {}", ran.display()), T)
            .unwrap()
            .stdout,
        "ran\n"
    );
    // A timeout of a live session, or a non-zero exit, is not a drop.
    assert!(control
        .exec("n1", "sleep 5", Duration::from_millis(300))
        .is_err());
    assert_eq!(control.exec("n1", "exit 3", T).unwrap().status, 3);
    assert!(events.try_recv().is_err(), "no event for a live session");
}

#[test]
fn control_gives_up_on_a_node_that_stays_down_within_its_bounds() {
    let mut sshd = LocalSshd::start();
    let policy = fast_policy(3, Duration::from_secs(30));
    let control = Control::connect_with(&[sshd.node("n1")], T, policy.clone()).unwrap();
    let events = control.subscribe();
    let pid = control.on("n1", |s| Ok(session_sshd_pid(s))).unwrap();
    // The node goes down: nothing listens, and the session dies.
    sshd.stop_listening();
    kill_pids(&[pid]);
    assert!(control.exec_ok("n1", "echo x", T).is_err());
    assert_eq!(next_event(&events, T).kind, SessionEventKind::Dropped);
    let gave_up = next_event(&events, Duration::from_secs(30));
    assert_eq!(gave_up.kind, SessionEventKind::GaveUp, "{gave_up:?}");
    assert_eq!(gave_up.attempts, 3, "bounded in attempts: {gave_up:?}");
    // 3 attempts of at most 0.7 s, waits 0.1 + 0.2 s, plus the probe.
    assert!(gave_up.elapsed < Duration::from_secs(5), "{gave_up:?}");
    eprintln!(
        "gave up after {} attempts in {:?}",
        gave_up.attempts, gave_up.elapsed
    );
    // Meanwhile commands fail at once, saying why.
    let started = Instant::now();
    let err = control.exec_ok("n1", "echo y", T).unwrap_err();
    assert!(matches!(err, ControlError::SessionLost { .. }), "{err:?}");
    assert!(err.to_string().contains("env status"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The node comes back: the next command reconnects first.
    sshd.listen_again();
    assert_eq!(control.exec_ok("n1", "echo z", T).unwrap().stdout, "z\n");
    assert_eq!(next_event(&events, T).kind, SessionEventKind::Reconnected);
}

#[test]
fn reconnection_is_bounded_in_total_time_too() {
    let mut sshd = LocalSshd::start();
    let policy = fast_policy(1000, Duration::from_secs(2));
    let control = Control::connect_with(&[sshd.node("n1")], T, policy).unwrap();
    let events = control.subscribe();
    let pid = control.on("n1", |s| Ok(session_sshd_pid(s))).unwrap();
    sshd.stop_listening();
    kill_pids(&[pid]);
    let started = Instant::now();
    assert!(control.exec_ok("n1", "echo x", T).is_err());
    assert_eq!(next_event(&events, T).kind, SessionEventKind::Dropped);
    let gave_up = next_event(&events, Duration::from_secs(30));
    assert_eq!(gave_up.kind, SessionEventKind::GaveUp);
    assert!(gave_up.attempts < 1000, "{gave_up:?}");
    assert!(
        gave_up.elapsed <= Duration::from_millis(2500),
        "{gave_up:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[test]
fn a_dropped_log_stream_leaves_no_tail_on_the_node() {
    let sshd = LocalSshd::start();
    let control = Control::connect(&[sshd.node("n1")], T).unwrap();
    let log = sshd.path("quiet.log");
    let pattern = format!("pgrep -f '[t]ail -c .1 -F -- {}' || true", log.display());
    let stream = control.stream_log("n1", &log, false, T).unwrap();
    // Positive control: the tail runs while the stream is open (the script
    // says it is ready just before it starts `tail`: wait for it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while control
        .exec_ok("n1", &pattern, T)
        .unwrap()
        .stdout
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "tail not found while following");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = control.exec_ok("n1", &pattern, T).unwrap();
        if out.stdout.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tail left running: {}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Measurement (run by hand: `cargo test -p splitbrain-core --test control
/// -- --ignored --nocapture wrapper_overhead`): mean time of 200 `true`
/// commands with and without the node-side deadline, interleaved in rounds
/// of 20 so load from elsewhere hits both alike.
#[test]
#[ignore]
fn wrapper_overhead() {
    let sshd = LocalSshd::start();
    let mut s = Session::connect(&sshd.node("n1"), T).unwrap();
    let mut total = [Duration::ZERO; 2];
    for _round in 0..10 {
        for (i, on) in [false, true].into_iter().enumerate() {
            s.set_node_timeouts(on);
            let started = Instant::now();
            for _ in 0..20 {
                assert!(s.exec("true", T).unwrap().success());
            }
            total[i] += started.elapsed();
        }
    }
    let mean = |d: Duration| d.as_secs_f64() * 1000.0 / 200.0;
    eprintln!(
        "200 `true`: without wrapper mean {:.2} ms, with wrapper mean {:.2} ms",
        mean(total[0]),
        mean(total[1])
    );
    assert!(mean(total[1]) < mean(total[0]) + 20.0);
}

/// A login user made for one test on this machine (netns nodes and this
/// harness share its /etc/passwd), with a unique name; removed with its
/// sudoers file on every path out of the test (Drop runs on panics too).
struct TempUser {
    name: String,
    sudoers: PathBuf,
}

impl TempUser {
    fn create(sshd: &LocalSshd, tag: &str) -> TempUser {
        let name = format!("sbctl{tag}{}", std::process::id());
        let user = TempUser {
            sudoers: PathBuf::from("/etc/sudoers.d").join(&name),
            name,
        };
        let home = sshd.path(&format!("home-{}", user.name));
        std::fs::create_dir_all(&home).unwrap();
        // `*`, not useradd's locked `!`: sshd without PAM refuses locked
        // accounts even for key logins. /bin/sh (dash): a POSIX login shell.
        let status = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-p", "*", "-d"])
            .arg(&home)
            .arg(&user.name)
            .status()
            .expect("useradd");
        assert!(status.success(), "useradd {}", user.name);
        let chown = Command::new("chown")
            .arg(&user.name)
            .arg(&home)
            .status()
            .unwrap();
        assert!(chown.success());
        // sshd reads authorized_keys as the user.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(sshd.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            sshd.path("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        user
    }

    /// Lets the user run anything through sudo without a password.
    fn allow_nopasswd(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all("/etc/sudoers.d").unwrap();
        std::fs::write(
            &self.sudoers,
            format!("{} ALL=(ALL) NOPASSWD: ALL\n", self.name),
        )
        .unwrap();
        std::fs::set_permissions(&self.sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        let ok = Command::new("visudo")
            .arg("-cf")
            .arg(&self.sudoers)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "sudoers line rejected");
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = Command::new("userdel")
            .arg("-f")
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn privileged_commands_of_a_non_root_login_go_through_sudo() {
    if Command::new("sudo").arg("-V").output().is_err() {
        panic!("sudo is not installed: run `sudo scripts/setup` (it installs sudo)");
    }
    let sshd = LocalSshd::start();
    let user = TempUser::create(&sshd, "s");
    let mut node = sshd.node("u1");
    node.user = user.name.clone();
    let mut s = Session::connect(&node, T).unwrap();
    assert_eq!(s.exec_ok("id -un", T).unwrap().stdout.trim(), user.name);
    assert!(s.node_timeouts(), "the wrapper works under dash too");

    // Without a sudoers line: a clear error saying the fix.
    let err = s.exec_privileged_ok("id -u", T).unwrap_err();
    match &err {
        ControlError::SudoPassword {
            user: u, command, ..
        } => {
            assert_eq!(
                (u.as_str(), command.as_str()),
                (user.name.as_str(), "id -u")
            )
        }
        other => panic!("expected SudoPassword, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!("{} ALL=(ALL) NOPASSWD: ALL", user.name)),
        "{text}"
    );

    // With one: root, with sudo's secure_path (iptables is in /usr/sbin,
    // which the user's own non-login PATH lacks).
    user.allow_nopasswd();
    assert_eq!(s.exec_privileged_ok("id -u", T).unwrap().stdout, "0\n");
    let control = Control::connect(&[node.clone()], T).unwrap();
    let out = control.exec_privileged_ok("u1", "id -un", T).unwrap();
    assert_eq!(out.stdout, "root\n");
    drop(control);
    let own = s.exec("command -v iptables", T).unwrap();
    assert!(!own.success(), "user PATH has iptables: {own:?}");
    let root = s.exec_privileged_ok("command -v iptables", T).unwrap();
    assert_eq!(root.stdout.trim(), "/usr/sbin/iptables");
    // A failing privileged command is a plain failure, not a sudo problem.
    let err = s.exec_privileged_ok("exit 3", T).unwrap_err();
    assert!(
        matches!(err, ControlError::Failed { status: 3, .. }),
        "{err:?}"
    );
    // The firewall's commands run through it (read-only here: this is the
    // host's own firewall).
    splitbrain_core::firewall::blocked(&mut s, T).unwrap();

    // A privileged command that times out is stopped on the node too:
    // SIGTERM reaches it through sudo.
    let pids = sshd.path("root-pids");
    let cmd = format!(
        "echo $$ > {p}; sleep 300 & echo $! >> {p}; wait",
        p = pids.display()
    );
    let err = s.exec_privileged(&cmd, Duration::from_secs(1)).unwrap_err();
    assert!(
        matches!(
            err,
            ControlError::Timeout {
                stopped_on_node: true,
                ..
            }
        ),
        "{err:?}"
    );
    let learned = read_pids(&pids);
    let gone = all_gone(&learned, Duration::from_secs(5));
    kill_pids(&learned);
    assert!(gone, "root command left running: {learned:?}");
    drop(s);
}
