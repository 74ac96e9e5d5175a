//! Faults splitbrain injects into real clusters: partitions (as grudges applied
//! with iptables inside nodes), process kills and pauses, membership changes,
//! and schedules that start and stop them during a run.
//!
//! Layers, as in Jepsen: [`grudge`] computes who drops whom; [`partition`]
//! applies cuts over SSH; [`nemesis`] starts, records and undoes faults
//! through [`splitbrain_core::db::ClusterControl`]; [`schedule`] times them.
#![warn(missing_docs)]

#[cfg(test)]
mod fake;
pub mod grammar;
pub mod grudge;
pub mod nemesis;
pub mod partition;
pub mod replay;
pub mod schedule;

pub use grammar::{FaultDefaults, FaultSpecError};
pub use grudge::{Grudge, GrudgeError, PartitionKind, Topology};
pub use nemesis::{Fault, FaultId, Nemesis, NemesisError, NemesisOptions, Pin, Target};
pub use partition::{Cuts, LayerId, Partitioner, Probe};
pub use schedule::{
    Action, FaultError, FaultPhase, Interval, IntervalError, Schedule, ScheduleReport,
    ScheduleSpec, Step,
};
