//! `splitbrain env`: create, inspect and remove the nodes splitbrain runs on.

use crate::exit::Exit;
use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::prepare;
use splitbrain_environments::nodes::netns::{self, Subnet, UpOptions};
use splitbrain_environments::nodes::OwnerStatus;
use splitbrain_environments::nodes::{docker, ssh};
use splitbrain_environments::{EnvError, EnvState};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by the Ctrl-C / SIGTERM handler; `env up` checks it between steps and
/// removes what it created.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Create (`up`), inspect (`status`, `list`) and remove (`down`) environments.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Environment name: namespaces are `<name>-n1`…, state is in
    /// `$SPLITBRAIN_STATE_DIR/<name>/` (default `/var/lib/splitbrain/envs/<name>/`).
    #[arg(
        long,
        global = true,
        env = "SPLITBRAIN_ENV",
        default_value = "splitbrain"
    )]
    pub env_name: String,
    #[command(subcommand)]
    pub action: EnvAction,
}

/// Where the nodes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Network namespaces on this machine, each with its own sshd (needs root).
    Netns,
    /// Existing hosts listed in a TOML file (`--hosts`).
    Ssh,
    /// Docker containers on this machine (starts a Docker engine if none
    /// answers; see docs/environments-docker.md).
    Docker,
}

/// Options of `env up --kind docker`.
#[derive(Debug, Args)]
pub struct DockerUpArgs {
    /// Base image of the node image (docker): `debian:bookworm` from your
    /// registry, or `splitbrain/bookworm-base` made locally with debootstrap
    /// when there is no registry.
    #[arg(long, env = "SPLITBRAIN_DOCKER_BASE", default_value = docker::image::DEFAULT_BASE_IMAGE)]
    pub docker_base: String,
    /// ZooKeeper/Kafka artifact cache mounted read-only at the same path in
    /// every node (docker); default `$SPLITBRAIN_ARTIFACTS`, else
    /// `./.cache/artifacts` if present, else the source tree's.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
}

/// What to do with the environment.
#[derive(Debug, Subcommand)]
pub enum EnvAction {
    /// Create the environment and wait until every node answers over SSH (ssh hosts are also prepared: Java, iptables, the jars).
    Up {
        /// Kind of environment (`--env docker` is the same as `--kind docker`).
        #[arg(long, visible_alias = "env", value_enum, default_value = "netns")]
        kind: KindArg,
        /// Number of nodes (netns, docker).
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// A /24 for the nodes, inside 10.88.0.0/16 (netns) or 10.89.0.0/16
        /// (docker); default: a free one.
        #[arg(long)]
        subnet: Option<String>,
        /// TOML file listing the hosts (ssh): name, address or host name, user, key, known_hosts; see docs/ssh-hosts.md.
        #[arg(long)]
        hosts: Option<PathBuf>,
        #[command(flatten)]
        docker: DockerUpArgs,
        /// Install what the hosts lack (Java 17+, iptables) with their
        /// package manager, apt-get or dnf (ssh); without it a host that
        /// lacks them is an error naming what is missing.
        #[arg(long)]
        install: bool,
        /// Where the ZooKeeper and Kafka jars go on every host (ssh),
        /// content-addressed, kept by `env down` for the next environment
        /// (`env down --purge-artifacts` removes them).
        #[arg(long, value_name = "DIR", default_value = prepare::DEFAULT_NODE_ARTIFACTS_DIR)]
        artifacts_dir: PathBuf,
    },
    /// Show each node, its address and whether its sshd answers.
    Status,
    /// Remove everything the environment created (idempotent; works after a
    /// crash of `env up`).
    Down {
        /// Also remove the jars uploaded to ssh hosts (kept otherwise, so the
        /// next environment on those hosts reuses them).
        #[arg(long)]
        purge_artifacts: bool,
    },
    /// List environments that have a state file.
    List,
}

/// Runs `splitbrain env …`.
pub fn run(args: EnvArgs) -> anyhow::Result<Exit> {
    let name = args.env_name;
    match args.action {
        EnvAction::Up {
            kind,
            nodes,
            subnet,
            hosts,
            docker,
            install,
            artifacts_dir,
        } => {
            let prepare = prepare::PrepareOptions::from_settings(install, Some(&artifacts_dir));
            up(&name, kind, nodes, subnet, hosts, docker, prepare)
        }
        EnvAction::Status => status(&name),
        EnvAction::Down { purge_artifacts } => {
            let summary = splitbrain_environments::nodes::down_with(&name, purge_artifacts)
                .with_context(|| format!("env down {name}"))?;
            println!("{summary}");
            Ok(Exit::Success)
        }
        EnvAction::List => list(),
    }
}

/// `env list`: every environment, whether it is ready, and who owns it
/// (an environment whose owner process is gone is `ORPHANED`).
fn list() -> anyhow::Result<Exit> {
    let names = EnvState::list()?;
    let orphans = netns::orphans_on_system();
    if names.is_empty() && orphans.is_empty() {
        println!("no environments");
    }
    for n in orphans {
        println!("{n}\tnetns\tno state file: leftovers of a crash (run `splitbrain env down --env-name {n}`)");
    }
    for n in names {
        match EnvState::load(&n) {
            Ok(s) => println!(
                "{n}\t{}\t{} node(s)\t{}\t{}",
                s.kind,
                s.nodes.len(),
                if s.ready {
                    "ready"
                } else {
                    "incomplete (run env down)"
                },
                match s.owner_status() {
                    OwnerStatus::None => "kept until env down".to_string(),
                    OwnerStatus::Alive(pid) => format!("owned by running process {pid}"),
                    OwnerStatus::Gone(pid) => format!(
                        "ORPHANED: its owner process {pid} is gone; its servers may still run \
                         (run `splitbrain env down --env-name {n}`)"
                    ),
                }
            ),
            Err(e) => println!("{n}\tunreadable state: {e}"),
        }
    }
    Ok(Exit::Success)
}

fn up(
    name: &str,
    kind: KindArg,
    nodes: usize,
    subnet: Option<String>,
    hosts: Option<PathBuf>,
    docker_args: DockerUpArgs,
    prepare_opts: prepare::PrepareOptions,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    if prepare_opts.install && kind != KindArg::Ssh {
        bail!("--install is for --kind ssh (hosts splitbrain did not make); netns and docker nodes come with Java");
    }
    let state = match kind {
        KindArg::Netns => {
            if hosts.is_some() {
                bail!("--hosts is for --kind ssh; a netns environment creates its own nodes");
            }
            let subnet = subnet.as_deref().map(Subnet::parse).transpose()?;
            // First signal: stop between steps and clean up. The handler can
            // only be installed once per process, which is all we need.
            ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
                .context("install the Ctrl-C handler")?;
            let opts = UpOptions {
                name: name.to_string(),
                nodes,
                subnet,
            };
            match netns::up(&opts, Some(&INTERRUPTED)) {
                Ok(state) => state,
                Err(EnvError::Cancelled) => {
                    eprintln!("env up {name}: interrupted; removed everything it had created");
                    return Ok(Exit::Interrupted);
                }
                Err(e) => return Err(e).with_context(|| format!("env up {name}")),
            }
        }
        KindArg::Ssh => {
            let Some(hosts) = hosts else {
                bail!("--kind ssh needs --hosts FILE.toml listing the nodes (see docs/environments.md)");
            };
            if subnet.is_some() {
                bail!("--subnet is for --kind netns");
            }
            let mut state = ssh::up(name, &hosts, Duration::from_secs(15))
                .with_context(|| format!("env up {name} --kind ssh"))?;
            // Ctrl-C stops the preparation between steps; then it is removed.
            ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
                .context("install the Ctrl-C handler")?;
            let prepared = prepare::prepare(
                &mut state,
                &prepare_opts,
                &mut |line| println!("env up {name}: {line}"),
                Some(&INTERRUPTED),
            );
            match prepared {
                Ok(report) => println!("env up {name}: {}", report.summary()),
                Err(e) => {
                    // Half-prepared hosts are of no use: leave them as found.
                    if let Err(down) = splitbrain_environments::nodes::down(name) {
                        eprintln!("env up {name}: removing it again failed too: {down}");
                    }
                    if INTERRUPTED.load(Ordering::SeqCst) {
                        eprintln!("env up {name}: interrupted; removed what it had put on the hosts (uploaded jars are kept)");
                        return Ok(Exit::Interrupted);
                    }
                    return Err(e).with_context(|| format!("env up {name} --kind ssh"));
                }
            }
            state
        }
        KindArg::Docker => {
            if hosts.is_some() {
                bail!("--hosts is for --kind ssh; a docker environment creates its own nodes");
            }
            let subnet = subnet
                .as_deref()
                .map(str::parse::<docker::DockerSubnet>)
                .transpose()?;
            ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
                .context("install the Ctrl-C handler")?;
            let opts = docker::DockerOptions {
                name: name.to_string(),
                nodes,
                subnet,
                base_image: docker_args.docker_base,
                artifacts: Some(docker_args.artifacts.unwrap_or_else(Artifacts::cache_dir)),
                start_engine: true,
            };
            match docker::up(&opts, Some(&INTERRUPTED)) {
                Ok(state) => state,
                Err(EnvError::Cancelled) => {
                    eprintln!("env up {name}: interrupted; removed everything it had created");
                    return Ok(Exit::Interrupted);
                }
                Err(e) => return Err(e).with_context(|| format!("env up {name} --kind docker")),
            }
        }
    };
    // Made for the user: it outlives this process, until `env down`.
    let mut state = state;
    state
        .hand_over()
        .with_context(|| format!("env up {name}: saving its state"))?;
    println!(
        "environment {name} ({}) up in {:.2}s; state in {}",
        state.kind,
        started.elapsed().as_secs_f64(),
        state.dir().display()
    );
    for node in &state.nodes {
        println!(
            "  {}\t{}:{}\tssh -i {} -o UserKnownHostsFile={} {}@{}",
            node.name,
            node.address,
            node.port,
            node.key_path.display(),
            node.known_hosts.display(),
            node.user,
            node.host_name()
        );
    }
    Ok(Exit::Success)
}

/// The docker side of `env status`: engine, network and each container's state.
fn docker_status(name: &str) {
    match docker::DockerRecord::load(name) {
        Ok(rec) => {
            println!(
                "  docker engine {} network {} subnet {} image {}",
                rec.docker_host,
                rec.network,
                rec.subnet.as_deref().unwrap_or("(not yet chosen)"),
                rec.image
            );
            let cli = docker::DockerCli::new(rec.docker_host);
            if !cli.answers(Duration::from_secs(5)) {
                println!(
                    "  the Docker engine does not answer: start it with \
                     `sudo environments/docker/engine start` (containers stopped with it \
                     stay stopped: recreate with env down + env up)"
                );
                return;
            }
            match docker::status(&cli, name) {
                Ok(rows) if rows.is_empty() => println!("  no containers"),
                Ok(rows) => {
                    for row in rows {
                        println!("  {}\tcontainer {}\t{}", row.node, row.container, row.state);
                    }
                }
                Err(e) => println!("  containers unknown: {e}"),
            }
        }
        Err(e) => println!("  docker record unreadable: {e}"),
    }
}

fn status(name: &str) -> anyhow::Result<Exit> {
    let state = EnvState::load(name)?;
    println!(
        "environment {name}: {}, {} node(s), {}",
        state.kind,
        state.nodes.len(),
        if state.ready {
            "ready"
        } else {
            "incomplete: `env up` did not finish; run `splitbrain env down`"
        }
    );
    if let Some(net) = &state.netns {
        println!(
            "  subnet {} bridge {} host {}",
            net.subnet, net.bridge, net.host_address
        );
    }
    if state.kind == splitbrain_environments::EnvKind::Docker {
        docker_status(name);
    }
    if state.kind == splitbrain_environments::EnvKind::Ssh {
        match prepare::NodeArtifacts::load(name) {
            Ok(Some(record)) => println!(
                "  jars on every host: {} (java: {})",
                record.artifacts().root.display(),
                record.java
            ),
            Ok(None) => println!(
                "  no jars uploaded (not prepared, or ${} names them)",
                splitbrain_environments::db::artifacts::NODE_ARTIFACTS_ENV
            ),
            Err(e) => println!("  jar record unreadable: {e}"),
        }
    }
    let mut all_answer = true;
    for node in splitbrain_environments::nodes::node_status(&state, Duration::from_secs(3)) {
        match node.answer {
            Ok(hostname) => println!(
                "  {}\t{}\tsshd answers (hostname {hostname})",
                node.name, node.address
            ),
            Err(e) => {
                all_answer = false;
                println!(
                    "  {}\t{}\tsshd does NOT answer: {e}",
                    node.name, node.address
                );
            }
        }
    }
    Ok(if all_answer {
        Exit::Success
    } else {
        Exit::Failed
    })
}
