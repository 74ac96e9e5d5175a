//! Starting and healing faults for `splitbrain run`, each recorded in the
//! history as a nemesis event saying what was done to which node.
//!
//! RUNNER-LOCAL STOPGAP: the nemeses crate (issue 5, branch `h-nemesis`) is
//! to provide the faults and their schedule; until it lands this module
//! drives real faults with what exists today — grudges from
//! `splitbrain_nemeses::grudge`, iptables rules via
//! `splitbrain_core::firewall`, signals and membership changes via
//! `splitbrain_environments` — and should shrink to a call into the nemeses
//! crate when it does.

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use splitbrain_core::cluster::ZkMode;
use splitbrain_core::control::{Control, Node};
use splitbrain_core::firewall::{self, Block};
use splitbrain_core::history::{HistoryWriter, OpType};
use splitbrain_environments::cluster::{self, ClusterLayout};
use splitbrain_environments::observe;
use splitbrain_environments::service::Service;
use splitbrain_environments::zookeeper::ZkServer;
use splitbrain_nemeses::grudge::{Grudge, PartitionKind, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Which servers a process fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A ZooKeeper server.
    Zk,
    /// A Kafka broker.
    Kafka,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Zk => "zookeeper",
            Target::Kafka => "kafka",
        }
    }
}

/// One kind of fault of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A network partition of this kind.
    Partition(PartitionKind),
    /// SIGKILL one server; healing restarts it.
    Kill(Target),
    /// SIGSTOP one server; healing sends SIGCONT.
    Pause(Target),
    /// The incident: start new ZooKeeper servers at once, each listing old
    /// and new servers as participants (optionally moving a broker onto
    /// them); healing removes them (and restores the broker).
    RapidAdd,
    /// The documented safe way: dynamic reconfiguration, one at a time.
    SafeAdd,
}

impl Fault {
    /// Parses `partition:<kind>`, `kill:zk|kafka`, `pause:zk|kafka`,
    /// `rapid-add`, `safe-add`.
    pub fn parse(s: &str) -> Result<Fault, String> {
        let target = |t: &str| match t {
            "zk" | "zookeeper" => Ok(Target::Zk),
            "kafka" => Ok(Target::Kafka),
            _ => Err(format!("fault {s:?}: target must be zk or kafka")),
        };
        match s.split_once(':') {
            Some(("partition", kind)) => kind
                .parse::<PartitionKind>()
                .map(Fault::Partition)
                .map_err(|e| format!("fault {s:?}: {e}")),
            Some(("kill", t)) => Ok(Fault::Kill(target(t)?)),
            Some(("pause", t)) => Ok(Fault::Pause(target(t)?)),
            None if s == "rapid-add" => Ok(Fault::RapidAdd),
            None if s == "safe-add" => Ok(Fault::SafeAdd),
            _ => Err(format!(
                "unknown fault {s:?}: use partition:<kind>, kill:zk, kill:kafka, pause:zk, pause:kafka, rapid-add or safe-add"
            )),
        }
    }
}

/// A fault in effect: what healing it must undo.
#[derive(Debug)]
pub enum Active {
    /// Nodes holding drop rules.
    Partition(Vec<String>),
    /// A killed server.
    Killed(String, Service, Target),
    /// A paused server.
    Paused(String, Service, Target),
    /// Added ZooKeeper servers (ids) and whether the broker was moved.
    Added(Vec<u64>, bool),
    /// ZooKeeper servers added by dynamic reconfiguration (ids).
    Reconfigured(Vec<u64>),
}

impl Active {
    /// Short description for progress lines.
    pub fn describe(&self) -> String {
        match self {
            Active::Partition(nodes) => format!("partition ({} nodes)", nodes.len()),
            Active::Killed(n, _, t) => format!("{} killed on {n}", t.name()),
            Active::Paused(n, _, t) => format!("{} paused on {n}", t.name()),
            Active::Added(ids, moved) => format!(
                "{} ZooKeeper servers added{}",
                ids.len(),
                if *moved { ", broker moved" } else { "" }
            ),
            Active::Reconfigured(ids) => {
                format!("{} ZooKeeper servers added by reconfig", ids.len())
            }
        }
    }
}

/// Starts and heals faults on one cluster.
pub struct FaultDriver {
    control: Control,
    layout: Arc<Mutex<ClusterLayout>>,
    /// Nodes running nothing, for newcomers.
    spare: Vec<Node>,
    /// Every node's address by name.
    addresses: BTreeMap<String, IpAddr>,
    writer: HistoryWriter,
    rng: StdRng,
    add_count: usize,
    move_broker: bool,
    ready_timeout: Duration,
    session_timeout: Duration,
    /// Newcomers planned in advance so the moved broker can list them.
    planned: Option<Vec<ZkServer>>,
    /// The moved broker and its original connect string.
    moved: Option<(i32, Vec<SocketAddr>)>,
    log_dir: std::path::PathBuf,
}

/// What [`FaultDriver::new`] needs.
pub struct DriverOptions {
    /// ZooKeeper servers `rapid-add`/`safe-add` start.
    pub add_count: usize,
    /// Whether `rapid-add` moves the last broker.
    pub move_broker: bool,
    /// How long to wait for servers to come back.
    pub ready_timeout: Duration,
    /// Brokers' ZooKeeper session timeout.
    pub session_timeout: Duration,
    /// Where to keep a moved broker's logs before it is restarted (a restart
    /// rewrites them).
    pub log_dir: std::path::PathBuf,
}

impl FaultDriver {
    /// A driver over `layout` (shared with the observer, which must see
    /// added servers); `all_nodes` are every node of the environment.
    pub fn new(
        control: Control,
        layout: Arc<Mutex<ClusterLayout>>,
        all_nodes: &[Node],
        writer: HistoryWriter,
        rng: StdRng,
        opts: DriverOptions,
    ) -> FaultDriver {
        let used: BTreeSet<String> = layout
            .lock()
            .expect("layout lock")
            .nodes()
            .into_iter()
            .map(|n| n.name)
            .collect();
        FaultDriver {
            control,
            spare: all_nodes
                .iter()
                .filter(|n| !used.contains(&n.name))
                .cloned()
                .collect(),
            addresses: all_nodes
                .iter()
                .map(|n| (n.name.clone(), n.address))
                .collect(),
            layout,
            writer,
            rng,
            add_count: opts.add_count,
            move_broker: opts.move_broker,
            ready_timeout: opts.ready_timeout,
            session_timeout: opts.session_timeout,
            planned: None,
            moved: None,
            log_dir: opts.log_dir,
        }
    }

    fn event(&self, f: &str, value: Value) {
        if let Err(e) = self.writer.nemesis(OpType::Info, f, &value) {
            tracing::error!("recording nemesis event {f}: {e}");
        }
    }

    fn layout(&self) -> ClusterLayout {
        self.layout.lock().expect("layout lock").clone()
    }

    /// Before the load: for a `rapid-add` that moves a broker, plan the
    /// newcomers and restart the last broker with a `zookeeper.connect`
    /// listing old and new servers (as the incident's broker had).
    pub fn prepare(&mut self, mix: &[Fault]) -> anyhow::Result<()> {
        if !(mix.contains(&Fault::RapidAdd) && self.move_broker) {
            return Ok(());
        }
        let newcomers = self.newcomer_nodes()?;
        let mut layout = self.layout();
        let planned = cluster::plan_rapid_add(&layout, &newcomers)?;
        let broker = layout
            .kafka
            .last()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no broker to move"))?;
        let mut connect = broker.zookeeper_connect.clone();
        let original = connect.clone();
        connect.extend(planned.iter().map(|s| s.client_addr(&layout.zk_settings)));
        tracing::info!(
            broker = broker.id,
            ?connect,
            "prepare: broker lists old and new ZooKeeper servers"
        );
        cluster::reconfigure_broker(
            &self.control,
            &mut layout,
            broker.id,
            connect.clone(),
            self.ready_timeout,
        )?;
        *self.layout.lock().expect("layout lock") = layout;
        self.event(
            "prepare-broker",
            json!({"broker": broker.id, "node": broker.node.name,
                   "zookeeper_connect": connect.iter().map(ToString::to_string).collect::<Vec<_>>()}),
        );
        self.planned = Some(planned);
        self.moved = Some((broker.id, original));
        Ok(())
    }

    fn newcomer_nodes(&self) -> anyhow::Result<Vec<Node>> {
        if self.spare.len() < self.add_count {
            anyhow::bail!(
                "adding {} ZooKeeper servers needs {} free nodes, the environment has {}: raise env.nodes",
                self.add_count,
                self.add_count,
                self.spare.len()
            );
        }
        Ok(self.spare[..self.add_count].to_vec())
    }

    /// Starts one fault and records it.
    pub fn start(&mut self, fault: Fault) -> anyhow::Result<Active> {
        match fault {
            Fault::Partition(kind) => self.partition(kind),
            Fault::Kill(t) | Fault::Pause(t) => {
                let (node, svc) = self.pick(t);
                let kill = matches!(fault, Fault::Kill(_));
                if kill {
                    svc.kill(&self.control, &node)?;
                    self.event(
                        "kill",
                        json!({"node": node, "service": t.name(), "signal": "KILL"}),
                    );
                    Ok(Active::Killed(node, svc, t))
                } else {
                    svc.pause(&self.control, &node)?;
                    self.event(
                        "pause",
                        json!({"node": node, "service": t.name(), "signal": "STOP"}),
                    );
                    Ok(Active::Paused(node, svc, t))
                }
            }
            Fault::RapidAdd => self.rapid_add(),
            Fault::SafeAdd => {
                let newcomers = self.newcomer_nodes()?;
                let mut layout = self.layout();
                let added =
                    cluster::safe_add(&self.control, &mut layout, &newcomers, self.ready_timeout);
                *self.layout.lock().expect("layout lock") = layout;
                let added = added?;
                let ids: Vec<u64> = added.iter().map(|s| s.id).collect();
                self.event(
                    "safe-add",
                    json!({"new_servers": ids,
                    "nodes": added.iter().map(|s| s.node.name.clone()).collect::<Vec<_>>()}),
                );
                Ok(Active::Reconfigured(ids))
            }
        }
    }

    /// A random server of `t`.
    fn pick(&mut self, t: Target) -> (String, Service) {
        let layout = self.layout();
        let all: Vec<(String, Service)> = match t {
            Target::Zk => layout
                .zookeeper
                .iter()
                .map(|s| (s.node.name.clone(), s.service()))
                .collect(),
            Target::Kafka => layout
                .kafka
                .iter()
                .map(|b| (b.node.name.clone(), b.service()))
                .collect(),
        };
        all[self.rng.random_range(0..all.len())].clone()
    }

    fn partition(&mut self, kind: PartitionKind) -> anyhow::Result<Active> {
        let layout = self.layout();
        let obs = observe::observe(&layout);
        let zk_leader = obs
            .zookeeper
            .iter()
            .find(|z| z.mode == ZkMode::Leader)
            .map(|z| z.node.clone());
        let kafka_controller = obs
            .kafka
            .iter()
            .find_map(|b| b.controller)
            .and_then(|id| layout.broker(id))
            .map(|b| b.node.name.clone());
        let topology = Topology {
            nodes: layout.nodes().into_iter().map(|n| n.name).collect(),
            zookeeper: layout
                .zookeeper
                .iter()
                .map(|s| s.node.name.clone())
                .collect(),
            kafka: layout.kafka.iter().map(|b| b.node.name.clone()).collect(),
            zk_leader,
            kafka_controller,
        };
        let grudge = Grudge::compute(kind, &topology, &mut self.rng)?;
        let drops = grudge.drops();
        let mut nodes = vec![];
        for (node, peers) in &drops {
            let blocks: Vec<Block> = peers
                .iter()
                .filter_map(|p| self.addresses.get(p))
                .map(|a| Block::both(*a))
                .collect();
            self.control.on(node, move |s| {
                firewall::set_blocked(s, &blocks, COMMAND_TIMEOUT)
            })?;
            nodes.push(node.clone());
        }
        self.event(
            "start-partition",
            json!({"kind": kind.name(), "grudge": drops}),
        );
        Ok(Active::Partition(nodes))
    }

    fn rapid_add(&mut self) -> anyhow::Result<Active> {
        let mut layout = self.layout();
        let servers = match self.planned.take() {
            Some(p) => p,
            None => cluster::plan_rapid_add(&layout, &self.newcomer_nodes()?)?,
        };
        let started = cluster::start_added(&self.control, &mut layout, &servers);
        *self.layout.lock().expect("layout lock") = layout.clone();
        started?;
        let ids: Vec<u64> = servers.iter().map(|s| s.id).collect();
        let moved = self.moved.as_ref().map(|(id, _)| *id);
        self.event(
            "rapid-add",
            json!({"new_servers": ids,
                   "nodes": servers.iter().map(|s| s.node.name.clone()).collect::<Vec<_>>(),
                   "moved_broker": moved}),
        );
        if let Some(id) = moved {
            // Cut the broker off from the old servers until its session
            // expires: it then opens a new session with a newcomer.
            let broker = layout
                .broker(id)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("broker {id} vanished from the layout"))?;
            let old: Vec<&ZkServer> = layout
                .zookeeper
                .iter()
                .filter(|s| !ids.contains(&s.id))
                .collect();
            let blocks: Vec<Block> = old.iter().map(|s| Block::both(s.node.address)).collect();
            // Let the newcomers elect their leader first.
            std::thread::sleep(Duration::from_secs(3));
            let cut = |driver: &FaultDriver| {
                let blocks = blocks.clone();
                driver.control.on(&broker.node.name, move |s| {
                    firewall::set_blocked(s, &blocks, COMMAND_TIMEOUT)
                })
            };
            cut(self)?;
            self.event(
                "cut-broker",
                json!({"broker": id, "node": broker.node.name,
                       "from": old.iter().map(|s| s.id).collect::<Vec<_>>()}),
            );
            // The broker keeps trying the servers of its list with its old
            // session; the newcomers refuse it while their last zxid is older
            // than the last zxid it has seen. Writing to the new ensemble until
            // its zxid is newer makes a newcomer accept the reconnect, find the
            // session unknown and tell the broker it expired; the broker then
            // opens a new session with a reachable server — a newcomer, as the
            // old ones stay cut off — re-registers and runs for controller
            // (once the /brokers parents exist there: see bump_zxid).
            let bumped = self.bump_zxid(&layout, &ids);
            let deadline =
                std::time::Instant::now() + self.session_timeout * 4 + Duration::from_secs(10);
            let moved_ok = loop {
                let obs = observe::observe(&self.layout());
                if obs
                    .zookeeper
                    .iter()
                    .any(|z| ids.contains(&z.server_id) && z.controller == Some(id))
                {
                    break true;
                }
                if std::time::Instant::now() >= deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            let attempts = bumped.unwrap_or_else(|e| {
                tracing::warn!("bumping the newcomers' zxid: {e}");
                0
            });
            self.control
                .on(&broker.node.name, |s| firewall::heal(s, COMMAND_TIMEOUT))?;
            self.event(
                "reconnect-broker",
                json!({"broker": id, "node": broker.node.name,
                       "registered_with_newcomers": moved_ok, "znodes_written": attempts}),
            );
        }
        Ok(Active::Added(ids, moved.is_some()))
    }

    /// Writes znodes to the newcomers' ensemble until its zxid is newer than
    /// every old server's. Returns the number of znodes written.
    fn bump_zxid(&self, layout: &ClusterLayout, ids: &[u64]) -> anyhow::Result<usize> {
        use splitbrain_environments::zk_client::ZkSession;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Wait for the newcomers to serve, then compare zxids.
        let (old_zxid, new_zxid, addr) = loop {
            let obs = observe::observe(layout);
            let old = obs
                .zookeeper
                .iter()
                .filter(|z| !ids.contains(&z.server_id))
                .filter_map(|z| z.zxid)
                .max();
            let new = obs
                .zookeeper
                .iter()
                .filter(|z| ids.contains(&z.server_id))
                .filter(|z| matches!(z.mode, ZkMode::Leader | ZkMode::Follower))
                .filter_map(|z| z.zxid.map(|x| (x, z.server_id)))
                .max();
            if let (Some(o), Some((n, sid))) = (old, new) {
                let server = layout
                    .zk_server(sid)
                    .ok_or_else(|| anyhow::anyhow!("server {sid} not in the layout"))?;
                break (o, n, server.client_addr(&layout.zk_settings));
            }
            if std::time::Instant::now() >= deadline {
                anyhow::bail!("the newcomers did not serve within 30 s");
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let mut session =
            ZkSession::connect(addr, Duration::from_secs(10), Duration::from_secs(5))?;
        // The parents a broker's registration needs (it creates only the
        // ephemeral leaf: NONODE otherwise, seen with Kafka 3.9). A host
        // provisioned with Kafka's skeleton, or any client creating them,
        // gives the empty ensemble the same.
        for path in [
            "/brokers",
            "/brokers/ids",
            "/brokers/topics",
            "/brokers/seqid",
        ] {
            session.create(path, b"")?;
        }
        if new_zxid + 4 > old_zxid {
            let _ = session.close();
            return Ok(4);
        }
        if (new_zxid >> 32) < (old_zxid >> 32) {
            anyhow::bail!(
                "the newcomers' epoch {} is older than the old ensemble's {}: writes cannot overtake it",
                new_zxid >> 32,
                old_zxid >> 32
            );
        }
        // One create is one transaction; a margin covers the old ensemble's
        // writes meanwhile.
        let needed = ((old_zxid - new_zxid) as usize) + 200;
        if needed > 200_000 {
            anyhow::bail!("{needed} writes needed to overtake the old zxid: too many");
        }
        let mut session =
            ZkSession::connect(addr, Duration::from_secs(10), Duration::from_secs(5))?;
        let _ = session.create("/splitbrain-bump", b"")?;
        for i in 0..needed {
            session.create(&format!("/splitbrain-bump/{i}"), b"")?;
        }
        let _ = session.close();
        tracing::info!(needed, old_zxid, new_zxid, "newcomers' zxid bumped");
        Ok(needed + 4)
    }

    /// Undoes one fault and records it.
    pub fn heal(&mut self, active: Active) -> anyhow::Result<()> {
        match active {
            Active::Reconfigured(ids) => {
                // The safe way back: `reconfig -remove` first, so the
                // ensemble never counts the leaving servers in its quorum.
                let mut layout = self.layout();
                let via = layout
                    .zookeeper
                    .iter()
                    .find(|s| !ids.contains(&s.id))
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("no original ZooKeeper server left"))?;
                splitbrain_environments::zookeeper::reconfig(
                    &self.control,
                    &via,
                    &layout.zk_settings,
                    &layout.artifacts,
                    &[],
                    &ids,
                )?;
                let removed = cluster::remove_zookeeper(&self.control, &mut layout, &ids);
                *self.layout.lock().expect("layout lock") = layout;
                removed?;
                self.event("remove", json!({"servers": ids, "reconfig": true}));
            }
            Active::Partition(nodes) => {
                for node in &nodes {
                    self.control
                        .on(node, |s| firewall::heal(s, COMMAND_TIMEOUT))?;
                }
                self.event("heal", json!({"healed": "partition", "nodes": nodes}));
            }
            Active::Killed(node, svc, t) => {
                svc.start(&self.control, &node)?;
                self.event("restart", json!({"node": node, "service": t.name()}));
            }
            Active::Paused(node, svc, t) => {
                svc.resume(&self.control, &node)?;
                self.event("resume", json!({"node": node, "service": t.name()}));
            }
            Active::Added(ids, moved) => {
                let mut layout = self.layout();
                let removed = cluster::remove_zookeeper(&self.control, &mut layout, &ids);
                *self.layout.lock().expect("layout lock") = layout.clone();
                removed?;
                self.event("remove", json!({"servers": ids}));
                if moved {
                    if let Some((id, connect)) = self.moved.take() {
                        // Keep what the broker logged while moved.
                        let mut only = layout.clone();
                        only.zookeeper.clear();
                        only.kafka.retain(|b| b.id == id);
                        if let Err(e) = cluster::collect(&self.control, &only, &self.log_dir) {
                            tracing::warn!("collecting the moved broker's logs: {e}");
                        }
                        cluster::reconfigure_broker(
                            &self.control,
                            &mut layout,
                            id,
                            connect.clone(),
                            self.ready_timeout,
                        )?;
                        *self.layout.lock().expect("layout lock") = layout;
                        self.event(
                            "restore-broker",
                            json!({"broker": id,
                                   "zookeeper_connect": connect.iter().map(ToString::to_string).collect::<Vec<_>>()}),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Best effort, at the end or on Ctrl-C: heal `active` if any, then
    /// remove splitbrain's drop rules on every node.
    pub fn heal_all(&mut self, active: Option<Active>) -> Vec<String> {
        let mut problems = vec![];
        if let Some(a) = active {
            if let Err(e) = self.heal(a) {
                problems.push(format!("{e:#}"));
            }
        }
        let nodes: Vec<String> = self.addresses.keys().cloned().collect();
        for node in nodes {
            if let Err(e) = self
                .control
                .on(&node, |s| firewall::heal(s, COMMAND_TIMEOUT))
            {
                problems.push(format!("heal {node}: {e}"));
            }
        }
        self.event("heal-all", json!({"healed": "all", "problems": problems}));
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        assert_eq!(Fault::parse("kill:zk"), Ok(Fault::Kill(Target::Zk)));
        assert_eq!(Fault::parse("pause:kafka"), Ok(Fault::Pause(Target::Kafka)));
        assert_eq!(Fault::parse("rapid-add"), Ok(Fault::RapidAdd));
        assert_eq!(
            Fault::parse("partition:halves"),
            Ok(Fault::Partition(PartitionKind::Halves))
        );
        assert!(Fault::parse("partition:nope").is_err());
        assert!(Fault::parse("kill:nginx").is_err());
        assert!(Fault::parse("explode").is_err());
    }
}
