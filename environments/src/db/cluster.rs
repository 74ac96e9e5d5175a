//! A ZooKeeper ensemble and Kafka brokers on an environment's nodes: which
//! node runs what ([`ClusterLayout`]), bringing it all up and down, topics,
//! log collection, and the incident's rapid addition of ZooKeeper servers.
//!
//! Placement ([`Placement`]): by default ZooKeeper on the first nodes, Kafka
//! on the next ones, never both on one node. Separate nodes cost only an
//! idle sshd each, and they let a partition cut brokers off from ZooKeeper
//! while the brokers still reach each other (the `zk-from-kafka` nemesis),
//! which co-location rules out. [`Placement::Colocated`] puts ZooKeeper
//! server i and broker i on node i (each in its own directory, with its own
//! pid file and ports) for users with fewer machines; a partition of a node
//! then cuts both servers on it. Servers added later (`rapid_add`,
//! `safe_add`, added controllers) always take nodes of their own.

use crate::db::artifacts::Artifacts;
use crate::db::kafka::{self, Broker, KafkaSettings};
use crate::db::kraft::{self, KraftCluster, KraftSettings};
use crate::db::service::{Service, ServiceKind};
use crate::db::zookeeper::{self, ZkMember, ZkRole, ZkServer, ZkSettings};
use crate::db::ClusterError;
use crate::probes::kafka_client::{self, Metadata};
use serde::{Deserialize, Serialize};
use splitbrain_core::control::{Control, ControlError, Node};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which node runs which server, with the settings they were configured
/// with. Saved as JSON next to the environment's state so that later
/// commands (`cluster status`, `cluster down`, nemeses) find the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLayout {
    /// The environment the nodes belong to.
    pub env: String,
    /// The jars and `java`, as the nodes see them.
    pub artifacts: Artifacts,
    /// Settings of every ZooKeeper server.
    pub zk_settings: ZkSettings,
    /// Settings of every broker.
    pub kafka_settings: KafkaSettings,
    /// ZooKeeper servers, in id order (servers added later come last).
    pub zookeeper: Vec<ZkServer>,
    /// Brokers, in id order.
    pub kafka: Vec<Broker>,
    /// KRaft mode: the controllers and how brokers find them; `None` in
    /// ZooKeeper mode (and in layouts written before KRaft mode existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kraft: Option<KraftCluster>,
}

/// Name of the layout file in the environment's state directory.
pub const LAYOUT_FILE: &str = "cluster.json";

/// Where the metadata servers (ZooKeeper, or KRaft controllers) and the
/// brokers go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Metadata servers on the first nodes, brokers on the next ones: no
    /// node runs two servers (the default).
    #[default]
    Separate,
    /// Metadata server i and broker i on node i (`cluster.colocate`): each
    /// server keeps its own directory (`<node dir>/zookeeper`,
    /// `<node dir>/kafka`, `<node dir>/kafka-controller`), pid file and
    /// ports, so kills and pauses still hit one process; a partition of a
    /// node cuts both.
    Colocated,
}

impl Placement {
    /// `Colocated` when `colocate` is set, else `Separate`.
    pub fn from_colocate(colocate: bool) -> Self {
        if colocate {
            Placement::Colocated
        } else {
            Placement::Separate
        }
    }

    /// Nodes that run the initial servers: `metadata + kafka` when
    /// separate, the larger of the two when colocated.
    pub fn nodes_needed(self, metadata: usize, kafka: usize) -> usize {
        match self {
            Placement::Separate => metadata + kafka,
            Placement::Colocated => metadata.max(kafka),
        }
    }

    /// Words for messages.
    fn describe(self, metadata: &str) -> String {
        match self {
            Placement::Separate => format!("{metadata} and Kafka run on separate nodes"),
            Placement::Colocated => format!("{metadata} and Kafka share nodes"),
        }
    }

    /// The nodes of the metadata servers and of the brokers, or why there
    /// are too few.
    fn split<'a>(
        self,
        env: &str,
        nodes: &'a [Node],
        metadata: usize,
        kafka: usize,
        what: &str,
    ) -> Result<(&'a [Node], &'a [Node]), ClusterError> {
        let need = self.nodes_needed(metadata, kafka);
        if nodes.len() < need {
            return Err(ClusterError::Layout(format!(
                "environment '{env}' has {} nodes; {metadata} {what} + {kafka} Kafka need {need} \
                 ({}): recreate it with `splitbrain env up --nodes {need}`",
                nodes.len(),
                self.describe(what),
            )));
        }
        Ok(match self {
            Placement::Separate => (&nodes[..metadata], &nodes[metadata..metadata + kafka]),
            Placement::Colocated => (&nodes[..metadata], &nodes[..kafka]),
        })
    }
}

impl ClusterLayout {
    /// ZooKeeper ids 1..=zk on the first `zk` nodes, broker ids 1..=kafka on
    /// the next `kafka` nodes; every server with default settings (Kafka's
    /// replication capped by the broker count).
    pub fn plan(
        env: &str,
        nodes: &[Node],
        zk: usize,
        kafka: usize,
        artifacts: Artifacts,
    ) -> Result<Self, ClusterError> {
        Self::plan_placed(env, nodes, zk, kafka, Placement::Separate, artifacts)
    }

    /// As [`ClusterLayout::plan`], with the servers placed as `placement`
    /// says: colocated, ZooKeeper id i and broker id i both run on node i.
    pub fn plan_placed(
        env: &str,
        nodes: &[Node],
        zk: usize,
        kafka: usize,
        placement: Placement,
        artifacts: Artifacts,
    ) -> Result<Self, ClusterError> {
        if zk == 0 {
            return Err(ClusterError::Layout(
                "at least one ZooKeeper server is needed (--zk 1 or more)".into(),
            ));
        }
        let (zk_nodes, kafka_nodes) = placement.split(env, nodes, zk, kafka, "ZooKeeper")?;
        let zk_settings = ZkSettings::default();
        let members: Vec<ZkMember> = zk_nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ZkMember {
                id: i as u64 + 1,
                address: n.address,
                role: ZkRole::Participant,
            })
            .collect();
        let zookeeper: Vec<ZkServer> = zk_nodes
            .iter()
            .zip(&members)
            .map(|(n, m)| ZkServer {
                node: n.clone(),
                id: m.id,
                role: m.role,
                config_members: members.clone(),
            })
            .collect();
        let connect: Vec<SocketAddr> = zookeeper
            .iter()
            .map(|s| s.client_addr(&zk_settings))
            .collect();
        let kafka_servers = kafka_nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Broker {
                node: n.clone(),
                id: i as i32 + 1,
                zookeeper_connect: connect.clone(),
            })
            .collect();
        Ok(Self {
            env: env.to_string(),
            artifacts,
            zk_settings,
            kafka_settings: KafkaSettings::for_brokers(kafka),
            zookeeper,
            kafka: kafka_servers,
            kraft: None,
        })
    }

    /// KRaft mode: controllers (ids from [`kraft::FIRST_CONTROLLER_ID`]) on
    /// the first `controllers` nodes, broker ids 1..=kafka on the next
    /// `kafka` nodes, no ZooKeeper; a quorum as `settings` say (dynamic by
    /// default).
    pub fn plan_kraft(
        env: &str,
        nodes: &[Node],
        controllers: usize,
        kafka: usize,
        settings: KraftSettings,
        artifacts: Artifacts,
    ) -> Result<Self, ClusterError> {
        Self::plan_kraft_placed(
            env,
            nodes,
            controllers,
            kafka,
            settings,
            Placement::Separate,
            artifacts,
        )
    }

    /// As [`ClusterLayout::plan_kraft`], with the servers placed as
    /// `placement` says: colocated, controller i (id
    /// [`kraft::FIRST_CONTROLLER_ID`] + i) and broker i + 1 both run on node
    /// i, as two processes (listeners on `controller_port` and `port`; not
    /// KRaft's combined mode, one process with both roles).
    pub fn plan_kraft_placed(
        env: &str,
        nodes: &[Node],
        controllers: usize,
        kafka: usize,
        settings: KraftSettings,
        placement: Placement,
        artifacts: Artifacts,
    ) -> Result<Self, ClusterError> {
        if controllers == 0 || kafka == 0 {
            return Err(ClusterError::Layout(
                "KRaft mode needs at least one controller and one broker (--controllers 1 --kafka 1 or more)".into(),
            ));
        }
        let (controller_nodes, broker_nodes) =
            placement.split(env, nodes, controllers, kafka, "controllers")?;
        let k = KraftCluster::plan(controller_nodes, settings);
        let brokers = broker_nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Broker {
                node: n.clone(),
                id: i as i32 + 1,
                zookeeper_connect: Vec::new(),
            })
            .collect();
        Ok(Self {
            env: env.to_string(),
            artifacts,
            zk_settings: ZkSettings::default(),
            kafka_settings: KafkaSettings::for_brokers(kafka),
            zookeeper: Vec::new(),
            kafka: brokers,
            kraft: Some(k),
        })
    }

    /// Whether this is a KRaft-mode cluster.
    pub fn is_kraft(&self) -> bool {
        self.kraft.is_some()
    }

    /// Client addresses of every ZooKeeper server.
    pub fn zk_addrs(&self) -> Vec<SocketAddr> {
        self.zookeeper
            .iter()
            .map(|s| s.client_addr(&self.zk_settings))
            .collect()
    }

    /// `bootstrap.servers` for Kafka clients.
    pub fn bootstrap_servers(&self) -> String {
        self.kafka
            .iter()
            .map(|b| b.addr(&self.kafka_settings).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ZooKeeper server with `myid` `id`.
    pub fn zk_server(&self, id: u64) -> Option<&ZkServer> {
        self.zookeeper.iter().find(|s| s.id == id)
    }

    /// The broker with `broker.id` `id`.
    pub fn broker(&self, id: i32) -> Option<&Broker> {
        self.kafka.iter().find(|b| b.id == id)
    }

    /// Every node running a server, each once, in layout order.
    pub fn nodes(&self) -> Vec<Node> {
        let mut out: Vec<Node> = Vec::new();
        let all = self
            .zookeeper
            .iter()
            .map(|s| &s.node)
            .chain(self.controllers().iter().map(|c| &c.node))
            .chain(self.kafka.iter().map(|b| &b.node));
        for n in all {
            if !out.iter().any(|o| o.name == n.name) {
                out.push(n.clone());
            }
        }
        out
    }

    /// Nodes running more than one server (colocated layouts), each once,
    /// in layout order.
    pub fn shared_nodes(&self) -> Vec<Node> {
        let services = self.services();
        self.nodes()
            .into_iter()
            .filter(|n| services.iter().filter(|(name, _)| *name == n.name).count() > 1)
            .collect()
    }

    /// Nodes of `env_nodes` that run no server of this layout.
    pub fn free_nodes(&self, env_nodes: &[Node]) -> Vec<Node> {
        let used = self.nodes();
        env_nodes
            .iter()
            .filter(|n| !used.iter().any(|u| u.name == n.name))
            .cloned()
            .collect()
    }

    /// The KRaft controllers (none in ZooKeeper mode).
    pub fn controllers(&self) -> &[kraft::Controller] {
        self.kraft.as_ref().map_or(&[], |k| &k.controllers)
    }

    /// Every (node, service) pair of the layout.
    pub fn services(&self) -> Vec<(String, Service)> {
        self.zookeeper
            .iter()
            .map(|s| (s.node.name.clone(), s.service()))
            .chain(
                self.controllers()
                    .iter()
                    .map(|c| (c.node.name.clone(), c.service())),
            )
            .chain(
                self.kafka
                    .iter()
                    .map(|b| (b.node.name.clone(), b.service())),
            )
            .collect()
    }

    /// Writes the layout as JSON to `path` (atomically: temp file, rename).
    pub fn save(&self, path: &Path) -> Result<(), ClusterError> {
        let state_err = |source| ClusterError::State {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|source| ClusterError::BadLayout {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(state_err)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(state_err)?;
        std::fs::rename(&tmp, path).map_err(state_err)
    }

    /// Reads a layout written by [`ClusterLayout::save`].
    pub fn load(path: &Path) -> Result<Self, ClusterError> {
        let text = std::fs::read(path).map_err(|source| ClusterError::NoLayout {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| ClusterError::BadLayout {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// How long `up` waits for ZooKeeper to serve and brokers to register.
/// Generous: other builds and tests may share the machine's two cores.
pub const UP_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `f` for every item concurrently (each on its own thread), returning
/// results in order.
fn concurrently<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.iter().map(|i| scope.spawn(|| f(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}

fn first_error<T>(results: Vec<Result<T, ClusterError>>) -> Result<Vec<T>, ClusterError> {
    results.into_iter().collect()
}

/// Writes every server's configuration to its node (in KRaft mode also
/// formats every server's storage: [`install_kraft`]).
pub fn install(control: &Control, layout: &ClusterLayout) -> Result<(), ClusterError> {
    if let Some(k) = &layout.kraft {
        return install_kraft(control, layout, k);
    }
    // All installs at once (two servers sharing a node write to their own
    // directories; that node's commands take turns on its one session).
    let (zk, kafka) = std::thread::scope(|scope| {
        let zk = scope.spawn(|| {
            first_error(concurrently(&layout.zookeeper, |s| {
                zookeeper::install(control, s, &layout.zk_settings, &layout.artifacts)
            }))
        });
        let kafka = first_error(concurrently(&layout.kafka, |b| {
            kafka::install(control, b, &layout.kafka_settings, &layout.artifacts)
        }));
        (zk.join().expect("install thread panicked"), kafka)
    });
    zk?;
    kafka?;
    Ok(())
}

/// KRaft mode: writes every controller's and broker's files and formats
/// their storage, all nodes at once.
pub fn install_kraft(
    control: &Control,
    layout: &ClusterLayout,
    k: &KraftCluster,
) -> Result<(), ClusterError> {
    let (controllers, brokers) = std::thread::scope(|scope| {
        let controllers = scope.spawn(|| {
            first_error(concurrently(&k.controllers, |c| {
                kraft::install_controller(control, k, &layout.kafka_settings, c, &layout.artifacts)
            }))
        });
        let brokers = first_error(concurrently(&layout.kafka, |b| {
            kraft::install_broker(control, k, &layout.kafka_settings, b, &layout.artifacts)
        }));
        (
            controllers.join().expect("install thread panicked"),
            brokers,
        )
    });
    controllers?;
    brokers?;
    Ok(())
}

/// KRaft mode: starts every controller and broker at once, then waits until
/// one controller leads a quorum of all the planned voters and every broker
/// answers metadata requests listing every broker (registered, unfenced).
pub fn start_kraft(
    control: &Control,
    layout: &ClusterLayout,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let k = layout
        .kraft
        .as_ref()
        .ok_or_else(|| ClusterError::Layout("not a KRaft-mode layout".into()))?;
    let services = layout.services();
    first_error(concurrently(&services, |(node, svc)| {
        svc.start(control, node).map_err(ClusterError::from)
    }))?;
    wait_kraft(layout, k, timeout)
}

/// KRaft mode: [`install_kraft`] and [`start_kraft`] as one pipeline per
/// node: each server starts as soon as its own files are written and its
/// storage formatted, so the brokers' JVMs start while the controllers'
/// format tool runs (no barrier between the two steps: on a 2-core machine
/// the barrier cost seconds). Then waits as [`start_kraft`] does.
pub fn install_and_start_kraft(
    control: &Control,
    layout: &ClusterLayout,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let k = layout
        .kraft
        .as_ref()
        .ok_or_else(|| ClusterError::Layout("not a KRaft-mode layout".into()))?;
    let (controllers, brokers) = std::thread::scope(|scope| {
        let controllers = scope.spawn(|| {
            first_error(concurrently(&k.controllers, |c| {
                kraft::install_controller(
                    control,
                    k,
                    &layout.kafka_settings,
                    c,
                    &layout.artifacts,
                )?;
                c.service().start(control, &c.node.name)?;
                Ok(())
            }))
        });
        let brokers = first_error(concurrently(&layout.kafka, |b| {
            kraft::install_broker(control, k, &layout.kafka_settings, b, &layout.artifacts)?;
            b.service().start(control, &b.node.name)?;
            Ok(())
        }));
        (
            controllers.join().expect("install thread panicked"),
            brokers,
        )
    });
    controllers?;
    brokers?;
    wait_kraft(layout, k, timeout)
}

/// Waits until one controller leads a quorum of all of `k`'s controllers
/// and every broker answers metadata requests listing every broker.
fn wait_kraft(
    layout: &ClusterLayout,
    k: &KraftCluster,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    let voters: Vec<i32> = k.controllers.iter().map(|c| c.id).collect();
    kraft::wait_quorum(k, &voters, timeout)?;
    kafka::wait_answering(
        &layout.kafka,
        &layout.kafka_settings,
        deadline.saturating_duration_since(Instant::now()),
    )
}

/// Starts the given ZooKeeper servers at once and waits until they serve.
pub fn start_zookeeper(
    control: &Control,
    layout: &ClusterLayout,
    servers: &[ZkServer],
    timeout: Duration,
) -> Result<(), ClusterError> {
    first_error(concurrently(servers, |s| {
        s.service()
            .start(control, &s.node.name)
            .map_err(ClusterError::from)
    }))?;
    zookeeper::wait_serving(servers, &layout.zk_settings, timeout)
}

/// Starts every broker at once and waits until all are registered in
/// `/brokers/ids` (read from the first ZooKeeper server) and each answers
/// metadata requests naming a controller and every broker.
pub fn start_kafka(
    control: &Control,
    layout: &ClusterLayout,
    timeout: Duration,
) -> Result<(), ClusterError> {
    if layout.kafka.is_empty() {
        return Ok(());
    }
    first_error(concurrently(&layout.kafka, |b| {
        b.service()
            .start(control, &b.node.name)
            .map_err(ClusterError::from)
    }))?;
    let ids: Vec<i32> = layout.kafka.iter().map(|b| b.id).collect();
    let zk = layout
        .zk_addrs()
        .first()
        .copied()
        .ok_or_else(|| ClusterError::Layout("no ZooKeeper server in the layout".into()))?;
    let deadline = Instant::now() + timeout;
    kafka::wait_registered(zk, &ids, timeout)?;
    kafka::wait_answering(
        &layout.kafka,
        &layout.kafka_settings,
        deadline.saturating_duration_since(Instant::now()),
    )
}

/// Installs and starts everything: ZooKeeper first (all at once), then the
/// brokers (all at once). On failure, servers already started keep running:
/// use [`ClusterGuard`] (or [`stop_all`]) to clean up.
pub fn up(
    control: &Control,
    layout: &ClusterLayout,
    timeout: Duration,
) -> Result<(), ClusterError> {
    layout.artifacts.check_where_used(control)?;
    if layout.is_kraft() {
        return install_and_start_kraft(control, layout, timeout);
    }
    install(control, layout)?;
    start_zookeeper(control, layout, &layout.zookeeper, timeout)?;
    start_kafka(control, layout, timeout)
}

/// Stops every server of the layout, brokers first. `graceful`: SIGTERM and
/// up to 10 s each (controlled shutdown); otherwise SIGKILL. Returns the
/// errors of the servers that could not be stopped (empty when all stopped).
pub fn stop_all(control: &Control, layout: &ClusterLayout, graceful: bool) -> Vec<ControlError> {
    let run = |services: Vec<(String, Service)>| -> Vec<ControlError> {
        concurrently(&services, |(node, svc)| {
            if graceful {
                svc.stop(control, node)
            } else {
                svc.kill(control, node)
            }
        })
        .into_iter()
        .filter_map(Result::err)
        .collect()
    };
    let (kafka, zk): (Vec<_>, Vec<_>) = layout
        .services()
        .into_iter()
        .partition(|(_, s)| s.kind == ServiceKind::Kafka);
    let mut errors = run(kafka);
    errors.extend(run(zk));
    errors
}

/// Removes every server's data and logs (servers must be stopped).
pub fn wipe_all(control: &Control, layout: &ClusterLayout) -> Result<(), ClusterError> {
    first_error(concurrently(&layout.services(), |(node, svc)| {
        svc.wipe(control, node).map_err(ClusterError::from)
    }))?;
    Ok(())
}

/// Stops (SIGKILL) every server of a layout when dropped, unless
/// [`ClusterGuard::disarm`]ed: JVMs must not outlive a failed test or an
/// aborted `cluster up`.
pub struct ClusterGuard {
    control: Control,
    layout: ClusterLayout,
    armed: bool,
}

impl ClusterGuard {
    /// Guards `layout`'s servers on `control`'s nodes.
    pub fn new(control: Control, layout: ClusterLayout) -> Self {
        Self {
            control,
            layout,
            armed: true,
        }
    }
    /// The guarded layout (update it with [`ClusterGuard::layout_mut`] when
    /// servers are added, so they are stopped too).
    pub fn layout(&self) -> &ClusterLayout {
        &self.layout
    }
    /// The guarded layout, mutable.
    pub fn layout_mut(&mut self) -> &mut ClusterLayout {
        &mut self.layout
    }
    /// The control handle.
    pub fn control(&self) -> &Control {
        &self.control
    }
    /// Leaves the servers running when dropped.
    pub fn disarm(mut self) -> ClusterLayout {
        self.armed = false;
        self.layout.clone()
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if self.armed {
            for e in stop_all(&self.control, &self.layout, false) {
                tracing::warn!("cleanup: could not stop a server: {e}");
            }
        }
    }
}

/// The metadata of `topics` (all if `None`) as the first broker that
/// answers sees it.
pub fn metadata(
    layout: &ClusterLayout,
    topics: Option<&[&str]>,
    timeout: Duration,
) -> Result<Metadata, ClusterError> {
    let mut last = None;
    for b in &layout.kafka {
        match kafka_client::metadata(b.addr(&layout.kafka_settings), topics, timeout) {
            Ok(m) => return Ok(m),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map(ClusterError::from)
        .unwrap_or_else(|| ClusterError::Layout("no broker in the layout".into())))
}

/// Creates `topic` with `partitions` partitions and replication factor
/// `replication` through the Admin API (librdkafka, from the control node),
/// then waits until every partition has a leader. An existing topic with
/// that name is an error.
pub fn create_topic(
    layout: &ClusterLayout,
    topic: &str,
    partitions: i32,
    replication: i32,
    timeout: Duration,
) -> Result<(), ClusterError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", layout.bootstrap_servers())
        .set("socket.timeout.ms", "10000")
        .create()
        .map_err(|source| ClusterError::Admin {
            action: "creating the admin client".into(),
            source,
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClusterError::AdminRuntime)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let results = runtime
        .block_on(admin.create_topics([&new], &opts))
        .map_err(|source| ClusterError::Admin {
            action: format!("create topic {topic}"),
            source,
        })?;
    for r in results {
        if let Err((name, code)) = r {
            return Err(ClusterError::TopicNotCreated {
                topic: name,
                code,
                replication,
            });
        }
    }
    wait_for_leaders(layout, topic, partitions, timeout)
}

/// Waits until every running broker that answers names a leader for each of
/// the `partitions` partitions of `topic`, polling every 100 ms.
pub fn wait_for_leaders(
    layout: &ClusterLayout,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut missing = Vec::new();
        let mut answered = 0;
        for b in &layout.kafka {
            let Ok(m) = kafka_client::metadata(
                b.addr(&layout.kafka_settings),
                Some(&[topic]),
                Duration::from_millis(500),
            ) else {
                continue;
            };
            answered += 1;
            for p in 0..partitions {
                if m.leader(topic, p).is_none() {
                    missing.push(format!("broker {} sees no leader for {topic}-{p}", b.id));
                }
            }
        }
        if answered > 0 && missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if answered == 0 {
                missing.push("no broker answered".into());
            }
            return Err(ClusterError::NotReady {
                what: format!("a leader for every partition of {topic}"),
                timeout,
                detail: missing.join("; "),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Copies every server's configuration and logs into
/// `<run_dir>/<node>/<zookeeper|kafka>/`. Returns the local files written.
/// A server whose files cannot be fetched is skipped with a warning: a
/// crashed node must not cost the logs of the others.
pub fn collect(
    control: &Control,
    layout: &ClusterLayout,
    run_dir: &Path,
) -> Result<Vec<PathBuf>, ClusterError> {
    let results = concurrently(&layout.services(), |(node, svc)| {
        collect_service(control, node, svc, run_dir)
    });
    let mut files = Vec::new();
    for r in results {
        match r {
            Ok(f) => files.extend(f),
            Err(e) => tracing::warn!("collect: {e}"),
        }
    }
    Ok(files)
}

fn collect_service(
    control: &Control,
    node: &str,
    svc: &Service,
    run_dir: &Path,
) -> Result<Vec<PathBuf>, ClusterError> {
    let dir = svc.dir.clone();
    let local_dir = run_dir.join(node).join(svc.kind.name());
    std::fs::create_dir_all(&local_dir).map_err(|source| ClusterError::State {
        path: local_dir.clone(),
        source,
    })?;
    let files = control.on(node, move |s| {
        // Configs, run script, and every file of the log dir.
        let list = s.exec_ok(
            &format!(
                "cd {} 2>/dev/null && for f in *.cfg *.properties *.xml run.sh data/myid logs/*; do [ -f \"$f\" ] && echo \"$f\"; done; true",
                crate::db::service::sh_quote(&dir.to_string_lossy())
            ),
            crate::db::service::COMMAND_TIMEOUT,
        )?;
        let mut out = Vec::new();
        for rel in list.stdout.lines().filter(|l| !l.is_empty()) {
            let local = local_dir.join(rel.replace('/', "_"));
            s.download(&dir.join(rel), &local)?;
            out.push(local);
        }
        Ok(out)
    })?;
    Ok(files)
}

/// Name (in each broker's log directory) of the dump of `topic`'s segments
/// written by [`dump_segments`].
pub fn segments_file(topic: &str) -> String {
    format!("segments-{topic}.txt")
}

/// Writes, on every broker, Kafka's own dump of every segment of `topic`
/// (`kafka.tools.DumpLogSegments --deep-iteration --print-data-log`: each
/// record with its offset, producer id and epoch, whether it is
/// transactional, and the control records, `COMMIT` or `ABORT`) into its
/// log directory as [`segments_file`], so that [`collect`] brings it home.
/// Evidence for a transactional anomaly: what each replica holds. Bounded
/// by `timeout` per broker; brokers whose dump failed are returned with
/// the error.
pub fn dump_segments(
    control: &Control,
    layout: &ClusterLayout,
    topic: &str,
    timeout: Duration,
) -> Vec<(String, ControlError)> {
    let q = crate::db::service::sh_quote;
    let results = concurrently(&layout.kafka, |b| {
        let svc = b.service();
        let cmd = format!(
            "cd {data} 2>/dev/null && files=$(ls -d {topic}-*/*.log 2>/dev/null | paste -sd, -) \
             && [ -n \"$files\" ] && {java} -Xmx128m -XX:TieredStopAtLevel=1 -cp {cp} \
             kafka.tools.DumpLogSegments --deep-iteration --print-data-log --files \"$files\" \
             > {out} 2>&1; true",
            data = q(&svc.data_dir().to_string_lossy()),
            topic = q(topic),
            java = q(&layout.artifacts.java),
            cp = q(&layout.artifacts.kafka_classpath()),
            out = q(&svc.log_dir().join(segments_file(topic)).to_string_lossy()),
        );
        control
            .exec(&b.node.name, &cmd, timeout)
            .err()
            .map(|e| (b.node.name.clone(), e))
    });
    results.into_iter().flatten().collect()
}

/// The servers [`rapid_add`] would start on `new_nodes`, without starting
/// anything: ids follow the highest existing id, and every newcomer's config
/// lists the layout's participants *and* all newcomers as participants.
/// Lets a caller know the newcomers' addresses in advance (e.g. to give a
/// broker a `zookeeper.connect` that already lists them).
pub fn plan_rapid_add(
    layout: &ClusterLayout,
    new_nodes: &[Node],
) -> Result<Vec<ZkServer>, ClusterError> {
    let used = layout.nodes();
    if let Some(n) = new_nodes
        .iter()
        .find(|n| used.iter().any(|u| u.name == n.name))
    {
        return Err(ClusterError::Layout(format!(
            "node {} already runs a server; adding ZooKeeper servers needs free nodes",
            n.name
        )));
    }
    let next_id = layout.zookeeper.iter().map(|s| s.id).max().unwrap_or(0) + 1;
    let mut members: Vec<ZkMember> = layout
        .zookeeper
        .iter()
        .filter(|s| s.role == ZkRole::Participant)
        .map(ZkServer::member)
        .collect();
    let newcomers: Vec<ZkMember> = new_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| ZkMember {
            id: next_id + i as u64,
            address: n.address,
            role: ZkRole::Participant,
        })
        .collect();
    members.extend(newcomers.iter().cloned());
    Ok(new_nodes
        .iter()
        .zip(&newcomers)
        .map(|(n, m)| ZkServer {
            node: n.clone(),
            id: m.id,
            role: ZkRole::Participant,
            config_members: members.clone(),
        })
        .collect())
}

/// Installs and starts `servers` all at once (no waiting), after appending
/// them to `layout` (so a [`ClusterGuard`] over it stops them even if
/// starting fails half-way). The running servers' configs are not touched.
pub fn start_added(
    control: &Control,
    layout: &mut ClusterLayout,
    servers: &[ZkServer],
) -> Result<(), ClusterError> {
    layout.zookeeper.extend(servers.iter().cloned());
    let lay: &ClusterLayout = layout;
    first_error(concurrently(servers, |s| {
        zookeeper::install(control, s, &lay.zk_settings, &lay.artifacts)
    }))?;
    first_error(concurrently(servers, |s| {
        s.service()
            .start(control, &s.node.name)
            .map_err(ClusterError::from)
    }))?;
    Ok(())
}

/// The incident's mistake, on purpose: starts one new ZooKeeper server on
/// each of `new_nodes`, all at once, each configured with the old servers
/// *and* all newcomers as participants, without reconfiguring the running
/// ensemble ([`plan_rapid_add`] then [`start_added`]). Returns the new
/// servers (also appended to `layout`); does not wait for them to serve.
///
/// With 3 old servers and 4 newcomers, the newcomers are a majority of their
/// own 7-server list, so they elect a leader of their own over an empty tree
/// while the old ensemble keeps its leader: two leaders at once.
pub fn rapid_add(
    control: &Control,
    layout: &mut ClusterLayout,
    new_nodes: &[Node],
) -> Result<Vec<ZkServer>, ClusterError> {
    let newcomers = plan_rapid_add(layout, new_nodes)?;
    start_added(control, layout, &newcomers)?;
    Ok(newcomers)
}

/// The documented safe way to grow an ensemble (ZooKeeper's dynamic
/// reconfiguration), for comparison with [`rapid_add`]: one node at a time,
/// start a server whose config lists the current members plus itself as a
/// participant, wait until it serves (it syncs with the existing leader),
/// then `reconfig -add` it through the first server. Needs a cluster
/// started with [`ZkSettings::with_reconfig`]. Returns the new servers (also
/// appended to `layout`, whose servers' `config_members` become the new
/// membership).
pub fn safe_add(
    control: &Control,
    layout: &mut ClusterLayout,
    new_nodes: &[Node],
    timeout: Duration,
) -> Result<Vec<ZkServer>, ClusterError> {
    if !layout.zk_settings.reconfig_enabled {
        return Err(ClusterError::Layout(
            "safe_add needs dynamic reconfiguration: start the cluster with ZkSettings::with_reconfig()".into(),
        ));
    }
    let mut added = Vec::new();
    for node in new_nodes {
        let mut planned = plan_rapid_add(layout, std::slice::from_ref(node))?;
        let mut server = planned.remove(0);
        // Current members (as the layout last recorded them) plus itself.
        let mut members: Vec<ZkMember> = layout
            .zookeeper
            .first()
            .map(|s| s.config_members.clone())
            .unwrap_or_default();
        members.push(server.member());
        server.config_members = members.clone();
        start_added(control, layout, std::slice::from_ref(&server))?;
        zookeeper::wait_serving(std::slice::from_ref(&server), &layout.zk_settings, timeout)?;
        let via = layout.zookeeper[0].clone();
        zookeeper::reconfig(
            control,
            &via,
            &layout.zk_settings,
            &layout.artifacts,
            &[server.member()],
            &[],
        )?;
        for s in &mut layout.zookeeper {
            s.config_members = members.clone();
        }
        added.push(server);
    }
    Ok(added)
}

/// Gives broker `id` a new `zookeeper.connect` and restarts it (clean stop,
/// start, wait until registered as seen from `connect`'s first server and
/// answering). The incident's broker had a connect string listing old and
/// new servers; a running broker whose session expires reconnects to any of
/// them.
pub fn reconfigure_broker(
    control: &Control,
    layout: &mut ClusterLayout,
    id: i32,
    connect: Vec<SocketAddr>,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let pos = layout
        .kafka
        .iter()
        .position(|b| b.id == id)
        .ok_or_else(|| ClusterError::Layout(format!("no broker {id} in the layout")))?;
    let first = *connect
        .first()
        .ok_or_else(|| ClusterError::Layout("empty zookeeper.connect".into()))?;
    layout.kafka[pos].zookeeper_connect = connect;
    let broker = layout.kafka[pos].clone();
    let svc = broker.service();
    svc.stop(control, &broker.node.name)?;
    kafka::install(control, &broker, &layout.kafka_settings, &layout.artifacts)?;
    svc.start(control, &broker.node.name)?;
    let deadline = Instant::now() + timeout;
    kafka::wait_registered(first, &[id], timeout)?;
    kafka::wait_answering(
        std::slice::from_ref(&broker),
        &layout.kafka_settings,
        deadline.saturating_duration_since(Instant::now()),
    )
}

/// Stops (SIGKILL), wipes and forgets the ZooKeeper servers with the given
/// ids: the way back from [`rapid_add`].
pub fn remove_zookeeper(
    control: &Control,
    layout: &mut ClusterLayout,
    ids: &[u64],
) -> Result<(), ClusterError> {
    let gone: Vec<ZkServer> = layout
        .zookeeper
        .iter()
        .filter(|s| ids.contains(&s.id))
        .cloned()
        .collect();
    first_error(concurrently(&gone, |s| {
        let svc = s.service();
        svc.kill(control, &s.node.name)?;
        svc.wipe(control, &s.node.name)?;
        Ok::<_, ClusterError>(())
    }))?;
    layout.zookeeper.retain(|s| !ids.contains(&s.id));
    Ok(())
}

/// KRaft's analogue of [`rapid_add`], the incident's mistake on purpose:
/// starts one new controller on each of `new_nodes`, all at once, each
/// configured with a static voter set of the old controllers *and* all
/// newcomers ([`kraft::plan_rapid_add`]), without telling the running
/// quorum. Returns the newcomers (also appended to the layout's
/// controllers, so a [`ClusterGuard`] stops them) and, per newcomer, what
/// formatting its storage printed. Does not wait for them.
pub fn rapid_add_controllers(
    control: &Control,
    layout: &mut ClusterLayout,
    new_nodes: &[Node],
) -> Result<(Vec<kraft::Controller>, Vec<String>), ClusterError> {
    let used = layout.nodes();
    if let Some(n) = new_nodes
        .iter()
        .find(|n| used.iter().any(|u| u.name == n.name))
    {
        return Err(ClusterError::Layout(format!(
            "node {} already runs a server; adding controllers needs free nodes",
            n.name
        )));
    }
    let k = layout.kraft.as_mut().ok_or_else(|| {
        ClusterError::Layout("adding controllers needs a KRaft-mode cluster".into())
    })?;
    let newcomers = kraft::plan_rapid_add(k, new_nodes);
    k.controllers.extend(newcomers.iter().cloned());
    let k: &KraftCluster = k;
    let formatted = first_error(concurrently(&newcomers, |c| {
        kraft::install_controller(control, k, &layout.kafka_settings, c, &layout.artifacts)
    }))?;
    first_error(concurrently(&newcomers, |c| {
        c.service()
            .start(control, &c.node.name)
            .map_err(ClusterError::from)
    }))?;
    Ok((newcomers, formatted))
}

/// What one step of [`safe_add_controllers`] saw.
#[derive(Clone, Debug)]
pub struct SafeAddStep {
    /// The controller added.
    pub id: i32,
    /// What formatting its storage printed.
    pub formatted: String,
    /// `add-controller`'s exit status and output.
    pub add_controller: (i32, String),
    /// The voters after the step, as the leader described them.
    pub voters: Vec<i32>,
}

/// KIP-853's documented procedure, for comparison with
/// [`rapid_add_controllers`]: one node at a time, format a controller with
/// `--no-initial-controllers`, start it (it finds the quorum through the
/// bootstrap servers and fetches as an observer), wait until it has caught
/// up to the leader's high watermark, then run `kafka-metadata-quorum
/// add-controller` on its node with its own configuration, and wait until
/// the leader lists it as a voter. Needs a dynamic quorum.
pub fn safe_add_controllers(
    control: &Control,
    layout: &mut ClusterLayout,
    new_nodes: &[Node],
    timeout: Duration,
) -> Result<Vec<SafeAddStep>, ClusterError> {
    let mut steps = Vec::new();
    for node in new_nodes {
        let k = layout.kraft.as_mut().ok_or_else(|| {
            ClusterError::Layout("adding controllers needs a KRaft-mode cluster".into())
        })?;
        if k.settings.quorum != kraft::QuorumKind::Dynamic {
            return Err(ClusterError::Layout(
                "add-controller needs a dynamic quorum (cluster.quorum = \"dynamic\")".into(),
            ));
        }
        let c = kraft::plan_safe_add(k, node);
        let bootstrap = k.bootstrap_controllers();
        k.controllers.push(c.clone());
        let k = layout.kraft.clone().expect("checked above");
        let formatted =
            kraft::install_controller(control, &k, &layout.kafka_settings, &c, &layout.artifacts)?;
        c.service().start(control, &c.node.name)?;
        // Caught up: the leader lists it as an observer at the high watermark.
        let deadline = Instant::now() + timeout;
        let old: Vec<kraft::Controller> = k
            .controllers
            .iter()
            .filter(|x| x.id != c.id)
            .cloned()
            .collect();
        loop {
            let caught_up = kraft::describe_each(&old, &k.settings, Duration::from_millis(500))
                .into_iter()
                .filter_map(|(_, a)| a.ok())
                .any(|q| {
                    q.observers
                        .iter()
                        .chain(&q.voters)
                        .any(|r| r.replica_id == c.id && r.log_end_offset >= q.high_watermark)
                });
            if caught_up {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NotReady {
                    what: format!("controller {} caught up with the quorum", c.id),
                    timeout,
                    detail: "not listed at the high watermark".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let add_controller = kraft::quorum_tool(
            control,
            &c.node.name,
            &layout.artifacts,
            &bootstrap,
            &[
                "--command-config".into(),
                c.service().config_path().to_string_lossy().into_owned(),
                "add-controller".into(),
            ],
        )?;
        let mut want: Vec<i32> = old.iter().map(|x| x.id).collect();
        want.push(c.id);
        let q = kraft::wait_quorum(&k, &want, timeout)?;
        steps.push(SafeAddStep {
            id: c.id,
            formatted,
            add_controller,
            voters: q.voters.iter().map(|v| v.replica_id).collect(),
        });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<Node> {
        (1..=n)
            .map(|i| Node {
                name: format!("n{i}"),
                address: format!("10.88.9.{}", i + 1).parse().unwrap(),
                host: None,
                port: 22,
                user: "root".into(),
                key_path: "/k".into(),
                known_hosts: "/kh".into(),
                dir: format!("/e/n{i}").into(),
            })
            .collect()
    }

    #[test]
    fn plan_puts_zookeeper_first_and_kafka_next() {
        let l = ClusterLayout::plan("t", &nodes(7), 3, 3, Artifacts::at(Path::new("/a"))).unwrap();
        let zk: Vec<_> = l
            .zookeeper
            .iter()
            .map(|s| (s.node.name.as_str(), s.id))
            .collect();
        assert_eq!(zk, [("n1", 1), ("n2", 2), ("n3", 3)]);
        let k: Vec<_> = l
            .kafka
            .iter()
            .map(|b| (b.node.name.as_str(), b.id))
            .collect();
        assert_eq!(k, [("n4", 1), ("n5", 2), ("n6", 3)]);
        assert_eq!(l.kafka[0].zookeeper_connect.len(), 3);
        assert_eq!(l.zookeeper[2].config_members.len(), 3);
        assert_eq!(
            l.bootstrap_servers(),
            "10.88.9.5:9092,10.88.9.6:9092,10.88.9.7:9092"
        );
        assert_eq!(l.free_nodes(&nodes(7)).len(), 1);
        assert_eq!(l.services().len(), 6);
    }

    #[test]
    fn plan_refuses_too_few_nodes_and_says_what_to_do() {
        let err = ClusterLayout::plan("t", &nodes(5), 3, 3, Artifacts::at(Path::new("/a")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--nodes 6"), "{err}");
        assert!(ClusterLayout::plan("t", &nodes(5), 0, 1, Artifacts::at(Path::new("/a"))).is_err());
    }

    #[test]
    fn one_broker_gets_replication_one() {
        let l = ClusterLayout::plan("t", &nodes(2), 1, 1, Artifacts::at(Path::new("/a"))).unwrap();
        assert_eq!(l.kafka_settings.default_replication_factor, 1);
    }

    #[test]
    fn rapid_add_plan_lists_old_and_new_as_participants() {
        let all = nodes(7);
        let l = ClusterLayout::plan("t", &all[..3], 3, 0, Artifacts::at(Path::new("/a"))).unwrap();
        let added = plan_rapid_add(&l, &all[3..]).unwrap();
        let ids: Vec<u64> = added.iter().map(|s| s.id).collect();
        assert_eq!(ids, [4, 5, 6, 7]);
        for s in &added {
            let listed: Vec<u64> = s.config_members.iter().map(|m| m.id).collect();
            assert_eq!(listed, [1, 2, 3, 4, 5, 6, 7]);
            assert!(s
                .config_members
                .iter()
                .all(|m| m.role == ZkRole::Participant));
        }
        // The old servers' own configs are untouched by planning.
        assert!(l.zookeeper.iter().all(|s| s.config_members.len() == 3));
        // A node already running a server cannot take a newcomer.
        assert!(plan_rapid_add(&l, &all[2..4]).is_err());
    }

    #[test]
    fn colocated_plan_puts_server_i_and_broker_i_on_node_i() {
        let all = nodes(5);
        let l = ClusterLayout::plan_placed(
            "t",
            &all,
            3,
            3,
            Placement::Colocated,
            Artifacts::at(Path::new("/a")),
        )
        .unwrap();
        let zk: Vec<_> = l
            .zookeeper
            .iter()
            .map(|s| (s.node.name.as_str(), s.id))
            .collect();
        assert_eq!(zk, [("n1", 1), ("n2", 2), ("n3", 3)]);
        let k: Vec<_> = l
            .kafka
            .iter()
            .map(|b| (b.node.name.as_str(), b.id))
            .collect();
        assert_eq!(k, [("n1", 1), ("n2", 2), ("n3", 3)]);
        let names = |ns: Vec<Node>| ns.into_iter().map(|n| n.name).collect::<Vec<_>>();
        assert_eq!(names(l.nodes()), ["n1", "n2", "n3"]);
        assert_eq!(names(l.shared_nodes()), ["n1", "n2", "n3"]);
        assert_eq!(names(l.free_nodes(&all)), ["n4", "n5"]);
        assert_eq!(
            l.bootstrap_servers(),
            "10.88.9.2:9092,10.88.9.3:9092,10.88.9.4:9092"
        );
        // Both servers of a node: own directory, config, data, logs, pid
        // file and ports, so a kill or pause of one cannot hit the other.
        let zk_svc = l.zookeeper[0].service();
        let kafka_svc = l.kafka[0].service();
        assert_ne!(zk_svc.dir, kafka_svc.dir);
        assert_ne!(zk_svc.config_path(), kafka_svc.config_path());
        assert_ne!(zk_svc.data_dir(), kafka_svc.data_dir());
        assert_ne!(zk_svc.log_dir(), kafka_svc.log_dir());
        assert_ne!(zk_svc.pid_path(), kafka_svc.pid_path());
        // Each service's process marker (its config path) does not match
        // the other's command line.
        let zk_cfg = zk_svc.config_path().to_string_lossy().into_owned();
        let kafka_cfg = kafka_svc.config_path().to_string_lossy().into_owned();
        assert!(!kafka_cfg.contains(&zk_cfg) && !zk_cfg.contains(&kafka_cfg));
        let zs = &l.zk_settings;
        let ports = [
            zs.client_port,
            zs.quorum_port,
            zs.election_port,
            l.kafka_settings.port,
        ];
        let mut distinct = ports.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert_eq!(l.services().len(), 6);
        // The incident's newcomers still need nodes of their own.
        assert!(plan_rapid_add(&l, &all[2..4]).is_err());
        let added = plan_rapid_add(&l, &all[3..]).unwrap();
        let on: Vec<_> = added.iter().map(|s| s.node.name.as_str()).collect();
        assert_eq!(on, ["n4", "n5"]);
    }

    #[test]
    fn colocated_plan_needs_the_larger_count_and_says_how_many() {
        let a = || Artifacts::at(Path::new("/a"));
        assert_eq!(Placement::Colocated.nodes_needed(3, 3), 3);
        assert_eq!(Placement::Colocated.nodes_needed(3, 5), 5);
        assert_eq!(Placement::Separate.nodes_needed(3, 3), 6);
        // More brokers than ZooKeeper servers: the extra brokers alone.
        let l =
            ClusterLayout::plan_placed("t", &nodes(5), 3, 5, Placement::Colocated, a()).unwrap();
        assert_eq!(l.nodes().len(), 5);
        assert_eq!(l.shared_nodes().len(), 3);
        let err = ClusterLayout::plan_placed("t", &nodes(2), 3, 3, Placement::Colocated, a())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--nodes 3") && err.contains("share nodes"),
            "{err}"
        );
        // Separate placement is what `plan` does.
        assert_eq!(
            ClusterLayout::plan_placed("t", &nodes(6), 3, 3, Placement::Separate, a()).unwrap(),
            ClusterLayout::plan("t", &nodes(6), 3, 3, a()).unwrap()
        );
        assert!(ClusterLayout::plan("t", &nodes(6), 3, 3, a())
            .unwrap()
            .shared_nodes()
            .is_empty());
    }

    #[test]
    fn colocated_kraft_plan_puts_controller_and_broker_side_by_side() {
        let l = ClusterLayout::plan_kraft_placed(
            "t",
            &nodes(3),
            3,
            3,
            KraftSettings::default(),
            Placement::Colocated,
            Artifacts::at(Path::new("/a")),
        )
        .unwrap();
        let on = |ns: Vec<&str>| ns.join(",");
        assert_eq!(
            on(l.controllers()
                .iter()
                .map(|c| c.node.name.as_str())
                .collect()),
            "n1,n2,n3"
        );
        assert_eq!(
            on(l.kafka.iter().map(|b| b.node.name.as_str()).collect()),
            "n1,n2,n3"
        );
        let c = l.controllers()[0].service();
        let b = l.kafka[0].service();
        assert_ne!(c.dir, b.dir);
        assert_ne!(c.pid_path(), b.pid_path());
        let k = l.kraft.as_ref().unwrap();
        assert_ne!(k.settings.controller_port, l.kafka_settings.port);
        assert!(l.controllers().iter().all(|c| c.id != l.kafka[0].id));
        assert!(ClusterLayout::plan_kraft_placed(
            "t",
            &nodes(2),
            3,
            3,
            KraftSettings::default(),
            Placement::Colocated,
            Artifacts::at(Path::new("/a")),
        )
        .is_err());
    }

    #[test]
    fn layout_round_trips_through_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let l = ClusterLayout::plan("t", &nodes(4), 3, 1, Artifacts::at(Path::new("/a"))).unwrap();
        let path = tmp.path().join("sub").join(LAYOUT_FILE);
        l.save(&path).unwrap();
        assert_eq!(ClusterLayout::load(&path).unwrap(), l);
        let err = ClusterLayout::load(&tmp.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster up"), "{err}");
    }
}
