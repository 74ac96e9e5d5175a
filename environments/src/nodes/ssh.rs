//! The `ssh` environment: existing hosts (VMs, bare metal) listed in a TOML
//! file. `up` only checks that every host answers over SSH and marks the
//! node's directory as splitbrain's; `down` removes only what splitbrain put
//! there: processes recorded in `<dir>/run/*.pid`, the `SPLITBRAIN` iptables
//! chain, and the node directory (only if it carries splitbrain's marker).
//!
//! ```toml
//! [[nodes]]
//! name = "n1"
//! address = "192.0.2.10"
//! port = 22                                  # optional, default 22
//! user = "root"                              # optional, default root
//! key_path = "/home/me/.ssh/id_ed25519"
//! known_hosts = "/home/me/.ssh/known_hosts"
//! dir = "/var/lib/splitbrain/node"           # optional, default /var/lib/splitbrain/node
//! ```

use crate::nodes::state::{EnvKind, EnvState, SshDetails};
use crate::nodes::EnvError;
use serde::Deserialize;
use splitbrain_core::control::{shell_quote, Control, Node};
use splitbrain_core::firewall;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Marker file `up` creates in each node directory; `down` deletes a node
/// directory only if it is there.
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
    address: IpAddr,
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
        nodes.push(Node {
            name: entry.name,
            address: entry.address,
            host: None,
            port: entry.port,
            user: entry.user,
            key_path: entry.key_path,
            known_hosts: entry.known_hosts,
            dir,
        });
    }
    Ok(nodes)
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
    for (_node, result) in control.on_all(move |node, s| {
        let dir = shell_quote(&node.dir.to_string_lossy());
        s.exec_ok(
            &format!("mkdir -p {dir}/run && touch {dir}/{MARKER}"),
            Duration::from_secs(30),
        )
    }) {
        result?;
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
        ssh: Some(SshDetails { hosts_file }),
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
/// in `<dir>/run/*.pid` (TERM, then KILL after 5 s), remove splitbrain's
/// iptables chain, and delete the node directory if it has the marker.
pub fn cleanup_command(dir: &Path) -> String {
    let dir = shell_quote(&dir.to_string_lossy());
    format!(
        "for f in {dir}/run/*.pid; do [ -f \"$f\" ] || continue; p=$(cat \"$f\"); \
         kill -TERM \"$p\" 2>/dev/null; for i in $(seq 50); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.1; done; \
         kill -KILL \"$p\" 2>/dev/null; done; \
         {fw}; \
         if [ -f {dir}/{MARKER} ]; then rm -rf {dir}; fi",
        fw = firewall::remove_command(),
    )
}

/// Removes what splitbrain put on the hosts of ssh environment `name` (see
/// [`cleanup_command`]) and then its state. Hosts that cannot be reached are
/// reported and the state is kept, so `down` can be re-run.
pub fn down(name: &str, timeout: Duration) -> Result<(), EnvError> {
    let state = EnvState::load(name)?;
    let mut problems = Vec::new();
    let handles: Vec<_> = state
        .nodes
        .iter()
        .cloned()
        .map(|node| {
            std::thread::spawn(move || -> Result<(), String> {
                let mut s = splitbrain_core::control::Session::connect(&node, timeout)
                    .map_err(|e| e.to_string())?;
                s.exec_ok(&cleanup_command(&node.dir), Duration::from_secs(60))
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
    std::fs::remove_dir_all(&dir).map_err(|e| EnvError::io(format!("remove {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn cleanup_only_deletes_marked_directories() {
        let cmd = cleanup_command(Path::new("/srv/my node"));
        assert!(
            cmd.contains(
                "if [ -f '/srv/my node'/.splitbrain-node ]; then rm -rf '/srv/my node'; fi"
            ),
            "{cmd}"
        );
        assert!(cmd.contains("-X SPLITBRAIN"));
    }
}
