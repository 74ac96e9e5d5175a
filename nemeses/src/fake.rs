//! A cluster that exists only in memory, for unit tests of the nemesis's
//! verification and the schedule's fault errors: each knob makes one
//! effect fail to show.

use serde_json::{json, Value};
use splitbrain_core::control::Control;
use splitbrain_core::db::{
    ClusterControl, ControllersAdded, DbError, JoinProcedure, ProcessState, Server, ServerKind,
};
use splitbrain_core::history::HistoryWriter;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Three ZooKeeper servers (1 leads) and two brokers, every process
/// running and serving unless a knob says otherwise.
pub struct FakeDb {
    servers: Vec<Server>,
    /// The controller `kafka_controller` names.
    pub controller: Option<i64>,
    /// SIGKILL leaves the process running.
    pub survives_kill: bool,
    /// SIGSTOP leaves the process running.
    pub ignores_stop: bool,
    /// Servers do not answer (settable while a nemesis holds the fake).
    pub mute: AtomicBool,
    /// Free nodes (for membership faults); none by default.
    pub free: Vec<String>,
    /// Controllers added by `add_controllers` end as voters (the safe
    /// procedure's effect); otherwise the voter set stays 1, 2, 3.
    pub newcomers_become_voters: bool,
    states: Mutex<BTreeMap<(ServerKind, i64), Option<ProcessState>>>,
}

impl FakeDb {
    pub fn new() -> Self {
        let server = |kind, id: i64| Server {
            kind,
            id,
            node: format!("n{id}"),
            address: IpAddr::V4(Ipv4Addr::new(10, 99, 0, id as u8)),
        };
        let servers: Vec<Server> = vec![
            server(ServerKind::Zookeeper, 1),
            server(ServerKind::Zookeeper, 2),
            server(ServerKind::Zookeeper, 3),
            server(ServerKind::Kafka, 4),
            server(ServerKind::Kafka, 5),
        ];
        let states = servers
            .iter()
            .map(|s| {
                (
                    (s.kind, s.id),
                    Some(ProcessState {
                        pid: 1000 + s.id as u32,
                        state: 'S',
                    }),
                )
            })
            .collect();
        Self {
            servers,
            controller: Some(4),
            survives_kill: false,
            ignores_stop: false,
            mute: AtomicBool::new(false),
            free: Vec::new(),
            newcomers_become_voters: false,
            states: Mutex::new(states),
        }
    }

    fn set(&self, s: &Server, state: Option<ProcessState>) {
        self.states.lock().unwrap().insert((s.kind, s.id), state);
    }

    fn get(&self, s: &Server) -> Option<ProcessState> {
        self.states
            .lock()
            .unwrap()
            .get(&(s.kind, s.id))
            .copied()
            .flatten()
    }
}

/// A control handle over no node (the fake's faults need none).
pub fn no_nodes() -> Control {
    Control::connect(&[], Duration::from_secs(1)).unwrap()
}

/// A history writer in `dir`, and its path.
pub fn history(dir: &Path) -> (HistoryWriter, std::path::PathBuf) {
    let path = dir.join("history.jsonl");
    (HistoryWriter::create(&path).unwrap(), path)
}

/// The `(f, value)` of every line of the history at `path`.
pub fn events(path: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["f"].as_str().unwrap_or_default().to_string(),
                v["value"].clone(),
            )
        })
        .collect()
}

impl ClusterControl for FakeDb {
    fn servers(&self) -> Vec<Server> {
        self.servers.clone()
    }
    fn free_nodes(&self) -> Vec<String> {
        self.free.clone()
    }
    fn kill(&self, server: &Server) -> Result<Option<u32>, DbError> {
        let p = self.get(server);
        if !self.survives_kill {
            self.set(server, None);
        }
        Ok(p.map(|p| p.pid))
    }
    fn start(&self, server: &Server, _timeout: Duration) -> Result<(), DbError> {
        self.set(
            server,
            Some(ProcessState {
                pid: 2000 + server.id as u32,
                state: 'S',
            }),
        );
        Ok(())
    }
    fn pause(&self, server: &Server) -> Result<Option<u32>, DbError> {
        let p = self.get(server);
        if let (Some(p), false) = (p, self.ignores_stop) {
            self.set(server, Some(ProcessState { state: 'T', ..p }));
        }
        Ok(p.map(|p| p.pid))
    }
    fn resume(&self, server: &Server) -> Result<Option<u32>, DbError> {
        let p = self.get(server);
        if let Some(p) = p {
            self.set(server, Some(ProcessState { state: 'S', ..p }));
        }
        Ok(p.map(|p| p.pid))
    }
    fn process_state(&self, server: &Server) -> Result<Option<ProcessState>, DbError> {
        Ok(self.get(server))
    }
    fn serving_as(&self, server: &Server) -> Result<Option<String>, DbError> {
        let up = self.get(server).is_some_and(|p| !p.is_stopped());
        Ok((up && !self.mute.load(Ordering::SeqCst)).then(|| "follower".to_string()))
    }
    fn zk_leaders(&self) -> Result<Vec<i64>, DbError> {
        Ok(vec![1])
    }
    fn kafka_controller(&self) -> Result<Option<i64>, DbError> {
        Ok(self.controller)
    }
    fn add_zk_servers(
        &self,
        _nodes: &[String],
        _procedure: JoinProcedure,
        _timeout: Duration,
    ) -> Result<Vec<Server>, DbError> {
        Err(DbError::Unsupported("fake: no membership".into()))
    }
    fn add_controllers(
        &self,
        nodes: &[String],
        _procedure: JoinProcedure,
        _timeout: Duration,
    ) -> Result<ControllersAdded, DbError> {
        let servers: Vec<Server> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Server {
                kind: ServerKind::Controller,
                id: 11 + i as i64,
                node: n.clone(),
                address: IpAddr::V4(Ipv4Addr::new(10, 99, 1, i as u8)),
            })
            .collect();
        for s in &servers {
            self.start(s, Duration::ZERO)?;
        }
        let mut voters = vec![1, 2, 3];
        if self.newcomers_become_voters {
            voters.extend(servers.iter().map(|s| s.id));
        }
        Ok(ControllersAdded {
            servers,
            report: json!({"voters_before": {"voters": [1, 2, 3]}, "voters_after": {"voters": voters}}),
        })
    }
    fn remove_controllers(&self, ids: &[i64], _timeout: Duration) -> Result<Value, DbError> {
        Ok(json!({"removed": ids}))
    }
    fn remove_zk_servers(&self, _ids: &[i64], _timeout: Duration) -> Result<(), DbError> {
        Ok(())
    }
    fn broker_connect(&self, _broker: i64) -> Result<Vec<i64>, DbError> {
        Ok(vec![1, 2, 3])
    }
    fn set_broker_connect(
        &self,
        _broker: i64,
        _zk_ids: &[i64],
        _timeout: Duration,
    ) -> Result<(), DbError> {
        Ok(())
    }
    fn broker_session_timeout(&self) -> Duration {
        Duration::from_secs(6)
    }
    fn zxid(&self, _zk_id: i64) -> Result<Option<u64>, DbError> {
        Ok(None)
    }
    fn advance_zxid(&self, _zk_id: i64, _beyond: u64, _timeout: Duration) -> Result<u64, DbError> {
        Ok(0)
    }
    fn create_paths(&self, _zk_id: i64, _paths: &[&str]) -> Result<u64, DbError> {
        Ok(0)
    }
    fn registered_brokers(&self, _zk_id: i64) -> Result<Vec<i64>, DbError> {
        Ok(vec![])
    }
}
