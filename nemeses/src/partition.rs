//! Partitions applied: iptables rules inside the nodes, over SSH.
//!
//! A [`Partitioner`] keeps *layers* of cuts (a grudge is one layer; cutting
//! one broker off from some ZooKeeper servers is another) and makes every
//! node's splitbrain chain hold exactly the union of the active layers, so
//! faults can overlap and each can be lifted on its own. Rules live only in
//! splitbrain's own chain ([`splitbrain_core::firewall::CHAIN`]); healing
//! touches nothing else.

use crate::grudge::Grudge;
use serde::Serialize;
use splitbrain_core::control::{Control, ControlError};
use splitbrain_core::firewall::{self, Block};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// Bound of one rule change on one node.
const RULE_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound of one probe's TCP connect: a dropped SYN is never answered, while
/// a reachable peer's kernel answers (accept or refuse) within milliseconds.
pub const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What one TCP connect from a node to a peer saw: the proof that a cut
/// holds, or that a link kept (or healed) works.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The node the connect ran on (inside its namespace, over SSH).
    pub from: String,
    /// The peer node connected to.
    pub to: String,
    /// `connected`, `refused` (the peer's kernel answered: packets flow),
    /// `timeout` (no answer within [`PROBE_CONNECT_TIMEOUT`]: dropped), or
    /// `error:` and what the connect said.
    pub outcome: String,
    /// Whether packets flowed both ways: `connected` or `refused`.
    pub reached: bool,
}

/// One layer: for each node, the peers (by node name) it exchanges no
/// packets with.
pub type Cuts = BTreeMap<String, BTreeSet<String>>;

/// Identifies a layer of cuts added with [`Partitioner::add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerId(u64);

/// Applies and lifts cuts between nodes.
#[derive(Debug)]
pub struct Partitioner {
    control: Control,
    layers: BTreeMap<LayerId, Cuts>,
    next: u64,
}

impl Partitioner {
    /// Cuts between the nodes of `control` (names resolve to their addresses).
    pub fn new(control: Control) -> Self {
        Self {
            control,
            layers: BTreeMap::new(),
            next: 0,
        }
    }

    /// The cuts of a grudge as a layer: each node drops each peer it must
    /// not reach, so the cut holds in both directions on both sides.
    pub fn cuts_of(grudge: &Grudge) -> Cuts {
        grudge.drops()
    }

    /// Adds a layer and applies it. The nodes it names must be nodes of the
    /// control handle. On error the layer is kept (so [`Partitioner::heal`]
    /// still lifts whatever part was applied).
    pub fn add(&mut self, cuts: Cuts) -> Result<LayerId, ControlError> {
        let id = LayerId(self.next);
        self.next += 1;
        let touched: BTreeSet<String> = cuts.keys().cloned().collect();
        self.layers.insert(id, cuts);
        self.sync(&touched)?;
        Ok(id)
    }

    /// Lifts one layer (the others stay).
    pub fn remove(&mut self, id: LayerId) -> Result<(), ControlError> {
        if let Some(cuts) = self.layers.remove(&id) {
            let touched: BTreeSet<String> = cuts.keys().cloned().collect();
            self.sync(&touched)?;
        }
        Ok(())
    }

    /// Whether any layer is active.
    pub fn is_cut(&self) -> bool {
        self.layers.values().any(|c| !c.is_empty())
    }

    /// The union of the active layers: what the nodes' chains hold.
    pub fn current(&self) -> Cuts {
        let mut all = Cuts::new();
        for cuts in self.layers.values() {
            for (node, peers) in cuts {
                all.entry(node.clone())
                    .or_default()
                    .extend(peers.iter().cloned());
            }
        }
        all
    }

    /// Forgets every layer and empties splitbrain's chain on *every* node of
    /// the control handle (not only those this partitioner touched: a
    /// crashed earlier run may have left rules). Returns the errors of nodes
    /// that could not be healed.
    pub fn heal(&mut self) -> Vec<ControlError> {
        self.layers.clear();
        self.control
            .on_all(|_, s| firewall::heal(s, RULE_TIMEOUT))
            .into_iter()
            .filter_map(|(_, r)| r.err())
            .collect()
    }

    /// Like [`Partitioner::heal`], then removes splitbrain's chain and its
    /// jumps from every node, leaving the firewall as splitbrain found it.
    pub fn remove_all(&mut self) -> Vec<ControlError> {
        self.layers.clear();
        self.control
            .on_all(|_, s| firewall::remove(s, RULE_TIMEOUT))
            .into_iter()
            .filter_map(|(_, r)| r.err())
            .collect()
    }

    /// Whether `from` should reach `to` under the active layers: neither
    /// drops the other.
    pub fn should_reach(&self, from: &str, to: &str) -> bool {
        let all = self.current();
        let drops = |a: &str, b: &str| all.get(a).is_some_and(|peers| peers.contains(b));
        !drops(from, to) && !drops(to, from)
    }

    /// Runs one TCP connect (to `port`, bounded by
    /// [`PROBE_CONNECT_TIMEOUT`]) for each `(from, to)` pair, from inside
    /// `from`'s namespace over SSH: all pairs of one node at once, all
    /// nodes at once. Any answer, even a refusal, means packets flow; a
    /// timeout means they are dropped. Results in the order of `pairs`.
    pub fn probe(&self, pairs: &[(String, String)], port: u16) -> Result<Vec<Probe>, ControlError> {
        let mut by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in pairs {
            self.address(from)?;
            by_node
                .entry(from.clone())
                .or_default()
                .insert(self.address(to)?.to_string());
        }
        let secs = PROBE_CONNECT_TIMEOUT.as_secs_f64();
        let outcomes: Vec<(String, Result<String, ControlError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = by_node
                .into_iter()
                .map(|(node, addrs)| {
                    let control = self.control.clone();
                    let calls: Vec<String> = addrs.iter().map(|a| format!("p {a} &")).collect();
                    // `timeout` exits 124 when the connect hangs (a dropped SYN).
                    let cmd = format!(
                        "p() {{ o=$(timeout {secs} bash -c \"exec 3<>/dev/tcp/$1/{port}\" 2>&1); r=$?; \
                         case $r in 0) v=connected;; 124) v=timeout;; \
                         *) case \"$o\" in *refused*) v=refused;; \
                         *) v=\"error:$(printf '%s' \"$o\" | tr -s ' \\n' '__' | tail -c 80)\";; esac;; esac; \
                         echo \"$1 $v\"; }}; {} wait",
                        calls.join(" ")
                    );
                    scope.spawn(move || {
                        let out = control.on(&node, move |s| s.exec_ok(&cmd, RULE_TIMEOUT));
                        (node, out.map(|o| o.stdout))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (
                            "?".into(),
                            Err(ControlError::WorkerGone {
                                node: "?".into(),
                                command: "probe".into(),
                            }),
                        )
                    })
                })
                .collect()
        });
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        for (node, out) in outcomes {
            for line in out?.lines() {
                if let Some((addr, outcome)) = line.trim().split_once(' ') {
                    seen.insert((node.clone(), addr.to_string()), outcome.to_string());
                }
            }
        }
        pairs
            .iter()
            .map(|(from, to)| {
                let addr = self.address(to)?.to_string();
                let outcome = seen
                    .get(&(from.clone(), addr))
                    .cloned()
                    .unwrap_or_else(|| "error:no-answer".into());
                Ok(Probe {
                    reached: matches!(outcome.as_str(), "connected" | "refused"),
                    from: from.clone(),
                    to: to.clone(),
                    outcome,
                })
            })
            .collect()
    }

    fn address(&self, node: &str) -> Result<IpAddr, ControlError> {
        self.control
            .node(node)
            .map(|n| n.address)
            .ok_or_else(|| ControlError::UnknownNode {
                node: node.to_string(),
                command: "partition".into(),
                known: self
                    .control
                    .nodes()
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Rewrites the chains of `nodes` to the current union.
    fn sync(&self, nodes: &BTreeSet<String>) -> Result<(), ControlError> {
        let all = self.current();
        let mut plans = Vec::new();
        for node in nodes {
            let blocks = all
                .get(node)
                .map(|peers| {
                    peers
                        .iter()
                        .map(|p| self.address(p).map(Block::both))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            plans.push((node.clone(), blocks));
        }
        // Concurrently: a partition should start at (nearly) one moment.
        let results: Vec<Result<(), ControlError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = plans
                .into_iter()
                .map(|(node, blocks)| {
                    let control = self.control.clone();
                    scope.spawn(move || {
                        control.on(&node, move |s| {
                            firewall::set_blocked(s, &blocks, RULE_TIMEOUT)
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ControlError::WorkerGone {
                            node: "?".into(),
                            command: "partition".into(),
                        })
                    })
                })
                .collect()
        });
        results.into_iter().collect()
    }
}
