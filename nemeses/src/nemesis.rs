//! The nemesis: starts faults, remembers how to undo each, undoes them, and
//! records every step in the history as `process: "nemesis"` events saying
//! exactly what was done to which node (see `docs/nemeses.md`).

use crate::grudge::{Grudge, GrudgeError, PartitionKind, Topology};
use crate::partition::{Cuts, LayerId, Partitioner};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splitbrain_core::control::{Control, ControlError};
use splitbrain_core::db::{ClusterControl, DbError, JoinProcedure, Server, ServerKind};
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
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    /// The command line's short form: `partition:<kind>`,
    /// `kill:<zookeeper|kafka>:<one|minority|primary|all>`, `pause:…` alike,
    /// `rapid-add:<count>[:<broker to move>]`, `safe-add:<count>[:<broker>]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || {
            format!(
                "fault `{s}`: expected partition:<kind>, kill:<zookeeper|kafka>:<one|minority|primary|all>, \
                 pause:<zookeeper|kafka>:<target>, rapid-add:<count>[:<broker>] or safe-add:<count>[:<broker>]"
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        let service = |w: &str| match w {
            "zookeeper" | "zk" => Ok(ServerKind::Zookeeper),
            "kafka" => Ok(ServerKind::Kafka),
            _ => Err(usage()),
        };
        let target = |w: &str| match w {
            "one" => Ok(Target::One),
            "minority" => Ok(Target::Minority),
            "primary" => Ok(Target::Primary),
            "all" => Ok(Target::All),
            _ => Err(usage()),
        };
        let add = |procedure, rest: &[&str]| -> Result<Fault, String> {
            let count = rest
                .first()
                .and_then(|c| c.parse().ok())
                .filter(|&c: &usize| c > 0)
                .ok_or_else(usage)?;
            let move_broker = match rest.get(1) {
                Some(b) => Some(b.parse().map_err(|_| usage())?),
                None => None,
            };
            if rest.len() > 2 {
                return Err(usage());
            }
            Ok(Fault::AddZookeeper {
                procedure,
                count,
                move_broker,
            })
        };
        match parts.as_slice() {
            ["partition", kind] => Ok(Fault::Partition {
                kind: kind.parse().map_err(|e: GrudgeError| e.to_string())?,
            }),
            ["kill", svc, t] => Ok(Fault::Kill {
                service: service(svc)?,
                target: target(t)?,
            }),
            ["pause", svc, t] => Ok(Fault::Pause {
                service: service(svc)?,
                target: target(t)?,
            }),
            ["rapid-add", rest @ ..] => add(JoinProcedure::Rapid, rest),
            ["safe-add", rest @ ..] => add(JoinProcedure::Safe, rest),
            _ => Err(usage()),
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
    /// The fault does not fit the cluster.
    #[error("{0}")]
    Unfit(String),
    /// Undoing faults left something behind.
    #[error("heal-all incomplete: {0}; remove what is left with `splitbrain env down`")]
    HealIncomplete(String),
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
    },
    Restart(Vec<Server>),
    Resume(Vec<Server>),
    Membership {
        added: Vec<i64>,
        cut: Option<LayerId>,
        broker: Option<(i64, Vec<i64>)>,
    },
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
}

impl Default for NemesisOptions {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(90),
            move_timeout: Duration::from_secs(60),
            expiry_margin: Duration::from_secs(2),
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
            }
        }
        let node_of = |kind: ServerKind, id: i64| {
            servers
                .iter()
                .find(|s| s.kind == kind && s.id == id)
                .map(|s| s.node.clone())
        };
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
            return Err(NemesisError::Unfit(format!(
                "the cluster runs no {service} server"
            )));
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
                };
                let id = id.ok_or_else(|| {
                    NemesisError::Unfit(format!(
                        "no {} right now; wait until the cluster has one",
                        match service {
                            ServerKind::Zookeeper => "ZooKeeper leader",
                            ServerKind::Kafka => "Kafka controller",
                        }
                    ))
                })?;
                all.into_iter().filter(|s| s.id == id).collect()
            }
            Target::Ids(ids) => {
                let chosen: Vec<Server> = all.into_iter().filter(|s| ids.contains(&s.id)).collect();
                if chosen.len() != ids.len() {
                    return Err(NemesisError::Unfit(format!(
                        "not every one of {service} ids {ids:?} exists"
                    )));
                }
                chosen
            }
        })
    }

    /// Starts `fault`, records it, and returns its id for [`Nemesis::stop`].
    pub fn start(&mut self, fault: &Fault) -> Result<FaultId, NemesisError> {
        let id = FaultId(self.next);
        self.next += 1;
        let undo = match fault {
            Fault::Partition { kind } => {
                let topology = self.topology()?;
                let grudge = Grudge::compute(*kind, &topology, &mut self.rng)?;
                let cuts = Partitioner::cuts_of(&grudge);
                let layer = self.partitioner.add(cuts.clone());
                // Recorded even if applying failed half-way: heal lifts it.
                self.record(
                    "start-partition",
                    &json!({"kind": kind, "grudge": cuts, "fault-id": id.0,
                            "zk-leader": topology.zk_leader,
                            "kafka-controller": topology.kafka_controller}),
                )?;
                Undo::Partition {
                    layer: layer?,
                    kind: *kind,
                }
            }
            Fault::Kill { service, target } => {
                let victims = self.targets(*service, target)?;
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
                    self.record(
                        "kill",
                        &json!({"node": s.node, "service": s.kind, "id": s.id,
                                "signal": "KILL", "pid": pid, "fault-id": id.0}),
                    )?;
                }
                Undo::Restart(done)
            }
            Fault::Pause { service, target } => {
                let victims = self.targets(*service, target)?;
                let mut done = Vec::new();
                for s in &victims {
                    match self.db.pause(s) {
                        Ok(pid) => {
                            done.push(s.clone());
                            self.record(
                                "pause",
                                &json!({"node": s.node, "service": s.kind, "id": s.id,
                                        "signal": "STOP", "pid": pid, "fault-id": id.0}),
                            )?;
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
            } => self.add_zookeeper(id, *procedure, *count, *move_broker)?,
        };
        self.active.insert(id, undo);
        Ok(id)
    }

    fn add_zookeeper(
        &mut self,
        id: FaultId,
        procedure: JoinProcedure,
        count: usize,
        move_broker: Option<i64>,
    ) -> Result<Undo, NemesisError> {
        let started = Instant::now();
        let f = match procedure {
            JoinProcedure::Rapid => "rapid-add",
            JoinProcedure::Safe => "safe-add",
        };
        let free = self.db.free_nodes();
        if free.len() < count || count == 0 {
            return Err(NemesisError::Unfit(format!(
                "{f} of {count} ZooKeeper server(s) needs as many free nodes; the environment has \
                 {} ({free:?}): create it with more nodes",
                free.len()
            )));
        }
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
        let nodes: Vec<String> = free[..count].to_vec();
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
        let mut value = json!({
            "procedure": procedure,
            "new_servers": added_ids,
            "nodes": nodes,
            "old_servers": old.iter().map(|s| s.id).collect::<Vec<_>>(),
            "fault-id": id.0,
        });
        if let (Some(b), Some(original)) = (broker, original_connect) {
            let moved = self.move_broker(id, &b, &old, &added, &original)?;
            value["moved_broker"] = json!(b.id);
            value["move"] = moved;
        }
        value["elapsed-ms"] = json!(started.elapsed().as_millis() as u64);
        self.record(f, &value)?;
        self.active
            .remove(&id)
            .ok_or_else(|| NemesisError::Unfit(format!("{f}: its undo record went missing")))
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
        let cut_from = |servers: &[Server]| -> Cuts {
            let mut cuts = Cuts::new();
            cuts.insert(
                b.node.clone(),
                servers
                    .iter()
                    .map(|s| s.node.clone())
                    .collect::<BTreeSet<_>>(),
            );
            cuts
        };
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
        std::thread::sleep(hold);
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
            "cut_from": old.iter().map(|s| s.node.clone()).collect::<Vec<_>>(),
            "held-ms": hold.as_millis() as u64,
            "advanced_past_zxid": format!("{beyond:#x}"),
            "zxid_writes": writes,
            "seeded_kafka_paths": seeded,
            "registered_on_new_servers": registered,
            "registered-after-ms": cut_at.elapsed().as_millis() as u64,
            "cut-layer": format!("{cut:?}"),
        }))
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
            Undo::Partition { layer, kind } => {
                self.partitioner.remove(layer)?;
                self.record("heal", &json!({"healed": kind, "fault-id": id.0}))?;
            }
            Undo::Restart(servers) => {
                for s in servers {
                    self.db.start(&s, self.options.start_timeout)?;
                    self.record(
                        "restart",
                        &json!({"node": s.node, "service": s.kind, "id": s.id, "fault-id": id.0}),
                    )?;
                }
            }
            Undo::Resume(servers) => {
                for s in servers {
                    let pid = self.db.resume(&s)?;
                    self.record(
                        "resume",
                        &json!({"node": s.node, "service": s.kind, "id": s.id,
                                "signal": "CONT", "pid": pid, "fault-id": id.0}),
                    )?;
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
            Err(NemesisError::HealIncomplete(errors.join("; ")))
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
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn faults_parse_from_the_command_line_form() {
        assert_eq!(
            "partition:majorities-ring".parse::<Fault>().unwrap(),
            Fault::Partition {
                kind: PartitionKind::MajoritiesRing
            }
        );
        assert_eq!(
            "kill:kafka:primary".parse::<Fault>().unwrap(),
            Fault::Kill {
                service: ServerKind::Kafka,
                target: Target::Primary
            }
        );
        assert_eq!(
            "pause:zk:minority".parse::<Fault>().unwrap(),
            Fault::Pause {
                service: ServerKind::Zookeeper,
                target: Target::Minority
            }
        );
        assert_eq!(
            "rapid-add:4:2".parse::<Fault>().unwrap(),
            Fault::AddZookeeper {
                procedure: JoinProcedure::Rapid,
                count: 4,
                move_broker: Some(2)
            }
        );
        assert_eq!(
            "safe-add:1".parse::<Fault>().unwrap(),
            Fault::AddZookeeper {
                procedure: JoinProcedure::Safe,
                count: 1,
                move_broker: None
            }
        );
        for bad in [
            "",
            "partition",
            "partition:sideways",
            "kill:kafka",
            "kill:redis:one",
            "pause:kafka:most",
            "rapid-add:0",
            "rapid-add:x",
            "safe-add:2:b",
            "safe-add:2:1:1",
        ] {
            let err = bad.parse::<Fault>().unwrap_err();
            assert!(
                err.contains("expected") || err.contains("choose"),
                "{bad}: {err}"
            );
        }
    }
}
