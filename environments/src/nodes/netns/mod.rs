//! The `netns` environment (the default): nodes are Linux network namespaces
//! on this machine, joined by one bridge, each with its own address, hostname
//! and sshd.
//!
//! For environment `E` with a /24 `10.88.X.0/24` inside `10.88.0.0/16`:
//! - bridge `sb<tag>` on the host with `10.88.X.1/24` (`tag` = 8 hex digits of
//!   a hash of `E`, since interface names are limited to 15 bytes);
//! - per node `nK`: namespace `E-nK`, veth `sv<tag>n<K>` (host side, on the
//!   bridge) / `eth0` (inside) with `10.88.X.(K+1)/24`, `lo` up, and sshd
//!   started under `unshare --uts` with hostname `nK`, listening only on its
//!   address, with its own ed25519 host key, root login by key only;
//! - one host iptables rule `FORWARD -i <bridge> -o <bridge> -j ACCEPT`
//!   tagged `splitbrain:E`, so traffic between nodes survives a host whose
//!   FORWARD policy is DROP with `br_netfilter` loaded (as Docker leaves it);
//! - files under `<state root>/E/`: `state.json`, `ssh/` (client key,
//!   `known_hosts`), `sshd/nK/` (sshd config, host key, pid, log),
//!   `nodes/nK/` (the node's own directory), `shared/` (readable by all).
//!
//! No default route, NAT or `ip_forward` change: traffic flows only between
//! the host and the namespaces. [`down`] finds everything from the state file
//! *and* from the system (names derived from `E`), so it works after a crash
//! and is idempotent.

use crate::nodes::state::{EnvKind, EnvState, NetnsDetails};
use crate::nodes::sys;
use crate::nodes::EnvError;

use splitbrain_core::control::{Control, Node};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(feature = "test-support")]
mod test_env;
#[cfg(feature = "test-support")]
pub use test_env::{reap_orphaned_test_envs, TestEnv};

/// Most nodes one environment may have (addresses `.2` to `.251`).
pub const MAX_NODES: usize = 250;
/// sshd binary started in each namespace (Debian's openssh-server).
pub const SSHD: &str = "/usr/sbin/sshd";
/// Directory holding the per-subnet lock files.
pub const LOCK_DIR: &str = "/run/splitbrain/subnets";
/// How long `up` waits for every node's sshd to answer.
const SSHD_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A /24 inside `10.88.0.0/16`, named by its third octet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet(pub u8);

impl Subnet {
    /// Parses `10.88.X.0/24`.
    pub fn parse(cidr: &str) -> Result<Subnet, EnvError> {
        let bad = || {
            EnvError::BadInput(format!(
                "--subnet {cidr:?}: expected a /24 inside 10.88.0.0/16, e.g. 10.88.7.0/24"
            ))
        };
        let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let [a, b, c, d] = addr.octets();
        if len != "24" || a != 10 || b != 88 || d != 0 || c == 0 || c == 255 {
            return Err(bad());
        }
        Ok(Subnet(c))
    }

    /// The host's (bridge's) address, `.1`.
    pub fn host(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.0, 1)
    }

    /// Address of node number `k` (1-based): `.k+1`.
    pub fn node(self, k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, self.0, (k + 1) as u8)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "10.88.{}.0/24", self.0)
    }
}

/// Exclusive claim on a /24: an flock on `/run/splitbrain/subnets/10.88.X.lock`
/// held while this value lives. `up` holds it until the bridge carries the
/// address (from then on the address itself marks the subnet as used), so
/// parallel tests and processes never pick the same subnet.
#[derive(Debug)]
pub struct SubnetLease {
    subnet: Subnet,
    _lock: File,
}

impl SubnetLease {
    /// The leased subnet.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }
}

/// Opens (creating `dir` and the file if need be) and locks `dir/file`
/// exclusively without waiting: `None` if another holder has it.
fn try_lock_file(dir: &str, file: &str) -> Result<Option<File>, EnvError> {
    std::fs::create_dir_all(dir).map_err(|e| EnvError::io(format!("create {dir}"), e))?;
    let path = format!("{dir}/{file}");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| EnvError::io(format!("open {path}"), e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(EnvError::io(format!("lock {path}"), e)),
    }
}

fn try_lease(subnet: Subnet) -> Result<Option<SubnetLease>, EnvError> {
    let lock = try_lock_file(LOCK_DIR, &format!("10.88.{}.lock", subnet.0))?;
    Ok(lock.map(|file| SubnetLease {
        subnet,
        _lock: file,
    }))
}

/// Subnets used on this machine: addresses on host interfaces and subnets
/// recorded by existing netns environments.
fn used_subnets() -> Result<Vec<u8>, EnvError> {
    let mut used = Vec::new();
    let addrs = sys::run("ip", &["-4", "-o", "addr", "show"])?;
    for word in addrs.split_whitespace() {
        if let Some(rest) = word.strip_prefix("10.88.") {
            if let Some(third) = rest.split('.').next().and_then(|t| t.parse().ok()) {
                used.push(third);
            }
        }
    }
    for name in EnvState::list()? {
        if let Ok(state) = EnvState::load(&name) {
            if let Some(net) = state.netns {
                if let Ok(s) = Subnet::parse(&net.subnet) {
                    used.push(s.0);
                }
            }
        }
    }
    Ok(used)
}

/// Claims `requested` (which must be free), or the first free /24 in
/// `10.88.0.0/16` starting from a per-process offset.
pub fn lease_subnet(requested: Option<Subnet>) -> Result<SubnetLease, EnvError> {
    sys::require_root("claiming a subnet")?;
    if let Some(subnet) = requested {
        let lease = try_lease(subnet)?.ok_or_else(|| {
            EnvError::BadInput(format!(
                "subnet {subnet} is being set up by another process; pick another --subnet"
            ))
        })?;
        if used_subnets()?.contains(&subnet.0) {
            return Err(EnvError::BadInput(format!(
                "subnet {subnet} is already in use on this machine; pick another --subnet or omit it"
            )));
        }
        return Ok(lease);
    }
    let used = used_subnets()?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let start = (std::process::id().wrapping_mul(31).wrapping_add(nanos)) as usize % 254;
    for i in 0..254 {
        let third = ((start + i) % 254 + 1) as u8;
        if used.contains(&third) {
            continue;
        }
        if let Some(lease) = try_lease(Subnet(third))? {
            // Re-check now that we hold the lock: another process may have
            // finished an `up` on it since we listed.
            if !used_subnets()?.contains(&third) {
                return Ok(lease);
            }
        }
    }
    Err(EnvError::NoFreeSubnet)
}

/// 8 hex digits identifying environment `name` in interface names (FNV-1a).
pub fn tag(name: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", (hash >> 32) as u32 ^ hash as u32)
}

/// Bridge of environment `name`.
pub fn bridge_name(name: &str) -> String {
    format!("sb{}", tag(name))
}

/// Host-side veth of node `k` (1-based) of environment `name`.
pub fn veth_name(name: &str, k: usize) -> String {
    format!("sv{}n{k}", tag(name))
}

/// Namespace of node `k` (1-based) of environment `name`.
pub fn namespace_name(name: &str, k: usize) -> String {
    format!("{name}-n{k}")
}

/// Comment tagging host iptables rules of environment `name`.
pub fn iptables_comment(name: &str) -> String {
    format!("splitbrain:{name}")
}

/// True when `ns` is a namespace of environment `name` (`<name>-n<digits>`).
fn is_env_namespace(name: &str, ns: &str) -> bool {
    ns.strip_prefix(name)
        .and_then(|r| r.strip_prefix("-n"))
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

fn system_namespaces() -> Result<Vec<String>, EnvError> {
    let out = sys::run("ip", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

fn system_links() -> Result<Vec<String>, EnvError> {
    let out = sys::run("ip", &["-o", "link", "show"])?;
    // "7: sb1234abcd: <...>" or "8: sv1234abcdn1@if2: <...>"
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}

/// Host iptables rules (as `-A CHAIN ...` lines) tagged for `name`.
fn tagged_rules(name: &str) -> Result<Vec<String>, EnvError> {
    let out = sys::run("iptables", &["-w", "-S"])?;
    let tag = iptables_comment(name);
    Ok(out
        .lines()
        .filter(|l| l.starts_with("-A "))
        .filter(|l| l.split_whitespace().any(|w| w.trim_matches('"') == tag))
        .map(str::to_string)
        .collect())
}

/// Options for [`up`].
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Environment name.
    pub name: String,
    /// Number of nodes (1 to [`MAX_NODES`]).
    pub nodes: usize,
    /// A specific /24, or `None` to pick a free one.
    pub subnet: Option<Subnet>,
}

/// Creates a netns environment and returns its state once every node's sshd
/// answers over SSH with its own hostname. On failure, or when `cancel` is
/// set (e.g. by a Ctrl-C handler), removes everything it created before
/// returning the error ([`EnvError::Cancelled`] for a cancel).
pub fn up(opts: &UpOptions, cancel: Option<&AtomicBool>) -> Result<EnvState, EnvError> {
    preflight(&opts.name, opts.nodes)?;
    let lease = lease_subnet(opts.subnet)?;
    up_with_lease(&opts.name, opts.nodes, &lease, cancel)
}

fn preflight(name: &str, nodes: usize) -> Result<(), EnvError> {
    crate::nodes::state::validate_name(name)?;
    sys::require_root("creating a netns environment")?;
    if nodes == 0 || nodes > MAX_NODES {
        return Err(EnvError::BadInput(format!(
            "--nodes {nodes}: a netns environment has 1 to {MAX_NODES} nodes"
        )));
    }
    sys::require_tool(SSHD, "the sshd run in each node")?;
    sys::require_tool("ip", "creating namespaces, veths and the bridge (iproute2)")?;
    sys::require_tool("iptables", "the bridge FORWARD rule and partitions")?;
    sys::require_tool("ssh-keygen", "generating the environment's keys")?;
    sys::require_tool("unshare", "giving each node its own hostname (util-linux)")?;
    if EnvState::path_of(name).exists() {
        return Err(EnvError::Exists {
            name: name.into(),
            detail: format!("{} exists", EnvState::path_of(name).display()),
        });
    }
    if let Some(ns) = system_namespaces()?
        .into_iter()
        .find(|ns| is_env_namespace(name, ns))
    {
        return Err(EnvError::Exists {
            name: name.into(),
            detail: format!("namespace {ns} exists"),
        });
    }
    if system_links()?.contains(&bridge_name(name)) {
        return Err(EnvError::Exists {
            name: name.into(),
            detail: format!("bridge {} exists", bridge_name(name)),
        });
    }
    Ok(())
}

/// The state `up` will create, written before anything else.
fn plan(name: &str, n: usize, subnet: Subnet) -> EnvState {
    let addresses = (1..=n).map(|k| (k, IpAddr::V4(subnet.node(k))));
    EnvState {
        netns: Some(NetnsDetails {
            subnet: subnet.to_string(),
            host_address: subnet.host(),
            bridge: bridge_name(name),
            namespaces: (1..=n).map(|k| namespace_name(name, k)).collect(),
            veths: (1..=n).map(|k| veth_name(name, k)).collect(),
            iptables_comment: iptables_comment(name),
        }),
        ..EnvState::planned(name, EnvKind::Netns, addresses)
    }
}

/// Like [`up`] but on an already leased subnet (the lease must outlive the
/// call; `TestEnv` keeps it for the environment's lifetime).
pub fn up_with_lease(
    name: &str,
    nodes: usize,
    lease: &SubnetLease,
    cancel: Option<&AtomicBool>,
) -> Result<EnvState, EnvError> {
    // Two concurrent `up`s of one name would tear down each other's work.
    let _name_lock = lock_name(name)?;
    preflight(name, nodes)?;
    let mut state = plan(name, nodes, lease.subnet());
    // Intent first: from here on `down` can find everything.
    state.save()?;
    match create(&mut state, cancel) {
        Ok(()) => Ok(state),
        Err(e) => {
            if let Err(cleanup) = down(name) {
                tracing::error!("cleanup after failed `env up {name}` incomplete: {cleanup}");
            }
            // Checked after the cleanup: the signal handler may set the flag
            // only after a child killed by the same Ctrl-C made a step fail.
            let cancelled = cancel.is_some_and(|c| c.load(Ordering::SeqCst));
            Err(if cancelled { EnvError::Cancelled } else { e })
        }
    }
}

/// Directory holding the per-name lock files of `up`.
const NAME_LOCK_DIR: &str = "/run/splitbrain/names";

/// Takes the exclusive lock of environment `name` for the duration of `up`.
fn lock_name(name: &str) -> Result<File, EnvError> {
    try_lock_file(NAME_LOCK_DIR, &format!("{name}.lock"))?.ok_or_else(|| EnvError::Exists {
        name: name.to_string(),
        detail: "another `env up` of this name is running".into(),
    })
}

fn check_cancel(cancel: Option<&AtomicBool>) -> Result<(), EnvError> {
    if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
        Err(EnvError::Cancelled)
    } else {
        Ok(())
    }
}

fn mkdir(path: &Path) -> Result<(), EnvError> {
    std::fs::create_dir_all(path).map_err(|e| EnvError::io(format!("create {}", path.display()), e))
}

fn write(path: &Path, contents: &str) -> Result<(), EnvError> {
    std::fs::write(path, contents).map_err(|e| EnvError::io(format!("write {}", path.display()), e))
}

/// Runs several `ssh-keygen` at once (each key takes a few ms; together the
/// process start-up dominates).
fn generate_keys(paths: &[PathBuf], comment: &str) -> Result<(), EnvError> {
    let mut children = Vec::new();
    for path in paths {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path.with_extension("pub"));
        let child = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| EnvError::io("run ssh-keygen", e))?;
        children.push((path, child));
    }
    let mut first_error = None;
    for (path, child) in children {
        let out = child
            .wait_with_output()
            .map_err(|e| EnvError::io("wait for ssh-keygen", e))?;
        if std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(libc::SIGINT) {
            first_error = Some(EnvError::Cancelled);
        } else if !out.status.success() && first_error.is_none() {
            first_error = Some(EnvError::Command {
                command: format!("ssh-keygen -t ed25519 -f {}", path.display()),
                status: out.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn public_key(path: &Path) -> Result<String, EnvError> {
    let pub_path = path.with_extension("pub");
    let text = std::fs::read_to_string(&pub_path)
        .map_err(|e| EnvError::io(format!("read {}", pub_path.display()), e))?;
    Ok(text.trim().to_string())
}

fn sshd_dir(state: &EnvState, node: &str) -> PathBuf {
    state.dir().join("sshd").join(node)
}

fn sshd_config(node: &Node, sshd_dir: &Path, authorized_keys: &Path) -> String {
    format!(
        "# sshd of splitbrain node {name}: only this node's address, key login only.\n\
         ListenAddress {addr}:{port}\n\
         HostKey {dir}/ssh_host_ed25519_key\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {keys}\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         # The key files live under the state root, which may be anywhere.\n\
         StrictModes no\n\
         UseDNS no\n\
         PrintMotd no\n\
         # Debian's bash sources ~/.bashrc for commands run by sshd when it is a\n\
         # top-level shell. The nodes share the host's /root, whose interactive\n\
         # rc must not slow down or change every command: with SHLVL=1 inherited\n\
         # bash counts itself as nested and skips it.\n\
         SetEnv SHLVL=1\n\
         MaxSessions 64\n\
         MaxStartups 64:30:128\n\
         Subsystem sftp internal-sftp\n\
         LogLevel INFO\n",
        name = node.name,
        addr = node.address,
        port = node.port,
        dir = sshd_dir.display(),
        keys = authorized_keys.display(),
    )
}

fn create(state: &mut EnvState, cancel: Option<&AtomicBool>) -> Result<(), EnvError> {
    let started = Instant::now();
    let name = state.name.clone();
    let net = state.netns.clone().expect("planned netns state");
    let dir = state.dir();
    let ssh_dir = dir.join("ssh");
    mkdir(&ssh_dir)?;
    if let Some(shared) = &state.shared {
        mkdir(&shared.control_path)?;
    }
    for node in &state.nodes {
        mkdir(&node.dir)?;
        mkdir(&sshd_dir(state, &node.name))?;
    }
    // Privilege separation directory sshd insists on (normally made by systemd).
    mkdir(Path::new("/run/sshd"))?;

    let client_key = ssh_dir.join("id_ed25519");
    let mut keys = vec![client_key.clone()];
    keys.extend(
        state
            .nodes
            .iter()
            .map(|n| sshd_dir(state, &n.name).join("ssh_host_ed25519_key")),
    );
    generate_keys(&keys, &format!("splitbrain-{name}"))?;
    let authorized_keys = ssh_dir.join("authorized_keys");
    write(&authorized_keys, &(public_key(&client_key)? + "\n"))?;
    check_cancel(cancel)?;

    let bridge = &net.bridge;
    let host_cidr = format!("{}/24", net.host_address);
    sys::run("ip", &["link", "add", bridge, "type", "bridge"])?;
    sys::run("ip", &["addr", "add", &host_cidr, "dev", bridge])?;
    sys::run("ip", &["link", "set", bridge, "up"])?;
    // Let traffic between nodes through even if the host's FORWARD policy is
    // DROP and br_netfilter hands bridged packets to iptables (Docker).
    sys::run(
        "iptables",
        &[
            "-w",
            "-I",
            "FORWARD",
            "1",
            "-i",
            bridge,
            "-o",
            bridge,
            "-m",
            "comment",
            "--comment",
            &net.iptables_comment,
            "-j",
            "ACCEPT",
        ],
    )?;
    check_cancel(cancel)?;

    for (k, node) in state.nodes.iter().enumerate() {
        let ns = &net.namespaces[k];
        let veth = &net.veths[k];
        let cidr = format!("{}/24", node.address);
        sys::run("ip", &["netns", "add", ns])?;
        sys::run(
            "ip",
            &[
                "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        )?;
        sys::run("ip", &["link", "set", veth, "master", bridge, "up"])?;
        sys::run("ip", &["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
        sys::run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
        sys::run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        check_cancel(cancel)?;
    }

    let mut known_hosts = String::new();
    for node in &state.nodes {
        let host_key = sshd_dir(state, &node.name).join("ssh_host_ed25519_key");
        let public = public_key(&host_key)?;
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        known_hosts.push_str(&format!("{} {kind} {key}\n", node.address));
    }
    write(&state.nodes[0].known_hosts, &known_hosts)?;

    for (k, node) in state.nodes.iter().enumerate() {
        let sdir = sshd_dir(state, &node.name);
        let config = sdir.join("sshd_config");
        write(&config, &sshd_config(node, &sdir, &authorized_keys))?;
        let script = format!(
            "hostname {} && exec {SSHD} -f {} -E {}",
            node.name,
            config.display(),
            sdir.join("sshd.log").display()
        );
        // sshd daemonizes: this returns once it has forked.
        sys::run(
            "ip",
            &[
                "netns",
                "exec",
                &net.namespaces[k],
                "unshare",
                "--uts",
                "sh",
                "-c",
                &script,
            ],
        )?;
    }
    check_cancel(cancel)?;

    let control = Control::connect(&state.nodes, SSHD_READY_TIMEOUT)?;
    for (node, result) in control.exec_all("hostname", Duration::from_secs(10)) {
        let out = result?;
        if out.stdout.trim() != node {
            return Err(EnvError::BadInput(format!(
                "node {node} answered with hostname {:?}; expected {node:?}",
                out.stdout.trim()
            )));
        }
    }
    drop(control);
    check_cancel(cancel)?;
    state.ready = true;
    state.save()?;
    tracing::info!(env = %name, nodes = state.nodes.len(), subnet = %net.subnet,
        "netns environment up in {:?}", started.elapsed());
    Ok(())
}

/// What [`down`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Processes killed (pids).
    pub processes: Vec<i32>,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Links (bridge, veths) deleted.
    pub links: Vec<String>,
    /// Host iptables rules deleted (as `-A ...` lines).
    pub iptables_rules: Vec<String>,
    /// Whether the state directory was removed.
    pub removed_state_dir: bool,
}

impl DownReport {
    /// True when nothing was found to remove.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.namespaces.is_empty()
            && self.links.is_empty()
            && self.iptables_rules.is_empty()
            && !self.removed_state_dir
    }
}

fn pids_in_namespace(ns: &str) -> Vec<i32> {
    sys::run("ip", &["netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes whose command line mentions `needle` (e.g. the environment's
/// directory): sshds and servers started with configs under it, even if they
/// escaped their namespace's listing.
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGTERM, up to 3 s grace, then SIGKILL; returns the pids signalled.
fn terminate(pids: &[i32]) -> Vec<i32> {
    let pids: Vec<i32> = pids.iter().copied().filter(|&p| sys::alive(p)).collect();
    for &pid in &pids {
        sys::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|&p| sys::alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in pids.iter().filter(|&&p| sys::alive(p)) {
        sys::kill(pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&p| sys::alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pids
}

/// Removes every namespace, link, host iptables rule, process and file of
/// netns environment `name`, found from its state file (if any) and from the
/// system. Idempotent: a second call finds nothing and succeeds. Errors with
/// [`EnvError::Incomplete`] if something is still there afterwards.
pub fn down(name: &str) -> Result<DownReport, EnvError> {
    crate::nodes::state::validate_name(name)?;
    sys::require_root("removing a netns environment")?;
    let mut report = DownReport::default();
    let state = EnvState::try_load(name).ok().flatten();
    let details = state.as_ref().and_then(|s| s.netns.clone());
    let env_dir = EnvState::dir_of(name);

    let mut namespaces: Vec<String> = details
        .as_ref()
        .map(|d| d.namespaces.clone())
        .unwrap_or_default();
    for ns in system_namespaces()? {
        if is_env_namespace(name, &ns) && !namespaces.contains(&ns) {
            namespaces.push(ns);
        }
    }
    let existing_ns = system_namespaces()?;
    namespaces.retain(|ns| existing_ns.contains(ns));

    // Processes first, so nothing holds a namespace alive.
    let mut pids: Vec<i32> = namespaces
        .iter()
        .flat_map(|ns| pids_in_namespace(ns))
        .collect();
    let needle = format!("{}/", env_dir.display());
    for pid in pids_mentioning(&needle) {
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    report.processes = terminate(&pids);

    for ns in &namespaces {
        if sys::run_quiet("ip", &["netns", "del", ns]) {
            report.namespaces.push(ns.clone());
        }
    }

    let mut links = vec![bridge_name(name)];
    if let Some(d) = &details {
        links.push(d.bridge.clone());
        links.extend(d.veths.iter().cloned());
    }
    let veth_prefix = format!("sv{}n", tag(name));
    let system = system_links()?;
    links.extend(
        system
            .iter()
            .filter(|l| l.starts_with(&veth_prefix))
            .cloned(),
    );
    links.sort();
    links.dedup();
    // veths first (deleting a veth end removes its peer), then the bridge.
    links.sort_by_key(|l| l.starts_with("sb"));
    for link in links.iter().filter(|l| system.contains(l)) {
        if sys::run_quiet("ip", &["link", "del", link]) {
            report.links.push(link.clone());
        }
    }

    for rule in tagged_rules(name)? {
        let mut args: Vec<String> = vec!["-w".into()];
        let mut words = shell_words(&rule);
        if words.first().map(String::as_str) == Some("-A") {
            words[0] = "-D".into();
        }
        args.extend(words);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if sys::run_quiet("iptables", &args) {
            report.iptables_rules.push(rule);
        }
    }

    if env_dir.exists() {
        std::fs::remove_dir_all(&env_dir)
            .map_err(|e| EnvError::io(format!("remove {}", env_dir.display()), e))?;
        report.removed_state_dir = true;
    }

    let problems = leftovers(name);
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(EnvError::Incomplete {
            name: name.to_string(),
            problems,
        })
    }
}

/// Names of netns environments visible on the system without a state file
/// (a namespace `<name>-n<k>` next to the bridge derived from `<name>`):
/// leftovers that `down` can remove.
pub fn orphans_on_system() -> Vec<String> {
    let Ok(namespaces) = system_namespaces() else {
        return Vec::new();
    };
    let links = system_links().unwrap_or_default();
    let mut names: Vec<String> = namespaces
        .iter()
        .filter_map(|ns| ns.rsplit_once("-n"))
        .filter(|(_, k)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        .map(|(env, _)| env.to_string())
        .filter(|env| crate::nodes::state::validate_name(env).is_ok())
        .filter(|env| links.contains(&bridge_name(env)))
        .filter(|env| !EnvState::path_of(env).exists())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Everything of environment `name` still present on the system, described;
/// empty when it is fully gone.
pub fn leftovers(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match system_namespaces() {
        Ok(list) => problems.extend(
            list.into_iter()
                .filter(|ns| is_env_namespace(name, ns))
                .map(|ns| format!("namespace {ns}")),
        ),
        Err(e) => problems.push(e.to_string()),
    }
    let veth_prefix = format!("sv{}n", tag(name));
    match system_links() {
        Ok(list) => problems.extend(
            list.into_iter()
                .filter(|l| *l == bridge_name(name) || l.starts_with(&veth_prefix))
                .map(|l| format!("link {l}")),
        ),
        Err(e) => problems.push(e.to_string()),
    }
    match tagged_rules(name) {
        Ok(rules) => problems.extend(rules.into_iter().map(|r| format!("iptables rule {r}"))),
        Err(e) => problems.push(e.to_string()),
    }
    let env_dir = EnvState::dir_of(name);
    problems.extend(
        pids_mentioning(&format!("{}/", env_dir.display()))
            .into_iter()
            .filter(|&p| sys::alive(p))
            .map(|p| format!("process {p}")),
    );
    if env_dir.exists() {
        problems.push(format!("directory {}", env_dir.display()));
    }
    problems
}

/// Splits an `iptables -S` line into words, honouring double quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_must_be_24s_inside_10_88() {
        assert_eq!(Subnet::parse("10.88.7.0/24").unwrap(), Subnet(7));
        for bad in [
            "10.89.7.0/24",
            "10.88.7.0/16",
            "10.88.7.1/24",
            "10.88.0.0/24",
            "x",
            "10.88.7.0",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(Subnet(7).host(), Ipv4Addr::new(10, 88, 7, 1));
        assert_eq!(Subnet(7).node(3), Ipv4Addr::new(10, 88, 7, 4));
    }

    #[test]
    fn interface_names_fit_in_15_bytes_and_differ_per_env() {
        let long = "x".repeat(40);
        assert!(bridge_name(&long).len() <= 15);
        assert!(veth_name(&long, MAX_NODES).len() <= 15);
        assert_ne!(bridge_name("a"), bridge_name("b"));
        assert_eq!(bridge_name("a"), bridge_name("a"));
    }

    #[test]
    fn namespace_matching_is_exact() {
        assert!(is_env_namespace("a", "a-n1"));
        assert!(is_env_namespace("a", "a-n12"));
        assert!(!is_env_namespace("a", "a-n"));
        assert!(!is_env_namespace("a", "a-b-n1"));
        assert!(!is_env_namespace("a", "a-n1x"));
        assert!(!is_env_namespace("a-n1", "a-n1"));
    }

    #[test]
    fn iptables_lines_split_with_quotes() {
        assert_eq!(
            shell_words(r#"-A FORWARD -i sb1 -m comment --comment "splitbrain:e x" -j ACCEPT"#),
            vec![
                "-A",
                "FORWARD",
                "-i",
                "sb1",
                "-m",
                "comment",
                "--comment",
                "splitbrain:e x",
                "-j",
                "ACCEPT"
            ]
        );
    }
}
