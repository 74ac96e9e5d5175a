//! splitbrain-workloads: the clients that put load on a real Kafka cluster
//! and record every operation in the history, and the observer that samples
//! what every server believes.
//!
//! - [`queue`]: the queue workload (producers with retries and a DLQ,
//!   idempotent consumers, closing phases); see `docs/workloads.md`;
//! - [`observer`]: the sampler recording `observe` events;
//! - [`stop`]: the external stop of a run (Ctrl-C);
//! - [`WorkloadError`]: the crate's error.
#![warn(missing_docs)]

pub mod applied;
pub mod backoff;
pub mod consumer;
pub mod dlq;
pub mod error;
pub mod observer;
pub mod producer;
pub mod queue;
pub mod settings;
pub mod stop;

pub use error::WorkloadError;
