//! The nemesis: starts faults, remembers how to undo each, undoes them, and
//! records every step in the history as `process: "nemesis"` events saying
//! exactly what was done to which node (see `docs/nemeses.md`).

use crate::grudge::{Grudge, GrudgeError, PartitionKind, Topology};
use crate::partition::{Cuts, LayerId, Partitioner, Probe};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splitbrain_core::control::{Control, ControlError};
use splitbrain_core::db::{
    ClusterControl, DbError, JoinProcedure, ProcessState, Server, ServerKind,
};
use splitbrain_core::history::{HistoryError, HistoryWriter, OpType};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The persistent znodes a Kafka broker creates when it starts
/// (`KafkaZkClient.createTopLevelPaths`), before its cluster-id check. A
/// running broker whose session expired re-registers under `/brokers/ids`
/// but does not create it: in an empty ensemble that fails with `NONODE`.
pub const KAFKA_TOP_LEVEL_PATHS: &[&str] = &[
    // First: the broker may reconnect as soon as the zxid passes its own.
    "/brokers/ids",
    "/consumers",
    "/admin/delete_topics",
    "/brokers/topics",
    "/brokers/seqid",
    "/config/changes",
    "/config/topics",
    "/config/clients",
    "/config/users",
    "/config/brokers",
    "/config/ips",
    "/isr_change_notification",
    "/latest_producer_id_block",
    "/log_dir_event_notification",
];

/// Most checks of one verification (see [`NemesisOptions::verify_timeout`]).
const MAX_CHECKS: u32 = 50;
/// Pause between two checks of one verification.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// Most probe rounds of one partition verification.
const PROBE_ROUNDS: u32 = 3;

/// The layer that cuts `node` off from the nodes of `servers`, itself
/// excepted: a node is never cut from itself. With ZooKeeper and Kafka
/// colocated, a moved broker's own node runs an old ZooKeeper server; cut
/// off from the rest of the old ensemble, that server loses its quorum and
/// stops serving, so the broker's session can still only move to the new
/// servers.
fn cut_node_from(node: &str, servers: &[Server]) -> Cuts {
    let mut cuts = Cuts::new();
    cuts.insert(
        node.to_string(),
        servers
            .iter()
            .map(|s| s.node.clone())
            .filter(|n| n != node)
            .collect::<BTreeSet<_>>(),
    );
    cuts
}

/// Every `(node, peer)` a layer of cuts drops: the node cannot reach the peer.
fn pairs_of(cuts: &Cuts) -> Vec<(String, String)> {
    cuts.iter()
        .flat_map(|(a, peers)| peers.iter().map(move |b| (a.clone(), b.clone())))
        .collect()
}

/// Which servers a process fault hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One server, chosen at random.
    One,
    /// A random minority (fewer than half, at least one).
    Minority,
    /// The ZooKeeper leader or the Kafka controller.
    Primary,
    /// Every server of the kind.
    All,
    /// These ids.
    Ids(Vec<i64>),
}

/// A fault the nemesis can start (and later undo).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// A network partition of the cluster's nodes.
    Partition {
        /// Its shape.
        kind: PartitionKind,
    },
    /// SIGKILL; undone by starting the servers again.
    Kill {
        /// ZooKeeper or Kafka.
        service: ServerKind,
        /// Which ones.
        target: Target,
    },
    /// SIGSTOP; undone by SIGCONT.
    Pause {
        /// ZooKeeper or Kafka.
        service: ServerKind,
        /// Which ones.
        target: Target,
    },
    /// New ZooKeeper servers join (the incident's way or the safe way),
    /// optionally with one broker moved onto them; undone by `remove`.
    AddZookeeper {
        /// How they join.
        procedure: JoinProcedure,
        /// How many (taken from the free nodes).
        count: usize,
        /// The broker to move onto the new servers, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        move_broker: Option<i64>,
    },
    /// KRaft mode: new controllers join (the incident's mistake carried
    /// over: all at once with a static voter set of old and new; or
    /// KIP-853's `add-controller`, one at a time); undone by
    /// `remove-controllers`.
    AddControllers {
        /// How they join.
        procedure: JoinProcedure,
        /// How many (taken from the free nodes).
        count: usize,
    },
}

impl Fault {
    /// The history `f` of the fault's start.
    pub fn start_f(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "start-partition",
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::AddZookeeper {
                procedure: JoinProcedure::Rapid,
                ..
            } => "rapid-add",
            Fault::AddZookeeper {
                procedure: JoinProcedure::Safe,
                ..
            } => "safe-add",
            Fault::AddControllers {
                procedure: JoinProcedure::Rapid,
                ..
            } => "rapid-add-controllers",
            Fault::AddControllers {
                procedure: JoinProcedure::Safe,
                ..
            } => "safe-add-controllers",
        }
    }
}

/// Why a fault could not be started or undone.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// A cluster operation failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Running a command on a node failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The partition could not be computed.
    #[error(transparent)]
    Grudge(#[from] GrudgeError),
    /// The history could not be written.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// No server of the kind the fault hits.
    #[error("the cluster runs no {kind} server; pick a fault for a service it runs")]
    NoServer {
        /// The kind asked for.
        kind: ServerKind,
    },
    /// The fault targets the ZooKeeper leader or the Kafka controller, and
    /// none is known now.
    #[error("no {} right now; wait until the cluster has one", match kind { ServerKind::Zookeeper => "ZooKeeper leader", ServerKind::Kafka => "Kafka controller", ServerKind::Controller => "KRaft quorum leader" })]
    NoPrimary {
        /// Whose primary.
        kind: ServerKind,
    },
    /// The fault names server ids the cluster does not have.
    #[error("not every one of {kind} ids {ids:?} exists; list the servers with `splitbrain cluster status`")]
    UnknownIds {
        /// The kind asked for.
        kind: ServerKind,
        /// The ids asked for.
        ids: Vec<i64>,
    },
    /// A membership fault needs more free nodes than the environment has.
    #[error("{fault} of {count} server(s) needs as many free nodes; the environment has {} ({free:?}): create it with more nodes", free.len())]
    TooFewFreeNodes {
        /// `rapid-add` or `safe-add`.
        fault: &'static str,
        /// Servers to add.
        count: usize,
        /// The free nodes there are.
        free: Vec<String>,
    },
    /// The fault (or its undo) was carried out but its effect could not be
    /// shown: the nemesis event's `verified` holds what was seen.
    #[error("{what}: not verified ({seen}); the run cannot count as a test of this fault: look at the servers' logs and the nemesis event's `verified`")]
    NotVerified {
        /// What was done (`kill zookeeper 2 on n2`, `partition halves`, …).
        what: String,
        /// What the verification saw instead (JSON).
        seen: String,
    },
    /// Undoing faults left something behind.
    #[error("heal-all incomplete: {}; remove what is left with `splitbrain env down`", .0.join("; "))]
    HealIncomplete(Vec<String>),
}

/// The targets a replayed fault must hit, instead of drawing them: what a
/// recorded start event says it hit (see `docs/running.md`, replay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "pin", rename_all = "kebab-case")]
pub enum Pin {
    /// A kill or pause hits exactly these server ids.
    Servers {
        /// The ids, in the order they were hit.
        ids: Vec<i64>,
    },
    /// A partition cuts exactly these links (node -> peers it cannot reach).
    Cuts {
        /// The cuts, as the start event's `grudge` records them.
        cuts: Cuts,
    },
}

/// Identifies a started fault, for [`Nemesis::stop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FaultId(pub u64);

/// What must be done to undo one started fault.
#[derive(Debug)]
enum Undo {
    Partition {
        layer: LayerId,
        kind: PartitionKind,
        cuts: Cuts,
    },
    Restart(Vec<Server>),
    Resume(Vec<Server>),
    Membership {
        added: Vec<i64>,
        cut: Option<LayerId>,
        broker: Option<(i64, Vec<i64>)>,
    },
    Controllers(Vec<i64>),
}

/// Timing knobs.
#[derive(Clone, Debug)]
pub struct NemesisOptions {
    /// How long a start, a restart or an added server may take to serve.
    pub start_timeout: Duration,
    /// How long a moved broker may take to register on the new servers
    /// after its old session expired.
    pub move_timeout: Duration,
    /// Margin added to the broker's session timeout while it is cut off
    /// from the old servers.
    pub expiry_margin: Duration,
    /// How long a kill, pause, resume, restart or join may take to show
    /// (polled every 200 ms, at most 50 times).
    pub verify_timeout: Duration,
    /// TCP port the partition probes connect to (anything answering or
    /// refusing proves packets flow; sshd's port answers on every node).
    pub probe_port: u16,
    /// Pairs probed per partition start or heal: at most this many cut
    /// and this many kept.
    pub probe_sample: usize,
}

impl Default for NemesisOptions {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(90),
            move_timeout: Duration::from_secs(60),
            expiry_margin: Duration::from_secs(2),
            verify_timeout: Duration::from_secs(10),
            probe_port: 22,
            probe_sample: 4,
        }
    }
}

/// Starts, undoes and records faults on one cluster.
pub struct Nemesis<'a> {
    db: &'a dyn ClusterControl,
    partitioner: Partitioner,
    history: Option<HistoryWriter>,
    rng: StdRng,
    options: NemesisOptions,
    active: BTreeMap<FaultId, Undo>,
    next: u64,
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T], n: usize) -> Vec<T> {
    let mut v = items.to_vec();
    v.shuffle(rng);
    v.truncate(n);
    v
}

impl<'a> Nemesis<'a> {
    /// A nemesis over `db`, cutting the network of `control`'s nodes,
    /// recording into `history` (if given), drawing random choices from
    /// `seed`.
    pub fn new(
        db: &'a dyn ClusterControl,
        control: Control,
        history: Option<HistoryWriter>,
        seed: u64,
    ) -> Self {
        Self {
            db,
            partitioner: Partitioner::new(control),
            history,
            rng: StdRng::seed_from_u64(seed),
            options: NemesisOptions::default(),
            active: BTreeMap::new(),
            next: 0,
        }
    }

    /// Replaces the timing knobs.
    pub fn with_options(mut self, options: NemesisOptions) -> Self {
        self.options = options;
        self
    }

    /// Faults started and not yet undone.
    pub fn active(&self) -> Vec<FaultId> {
        self.active.keys().copied().collect()
    }

    fn record(&self, f: &str, value: &Value) -> Result<(), NemesisError> {
        tracing::info!(f, %value, "nemesis");
        if let Some(h) = &self.history {
            h.nemesis(OpType::Info, f, value)?;
        }
        Ok(())
    }

    /// The topology grudges are computed over: every node running a server,
    /// with the current ZooKeeper leader and Kafka controller.
    pub fn topology(&self) -> Result<Topology, NemesisError> {
        let servers = self.db.servers();
        let mut t = Topology::default();
        for s in &servers {
            if !t.nodes.contains(&s.node) {
                t.nodes.push(s.node.clone());
            }
            match s.kind {
                ServerKind::Zookeeper => t.zookeeper.push(s.node.clone()),
                ServerKind::Kafka => t.kafka.push(s.node.clone()),
                // A KRaft controller's node takes part in every partition.
                ServerKind::Controller => {}
            }
        }
        let node_of = |kind: ServerKind, id: i64| {
            servers
                .iter()
                .find(|s| s.kind == kind && s.id == id)
                .map(|s| s.node.clone())
        };
        t.kraft_leader = self
            .db
            .kraft_leader()?
            .and_then(|id| node_of(ServerKind::Controller, id));
        t.zk_leader = self
            .db
            .zk_leaders()?
            .first()
            .and_then(|&id| node_of(ServerKind::Zookeeper, id));
        t.kafka_controller = self
            .db
            .kafka_controller()?
            .and_then(|id| node_of(ServerKind::Kafka, id));
        Ok(t)
    }

    /// The servers `pin` names (in its order), or else drawn by `target`.
    fn pinned_targets(
        &mut self,
        service: ServerKind,
        target: &Target,
        pin: Option<&Pin>,
    ) -> Result<Vec<Server>, NemesisError> {
        match pin {
            Some(Pin::Servers { ids }) => {
                let chosen = self.targets(service, &Target::Ids(ids.clone()))?;
                // In the recorded order, so events come in the same order.
                Ok(ids
                    .iter()
                    .filter_map(|i| chosen.iter().find(|s| s.id == *i).cloned())
                    .collect())
            }
            _ => self.targets(service, target),
        }
    }

    fn targets(
        &mut self,
        service: ServerKind,
        target: &Target,
    ) -> Result<Vec<Server>, NemesisError> {
        let all: Vec<Server> = self
            .db
            .servers()
            .into_iter()
            .filter(|s| s.kind == service)
            .collect();
        if all.is_empty() {
            return Err(NemesisError::NoServer { kind: service });
        }
        Ok(match target {
            Target::One => pick(&mut self.rng, &all, 1),
            Target::Minority => {
                let n = (all.len().saturating_sub(1) / 2).max(1);
                pick(&mut self.rng, &all, n)
            }
            Target::All => all,
            Target::Primary => {
                let id = match service {
                    ServerKind::Zookeeper => self.db.zk_leaders()?.first().copied(),
                    ServerKind::Kafka => self.db.kafka_controller()?,
                    ServerKind::Controller => self.db.kraft_leader()?,
                };
                let id = id.ok_or(NemesisError::NoPrimary { kind: service })?;
                all.into_iter().filter(|s| s.id == id).collect()
            }
            Target::Ids(ids) => {
                let chosen: Vec<Server> = all.into_iter().filter(|s| ids.contains(&s.id)).collect();
                if chosen.len() != ids.len() {
                    return Err(NemesisError::UnknownIds {
                        kind: service,
                        ids: ids.clone(),
                    });
                }
                chosen
            }
        })
    }

    /// Starts `fault`, records it, and returns its id for [`Nemesis::stop`].
    pub fn start(&mut self, fault: &Fault) -> Result<FaultId, NemesisError> {
        self.start_pinned(fault, None)
    }

    /// Starts `fault` on the targets `pin` names, when given (a replay),
    /// instead of drawing them; its events then carry `"pinned": true`. A
    /// pin that does not fit the fault (cuts for a kill) is ignored; a
    /// membership fault takes no pin (its nodes are the free ones, in order).
    pub fn start_pinned(
        &mut self,
        fault: &Fault,
        pin: Option<&Pin>,
    ) -> Result<FaultId, NemesisError> {
        let id = FaultId(self.next);
        self.next += 1;
        let undo = match fault {
            Fault::Partition { kind } => {
                let topology = self.topology()?;
                let cuts = match pin {
                    Some(Pin::Cuts { cuts }) => cuts.clone(),
                    _ => Partitioner::cuts_of(&Grudge::compute(*kind, &topology, &mut self.rng)?),
                };
                let began = Instant::now();
                let layer = self.partitioner.add(cuts.clone());
                let mut value = json!({"kind": kind, "grudge": cuts, "fault-id": id.0,
                        "zk-leader": topology.zk_leader,
                        "kafka-controller": topology.kafka_controller});
                if let Some(leader) = &topology.kraft_leader {
                    value["kraft-leader"] = json!(leader);
                }
                if pin.is_some() {
                    value["pinned"] = json!(true);
                }
                let layer = match layer {
                    Ok(layer) => layer,
                    Err(e) => {
                        // Recorded even if applying failed half-way: heal lifts it.
                        self.record("start-partition", &value)?;
                        return Err(e.into());
                    }
                };
                let undo = Undo::Partition {
                    layer,
                    kind: *kind,
                    cuts: cuts.clone(),
                };
                // From here on its stop lifts it, whatever the proof says.
                self.active.insert(id, undo);
                let cut: Vec<(String, String)> = pairs_of(&cuts);
                let kept: Vec<(String, String)> = topology
                    .nodes
                    .iter()
                    .flat_map(|a| topology.nodes.iter().map(move |b| (a.clone(), b.clone())))
                    .filter(|(a, b)| a != b && self.partitioner.should_reach(a, b))
                    .collect();
                let proof = self.verify_reach(cut, kept);
                let (ok, seen) = match proof {
                    Ok(p) => p,
                    Err(e) => {
                        self.record("start-partition", &value)?;
                        return Err(e);
                    }
                };
                value["verified"] = seen.clone();
                // Recorded after the probes: the report counts the fault
                // from when its rules went in (docs/results.md).
                value["elapsed-ms"] = json!(began.elapsed().as_millis() as u64);
                self.record("start-partition", &value)?;
                if !ok {
                    return Err(NemesisError::NotVerified {
                        what: format!("partition {}", kind.name()),
                        seen: seen.to_string(),
                    });
                }
                // Its undo is registered already.
                return Ok(id);
            }
            Fault::Kill { service, target } => {
                let victims = self.pinned_targets(*service, target, pin)?;
                let mut done = Vec::new();
                for s in &victims {
                    let pid = self.db.kill(s);
                    let pid = match pid {
                        Ok(pid) => pid,
                        Err(e) => {
                            self.active.insert(id, Undo::Restart(done));
                            return Err(e.into());
                        }
                    };
                    done.push(s.clone());
                    let (ok, seen) = match pid {
                        Some(pid) => self.verify_gone(s, pid)?,
                        None => (false, json!({"ok": false, "process": "none was running"})),
                    };
                    let mut value = json!({"node": s.node, "service": s.kind, "id": s.id,
                                "signal": "KILL", "pid": pid, "fault-id": id.0,
                                "verified": seen});
                    if pin.is_some() {
                        value["pinned"] = json!(true);
                    }
                    self.record("kill", &value)?;
                    if !ok {
                        self.active.insert(id, Undo::Restart(done));
                        return Err(NemesisError::NotVerified {
                            what: format!("kill {s}"),
                            seen: seen.to_string(),
                        });
                    }
                }
                Undo::Restart(done)
            }
            Fault::Pause { service, target } => {
                let victims = self.pinned_targets(*service, target, pin)?;
                let mut done = Vec::new();
                for s in &victims {
                    match self.db.pause(s) {
                        Ok(pid) => {
                            done.push(s.clone());
                            let (ok, seen) = match pid {
                                Some(_) => self.verify_state(s, "stopped (T)", |p| {
                                    p.is_some_and(|p| p.is_stopped())
                                })?,
                                None => {
                                    (false, json!({"ok": false, "process": "none was running"}))
                                }
                            };
                            let mut value = json!({"node": s.node, "service": s.kind,
                                    "id": s.id, "signal": "STOP", "pid": pid,
                                    "fault-id": id.0, "verified": seen});
                            if pin.is_some() {
                                value["pinned"] = json!(true);
                            }
                            self.record("pause", &value)?;
                            if !ok {
                                self.active.insert(id, Undo::Resume(done));
                                return Err(NemesisError::NotVerified {
                                    what: format!("pause {s}"),
                                    seen: seen.to_string(),
                                });
                            }
                        }
                        Err(e) => {
                            self.active.insert(id, Undo::Resume(done));
                            return Err(e.into());
                        }
                    }
                }
                Undo::Resume(done)
            }
            Fault::AddZookeeper {
                procedure,
                count,
                move_broker,
            } => {
                // Registers its undo itself, step by step.
                self.add_zookeeper(id, *procedure, *count, *move_broker)?;
                return Ok(id);
            }
            Fault::AddControllers { procedure, count } => {
                self.add_controllers(id, *procedure, *count)?;
                return Ok(id);
            }
        };
        self.active.insert(id, undo);
        Ok(id)
    }

    /// The first `count` free nodes for membership fault `f`, or why there
    /// are not enough.
    fn free_nodes_for(&self, f: &'static str, count: usize) -> Result<Vec<String>, NemesisError> {
        let mut free = self.db.free_nodes();
        if free.len() < count || count == 0 {
            return Err(NemesisError::TooFewFreeNodes {
                fault: f,
                count,
                free,
            });
        }
        free.truncate(count);
        Ok(free)
    }

    fn add_controllers(
        &mut self,
        id: FaultId,
        procedure: JoinProcedure,
        count: usize,
    ) -> Result<(), NemesisError> {
        let started = Instant::now();
        let f = match procedure {
            JoinProcedure::Rapid => "rapid-add-controllers",
            JoinProcedure::Safe => "safe-add-controllers",
        };
        let nodes = self.free_nodes_for(f, count)?;
        let old: Vec<i64> = self
            .db
            .servers()
            .into_iter()
            .filter(|s| s.kind == ServerKind::Controller)
            .map(|s| s.id)
            .collect();
        let on_nodes = |db: &dyn ClusterControl| -> Vec<i64> {
            db.servers()
                .into_iter()
                .filter(|s| s.kind == ServerKind::Controller && nodes.contains(&s.node))
                .map(|s| s.id)
                .collect()
        };
        let added = match self
            .db
            .add_controllers(&nodes, procedure, self.options.start_timeout)
        {
            Ok(a) => a,
            Err(e) => {
                // Controllers may have started before the failure.
                let ids = on_nodes(self.db);
                self.active.insert(id, Undo::Controllers(ids.clone()));
                self.record(
                    f,
                    &json!({"procedure": procedure, "nodes": nodes, "old_controllers": old,
                            "new_controllers": ids, "error": e.to_string(), "fault-id": id.0,
                            "verified": {"ok": false, "error": e.to_string()}}),
                )?;
                return Err(e.into());
            }
        };
        let added_ids: Vec<i64> = added.servers.iter().map(|s| s.id).collect();
        self.active.insert(id, Undo::Controllers(added_ids.clone()));
        // The fault's effect: every newcomer runs (rapid: started at once;
        // a refusal to start shows as a process gone), and for the safe
        // procedure the leader lists every newcomer as a voter.
        let mut running = Vec::new();
        for s in &added.servers {
            let state = self.db.process_state(s)?;
            running.push(json!({"id": s.id, "running": state.is_some_and(|p| !p.is_dead())}));
        }
        let all_running = running.iter().all(|r| r["running"] == json!(true));
        let voters_after: Vec<i64> = added.report["voters_after"]["voters"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let joined: Vec<i64> = added_ids
            .iter()
            .copied()
            .filter(|i| voters_after.contains(i))
            .collect();
        let ok = all_running
            && match procedure {
                JoinProcedure::Rapid => true,
                JoinProcedure::Safe => joined.len() == added_ids.len(),
            };
        let mut value = added.report.clone();
        value["procedure"] = json!(procedure);
        value["nodes"] = json!(nodes);
        value["old_controllers"] = json!(old);
        value["new_controllers"] = json!(added_ids);
        value["new_controllers_voters"] = json!(joined);
        value["fault-id"] = json!(id.0);
        value["elapsed-ms"] = json!(started.elapsed().as_millis() as u64);
        value["verified"] = json!({"ok": ok, "running": running, "joined_voters": joined});
        self.record(f, &value)?;
        if !ok {
            return Err(NemesisError::NotVerified {
                what: format!("{f} of {nodes:?}"),
                seen: value["verified"].to_string(),
            });
        }
        Ok(())
    }

    fn add_zookeeper(
        &mut self,
        id: FaultId,
        procedure: JoinProcedure,
        count: usize,
        move_broker: Option<i64>,
    ) -> Result<(), NemesisError> {
        let started = Instant::now();
        let f = match procedure {
            JoinProcedure::Rapid => "rapid-add",
            JoinProcedure::Safe => "safe-add",
        };
        let nodes = self.free_nodes_for(f, count)?;
        let old: Vec<Server> = self
            .db
            .servers()
            .into_iter()
            .filter(|s| s.kind == ServerKind::Zookeeper)
            .collect();
        let broker = match move_broker {
            Some(b) => Some(
                self.db
                    .servers()
                    .into_iter()
                    .find(|s| s.kind == ServerKind::Kafka && s.id == b)
                    .ok_or(DbError::UnknownServer {
                        kind: ServerKind::Kafka,
                        id: b,
                    })?,
            ),
            None => None,
        };
        let original_connect = match &broker {
            Some(b) => Some(self.db.broker_connect(b.id)?),
            None => None,
        };
        // From here on, whatever was done is undone by `stop`, even if a
        // later step fails: register the undo first and keep it current.
        self.active.insert(
            id,
            Undo::Membership {
                added: Vec::new(),
                cut: None,
                broker: None,
            },
        );
        let added = match self
            .db
            .add_zk_servers(&nodes, procedure, self.options.start_timeout)
        {
            Ok(a) => a,
            Err(e) => {
                // Servers may have started before the failure: remove them all.
                let ids: Vec<i64> = self
                    .db
                    .servers()
                    .into_iter()
                    .filter(|s| s.kind == ServerKind::Zookeeper && nodes.contains(&s.node))
                    .map(|s| s.id)
                    .collect();
                self.active.insert(
                    id,
                    Undo::Membership {
                        added: ids,
                        cut: None,
                        broker: None,
                    },
                );
                return Err(e.into());
            }
        };
        let added_ids: Vec<i64> = added.iter().map(|s| s.id).collect();
        self.active.insert(
            id,
            Undo::Membership {
                added: added_ids.clone(),
                cut: None,
                broker: None,
            },
        );
        let (serving_ok, serving) = self.verify_serving(&added)?;
        let mut value = json!({
            "procedure": procedure,
            "verified": serving,
            "new_servers": added_ids,
            "nodes": nodes,
            "old_servers": old.iter().map(|s| s.id).collect::<Vec<_>>(),
            "fault-id": id.0,
        });
        if !serving_ok {
            self.record(f, &value)?;
            return Err(NemesisError::NotVerified {
                what: format!("{f} of {nodes:?}"),
                seen: value["verified"].to_string(),
            });
        }
        let mut moved_ok = true;
        if let (Some(b), Some(original)) = (broker, original_connect) {
            let moved = self.move_broker(id, &b, &old, &added, &original)?;
            moved_ok = moved["registered_on_new_servers"] == json!(true)
                && moved["cut-verified"]["ok"] == json!(true);
            value["moved_broker"] = json!(b.id);
            value["move"] = moved;
        }
        value["elapsed-ms"] = json!(started.elapsed().as_millis() as u64);
        self.record(f, &value)?;
        if !moved_ok {
            return Err(NemesisError::NotVerified {
                what: format!("{f}: moving broker {move_broker:?} onto the new servers"),
                seen: value["move"].to_string(),
            });
        }
        Ok(())
    }

    /// Gives broker `b` a connect string listing old and new servers, cuts
    /// it off from the old servers for longer than its session timeout, and
    /// waits until it registers as the new servers see it.
    fn move_broker(
        &mut self,
        id: FaultId,
        b: &Server,
        old: &[Server],
        added: &[Server],
        original: &[i64],
    ) -> Result<Value, NemesisError> {
        let cut_from = |servers: &[Server]| cut_node_from(&b.node, servers);
        let set_undo = |nemesis: &mut Self, cut: Option<LayerId>| {
            nemesis.active.insert(
                id,
                Undo::Membership {
                    added: added.iter().map(|s| s.id).collect(),
                    cut,
                    broker: Some((b.id, original.to_vec())),
                },
            );
        };
        set_undo(self, None);
        // Kafka's top-level znodes, as a broker starting against the new
        // servers would have created them (it then exits on the cluster-id
        // check); without them the moved broker cannot register there.
        // Before the broker can reach the new servers: anything advancing
        // their zxid (the observer's sessions do) lets its reconnect through
        // as soon as the zxid passes the broker's.
        let seeded = self.db.create_paths(added[0].id, KAFKA_TOP_LEVEL_PATHS)?;
        // Restart it with old+new listed while it cannot reach the new ones:
        // a broker *starting* against an empty ensemble would refuse to run.
        let shield = self.partitioner.add(cut_from(added));
        set_undo(self, shield.as_ref().ok().copied());
        let shield = shield?;
        let connect: Vec<i64> = old.iter().chain(added).map(|s| s.id).collect();
        self.db
            .set_broker_connect(b.id, &connect, self.options.start_timeout)?;
        // Swap the cut: now it reaches only the new servers.
        let cut = self.partitioner.add(cut_from(old));
        self.partitioner.remove(shield)?;
        set_undo(self, cut.as_ref().ok().copied());
        let cut = cut?;
        let cut_at = Instant::now();
        let hold = self.db.broker_session_timeout() + self.options.expiry_margin;
        // The proof of the cut, taken while it holds: the broker's node
        // reaches none of the old servers and every new one.
        let from_broker = |servers: &[Server]| -> Vec<(String, String)> {
            servers
                .iter()
                .filter(|s| s.node != b.node)
                .map(|s| (b.node.clone(), s.node.clone()))
                .collect()
        };
        let (_, cut_proof) = self.verify_reach(from_broker(old), from_broker(added))?;
        std::thread::sleep(hold.saturating_sub(cut_at.elapsed()));
        // ZooKeeper refuses a session that has seen a newer zxid than the
        // server's own; the joiners' tree starts far behind, so advance it
        // past anything the broker can have seen (the old servers' zxid).
        let beyond = old
            .iter()
            .filter_map(|s| self.db.zxid(s.id).ok().flatten())
            .max()
            .unwrap_or(0);
        let first_new = added[0].id;
        let writes = self
            .db
            .advance_zxid(first_new, beyond, self.options.start_timeout)?;
        let deadline = Instant::now() + self.options.move_timeout;
        let registered = loop {
            let on_new = self.db.registered_brokers(first_new).unwrap_or_default();
            if on_new.contains(&b.id) {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        Ok(json!({
            "broker": b.id,
            "node": b.node,
            "connect": connect,
            "cut_from": old.iter().map(|s| s.node.clone()).filter(|n| *n != b.node).collect::<Vec<_>>(),
            "held-ms": hold.as_millis() as u64,
            "advanced_past_zxid": format!("{beyond:#x}"),
            "zxid_writes": writes,
            "seeded_kafka_paths": seeded,
            "registered_on_new_servers": registered,
            "registered-after-ms": cut_at.elapsed().as_millis() as u64,
            "cut-layer": format!("{cut:?}"),
            "cut-verified": cut_proof,
        }))
    }

    /// Polls `look` (every 200 ms, at most [`MAX_CHECKS`] times, within
    /// `verify_timeout`) until it sees the effect. Returns whether it did
    /// and the last observation, with `ok`, `checks` and `after-ms`.
    fn poll(
        &self,
        mut look: impl FnMut() -> Result<(bool, Value), DbError>,
    ) -> Result<(bool, Value), NemesisError> {
        let started = Instant::now();
        let deadline = started + self.options.verify_timeout;
        let mut checks = 0;
        loop {
            checks += 1;
            let (ok, mut seen) = look()?;
            if ok || checks >= MAX_CHECKS || Instant::now() >= deadline {
                seen["ok"] = json!(ok);
                seen["checks"] = json!(checks);
                seen["after-ms"] = json!(started.elapsed().as_millis() as u64);
                return Ok((ok, seen));
            }
            std::thread::sleep(CHECK_INTERVAL);
        }
    }

    /// A killed server's process is gone (or a zombie: dead, not reaped).
    fn verify_gone(&self, s: &Server, pid: u32) -> Result<(bool, Value), NemesisError> {
        self.poll(|| {
            Ok(match self.db.process_state(s)? {
                None => (true, json!({"process": "gone", "killed-pid": pid})),
                Some(p) if p.is_dead() => (
                    true,
                    json!({"process": "dead", "pid": p.pid, "state": p.state.to_string()}),
                ),
                Some(p) => (
                    false,
                    json!({"process": "running", "pid": p.pid, "state": p.state.to_string()}),
                ),
            })
        })
    }

    /// The server's process state satisfies `want` (described as `wanted`).
    fn verify_state(
        &self,
        s: &Server,
        wanted: &str,
        want: impl Fn(Option<ProcessState>) -> bool,
    ) -> Result<(bool, Value), NemesisError> {
        self.poll(|| {
            let p = self.db.process_state(s)?;
            let seen = match p {
                Some(p) => json!({"pid": p.pid, "state": p.state.to_string(), "wanted": wanted}),
                None => json!({"process": "gone", "wanted": wanted}),
            };
            Ok((want(p), seen))
        })
    }

    /// Every server of `servers` serves (answers as a ZooKeeper member or
    /// as a broker).
    fn verify_serving(&self, servers: &[Server]) -> Result<(bool, Value), NemesisError> {
        let mut serving: BTreeMap<String, Option<String>> =
            servers.iter().map(|s| (s.id.to_string(), None)).collect();
        self.poll(|| {
            for s in servers {
                let id = s.id.to_string();
                if serving.get(&id).is_some_and(|v| v.is_none()) {
                    serving.insert(id, self.db.serving_as(s)?);
                }
            }
            let ok = serving.values().all(Option::is_some);
            Ok((ok, json!({"serving-as": serving})))
        })
    }

    /// Probes a sample of `cut` pairs (each must not reach) and of `kept`
    /// pairs (each must reach); a pair that disagrees is probed again, at
    /// most [`PROBE_ROUNDS`] times in all. Returns whether every sampled
    /// pair agreed, and the probes.
    fn verify_reach(
        &mut self,
        mut cut: Vec<(String, String)>,
        mut kept: Vec<(String, String)>,
    ) -> Result<(bool, Value), NemesisError> {
        let started = Instant::now();
        cut.shuffle(&mut self.rng);
        cut.truncate(self.options.probe_sample);
        kept.shuffle(&mut self.rng);
        kept.truncate(self.options.probe_sample);
        let expected: BTreeMap<(String, String), bool> = cut
            .iter()
            .map(|p| (p.clone(), false))
            .chain(kept.iter().map(|p| (p.clone(), true)))
            .collect();
        let mut results: BTreeMap<(String, String), Probe> = BTreeMap::new();
        let mut todo: Vec<(String, String)> = expected.keys().cloned().collect();
        let mut rounds = 0;
        while !todo.is_empty() && rounds < PROBE_ROUNDS {
            if rounds > 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            rounds += 1;
            for probe in self.partitioner.probe(&todo, self.options.probe_port)? {
                results.insert((probe.from.clone(), probe.to.clone()), probe);
            }
            todo.retain(|p| results.get(p).map(|r| r.reached) != expected.get(p).copied());
        }
        let list = |pairs: &[(String, String)]| -> Vec<Probe> {
            pairs
                .iter()
                .filter_map(|p| results.get(p).cloned())
                .collect()
        };
        let ok = todo.is_empty();
        Ok((
            ok,
            json!({"ok": ok, "port": self.options.probe_port, "cut": list(&cut),
                   "kept": list(&kept), "rounds": rounds,
                   "after-ms": started.elapsed().as_millis() as u64}),
        ))
    }

    /// Undoes one started fault and records what was done.
    pub fn stop(&mut self, id: FaultId) -> Result<(), NemesisError> {
        let Some(undo) = self.active.remove(&id) else {
            return Ok(());
        };
        self.undo(id, undo)
    }

    fn undo(&mut self, id: FaultId, undo: Undo) -> Result<(), NemesisError> {
        match undo {
            Undo::Partition { layer, kind, cuts } => {
                self.partitioner.remove(layer)?;
                // The links it cut that no other layer still cuts now work.
                let healed: Vec<(String, String)> = pairs_of(&cuts)
                    .into_iter()
                    .filter(|(a, b)| self.partitioner.should_reach(a, b))
                    .collect();
                let (ok, seen) = self.verify_reach(Vec::new(), healed)?;
                self.record(
                    "heal",
                    &json!({"healed": kind, "fault-id": id.0, "verified": seen}),
                )?;
                if !ok {
                    return Err(NemesisError::NotVerified {
                        what: format!("heal of partition {}", kind.name()),
                        seen: seen.to_string(),
                    });
                }
            }
            Undo::Restart(servers) => {
                for s in servers {
                    self.db.start(&s, self.options.start_timeout)?;
                    let (ok, seen) = self.verify_serving(std::slice::from_ref(&s))?;
                    self.record(
                        "restart",
                        &json!({"node": s.node, "service": s.kind, "id": s.id, "fault-id": id.0,
                                "verified": seen}),
                    )?;
                    if !ok {
                        return Err(NemesisError::NotVerified {
                            what: format!("restart {s}"),
                            seen: seen.to_string(),
                        });
                    }
                }
            }
            Undo::Resume(servers) => {
                for s in servers {
                    let pid = self.db.resume(&s)?;
                    let (ok, seen) = self.verify_state(&s, "running (not T)", |p| {
                        p.is_some_and(|p| !p.is_stopped() && !p.is_dead())
                    })?;
                    self.record(
                        "resume",
                        &json!({"node": s.node, "service": s.kind, "id": s.id,
                                "signal": "CONT", "pid": pid, "fault-id": id.0,
                                "verified": seen}),
                    )?;
                    if !ok {
                        return Err(NemesisError::NotVerified {
                            what: format!("resume {s}"),
                            seen: seen.to_string(),
                        });
                    }
                }
            }
            Undo::Membership { added, cut, broker } => {
                // The broker goes back first, while the servers it is
                // connected to still run: its clean stop then closes its
                // session, so its old registration does not linger.
                if let Some(layer) = cut {
                    self.partitioner.remove(layer)?;
                }
                let mut value = json!({"removed_servers": added, "fault-id": id.0});
                if let Some((b, original)) = broker {
                    self.db
                        .set_broker_connect(b, &original, self.options.start_timeout)?;
                    value["broker"] = json!(b);
                    value["connect"] = json!(original);
                }
                if !added.is_empty() {
                    self.db
                        .remove_zk_servers(&added, self.options.start_timeout)?;
                }
                self.record("remove", &value)?;
            }
            Undo::Controllers(added) => {
                let mut value = json!({"removed_controllers": added, "fault-id": id.0});
                if !added.is_empty() {
                    value["servers"] = self
                        .db
                        .remove_controllers(&added, self.options.start_timeout)?;
                }
                self.record("remove-controllers", &value)?;
            }
        }
        Ok(())
    }

    /// Undoes every started fault (newest first), then makes sure nothing is
    /// left: splitbrain's firewall rules are emptied on every node and every
    /// paused server is resumed. Records `heal-all` with what it found.
    /// Goes on after errors and reports them all at the end.
    pub fn heal_all(&mut self) -> Result<(), NemesisError> {
        let mut errors = Vec::new();
        let ids: Vec<FaultId> = self.active.keys().rev().copied().collect();
        for id in ids {
            if let Some(undo) = self.active.remove(&id) {
                if let Err(e) = self.undo(id, undo) {
                    errors.push(e.to_string());
                }
            }
        }
        for e in self.partitioner.heal() {
            errors.push(e.to_string());
        }
        let mut resumed = Vec::new();
        for s in self.db.servers() {
            match self.db.is_paused(&s) {
                Ok(true) => match self.db.resume(&s) {
                    Ok(_) => resumed.push(s.to_string()),
                    Err(e) => errors.push(e.to_string()),
                },
                Ok(false) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        self.record(
            "heal-all",
            &json!({"healed": "all", "resumed": resumed, "errors": errors}),
        )?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(NemesisError::HealIncomplete(errors))
        }
    }

    /// Removes splitbrain's firewall chain from every node (after
    /// [`Nemesis::heal_all`], at the very end of a run).
    pub fn remove_rules(&mut self) -> Result<(), NemesisError> {
        let errors = self.partitioner.remove_all();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(NemesisError::HealIncomplete(
                errors.iter().map(|e| e.to_string()).collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_broker_is_cut_from_other_nodes_never_from_its_own() {
        let zk = |id: i64, node: &str| Server {
            kind: ServerKind::Zookeeper,
            id,
            node: node.into(),
            address: "10.0.0.1".parse().unwrap(),
        };
        // Separate nodes: every old server's node is cut.
        let old = [zk(1, "n1"), zk(2, "n2"), zk(3, "n3")];
        let cuts = cut_node_from("n6", &old);
        let peers: Vec<&str> = cuts["n6"].iter().map(String::as_str).collect();
        assert_eq!(peers, ["n1", "n2", "n3"]);
        // Colocated: broker 3 shares n3 with ZooKeeper server 3.
        let cuts = cut_node_from("n3", &old);
        let peers: Vec<&str> = cuts["n3"].iter().map(String::as_str).collect();
        assert_eq!(peers, ["n1", "n2"]);
        assert_eq!(pairs_of(&cuts).len(), 2);
    }

    #[test]
    fn faults_serialize_with_their_names() {
        let f = Fault::AddZookeeper {
            procedure: JoinProcedure::Rapid,
            count: 4,
            move_broker: Some(2),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            json!({"fault": "add-zookeeper", "procedure": "rapid", "count": 4, "move_broker": 2})
        );
        assert_eq!(f.start_f(), "rapid-add");
        let k: Fault = serde_json::from_value(
            json!({"fault": "kill", "service": "kafka", "target": "primary"}),
        )
        .unwrap();
        assert_eq!(
            k,
            Fault::Kill {
                service: ServerKind::Kafka,
                target: Target::Primary
            }
        );
        let p: Fault =
            serde_json::from_value(json!({"fault": "partition", "kind": "zk-from-kafka"})).unwrap();
        assert_eq!(p.start_f(), "start-partition");
    }

    use crate::fake::{self, FakeDb};

    fn quick() -> NemesisOptions {
        NemesisOptions {
            verify_timeout: Duration::from_millis(600),
            ..NemesisOptions::default()
        }
    }

    fn zk_kill() -> Fault {
        Fault::Kill {
            service: ServerKind::Zookeeper,
            target: Target::Ids(vec![2]),
        }
    }

    fn zk_pause() -> Fault {
        Fault::Pause {
            service: ServerKind::Zookeeper,
            target: Target::Ids(vec![3]),
        }
    }

    fn value_of(path: &std::path::Path, f: &str) -> Value {
        fake::events(path)
            .into_iter()
            .rev()
            .find(|(g, _)| g == f)
            .unwrap_or_else(|| panic!("no {f} event"))
            .1
    }

    fn add_controllers(procedure: JoinProcedure) -> Fault {
        Fault::AddControllers {
            procedure,
            count: 2,
        }
    }

    #[test]
    fn rapid_add_controllers_records_voter_sets_and_is_undone_by_remove_controllers() {
        let mut db = FakeDb::new();
        db.free = vec!["n8".into(), "n9".into()];
        let dir = tempfile::tempdir().unwrap();
        let (h, path) = fake::history(dir.path());
        let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h), 1).with_options(quick());
        let id = n.start(&add_controllers(JoinProcedure::Rapid)).unwrap();
        let v = value_of(&path, "rapid-add-controllers");
        // The incident's mistake: started, running, but no voter joined.
        assert_eq!(v["verified"]["ok"], true, "{v}");
        assert_eq!(v["new_controllers"], json!([11, 12]), "{v}");
        assert_eq!(v["new_controllers_voters"], json!([]), "{v}");
        assert_eq!(v["voters_before"]["voters"], json!([1, 2, 3]), "{v}");
        assert_eq!(v["nodes"], json!(["n8", "n9"]), "{v}");
        n.stop(id).unwrap();
        let r = value_of(&path, "remove-controllers");
        assert_eq!(r["removed_controllers"], json!([11, 12]), "{r}");
    }

    #[test]
    fn safe_add_controllers_whose_newcomers_are_not_voters_is_not_verified() {
        for joins in [true, false] {
            let mut db = FakeDb::new();
            db.free = vec!["n8".into(), "n9".into()];
            db.newcomers_become_voters = joins;
            let dir = tempfile::tempdir().unwrap();
            let (h, path) = fake::history(dir.path());
            let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h), 1).with_options(quick());
            let result = n.start(&add_controllers(JoinProcedure::Safe));
            let v = value_of(&path, "safe-add-controllers");
            assert_eq!(v["verified"]["ok"], joins, "{v}");
            if joins {
                assert!(result.is_ok());
                assert_eq!(v["new_controllers_voters"], json!([11, 12]), "{v}");
            } else {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("not verified"), "{err}");
            }
            // Undone either way: the newcomers are removed.
            n.heal_all().unwrap();
            let r = value_of(&path, "remove-controllers");
            assert_eq!(r["removed_controllers"], json!([11, 12]), "{r}");
        }
    }

    #[test]
    fn adding_controllers_needs_free_nodes() {
        let db = FakeDb::new();
        let mut n = Nemesis::new(&db, fake::no_nodes(), None, 1).with_options(quick());
        let err = n
            .start(&add_controllers(JoinProcedure::Rapid))
            .unwrap_err()
            .to_string();
        assert!(err.contains("free nodes"), "{err}");
    }

    #[test]
    fn a_kill_and_its_restart_carry_their_proof() {
        let db = FakeDb::new();
        let dir = tempfile::tempdir().unwrap();
        let (h, path) = fake::history(dir.path());
        let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h), 1).with_options(quick());
        let id = n.start(&zk_kill()).unwrap();
        let kill = value_of(&path, "kill");
        assert_eq!(kill["verified"]["ok"], true, "{kill}");
        assert_eq!(kill["verified"]["process"], "gone", "{kill}");
        assert_eq!(kill["pid"], 1002);
        n.stop(id).unwrap();
        let restart = value_of(&path, "restart");
        assert_eq!(restart["verified"]["ok"], true, "{restart}");
        assert_eq!(restart["verified"]["serving-as"]["2"], "follower");
    }

    #[test]
    fn a_kill_that_leaves_the_process_running_is_not_verified() {
        let mut db = FakeDb::new();
        db.survives_kill = true;
        let dir = tempfile::tempdir().unwrap();
        let (h, path) = fake::history(dir.path());
        let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h), 1).with_options(quick());
        let started = Instant::now();
        let err = n.start(&zk_kill()).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "bounded");
        assert!(
            matches!(&err, NemesisError::NotVerified { what, .. } if what.contains("kill zookeeper 2")),
            "{err}"
        );
        let kill = value_of(&path, "kill");
        assert_eq!(kill["verified"]["ok"], false, "{kill}");
        assert_eq!(kill["verified"]["process"], "running", "{kill}");
        assert!(kill["verified"]["checks"].as_u64().unwrap() >= 2, "{kill}");
        // Its undo is kept, so its stop (or heal-all) restarts it.
        assert_eq!(n.active().len(), 1);
    }

    #[test]
    fn a_restart_that_does_not_serve_is_not_verified() {
        let db = FakeDb::new();
        let mut n = Nemesis::new(&db, fake::no_nodes(), None, 1).with_options(quick());
        let id = n.start(&zk_kill()).unwrap();
        // The restarted server stays mute.
        db.mute.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = n.stop(id).unwrap_err();
        assert!(
            matches!(&err, NemesisError::NotVerified { what, .. } if what.contains("restart zookeeper 2")),
            "{err}"
        );
    }

    #[test]
    fn a_pause_shows_the_stopped_state_or_is_not_verified() {
        let db = FakeDb::new();
        let dir = tempfile::tempdir().unwrap();
        let (h, path) = fake::history(dir.path());
        let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h), 1).with_options(quick());
        let id = n.start(&zk_pause()).unwrap();
        let pause = value_of(&path, "pause");
        assert_eq!(pause["verified"]["ok"], true, "{pause}");
        assert_eq!(pause["verified"]["state"], "T", "{pause}");
        n.stop(id).unwrap();
        let resume = value_of(&path, "resume");
        assert_eq!(resume["verified"]["state"], "S", "{resume}");

        let mut db = FakeDb::new();
        db.ignores_stop = true;
        let mut n = Nemesis::new(&db, fake::no_nodes(), None, 1).with_options(quick());
        let err = n.start(&zk_pause()).unwrap_err();
        assert!(matches!(err, NemesisError::NotVerified { .. }), "{err}");
    }

    #[test]
    fn a_fault_without_a_target_is_an_error() {
        let mut db = FakeDb::new();
        db.controller = None;
        let mut n = Nemesis::new(&db, fake::no_nodes(), None, 1).with_options(quick());
        let err = n
            .start(&Fault::Kill {
                service: ServerKind::Kafka,
                target: Target::Primary,
            })
            .unwrap_err();
        assert!(err.to_string().contains("no Kafka controller"), "{err}");
        // With a controller known, the same fault applies.
        let db = FakeDb::new();
        let mut n = Nemesis::new(&db, fake::no_nodes(), None, 1).with_options(quick());
        n.start(&Fault::Kill {
            service: ServerKind::Kafka,
            target: Target::Primary,
        })
        .unwrap();
    }
}
