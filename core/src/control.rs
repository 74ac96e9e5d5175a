//! SSH control of nodes: the only way splitbrain touches a node.
//!
//! Like Jepsen's `control` namespace: a [`Node`] says where a machine is and
//! how to log in; a [`Session`] is one authenticated SSH connection to it that
//! runs commands with a timeout, moves files and follows logs; a [`Control`]
//! owns one session per node, each on its own worker thread, and runs work on
//! one node or on all of them concurrently.
//!
//! Rules this module keeps:
//! - host keys are checked against the node's `known_hosts` file (written by the
//!   environment that created the node); an unknown or changed key is an error;
//! - authentication is by private key only; no password is ever used or logged;
//! - only *connecting* is retried (with bounded backoff), including
//!   re-connecting a node whose session dropped ([`Control`],
//!   [`ReconnectPolicy`], reported as [`SessionEvent`]s); a command that may
//!   have had an effect is never retried here;
//! - every wait is bounded by a caller-given timeout, and a command's
//!   timeout is enforced on the node too ([`Session::exec`]): a command that
//!   times out does not keep running there;
//! - privileged commands of a non-root login go through `sudo -n`
//!   ([`Session::exec_privileged`]); a sudo that wants a password is a clear
//!   error, never a prompt.
//!
//! Sessions run libssh2 in non-blocking mode and wait on the socket with
//! `poll(2)`, so a timeout bounds the whole command (not each read), and stdout
//! and stderr are drained together (a chatty stderr cannot stall stdout).

use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// A machine splitbrain controls over SSH.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Short logical name, e.g. `"n1"`; unique within an environment.
    pub name: String,
    /// Address the control node reaches the node's sshd at.
    pub address: IpAddr,
    /// The host name the user wrote for this node (hosts files may name a
    /// host instead of an address), resolved to `address` when the
    /// environment was made; known_hosts is checked under this name too.
    /// `None` for nodes splitbrain made itself (netns, Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// sshd port (22 for netns nodes).
    pub port: u16,
    /// Login user (`root` for netns nodes).
    pub user: String,
    /// Private key on the control node used to log in (key auth only).
    pub key_path: PathBuf,
    /// `known_hosts` file on the control node holding this node's host key.
    pub known_hosts: PathBuf,
    /// This node's own directory *on the node*: data, logs and configs of
    /// everything splitbrain runs there live under it, so "node n3's disk" is
    /// one directory. By convention processes splitbrain starts write their pid
    /// file to `<dir>/run/<name>.pid` (the `ssh` environment's `down` stops them).
    pub dir: PathBuf,
}

impl Node {
    /// The node's sshd address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// Whether commands on this node run as root (the login user is `root`).
    pub fn is_root(&self) -> bool {
        self.user == "root"
    }

    /// `cmd` as a privileged command on this node: unchanged for root;
    /// for any other login user, run through `sudo -n` (never prompting: a
    /// sudo that wants a password fails at once, see [`SUDO_NEEDS_PASSWORD`])
    /// in `sh -c`, whose PATH is sudo's `secure_path` (it has `/usr/sbin`,
    /// where iptables lives, which a non-login SSH shell of a plain user
    /// lacks).
    pub fn sudo(&self, cmd: &str) -> String {
        if self.is_root() {
            cmd.to_string()
        } else {
            format!("sudo -n -- sh -c {}", shell_quote(cmd))
        }
    }
}

/// What `sudo -n` prints when the login user may not run commands without a
/// password; callers turn it into an error that says how to fix sudoers.
pub const SUDO_NEEDS_PASSWORD: &str = "a password is required";

impl Node {
    /// The name to look this node up under in known_hosts and to show in
    /// messages: the host name the user wrote, else the address.
    pub fn host_name(&self) -> String {
        self.host
            .clone()
            .unwrap_or_else(|| self.address.to_string())
    }
}

/// What a remote command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Exit status. When the command was killed by a signal this is
    /// `128 + signal number` (as a shell reports it), `255` if the signal is
    /// unknown.
    pub status: i32,
    /// Everything it wrote to stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything it wrote to stderr (lossily decoded as UTF-8).
    pub stderr: String,
}

impl Output {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Why a control operation failed. Every variant names the node and the
/// command (for connecting, the command is `connect`).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No SSH connection could be made within the timeout.
    #[error(
        "{node}: connect to {addr}: gave up after {attempts} attempt(s) in {elapsed:?}: {detail}; \
         check that the node is up and its sshd listens there (`splitbrain env status`)"
    )]
    Connect {
        /// Node name.
        node: String,
        /// Address tried.
        addr: SocketAddr,
        /// Connection attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// Last failure.
        detail: String,
    },
    /// The node's host key is not in its known_hosts file.
    #[error(
        "{node}: connect to {addr}: host key not found in {known_hosts}; refusing to connect. \
         Re-create the environment (`splitbrain env up`) or add the node's verified key to that file"
    )]
    HostKeyUnknown {
        /// Node name.
        node: String,
        /// Address connected to.
        addr: SocketAddr,
        /// File checked.
        known_hosts: PathBuf,
    },
    /// The node presented a different host key from the recorded one.
    #[error(
        "{node}: connect to {addr}: host key DIFFERS from the one in {known_hosts}; refusing to \
         connect (the node was re-created, or something intercepts the connection). Re-create the \
         environment or correct that file"
    )]
    HostKeyChanged {
        /// Node name.
        node: String,
        /// Address connected to.
        addr: SocketAddr,
        /// File checked.
        known_hosts: PathBuf,
    },
    /// Key authentication was refused.
    #[error(
        "{node}: connect: key authentication as {user} with {key_path} failed: {detail}; check \
         that the matching public key is in the node's authorized_keys"
    )]
    Auth {
        /// Node name.
        node: String,
        /// Login user.
        user: String,
        /// Private key used.
        key_path: PathBuf,
        /// libssh2's reason.
        detail: String,
    },
    /// An SSH protocol or transport error while running a command.
    #[error("{node}: `{command}`: ssh error: {detail}")]
    Ssh {
        /// Node name.
        node: String,
        /// Command being run.
        command: String,
        /// libssh2's reason.
        detail: String,
    },
    /// The command did not finish within its timeout (it may have had an
    /// effect: it is not retried). Commands run by [`Session::exec`] are
    /// stopped *on the node* at that deadline (see [`Session::exec`]);
    /// `stopped_on_node` says whether the node enforced it.
    #[error("{node}: `{command}` did not finish within {timeout:?}; {}", timeout_fate(*.stopped_on_node))]
    Timeout {
        /// Node name.
        node: String,
        /// Command being run.
        command: String,
        /// The timeout.
        timeout: Duration,
        /// True when the node itself stops the command at the deadline
        /// (coreutils `timeout` around it: SIGTERM, then SIGKILL
        /// [`KILL_GRACE`] later, to its whole process group); false when
        /// only the control side gave up, so it may still be running there.
        stopped_on_node: bool,
    },
    /// The node's session broke earlier and could not be re-established
    /// (see [`Control`]'s reconnection): nothing was run.
    #[error(
        "{node}: `{command}`: not run: the SSH session to this node was lost and reconnecting \
         gave up ({detail}); check that the node is up and its sshd listens \
         (`splitbrain env status`); the next command tries to reconnect once more"
    )]
    SessionLost {
        /// Node name.
        node: String,
        /// Command not run.
        command: String,
        /// Why the session was lost and the last reconnection error.
        detail: String,
    },
    /// A privileged command needs `sudo`, and sudo wants a password for the
    /// login user (splitbrain never types one).
    #[error(
        "{node}: `{command}` needs root, and sudo asks {user} for a password; allow it without \
         one, e.g. a sudoers line `{user} ALL=(ALL) NOPASSWD: ALL` (in /etc/sudoers.d/splitbrain, \
         edited with `visudo -f`), or log in as root in the hosts file"
    )]
    SudoPassword {
        /// Node name.
        node: String,
        /// The privileged command.
        command: String,
        /// Login user sudo asked.
        user: String,
    },
    /// The command exited with a non-zero status (from `exec_ok` and friends).
    #[error("{node}: `{command}` exited with status {status}: {stderr}")]
    Failed {
        /// Node name.
        node: String,
        /// Command run.
        command: String,
        /// Its exit status.
        status: i32,
        /// Its stderr (trimmed).
        stderr: String,
    },
    /// A local file could not be read or written.
    #[error("{node}: `{command}`: local file {path}: {source}")]
    LocalIo {
        /// Node name.
        node: String,
        /// Operation.
        command: String,
        /// Local path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A followed log stream ended (the remote `tail` exited or the
    /// connection closed).
    #[error("{node}: `{command}`: the log stream ended")]
    StreamEnded {
        /// Node name.
        node: String,
        /// The follow command.
        command: String,
    },
    /// The node is not part of this [`Control`].
    #[error("{node}: `{command}`: no such node here (known nodes: {known})")]
    UnknownNode {
        /// Requested node name.
        node: String,
        /// Operation.
        command: String,
        /// Names that exist.
        known: String,
    },
    /// The node's worker thread is gone (it cannot run anything any more).
    #[error(
        "{node}: `{command}`: the node's control thread has stopped; reconnect with a new Control"
    )]
    WorkerGone {
        /// Node name.
        node: String,
        /// Operation.
        command: String,
    },
    /// The closure run on the node panicked (the session was kept).
    #[error("{node}: `{command}` panicked: {message}")]
    Panicked {
        /// Node name.
        node: String,
        /// Operation.
        command: String,
        /// Panic payload, when it was a string.
        message: String,
    },
}

impl ControlError {
    /// Name of the node the error is about.
    pub fn node(&self) -> &str {
        match self {
            ControlError::Connect { node, .. }
            | ControlError::HostKeyUnknown { node, .. }
            | ControlError::HostKeyChanged { node, .. }
            | ControlError::Auth { node, .. }
            | ControlError::Ssh { node, .. }
            | ControlError::Timeout { node, .. }
            | ControlError::SessionLost { node, .. }
            | ControlError::SudoPassword { node, .. }
            | ControlError::Failed { node, .. }
            | ControlError::LocalIo { node, .. }
            | ControlError::StreamEnded { node, .. }
            | ControlError::UnknownNode { node, .. }
            | ControlError::WorkerGone { node, .. }
            | ControlError::Panicked { node, .. } => node,
        }
    }
}

/// How [`ControlError::Timeout`] ends its message.
fn timeout_fate(stopped_on_node: bool) -> &'static str {
    if stopped_on_node {
        "the node stops it at that deadline (SIGTERM to its process group, SIGKILL 2 s later)"
    } else {
        "it may still be running on the node"
    }
}

/// Quotes `s` for a POSIX shell (single quotes), so any path or argument can
/// be pasted into a remote command line.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// libssh2's "would block" code.
const EAGAIN: i32 = -37;

fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(EAGAIN)
}

/// Maps an exit signal name (`"KILL"`) to the shell's `128 + n` status.
fn signal_status(name: &str) -> i32 {
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => return 255,
    };
    128 + n
}

/// One authenticated SSH connection to one node. Not shared between threads:
/// [`Control`] gives each session its own worker thread.
pub struct Session {
    node: Node,
    ssh: ssh2::Session,
    fd: RawFd,
    /// Whether commands are wrapped in the node's coreutils `timeout`
    /// (probed at connect; see [`Session::exec`]).
    node_timeouts: bool,
    /// Set when an operation failed in a way that may mean the transport
    /// broke (an SSH error, or no answer by the deadline); [`Control`]'s
    /// worker then checks the session and reconnects it if it is dead.
    suspect: Cell<Option<String>>,
    /// Set by [`Control`]'s worker when reconnecting gave up: operations
    /// fail at once with [`ControlError::SessionLost`].
    lost: Option<String>,
    /// Set for a [`Control`]'s sessions: how to reconnect and whom to tell.
    recovery: Option<Recovery>,
}

/// How long after SIGTERM a command that outlived its timeout on the node
/// gets SIGKILL (coreutils `timeout -k`).
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How much longer than the node-side kill the control side waits for the
/// exit status before it gives up on its own (and suspects the transport).
const STATUS_MARGIN: Duration = Duration::from_secs(1);

/// The command the node runs for `cmd` with a node-side deadline: coreutils
/// `timeout` becomes the SSH session's process (`exec`), puts itself and the
/// command in a new process group, and at `timeout` sends SIGTERM to that
/// whole group, SIGKILL [`KILL_GRACE`] later. The command runs in the login
/// user's own shell (`$SHELL -c`, as sshd runs it), so quoting, PATH and
/// shell features are as without the wrapper. Processes that leave the group
/// (`setsid`, as the services' starters do) are not touched, and nothing is
/// killed when the command ends before its deadline.
pub fn node_timeout_command(cmd: &str, timeout: Duration) -> String {
    timeout_in_shell(cmd, timeout, "\"${SHELL:-/bin/sh}\"")
}

/// `cmd` run by `shell -c` under coreutils `timeout` (see
/// [`node_timeout_command`]).
fn timeout_in_shell(cmd: &str, timeout: Duration, shell: &str) -> String {
    // `timeout 0` would mean "no limit".
    let secs = timeout.as_secs_f64().max(0.001);
    format!(
        "exec timeout -k {} {secs:.3} {shell} -c {}",
        KILL_GRACE.as_secs(),
        shell_quote(cmd)
    )
}

/// Whether a wrapped command's result means the node stopped it at its
/// deadline: `timeout` exits 124 after SIGTERM did it, or dies of SIGKILL
/// (status 137) when the grace ran out. A command that exits 124 or dies
/// of SIGKILL on its own is told apart by time: it ran less than its
/// timeout (resp. timeout plus grace), measured here, which includes the
/// round trip and so is never shorter than on the node.
fn stopped_at_deadline(status: i32, elapsed: Duration, timeout: Duration) -> bool {
    (status == 124 && elapsed >= timeout)
        || (status == 137 && elapsed >= timeout.saturating_add(KILL_GRACE))
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("node", &self.node.name)
            .finish()
    }
}

impl Session {
    /// Connects to `node`, checks its host key against `node.known_hosts` and
    /// logs in with `node.key_path`. TCP connection and handshake failures
    /// (e.g. sshd not started yet) are retried with backoff (50 ms doubling up
    /// to 1 s) until `timeout` has passed; host-key and authentication
    /// failures are not retried.
    pub fn connect(node: &Node, timeout: Duration) -> Result<Session, ControlError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let addr = node.socket_addr();
        let mut attempts = 0u32;
        let mut backoff = Duration::from_millis(50);
        loop {
            attempts += 1;
            let last = match Self::try_connect(node, deadline) {
                Ok(session) => return Ok(session),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(detail)) => detail,
            };
            let now = Instant::now();
            if now + backoff >= deadline {
                return Err(ControlError::Connect {
                    node: node.name.clone(),
                    addr,
                    attempts,
                    elapsed: now - started,
                    detail: last,
                });
            }
            tracing::debug!(node = %node.name, %addr, attempts, "connect failed, retrying: {last}");
            thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    fn try_connect(node: &Node, deadline: Instant) -> Result<Session, Attempt> {
        let addr = node.socket_addr();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Attempt::Retry("timed out".into()));
        }
        let tcp = TcpStream::connect_timeout(&addr, remaining)
            .map_err(|e| Attempt::Retry(format!("tcp: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let mut ssh = ssh2::Session::new().map_err(|e| Attempt::Retry(e.to_string()))?;
        ssh.set_tcp_stream(tcp);
        ssh.set_blocking(false);
        let mut session = Session {
            node: node.clone(),
            ssh,
            fd,
            node_timeouts: false,
            suspect: Cell::new(None),
            lost: None,
            recovery: None,
        };
        // The handshake needs `&mut ssh2::Session`; run the non-blocking loop
        // by hand.
        loop {
            match session.ssh.handshake() {
                Ok(()) => break,
                Err(e) if is_eagain(&e) => {
                    if !session.wait_socket(deadline) {
                        return Err(Attempt::Retry("ssh handshake timed out".into()));
                    }
                }
                Err(e) => return Err(Attempt::Retry(format!("ssh handshake: {e}"))),
            }
        }
        session.check_host_key().map_err(Attempt::Fatal)?;
        let key_path = node.key_path.clone();
        let user = node.user.clone();
        let auth = session.again("connect", deadline, Duration::ZERO, |ssh| {
            ssh.userauth_pubkey_file(&user, None, &key_path, None)
        });
        match auth {
            Ok(()) if session.ssh.authenticated() => {
                session.probe_node_timeouts(deadline);
                Ok(session)
            }
            Ok(()) => Err(Attempt::Fatal(
                session.auth_error("not authenticated".into()),
            )),
            Err(ControlError::Timeout { .. }) => {
                Err(Attempt::Retry("authentication timed out".into()))
            }
            Err(ControlError::Ssh { detail, .. }) => {
                Err(Attempt::Fatal(session.auth_error(detail)))
            }
            Err(e) => Err(Attempt::Fatal(e)),
        }
    }

    /// Learns whether the node has a `timeout` that kills at a deadline
    /// (coreutils, or any with `-k`); without one, commands run unwrapped
    /// and only the control side bounds them (a warning says so).
    fn probe_node_timeouts(&mut self, deadline: Instant) {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(5));
        let probe = "exec timeout -k 1 10 true";
        match self.exec_raw(probe, probe, budget, budget) {
            Ok(out) if out.success() => self.node_timeouts = true,
            Ok(out) => tracing::warn!(
                node = %self.node.name,
                "no usable `timeout` on the node (status {}: {}); commands that time out may keep \
                 running there: install coreutils",
                out.status,
                out.stderr.trim()
            ),
            Err(e) => tracing::warn!(node = %self.node.name, "cannot probe for `timeout`: {e}"),
        }
        self.suspect.set(None);
    }

    /// Whether commands are stopped on the node at their deadline (the node
    /// has coreutils `timeout`; see [`Session::exec`]).
    pub fn node_timeouts(&self) -> bool {
        self.node_timeouts
    }

    /// Turns the node-side deadline of [`Session::exec`] on or off (it is on
    /// when the node has `timeout`). Off, a timed-out command is only given
    /// up on here and may keep running on the node: for comparisons and
    /// tests. Turning it on for a node without `timeout` makes every
    /// command fail with status 127.
    pub fn set_node_timeouts(&mut self, on: bool) {
        self.node_timeouts = on;
    }

    /// Takes the reason this session may be broken, if an operation since
    /// the last call failed in a way that may mean so (an SSH error, or no
    /// answer by the deadline). [`Control`] checks such sessions.
    pub fn take_suspect(&self) -> Option<String> {
        self.suspect.take()
    }

    /// Whether the session answers a trivial command within `timeout` (a
    /// fresh channel and `true`): false when its transport is dead.
    pub fn is_alive(&mut self, timeout: Duration) -> bool {
        if self.lost.is_some() {
            return false;
        }
        // A check must not recover (that is what its answer decides).
        let recovery = self.recovery.take();
        let alive = matches!(
            self.exec_raw("true", "true", timeout, timeout),
            Ok(ref out) if out.success()
        );
        self.recovery = recovery;
        self.suspect.set(None);
        alive
    }

    fn lost_error(&self, command: &str) -> Option<ControlError> {
        self.lost.as_ref().map(|detail| ControlError::SessionLost {
            node: self.node.name.clone(),
            command: command.to_string(),
            detail: detail.clone(),
        })
    }

    fn auth_error(&self, detail: String) -> ControlError {
        ControlError::Auth {
            node: self.node.name.clone(),
            user: self.node.user.clone(),
            key_path: self.node.key_path.clone(),
            detail,
        }
    }

    fn check_host_key(&self) -> Result<(), ControlError> {
        let node = &self.node;
        let addr = node.socket_addr();
        let unknown = || ControlError::HostKeyUnknown {
            node: node.name.clone(),
            addr,
            known_hosts: node.known_hosts.clone(),
        };
        let (key, _kind) = self.ssh.host_key().ok_or_else(unknown)?;
        let mut known = self.ssh.known_hosts().map_err(|e| ControlError::Ssh {
            node: node.name.clone(),
            command: "connect".into(),
            detail: e.to_string(),
        })?;
        if let Err(e) = known.read_file(&node.known_hosts, ssh2::KnownHostFileKind::OpenSSH) {
            // A missing or unreadable file means we cannot vouch for the key.
            tracing::warn!(node = %node.name, file = %node.known_hosts.display(), "cannot read known_hosts: {e}");
            return Err(unknown());
        }
        // A host named in a hosts file is usually in known_hosts under that
        // name; fall back to the address for entries written by address.
        let mut result = ssh2::CheckResult::NotFound;
        for name in node.host.iter().cloned().chain([node.address.to_string()]) {
            result = known.check_port(&name, node.port, key);
            if !matches!(result, ssh2::CheckResult::NotFound) {
                break;
            }
        }
        match result {
            ssh2::CheckResult::Match => Ok(()),
            ssh2::CheckResult::Mismatch => Err(ControlError::HostKeyChanged {
                node: node.name.clone(),
                addr,
                known_hosts: node.known_hosts.clone(),
            }),
            ssh2::CheckResult::NotFound | ssh2::CheckResult::Failure => Err(unknown()),
        }
    }

    /// The node this session is connected to.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Replaces this session with a fresh connection to the same node (same
    /// checks and retries as [`Session::connect`]), e.g. after the node's sshd
    /// was restarted. Inside a [`Control`]: `control.on(node, |s| s.reconnect(t))`.
    pub fn reconnect(&mut self, timeout: Duration) -> Result<(), ControlError> {
        let fresh = Session::connect(&self.node, timeout)?;
        // A Control's session keeps recovering itself.
        let recovery = self.recovery.take();
        *self = fresh;
        self.recovery = recovery;
        Ok(())
    }

    /// Waits until the socket is ready in the direction libssh2 is blocked on,
    /// or the deadline passes (returns false then).
    fn wait_socket(&self, deadline: Instant) -> bool {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return false;
        }
        let events = match self.ssh.block_directions() {
            ssh2::BlockDirections::Inbound => libc::POLLIN,
            ssh2::BlockDirections::Outbound => libc::POLLOUT,
            _ => libc::POLLIN | libc::POLLOUT,
        };
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // Wake at least every 100 ms so a deadline is never overshot by much.
        let ms = remaining.as_millis().clamp(1, 100) as libc::c_int;
        // SAFETY: one valid pollfd, owned by this stack frame, for the call.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        true
    }

    /// Runs a non-blocking libssh2 call until it stops saying "would block".
    fn again<T>(
        &self,
        command: &str,
        deadline: Instant,
        timeout: Duration,
        mut f: impl FnMut(&ssh2::Session) -> Result<T, ssh2::Error>,
    ) -> Result<T, ControlError> {
        loop {
            match f(&self.ssh) {
                Ok(v) => return Ok(v),
                Err(e) if is_eagain(&e) => {
                    if !self.wait_socket(deadline) {
                        return Err(self.deadline_error(command, timeout, false));
                    }
                }
                Err(e) => return Err(self.ssh_error(command, e)),
            }
        }
    }

    /// An SSH-level failure; it may mean the transport broke, so the
    /// session is marked for a check ([`Session::take_suspect`]).
    fn ssh_error(&self, command: &str, e: impl fmt::Display) -> ControlError {
        let detail = e.to_string();
        self.suspect
            .set(Some(format!("`{command}`: ssh error: {detail}")));
        ControlError::Ssh {
            node: self.node.name.clone(),
            command: command.to_string(),
            detail,
        }
    }

    /// A wait that should not run out did (no answer from the node by the
    /// deadline): like an SSH error, it may mean the transport is dead.
    fn deadline_error(
        &self,
        command: &str,
        timeout: Duration,
        stopped_on_node: bool,
    ) -> ControlError {
        self.suspect.set(Some(format!(
            "`{command}`: no answer from the node within {timeout:?}"
        )));
        ControlError::Timeout {
            node: self.node.name.clone(),
            command: command.to_string(),
            timeout,
            stopped_on_node,
        }
    }

    /// A timeout that says nothing about the transport (e.g. no matching
    /// log line arrived in time).
    fn timeout_error(&self, command: &str, timeout: Duration) -> ControlError {
        ControlError::Timeout {
            node: self.node.name.clone(),
            command: command.to_string(),
            timeout,
            stopped_on_node: false,
        }
    }

    fn local_error(&self, command: &str, path: &Path, source: io::Error) -> ControlError {
        ControlError::LocalIo {
            node: self.node.name.clone(),
            command: command.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// Frees a channel that may be mid-operation without leaving libssh2 in
    /// a half-done state: closing is given up to a second in blocking mode.
    fn discard(&self, mut channel: ssh2::Channel) {
        self.ssh.set_blocking(true);
        self.ssh.set_timeout(1000);
        let _ = channel.close();
        drop(channel);
        self.ssh.set_timeout(0);
        self.ssh.set_blocking(false);
    }

    /// Runs `cmd` (through the login user's shell) and returns its exit status
    /// and output, whatever the status. Errors only if the command could not be
    /// run or did not finish within `timeout`.
    ///
    /// The timeout is enforced on the node too (when it has coreutils
    /// `timeout`, probed at connect): see [`node_timeout_command`]. At the
    /// deadline the command's process group gets SIGTERM, SIGKILL
    /// [`KILL_GRACE`] later, and this returns [`ControlError::Timeout`] with
    /// `stopped_on_node: true`. The control side waits [`KILL_GRACE`] plus a
    /// second longer for the exit status before it gives up on its own.
    /// Inside the command `$PPID` is `timeout`'s pid, not sshd's.
    pub fn exec(&mut self, cmd: &str, timeout: Duration) -> Result<Output, ControlError> {
        if self.node_timeouts {
            self.exec_bounded(cmd, &node_timeout_command(cmd, timeout), true, timeout)
        } else {
            self.exec_bounded(cmd, cmd, false, timeout)
        }
    }

    /// Runs `run` for `cmd` (errors name `cmd`); `on_node` says that `run`
    /// has `cmd` under the node's `timeout` (see [`Session::exec`]).
    fn exec_bounded(
        &mut self,
        cmd: &str,
        run: &str,
        on_node: bool,
        timeout: Duration,
    ) -> Result<Output, ControlError> {
        if let Some(e) = self.lost_error(cmd) {
            return Err(e);
        }
        if !on_node {
            return self.exec_raw(run, cmd, timeout, timeout);
        }
        let started = Instant::now();
        let out = self.exec_raw(
            run,
            cmd,
            timeout.saturating_add(KILL_GRACE + STATUS_MARGIN),
            timeout,
        )?;
        if stopped_at_deadline(out.status, started.elapsed(), timeout) {
            return Err(ControlError::Timeout {
                node: self.node.name.clone(),
                command: cmd.to_string(),
                timeout,
                stopped_on_node: true,
            });
        }
        Ok(out)
    }

    /// Runs `run` as is (errors name `cmd`, and a timeout reports
    /// `reported`), bounded here by `timeout`. Running out of time here
    /// means the node did not answer: it is not known to have stopped it.
    fn exec_raw(
        &mut self,
        run: &str,
        cmd: &str,
        timeout: Duration,
        reported: Duration,
    ) -> Result<Output, ControlError> {
        let mut channel = self.open_channel(cmd, timeout)?;
        let deadline = Instant::now() + timeout;
        if let Err(e) = self.again(cmd, deadline, reported, |_| channel.exec(run)) {
            self.discard(channel);
            return Err(e);
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut progressed = false;
            for (stream_id, sink) in [(0, &mut stdout), (1, &mut stderr)] {
                match channel.stream(stream_id).read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        sink.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let err = self.ssh_error(cmd, e);
                        self.discard(channel);
                        return Err(err);
                    }
                }
            }
            if channel.eof() {
                break;
            }
            if !progressed && !self.wait_socket(deadline) {
                self.discard(channel);
                return Err(self.deadline_error(cmd, reported, false));
            }
        }
        // Drain anything that arrived with the EOF.
        for (stream_id, sink) in [(0, &mut stdout), (1, &mut stderr)] {
            let _ = channel.stream(stream_id).read_to_end(sink);
        }
        self.again(cmd, deadline, reported, |_| channel.wait_close())?;
        let mut status = channel.exit_status().map_err(|e| self.ssh_error(cmd, e))?;
        if let Ok(signal) = channel.exit_signal() {
            if let Some(name) = signal.exit_signal {
                status = signal_status(&name);
            }
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Like [`Session::exec`], but a non-zero exit status is an error
    /// ([`ControlError::Failed`]) carrying the status and stderr.
    pub fn exec_ok(&mut self, cmd: &str, timeout: Duration) -> Result<Output, ControlError> {
        let out = self.exec(cmd, timeout)?;
        self.succeeded(cmd, out)
    }

    /// `out` if `cmd` exited 0, else [`ControlError::Failed`] with its
    /// status and stderr.
    fn succeeded(&self, cmd: &str, out: Output) -> Result<Output, ControlError> {
        if out.success() {
            Ok(out)
        } else {
            Err(ControlError::Failed {
                node: self.node.name.clone(),
                command: cmd.to_string(),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            })
        }
    }

    /// Runs `cmd` as root on the node: as is for a root login, otherwise
    /// through `sudo -n` ([`Node::sudo`]). Like [`Session::exec`] (any exit
    /// status is Ok), except that a sudo which refuses to run without a
    /// password is [`ControlError::SudoPassword`], naming the fix. Through
    /// sudo, the node-side `timeout` runs *inside* sudo (as root, in
    /// `sh -c`): from outside, the login user could not signal root's
    /// processes.
    pub fn exec_privileged(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<Output, ControlError> {
        if self.node.is_root() {
            return self.exec(cmd, timeout);
        }
        let on_node = self.node_timeouts;
        let run = if on_node {
            self.node.sudo(&timeout_in_shell(cmd, timeout, "sh"))
        } else {
            self.node.sudo(cmd)
        };
        let out = self.exec_bounded(cmd, &run, on_node, timeout)?;
        if !self.node.is_root() && !out.success() && self.sudo_wants_password(&out) {
            return Err(ControlError::SudoPassword {
                node: self.node.name.clone(),
                command: cmd.to_string(),
                user: self.node.user.clone(),
            });
        }
        Ok(out)
    }

    /// Like [`Session::exec_privileged`], but a non-zero exit status is an
    /// error ([`ControlError::Failed`], naming `cmd` as given).
    pub fn exec_privileged_ok(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<Output, ControlError> {
        let out = self.exec_privileged(cmd, timeout)?;
        self.succeeded(cmd, out)
    }

    /// Whether a failed `sudo -n` command failed because sudo wants a
    /// password: sudo's own message says so, or (sudo's messages are
    /// translated) `sudo -n true` fails too while sudo is installed.
    fn sudo_wants_password(&mut self, failed: &Output) -> bool {
        if failed.stderr.contains(SUDO_NEEDS_PASSWORD) {
            return true;
        }
        let check = "command -v sudo >/dev/null 2>&1 || exit 127; sudo -n true 2>/dev/null";
        matches!(
            self.exec(check, Duration::from_secs(10)),
            Ok(out) if out.status != 0 && out.status != 127
        )
    }

    /// Writes `contents` to `remote` on the node with permission bits `mode`
    /// (e.g. `0o644`), creating its parent directories. Overwrites. Bounded by
    /// a timeout of 30 s plus 1 s per MiB.
    pub fn write_file(
        &mut self,
        remote: &Path,
        contents: &[u8],
        mode: i32,
    ) -> Result<(), ControlError> {
        self.send(
            remote,
            mode,
            contents.len() as u64,
            &mut &contents[..],
            None,
        )
    }

    /// Copies the local file `local` to `remote` on the node with permission
    /// bits `mode`, creating the remote parent directories. Streams the file
    /// (no size limit). Bounded by a timeout of 30 s plus 1 s per MiB.
    pub fn upload(&mut self, local: &Path, remote: &Path, mode: i32) -> Result<(), ControlError> {
        let command = format!("upload {} -> {}", local.display(), remote.display());
        let mut file = File::open(local).map_err(|e| self.local_error(&command, local, e))?;
        let len = file
            .metadata()
            .map_err(|e| self.local_error(&command, local, e))?
            .len();
        self.send(remote, mode, len, &mut file, Some(local))
    }

    fn send(
        &mut self,
        remote: &Path,
        mode: i32,
        len: u64,
        source: &mut dyn Read,
        local: Option<&Path>,
    ) -> Result<(), ControlError> {
        let command = format!("write {}", remote.display());
        if let Some(e) = self.lost_error(&command) {
            return Err(e);
        }
        if let Some(parent) = remote.parent().filter(|p| !p.as_os_str().is_empty()) {
            let mkdir = format!("mkdir -p {}", shell_quote(&parent.to_string_lossy()));
            self.exec_ok(&mkdir, Duration::from_secs(30))?;
        }
        let timeout = transfer_timeout(len);
        let deadline = Instant::now() + timeout;
        let mut channel = self.again(&command, deadline, timeout, |s| {
            s.scp_send(remote, mode, len, None)
        })?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while sent < len {
            let n = match source.read(&mut buf) {
                Ok(0) => {
                    self.discard(channel);
                    let e =
                        io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while sending");
                    return Err(self.local_error(&command, local.unwrap_or(remote), e));
                }
                Ok(n) => n.min((len - sent) as usize),
                Err(e) => {
                    self.discard(channel);
                    return Err(self.local_error(&command, local.unwrap_or(remote), e));
                }
            };
            let mut chunk = &buf[..n];
            while !chunk.is_empty() {
                match channel.write(chunk) {
                    Ok(w) => chunk = &chunk[w..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if !self.wait_socket(deadline) {
                            self.discard(channel);
                            return Err(self.deadline_error(&command, timeout, false));
                        }
                    }
                    Err(e) => {
                        let err = self.ssh_error(&command, e);
                        self.discard(channel);
                        return Err(err);
                    }
                }
            }
            sent += n as u64;
        }
        let finish = (|| {
            self.again(&command, deadline, timeout, |_| channel.send_eof())?;
            self.again(&command, deadline, timeout, |_| channel.wait_eof())?;
            self.again(&command, deadline, timeout, |_| channel.close())?;
            self.again(&command, deadline, timeout, |_| channel.wait_close())
        })();
        if let Err(e) = finish {
            self.discard(channel);
            return Err(e);
        }
        Ok(())
    }

    /// Copies `remote` on the node to the local file `local` (overwriting it).
    /// Bounded by a timeout of 30 s plus 1 s per MiB.
    pub fn download(&mut self, remote: &Path, local: &Path) -> Result<(), ControlError> {
        let command = format!("download {} -> {}", remote.display(), local.display());
        if let Some(e) = self.lost_error(&command) {
            return Err(e);
        }
        let timeout0 = Duration::from_secs(30);
        let deadline0 = Instant::now() + timeout0;
        let (mut channel, stat) =
            self.again(&command, deadline0, timeout0, |s| s.scp_recv(remote))?;
        let len = stat.size();
        let timeout = transfer_timeout(len);
        let deadline = Instant::now() + timeout;
        let mut file = match File::create(local) {
            Ok(f) => f,
            Err(e) => {
                self.discard(channel);
                return Err(self.local_error(&command, local, e));
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0u64;
        while received < len {
            let want = buf.len().min((len - received) as usize);
            match channel.read(&mut buf[..want]) {
                Ok(0) => {
                    if channel.eof() {
                        self.discard(channel);
                        let detail = format!("stream ended after {received} of {len} bytes");
                        return Err(self.ssh_error(&command, detail));
                    }
                    if !self.wait_socket(deadline) {
                        self.discard(channel);
                        return Err(self.deadline_error(&command, timeout, false));
                    }
                }
                Ok(n) => {
                    if let Err(e) = file.write_all(&buf[..n]) {
                        self.discard(channel);
                        return Err(self.local_error(&command, local, e));
                    }
                    received += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.wait_socket(deadline) {
                        self.discard(channel);
                        return Err(self.deadline_error(&command, timeout, false));
                    }
                }
                Err(e) => {
                    let err = self.ssh_error(&command, e);
                    self.discard(channel);
                    return Err(err);
                }
            }
        }
        // Closing the scp channel is best effort: the bytes are all here.
        self.discard(channel);
        file.sync_all()
            .map_err(|e| self.local_error(&command, local, e))
    }

    /// Starts following the remote file `path` (like `tail -F`: it may not
    /// exist yet, and is followed across rotation). With `from_start` the
    /// existing content is delivered first; otherwise only lines appended from
    /// now on. The session is busy until the [`LogFollower`] is dropped; use
    /// [`Control::stream_log`] to follow a log on its own connection.
    pub fn follow(
        &mut self,
        path: &Path,
        from_start: bool,
    ) -> Result<LogFollower<'_>, ControlError> {
        // The remote script records the file's current size (0 from the
        // start), says it is ready, then follows from that byte. Waiting for
        // "ready" makes "from now on" mean "from when follow returned", not
        // "from whenever tail got scheduled". `tail` runs in the background
        // and is killed when our stdin closes, i.e. when the follower is
        // dropped: otherwise a `tail -F` on a quiet log would outlive the channel.
        let size = if from_start {
            "0".to_string()
        } else {
            "$(stat -c %s -- \"$p\" 2>/dev/null || echo 0)".to_string()
        };
        let command = format!(
            "p={}; s={size}; echo {FOLLOW_READY}; \
             tail -c +$((s+1)) -F -- \"$p\" 2>/dev/null & read -r _; kill $! 2>/dev/null",
            shell_quote(&path.to_string_lossy())
        );
        if let Some(e) = self.lost_error(&command) {
            return Err(e);
        }
        let timeout = Duration::from_secs(30);
        let mut channel = self.open_channel(&command, timeout)?;
        let deadline = Instant::now() + timeout;
        if let Err(e) = self.again(&command, deadline, timeout, |_| channel.exec(&command)) {
            self.discard(channel);
            return Err(e);
        }
        let mut follower = LogFollower {
            session: self,
            channel: Some(channel),
            command,
            pending: Vec::new(),
        };
        follower.wait_for(timeout, |l| l == FOLLOW_READY)?;
        Ok(follower)
    }
}

/// First line the follow script prints, once it knows where to start.
const FOLLOW_READY: &str = "splitbrain-follow-ready";

impl Drop for Session {
    fn drop(&mut self) {
        // Say goodbye in blocking mode (bounded by 1 s): in non-blocking mode
        // libssh2 may give up half-way and leak the session.
        self.ssh.set_blocking(true);
        self.ssh.set_timeout(1000);
        let _ = self.ssh.disconnect(None, "splitbrain done", None);
    }
}

fn transfer_timeout(len: u64) -> Duration {
    Duration::from_secs(30 + len / (1024 * 1024))
}

enum Attempt {
    Retry(String),
    Fatal(ControlError),
}

/// A remote file being followed over a session (see [`Session::follow`]).
/// Dropping it stops the remote `tail`.
pub struct LogFollower<'a> {
    session: &'a Session,
    channel: Option<ssh2::Channel>,
    command: String,
    pending: Vec<u8>,
}

impl LogFollower<'_> {
    /// Returns the next complete line (without its newline), or `None` if no
    /// complete line arrived within `timeout`. Errors with
    /// [`ControlError::StreamEnded`] when the remote side closed.
    pub fn next_line(&mut self, timeout: Duration) -> Result<Option<String>, ControlError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                return Ok(Some(line));
            }
            let Some(channel) = self.channel.as_mut() else {
                return Err(self.ended());
            };
            match channel.read(&mut buf) {
                Ok(0) if channel.eof() => return Err(self.ended()),
                Ok(0) => {}
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(self.session.ssh_error(&self.command, e)),
            }
            if !self.session.wait_socket(deadline) {
                return Ok(None);
            }
        }
    }

    /// Reads lines until one satisfies `matches` and returns it; errors with
    /// [`ControlError::Timeout`] if none does within `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String, ControlError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next_line(remaining)? {
                Some(line) if matches(&line) => return Ok(line),
                Some(_) if !remaining.is_zero() => {}
                _ => return Err(self.session.timeout_error(&self.command, timeout)),
            }
        }
    }

    fn ended(&self) -> ControlError {
        ControlError::StreamEnded {
            node: self.session.node.name.clone(),
            command: self.command.clone(),
        }
    }
}

impl Drop for LogFollower<'_> {
    fn drop(&mut self) {
        if let Some(mut channel) = self.channel.take() {
            // EOF on the remote `read` makes the wrapper kill `tail`.
            self.session.ssh.set_blocking(true);
            self.session.ssh.set_timeout(1000);
            let _ = channel.send_eof();
            let _ = channel.close();
            drop(channel);
            self.session.ssh.set_timeout(0);
            self.session.ssh.set_blocking(false);
        }
    }
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

struct Worker {
    node: Node,
    jobs: mpsc::Sender<Job>,
}

struct Inner {
    nodes: Vec<Node>,
    workers: Vec<Worker>,
    events: Subscribers,
}

/// How [`Control`] re-establishes a node's session whose transport broke
/// (sshd restarted, a network blip, a reboot). Bounded both in attempts and
/// in total time; whichever bound is reached first ends the recovery with
/// [`SessionEventKind::GaveUp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// At most this many connection attempts (each a [`Session::connect`],
    /// which itself retries refused or unanswered TCP connects within its
    /// timeout).
    pub max_attempts: u32,
    /// At most this long from the drop to giving up.
    pub max_total: Duration,
    /// Time one attempt may take (cut to what is left of `max_total`).
    pub attempt_timeout: Duration,
    /// Wait after the first failed attempt; doubles after each, up to
    /// `max_delay`.
    pub initial_delay: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
    /// Time the check "is this session still alive" (a `true` on a fresh
    /// channel) may take after an operation failed.
    pub probe_timeout: Duration,
}

impl Default for ReconnectPolicy {
    /// At most 10 attempts within 90 s (waits 0.5 s doubling to 10 s, each
    /// attempt up to 10 s): enough for sshd restarts and blips, and for most
    /// reboots; a node down longer is given up on, and each later command
    /// tries one more attempt before it runs.
    fn default() -> Self {
        ReconnectPolicy {
            max_attempts: 10,
            max_total: Duration::from_secs(90),
            attempt_timeout: Duration::from_secs(10),
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
        }
    }
}

/// What happened to a node's session (see [`Control::subscribe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEventKind {
    /// An operation failed and the session turned out dead: recovery starts.
    Dropped,
    /// A new session is in place; later commands use it.
    Reconnected,
    /// Recovery reached a bound of its [`ReconnectPolicy`] (or met an error
    /// no retry fixes, e.g. a changed host key); the node's commands fail
    /// with [`ControlError::SessionLost`] until a later attempt succeeds.
    GaveUp,
}

impl SessionEventKind {
    /// Its name in histories: `dropped`, `reconnected`, `gave-up`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEventKind::Dropped => "dropped",
            SessionEventKind::Reconnected => "reconnected",
            SessionEventKind::GaveUp => "gave-up",
        }
    }
}

/// A change in a node's SSH session, as [`Control`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEvent {
    /// Node name.
    pub node: String,
    /// What happened.
    pub kind: SessionEventKind,
    /// Connection attempts made so far in this recovery (0 for `Dropped`).
    pub attempts: u32,
    /// Time since the drop was noticed (zero for `Dropped`).
    pub elapsed: Duration,
    /// For `Dropped`: the failure that showed the session dead; for
    /// `GaveUp`: the last connection error; for `Reconnected`: the drop's
    /// cause.
    pub cause: String,
}

/// Everyone listening to a [`Control`]'s session events.
#[derive(Clone, Default)]
struct Subscribers(Arc<std::sync::Mutex<Vec<mpsc::Sender<SessionEvent>>>>);

impl Subscribers {
    fn emit(&self, event: SessionEvent) {
        match event.kind {
            SessionEventKind::Reconnected => tracing::warn!(
                node = %event.node, attempts = event.attempts, elapsed = ?event.elapsed,
                "ssh session re-established after a drop ({})", event.cause
            ),
            _ => tracing::warn!(
                node = %event.node, attempts = event.attempts, elapsed = ?event.elapsed,
                "ssh session {}: {}", event.kind.as_str(), event.cause
            ),
        }
        let mut subscribers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        subscribers.retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn subscribe(&self) -> mpsc::Receiver<SessionEvent> {
        let (tx, rx) = mpsc::channel();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }
}

/// What a [`Control`]'s session needs to recover itself: the bounds and
/// where to report.
struct Recovery {
    policy: ReconnectPolicy,
    events: Subscribers,
}

/// A node's worker thread: runs jobs on the session in order and, after a
/// job left the session suspect, checks it and recovers a dead one.
fn run_worker(
    mut session: Session,
    jobs: mpsc::Receiver<Job>,
    policy: ReconnectPolicy,
    events: Subscribers,
) {
    let probe = policy.probe_timeout;
    session.recovery = Some(Recovery { policy, events });
    // Runs until every sender (every Control clone) is gone.
    for job in jobs {
        if session.lost.is_some() {
            session.retry_lost();
        }
        job(&mut session);
        if let Some(cause) = session.take_suspect() {
            let noticed = Instant::now();
            if !session.is_alive(probe) {
                session.recover(cause, noticed);
            }
        }
    }
}

impl Session {
    /// Replaces this dead session with a new one, within the recovery
    /// policy's bounds; reports `Dropped`, then `Reconnected` or `GaveUp`
    /// (then [`Session::lost`] is set). Nothing is retried here. No-op for
    /// a session that is not a [`Control`]'s.
    fn recover(&mut self, cause: String, noticed: Instant) {
        let Some(recovery) = self.recovery.take() else {
            return;
        };
        let (policy, events) = (&recovery.policy, &recovery.events);
        let node = self.node.clone();
        let event = |kind, attempts, cause: &str| SessionEvent {
            node: node.name.clone(),
            kind,
            attempts,
            elapsed: noticed.elapsed(),
            cause: cause.to_string(),
        };
        events.emit(event(SessionEventKind::Dropped, 0, &cause));
        let mut delay = policy.initial_delay;
        let mut attempts = 0;
        let last = loop {
            attempts += 1;
            let left = policy.max_total.saturating_sub(noticed.elapsed());
            let error = match Session::connect(&node, policy.attempt_timeout.min(left)) {
                Ok(fresh) => {
                    *self = fresh;
                    events.emit(event(SessionEventKind::Reconnected, attempts, &cause));
                    self.recovery = Some(recovery);
                    return;
                }
                Err(e) => e,
            };
            // A changed host key or a refused key will not fix itself.
            let retryable = matches!(error, ControlError::Connect { .. });
            if !retryable
                || attempts >= policy.max_attempts
                || noticed.elapsed() + delay >= policy.max_total
            {
                break error.to_string();
            }
            thread::sleep(delay);
            delay = (delay * 2).min(policy.max_delay);
        };
        self.lost = Some(format!(
            "dropped: {cause}; {attempts} reconnection attempt(s) in {:.1?}, last: {last}",
            noticed.elapsed()
        ));
        events.emit(event(SessionEventKind::GaveUp, attempts, &last));
        self.recovery = Some(recovery);
    }

    /// One more attempt for a session given up on, before a job runs on it.
    fn retry_lost(&mut self) {
        let Some(recovery) = self.recovery.take() else {
            return;
        };
        let started = Instant::now();
        match Session::connect(&self.node, recovery.policy.attempt_timeout) {
            Ok(fresh) => {
                let cause = self.lost.take().unwrap_or_default();
                *self = fresh;
                recovery.events.emit(SessionEvent {
                    node: self.node.name.clone(),
                    kind: SessionEventKind::Reconnected,
                    attempts: 1,
                    elapsed: started.elapsed(),
                    cause,
                });
            }
            Err(e) => tracing::debug!(node = %self.node.name, "still unreachable: {e}"),
        }
        self.recovery = Some(recovery);
    }

    /// Opens a channel for `cmd`. When that fails with an SSH error on a
    /// [`Control`]'s session that turns out dead, nothing of `cmd` reached
    /// the node (a command starts only with the request after the open),
    /// so the session is recovered first and the channel opened on the new
    /// one: a drop between commands costs the next command the
    /// reconnection time, not its result.
    fn open_channel(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<ssh2::Channel, ControlError> {
        let first = self.again(cmd, Instant::now() + timeout, timeout, |s| {
            s.channel_session()
        });
        let detail = match first {
            Err(ControlError::Ssh { ref detail, .. }) if self.recovery.is_some() => detail.clone(),
            other => return other,
        };
        let noticed = Instant::now();
        let probe = self
            .recovery
            .as_ref()
            .map_or(Duration::from_secs(5), |r| r.policy.probe_timeout);
        if self.is_alive(probe) {
            return first;
        }
        self.recover(
            format!("`{cmd}`: ssh error: {detail} (before the command started)"),
            noticed,
        );
        if let Some(e) = self.lost_error(cmd) {
            return Err(e);
        }
        self.again(cmd, Instant::now() + timeout, timeout, |s| {
            s.channel_session()
        })
    }
}

/// One SSH session per node, each owned by its own worker thread (libssh2
/// sessions must not be used from two threads). Cheap to clone: clones share
/// the sessions; they close when the last clone is dropped. Work sent to one
/// node runs in order; work on different nodes runs concurrently.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.nodes.iter().map(|n| n.name.as_str()).collect();
        f.debug_struct("Control").field("nodes", &names).finish()
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl Control {
    /// Connects to every node concurrently (see [`Session::connect`] for
    /// retries and checks). Fails with the first node's error (in `nodes`
    /// order) if any node cannot be reached; then no session stays open.
    /// A session that breaks later is re-established with the default
    /// [`ReconnectPolicy`] (see [`Control::connect_with`]).
    pub fn connect(nodes: &[Node], timeout: Duration) -> Result<Control, ControlError> {
        Control::connect_with(nodes, timeout, ReconnectPolicy::default())
    }

    /// [`Control::connect`], recovering broken sessions with `policy`: when
    /// an operation on a node fails with an SSH error or gets no answer by
    /// its deadline, that node's worker checks the session (a `true` on a
    /// fresh channel); if it is dead, it reconnects with bounded backoff
    /// before running the next job. The failed operation is not retried
    /// (it may have had an effect); a timeout of a live session or a
    /// non-zero exit does not reconnect. A command whose channel cannot
    /// even be opened on a dead session (it was dropped while idle) has not
    /// reached the node: the session is recovered at once and the command
    /// runs on the new one. Each step is reported to
    /// [`Control::subscribe`]rs.
    pub fn connect_with(
        nodes: &[Node],
        timeout: Duration,
        policy: ReconnectPolicy,
    ) -> Result<Control, ControlError> {
        let events = Subscribers::default();
        let mut pending = Vec::new();
        for node in nodes {
            let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), ControlError>>(1);
            let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
            let worker_node = node.clone();
            let (policy, events) = (policy.clone(), events.clone());
            let spawned = thread::Builder::new()
                .name(format!("ssh-{}", node.name))
                .spawn(move || {
                    let session = match Session::connect(&worker_node, timeout) {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    run_worker(session, jobs_rx, policy, events);
                });
            if let Err(e) = spawned {
                return Err(ControlError::WorkerGone {
                    node: node.name.clone(),
                    command: format!("connect (spawn thread: {e})"),
                });
            }
            pending.push((node.clone(), ready_rx, jobs_tx));
        }
        let mut workers = Vec::new();
        let mut first_error = None;
        for (node, ready_rx, jobs) in pending {
            match ready_rx.recv() {
                Ok(Ok(())) => workers.push(Worker { node, jobs }),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(ControlError::WorkerGone {
                        node: node.name.clone(),
                        command: "connect".into(),
                    });
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(Control {
            inner: Arc::new(Inner {
                nodes: nodes.to_vec(),
                workers,
                events,
            }),
        })
    }

    /// A channel that receives every [`SessionEvent`] (drops, reconnections,
    /// giving up) of this Control's sessions from now on, from every clone.
    /// Dropping the receiver unsubscribes.
    pub fn subscribe(&self) -> mpsc::Receiver<SessionEvent> {
        self.inner.events.subscribe()
    }

    /// The nodes, in the order given to [`Control::connect`].
    pub fn nodes(&self) -> &[Node] {
        &self.inner.nodes
    }

    /// The node called `name`, if there is one.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.inner.nodes.iter().find(|n| n.name == name)
    }

    fn worker(&self, node: &str, command: &str) -> Result<&Worker, ControlError> {
        self.inner
            .workers
            .iter()
            .find(|w| w.node.name == node)
            .ok_or_else(|| ControlError::UnknownNode {
                node: node.to_string(),
                command: command.to_string(),
                known: self
                    .inner
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Sends `f` to `worker`; the returned receiver yields its result.
    fn submit<T: Send + 'static>(
        worker: &Worker,
        f: impl FnOnce(&mut Session) -> Result<T, ControlError> + Send + 'static,
    ) -> mpsc::Receiver<Result<T, ControlError>> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |session: &mut Session| {
            let result = catch_unwind(AssertUnwindSafe(|| f(session))).unwrap_or_else(|p| {
                Err(ControlError::Panicked {
                    node: session.node.name.clone(),
                    command: "closure run by Control".into(),
                    message: panic_message(p),
                })
            });
            let _ = tx.send(result);
        });
        // If the worker is gone the job (and `tx`) is dropped and the
        // receiver reports it.
        let _ = worker.jobs.send(job);
        rx
    }

    fn receive<T>(
        rx: mpsc::Receiver<Result<T, ControlError>>,
        node: &str,
    ) -> Result<T, ControlError> {
        rx.recv().unwrap_or_else(|_| {
            Err(ControlError::WorkerGone {
                node: node.to_string(),
                command: "closure run by Control".into(),
            })
        })
    }

    /// Runs `f` with the session of node `node` (on that node's worker
    /// thread) and waits for its result.
    pub fn on<T: Send + 'static>(
        &self,
        node: &str,
        f: impl FnOnce(&mut Session) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let worker = self.worker(node, "closure run by Control")?;
        Self::receive(Self::submit(worker, f), node)
    }

    /// Runs `f` on every node concurrently and returns `(node name, result)`
    /// in node order.
    pub fn on_all<T: Send + 'static>(
        &self,
        f: impl Fn(&Node, &mut Session) -> Result<T, ControlError> + Send + Sync + 'static,
    ) -> Vec<(String, Result<T, ControlError>)> {
        let f = Arc::new(f);
        let receivers: Vec<_> = self
            .inner
            .workers
            .iter()
            .map(|worker| {
                let f = Arc::clone(&f);
                let rx = Self::submit(worker, move |session| {
                    let node = session.node.clone();
                    f(&node, session)
                });
                (worker.node.name.clone(), rx)
            })
            .collect();
        receivers
            .into_iter()
            .map(|(name, rx)| {
                let result = Self::receive(rx, &name);
                (name, result)
            })
            .collect()
    }

    /// Runs `f` concurrently on the nodes named in `names` (in that order);
    /// a name that is not a node gets [`ControlError::UnknownNode`].
    pub fn on_nodes<T: Send + 'static>(
        &self,
        names: &[&str],
        f: impl Fn(&Node, &mut Session) -> Result<T, ControlError> + Send + Sync + 'static,
    ) -> Vec<(String, Result<T, ControlError>)> {
        let f = Arc::new(f);
        let pending: Vec<_> = names
            .iter()
            .map(|name| {
                let rx = self.worker(name, "closure run by Control").map(|worker| {
                    let f = Arc::clone(&f);
                    Self::submit(worker, move |session| {
                        let node = session.node.clone();
                        f(&node, session)
                    })
                });
                (name.to_string(), rx)
            })
            .collect();
        pending
            .into_iter()
            .map(|(name, rx)| {
                let result = rx.and_then(|rx| Self::receive(rx, &name));
                (name, result)
            })
            .collect()
    }

    /// Runs `cmd` on one node ([`Session::exec`]: any exit status is Ok).
    pub fn exec(&self, node: &str, cmd: &str, timeout: Duration) -> Result<Output, ControlError> {
        let cmd = cmd.to_string();
        self.on(node, move |s| s.exec(&cmd, timeout))
    }

    /// Runs `cmd` on one node ([`Session::exec_ok`]: non-zero exit is an error).
    pub fn exec_ok(
        &self,
        node: &str,
        cmd: &str,
        timeout: Duration,
    ) -> Result<Output, ControlError> {
        let cmd = cmd.to_string();
        self.on(node, move |s| s.exec_ok(&cmd, timeout))
    }

    /// Runs `cmd` as root on one node ([`Session::exec_privileged_ok`]:
    /// through `sudo -n` for a non-root login; non-zero exit is an error).
    pub fn exec_privileged_ok(
        &self,
        node: &str,
        cmd: &str,
        timeout: Duration,
    ) -> Result<Output, ControlError> {
        let cmd = cmd.to_string();
        self.on(node, move |s| s.exec_privileged_ok(&cmd, timeout))
    }

    /// Runs `cmd` on every node concurrently ([`Session::exec`]).
    pub fn exec_all(
        &self,
        cmd: &str,
        timeout: Duration,
    ) -> Vec<(String, Result<Output, ControlError>)> {
        let cmd = cmd.to_string();
        self.on_all(move |_, s| s.exec(&cmd, timeout))
    }

    /// Follows the remote file `path` on `node` over a *separate* SSH
    /// connection (so the node's main session stays free), delivering lines
    /// through the returned [`LogStream`]. See [`Session::follow`] for
    /// `from_start`. Stops when the `LogStream` is dropped.
    pub fn stream_log(
        &self,
        node: &str,
        path: &Path,
        from_start: bool,
        connect_timeout: Duration,
    ) -> Result<LogStream, ControlError> {
        let command = format!("follow {}", path.display());
        let node = self.worker(node, &command)?.node.clone();
        let mut session = Session::connect(&node, connect_timeout)?;
        let (lines_tx, lines_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let path = path.to_path_buf();
        let spawned = thread::Builder::new()
            .name(format!("log-{}", node.name))
            .spawn(move || {
                let mut follower = match session.follow(&path, from_start) {
                    Ok(f) => {
                        let _ = ready_tx.send(Ok(()));
                        f
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while !thread_stop.load(Ordering::Relaxed) {
                    match follower.next_line(Duration::from_millis(100)) {
                        Ok(Some(line)) => {
                            if lines_tx.send(Ok(line)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let _ = lines_tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            return Err(ControlError::WorkerGone {
                node: node.name.clone(),
                command: format!("{command} (spawn thread: {e})"),
            });
        }
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ControlError::WorkerGone {
                    node: node.name.clone(),
                    command,
                })
            }
        }
        Ok(LogStream {
            node: node.name,
            command,
            lines: lines_rx,
            stop,
        })
    }
}

/// Lines of a remote log followed on its own connection (see
/// [`Control::stream_log`]). Dropping it stops the remote `tail` and closes
/// the connection.
#[derive(Debug)]
pub struct LogStream {
    node: String,
    command: String,
    lines: mpsc::Receiver<Result<String, ControlError>>,
    stop: Arc<AtomicBool>,
}

impl LogStream {
    /// The next line, or `None` if none arrived within `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Result<Option<String>, ControlError> {
        match self.lines.recv_timeout(timeout) {
            Ok(Ok(line)) => Ok(Some(line)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ControlError::StreamEnded {
                node: self.node.clone(),
                command: self.command.clone(),
            }),
        }
    }

    /// Reads lines until one satisfies `matches` and returns it; errors with
    /// [`ControlError::Timeout`] if none does within `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String, ControlError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next_line(remaining)? {
                Some(line) if matches(&line) => return Ok(line),
                Some(_) if !remaining.is_zero() => {}
                _ => {
                    return Err(ControlError::Timeout {
                        node: self.node.clone(),
                        command: self.command.clone(),
                        timeout,
                        stopped_on_node: false,
                    })
                }
            }
        }
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_side_deadline_wraps_the_command_in_the_login_shell() {
        let cmd = node_timeout_command("echo 'a b' && exit 3", Duration::from_millis(1500));
        assert_eq!(
            cmd,
            r#"exec timeout -k 2 1.500 "${SHELL:-/bin/sh}" -c 'echo '\''a b'\'' && exit 3'"#
        );
        // Zero would mean "no limit" to `timeout`.
        assert!(node_timeout_command("true", Duration::ZERO).contains(" 0.001 "));
    }

    #[test]
    fn privileged_commands_put_the_deadline_inside_sudo() {
        let mut node = Node {
            name: "n1".into(),
            address: "10.0.0.1".parse().unwrap(),
            host: None,
            port: 22,
            user: "deploy".into(),
            key_path: "/k".into(),
            known_hosts: "/kh".into(),
            dir: "/d".into(),
        };
        let inner = timeout_in_shell("iptables -w -S", Duration::from_secs(10), "sh");
        assert_eq!(
            node.sudo(&inner),
            r#"sudo -n -- sh -c 'exec timeout -k 2 10.000 sh -c '\''iptables -w -S'\'''"#
        );
        node.user = "root".into();
        assert_eq!(node.sudo("iptables -w -S"), "iptables -w -S");
    }

    #[test]
    fn a_deadline_stop_is_told_from_a_command_that_exits_so_itself() {
        let t = Duration::from_secs(5);
        // SIGTERM at the deadline: 124 once the timeout has passed.
        assert!(stopped_at_deadline(124, t + Duration::from_millis(20), t));
        assert!(!stopped_at_deadline(124, Duration::from_millis(30), t));
        // SIGKILL after the grace.
        assert!(stopped_at_deadline(137, t + KILL_GRACE, t));
        assert!(!stopped_at_deadline(137, t + Duration::from_millis(100), t));
        assert!(!stopped_at_deadline(0, t * 2, t));
        assert!(!stopped_at_deadline(1, t * 2, t));
    }

    #[test]
    fn timeout_messages_say_whether_the_node_stopped_the_command() {
        let e = |stopped_on_node| ControlError::Timeout {
            node: "n1".into(),
            command: "sleep 9".into(),
            timeout: Duration::from_secs(1),
            stopped_on_node,
        };
        assert!(e(true).to_string().contains("the node stops it"));
        assert!(e(false).to_string().contains("may still be running"));
    }
}
