//! splitbrain-workloads: the clients that put load on a real Kafka cluster
//! and record every operation in the history, and the observer that samples
//! what every server believes.
//!
//! - [`queue`]: the queue workload (producers with retries and a DLQ,
//!   consumers applying effects to a real database, closing phases); see
//!   `docs/workloads.md`;
//! - [`effects`]: the consumers' effect store (SQLite);
//! - [`observer`]: the sampler recording `observe` events;
//! - [`stop`]: the external stop of a run (Ctrl-C);
//! - [`txn`]: the transactional workload (transactional producers, aborts,
//!   read_committed readers; `f: "txn"` micro-operations);
//! - [`WorkloadError`]: the crate's error.
#![warn(missing_docs)]

pub mod backoff;
pub mod consumer;
pub mod dlq;
pub mod effects;
pub mod error;
pub mod observer;
pub mod producer;
pub mod queue;
pub mod settings;
pub mod stop;
pub mod txn;

pub use error::WorkloadError;
