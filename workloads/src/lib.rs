//! splitbrain-workloads: the clients that put load on a real Kafka cluster
//! and record every operation in the history, and the observer that samples
//! what every server believes.
#![warn(missing_docs)]

pub mod observer;
