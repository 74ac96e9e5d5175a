//! The `ssh` environment: existing hosts (VMs, bare metal) listed in a TOML
//! file. `up` checks that every host answers over SSH and makes the node's
//! directory, marked as splitbrain's; `down` removes only what splitbrain put
//! there: processes recorded in `<dir>/run/*.pid`, the `SPLITBRAIN` iptables
//! chain, the node directory (only if it carries splitbrain's marker) and
//! the parent directories `up` had to create for it (recorded in the marker).
//! Directories kept on purpose ([`KeptDir`], the jar store) go only with
//! [`down_purging`].
//!
//! ```toml
//! [[nodes]]
//! name = "n1"
//! address = "192.0.2.10"                     # an IP address or a host name
//! port = 22                                  # optional, default 22
//! user = "root"                              # optional, default root
//! key_path = "/home/me/.ssh/id_ed25519"
//! known_hosts = "/home/me/.ssh/known_hosts"
//! dir = "/var/lib/splitbrain/node"           # optional, default /var/lib/splitbrain/node
//! ```
//!
//! A host name is resolved when the file is read (the address is recorded;
//! known_hosts is checked under the name first, then the address). A login
//! user other than root runs privileged commands through `sudo -n`
//! ([`Node::sudo`]): it needs passwordless sudo, and directories it cannot
//! create itself are made with sudo and handed to it (`chown`), so the
//! servers run as that user.

use crate::nodes::state::{EnvKind, EnvState, KeptDir, SshDetails};
use crate::nodes::EnvError;
use serde::Deserialize;
use splitbrain_core::control::{
    shell_quote, Control, ControlError, Node, Output, Session, SUDO_NEEDS_PASSWORD,
};
use splitbrain_core::firewall;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Marker file `up` creates in each node directory; `down` deletes a node
/// directory only if it is there. It holds `top=<dir>`: the topmost
/// directory `up` had to create (empty when the node directory existed).
pub const MARKER: &str = ".splitbrain-node";
/// Node directory used when the hosts file gives none.
pub const DEFAULT_NODE_DIR: &str = "/var/lib/splitbrain/node";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    nodes: Vec<HostEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    name: String,
    /// An IP address or a host name (resolved when the file is read).
    address: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_user")]
    user: String,
    key_path: PathBuf,
    known_hosts: PathBuf,
    #[serde(default)]
    dir: Option<PathBuf>,
}

fn default_port() -> u16 {
    22
}

fn default_user() -> String {
    "root".into()
}

/// Parses a hosts file's text into nodes, checking names are unique and
/// paths absolute.
pub fn parse_hosts(text: &str, origin: &Path) -> Result<Vec<Node>, EnvError> {
    let bad = |msg: String| EnvError::BadInput(format!("hosts file {}: {msg}", origin.display()));
    let file: HostsFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if file.nodes.is_empty() {
        return Err(bad("no [[nodes]] entries".into()));
    }
    let mut nodes: Vec<Node> = Vec::new();
    for entry in file.nodes {
        if entry.name.is_empty()
            || !entry
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(format!(
                "node name {:?}: use letters, digits, '-' and '_'",
                entry.name
            )));
        }
        if nodes.iter().any(|n| n.name == entry.name) {
            return Err(bad(format!("node name {:?} appears twice", entry.name)));
        }
        let dir = entry.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_NODE_DIR));
        for (what, path) in [
            ("key_path", &entry.key_path),
            ("known_hosts", &entry.known_hosts),
            ("dir", &dir),
        ] {
            if !path.is_absolute() {
                return Err(bad(format!(
                    "node {}: {what} {} must be an absolute path",
                    entry.name,
                    path.display()
                )));
            }
        }
        if dir.parent().is_none() {
            return Err(bad(format!("node {}: dir must not be /", entry.name)));
        }
        let (address, host) = resolve(&entry.address, entry.port)
            .map_err(|e| bad(format!("node {}: {e}", entry.name)))?;
        nodes.push(Node {
            name: entry.name,
            address,
            host,
            port: entry.port,
            user: entry.user,
            key_path: entry.key_path,
            known_hosts: entry.known_hosts,
            dir,
        });
    }
    Ok(nodes)
}

/// `address` as an IP address, or the first address (IPv4 preferred) a host
/// name resolves to, with the name kept for known_hosts and messages.
fn resolve(address: &str, port: u16) -> Result<(IpAddr, Option<String>), String> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let fix = "give an IP address, or a name this machine resolves (DNS or /etc/hosts)";
    if address.is_empty() || address.contains(char::is_whitespace) {
        return Err(format!(
            "address {address:?} is neither an IP address nor a host name; {fix}"
        ));
    }
    let addrs: Vec<IpAddr> = (address, port)
        .to_socket_addrs()
        .map_err(|e| format!("address {address:?} does not resolve ({e}); {fix}"))?
        .map(|a| a.ip())
        .collect();
    let ip = addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("address {address:?} resolves to no address; {fix}"))?;
    Ok((ip, Some(address.to_string())))
}

/// Shell command that makes `dir` on `node` for the login user, with
/// `marker` in it, and prints `top=<dir>`: the topmost directory it had to
/// create (empty when `dir` existed). The marker records the same line
/// (unless it was there already), so whoever removes the directory later
/// knows which parents were made with it. A login user other than root
/// makes what it cannot make itself with `sudo -n` and is given the
/// directory (`chown`, recursively when it is already marked, e.g. left by
/// an earlier run as root).
pub fn make_dir_command(node: &Node, dir: &Path, marker: &str) -> String {
    let d = shell_quote(&dir.to_string_lossy());
    let m = shell_quote(marker);
    // umask 022: a hardened host's 077 would make the new parents
    // (`/var/lib/splitbrain`) unreadable to the login user and the servers.
    let make = if node.is_root() {
        format!("(umask 022 && mkdir -p {d})")
    } else {
        let user = shell_quote(&node.user);
        let privileged = node.sudo(&format!(
            "umask 022 && mkdir -p {d} && if [ -f {d}/{m} ]; then chown -R {user}: {d}; else chown {user}: {d}; fi"
        ));
        format!("if [ -d {d} ] && [ -w {d} ]; then :; else {privileged}; fi")
    };
    format!(
        "p={d}; top=; while [ ! -e \"$p\" ]; do top=$p; p=$(dirname \"$p\"); done; \
         {make} && {{ [ -f {d}/{m} ] || echo \"top=$top\" > {d}/{m}; }} && echo \"top=$top\""
    )
}

/// The `top=` line of [`make_dir_command`]'s output: the topmost directory
/// it created, if any.
pub fn made_top(stdout: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("top="))
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
}

/// Shell command that removes `dir` if it carries `marker`, then the
/// parents the marker's `top=` line says were created with it, each only
/// while empty (`rmdir`): never a directory splitbrain did not make, nor
/// one something else has since put files in.
pub fn remove_dir_command(dir: &Path, marker: &str) -> String {
    let d = shell_quote(&dir.to_string_lossy());
    let m = shell_quote(marker);
    format!(
        "d={d}; if [ -f \"$d\"/{m} ]; then top=$(sed -n 's/^top=//p' \"$d\"/{m} | head -n 1); rm -rf \"$d\"; \
         if [ -n \"$top\" ]; then case \"$d\" in \"$top\"/*) p=$(dirname \"$d\"); \
         while rmdir \"$p\" 2>/dev/null; do [ \"$p\" = \"$top\" ] && break; p=$(dirname \"$p\"); done;; esac; fi; fi"
    )
}

/// Runs `cmd` (already wrapped with [`Node::sudo`] where it needs root) on
/// the node behind `session`; a sudo that wants a password, or no sudo at
/// all, becomes an error saying how to fix the host. `what` says what
/// needed root.
pub fn exec_privileged(
    session: &mut Session,
    cmd: &str,
    what: &str,
    timeout: Duration,
) -> Result<Output, EnvError> {
    let node = session.node().clone();
    match session.exec_ok(cmd, timeout) {
        Ok(out) => Ok(out),
        Err(e) => Err(match &e {
            ControlError::Failed { stderr, .. } => {
                sudo_problem(&node, what, stderr).unwrap_or(EnvError::Control(e))
            }
            _ => EnvError::Control(e),
        }),
    }
}

/// The error for a node whose `sudo -n` refused (`text` is what the
/// command printed), if that is what happened.
pub fn sudo_problem(node: &Node, what: &str, text: &str) -> Option<EnvError> {
    if node.is_root() {
        return None;
    }
    if text.contains(SUDO_NEEDS_PASSWORD) {
        return Some(EnvError::SudoNeedsPassword {
            node: node.name.clone(),
            user: node.user.clone(),
            what: what.to_string(),
        });
    }
    let no_sudo = text
        .lines()
        .any(|l| l.contains("sudo: not found") || l.contains("sudo: command not found"));
    no_sudo.then(|| EnvError::NoSudo {
        node: node.name.clone(),
        user: node.user.clone(),
        what: what.to_string(),
    })
}

/// Records environment `name` from `hosts_file` after checking that every
/// host answers over SSH (host key verified, key login), and creates each
/// node's directory with splitbrain's marker.
pub fn up(name: &str, hosts_file: &Path, timeout: Duration) -> Result<EnvState, EnvError> {
    crate::nodes::state::validate_name(name)?;
    if EnvState::path_of(name).exists() {
        return Err(EnvError::Exists {
            name: name.into(),
            detail: format!("{} exists", EnvState::path_of(name).display()),
        });
    }
    let text = std::fs::read_to_string(hosts_file)
        .map_err(|e| EnvError::io(format!("read hosts file {}", hosts_file.display()), e))?;
    let nodes = parse_hosts(&text, hosts_file)?;
    let control = Control::connect(&nodes, timeout)?;
    let made = control.on_all(move |node, s| {
        let dir = shell_quote(&node.dir.join("run").to_string_lossy());
        let cmd = format!(
            "{} && mkdir -p {dir}",
            make_dir_command(node, &node.dir, MARKER)
        );
        Ok(exec_privileged(
            s,
            &cmd,
            "making the node directory",
            Duration::from_secs(30),
        ))
    });
    let mut first_error = None;
    let mut made_on = Vec::new();
    for (node, result) in made {
        match result.map_err(EnvError::from).and_then(|r| r) {
            Ok(_) => made_on.push(node),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        // Nothing is recorded: take back what the other hosts got, so the
        // failed `up` leaves them as it found them.
        let names: Vec<&str> = made_on.iter().map(String::as_str).collect();
        for (node, result) in control.on_nodes(&names, |node, s| {
            s.exec(
                &node.sudo(&remove_dir_command(&node.dir, MARKER)),
                Duration::from_secs(30),
            )
        }) {
            if let Err(undo) = result {
                tracing::warn!(node = %node, "removing the node directory after a failed up: {undo}");
            }
        }
        return Err(e);
    }
    let hosts_file = hosts_file
        .canonicalize()
        .unwrap_or_else(|_| hosts_file.to_path_buf());
    let state = EnvState {
        name: name.to_string(),
        kind: EnvKind::Ssh,
        ready: true,
        nodes,
        shared: None,
        netns: None,
        ssh: Some(SshDetails {
            hosts_file,
            kept_dirs: Vec::new(),
        }),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        owner: Some(crate::nodes::Owner::this_process()),
    };
    state.save()?;
    Ok(state)
}

/// The shell command run on each node by [`down`]: stop processes recorded
/// in `<node dir>/run/*.pid` (TERM, then KILL after 5 s), remove
/// splitbrain's iptables chain, delete the node directory if it has the
/// marker and the parents `up` created for it ([`remove_dir_command`]), and
/// the same for each of `purge` (kept directories being purged). Run as
/// root: through `sudo -n` for any other login user ([`Node::sudo`]).
pub fn cleanup_command(node: &Node, purge: &[KeptDir]) -> String {
    let dir = shell_quote(&node.dir.to_string_lossy());
    let mut cmd = format!(
        "for f in {dir}/run/*.pid; do [ -f \"$f\" ] || continue; p=$(cat \"$f\"); \
         kill -TERM \"$p\" 2>/dev/null; for i in $(seq 50); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.1; done; \
         kill -KILL \"$p\" 2>/dev/null; done; \
         {fw}; \
         {rm}",
        fw = firewall::remove_command(),
        rm = remove_dir_command(&node.dir, MARKER),
    );
    for kept in purge {
        cmd.push_str("; ");
        cmd.push_str(&remove_dir_command(&kept.dir, &kept.marker));
    }
    node.sudo(&cmd)
}

/// Removes what splitbrain put on the hosts of ssh environment `name` (see
/// [`cleanup_command`]), except the directories it keeps on purpose (the
/// jar store), and then its state. Hosts that cannot be reached are
/// reported and the state is kept, so `down` can be re-run.
pub fn down(name: &str, timeout: Duration) -> Result<(), EnvError> {
    down_purging(name, timeout, false).map(|_| ())
}

/// [`down`], and with `purge` also the kept directories
/// ([`SshDetails::kept_dirs`]: the uploaded jars). Returns the kept
/// directories: purged ones when `purge`, else the ones left in place.
pub fn down_purging(name: &str, timeout: Duration, purge: bool) -> Result<Vec<PathBuf>, EnvError> {
    let state = EnvState::load(name)?;
    let kept: Vec<KeptDir> = state
        .ssh
        .as_ref()
        .map(|s| s.kept_dirs.clone())
        .unwrap_or_default();
    let purged: Vec<KeptDir> = if purge { kept.clone() } else { Vec::new() };
    let mut problems = Vec::new();
    let handles: Vec<_> = state
        .nodes
        .iter()
        .cloned()
        .map(|node| {
            let purged = purged.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut s = Session::connect(&node, timeout).map_err(|e| e.to_string())?;
                exec_privileged(
                    &mut s,
                    &cleanup_command(&node, &purged),
                    "removing splitbrain's processes, firewall rules and directories",
                    Duration::from_secs(60),
                )
                .map_err(|e| e.to_string())?;
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(e),
            Err(_) => problems.push("cleanup thread panicked".into()),
        }
    }
    if !problems.is_empty() {
        return Err(EnvError::Incomplete {
            name: name.into(),
            problems,
        });
    }
    let dir = state.dir();
    std::fs::remove_dir_all(&dir)
        .map_err(|e| EnvError::io(format!("remove {}", dir.display()), e))?;
    Ok(kept.into_iter().map(|k| k.dir).collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn parses_hosts_with_defaults() {
        let text = r#"
            [[nodes]]
            name = "n1"
            address = "10.88.3.2"
            key_path = "/k"
            known_hosts = "/kh"

            [[nodes]]
            name = "db-2"
            address = "10.88.3.3"
            port = 2222
            user = "admin"
            key_path = "/k"
            known_hosts = "/kh"
            dir = "/srv/sb"
        "#;
        let nodes = parse_hosts(text, Path::new("hosts.toml")).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!((nodes[0].port, nodes[0].user.as_str()), (22, "root"));
        assert_eq!(nodes[0].dir, PathBuf::from(DEFAULT_NODE_DIR));
        assert_eq!((nodes[1].port, nodes[1].user.as_str()), (2222, "admin"));
        assert_eq!(nodes[1].dir, PathBuf::from("/srv/sb"));
    }

    #[test]
    fn rejects_bad_hosts_files() {
        let entry = |name: &str, extra: &str| {
            format!(
                "[[nodes]]\nname = \"{name}\"\naddress = \"10.88.3.2\"\nkey_path = \"/k\"\nknown_hosts = \"/kh\"\n{extra}\n"
            )
        };
        let cases = [
            ("nodes = []".to_string(), "no [[nodes]]"),
            (entry("n1", "") + &entry("n1", ""), "twice"),
            (entry("n 1", ""), "node name"),
            (entry("n1", "dir = \"relative\""), "absolute"),
            (entry("n1", "dir = \"/\""), "must not be /"),
            (entry("n1", "password = \"x\""), "unknown field"),
            (
                "[[nodes]]\nname = \"n1\"\naddress = \"nope\"".to_string(),
                "hosts file",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_hosts(&text, Path::new("h.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    fn node(user: &str) -> Node {
        Node {
            name: "n1".into(),
            address: "10.88.3.2".parse().unwrap(),
            host: None,
            port: 22,
            user: user.into(),
            key_path: "/k".into(),
            known_hosts: "/kh".into(),
            dir: "/srv/my node".into(),
        }
    }

    /// Runs `cmd` in a local `sh` (exit status, stdout, stderr); with
    /// `bin` first on PATH when given (stand-in commands).
    pub(crate) fn sh_in(bin: Option<&Path>, cmd: &str) -> (i32, String, String) {
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg(cmd);
        if let Some(bin) = bin {
            let path = format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            command.env("PATH", path);
        }
        let out = command.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub(crate) fn sh(cmd: &str) -> (i32, String, String) {
        sh_in(None, cmd)
    }

    #[test]
    fn cleanup_only_deletes_marked_directories() {
        let cmd = cleanup_command(&node("root"), &[]);
        assert!(
            cmd.contains("d='/srv/my node'; if [ -f \"$d\"/.splitbrain-node ]; then"),
            "{cmd}"
        );
        assert!(cmd.contains("rm -rf \"$d\""), "{cmd}");
        assert!(cmd.contains("-X SPLITBRAIN"));
        assert!(!cmd.contains("sudo"), "root needs no sudo: {cmd}");
        assert!(!cmd.contains("/opt/jars"), "{cmd}");
        let kept = KeptDir {
            dir: "/opt/jars".into(),
            marker: ".splitbrain-artifacts".into(),
        };
        let cmd = cleanup_command(&node("root"), std::slice::from_ref(&kept));
        assert!(
            cmd.contains("d=/opt/jars; if [ -f \"$d\"/.splitbrain-artifacts ]"),
            "{cmd}"
        );
    }

    #[test]
    fn a_non_root_login_cleans_up_and_makes_directories_through_sudo() {
        let bob = node("bob");
        let cmd = cleanup_command(&bob, &[]);
        assert!(cmd.starts_with("sudo -n -- sh -c '"), "{cmd}");
        assert!(
            cmd.contains("for t in iptables ip6tables") && cmd.contains("-w -X SPLITBRAIN"),
            "{cmd}"
        );
        let cmd = make_dir_command(&bob, Path::new("/var/lib/splitbrain/node"), MARKER);
        assert!(
            cmd.contains("if [ -d /var/lib/splitbrain/node ] && [ -w /var/lib/splitbrain/node ]; then :; else sudo -n -- sh -c "),
            "{cmd}"
        );
        assert!(cmd.contains("umask 022 && mkdir -p /var/lib/splitbrain/node && if [ -f /var/lib/splitbrain/node/.splitbrain-node ]; then chown -R bob: /var/lib/splitbrain/node; else chown bob: /var/lib/splitbrain/node; fi"), "{cmd}");
        let cmd = make_dir_command(&node("root"), Path::new("/x"), MARKER);
        assert!(!cmd.contains("sudo") && !cmd.contains("chown"), "{cmd}");
    }

    #[test]
    fn sudo_refusals_become_errors_that_say_how_to_fix_sudoers() {
        let bob = node("bob");
        let err = sudo_problem(
            &bob,
            "making the node directory",
            "sudo: a password is required\n",
        )
        .unwrap()
        .to_string();
        assert!(
            err.contains("n1") && err.contains("making the node directory"),
            "{err}"
        );
        assert!(err.contains("bob ALL=(ALL) NOPASSWD: ALL"), "{err}");
        let err = sudo_problem(&bob, "x", "sh: 1: sudo: not found")
            .unwrap()
            .to_string();
        assert!(err.contains("no sudo"), "{err}");
        assert!(sudo_problem(&bob, "x", "mkdir: No space left on device").is_none());
        assert!(sudo_problem(&node("root"), "x", "a password is required").is_none());
    }

    /// Runs the commands for real (as the root login they are written for)
    /// in a temporary directory: `up` records which parents it made, and
    /// removing takes exactly those, never a pre-existing directory nor one
    /// that has since got other files.
    #[test]
    fn made_directories_and_their_new_parents_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let root = node("root");
        let dir = tmp.path().join("a/b/node");
        let (status, out, err) = sh(&make_dir_command(&root, &dir, MARKER));
        assert_eq!(status, 0, "{err}");
        assert_eq!(made_top(&out), Some(tmp.path().join("a")));
        let marker = std::fs::read_to_string(dir.join(MARKER)).unwrap();
        assert_eq!(
            marker.trim(),
            format!("top={}", tmp.path().join("a").display())
        );
        // Made again (a second `up` on the same dir): nothing new, the
        // marker keeps the first record.
        let (_, out, _) = sh(&make_dir_command(&root, &dir, MARKER));
        assert_eq!(made_top(&out), None);
        assert_eq!(std::fs::read_to_string(dir.join(MARKER)).unwrap(), marker);

        std::fs::write(dir.join("data"), b"x").unwrap();
        let (status, _, err) = sh(&remove_dir_command(&dir, MARKER));
        assert_eq!(status, 0, "{err}");
        assert!(!tmp.path().join("a").exists(), "created parents left");
        assert!(tmp.path().exists(), "a pre-existing directory was removed");

        // A parent that got someone else's file stays, with that file.
        sh(&make_dir_command(&root, &dir, MARKER));
        std::fs::write(tmp.path().join("a/theirs"), b"x").unwrap();
        sh(&remove_dir_command(&dir, MARKER));
        assert!(!tmp.path().join("a/b").exists());
        assert!(tmp.path().join("a/theirs").exists());

        // Without the marker nothing is removed.
        let other = tmp.path().join("unmarked");
        std::fs::create_dir_all(&other).unwrap();
        sh(&remove_dir_command(&other, MARKER));
        assert!(other.exists());
    }

    /// A `sudo` on PATH that runs `sudo -n -- sh -c CMD` as this (root)
    /// process, or one that refuses as sudo does without NOPASSWD.
    fn fake_sudo(bin: &Path, allows: bool) {
        std::fs::create_dir_all(bin).unwrap();
        let script = if allows {
            "#!/bin/sh\n[ \"$1\" = -n ] && [ \"$2\" = -- ] || exit 99\nshift 2\nexec \"$@\"\n"
        } else {
            "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"
        };
        let path = bin.join("sudo");
        std::fs::write(&path, script).unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&path)
            .status()
            .unwrap();
    }

    fn sh_with_path(bin: &Path, cmd: &str) -> (i32, String, String) {
        sh_in(Some(bin), cmd)
    }

    /// The non-root commands run for real, with a stand-in `sudo` (this
    /// test runs as root): the directory is made through sudo and handed to
    /// the login user (`nobody` here), and a sudo that wants a password
    /// fails with the message [`sudo_problem`] turns into the fix.
    #[test]
    fn a_non_root_login_gets_its_directory_through_sudo_or_a_clear_error() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let nobody = node("nobody");
        let dir = tmp.path().join("var/lib/sb/node");
        let allows = tmp.path().join("allows");
        fake_sudo(&allows, true);
        // As on a hardened host (umask 077): the new parents must still be
        // readable by the login user.
        let (status, out, err) = sh_with_path(
            &allows,
            &format!("umask 077; {}", make_dir_command(&nobody, &dir, MARKER)),
        );
        assert_eq!(status, 0, "{err}");
        assert_eq!(made_top(&out), Some(tmp.path().join("var")));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("var")), 0o755);
        assert_eq!(mode(&tmp.path().join("var/lib/sb")), 0o755);
        let uid = |p: &Path| std::fs::metadata(p).unwrap().uid();
        assert_eq!(uid(&dir), 65534, "not handed to the login user");
        assert_eq!(
            uid(&tmp.path().join("var")),
            0,
            "only the directory itself is given away"
        );
        assert!(dir.join(MARKER).exists());
        // Cleanup as that user goes through sudo as well.
        let (status, _, err) = sh_with_path(&allows, &node_cleanup_for(&nobody, &dir));
        assert_eq!(status, 0, "{err}");
        assert!(!tmp.path().join("var").exists());

        let refuses = tmp.path().join("refuses");
        fake_sudo(&refuses, false);
        let (status, _, err) = sh_with_path(&refuses, &make_dir_command(&nobody, &dir, MARKER));
        assert_ne!(status, 0);
        let e = sudo_problem(&nobody, "making the node directory", &err).unwrap();
        assert!(matches!(e, EnvError::SudoNeedsPassword { .. }), "{e}");
        assert!(
            e.to_string().contains("nobody ALL=(ALL) NOPASSWD: ALL"),
            "{e}"
        );
    }

    /// [`cleanup_command`] of `node` with its directory at `dir`.
    fn node_cleanup_for(node: &Node, dir: &Path) -> String {
        let node = Node {
            dir: dir.to_path_buf(),
            ..node.clone()
        };
        // Only the directory part: the firewall part needs iptables.
        node.sudo(&remove_dir_command(&node.dir, MARKER))
    }

    #[test]
    fn host_names_resolve_and_unknown_names_are_clear_errors() {
        let text = |address: &str| {
            format!("[[nodes]]\nname = \"n1\"\naddress = \"{address}\"\nkey_path = \"/k\"\nknown_hosts = \"/kh\"\n")
        };
        let nodes = parse_hosts(&text("localhost"), Path::new("h.toml")).unwrap();
        assert!(nodes[0].address.is_loopback(), "{:?}", nodes[0].address);
        assert_eq!(nodes[0].host.as_deref(), Some("localhost"));
        let nodes = parse_hosts(&text("10.1.2.3"), Path::new("h.toml")).unwrap();
        assert_eq!(nodes[0].host, None);
        let err = parse_hosts(&text("no-such-host.invalid"), Path::new("h.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("n1") && err.contains("does not resolve"),
            "{err}"
        );
        assert!(err.contains("/etc/hosts"), "{err}");
    }
}
