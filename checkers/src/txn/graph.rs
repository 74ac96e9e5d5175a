//! The transactions' dependency graph and its cycles.
//!
//! Nodes are transactions (their ids, 0..n); edges come in four kinds:
//! `ww` (one log's order between two writers), `wr` (writer to reader),
//! `process` (one process's order) and `realtime` (one completed before
//! the other was invoked). The whole graph is a compact adjacency array
//! ([`Digraph`], 8 bytes per edge each way) that implements petgraph's
//! visit traits, so petgraph's iterative Kosaraju finds its strongly
//! connected components without recursion (a history's realtime chains
//! are as long as the history: a recursive Tarjan would overflow the
//! stack). Each component with a cycle is then small enough to copy into a
//! petgraph `Graph` with edge kinds, where the cycle is classified: the
//! fewest kinds of edge it needs (first the base kind alone, then with
//! `process`, then with `realtime`), and a shortest one (BFS).

use fixedbitset::FixedBitSet;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{
    EdgeFiltered, EdgeRef, GraphBase, IntoNeighbors, IntoNeighborsDirected, IntoNodeIdentifiers,
    Visitable,
};
use petgraph::Direction;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Edge kind bits.
pub(crate) const WW: u8 = 1;
pub(crate) const WR: u8 = 2;
pub(crate) const PROCESS: u8 = 4;
pub(crate) const REALTIME: u8 = 8;

/// `from -> to` packed into one integer: sorting packed edges sorts them by
/// source, then target.
#[inline]
pub(crate) fn pack(from: u32, to: u32) -> u64 {
    (u64::from(from) << 32) | u64::from(to)
}

/// The inverse of [`pack`].
#[inline]
pub(crate) fn unpack(e: u64) -> (u32, u32) {
    ((e >> 32) as u32, e as u32)
}

/// A directed graph over nodes `0..n` as adjacency arrays both ways.
pub(crate) struct Digraph {
    out_row: Vec<usize>,
    out_col: Vec<u32>,
    in_row: Vec<usize>,
    in_col: Vec<u32>,
}

impl Digraph {
    /// Builds the graph of `n` nodes from packed edges, which `edges`
    /// hands to its argument one at a time; it is called twice (parallel
    /// edges are kept: they do not change the components).
    pub(crate) fn from_packed(n: usize, edges: impl Fn(&mut dyn FnMut(u64))) -> Self {
        let mut out_row = vec![0usize; n + 1];
        let mut in_row = vec![0usize; n + 1];
        edges(&mut |e| {
            let (f, t) = unpack(e);
            out_row[f as usize + 1] += 1;
            in_row[t as usize + 1] += 1;
        });
        for i in 0..n {
            out_row[i + 1] += out_row[i];
            in_row[i + 1] += in_row[i];
        }
        let m = out_row[n];
        let mut out_col = vec![0u32; m];
        let mut in_col = vec![0u32; m];
        let mut out_fill = out_row.clone();
        let mut in_fill = in_row.clone();
        edges(&mut |e| {
            let (f, t) = unpack(e);
            out_col[out_fill[f as usize]] = t;
            out_fill[f as usize] += 1;
            in_col[in_fill[t as usize]] = f;
            in_fill[t as usize] += 1;
        });
        Digraph {
            out_row,
            out_col,
            in_row,
            in_col,
        }
    }

    fn nodes(&self) -> usize {
        self.out_row.len() - 1
    }

    fn out(&self, n: u32) -> &[u32] {
        &self.out_col[self.out_row[n as usize]..self.out_row[n as usize + 1]]
    }

    fn incoming(&self, n: u32) -> &[u32] {
        &self.in_col[self.in_row[n as usize]..self.in_row[n as usize + 1]]
    }
}

impl GraphBase for Digraph {
    type EdgeId = ();
    type NodeId = u32;
}

impl<'a> IntoNeighbors for &'a Digraph {
    type Neighbors = std::iter::Copied<std::slice::Iter<'a, u32>>;
    fn neighbors(self, n: u32) -> Self::Neighbors {
        self.out(n).iter().copied()
    }
}

impl<'a> IntoNeighborsDirected for &'a Digraph {
    type NeighborsDirected = std::iter::Copied<std::slice::Iter<'a, u32>>;
    fn neighbors_directed(self, n: u32, d: Direction) -> Self::NeighborsDirected {
        match d {
            Direction::Outgoing => self.out(n).iter().copied(),
            Direction::Incoming => self.incoming(n).iter().copied(),
        }
    }
}

impl IntoNodeIdentifiers for &Digraph {
    type NodeIdentifiers = std::ops::Range<u32>;
    fn node_identifiers(self) -> Self::NodeIdentifiers {
        0..self.nodes() as u32
    }
}

impl Visitable for Digraph {
    type Map = FixedBitSet;
    fn visit_map(&self) -> FixedBitSet {
        FixedBitSet::with_capacity(self.nodes())
    }
    fn reset_map(&self, map: &mut FixedBitSet) {
        map.clear();
        map.grow(self.nodes());
    }
}

/// One cycle: its nodes in order (the last has an edge back to the first)
/// and, per node, the kind of the edge leaving it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cycle {
    /// 0: base edges alone; 1: needs `process`; 2: needs `realtime`.
    pub(crate) stage: u8,
    pub(crate) nodes: Vec<u32>,
    pub(crate) kinds: Vec<u8>,
}

/// The strongly connected components of `g` with more than one node.
pub(crate) fn components(g: &Digraph) -> Vec<Vec<u32>> {
    let mut sccs = kosaraju_scc(g);
    sccs.retain(|c| c.len() > 1);
    sccs
}

/// Finds one cycle in a strongly connected component (of a graph without
/// self-edges) and classifies it: the fewest kinds it needs, beyond the
/// `base` kind, and among those a shortest. `kinds(a, b)` is the set of
/// kinds of the edges `a -> b` (0: none).
pub(crate) fn classify(
    g: &Digraph,
    component: &[u32],
    base: u8,
    kinds: impl Fn(u32, u32) -> u8,
) -> Option<Cycle> {
    let mut local: DiGraph<u32, u8> = DiGraph::with_capacity(component.len(), component.len() * 2);
    let mut index: FxHashMap<u32, NodeIndex> = FxHashMap::default();
    for &n in component {
        index.insert(n, local.add_node(n));
    }
    for &a in component {
        for &b in g.out(a) {
            if let Some(&lb) = index.get(&b) {
                let k = kinds(a, b);
                if k != 0 && local.find_edge(index[&a], lb).is_none() {
                    local.add_edge(index[&a], lb, k);
                }
            }
        }
    }
    for (stage, mask) in [base, base | PROCESS, base | PROCESS | REALTIME]
        .into_iter()
        .enumerate()
    {
        let filtered = EdgeFiltered::from_fn(&local, |e| e.weight() & mask != 0);
        let Some(sub) = kosaraju_scc(&filtered).into_iter().find(|c| c.len() > 1) else {
            continue;
        };
        // A shortest cycle through one of a few starting nodes.
        let mut best: Option<Vec<NodeIndex>> = None;
        for &start in sub.iter().take(8) {
            if let Some(c) = shortest_cycle_through(&local, start, mask) {
                if best.as_ref().is_none_or(|b| c.len() < b.len()) {
                    best = Some(c);
                }
            }
        }
        let path = best?;
        let mut kinds_out = Vec::with_capacity(path.len());
        for (i, &a) in path.iter().enumerate() {
            let b = path[(i + 1) % path.len()];
            let k = local[local.find_edge(a, b)?] & mask;
            // The least severe kind the edge has: base, then process.
            let chosen = [base, PROCESS, REALTIME]
                .into_iter()
                .find(|&x| k & x != 0)
                .unwrap_or(k);
            kinds_out.push(chosen);
        }
        return Some(Cycle {
            stage: stage as u8,
            nodes: path.iter().map(|&n| local[n]).collect(),
            kinds: kinds_out,
        });
    }
    None
}

/// The shortest cycle through `start` over edges whose kind meets `mask`
/// (breadth-first search back to `start`).
fn shortest_cycle_through(
    g: &DiGraph<u32, u8>,
    start: NodeIndex,
    mask: u8,
) -> Option<Vec<NodeIndex>> {
    let mut parent: FxHashMap<NodeIndex, NodeIndex> = FxHashMap::default();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for e in g.edges(n) {
            if e.weight() & mask == 0 {
                continue;
            }
            let m = e.target();
            if m == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return Some(path);
            }
            if let std::collections::hash_map::Entry::Vacant(v) = parent.entry(m) {
                v.insert(n);
                queue.push_back(m);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(u32, u32, u8)]) -> (Digraph, impl Fn(u32, u32) -> u8 + '_) {
        let packed: Vec<u64> = edges.iter().map(|&(a, b, _)| pack(a, b)).collect();
        let g = Digraph::from_packed(n, |f: &mut dyn FnMut(u64)| {
            packed.iter().for_each(|&e| f(e))
        });
        let kinds = move |a: u32, b: u32| {
            edges
                .iter()
                .filter(|e| e.0 == a && e.1 == b)
                .fold(0, |k, e| k | e.2)
        };
        (g, kinds)
    }

    #[test]
    fn components_and_the_fewest_kinds_a_cycle_needs() {
        // 0 -ww-> 1 -ww-> 0 is a base cycle; 2 -ww-> 3 -rt-> 2 needs realtime;
        // 4 -ww-> 5 -process-> 4 needs process; 6 -> 7 is no cycle.
        let edges = [
            (0, 1, WW),
            (1, 0, WW),
            (1, 2, REALTIME),
            (2, 3, WW),
            (3, 2, REALTIME),
            (4, 5, WW),
            (5, 4, PROCESS | REALTIME),
            (6, 7, WW),
        ];
        let (g, kinds) = graph(8, &edges);
        let mut comps = components(&g);
        for c in &mut comps {
            c.sort_unstable();
        }
        comps.sort();
        assert_eq!(comps, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
        let c = classify(&g, &comps[0], WW, &kinds).unwrap();
        assert_eq!((c.stage, c.kinds.clone()), (0, vec![WW, WW]));
        let c = classify(&g, &comps[1], WW, &kinds).unwrap();
        assert_eq!(c.stage, 2);
        let c = classify(&g, &comps[2], WW, &kinds).unwrap();
        assert_eq!(c.stage, 1);
        let mut k = c.kinds.clone();
        k.sort_unstable();
        assert_eq!(k, vec![WW, PROCESS]);
    }

    #[test]
    fn a_shortest_cycle_is_chosen() {
        // A long cycle 0->1->2->3->0 and a short one 0->2->0 in one component.
        let edges = [
            (0, 1, WR),
            (1, 2, WR),
            (2, 3, WR),
            (3, 0, WR),
            (0, 2, WR),
            (2, 0, WR),
        ];
        let (g, kinds) = graph(4, &edges);
        let comps = components(&g);
        assert_eq!(comps.len(), 1);
        let c = classify(&g, &comps[0], WR, &kinds).unwrap();
        assert_eq!(c.nodes.len(), 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Random forward edges (no cycle) plus `k` back edges, each inside
        /// its own range of nodes with a forward edge across the range: exactly
        /// `k` components, each with a real cycle that closes, of the kinds
        /// the back edge and the range's edges allow.
        #[test]
        fn planted_back_edges_are_found_exactly(
            seed in proptest::prelude::any::<u64>(),
            k in 0usize..6,
            width in 2u32..6,
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let span = width + 3;
            let n = (k as u32 + 1) * span;
            let kinds_all = [WW, WR, PROCESS, REALTIME];
            let mut edges: Vec<(u32, u32, u8)> = Vec::new();
            for a in 0..n {
                for _ in 0..3 {
                    let b = rng.random_range(a..n);
                    if b > a {
                        edges.push((a, b, kinds_all[rng.random_range(0..4)]));
                    }
                }
            }
            let mut planted = Vec::new();
            for m in 0..k as u32 {
                let (lo, hi) = (m * span + 1, m * span + 1 + width);
                let across = [WW, PROCESS, REALTIME][rng.random_range(0..3)];
                edges.push((lo, hi, across));
                edges.push((hi, lo, WW));
                planted.push((lo, hi));
            }
            // One kind per pair: the planted one wins (it was pushed last).
            edges.reverse();
            let mut seen = std::collections::HashSet::new();
            edges.retain(|e| seen.insert((e.0, e.1)));
            edges.sort_unstable();
            let (g, kinds) = graph(n as usize, &edges);
            // The oracle: the fewest order kinds a path lo -> hi needs.
            let reaches = |lo: u32, hi: u32, mask: u8| {
                let mut seen = vec![false; n as usize];
                let mut stack = vec![lo];
                while let Some(a) = stack.pop() {
                    if a == hi {
                        return true;
                    }
                    for e in edges.iter().filter(|e| e.0 == a && e.2 & mask != 0) {
                        if !seen[e.1 as usize] {
                            seen[e.1 as usize] = true;
                            stack.push(e.1);
                        }
                    }
                }
                false
            };
            let comps = components(&g);
            proptest::prop_assert_eq!(comps.len(), k);
            for c in &comps {
                let cycle = classify(&g, c, WW, &kinds);
                proptest::prop_assert!(cycle.is_some());
                let cycle = cycle.unwrap();
                let len = cycle.nodes.len();
                proptest::prop_assert!(len >= 2);
                for i in 0..len {
                    let (a, b) = (cycle.nodes[i], cycle.nodes[(i + 1) % len]);
                    proptest::prop_assert!(kinds(a, b) & cycle.kinds[i] != 0, "{} -> {} is no edge", a, b);
                }
                // The stage says which order kinds it used, and no cycle
                // needing fewer exists.
                let used = cycle.kinds.iter().fold(0, |x, y| x | y);
                let stage = if used & REALTIME != 0 { 2 } else if used & PROCESS != 0 { 1 } else { 0 };
                proptest::prop_assert_eq!(stage, cycle.stage);
                let (lo, hi) = *planted.iter().find(|p| c.contains(&p.0)).unwrap();
                let fewest = if reaches(lo, hi, WW) { 0 } else if reaches(lo, hi, WW | PROCESS) { 1 } else { 2 };
                proptest::prop_assert_eq!(cycle.stage, fewest);
            }
        }
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 2_000_000u32;
        let mut packed: Vec<u64> = (0..n - 1).map(|i| pack(i, i + 1)).collect();
        packed.push(pack(n - 1, 0));
        let g = Digraph::from_packed(n as usize, |f: &mut dyn FnMut(u64)| {
            packed.iter().for_each(|&e| f(e))
        });
        let comps = components(&g);
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].len(), n as usize);
    }
}
