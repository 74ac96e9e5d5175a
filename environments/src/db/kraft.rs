//! Kafka in KRaft mode: dedicated controllers on their own nodes (the
//! metadata quorum, `process.roles=controller`) and brokers
//! (`process.roles=broker`) that follow it; no ZooKeeper.
//!
//! The quorum is dynamic by default (KIP-853, Kafka 3.9): every server finds
//! the controllers through `controller.quorum.bootstrap.servers`, and the
//! controllers' storage is formatted with `--initial-controllers`, which
//! writes the first voter set (id, address, directory id) into the metadata
//! log itself. A static quorum (`controller.quorum.voters` in every config,
//! the pre-3.9 way) is the option. Storage is formatted with Kafka's own
//! `kafka.tools.StorageTool` (`kafka-storage format`) on each node before the
//! first start: a KRaft server refuses to start on an unformatted directory.
//!
//! Lifecycle (start, stop, kill, pause, wipe, logs) is [`crate::db::service`]'s,
//! as for ZooKeeper mode; a controller's service directory is
//! `<node dir>/kafka-controller`.

use crate::db::artifacts::Artifacts;
use crate::db::kafka::{self, Broker, KafkaSettings};
use crate::db::service::{self, Service, ServiceKind};
use crate::db::zookeeper::base_jvm_opts;
use crate::db::ClusterError;
use crate::probes::kafka_client::{self, QuorumDescription};
use serde::{Deserialize, Serialize};
use splitbrain_core::control::{Control, Node};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The first controller's `node.id`; controllers count up from here, so
/// their ids never collide with the brokers' (1, 2, 3, …): KRaft needs
/// `node.id` unique across both roles.
pub const FIRST_CONTROLLER_ID: i32 = 1001;

/// How the controllers know each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuorumKind {
    /// KIP-853: `controller.quorum.bootstrap.servers`, the voter set lives in
    /// the metadata log (formatted with `--initial-controllers`) and changes
    /// with `add-controller` / `remove-controller`.
    #[default]
    Dynamic,
    /// `controller.quorum.voters` in every server's configuration, fixed for
    /// the cluster's life.
    Static,
}

impl std::str::FromStr for QuorumKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dynamic" => Ok(QuorumKind::Dynamic),
            "static" => Ok(QuorumKind::Static),
            other => Err(format!(
                "unknown quorum kind '{other}': use dynamic or static"
            )),
        }
    }
}

/// Settings of the controllers (the brokers' are [`KafkaSettings`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KraftSettings {
    /// The controllers' listener port (`CONTROLLER://…`).
    pub controller_port: u16,
    /// Controller JVM heap (`-Xmx`) in MiB.
    pub heap_mb: u32,
    /// Dynamic (KIP-853) or static voters.
    pub quorum: QuorumKind,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u32,
    /// `controller.quorum.fetch.timeout.ms`: how long a follower waits
    /// for the leader before it runs for election.
    pub fetch_timeout_ms: u32,
    /// `broker.session.timeout.ms`: how long a broker that stopped
    /// heartbeating stays registered (unfenced); KRaft's analogue of the
    /// ZooKeeper session timeout, set to the same 6 s here.
    pub broker_session_timeout_ms: u32,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u32,
    /// Extra JVM options of the controllers.
    pub jvm_opts: Vec<String>,
    /// Extra `key=value` lines appended to every controller's properties.
    pub extra: Vec<(String, String)>,
}

impl Default for KraftSettings {
    fn default() -> Self {
        Self {
            controller_port: 9093,
            heap_mb: 256,
            quorum: QuorumKind::Dynamic,
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            broker_session_timeout_ms: 6000,
            broker_heartbeat_interval_ms: 1000,
            jvm_opts: Vec::new(),
            extra: Vec::new(),
        }
    }
}

/// One voter of the metadata quorum as the format tool and
/// `controller.quorum.voters` name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    /// Its `node.id`.
    pub id: i32,
    /// Its controller listener.
    pub addr: SocketAddr,
    /// Its metadata log directory's id (base64 UUID): KIP-853 tells a
    /// controller that lost its disk from the one that had it by this id.
    pub directory_id: String,
}

impl Voter {
    /// `id@host:port:directory` as `--initial-controllers` takes it.
    pub fn initial_controller(&self) -> String {
        format!(
            "{}@{}:{}:{}",
            self.id,
            self.addr.ip(),
            self.addr.port(),
            self.directory_id
        )
    }
    /// `id@host:port` as `controller.quorum.voters` takes it.
    pub fn static_voter(&self) -> String {
        format!("{}@{}:{}", self.id, self.addr.ip(), self.addr.port())
    }
}

/// How a server finds the quorum: the line in its properties.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuorumConfig {
    /// `controller.quorum.bootstrap.servers` (dynamic quorum).
    Bootstrap(Vec<SocketAddr>),
    /// `controller.quorum.voters` (static quorum).
    Voters(Vec<Voter>),
}

impl QuorumConfig {
    /// The property line's key and value.
    pub fn property(&self) -> (&'static str, String) {
        match self {
            QuorumConfig::Bootstrap(addrs) => (
                "controller.quorum.bootstrap.servers",
                addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            QuorumConfig::Voters(voters) => (
                "controller.quorum.voters",
                voters
                    .iter()
                    .map(Voter::static_voter)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

/// Which `kafka-storage format` flag a server's storage gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatFlag {
    /// No flag: a broker, or a controller of a static quorum.
    None,
    /// `--initial-controllers`: one of the first voters of a dynamic quorum
    /// (every one formatted with the same list).
    InitialControllers(Vec<Voter>),
    /// `--standalone`: a one-voter dynamic quorum made of this controller.
    Standalone,
    /// `--no-initial-controllers`: a controller that will join an existing
    /// dynamic quorum with `add-controller` (KIP-853's safe procedure).
    NoInitialControllers,
}

impl FormatFlag {
    /// The flag's command-line arguments.
    pub fn args(&self) -> Vec<String> {
        match self {
            FormatFlag::None => Vec::new(),
            FormatFlag::InitialControllers(v) => vec![
                "--initial-controllers".into(),
                v.iter()
                    .map(Voter::initial_controller)
                    .collect::<Vec<_>>()
                    .join(","),
            ],
            FormatFlag::Standalone => vec!["--standalone".into()],
            FormatFlag::NoInitialControllers => vec!["--no-initial-controllers".into()],
        }
    }
}

/// One controller placed on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controller {
    /// The node it runs on.
    pub node: Node,
    /// `node.id`.
    pub id: i32,
    /// Its metadata log directory's id.
    pub directory_id: String,
    /// How it finds the quorum.
    pub quorum: QuorumConfig,
    /// How its storage is formatted.
    pub format: FormatFlag,
}

impl Controller {
    /// Its service directory on the node.
    pub fn service(&self) -> Service {
        Service::new(ServiceKind::KafkaController, &self.node.dir)
    }
    /// Its controller listener.
    pub fn addr(&self, settings: &KraftSettings) -> SocketAddr {
        SocketAddr::new(self.node.address, settings.controller_port)
    }
    /// It as a voter.
    pub fn voter(&self, settings: &KraftSettings) -> Voter {
        Voter {
            id: self.id,
            addr: self.addr(settings),
            directory_id: self.directory_id.clone(),
        }
    }
}

/// The KRaft side of a cluster layout: the cluster id, the controllers and
/// how brokers find them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KraftCluster {
    /// `cluster.id` every server's storage is formatted with.
    pub cluster_id: String,
    /// The controllers' settings.
    pub settings: KraftSettings,
    /// Controllers, in id order (controllers added later come last).
    pub controllers: Vec<Controller>,
    /// How brokers find the quorum.
    pub broker_quorum: QuorumConfig,
}

impl KraftCluster {
    /// Controllers `FIRST_CONTROLLER_ID..` on `nodes`, a fresh cluster id and
    /// directory ids, a quorum of `kind`.
    pub fn plan(nodes: &[Node], settings: KraftSettings) -> Self {
        let voters: Vec<Voter> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Voter {
                id: FIRST_CONTROLLER_ID + i as i32,
                addr: SocketAddr::new(n.address, settings.controller_port),
                directory_id: random_uuid(),
            })
            .collect();
        let quorum = match settings.quorum {
            QuorumKind::Dynamic => QuorumConfig::Bootstrap(voters.iter().map(|v| v.addr).collect()),
            QuorumKind::Static => QuorumConfig::Voters(voters.clone()),
        };
        let format = match settings.quorum {
            QuorumKind::Dynamic => FormatFlag::InitialControllers(voters.clone()),
            QuorumKind::Static => FormatFlag::None,
        };
        let controllers = nodes
            .iter()
            .zip(&voters)
            .map(|(n, v)| Controller {
                node: n.clone(),
                id: v.id,
                directory_id: v.directory_id.clone(),
                quorum: quorum.clone(),
                format: format.clone(),
            })
            .collect();
        Self {
            cluster_id: random_uuid(),
            settings,
            controllers,
            broker_quorum: quorum,
        }
    }

    /// The controller with `node.id` `id`.
    pub fn controller(&self, id: i32) -> Option<&Controller> {
        self.controllers.iter().find(|c| c.id == id)
    }

    /// `--bootstrap-controller` for Kafka's tools: every controller's listener.
    pub fn bootstrap_controllers(&self) -> String {
        self.controllers
            .iter()
            .map(|c| c.addr(&self.settings).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Kafka's text form of a UUID (`Uuid.toString`): URL-safe base64 of the 16
/// bytes without padding, 22 characters.
pub fn kafka_uuid(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A random Kafka UUID (from the OS's randomness). Like Kafka's own
/// `Uuid.randomUuid`, never one starting with `-`, which a command line
/// would take for an option.
pub fn random_uuid() -> String {
    loop {
        let mut bytes = [0u8; 16];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            let _ = f.read_exact(&mut bytes);
        }
        // Fallback mixing if /dev/urandom is unreadable: time and pid.
        if bytes == [0u8; 16] {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            bytes = (t ^ (u128::from(std::process::id()) << 64)).to_be_bytes();
        }
        let s = kafka_uuid(bytes);
        if !s.starts_with('-') {
            return s;
        }
    }
}

fn kv(out: &mut String) -> impl FnMut(&str, &dyn std::fmt::Display) + '_ {
    |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{k}={v}");
    }
}

/// Renders a controller's `controller.properties`.
pub fn render_controller_properties(
    kraft: &KraftSettings,
    kafka_settings: &KafkaSettings,
    controller: &Controller,
    log_dir: &Path,
) -> String {
    let mut out = String::from("# Written by splitbrain (KRaft controller).\n");
    {
        let mut kv = kv(&mut out);
        kv("process.roles", &"controller");
        kv("node.id", &controller.id);
        kv(
            "listeners",
            &format!("CONTROLLER://{}", controller.addr(kraft)),
        );
        kv("controller.listener.names", &"CONTROLLER");
        kv("listener.security.protocol.map", &"CONTROLLER:PLAINTEXT");
        let (k, v) = controller.quorum.property();
        kv(k, &v);
        kv("log.dirs", &log_dir.display());
        kv(
            "controller.quorum.election.timeout.ms",
            &kraft.election_timeout_ms,
        );
        kv(
            "controller.quorum.fetch.timeout.ms",
            &kraft.fetch_timeout_ms,
        );
        kv(
            "broker.session.timeout.ms",
            &kraft.broker_session_timeout_ms,
        );
        kv(
            "broker.heartbeat.interval.ms",
            &kraft.broker_heartbeat_interval_ms,
        );
        // Topic defaults and leader election happen on the controllers.
        kafka::write_shared_properties(kafka_settings, &mut kv);
        for (k, v) in &kraft.extra {
            kv(k, v);
        }
    }
    out
}

/// Renders a KRaft broker's `server.properties`.
pub fn render_broker_properties(
    kraft: &KraftCluster,
    settings: &KafkaSettings,
    broker: &Broker,
    log_dir: &Path,
) -> String {
    let addr = broker.addr(settings);
    let mut out = String::from("# Written by splitbrain (KRaft broker).\n");
    {
        let mut kv = kv(&mut out);
        kv("process.roles", &"broker");
        kv("node.id", &broker.id);
        kv("listeners", &format!("PLAINTEXT://{addr}"));
        kv("advertised.listeners", &format!("PLAINTEXT://{addr}"));
        kv("inter.broker.listener.name", &"PLAINTEXT");
        kv("controller.listener.names", &"CONTROLLER");
        kv(
            "listener.security.protocol.map",
            &"CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        );
        let (k, v) = kraft.broker_quorum.property();
        kv(k, &v);
        kv("log.dirs", &log_dir.display());
        kv(
            "broker.heartbeat.interval.ms",
            &kraft.settings.broker_heartbeat_interval_ms,
        );
        kv(
            "controller.quorum.fetch.timeout.ms",
            &kraft.settings.fetch_timeout_ms,
        );
        // A KRaft broker that has not registered within this time exits
        // (60 s by default); on a loaded 2-core machine the quorum can take
        // longer to form, so it gets the harness's own 90 s.
        kv("initial.broker.registration.timeout.ms", &90_000);
        kafka::write_shared_properties(settings, &mut kv);
    }
    out
}

/// The JVM arguments of `kafka-storage format` for the service's config.
pub fn format_args(
    svc: &Service,
    cluster_id: &str,
    flag: &FormatFlag,
    artifacts: &Artifacts,
) -> Vec<String> {
    let mut args = base_jvm_opts(128);
    args.push(format!(
        "-Dlog4j.configuration=file:{}",
        svc.dir.join("log4j.properties").display()
    ));
    args.push(format!("-Dkafka.logs.dir={}", svc.log_dir().display()));
    args.push("-cp".into());
    args.push(artifacts.kafka_classpath());
    args.push("kafka.tools.StorageTool".into());
    args.push("format".into());
    args.push("--cluster-id".into());
    args.push(cluster_id.into());
    args.push("--config".into());
    args.push(svc.config_path().to_string_lossy().into_owned());
    args.extend(flag.args());
    args
}

/// JVM arguments that run a controller with the service's files.
pub fn controller_java_args(
    svc: &Service,
    settings: &KraftSettings,
    artifacts: &Artifacts,
) -> Vec<String> {
    let mut args = base_jvm_opts(settings.heap_mb);
    args.extend(settings.jvm_opts.iter().cloned());
    args.push(format!(
        "-Dlog4j.configuration=file:{}",
        svc.dir.join("log4j.properties").display()
    ));
    args.push(format!("-Dkafka.logs.dir={}", svc.log_dir().display()));
    args.push("-cp".into());
    args.push(artifacts.kafka_classpath());
    args.push("kafka.Kafka".into());
    args.push(svc.config_path().to_string_lossy().into_owned());
    args
}

/// The shell that writes a server's files and formats its storage unless
/// it is formatted already (`meta.properties` exists): the tool's output
/// goes to `logs/format.log` and is printed. One SSH round trip.
fn install_cmd(svc: &Service, props: String, run: String, format: &[String], java: &str) -> String {
    let write = service::write_files_cmd(&[
        (svc.config_path(), props, 0o644),
        (
            svc.dir.join("log4j.properties"),
            kafka::render_log4j(&svc.log_dir()),
            0o644,
        ),
        (svc.run_script_path(), run, 0o755),
    ]);
    let args: Vec<String> = format.iter().map(|a| service::sh_quote(a)).collect();
    let meta = service::sh_quote(&svc.data_dir().join("meta.properties").to_string_lossy());
    let logs = service::sh_quote(&svc.log_dir().to_string_lossy());
    format!(
        "{write}; mkdir -p {logs}; if [ ! -f {meta} ]; then {java} {args} > {logs}/format.log 2>&1; rc=$?; cat {logs}/format.log; exit $rc; fi",
        java = service::sh_quote(java),
        args = args.join(" "),
    )
}

/// Writes a controller's files and formats its storage (unless formatted).
/// Returns the format tool's output (empty when already formatted).
pub fn install_controller(
    control: &Control,
    kraft: &KraftCluster,
    kafka_settings: &KafkaSettings,
    controller: &Controller,
    artifacts: &Artifacts,
) -> Result<String, ClusterError> {
    let svc = controller.service();
    let props =
        render_controller_properties(&kraft.settings, kafka_settings, controller, &svc.data_dir());
    let run = svc.run_script(
        &artifacts.java,
        &controller_java_args(&svc, &kraft.settings, artifacts),
    );
    let format = format_args(&svc, &kraft.cluster_id, &controller.format, artifacts);
    let cmd = install_cmd(&svc, props, run, &format, &artifacts.java);
    let out = control.exec_ok(&controller.node.name, &cmd, FORMAT_TIMEOUT)?;
    Ok(out.stdout.trim().to_string())
}

/// The `meta.properties` that `kafka-storage format` writes for a broker
/// (version 1: node id, cluster id, directory id). A broker reads nothing
/// else from its formatted directory (the bootstrap metadata the tool also
/// writes is read by controllers only), so splitbrain writes this file
/// itself and spares each broker node a JVM start: on a 2-core machine the
/// format tool's JVMs made KRaft bring-up slower than ZooKeeper mode's.
pub fn render_broker_meta_properties(cluster_id: &str, node_id: i32, directory_id: &str) -> String {
    format!(
        "#\n#Written by splitbrain as kafka-storage format would.\nnode.id={node_id}\ndirectory.id={directory_id}\nversion=1\ncluster.id={cluster_id}\n"
    )
}

/// Writes a KRaft broker's files and its `meta.properties` (unless the
/// directory is formatted already). Returns what was done.
pub fn install_broker(
    control: &Control,
    kraft: &KraftCluster,
    settings: &KafkaSettings,
    broker: &Broker,
    artifacts: &Artifacts,
) -> Result<String, ClusterError> {
    let svc = broker.service();
    let props = render_broker_properties(kraft, settings, broker, &svc.data_dir());
    let run = svc.run_script(
        &artifacts.java,
        &kafka::java_args(&svc, settings, artifacts),
    );
    let write = service::write_files_cmd(&[
        (svc.config_path(), props, 0o644),
        (
            svc.dir.join("log4j.properties"),
            kafka::render_log4j(&svc.log_dir()),
            0o644,
        ),
        (svc.run_script_path(), run, 0o755),
    ]);
    let meta_path = svc.data_dir().join("meta.properties");
    let meta = service::sh_quote(&meta_path.to_string_lossy());
    let data = service::sh_quote(&svc.data_dir().to_string_lossy());
    let body = service::sh_quote(&render_broker_meta_properties(
        &kraft.cluster_id,
        broker.id,
        &random_uuid(),
    ));
    let cmd = format!(
        "{write}; if [ ! -f {meta} ]; then mkdir -p {data} && printf '%s' {body} > {meta} && echo formatted {meta}; fi"
    );
    let out = control.exec_ok(&broker.node.name, &cmd, FORMAT_TIMEOUT)?;
    Ok(out.stdout.trim().to_string())
}

/// How long one install-and-format command may take (a JVM start).
pub const FORMAT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the controllers say about the quorum, each asked alone
/// (DescribeQuorum; only the leader answers with a description), in order.
pub fn describe_each(
    controllers: &[Controller],
    settings: &KraftSettings,
    timeout: Duration,
) -> Vec<(i32, Result<QuorumDescription, crate::probes::ProbeError>)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = controllers
            .iter()
            .map(|c| scope.spawn(move || kafka_client::describe_quorum(c.addr(settings), timeout)))
            .collect();
        handles
            .into_iter()
            .zip(controllers)
            .map(|(h, c)| {
                let answer = h.join().unwrap_or_else(|_| {
                    Err(crate::probes::ProbeError::Panicked {
                        addr: c.addr(settings),
                    })
                });
                (c.id, answer)
            })
            .collect()
    })
}

/// Waits until `controller` answers DescribeQuorum at all (a description
/// or a refusal: its listener is up and its Raft client runs), polling
/// every 200 ms.
pub fn wait_answering(
    controller: &Controller,
    settings: &KraftSettings,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match kafka_client::describe_quorum(
            controller.addr(settings),
            Duration::from_millis(500),
        ) {
            Ok(_) | Err(crate::probes::ProbeError::KafkaServer { .. }) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(ClusterError::NotReady {
                what: format!("controller {} answering", controller.id),
                timeout,
                detail: last,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until a controller answers DescribeQuorum as the leader of a
/// quorum whose voters include every id in `voters`, each of them fetching
/// from it (within the fetch timeout); returns its answer.
pub fn wait_quorum(
    kraft: &KraftCluster,
    voters: &[i32],
    timeout: Duration,
) -> Result<QuorumDescription, ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut seen = Vec::new();
        for (id, answer) in describe_each(
            &kraft.controllers,
            &kraft.settings,
            Duration::from_millis(500),
        ) {
            match answer {
                Ok(q) => {
                    let have: Vec<i32> = q.voters.iter().map(|v| v.replica_id).collect();
                    // Listed is not running: a leader lists every voter of
                    // its set, started or not; a voter counts once it has
                    // fetched within the fetch timeout.
                    let fetching = q.backing(i64::from(kraft.settings.fetch_timeout_ms));
                    if q.leader_id == Some(id)
                        && voters
                            .iter()
                            .all(|v| have.contains(v) && fetching.contains(v))
                    {
                        return Ok(q);
                    }
                    seen.push(format!(
                        "controller {id}: leader {:?} epoch {}, voters {have:?}, fetching {fetching:?}",
                        q.leader_id, q.leader_epoch
                    ));
                }
                Err(e) => seen.push(format!("controller {id}: {e}")),
            }
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::NotReady {
                what: format!("a KRaft quorum leader with voters {voters:?}"),
                timeout,
                detail: seen.join("; "),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The controllers [`crate::db::cluster::rapid_add_controllers`] starts on
/// `new_nodes`: ids after the highest existing one, the cluster's own
/// cluster id (an operator copies it), and each configured with a STATIC
/// voter set listing the old controllers *and* every newcomer
/// (`controller.quorum.voters`), formatted without any quorum flag: the
/// incident's mistake (joiners that count a majority against their own
/// list) carried over to KRaft.
pub fn plan_rapid_add(k: &KraftCluster, new_nodes: &[Node]) -> Vec<Controller> {
    let next = k
        .controllers
        .iter()
        .map(|c| c.id)
        .max()
        .unwrap_or(FIRST_CONTROLLER_ID - 1)
        + 1;
    let newcomers: Vec<Voter> = new_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Voter {
            id: next + i as i32,
            addr: SocketAddr::new(n.address, k.settings.controller_port),
            directory_id: random_uuid(),
        })
        .collect();
    let mut voters: Vec<Voter> = k.controllers.iter().map(|c| c.voter(&k.settings)).collect();
    voters.extend(newcomers.iter().cloned());
    new_nodes
        .iter()
        .zip(&newcomers)
        .map(|(n, v)| Controller {
            node: n.clone(),
            id: v.id,
            directory_id: v.directory_id.clone(),
            quorum: QuorumConfig::Voters(voters.clone()),
            format: FormatFlag::None,
        })
        .collect()
}

/// The controller KIP-853's safe procedure starts on `node`: the next id,
/// found through `controller.quorum.bootstrap.servers` (the current
/// controllers), formatted with `--no-initial-controllers` so that it joins
/// as an observer until `add-controller` makes it a voter.
pub fn plan_safe_add(k: &KraftCluster, node: &Node) -> Controller {
    let id = k
        .controllers
        .iter()
        .map(|c| c.id)
        .max()
        .unwrap_or(FIRST_CONTROLLER_ID - 1)
        + 1;
    Controller {
        node: node.clone(),
        id,
        directory_id: random_uuid(),
        quorum: QuorumConfig::Bootstrap(
            k.controllers.iter().map(|c| c.addr(&k.settings)).collect(),
        ),
        format: FormatFlag::NoInitialControllers,
    }
}

/// What `kafka-metadata-quorum describe --status` printed, parsed: Kafka's
/// own tool's view of the quorum, to confirm splitbrain's probe against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    /// `LeaderId`.
    pub leader_id: i32,
    /// `LeaderEpoch`.
    pub leader_epoch: i32,
    /// `HighWatermark`.
    pub high_watermark: i64,
    /// Ids in `CurrentVoters`.
    pub voters: Vec<i32>,
    /// Ids in `CurrentObservers`.
    pub observers: Vec<i32>,
}

/// The `"id": N` entries of a line of the tool's JSON-ish voter list.
fn ids_in(list: &str) -> Vec<i32> {
    list.split("\"id\":")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// Parses `describe --status` output; `None` if a field is missing.
pub fn parse_quorum_status(text: &str) -> Option<QuorumStatus> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .map(str::trim)
        })
    };
    Some(QuorumStatus {
        leader_id: field("LeaderId")?.parse().ok()?,
        leader_epoch: field("LeaderEpoch")?.parse().ok()?,
        high_watermark: field("HighWatermark")?.parse().ok()?,
        voters: ids_in(field("CurrentVoters")?),
        observers: field("CurrentObservers").map(ids_in).unwrap_or_default(),
    })
}

/// Runs Kafka's `kafka-metadata-quorum` tool
/// (`org.apache.kafka.tools.MetadataQuorumCommand`, from the jars) on
/// `node` against `--bootstrap-controller bootstrap` with `args` (e.g.
/// `describe --status`, `add-controller`). Returns its exit status and its
/// output (stdout then stderr, log4j's start-up warnings dropped): refusals
/// are answers here, not errors.
pub fn quorum_tool(
    control: &Control,
    node: &str,
    artifacts: &Artifacts,
    bootstrap: &str,
    args: &[String],
) -> Result<(i32, String), ClusterError> {
    let mut argv = base_jvm_opts(128);
    argv.push("-cp".into());
    argv.push(artifacts.kafka_classpath());
    argv.push("org.apache.kafka.tools.MetadataQuorumCommand".into());
    argv.push("--bootstrap-controller".into());
    argv.push(bootstrap.into());
    argv.extend(args.iter().cloned());
    let quoted: Vec<String> = argv.iter().map(|a| service::sh_quote(a)).collect();
    let cmd = format!(
        "out=$({} {} 2>&1); rc=$?; printf '%s\\n' \"$out\" | grep -v '^log4j:'; exit $rc",
        service::sh_quote(&artifacts.java),
        quoted.join(" ")
    );
    let out = control.exec(node, &cmd, FORMAT_TIMEOUT)?;
    Ok((out.status, out.stdout.trim().to_string()))
}

/// `describe --status` through [`quorum_tool`], parsed.
pub fn tool_status(
    control: &Control,
    node: &str,
    artifacts: &Artifacts,
    bootstrap: &str,
) -> Result<QuorumStatus, ClusterError> {
    let (status, text) = quorum_tool(
        control,
        node,
        artifacts,
        bootstrap,
        &["describe".into(), "--status".into()],
    )?;
    parse_quorum_status(&text).ok_or_else(|| ClusterError::NotReady {
        what: "kafka-metadata-quorum describe --status".into(),
        timeout: FORMAT_TIMEOUT,
        detail: format!("exit {status}: {text}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8) -> Node {
        Node {
            name: format!("n{i}"),
            address: format!("10.88.7.{}", i + 1).parse().unwrap(),
            host: None,
            port: 22,
            user: "root".into(),
            key_path: "/k".into(),
            known_hosts: "/kh".into(),
            dir: format!("/n/n{i}").into(),
        }
    }

    #[test]
    fn kafka_uuids_are_22_url_safe_characters() {
        assert_eq!(kafka_uuid([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        let mut one = [0u8; 16];
        one[15] = 1;
        // The id the format tool accepted in a manual check (Uuid.ONE_UUID's text).
        assert_eq!(kafka_uuid(one), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(kafka_uuid([0xff; 16]), "_____________________w");
        let a = random_uuid();
        assert_eq!(a.len(), 22);
        assert!(!a.starts_with('-'));
        assert_ne!(a, random_uuid());
    }

    #[test]
    fn dynamic_plan_formats_every_controller_with_the_same_initial_voters() {
        let k = KraftCluster::plan(&[node(1), node(2), node(3)], KraftSettings::default());
        let ids: Vec<i32> = k.controllers.iter().map(|c| c.id).collect();
        assert_eq!(ids, [1001, 1002, 1003]);
        let FormatFlag::InitialControllers(v) = &k.controllers[0].format else {
            panic!("{:?}", k.controllers[0].format)
        };
        assert_eq!(v.len(), 3);
        assert!(k
            .controllers
            .iter()
            .all(|c| c.format == k.controllers[0].format));
        let args = k.controllers[1].format.args();
        assert_eq!(args[0], "--initial-controllers");
        assert!(args[1].starts_with(&format!(
            "1001@10.88.7.2:9093:{},1002@10.88.7.3:9093:",
            k.controllers[0].directory_id
        )));
        assert_eq!(
            k.broker_quorum.property(),
            (
                "controller.quorum.bootstrap.servers",
                "10.88.7.2:9093,10.88.7.3:9093,10.88.7.4:9093".into()
            )
        );
        assert_eq!(
            k.bootstrap_controllers(),
            "10.88.7.2:9093,10.88.7.3:9093,10.88.7.4:9093"
        );
    }

    #[test]
    fn static_plan_lists_voters_and_needs_no_format_flag() {
        let s = KraftSettings {
            quorum: QuorumKind::Static,
            ..KraftSettings::default()
        };
        let k = KraftCluster::plan(&[node(1), node(2)], s);
        assert_eq!(k.controllers[0].format, FormatFlag::None);
        assert_eq!(
            k.controllers[1].quorum.property(),
            (
                "controller.quorum.voters",
                "1001@10.88.7.2:9093,1002@10.88.7.3:9093".into()
            )
        );
        assert_eq!("static".parse::<QuorumKind>(), Ok(QuorumKind::Static));
        assert!("raft".parse::<QuorumKind>().is_err());
    }

    #[test]
    fn controller_and_broker_properties_carry_roles_and_quorum() {
        let k = KraftCluster::plan(&[node(1)], KraftSettings::default());
        let c = render_controller_properties(
            &k.settings,
            &KafkaSettings::default(),
            &k.controllers[0],
            Path::new("/n/n1/kafka-controller/data"),
        );
        for line in [
            "process.roles=controller",
            "node.id=1001",
            "listeners=CONTROLLER://10.88.7.2:9093",
            "controller.listener.names=CONTROLLER",
            "controller.quorum.bootstrap.servers=10.88.7.2:9093",
            "log.dirs=/n/n1/kafka-controller/data",
            "unclean.leader.election.enable=false",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line} in\n{c}");
        }
        let b = Broker {
            node: node(4),
            id: 1,
            zookeeper_connect: Vec::new(),
        };
        let p = render_broker_properties(&k, &KafkaSettings::default(), &b, Path::new("/d"));
        for line in [
            "process.roles=broker",
            "node.id=1",
            "listeners=PLAINTEXT://10.88.7.5:9092",
            "controller.quorum.bootstrap.servers=10.88.7.2:9093",
            "min.insync.replicas=2",
        ] {
            assert!(p.lines().any(|l| l == line), "missing {line} in\n{p}");
        }
        assert!(!p.contains("zookeeper"), "{p}");
    }

    #[test]
    fn rapid_add_lists_old_and_new_as_static_voters_and_safe_add_joins_by_bootstrap() {
        let k = KraftCluster::plan(&[node(1), node(2), node(3)], KraftSettings::default());
        let added = plan_rapid_add(&k, &[node(7), node(8), node(9), node(10)]);
        let ids: Vec<i32> = added.iter().map(|c| c.id).collect();
        assert_eq!(ids, [1004, 1005, 1006, 1007]);
        for c in &added {
            let QuorumConfig::Voters(v) = &c.quorum else {
                panic!("{:?}", c.quorum)
            };
            let listed: Vec<i32> = v.iter().map(|v| v.id).collect();
            assert_eq!(listed, [1001, 1002, 1003, 1004, 1005, 1006, 1007]);
            assert_eq!(c.format, FormatFlag::None);
        }
        // The old controllers are untouched.
        assert!(k
            .controllers
            .iter()
            .all(|c| matches!(c.quorum, QuorumConfig::Bootstrap(_))));
        let safe = plan_safe_add(&k, &node(7));
        assert_eq!(safe.id, 1004);
        assert_eq!(safe.format.args(), ["--no-initial-controllers"]);
        assert_eq!(
            safe.quorum.property().1,
            "10.88.7.2:9093,10.88.7.3:9093,10.88.7.4:9093"
        );
    }

    #[test]
    fn the_quorum_tools_status_parses() {
        // As Kafka 3.9.1's `describe --status` printed it here.
        let text = r#"ClusterId:              Res15itkDcR38IN7uqJ-Cg
LeaderId:               1002
LeaderEpoch:            2
HighWatermark:          26
MaxFollowerLag:         0
MaxFollowerLagTimeMs:   211
CurrentVoters:          [{"id": 1001, "directoryId": "d-fTKa_Yh1H9-1wOMWc3MA", "endpoints": ["CONTROLLER://10.88.203.2:9093"]}, {"id": 1002, "directoryId": "bVD_ww7gsnp2M-Bog-lYgQ", "endpoints": ["CONTROLLER://10.88.203.3:9093"]}, {"id": 1003, "directoryId": "o-DIZbaRM81vXqqNmLyUCw", "endpoints": ["CONTROLLER://10.88.203.4:9093"]}]
CurrentObservers:       [{"id": 1, "directoryId": "VhVkvSfDGAzJZ3x99bg8fw"}, {"id": 2, "directoryId": "iJHRA08F3VKf9VdaJf3aqA"}]"#;
        let s = parse_quorum_status(text).unwrap();
        assert_eq!(s.leader_id, 1002);
        assert_eq!(s.leader_epoch, 2);
        assert_eq!(s.high_watermark, 26);
        assert_eq!(s.voters, [1001, 1002, 1003]);
        assert_eq!(s.observers, [1, 2]);
        assert_eq!(parse_quorum_status("Error: timed out"), None);
    }

    #[test]
    fn broker_meta_properties_match_the_format_tools_keys() {
        let m =
            render_broker_meta_properties("MkU3OEVBNTcwNTJENDM2Qg", 2, "AAAAAAAAAAAAAAAAAAAAAQ");
        for line in [
            "node.id=2",
            "directory.id=AAAAAAAAAAAAAAAAAAAAAQ",
            "version=1",
            "cluster.id=MkU3OEVBNTcwNTJENDM2Qg",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line} in\n{m}");
        }
    }

    #[test]
    fn install_formats_only_an_unformatted_directory() {
        let k = KraftCluster::plan(&[node(1)], KraftSettings::default());
        let c = &k.controllers[0];
        let svc = c.service();
        assert_eq!(svc.dir, Path::new("/n/n1/kafka-controller"));
        let args = format_args(
            &svc,
            &k.cluster_id,
            &c.format,
            &Artifacts::at(Path::new("/c")),
        );
        assert!(args.contains(&"kafka.tools.StorageTool".to_string()));
        assert!(args.contains(&k.cluster_id));
        let cmd = install_cmd(&svc, "p".into(), "r".into(), &args, "java");
        assert!(cmd.contains("if [ ! -f '/n/n1/kafka-controller/data/meta.properties' ]"));
        assert!(cmd.contains("'--initial-controllers'"));
    }
}
