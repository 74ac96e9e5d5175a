//! The Docker environment: nodes are containers of splitbrain's node image on
//! a user-defined bridge network with a fixed /24 inside 10.89.0.0/16. Each
//! runs its own sshd (root, key only) and may change its own iptables
//! (`NET_ADMIN`), so the SSH control layer, the cluster lifecycle, nemeses and
//! workloads run on it unchanged. The ZooKeeper/Kafka artifact cache is
//! mounted read-only at the same path as on the host, so configs and commands
//! are the same as for the netns environment.
//!
//! Everything it creates carries the label `org.splitbrain.env=<env>`, which
//! is how `down` finds it again after a crash.

pub mod cli;
pub mod engine;
pub mod image;
#[cfg(feature = "test-support")]
pub mod ssh_hosts;
pub mod subnet;
#[cfg(feature = "test-support")]
pub mod test_env;

pub use cli::DockerCli;
pub use subnet::DockerSubnet;
#[cfg(feature = "test-support")]
pub use test_env::DockerTestEnv;

use crate::nodes::state::{validate_name, EnvKind, EnvState};
use crate::nodes::EnvError;
use engine::FileLock;
use serde::{Deserialize, Serialize};
use splitbrain_core::control::{ControlError, Session};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Label on every container and network, naming its environment.
pub const ENV_LABEL: &str = "org.splitbrain.env";
/// Label on every container, naming its node (`n1` …).
pub const NODE_LABEL: &str = "org.splitbrain.node";

const QUICK: Duration = Duration::from_secs(30);
/// How long a container may take from `docker run` to sshd accepting.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to bring a Docker environment up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerOptions {
    /// Environment name: containers are `<name>-n1` …, the network `<name>`.
    pub name: String,
    /// Number of nodes, 1 … 253.
    pub nodes: usize,
    /// The /24 to use; `None` picks the first free one.
    pub subnet: Option<DockerSubnet>,
    /// Base image of the node image ([`image::DEFAULT_BASE_IMAGE`] for users
    /// with a registry, [`image::LOCAL_BASE_IMAGE`] without one).
    pub base_image: String,
    /// Host directory mounted read-only at the same path in every node (the
    /// ZooKeeper/Kafka artifact cache). Created if missing.
    pub artifacts: Option<PathBuf>,
    /// Start (and if need be install) a Docker engine when none answers.
    pub start_engine: bool,
}

/// One container node as the environment made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerNode {
    /// The node's name, `n1` …, also its hostname.
    pub name: String,
    /// The container's name, `<env>-n1` ….
    pub container: String,
    /// Its address on the environment's network; sshd listens on port 22.
    pub address: IpAddr,
}

/// The Docker side of an environment, saved as `docker.json` beside the
/// environment's `state.json` ([`EnvState`], which holds the nodes as the
/// control layer takes them). Written before anything is created (intent);
/// `down` reads it and the engine's labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerRecord {
    /// Environment name.
    pub env: String,
    /// The engine (`DOCKER_HOST`) the containers live in.
    pub docker_host: String,
    /// The network's name.
    pub network: String,
    /// The subnet, once chosen.
    pub subnet: Option<String>,
    /// The node image.
    pub image: String,
    /// The nodes (planned, then made).
    pub nodes: Vec<DockerNode>,
    /// The artifact cache mounted read-only in every node, if any.
    pub artifacts: Option<PathBuf>,
}

/// File name of the Docker record inside the environment's directory.
pub const RECORD_FILE: &str = "docker.json";

impl DockerRecord {
    /// Reads `docker.json` of environment `name`.
    pub fn load(name: &str) -> Result<DockerRecord, EnvError> {
        let path = EnvState::dir_of(name).join(RECORD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| EnvError::Io {
            what: format!("read {}", path.display()),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| {
            EnvError::BadInput(format!(
                "{} is not a Docker environment record ({e}); `splitbrain env down --env-name {name}` \
                 still removes everything labelled with the environment",
                path.display()
            ))
        })
    }

    fn save(&self) -> Result<(), EnvError> {
        let dir = EnvState::dir_of(&self.env);
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let path = dir.join(RECORD_FILE);
        let tmp = dir.join(format!("{RECORD_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| {
            EnvError::BadInput(format!("record of {} does not serialize: {e}", self.env))
        })?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io(format!("write {}", path.display())))
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> EnvError {
    move |source| EnvError::Io { what, source }
}

/// Makes the environment's ed25519 key pair in `ssh_dir` (kept if it
/// exists); returns the public key.
fn ensure_key_pair(ssh_dir: &Path, env: &str) -> Result<String, EnvError> {
    let key = ssh_dir.join("id_ed25519");
    let public = ssh_dir.join("id_ed25519.pub");
    if !key.exists() || !public.exists() {
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(&public);
        let key_str = key.to_string_lossy().into_owned();
        let comment = format!("splitbrain-{env}");
        let out = cli::run_bounded(
            "ssh-keygen",
            &[
                "-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f", &key_str,
            ],
            &[],
            None,
            QUICK,
        )?;
        if out.status != 0 {
            return Err(EnvError::Command {
                command: format!("ssh-keygen -f {key_str}"),
                status: out.status,
                stderr: format!(
                    "{} (install openssh-client: scripts/setup)",
                    out.stderr.trim()
                ),
            });
        }
    }
    let text =
        std::fs::read_to_string(&public).map_err(io(format!("read {}", public.display())))?;
    Ok(text.trim().to_string())
}

/// Runs `f` once per item on its own thread and returns the results in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.iter().map(|item| scope.spawn(|| f(item))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker threads don't panic"))
            .collect()
    })
}

/// The docker CLI for an environment: a fresh or existing engine.
fn engine_for(start: bool) -> Result<DockerCli, EnvError> {
    if start {
        engine::start()
    } else {
        engine::find()
    }
}

/// Creates the network on the first free /24 (or the one asked for). A
/// per-subnet lock keeps parallel `up`s in this machine from racing for the
/// same one; the engine refusing overlapping pools covers the rest.
fn create_network(
    cli: &DockerCli,
    record: &DockerRecord,
    wanted: Option<DockerSubnet>,
) -> Result<DockerSubnet, EnvError> {
    let taken = used_subnets(cli)?;
    let candidates: Vec<DockerSubnet> = match wanted {
        Some(s) => vec![s],
        None => DockerSubnet::all().filter(|s| !taken.contains(s)).collect(),
    };
    let mut last_error = None;
    for subnet in candidates {
        let lock_path = engine::run_dir().join(format!("subnet-10.89.{}.lock", subnet.third()));
        let Some(_lock) = FileLock::try_exclusive(&lock_path)? else {
            continue;
        };
        if wanted.is_none() && used_subnets(cli)?.contains(&subnet) {
            continue;
        }
        let subnet_arg = subnet.to_string();
        let gateway = subnet.gateway().to_string();
        let label = format!("{ENV_LABEL}={}", record.env);
        let out = cli.run(
            &[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &subnet_arg,
                "--gateway",
                &gateway,
                "--label",
                &label,
                // No NAT: nodes talk to each other and to the host only.
                "-o",
                "com.docker.network.bridge.enable_ip_masquerade=false",
                &record.network,
            ],
            QUICK,
        )?;
        if out.status == 0 {
            return Ok(subnet);
        }
        last_error = Some(out.stderr.trim().to_string());
        if wanted.is_some() {
            break;
        }
    }
    Err(EnvError::Conflict(format!(
        "no free /24 in 10.89.0.0/16 for network {} ({}); remove unused environments with env down",
        record.network,
        last_error.unwrap_or_else(|| "all taken or locked".into())
    )))
}

/// Subnets in 10.89.0.0/16 that the engine's networks already use.
fn used_subnets(cli: &DockerCli) -> Result<Vec<DockerSubnet>, EnvError> {
    let ids = cli.ok(&["network", "ls", "-q"], QUICK)?;
    let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids);
    // A network removed between ls and inspect makes inspect fail; its
    // subnet is free then, and the others are still printed.
    let out = cli.run(&args, QUICK)?;
    Ok(out
        .stdout
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect())
}

/// What `docker run` needs to start one node container. The environment's
/// nodes and the plain-SSH-host fixture differ only in `env` and `mounts`.
pub(crate) struct ContainerSpec<'a> {
    /// The environment (label, network).
    pub record: &'a DockerRecord,
    /// Node name, also the container's hostname.
    pub node: &'a str,
    /// The container's name.
    pub container: &'a str,
    /// Its address on the environment's network.
    pub address: IpAddr,
    /// The other nodes as `name:address`, for /etc/hosts.
    pub peers: Vec<String>,
    /// `KEY=value` environment of the container's init.
    pub env: Vec<String>,
    /// `--mount` values.
    pub mounts: Vec<String>,
}

/// Starts the container `spec` describes: labelled with its environment
/// and node, with NET_ADMIN for iptables partitions inside its own network
/// namespace.
pub(crate) fn start_container(cli: &DockerCli, spec: &ContainerSpec) -> Result<(), EnvError> {
    let label_env = format!("{ENV_LABEL}={}", spec.record.env);
    let label_node = format!("{NODE_LABEL}={}", spec.node);
    let ip = spec.address.to_string();
    let mut args: Vec<&str> = vec![
        "run",
        "--detach",
        "--name",
        spec.container,
        "--hostname",
        spec.node,
        "--network",
        &spec.record.network,
        "--ip",
        &ip,
        "--cap-add",
        "NET_ADMIN",
        "--label",
        &label_env,
        "--label",
        &label_node,
    ];
    for e in &spec.env {
        args.extend(["--env", e]);
    }
    for h in &spec.peers {
        args.extend(["--add-host", h]);
    }
    for m in &spec.mounts {
        args.extend(["--mount", m]);
    }
    args.push(&spec.record.image);
    cli.ok(&args, QUICK).map(|_| ())
}

/// Starts one node's container.
fn run_container(
    cli: &DockerCli,
    record: &DockerRecord,
    state: &EnvState,
    node: &DockerNode,
    public_key: &str,
) -> Result<(), EnvError> {
    let peers: Vec<String> = record
        .nodes
        .iter()
        .filter(|n| n.name != node.name)
        .map(|n| format!("{}:{}", n.name, n.address))
        .collect();
    // Read-only bind mounts at the same path as on the host: the artifact
    // cache and the environment's shared directory.
    let mut mounts: Vec<String> = Vec::new();
    if let Some(p) = &record.artifacts {
        mounts.push(format!(
            "type=bind,source={},target={},readonly",
            p.display(),
            lexical_clean(p).display()
        ));
    }
    if let Some(shared) = &state.shared {
        mounts.push(format!(
            "type=bind,source={},target={},readonly",
            shared.control_path.display(),
            shared.node_path.display()
        ));
    }
    let spec = ContainerSpec {
        record,
        node: &node.name,
        container: &node.container,
        address: node.address,
        peers,
        env: vec![format!("SPLITBRAIN_AUTHORIZED_KEY={public_key}")],
        mounts,
    };
    start_container(cli, &spec)
}

/// `path` with `.` and `..` resolved by name only (as Docker cleans a mount
/// target), e.g. `/r/environments/../.cache` → `/r/.cache`.
pub fn lexical_clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Directories that must exist in a node for `path` (which may contain `..`,
/// like the artifact cache's default `<crate>/../.cache/artifacts`) to
/// resolve there as it does on the host: every prefix followed by `..`.
pub fn dotdot_prefixes(path: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    let mut prefix = PathBuf::new();
    let mut needed = Vec::new();
    for c in path.components() {
        if c == Component::ParentDir && !prefix.as_os_str().is_empty() {
            needed.push(lexical_clean(&prefix));
        }
        prefix.push(c);
    }
    needed
}

/// Waits for a node's sshd: its host key (read from the container itself)
/// and port 22 accepting. Returns the known_hosts line.
fn await_node(cli: &DockerCli, node: &DockerNode) -> Result<String, EnvError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let not_ready = |detail: String| EnvError::ContainerNotReady {
        node: node.name.clone(),
        container: node.container.clone(),
        detail,
    };
    let host_key = loop {
        let out = cli.run(
            &[
                "exec",
                &node.container,
                "sh",
                "-c",
                "test -e /run/splitbrain-node-ready && cat /etc/ssh/ssh_host_ed25519_key.pub",
            ],
            QUICK,
        )?;
        if out.status == 0 {
            break out.stdout;
        }
        if Instant::now() >= deadline {
            let logs = cli
                .run(&["logs", "--tail", "20", &node.container], QUICK)
                .map(|o| format!("{}{}", o.stdout, o.stderr))
                .unwrap_or_default();
            return Err(not_ready(format!(
                "no host key after {READY_TIMEOUT:?} ({}); container log: {}",
                out.stderr.trim(),
                logs.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // "ssh-ed25519 AAAA… root@n1": known_hosts wants type and key only.
    let mut parts = host_key.split_whitespace();
    let (Some(kind), Some(key)) = (parts.next(), parts.next()) else {
        return Err(not_ready(format!("unreadable host key {host_key:?}")));
    };
    let addr = SocketAddr::new(node.address, 22);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => {
                return Err(not_ready(format!("sshd at {addr} does not accept: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Ok(format!("{} {kind} {key}", node.address))
}

/// The state `up` will create, written before anything else. Nodes are as
/// on netns: root on port 22, the environment's key and known_hosts under
/// `<env dir>/ssh`, each node's directory `<env dir>/nodes/nK` (inside its
/// own container), the shared directory `<env dir>/shared` (mounted
/// read-only in every node at the same path).
fn plan(name: &str, subnet: DockerSubnet, n: usize) -> EnvState {
    let addresses = (1..=n).filter_map(|k| Some((k, IpAddr::V4(subnet.node_address(k)?))));
    EnvState::planned(name, EnvKind::Docker, addresses)
}

/// Brings a Docker environment up: engine, image, key pair, network,
/// containers, known_hosts, one SSH login per node. Returns the state that
/// `EnvState::load(name)` gives later. On failure what was created is
/// removed again.
///
/// `cancel` (set by a Ctrl-C handler) is checked between steps; when set, up
/// removes what it made and returns [`EnvError::Cancelled`].
pub fn up(opts: &DockerOptions, cancel: Option<&AtomicBool>) -> Result<EnvState, EnvError> {
    validate_name(&opts.name)?;
    if opts.nodes == 0 || opts.nodes > DockerSubnet::MAX_NODES {
        return Err(EnvError::BadInput(format!(
            "--nodes {}: a Docker environment has 1 to {} nodes",
            opts.nodes,
            DockerSubnet::MAX_NODES
        )));
    }
    // One `up` per name at a time: a second one failing half-way must not
    // clean up (by label) what the first is creating.
    let Some(_name_lock) =
        FileLock::try_exclusive(&engine::run_dir().join(format!("env-{}.lock", opts.name)))?
    else {
        return Err(EnvError::Exists {
            name: opts.name.clone(),
            detail: "another `env up` of this name is running".into(),
        });
    };
    if EnvState::path_of(&opts.name).exists() {
        return Err(EnvError::Exists {
            name: opts.name.clone(),
            detail: format!("{} exists", EnvState::path_of(&opts.name).display()),
        });
    }
    let cli = engine_for(opts.start_engine)?;
    let existing = find_resources(&cli, &opts.name)?;
    if !existing.is_empty() {
        return Err(EnvError::Exists {
            name: opts.name.clone(),
            detail: format!("Docker has {} labelled with it", existing.describe()),
        });
    }
    let image = image::ensure_node_image(&cli, &opts.base_image)?;
    if let Some(artifacts) = &opts.artifacts {
        std::fs::create_dir_all(artifacts)
            .map_err(io(format!("create {}", artifacts.display())))?;
    }
    let mut record = DockerRecord {
        env: opts.name.clone(),
        docker_host: cli.host.clone(),
        network: opts.name.clone(),
        subnet: None,
        image,
        nodes: Vec::new(),
        artifacts: opts.artifacts.clone(),
    };
    // Intent first: a crash from here on leaves a record `down` can follow
    // (and the labels, which `down` follows without any record).
    record.save()?;
    match build(&cli, opts, &mut record, cancel) {
        Ok(state) => Ok(state),
        Err(e) => {
            let _ = remove_resources(&cli, &opts.name);
            let _ = std::fs::remove_dir_all(EnvState::dir_of(&opts.name));
            Err(e)
        }
    }
}

fn check_cancel(cancel: Option<&AtomicBool>) -> Result<(), EnvError> {
    match cancel {
        Some(flag) if flag.load(Ordering::SeqCst) => Err(EnvError::Cancelled),
        _ => Ok(()),
    }
}

fn build(
    cli: &DockerCli,
    opts: &DockerOptions,
    record: &mut DockerRecord,
    cancel: Option<&AtomicBool>,
) -> Result<EnvState, EnvError> {
    let started = Instant::now();
    check_cancel(cancel)?;
    let subnet = create_network(cli, record, opts.subnet)?;
    let mut state = plan(&opts.name, subnet, opts.nodes);
    record.subnet = Some(subnet.to_string());
    record.nodes = state
        .nodes
        .iter()
        .map(|n| DockerNode {
            name: n.name.clone(),
            container: format!("{}-{}", opts.name, n.name),
            address: n.address,
        })
        .collect();
    record.save()?;
    state.save()?;
    let ssh_dir = EnvState::dir_of(&opts.name).join("ssh");
    std::fs::create_dir_all(&ssh_dir).map_err(io(format!("create {}", ssh_dir.display())))?;
    if let Some(shared) = &state.shared {
        std::fs::create_dir_all(&shared.control_path)
            .map_err(io(format!("create {}", shared.control_path.display())))?;
    }
    let public_key = ensure_key_pair(&ssh_dir, &opts.name)?;
    check_cancel(cancel)?;
    for result in parallel(&record.nodes, |node| {
        run_container(cli, record, &state, node, &public_key)
    }) {
        result?;
    }
    let mut known_hosts = String::new();
    for line in parallel(&record.nodes, |node| await_node(cli, node)) {
        known_hosts.push_str(&line?);
        known_hosts.push('\n');
    }
    check_cancel(cancel)?;
    let known_hosts_path = ssh_dir.join("known_hosts");
    std::fs::write(&known_hosts_path, known_hosts)
        .map_err(io(format!("write {}", known_hosts_path.display())))?;
    // Log in once to each node as the control layer will: proves the key,
    // the known_hosts entry and sshd's config together, and makes the node's
    // directory.
    let logins = parallel(&state.nodes, |node| -> Result<(), ControlError> {
        let mut session = Session::connect(node, READY_TIMEOUT)?;
        let mut dirs = vec![node.dir.clone()];
        if let Some(artifacts) = &record.artifacts {
            dirs.extend(dotdot_prefixes(artifacts));
        }
        let quoted: Vec<String> = dirs
            .iter()
            .map(|d| splitbrain_core::control::shell_quote(&d.to_string_lossy()))
            .collect();
        let mkdir = format!("mkdir -p {}", quoted.join(" "));
        session.exec_ok(&mkdir, QUICK)?;
        Ok(())
    });
    for (node, result) in state.nodes.iter().zip(logins) {
        result.map_err(|e| EnvError::ContainerNotReady {
            node: node.name.clone(),
            container: format!("{}-{}", opts.name, node.name),
            detail: format!("SSH login failed: {e}"),
        })?;
    }
    check_cancel(cancel)?;
    state.ready = true;
    state.save()?;
    tracing::info!(env = %opts.name, nodes = state.nodes.len(), %subnet,
        "docker environment up in {:?}", started.elapsed());
    Ok(state)
}

/// What the engine holds for one environment (found by label).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvResources {
    /// Container ids.
    pub containers: Vec<String>,
    /// Network ids.
    pub networks: Vec<String>,
}

impl EnvResources {
    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty()
    }

    fn describe(&self) -> String {
        format!(
            "{} container(s) and {} network(s)",
            self.containers.len(),
            self.networks.len()
        )
    }
}

fn ids(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Containers and networks labelled with `env`.
pub fn find_resources(cli: &DockerCli, env: &str) -> Result<EnvResources, EnvError> {
    let filter = format!("label={ENV_LABEL}={env}");
    Ok(EnvResources {
        containers: ids(&cli.ok(&["ps", "-aq", "--filter", &filter], QUICK)?),
        networks: ids(&cli.ok(&["network", "ls", "-q", "--filter", &filter], QUICK)?),
    })
}

/// Removes every container and network labelled with `env` (idempotent).
pub fn remove_resources(cli: &DockerCli, env: &str) -> Result<(), EnvError> {
    let found = find_resources(cli, env)?;
    if !found.containers.is_empty() {
        let mut args = vec!["rm", "--force", "--volumes"];
        args.extend(found.containers.iter().map(String::as_str));
        cli.ok(&args, Duration::from_secs(120))?;
    }
    if !found.networks.is_empty() {
        let mut args = vec!["network", "rm"];
        args.extend(found.networks.iter().map(String::as_str));
        cli.ok(&args, QUICK)?;
    }
    let left = find_resources(cli, env)?;
    if !left.is_empty() {
        return Err(EnvError::Conflict(format!(
            "environment {env} still has {} after removal; run env down again, or inspect with docker ps -a --filter label={ENV_LABEL}={env}",
            left.describe()
        )));
    }
    Ok(())
}

/// Tears an environment down: every labelled container and network, then
/// the environment's directory. Works after a crash (labels, not memory) and
/// when there is nothing left (idempotent). Starts the engine if
/// `start_engine` and none answers, since a stopped private engine still
/// holds stopped containers.
pub fn down(name: &str, start_engine: bool) -> Result<(), EnvError> {
    validate_name(name)?;
    let cli = match DockerRecord::load(name) {
        Ok(record) if DockerCli::new(record.docker_host.clone()).answers(QUICK) => {
            DockerCli::new(record.docker_host)
        }
        _ => engine_for(start_engine)?,
    };
    remove_resources(&cli, name)?;
    let dir = EnvState::dir_of(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
    }
    Ok(())
}

/// For `env down` without any record: if a Docker engine answers (none is
/// started) and holds containers or a network labelled with `name`, removes
/// them and returns a summary; `None` when there is nothing of the kind.
pub fn down_orphans(name: &str) -> Result<Option<String>, EnvError> {
    validate_name(name)?;
    let Ok(cli) = engine::find() else {
        return Ok(None);
    };
    let found = find_resources(&cli, name)?;
    if found.is_empty() {
        return Ok(None);
    }
    remove_resources(&cli, name)?;
    Ok(Some(format!(
        "removed docker environment {name} (no state file): {}",
        found.describe()
    )))
}

/// One node's container as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// The node (`n1` …), from its label.
    pub node: String,
    /// The container's name.
    pub container: String,
    /// Docker's state: running, exited, …
    pub state: String,
}

/// The environment's containers as the engine sees them, sorted by node.
pub fn status(cli: &DockerCli, env: &str) -> Result<Vec<ContainerStatus>, EnvError> {
    let filter = format!("label={ENV_LABEL}={env}");
    let format = format!("{{{{.Label \"{NODE_LABEL}\"}}}}\t{{{{.Names}}}}\t{{{{.State}}}}");
    let text = cli.ok(
        &["ps", "-a", "--filter", &filter, "--format", &format],
        QUICK,
    )?;
    let mut rows: Vec<ContainerStatus> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            Some(ContainerStatus {
                node: f.next()?.to_string(),
                container: f.next()?.to_string(),
                state: f.next()?.to_string(),
            })
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            r.node
                .trim_start_matches('n')
                .parse::<usize>()
                .unwrap_or(usize::MAX),
            r.node.clone(),
        )
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_matches_the_netns_layout_on_10_89() {
        let subnet = DockerSubnet::new(7).unwrap();
        let state = plan("d1", subnet, 3);
        assert_eq!(state.kind, EnvKind::Docker);
        assert!(!state.ready);
        let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n3"]);
        assert_eq!(
            state.nodes[0].address,
            "10.89.7.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            state.nodes[2].address,
            "10.89.7.4".parse::<IpAddr>().unwrap()
        );
        let dir = EnvState::dir_of("d1");
        assert_eq!(state.nodes[1].dir, dir.join("nodes/n2"));
        assert_eq!(state.nodes[0].known_hosts, dir.join("ssh/known_hosts"));
        assert_eq!(
            (state.nodes[0].port, state.nodes[0].user.as_str()),
            (22, "root")
        );
    }

    #[test]
    fn paths_with_dotdot_resolve_in_a_node_as_on_the_host() {
        let p = Path::new("/r/environments/../.cache/./artifacts");
        assert_eq!(lexical_clean(p), PathBuf::from("/r/.cache/artifacts"));
        assert_eq!(dotdot_prefixes(p), vec![PathBuf::from("/r/environments")]);
        assert!(dotdot_prefixes(Path::new("/r/.cache/artifacts")).is_empty());
        let q = Path::new("/a/b/../../c/d/../e");
        assert_eq!(lexical_clean(q), PathBuf::from("/c/e"));
        assert_eq!(
            dotdot_prefixes(q),
            vec![
                PathBuf::from("/a/b"),
                PathBuf::from("/a"),
                PathBuf::from("/c/d")
            ]
        );
    }

    #[test]
    fn parallel_keeps_order() {
        assert_eq!(parallel(&[3, 1, 2], |x| x * 10), vec![30, 10, 20]);
    }

    #[test]
    fn ids_skip_blank_lines() {
        assert_eq!(ids("a\n\n b \n"), vec!["a".to_string(), "b".to_string()]);
    }
}
