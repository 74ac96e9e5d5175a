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
pub mod subnet;
pub mod test_env;

pub use cli::DockerCli;
pub use subnet::DockerSubnet;
pub use test_env::DockerTestEnv;

use engine::FileLock;
use serde::{Deserialize, Serialize};
use splitbrain_core::control::{ControlError, Node, Session};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Label on every container and network, naming its environment.
pub const ENV_LABEL: &str = "org.splitbrain.env";
/// Label on every container, naming its node (`n1` …).
pub const NODE_LABEL: &str = "org.splitbrain.node";

const QUICK: Duration = Duration::from_secs(30);
/// How long a container may take from `docker run` to sshd accepting.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong with Docker; each says what to do next where it can.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// A command could not be started (not installed?).
    #[error("could not run `{command}`: {source} (is Docker installed? sudo environments/docker/engine start installs it)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command ran past its time limit and was killed.
    #[error("`{command}` did not finish within {timeout:?}; is the Docker engine overloaded or hung? (environments/docker/engine status)")]
    Timeout {
        /// The command line.
        command: String,
        /// Its limit.
        timeout: Duration,
    },
    /// A docker command exited non-zero.
    #[error("`{command}` failed with status {status}: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: i32,
        /// Its standard error.
        stderr: String,
    },
    /// The engine could not be started, found or stopped.
    #[error("Docker engine {action}: {detail}")]
    Engine {
        /// start, find or stop.
        action: &'static str,
        /// What the engine script said.
        detail: String,
    },
    /// An image could not be made.
    #[error("image {image} could not be built: {detail}")]
    Image {
        /// The image.
        image: String,
        /// The build's last lines.
        detail: String,
    },
    /// A file or lock operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted, with the path.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Bad input from the user (names, subnets, counts).
    #[error("{0}")]
    BadInput(String),
    /// A node did not become reachable.
    #[error("node {node} (container {container}) not ready: {detail}")]
    NotReady {
        /// The node.
        node: String,
        /// Its container.
        container: String,
        /// What was seen last.
        detail: String,
    },
    /// The environment already exists or is in the way.
    #[error("{0}")]
    Conflict(String),
}

/// How to bring a Docker environment up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerOptions {
    /// Environment name: containers are `<env>-n1` …, the network `<env>`.
    pub env: String,
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
    /// Directory for the environment's key pair, known_hosts and record.
    pub state_dir: PathBuf,
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

/// What `up` made, saved as `docker.json` in the state directory before
/// anything is created (intent) and again when done; `down` reads it and the
/// engine's labels.
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
    /// Private key (on the control node) whose public half every node accepts.
    pub key_path: PathBuf,
    /// known_hosts with every node's host key, read from the node itself.
    pub known_hosts: PathBuf,
    /// The artifact cache mounted read-only in every node, if any.
    pub artifacts: Option<PathBuf>,
    /// True once every node accepts SSH.
    pub ready: bool,
}

/// Each node's own directory inside its container. Containers don't share a
/// filesystem, so one fixed path serves every node.
pub const NODE_DIR: &str = "/var/lib/splitbrain/node";

/// File name of the record inside the state directory.
pub const RECORD_FILE: &str = "docker.json";

impl DockerRecord {
    /// Reads `docker.json` from `state_dir`.
    pub fn load(state_dir: &Path) -> Result<DockerRecord, DockerError> {
        let path = state_dir.join(RECORD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| DockerError::Io {
            what: format!("read {}", path.display()),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| {
            DockerError::BadInput(format!(
                "{} is not a Docker environment record ({e}); remove the environment with env down",
                path.display()
            ))
        })
    }

    /// The nodes as the SSH control layer takes them: root on port 22 with
    /// the environment's key and known_hosts; each node's directory is
    /// [`NODE_DIR`] inside its own container.
    pub fn control_nodes(&self) -> Vec<Node> {
        self.nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                address: n.address,
                port: 22,
                user: "root".into(),
                key_path: self.key_path.clone(),
                known_hosts: self.known_hosts.clone(),
                dir: PathBuf::from(NODE_DIR),
            })
            .collect()
    }

    fn save(&self, state_dir: &Path) -> Result<(), DockerError> {
        let path = state_dir.join(RECORD_FILE);
        let tmp = state_dir.join(format!("{RECORD_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("record serializes");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| DockerError::Io {
                what: format!("write {}", path.display()),
                source,
            })
    }
}

/// Checks an environment name: it becomes part of container and network
/// names, so Docker's name rules apply, kept short and lower-case.
pub fn validate_env_name(env: &str) -> Result<(), DockerError> {
    let ok = !env.is_empty()
        && env.len() <= 40
        && env.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && env
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DockerError::BadInput(format!(
            "environment name {env:?}: use 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )))
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> DockerError {
    move |source| DockerError::Io { what, source }
}

/// Makes the environment's ed25519 key pair (kept if it exists).
fn ensure_key_pair(state_dir: &Path, env: &str) -> Result<(PathBuf, String), DockerError> {
    let key = state_dir.join("id_ed25519");
    let public = state_dir.join("id_ed25519.pub");
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
            return Err(DockerError::Failed {
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
    Ok((key, text.trim().to_string()))
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
fn engine_for(start: bool) -> Result<DockerCli, DockerError> {
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
) -> Result<DockerSubnet, DockerError> {
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
    Err(DockerError::Conflict(format!(
        "no free /24 in 10.89.0.0/16 for network {} ({}); remove unused environments with env down",
        record.network,
        last_error.unwrap_or_else(|| "all taken or locked".into())
    )))
}

/// Subnets in 10.89.0.0/16 that the engine's networks already use.
fn used_subnets(cli: &DockerCli) -> Result<Vec<DockerSubnet>, DockerError> {
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

/// Starts one node's container.
fn run_container(
    cli: &DockerCli,
    record: &DockerRecord,
    node: &DockerNode,
    public_key: &str,
) -> Result<(), DockerError> {
    let label_env = format!("{ENV_LABEL}={}", record.env);
    let label_node = format!("{NODE_LABEL}={}", node.name);
    let ip = node.address.to_string();
    let key_env = format!("SPLITBRAIN_AUTHORIZED_KEY={public_key}");
    let hosts: Vec<String> = record
        .nodes
        .iter()
        .filter(|n| n.name != node.name)
        .map(|n| format!("{}:{}", n.name, n.address))
        .collect();
    let mount = record
        .artifacts
        .as_ref()
        .map(|p| format!("type=bind,source={0},target={0},readonly", p.display()));
    let mut args: Vec<&str> = vec![
        "run",
        "--detach",
        "--name",
        &node.container,
        "--hostname",
        &node.name,
        "--network",
        &record.network,
        "--ip",
        &ip,
        // iptables partitions inside the node's own network namespace.
        "--cap-add",
        "NET_ADMIN",
        "--label",
        &label_env,
        "--label",
        &label_node,
        "--env",
        &key_env,
    ];
    for h in &hosts {
        args.extend(["--add-host", h]);
    }
    if let Some(m) = &mount {
        args.extend(["--mount", m]);
    }
    args.push(&record.image);
    cli.ok(&args, QUICK).map(|_| ())
}

/// Waits for a node's sshd: its host key (read from the container itself)
/// and port 22 accepting. Returns the known_hosts line.
fn await_node(cli: &DockerCli, node: &DockerNode) -> Result<String, DockerError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let not_ready = |detail: String| DockerError::NotReady {
        node: node.name.clone(),
        container: node.container.clone(),
        detail,
    };
    let mut last = String::new();
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
        last = out.stderr.trim().to_string();
        if Instant::now() >= deadline {
            let logs = cli
                .run(&["logs", "--tail", "20", &node.container], QUICK)
                .map(|o| format!("{}{}", o.stdout, o.stderr))
                .unwrap_or_default();
            return Err(not_ready(format!(
                "no host key after {READY_TIMEOUT:?} ({last}); container log: {}",
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
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = last;
    Ok(format!("{} {kind} {key}", node.address))
}

/// Brings a Docker environment up: engine, image, key pair, network,
/// containers, known_hosts. On failure what was created is removed again.
pub fn up(opts: &DockerOptions) -> Result<DockerRecord, DockerError> {
    validate_env_name(&opts.env)?;
    if opts.nodes == 0 || opts.nodes > DockerSubnet::MAX_NODES {
        return Err(DockerError::BadInput(format!(
            "--nodes {}: choose 1 … {}",
            opts.nodes,
            DockerSubnet::MAX_NODES
        )));
    }
    let cli = engine_for(opts.start_engine)?;
    let existing = find_resources(&cli, &opts.env)?;
    if !existing.is_empty() {
        return Err(DockerError::Conflict(format!(
            "environment {} already has {} in Docker; remove it first: splitbrain env down --env-name {}",
            opts.env,
            existing.describe(),
            opts.env
        )));
    }
    let image = image::ensure_node_image(&cli, &opts.base_image)?;
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(io(format!("create {}", opts.state_dir.display())))?;
    if let Some(artifacts) = &opts.artifacts {
        std::fs::create_dir_all(artifacts)
            .map_err(io(format!("create {}", artifacts.display())))?;
    }
    let mut record = DockerRecord {
        env: opts.env.clone(),
        docker_host: cli.host.clone(),
        network: opts.env.clone(),
        subnet: None,
        image,
        nodes: Vec::new(),
        key_path: opts.state_dir.join("id_ed25519"),
        known_hosts: opts.state_dir.join("known_hosts"),
        artifacts: opts.artifacts.clone(),
        ready: false,
    };
    // Intent first: a crash from here on leaves a record `down` can follow.
    record.save(&opts.state_dir)?;
    let result = build(&cli, opts, &mut record);
    if let Err(e) = result {
        let _ = remove_resources(&cli, &opts.env);
        return Err(e);
    }
    Ok(record)
}

fn build(
    cli: &DockerCli,
    opts: &DockerOptions,
    record: &mut DockerRecord,
) -> Result<(), DockerError> {
    let (_key, public_key) = ensure_key_pair(&opts.state_dir, &opts.env)?;
    let subnet = create_network(cli, record, opts.subnet)?;
    record.subnet = Some(subnet.to_string());
    record.nodes = (1..=opts.nodes)
        .map(|i| DockerNode {
            name: format!("n{i}"),
            container: format!("{}-n{i}", opts.env),
            address: IpAddr::V4(
                subnet
                    .node_address(i)
                    .expect("nodes checked against MAX_NODES"),
            ),
        })
        .collect();
    record.save(&opts.state_dir)?;
    for result in parallel(&record.nodes, |node| {
        run_container(cli, record, node, &public_key)
    }) {
        result?;
    }
    let mut known_hosts = String::new();
    for line in parallel(&record.nodes, |node| await_node(cli, node)) {
        known_hosts.push_str(&line?);
        known_hosts.push('\n');
    }
    std::fs::write(&record.known_hosts, known_hosts)
        .map_err(io(format!("write {}", record.known_hosts.display())))?;
    // Log in once to each node as the control layer will: proves the key,
    // the known_hosts entry and sshd's config together.
    for (node, result) in record.control_nodes().iter().zip(parallel(
        &record.control_nodes(),
        |node| -> Result<(), ControlError> {
            let mut session = Session::connect(node, READY_TIMEOUT)?;
            session.exec_ok("true", QUICK)?;
            Ok(())
        },
    )) {
        result.map_err(|e| DockerError::NotReady {
            node: node.name.clone(),
            container: format!("{}-{}", record.env, node.name),
            detail: format!("SSH login failed: {e}"),
        })?;
    }
    record.ready = true;
    record.save(&opts.state_dir)
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
pub fn find_resources(cli: &DockerCli, env: &str) -> Result<EnvResources, DockerError> {
    let filter = format!("label={ENV_LABEL}={env}");
    Ok(EnvResources {
        containers: ids(&cli.ok(&["ps", "-aq", "--filter", &filter], QUICK)?),
        networks: ids(&cli.ok(&["network", "ls", "-q", "--filter", &filter], QUICK)?),
    })
}

/// Removes every container and network labelled with `env` (idempotent).
pub fn remove_resources(cli: &DockerCli, env: &str) -> Result<(), DockerError> {
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
        return Err(DockerError::Conflict(format!(
            "environment {env} still has {} after removal; run env down again, or inspect with docker ps -a --filter label={ENV_LABEL}={env}",
            left.describe()
        )));
    }
    Ok(())
}

/// Tears an environment down: every labelled container and network, then the
/// state directory. Works after a crash (labels, not memory) and when there
/// is nothing left (idempotent). Starts the engine if `start_engine` and none
/// answers, since a stopped private engine still holds stopped containers.
pub fn down(env: &str, state_dir: &Path, start_engine: bool) -> Result<(), DockerError> {
    validate_env_name(env)?;
    let cli = match DockerRecord::load(state_dir) {
        Ok(record) if DockerCli::new(record.docker_host.clone()).answers(QUICK) => {
            DockerCli::new(record.docker_host)
        }
        _ => engine_for(start_engine)?,
    };
    remove_resources(&cli, env)?;
    if state_dir.exists() {
        std::fs::remove_dir_all(state_dir)
            .map_err(io(format!("remove {}", state_dir.display())))?;
    }
    Ok(())
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
pub fn status(cli: &DockerCli, env: &str) -> Result<Vec<ContainerStatus>, DockerError> {
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
    fn env_names_follow_docker_rules() {
        for good in ["a", "docker", "t-12-x", "9lives"] {
            assert!(validate_env_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "Upper", "a b", "a/b", "a_b", "é", &"x".repeat(41)] {
            assert!(validate_env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let record = DockerRecord {
            env: "e".into(),
            docker_host: "unix:///x".into(),
            network: "e".into(),
            subnet: Some("10.89.3.0/24".into()),
            image: "splitbrain/node:0".into(),
            nodes: vec![DockerNode {
                name: "n1".into(),
                container: "e-n1".into(),
                address: "10.89.3.2".parse().unwrap(),
            }],
            key_path: dir.path().join("id_ed25519"),
            known_hosts: dir.path().join("known_hosts"),
            artifacts: None,
            ready: true,
        };
        record.save(dir.path()).unwrap();
        assert_eq!(DockerRecord::load(dir.path()).unwrap(), record);
    }

    #[test]
    fn a_broken_record_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RECORD_FILE), "{not json").unwrap();
        let err = DockerRecord::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("env down"), "{err}");
    }

    #[test]
    fn parallel_keeps_order() {
        assert_eq!(parallel(&[3, 1, 2], |x| x * 10), vec![30, 10, 20]);
    }
}
