//! The pinned wire clients: each request goes to ONE ZooKeeper server
//! ([`zk_client`]) or ONE Kafka broker ([`kafka_client`]) over a fresh TCP
//! connection, so its answer is that server's own view; [`observe`] asks
//! every server of a cluster at once. [`wire`] is the framing both share.
//!
//! Nothing here starts, stops or configures servers (that is [`crate::db`]).

pub mod kafka_client;
pub mod observe;
pub mod wire;
pub mod zk_client;
