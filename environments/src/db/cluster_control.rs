//! [`ClusterControl`] for a cluster of this crate: the lifecycle operations
//! the nemeses need (kill, start, pause, membership changes, moving a
//! broker), carried out over SSH on the environment's nodes.
//!
//! [`EnvCluster`] owns the [`ClusterLayout`] behind a mutex, since membership
//! faults change it (servers added and removed); read it back with
//! [`EnvCluster::layout`] to observe or stop the cluster.

use crate::db::cluster::{self, ClusterLayout};
use crate::db::kafka::{self, Broker};
use crate::db::zookeeper::{self, ZkMember, ZkRole, ZkServer, ZkSettings};
use crate::probes::zk_client::{self, ZkSession};
use splitbrain_core::cluster::ZkMode;
use splitbrain_core::control::{Control, Node};
use splitbrain_core::db::{
    ClusterControl, DbError, JoinProcedure, ProcessState, Server, ServerKind,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bound of one network step when asking servers about themselves.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// Makes `settings` allow ZooKeeper's dynamic reconfiguration, which the
/// safe join procedure ([`JoinProcedure::Safe`]) needs: `reconfigEnabled`,
/// and `zookeeper.skipACL` so that splitbrain's client may run `reconfig`
/// without a super-user digest. Must be set before the cluster starts.
pub fn enable_reconfig(settings: &mut ZkSettings) {
    settings.reconfig_enabled = true;
    let skip = "-Dzookeeper.skipACL=yes".to_string();
    if !settings.jvm_opts.contains(&skip) {
        settings.jvm_opts.push(skip);
    }
}

/// A running cluster of this crate, controllable by the nemeses.
pub struct EnvCluster {
    control: Control,
    env_nodes: Vec<Node>,
    layout: Mutex<ClusterLayout>,
    /// ZooKeeper ids added with the safe procedure: members of the ensemble,
    /// so removing them needs `reconfig -remove`.
    reconfigured: Mutex<BTreeSet<u64>>,
    kill_on_drop: bool,
}

impl EnvCluster {
    /// Controls the cluster `layout` (already up) on `env_nodes` (every node
    /// of the environment, so free ones can host new servers).
    pub fn new(control: Control, env_nodes: Vec<Node>, layout: ClusterLayout) -> Self {
        Self {
            control,
            env_nodes,
            layout: Mutex::new(layout),
            reconfigured: Mutex::new(BTreeSet::new()),
            kill_on_drop: false,
        }
    }

    /// When dropped, SIGKILL every server of the (current) layout: added
    /// servers too. For tests and aborted runs.
    pub fn kill_on_drop(mut self, yes: bool) -> Self {
        self.kill_on_drop = yes;
        self
    }

    /// The current layout (servers added by membership faults included).
    pub fn layout(&self) -> ClusterLayout {
        self.lock().clone()
    }

    /// The control handle.
    pub fn control(&self) -> &Control {
        &self.control
    }

    fn lock(&self) -> MutexGuard<'_, ClusterLayout> {
        self.layout.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn zk(&self, id: i64) -> Result<ZkServer, DbError> {
        let layout = self.lock();
        u64::try_from(id)
            .ok()
            .and_then(|id| layout.zk_server(id))
            .cloned()
            .ok_or(DbError::UnknownServer {
                kind: ServerKind::Zookeeper,
                id,
            })
    }

    fn broker(&self, id: i64) -> Result<Broker, DbError> {
        let layout = self.lock();
        i32::try_from(id)
            .ok()
            .and_then(|id| layout.broker(id))
            .cloned()
            .ok_or(DbError::UnknownServer {
                kind: ServerKind::Kafka,
                id,
            })
    }

    fn controller(&self, id: i64) -> Result<crate::db::kraft::Controller, DbError> {
        let layout = self.lock();
        i32::try_from(id)
            .ok()
            .and_then(|id| layout.controllers().iter().find(|c| c.id == id))
            .cloned()
            .ok_or(DbError::UnknownServer {
                kind: ServerKind::Controller,
                id,
            })
    }

    fn service(&self, server: &Server) -> Result<crate::db::service::Service, DbError> {
        Ok(match server.kind {
            ServerKind::Zookeeper => self.zk(server.id)?.service(),
            ServerKind::Kafka => self.broker(server.id)?.service(),
            ServerKind::Controller => self.controller(server.id)?.service(),
        })
    }

    fn zk_addr(&self, id: i64) -> Result<SocketAddr, DbError> {
        let settings = self.lock().zk_settings.clone();
        Ok(self.zk(id)?.client_addr(&settings))
    }

    /// A session with the first old (non-added) server that grants one.
    fn session_with_ensemble(&self, exclude: &[u64]) -> Result<ZkSession, DbError> {
        let layout = self.layout();
        let mut last = String::from("no ZooKeeper server");
        for s in layout.zookeeper.iter().filter(|s| !exclude.contains(&s.id)) {
            match ZkSession::connect(
                s.client_addr(&layout.zk_settings),
                Duration::from_secs(10),
                Duration::from_secs(10),
            ) {
                Ok(session) => return Ok(session),
                Err(e) => last = e.to_string(),
            }
        }
        Err(DbError::failed("open a ZooKeeper session", last))
    }

    fn rapid_add(&self, nodes: &[Node], timeout: Duration) -> Result<Vec<ZkServer>, DbError> {
        let mut layout = self.lock();
        let added = cluster::rapid_add(&self.control, &mut layout, nodes)
            .map_err(|e| DbError::failed("rapid add", e))?;
        let settings = layout.zk_settings.clone();
        drop(layout);
        zookeeper::wait_serving(&added, &settings, timeout)
            .map_err(|e| DbError::failed("rapid add: wait for the new servers", e))?;
        Ok(added)
    }

    fn safe_add(&self, nodes: &[Node], timeout: Duration) -> Result<Vec<ZkServer>, DbError> {
        let deadline = Instant::now() + timeout;
        let mut added = Vec::new();
        for node in nodes {
            let mut layout = self.lock();
            if !layout.zk_settings.reconfig_enabled {
                return Err(DbError::Unsupported(
                    "safe-add needs ZooKeeper's dynamic reconfiguration: start the cluster with \
                     reconfigEnabled (environments::cluster_control::enable_reconfig)"
                        .into(),
                ));
            }
            if layout.nodes().iter().any(|n| n.name == node.name) {
                return Err(DbError::Unsupported(format!(
                    "node {} already runs a server; pick a free node",
                    node.name
                )));
            }
            let id = layout.zookeeper.iter().map(|s| s.id).max().unwrap_or(0) + 1;
            let me = ZkMember {
                id,
                address: node.address,
                role: ZkRole::Participant,
            };
            // The current membership plus itself: alone it can never be a
            // quorum of that list, so it can only join the running ensemble.
            let mut members: Vec<ZkMember> = layout
                .zookeeper
                .iter()
                .filter(|s| s.role == ZkRole::Participant)
                .map(ZkServer::member)
                .collect();
            members.push(me.clone());
            let server = ZkServer {
                node: node.clone(),
                id,
                role: ZkRole::Participant,
                config_members: members,
            };
            // Recorded before starting, so kill-on-drop covers it.
            layout.zookeeper.push(server.clone());
            let settings = layout.zk_settings.clone();
            let artifacts = layout.artifacts.clone();
            drop(layout);
            let step = |what: &str, e: &dyn std::fmt::Display| {
                DbError::failed(
                    format!("safe add of server {id} on {}: {what}", node.name),
                    e,
                )
            };
            zookeeper::install(&self.control, &server, &settings, &artifacts)
                .map_err(|e| step("install", &e))?;
            server
                .service()
                .start(&self.control, &node.name)
                .map_err(|e| step("start", &e))?;
            let left = deadline.saturating_duration_since(Instant::now());
            zookeeper::wait_serving(std::slice::from_ref(&server), &settings, left)
                .map_err(|e| step("wait until it follows", &e))?;
            let spec = format!(
                "server.{id}={addr}:{qp}:{ep}:participant;{addr}:{cp}",
                addr = node.address,
                qp = settings.quorum_port,
                ep = settings.election_port,
                cp = settings.client_port,
            );
            let mut session = self.session_with_ensemble(&[id])?;
            let result = session.reconfig(Some(&spec), None);
            let _ = session.close();
            result.map_err(|e| step("reconfig -add", &e))?;
            self.reconfigured
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
            self.wait_voters(|v| v.contains(&id), deadline)
                .map_err(|e| step("wait for the new membership", &e))?;
            added.push(server);
        }
        Ok(added)
    }

    /// Waits until every old server that answers `conf` lists voters
    /// satisfying `ok`.
    fn wait_voters(&self, ok: impl Fn(&[u64]) -> bool, deadline: Instant) -> Result<(), DbError> {
        loop {
            let layout = self.layout();
            let mut last = Vec::new();
            let mut all = true;
            for s in &layout.zookeeper {
                let addr = s.client_addr(&layout.zk_settings);
                match zk_client::four_letter_word(addr, "conf", ASK_TIMEOUT)
                    .ok()
                    .and_then(|t| zk_client::parse_conf(&t).ok())
                {
                    Some(conf) if ok(&conf.voters()) => {}
                    Some(conf) => {
                        all = false;
                        last.push(format!("server {}: voters {:?}", s.id, conf.voters()));
                    }
                    None => last.push(format!("server {}: no answer", s.id)),
                }
            }
            if all {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DbError::failed(
                    "wait for the ZooKeeper membership",
                    last.join("; "),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Restarts (SIGKILL, start, wait until serving) every server sharing
    /// server `zk_id`'s configured membership, all at once, until `zk_id`'s
    /// epoch (the high 32 bits of its zxid) reaches `epoch`: each election
    /// starts a new epoch, so this is how an ensemble's zxid can pass one
    /// from a later epoch. Returns the restarts made.
    fn raise_epoch(&self, zk_id: i64, epoch: u32, deadline: Instant) -> Result<u32, DbError> {
        let what = || format!("raise the epoch of ZooKeeper server {zk_id} to {epoch}");
        let me = self.zk(zk_id)?;
        let (ensemble, settings): (Vec<ZkServer>, ZkSettings) = {
            let layout = self.lock();
            (
                layout
                    .zookeeper
                    .iter()
                    .filter(|s| s.config_members == me.config_members)
                    .cloned()
                    .collect(),
                layout.zk_settings.clone(),
            )
        };
        let addr = me.client_addr(&settings);
        let mut restarts = 0;
        loop {
            // A follower's zxid enters a new epoch only with the epoch's
            // first transaction: write one through it before asking.
            if restarts > 0 {
                if let Ok(mut session) =
                    ZkSession::connect(addr, Duration::from_secs(10), Duration::from_secs(5))
                {
                    let _ = session.create("/splitbrain-nemesis", b"");
                    let _ = session.create(&format!("/splitbrain-nemesis/epoch-{restarts}"), b"");
                    let _ = session.close();
                }
            }
            let current = self.zxid(zk_id)?.map(|z| (z >> 32) as u32);
            if current.is_some_and(|e| e >= epoch) {
                tracing::info!("{}: done after {restarts} restart(s)", what());
                return Ok(restarts);
            }
            if Instant::now() >= deadline || restarts >= 10 {
                return Err(DbError::failed(
                    what(),
                    format!("epoch {current:?} after {restarts} restart(s) of its ensemble"),
                ));
            }
            let each = |s: &ZkServer| -> Result<(), DbError> {
                let svc = s.service();
                svc.kill(&self.control, &s.node.name)
                    .and_then(|_| svc.start(&self.control, &s.node.name))
                    .map(|_| ())
                    .map_err(|e| DbError::failed(what(), e))
            };
            std::thread::scope(|scope| {
                let handles: Vec<_> = ensemble
                    .iter()
                    .map(|s| scope.spawn(move || each(s)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(DbError::failed(what(), "panicked")))
                    })
                    .collect::<Result<Vec<()>, DbError>>()
            })?;
            restarts += 1;
            zookeeper::wait_serving(
                &ensemble,
                &settings,
                deadline.saturating_duration_since(Instant::now()),
            )
            .map_err(|e| DbError::failed(what(), e))?;
        }
    }

    fn to_server_zk(s: &ZkServer) -> Server {
        Server {
            kind: ServerKind::Zookeeper,
            id: s.id as i64,
            node: s.node.name.clone(),
            address: s.node.address,
        }
    }
}

impl Drop for EnvCluster {
    fn drop(&mut self) {
        if self.kill_on_drop {
            for e in cluster::stop_all(&self.control, &self.lock(), false) {
                tracing::warn!("cleanup: could not stop a server: {e}");
            }
        }
    }
}

impl ClusterControl for EnvCluster {
    fn servers(&self) -> Vec<Server> {
        let layout = self.lock();
        layout
            .zookeeper
            .iter()
            .map(Self::to_server_zk)
            .chain(layout.controllers().iter().map(|c| Server {
                kind: ServerKind::Controller,
                id: i64::from(c.id),
                node: c.node.name.clone(),
                address: c.node.address,
            }))
            .chain(layout.kafka.iter().map(|b| Server {
                kind: ServerKind::Kafka,
                id: b.id as i64,
                node: b.node.name.clone(),
                address: b.node.address,
            }))
            .collect()
    }

    fn free_nodes(&self) -> Vec<String> {
        self.lock()
            .free_nodes(&self.env_nodes)
            .into_iter()
            .map(|n| n.name)
            .collect()
    }

    fn kill(&self, server: &Server) -> Result<Option<u32>, DbError> {
        let out = self
            .service(server)?
            .kill(&self.control, &server.node)
            .map_err(|e| DbError::failed(format!("kill {server}"), e))?;
        Ok(out.parse().ok())
    }

    fn start(&self, server: &Server, timeout: Duration) -> Result<(), DbError> {
        let what = || format!("start {server}");
        self.service(server)?
            .start(&self.control, &server.node)
            .map_err(|e| DbError::failed(what(), e))?;
        match server.kind {
            ServerKind::Zookeeper => {
                let s = self.zk(server.id)?;
                let settings = self.lock().zk_settings.clone();
                zookeeper::wait_serving(&[s], &settings, timeout)
            }
            ServerKind::Kafka => {
                let b = self.broker(server.id)?;
                let settings = self.lock().kafka_settings.clone();
                kafka::wait_answering(&[b], &settings, timeout)
            }
            ServerKind::Controller => {
                let c = self.controller(server.id)?;
                let settings = self.lock().kraft.as_ref().map(|k| k.settings.clone());
                crate::db::kraft::wait_answering(&c, &settings.unwrap_or_default(), timeout)
            }
        }
        .map_err(|e| DbError::failed(what(), e))
    }

    fn pause(&self, server: &Server) -> Result<Option<u32>, DbError> {
        let out = self
            .service(server)?
            .pause(&self.control, &server.node)
            .map_err(|e| DbError::failed(format!("pause {server}"), e))?;
        Ok(out.parse().ok())
    }

    fn resume(&self, server: &Server) -> Result<Option<u32>, DbError> {
        let out = self
            .service(server)?
            .resume(&self.control, &server.node)
            .map_err(|e| DbError::failed(format!("resume {server}"), e))?;
        Ok(out.parse().ok())
    }

    fn process_state(&self, server: &Server) -> Result<Option<ProcessState>, DbError> {
        let svc = self.service(server)?;
        let what = || format!("state of {server}");
        let Some(pid) = svc
            .pid(&self.control, &server.node)
            .map_err(|e| DbError::failed(what(), e))?
        else {
            return Ok(None);
        };
        // The state letter follows the command name's closing parenthesis.
        let out = self
            .control
            .exec_ok(
                &server.node,
                &format!("sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f1"),
                crate::db::service::COMMAND_TIMEOUT,
            )
            .map_err(|e| DbError::failed(what(), e))?;
        // Empty: it exited between the two questions.
        Ok(out
            .stdout
            .trim()
            .chars()
            .next()
            .map(|state| ProcessState { pid, state }))
    }

    fn serving_as(&self, server: &Server) -> Result<Option<String>, DbError> {
        match server.kind {
            ServerKind::Zookeeper => {
                let addr = self.zk_addr(server.id)?;
                Ok(match zookeeper::mode(addr, ASK_TIMEOUT) {
                    Ok(
                        m @ (ZkMode::Leader
                        | ZkMode::Follower
                        | ZkMode::Observer
                        | ZkMode::Standalone),
                    ) => Some(format!("{m:?}").to_lowercase()),
                    _ => None,
                })
            }
            ServerKind::Kafka => {
                let b = self.broker(server.id)?;
                let addr = b.addr(&self.lock().kafka_settings);
                Ok(
                    crate::probes::kafka_client::metadata(addr, Some(&[]), ASK_TIMEOUT)
                        .ok()
                        .map(|m| {
                            // A KRaft broker's "controller" is a broker it picked.
                            if m.controller == Some(b.id) && !self.lock().is_kraft() {
                                "controller".to_string()
                            } else {
                                "broker".to_string()
                            }
                        }),
                )
            }
            ServerKind::Controller => {
                let c = self.controller(server.id)?;
                let settings = self.lock().kraft.as_ref().map(|k| k.settings.clone());
                let view = crate::probes::observe::observe_controller(
                    &c,
                    &settings.unwrap_or_default(),
                    ASK_TIMEOUT,
                );
                Ok(match view.role {
                    splitbrain_core::cluster::ControllerRole::Leader => Some("leader".into()),
                    splitbrain_core::cluster::ControllerRole::NotLeader => {
                        Some("not-leader".into())
                    }
                    splitbrain_core::cluster::ControllerRole::Unreachable => None,
                })
            }
        }
    }

    fn kraft_leader(&self) -> Result<Option<i64>, DbError> {
        let layout = self.layout();
        let Some(k) = &layout.kraft else {
            return Ok(None);
        };
        let leaders: Vec<i64> =
            crate::db::kraft::describe_each(&k.controllers, &k.settings, ASK_TIMEOUT)
                .into_iter()
                .filter_map(|(id, a)| {
                    a.ok()
                        .filter(|q| q.leader_id == Some(id))
                        .map(|_| i64::from(id))
                })
                .collect();
        // Two controllers each claiming to lead: no one "the" leader.
        Ok(match leaders[..] {
            [one] => Some(one),
            _ => None,
        })
    }

    fn zk_leaders(&self) -> Result<Vec<i64>, DbError> {
        let layout = self.layout();
        Ok(layout
            .zookeeper
            .iter()
            .filter(|s| {
                zookeeper::mode(s.client_addr(&layout.zk_settings), ASK_TIMEOUT).ok()
                    == Some(ZkMode::Leader)
            })
            .map(|s| s.id as i64)
            .collect())
    }

    fn kafka_controller(&self) -> Result<Option<i64>, DbError> {
        let layout = self.layout();
        // A KRaft broker's Metadata names a broker it picked, not the
        // active controller: no Kafka controller to target (see kraft_leader).
        if layout.is_kraft() {
            return Ok(None);
        }
        let mut votes: BTreeMap<i32, usize> = BTreeMap::new();
        let mut answered = 0;
        for b in &layout.kafka {
            if let Ok(m) = crate::probes::kafka_client::metadata(
                b.addr(&layout.kafka_settings),
                Some(&[]),
                ASK_TIMEOUT,
            ) {
                answered += 1;
                if let Some(c) = m.controller {
                    *votes.entry(c).or_default() += 1;
                }
            }
        }
        Ok(votes
            .into_iter()
            .find(|&(_, n)| n * 2 > answered)
            .map(|(c, _)| c as i64))
    }

    fn add_zk_servers(
        &self,
        nodes: &[String],
        procedure: JoinProcedure,
        timeout: Duration,
    ) -> Result<Vec<Server>, DbError> {
        let nodes: Vec<Node> = nodes
            .iter()
            .map(|name| {
                self.env_nodes
                    .iter()
                    .find(|n| &n.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        DbError::Unsupported(format!("node {name} is not part of the environment"))
                    })
            })
            .collect::<Result<_, _>>()?;
        let added = match procedure {
            JoinProcedure::Rapid => self.rapid_add(&nodes, timeout)?,
            JoinProcedure::Safe => self.safe_add(&nodes, timeout)?,
        };
        Ok(added.iter().map(Self::to_server_zk).collect())
    }

    fn add_controllers(
        &self,
        nodes: &[String],
        procedure: JoinProcedure,
        timeout: Duration,
    ) -> Result<splitbrain_core::db::ControllersAdded, DbError> {
        let nodes: Vec<Node> = nodes
            .iter()
            .map(|name| {
                self.env_nodes
                    .iter()
                    .find(|n| &n.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        DbError::Unsupported(format!("node {name} is not part of the environment"))
                    })
            })
            .collect::<Result<_, _>>()?;
        // Work on a copy so the lock is not held for minutes; the copy goes
        // back whatever happened (newcomers are in it even after a failure,
        // so removing them finds them).
        let mut layout = self.layout();
        let result = crate::db::controller_membership::add_controllers(
            &self.control,
            &mut layout,
            &nodes,
            procedure,
            timeout,
            &|l| *self.lock() = l.clone(),
        );
        *self.lock() = layout;
        result
    }

    fn remove_controllers(
        &self,
        ids: &[i64],
        timeout: Duration,
    ) -> Result<serde_json::Value, DbError> {
        let mut layout = self.layout();
        let result = crate::db::controller_membership::remove_controllers(
            &self.control,
            &mut layout,
            ids,
            timeout,
        );
        *self.lock() = layout;
        result
    }

    fn remove_zk_servers(&self, ids: &[i64], timeout: Duration) -> Result<(), DbError> {
        let deadline = Instant::now() + timeout;
        let ids: Vec<u64> = ids.iter().filter_map(|&i| u64::try_from(i).ok()).collect();
        let members: Vec<u64> = {
            let set = self.reconfigured.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter().copied().filter(|i| set.contains(i)).collect()
        };
        if !members.is_empty() {
            let leaving = members
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let mut session = self.session_with_ensemble(&members)?;
            let result = session.reconfig(None, Some(&leaving));
            let _ = session.close();
            result.map_err(|e| DbError::failed(format!("reconfig -remove {leaving}"), e))?;
            self.wait_voters(|v| !v.iter().any(|i| members.contains(i)), deadline)
                .or_else(|e| {
                    // The leaving servers themselves may keep an old view until
                    // they stop; only the remaining ones must agree.
                    tracing::debug!("membership after remove: {e}");
                    Ok::<(), DbError>(())
                })?;
            let mut set = self.reconfigured.lock().unwrap_or_else(|p| p.into_inner());
            for i in &members {
                set.remove(i);
            }
        }
        let mut layout = self.lock();
        cluster::remove_zookeeper(&self.control, &mut layout, &ids)
            .map_err(|e| DbError::failed(format!("remove ZooKeeper servers {ids:?}"), e))
    }

    fn broker_connect(&self, broker: i64) -> Result<Vec<i64>, DbError> {
        let b = self.broker(broker)?;
        let layout = self.lock();
        Ok(b.zookeeper_connect
            .iter()
            .filter_map(|a| {
                layout
                    .zookeeper
                    .iter()
                    .find(|s| s.client_addr(&layout.zk_settings) == *a)
                    .map(|s| s.id as i64)
            })
            .collect())
    }

    fn set_broker_connect(
        &self,
        broker: i64,
        zk_ids: &[i64],
        timeout: Duration,
    ) -> Result<(), DbError> {
        let addrs = zk_ids
            .iter()
            .map(|&id| self.zk_addr(id))
            .collect::<Result<Vec<_>, _>>()?;
        let mut layout = self.lock();
        let b = layout
            .kafka
            .iter_mut()
            .find(|b| b.id as i64 == broker)
            .ok_or(DbError::UnknownServer {
                kind: ServerKind::Kafka,
                id: broker,
            })?;
        if b.zookeeper_connect == addrs {
            return Ok(());
        }
        b.zookeeper_connect = addrs;
        let b = b.clone();
        let settings = layout.kafka_settings.clone();
        let artifacts = layout.artifacts.clone();
        drop(layout);
        let what = || format!("move broker {broker} to ZooKeeper servers {zk_ids:?}");
        kafka::install(&self.control, &b, &settings, &artifacts)
            .map_err(|e| DbError::failed(what(), e))?;
        // A clean stop closes its ZooKeeper session, so the restarted broker
        // does not find its own stale registration.
        let svc = b.service();
        svc.stop(&self.control, &b.node.name)
            .map_err(|e| DbError::failed(what(), e))?;
        // If the stop had to SIGKILL, its registration lingers until its
        // session expires, and a broker starting meanwhile fails on it.
        let lingering = Instant::now() + self.broker_session_timeout() + Duration::from_secs(5);
        while Instant::now() < lingering
            && zk_ids.first().is_some_and(|&z| {
                self.registered_brokers(z)
                    .map(|ids| ids.contains(&broker))
                    .unwrap_or(false)
            })
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        svc.start(&self.control, &b.node.name)
            .map_err(|e| DbError::failed(what(), e))?;
        kafka::wait_answering(&[b], &settings, timeout).map_err(|e| DbError::failed(what(), e))
    }

    fn broker_session_timeout(&self) -> Duration {
        Duration::from_millis(self.lock().kafka_settings.zookeeper_session_timeout_ms as u64)
    }

    fn zxid(&self, zk_id: i64) -> Result<Option<u64>, DbError> {
        let addr = self.zk_addr(zk_id)?;
        Ok(zk_client::four_letter_word(addr, "srvr", ASK_TIMEOUT)
            .ok()
            .and_then(|t| zk_client::parse_srvr(&t).ok())
            .and_then(|s| s.zxid))
    }

    fn advance_zxid(&self, zk_id: i64, beyond: u64, timeout: Duration) -> Result<u64, DbError> {
        let deadline = Instant::now() + timeout;
        let addr = self.zk_addr(zk_id)?;
        let what = || format!("advance the zxid of ZooKeeper server {zk_id} past {beyond:#x}");
        let mut now = self
            .zxid(zk_id)?
            .ok_or_else(|| DbError::failed(what(), "the server does not serve"))?;
        if now > beyond {
            return Ok(0);
        }
        if now >> 32 < beyond >> 32 {
            // Writes cannot pass an epoch; elections can. The old ensemble
            // re-elected meanwhile (e.g. its leader was cut off: with
            // ZooKeeper and Kafka colocated, the moved broker's node may
            // run it), so restart this server's ensemble until its epoch
            // has caught up.
            self.raise_epoch(zk_id, (beyond >> 32) as u32, deadline)?;
            now = self
                .zxid(zk_id)?
                .ok_or_else(|| DbError::failed(what(), "the server stopped serving"))?;
            if now > beyond {
                return Ok(0);
            }
        }
        let mut session = ZkSession::connect(addr, Duration::from_secs(10), Duration::from_secs(5))
            .map_err(|e| DbError::failed(what(), e))?;
        let _ = session.create("/splitbrain-nemesis", b"");
        let mut writes = 0u64;
        // Each create is one transaction; check the real zxid every 200.
        loop {
            let current = self
                .zxid(zk_id)?
                .ok_or_else(|| DbError::failed(what(), "the server stopped serving"))?;
            if current > beyond {
                let _ = session.close();
                return Ok(writes);
            }
            if Instant::now() >= deadline || writes >= 1_000_000 {
                return Err(DbError::failed(
                    what(),
                    format!("still at {current:#x} after {writes} writes"),
                ));
            }
            let batch = (beyond - current + 1).min(200);
            for _ in 0..batch {
                session
                    .create(&format!("/splitbrain-nemesis/pad-{writes}"), b"")
                    .map_err(|e| DbError::failed(what(), e))?;
                writes += 1;
            }
        }
    }

    fn create_paths(&self, zk_id: i64, paths: &[&str]) -> Result<u64, DbError> {
        let addr = self.zk_addr(zk_id)?;
        let what = || format!("create znodes on ZooKeeper server {zk_id}");
        let mut session = ZkSession::connect(addr, Duration::from_secs(10), Duration::from_secs(5))
            .map_err(|e| DbError::failed(what(), e))?;
        let mut created = 0;
        for path in paths {
            let mut prefix = String::new();
            for part in path.split('/').filter(|p| !p.is_empty()) {
                prefix.push('/');
                prefix.push_str(part);
                if session
                    .create(&prefix, b"")
                    .map_err(|e| DbError::failed(what(), e))?
                {
                    created += 1;
                }
            }
        }
        let _ = session.close();
        Ok(created)
    }

    fn registered_brokers(&self, zk_id: i64) -> Result<Vec<i64>, DbError> {
        let addr = self.zk_addr(zk_id)?;
        Ok(kafka::registered_brokers(addr, ASK_TIMEOUT)
            .map_err(|e| DbError::failed(format!("/brokers/ids on server {zk_id}"), e))?
            .into_iter()
            .map(i64::from)
            .collect())
    }
}
