//! A long-running server process on a node (a ZooKeeper server or a Kafka
//! broker), managed through shell commands run over SSH.
//!
//! Each service owns one directory on its node (`<node dir>/zookeeper` or
//! `<node dir>/kafka`) holding its configuration, `run.sh`, its data and its
//! logs; its pid file is `<node dir>/run/<kind>.pid`. Commands are rendered here as plain strings, so they can
//! be tested with a local `sh` and run unchanged over SSH.
//!
//! A process counts as running only if the pid in its pid file is alive *and* its
//! command line contains the service's marker (its config file path): pids
//! get reused, and a zombie has an empty command line, so neither is mistaken
//! for the server.

use splitbrain_core::control::{Control, ControlError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which server a [`Service`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// A ZooKeeper server (`QuorumPeerMain`).
    Zookeeper,
    /// A Kafka broker (`kafka.Kafka`).
    Kafka,
    /// A KRaft controller (`kafka.Kafka` with `process.roles=controller`),
    /// on its own node: see [`crate::db::kraft`].
    #[serde(rename = "kafka-controller")]
    KafkaController,
}

impl ServiceKind {
    /// Directory name under the node's dir, also used in messages.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Zookeeper => "zookeeper",
            ServiceKind::Kafka => "kafka",
            ServiceKind::KafkaController => "kafka-controller",
        }
    }
    /// The configuration file that the process is started with.
    pub fn config_file(self) -> &'static str {
        match self {
            ServiceKind::Zookeeper => "zoo.cfg",
            ServiceKind::Kafka => "server.properties",
            ServiceKind::KafkaController => "controller.properties",
        }
    }
}

/// Where one service lives on its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// What it runs.
    pub kind: ServiceKind,
    /// `<node dir>/<kind>`.
    pub dir: PathBuf,
    /// `<node dir>/run/<kind>.pid`, where the environments' `down` looks for
    /// the processes splitbrain started (see `splitbrain_core::control::Node::dir`).
    pid: PathBuf,
}

/// How long `stop` waits for a clean exit before SIGKILL, in tenths of a second.
const STOP_WAIT_TENTHS: u32 = 100;
/// How long `kill` waits for the process to be gone, in tenths of a second.
const KILL_WAIT_TENTHS: u32 = 50;

/// Quotes a string for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Service {
    /// The service of `kind` under `node_dir`.
    pub fn new(kind: ServiceKind, node_dir: &Path) -> Self {
        Self {
            kind,
            dir: node_dir.join(kind.name()),
            pid: node_dir.join("run").join(format!("{}.pid", kind.name())),
        }
    }
    /// Configuration file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(self.kind.config_file())
    }
    /// Data directory (ZooKeeper's dataDir, Kafka's log.dirs).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    /// Log directory (server log and stdout).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// The script `start` runs.
    pub fn run_script_path(&self) -> PathBuf {
        self.dir.join("run.sh")
    }
    /// The pid file.
    pub fn pid_path(&self) -> PathBuf {
        self.pid.clone()
    }

    fn q(&self, p: PathBuf) -> String {
        sh_quote(&p.to_string_lossy())
    }

    /// Shell that sets `$p` to the running server's pid, or empty.
    fn find_pid(&self) -> String {
        format!(
            "p=$(cat {pid} 2>/dev/null); \
             if [ -n \"$p\" ] && tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -qF -- {marker}; then :; else p=; fi",
            pid = self.q(self.pid_path()),
            marker = self.q(self.config_path()),
        )
    }

    /// The content of `run.sh`: records its own pid, then becomes the JVM.
    /// `java_args` are the JVM options, classpath, main class and arguments.
    pub fn run_script(&self, java: &str, java_args: &[String]) -> String {
        let args: Vec<String> = java_args.iter().map(|a| sh_quote(a)).collect();
        format!(
            "#!/bin/sh\n# Written by splitbrain: runs the {name} server of this node.\n\
             echo $$ > {pid}\nexec {java} {args}\n",
            name = self.kind.name(),
            pid = self.q(self.pid_path()),
            java = sh_quote(java),
            args = args.join(" "),
        )
    }

    /// Starts `run.sh` detached from the SSH session (own session, stdin from
    /// /dev/null, output to `logs/stdout.log`: nothing may keep the SSH
    /// channel open), unless already running.
    /// Prints `started` or `running`.
    pub fn start_cmd(&self) -> String {
        format!(
            "{find}; if [ -n \"$p\" ]; then echo running; exit 0; fi; \
             mkdir -p {logs} {data} {rundir} && cd {dir} && rm -f {pid} || exit 1; \
             setsid sh {run} >> {logs}/stdout.log 2>&1 < /dev/null & \
             i=0; while [ ! -s {pid} ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
             if [ -s {pid} ]; then echo started; else echo 'no pid file after 5 s' >&2; exit 1; fi",
            find = self.find_pid(),
            logs = self.q(self.log_dir()),
            data = self.q(self.data_dir()),
            dir = self.q(self.dir.clone()),
            pid = self.q(self.pid_path()),
            run = self.q(self.run_script_path()),
            rundir = self.q(self.pid.parent().unwrap_or(Path::new("/")).to_path_buf()),
        )
    }

    /// Prints the pid if running, nothing otherwise; always exits 0.
    pub fn pid_cmd(&self) -> String {
        format!("{}; echo $p", self.find_pid())
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) if running. Prints the pid
    /// signalled, or nothing if the server was not running.
    pub fn signal_cmd(&self, signal: &str) -> String {
        format!(
            "{}; if [ -n \"$p\" ]; then kill -{signal} $p && echo $p; fi",
            self.find_pid()
        )
    }

    /// Stops cleanly: SIGCONT (a paused JVM cannot exit), SIGTERM, waits up
    /// to 10 s, then SIGKILL. Prints `stopped`, `killed` or `not running`.
    pub fn stop_cmd(&self) -> String {
        format!(
            "{find}; if [ -z \"$p\" ]; then echo 'not running'; exit 0; fi; \
             kill -CONT $p 2>/dev/null; kill -TERM $p 2>/dev/null; i=0; \
             while kill -0 $p 2>/dev/null && [ -n \"$(tr -d '\\0' < /proc/$p/cmdline 2>/dev/null)\" ] && [ $i -lt {wait} ]; do sleep 0.1; i=$((i+1)); done; \
             if [ $i -ge {wait} ]; then kill -KILL $p 2>/dev/null; echo killed; else echo stopped; fi; rm -f {pid}",
            find = self.find_pid(),
            wait = STOP_WAIT_TENTHS,
            pid = self.q(self.pid_path()),
        )
    }

    /// SIGKILL, then waits (bounded) until the process is gone. Prints the
    /// pid killed or `not running`. The pid file stays, as after a crash.
    pub fn kill_cmd(&self) -> String {
        format!(
            "{find}; if [ -z \"$p\" ]; then echo 'not running'; exit 0; fi; kill -KILL $p; i=0; \
             while [ -n \"$(tr -d '\\0' < /proc/$p/cmdline 2>/dev/null)\" ] && [ $i -lt {wait} ]; do sleep 0.1; i=$((i+1)); done; echo $p",
            find = self.find_pid(),
            wait = KILL_WAIT_TENTHS,
        )
    }

    /// Removes data and logs, as a lost disk would, but keeps `data/myid`
    /// (ZooKeeper's identity is configuration, not data), so the server can
    /// be started again as the same, empty, member. Stop it first.
    pub fn wipe_cmd(&self) -> String {
        format!(
            "if [ -d {data} ]; then find {data} -mindepth 1 -maxdepth 1 ! -name myid -exec rm -rf {{}} +; fi; rm -rf {logs} {pid}",
            data = self.q(self.data_dir()),
            logs = self.q(self.log_dir()),
            pid = self.q(self.pid_path())
        )
    }
}

/// One shell command that writes every `(path, contents, mode)` (creating
/// parent directories). A single SSH round trip: writing small config files
/// one by one over SCP costs a channel (and a `mkdir`) each.
pub fn write_files_cmd(files: &[(PathBuf, String, u32)]) -> String {
    let mut cmd = String::from("set -e");
    for (path, contents, mode) in files {
        let p = sh_quote(&path.to_string_lossy());
        let dir = sh_quote(&path.parent().unwrap_or(Path::new("/")).to_string_lossy());
        cmd.push_str(&format!(
            "; mkdir -p {dir}; printf '%s' {} > {p}.tmp; chmod {mode:o} {p}.tmp; mv {p}.tmp {p}",
            sh_quote(contents)
        ));
    }
    cmd
}

/// Timeout for one lifecycle command over SSH (stop waits up to 10 s itself).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

impl Service {
    /// Runs one of this service's commands on `node`; its trimmed stdout.
    pub fn run(&self, control: &Control, node: &str, cmd: &str) -> Result<String, ControlError> {
        Ok(control
            .exec_ok(node, cmd, COMMAND_TIMEOUT)?
            .stdout
            .trim()
            .to_string())
    }
    /// Starts the server on `node` ([`Service::start_cmd`]).
    pub fn start(&self, control: &Control, node: &str) -> Result<String, ControlError> {
        self.run(control, node, &self.start_cmd())
    }
    /// Stops it cleanly ([`Service::stop_cmd`]).
    pub fn stop(&self, control: &Control, node: &str) -> Result<String, ControlError> {
        self.run(control, node, &self.stop_cmd())
    }
    /// Kills it with SIGKILL ([`Service::kill_cmd`]).
    pub fn kill(&self, control: &Control, node: &str) -> Result<String, ControlError> {
        self.run(control, node, &self.kill_cmd())
    }
    /// Pauses it (SIGSTOP); returns the pid, empty if not running.
    pub fn pause(&self, control: &Control, node: &str) -> Result<String, ControlError> {
        self.run(control, node, &self.signal_cmd("STOP"))
    }
    /// Resumes it (SIGCONT); returns the pid, empty if not running.
    pub fn resume(&self, control: &Control, node: &str) -> Result<String, ControlError> {
        self.run(control, node, &self.signal_cmd("CONT"))
    }
    /// Its pid if running.
    pub fn pid(&self, control: &Control, node: &str) -> Result<Option<u32>, ControlError> {
        Ok(self.run(control, node, &self.pid_cmd())?.parse().ok())
    }
    /// Removes its data and logs.
    pub fn wipe(&self, control: &Control, node: &str) -> Result<String, ControlError> {
        self.run(control, node, &self.wipe_cmd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(cmd: &str) -> (i32, String) {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    #[test]
    fn write_files_writes_contents_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("x/y/a.cfg");
        let b = tmp.path().join("run.sh");
        let text = "k=v\nquote ' and $HOME and `x` and %s\n".to_string();
        let cmd = write_files_cmd(&[
            (a.clone(), text.clone(), 0o644),
            (b.clone(), "#!/bin/sh\n".into(), 0o755),
        ]);
        assert_eq!(sh(&cmd).0, 0);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), text);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&b).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn quoting_survives_single_quotes() {
        let (_, out) = sh(&format!("echo {}", sh_quote("a'b c*")));
        assert_eq!(out, "a'b c*");
    }

    /// The whole lifecycle on a local stand-in process (`sleep`, started via
    /// the same run.sh mechanism, with the config path on its command line).
    #[test]
    fn lifecycle_commands_on_a_local_process() {
        let tmp = tempfile::tempdir().unwrap();
        let svc = Service::new(ServiceKind::Zookeeper, tmp.path());
        std::fs::create_dir_all(&svc.dir).unwrap();
        // `sh -c 'sleep 60' <config path>`: the marker is in the cmdline.
        let script = svc.run_script(
            "sh",
            &[
                "-c".into(),
                "sleep 60".into(),
                svc.config_path().to_string_lossy().into(),
            ],
        );
        std::fs::write(svc.run_script_path(), script).unwrap();

        assert_eq!(sh(&svc.pid_cmd()), (0, String::new()));
        assert_eq!(sh(&svc.stop_cmd()), (0, "not running".into()));
        assert_eq!(sh(&svc.start_cmd()), (0, "started".into()));
        let (_, pid) = sh(&svc.pid_cmd());
        assert!(!pid.is_empty());
        assert_eq!(sh(&svc.start_cmd()), (0, "running".into()));

        assert_eq!(sh(&svc.signal_cmd("STOP")).1, pid);
        // Signals arrive asynchronously: poll (bounded) for the stopped state.
        let stopped = (0..50).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            state.contains(") T ")
        });
        assert!(stopped, "process {pid} not stopped after SIGSTOP");
        // stop works on a paused process (it sends SIGCONT first).
        assert_eq!(sh(&svc.stop_cmd()), (0, "stopped".into()));
        assert_eq!(sh(&svc.pid_cmd()).1, "");

        assert_eq!(sh(&svc.start_cmd()), (0, "started".into()));
        let (_, pid) = sh(&svc.pid_cmd());
        assert_eq!(sh(&svc.kill_cmd()).1, pid);
        assert_eq!(sh(&svc.pid_cmd()).1, "", "still running after kill");
        // A stale pid file of a dead process does not count as running.
        assert!(svc.pid_path().exists());
        assert_eq!(sh(&svc.signal_cmd("CONT")).1, "");

        std::fs::create_dir_all(svc.data_dir().join("version-2")).unwrap();
        std::fs::write(svc.data_dir().join("version-2/log.1"), b"x").unwrap();
        std::fs::write(svc.data_dir().join("myid"), b"3\n").unwrap();
        assert_eq!(sh(&svc.wipe_cmd()).0, 0);
        assert!(!svc.data_dir().join("version-2").exists());
        assert!(!svc.log_dir().exists());
        assert_eq!(std::fs::read(svc.data_dir().join("myid")).unwrap(), b"3\n");
    }

    #[test]
    fn a_reused_pid_is_not_mistaken_for_the_server() {
        let tmp = tempfile::tempdir().unwrap();
        let svc = Service::new(ServiceKind::Kafka, tmp.path());
        std::fs::create_dir_all(svc.pid_path().parent().unwrap()).unwrap();
        // Our own pid: alive, but its command line lacks the config path.
        std::fs::write(svc.pid_path(), std::process::id().to_string()).unwrap();
        assert_eq!(sh(&svc.pid_cmd()).1, "");
        assert_eq!(sh(&svc.kill_cmd()).1, "not running");
    }
}
