//! Grudges: who drops whose packets during a network partition.
//!
//! A [`Grudge`] is computed from the cluster's nodes and a [`PartitionKind`]. It
//! is modelled as the graph of links that still work (petgraph's `UnGraphMap`
//! over node indices); everything not linked is dropped in both directions.
//! Traffic between the control node and the nodes is never part of a grudge:
//! splitbrain must keep its SSH sessions through every partition.

use petgraph::graphmap::UnGraphMap;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// The shapes of partition splitbrain knows how to cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Two halves in node order (the first half is the smaller one when odd).
    Halves,
    /// Two halves of randomly shuffled nodes.
    RandomHalves,
    /// One random node cut off from all others.
    IsolateOne,
    /// Nodes in a random ring; each sees only its neighbours, which with itself
    /// form a majority, and every node's majority is different.
    MajoritiesRing,
    /// Two halves joined by one node that sees both.
    Bridge,
    /// The current ZooKeeper leader cut off from all others.
    IsolateZkLeader,
    /// The current Kafka controller cut off from all others.
    IsolateKafkaController,
    /// Kafka brokers cut off from ZooKeeper servers, still reaching each other.
    ZkFromKafka,
    /// KRaft mode: the controller leading the metadata quorum cut off from
    /// all others.
    IsolateKraftLeader,
}

impl PartitionKind {
    /// Every kind, in documentation order.
    pub const ALL: [PartitionKind; 9] = [
        PartitionKind::Halves,
        PartitionKind::RandomHalves,
        PartitionKind::IsolateOne,
        PartitionKind::MajoritiesRing,
        PartitionKind::Bridge,
        PartitionKind::IsolateZkLeader,
        PartitionKind::IsolateKafkaController,
        PartitionKind::ZkFromKafka,
        PartitionKind::IsolateKraftLeader,
    ];

    /// The kebab-case name used on the command line and in histories.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::Halves => "halves",
            PartitionKind::RandomHalves => "random-halves",
            PartitionKind::IsolateOne => "isolate-one",
            PartitionKind::MajoritiesRing => "majorities-ring",
            PartitionKind::Bridge => "bridge",
            PartitionKind::IsolateZkLeader => "isolate-zk-leader",
            PartitionKind::IsolateKafkaController => "isolate-kafka-controller",
            PartitionKind::ZkFromKafka => "zk-from-kafka",
            PartitionKind::IsolateKraftLeader => "isolate-kraft-leader",
        }
    }
}

impl fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PartitionKind {
    type Err = GrudgeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PartitionKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| GrudgeError::UnknownKind(s.to_string()))
    }
}

/// What a grudge is computed from: the nodes and what runs where.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Every node taking part, by name (`n1`, `n2`, …).
    pub nodes: Vec<String>,
    /// Nodes that run a ZooKeeper server.
    pub zookeeper: Vec<String>,
    /// Nodes that run a Kafka broker.
    pub kafka: Vec<String>,
    /// Node of the ZooKeeper leader, when known.
    pub zk_leader: Option<String>,
    /// Node of the Kafka controller, when known.
    pub kafka_controller: Option<String>,
    /// KRaft mode: node of the controller leading the metadata quorum, when known.
    pub kraft_leader: Option<String>,
}

/// Why a grudge could not be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrudgeError {
    /// The name is not a partition kind.
    #[error("unknown partition kind `{0}`; choose one of: halves, random-halves, isolate-one, majorities-ring, bridge, isolate-zk-leader, isolate-kafka-controller, zk-from-kafka, isolate-kraft-leader")]
    UnknownKind(String),
    /// The kind needs more nodes than there are.
    #[error("partition `{kind}` needs at least {needed} nodes, the cluster has {have}; add nodes or pick another kind")]
    TooFewNodes {
        /// The kind asked for.
        kind: PartitionKind,
        /// How many it needs.
        needed: usize,
        /// How many there are.
        have: usize,
    },
    /// The kind targets a role nobody holds right now.
    #[error("partition `{kind}` needs to know the {role}, but none was observed; wait until the cluster has one")]
    UnknownRole {
        /// The kind asked for.
        kind: PartitionKind,
        /// The role it needs (`ZooKeeper leader`, `Kafka controller`).
        role: &'static str,
    },
    /// A node was named that is not in the topology.
    #[error("node `{0}` is not part of the cluster")]
    UnknownNode(String),
    /// ZooKeeper and Kafka share a node, so they cannot be cut apart.
    #[error("partition `zk-from-kafka` cannot cut node `{0}` from itself: it runs both ZooKeeper and Kafka; put them on separate nodes")]
    CoLocated(String),
}

/// Who can still talk to whom during a partition.
#[derive(Clone, Debug)]
pub struct Grudge {
    kind: PartitionKind,
    nodes: Vec<String>,
    links: UnGraphMap<usize, ()>,
}

impl Grudge {
    /// Computes the grudge of `kind` over `topology`; random kinds draw from `rng`.
    pub fn compute(
        kind: PartitionKind,
        topology: &Topology,
        rng: &mut impl Rng,
    ) -> Result<Grudge, GrudgeError> {
        let nodes = topology.nodes.clone();
        let n = nodes.len();
        let index = |name: &str| {
            nodes
                .iter()
                .position(|x| x == name)
                .ok_or_else(|| GrudgeError::UnknownNode(name.to_string()))
        };
        let need = |needed: usize| {
            if n < needed {
                Err(GrudgeError::TooFewNodes {
                    kind,
                    needed,
                    have: n,
                })
            } else {
                Ok(())
            }
        };
        let all: Vec<usize> = (0..n).collect();
        let components: Vec<Vec<usize>> = match kind {
            PartitionKind::Halves => {
                need(2)?;
                let (a, b) = all.split_at(n / 2);
                vec![a.to_vec(), b.to_vec()]
            }
            PartitionKind::RandomHalves => {
                need(2)?;
                let mut shuffled = all.clone();
                shuffled.shuffle(rng);
                let (a, b) = shuffled.split_at(n / 2);
                vec![a.to_vec(), b.to_vec()]
            }
            PartitionKind::IsolateOne => {
                need(2)?;
                let lone = rng.random_range(0..n);
                isolate(lone, n)
            }
            PartitionKind::IsolateZkLeader => {
                need(2)?;
                let leader = topology
                    .zk_leader
                    .as_deref()
                    .ok_or(GrudgeError::UnknownRole {
                        kind,
                        role: "ZooKeeper leader",
                    })?;
                isolate(index(leader)?, n)
            }
            PartitionKind::IsolateKafkaController => {
                need(2)?;
                let controller =
                    topology
                        .kafka_controller
                        .as_deref()
                        .ok_or(GrudgeError::UnknownRole {
                            kind,
                            role: "Kafka controller",
                        })?;
                isolate(index(controller)?, n)
            }
            PartitionKind::IsolateKraftLeader => {
                need(2)?;
                let leader = topology
                    .kraft_leader
                    .as_deref()
                    .ok_or(GrudgeError::UnknownRole {
                        kind,
                        role: "KRaft quorum leader",
                    })?;
                isolate(index(leader)?, n)
            }
            PartitionKind::ZkFromKafka => {
                if let Some(both) = topology
                    .kafka
                    .iter()
                    .find(|k| topology.zookeeper.contains(k))
                {
                    return Err(GrudgeError::CoLocated(both.clone()));
                }
                let zk = topology
                    .zookeeper
                    .iter()
                    .map(|s| index(s))
                    .collect::<Result<Vec<_>, _>>()?;
                let kafka = topology
                    .kafka
                    .iter()
                    .map(|s| index(s))
                    .collect::<Result<Vec<_>, _>>()?;
                // Only ZooKeeper–Kafka links are cut; nodes running neither
                // keep every link.
                let mut links = full_links(n);
                for &z in &zk {
                    for &k in &kafka {
                        links.remove_edge(z, k);
                    }
                }
                return Ok(Grudge { kind, nodes, links });
            }
            PartitionKind::Bridge => {
                need(3)?;
                // Two halves and the middle node linked to both.
                let mut links = UnGraphMap::new();
                let mid = n / 2;
                for i in 0..n {
                    links.add_node(i);
                }
                for i in 0..n {
                    for j in (i + 1)..n {
                        let same_side = (i < mid) == (j < mid) && i != mid && j != mid;
                        if same_side || i == mid || j == mid {
                            links.add_edge(i, j, ());
                        }
                    }
                }
                return Ok(Grudge { kind, nodes, links });
            }
            PartitionKind::MajoritiesRing => {
                // With fewer than 4 nodes every node's majority is everybody.
                need(4)?;
                let mut ring = all.clone();
                ring.shuffle(rng);
                let majority = n / 2 + 1;
                let reach = majority / 2; // neighbours on each side
                let mut links = UnGraphMap::new();
                for &node in &ring {
                    links.add_node(node);
                }
                for i in 0..n {
                    for d in 1..=reach {
                        links.add_edge(ring[i], ring[(i + d) % n], ());
                    }
                }
                return Ok(Grudge { kind, nodes, links });
            }
        };
        let mut links = UnGraphMap::new();
        for i in 0..n {
            links.add_node(i);
        }
        for part in &components {
            for (x, &a) in part.iter().enumerate() {
                for &b in &part[x + 1..] {
                    links.add_edge(a, b, ());
                }
            }
        }
        Ok(Grudge { kind, nodes, links })
    }

    /// The kind this grudge was computed for.
    pub fn kind(&self) -> PartitionKind {
        self.kind
    }

    /// Whether traffic between `a` and `b` still flows (always true for a node
    /// and itself; false for names outside the grudge).
    pub fn can_reach(&self, a: &str, b: &str) -> bool {
        match (self.position(a), self.position(b)) {
            (Some(x), Some(y)) => x == y || self.links.contains_edge(x, y),
            _ => false,
        }
    }

    /// For each node, the peers whose packets it drops (both directions are
    /// cut, so each pair appears on both sides). Nodes with no grudge are omitted.
    pub fn drops(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for (i, a) in self.nodes.iter().enumerate() {
            let cut: BTreeSet<String> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i && !self.links.contains_edge(i, j))
                .map(|(_, b)| b.clone())
                .collect();
            if !cut.is_empty() {
                out.insert(a.clone(), cut);
            }
        }
        out
    }

    /// `matrix[i][j]` is whether node `i` reaches node `j`, in the topology's
    /// node order: what a measurement with TCP connects must find.
    pub fn reachability(&self) -> Vec<Vec<bool>> {
        let n = self.nodes.len();
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| i == j || self.links.contains_edge(i, j))
                    .collect()
            })
            .collect()
    }

    /// The nodes, in the order of [`Grudge::reachability`].
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|x| x == name)
    }
}

fn isolate(lone: usize, n: usize) -> Vec<Vec<usize>> {
    vec![vec![lone], (0..n).filter(|&i| i != lone).collect()]
}

fn full_links(n: usize) -> UnGraphMap<usize, ()> {
    let mut links = UnGraphMap::new();
    for i in 0..n {
        links.add_node(i);
        for j in 0..i {
            links.add_edge(j, i, ());
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn topo(n: usize) -> Topology {
        Topology {
            nodes: (1..=n).map(|i| format!("n{i}")).collect(),
            ..Topology::default()
        }
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn symmetric(g: &Grudge) {
        let m = g.reachability();
        for (i, row) in m.iter().enumerate() {
            assert!(row[i], "a node always reaches itself");
            for (j, &r) in row.iter().enumerate() {
                assert_eq!(r, m[j][i], "reachability must be symmetric");
            }
        }
    }

    #[test]
    fn halves_cut_the_list_in_two() {
        let g = Grudge::compute(PartitionKind::Halves, &topo(5), &mut rng()).unwrap();
        symmetric(&g);
        assert!(g.can_reach("n1", "n2"));
        assert!(!g.can_reach("n2", "n3"));
        assert!(g.can_reach("n3", "n5"));
        let drops = g.drops();
        assert_eq!(
            drops["n1"],
            ["n3", "n4", "n5"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(drops["n5"].len(), 2);
    }

    #[test]
    fn random_halves_are_two_cliques_of_the_right_sizes() {
        for seed in 0..20 {
            let g = Grudge::compute(
                PartitionKind::RandomHalves,
                &topo(5),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            symmetric(&g);
            let mut sizes: Vec<usize> = g
                .reachability()
                .iter()
                .map(|row| row.iter().filter(|&&r| r).count())
                .collect();
            sizes.sort();
            assert_eq!(sizes, vec![2, 2, 3, 3, 3]);
        }
    }

    #[test]
    fn isolate_one_leaves_exactly_one_node_alone() {
        let g = Grudge::compute(PartitionKind::IsolateOne, &topo(5), &mut rng()).unwrap();
        let alone = g
            .reachability()
            .iter()
            .filter(|row| row.iter().filter(|&&r| r).count() == 1)
            .count();
        assert_eq!(alone, 1);
        assert_eq!(g.drops().len(), 5);
    }

    #[test]
    fn majorities_ring_gives_every_node_a_distinct_majority() {
        let g = Grudge::compute(PartitionKind::MajoritiesRing, &topo(5), &mut rng()).unwrap();
        symmetric(&g);
        let views: BTreeSet<Vec<bool>> = g.reachability().into_iter().collect();
        assert_eq!(views.len(), 5, "each node's view differs");
        for row in g.reachability() {
            assert_eq!(
                row.iter().filter(|&&r| r).count(),
                3,
                "each sees a majority"
            );
        }
    }

    #[test]
    fn majorities_ring_refuses_three_nodes() {
        let err = Grudge::compute(PartitionKind::MajoritiesRing, &topo(3), &mut rng()).unwrap_err();
        assert!(matches!(err, GrudgeError::TooFewNodes { needed: 4, .. }));
    }

    #[test]
    fn bridge_node_sees_both_sides_which_do_not_see_each_other() {
        let g = Grudge::compute(PartitionKind::Bridge, &topo(5), &mut rng()).unwrap();
        symmetric(&g);
        // n3 is the middle of five.
        for other in ["n1", "n2", "n4", "n5"] {
            assert!(g.can_reach("n3", other));
        }
        assert!(g.can_reach("n1", "n2"));
        assert!(g.can_reach("n4", "n5"));
        assert!(!g.can_reach("n1", "n4"));
        assert!(!g.can_reach("n2", "n5"));
    }

    #[test]
    fn isolate_zk_leader_needs_and_uses_the_leader() {
        let mut t = topo(3);
        let err = Grudge::compute(PartitionKind::IsolateZkLeader, &t, &mut rng()).unwrap_err();
        assert!(matches!(err, GrudgeError::UnknownRole { .. }));
        t.zk_leader = Some("n2".into());
        let g = Grudge::compute(PartitionKind::IsolateZkLeader, &t, &mut rng()).unwrap();
        assert!(!g.can_reach("n2", "n1"));
        assert!(!g.can_reach("n2", "n3"));
        assert!(g.can_reach("n1", "n3"));
    }

    #[test]
    fn isolate_kafka_controller_rejects_unknown_nodes() {
        let mut t = topo(3);
        t.kafka_controller = Some("n9".into());
        let err =
            Grudge::compute(PartitionKind::IsolateKafkaController, &t, &mut rng()).unwrap_err();
        assert_eq!(err, GrudgeError::UnknownNode("n9".into()));
        t.kafka_controller = Some("n3".into());
        let g = Grudge::compute(PartitionKind::IsolateKafkaController, &t, &mut rng()).unwrap();
        assert_eq!(g.drops()["n3"].len(), 2);
    }

    #[test]
    fn isolate_kraft_leader_needs_a_known_leader() {
        let mut t = topo(6);
        let err = Grudge::compute(PartitionKind::IsolateKraftLeader, &t, &mut rng()).unwrap_err();
        assert!(matches!(err, GrudgeError::UnknownRole { .. }), "{err:?}");
        t.kraft_leader = Some("n2".into());
        let g = Grudge::compute(PartitionKind::IsolateKraftLeader, &t, &mut rng()).unwrap();
        assert_eq!(g.drops()["n2"].len(), 5);
        assert!(g.can_reach("n1", "n6"));
        assert_eq!(
            "isolate-kraft-leader".parse::<PartitionKind>(),
            Ok(PartitionKind::IsolateKraftLeader)
        );
    }

    #[test]
    fn zk_from_kafka_keeps_each_side_whole() {
        let mut t = topo(6);
        t.zookeeper = vec!["n1".into(), "n2".into(), "n3".into()];
        t.kafka = vec!["n4".into(), "n5".into(), "n6".into()];
        let g = Grudge::compute(PartitionKind::ZkFromKafka, &t, &mut rng()).unwrap();
        symmetric(&g);
        assert!(g.can_reach("n1", "n3"));
        assert!(g.can_reach("n4", "n6"));
        assert!(!g.can_reach("n1", "n4"));
        assert!(!g.can_reach("n3", "n6"));
    }

    #[test]
    fn zk_from_kafka_refuses_co_located_nodes() {
        let mut t = topo(3);
        t.zookeeper = t.nodes.clone();
        t.kafka = vec!["n2".into()];
        let err = Grudge::compute(PartitionKind::ZkFromKafka, &t, &mut rng()).unwrap_err();
        assert_eq!(err, GrudgeError::CoLocated("n2".into()));
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for k in PartitionKind::ALL {
            assert_eq!(k.name().parse::<PartitionKind>().unwrap(), k);
        }
        assert!(matches!(
            "sideways".parse::<PartitionKind>(),
            Err(GrudgeError::UnknownKind(_))
        ));
    }
}
