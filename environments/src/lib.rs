//! Where splitbrain's nodes come from and how ZooKeeper and Kafka run on them.
//!
//! This part: the ZooKeeper/Kafka artifacts, their configuration, their
//! lifecycle on nodes (over SSH) and the observation of what every server
//! believes (over TCP from the control node).
#![warn(missing_docs)]

pub mod kafka_client;
pub mod service;
pub mod wire;
pub mod zk_client;
