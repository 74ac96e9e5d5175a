//! Faults splitbrain injects into real clusters: partitions (as grudges applied
//! with iptables inside nodes), process kills and pauses, membership changes.
#![warn(missing_docs)]

pub mod grudge;

pub use grudge::{Grudge, GrudgeError, PartitionKind, Topology};
