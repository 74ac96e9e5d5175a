//! splitbrain-environments: where splitbrain's nodes come from and how
//! ZooKeeper and Kafka run on them, in three rooms:
//!
//! - [`nodes`]: provisioning, reaping and recording the nodes (netns,
//!   docker, ssh). Every environment records an [`EnvState`] (JSON in its
//!   state directory) that other code loads by name to get the nodes, then
//!   talks to them only over SSH through [`splitbrain_core::control`].
//! - [`db`]: ZooKeeper and Kafka on those nodes (jars, configuration,
//!   lifecycle, membership, topics).
//! - [`probes`]: the pinned wire clients that ask one server at a time what
//!   it believes, and the observation of a whole cluster built on them.
#![warn(missing_docs)]

pub mod db;
pub mod nodes;
pub mod probes;

pub use db::ClusterError;
pub use nodes::{EnvError, EnvKind, EnvState, SharedDir};
