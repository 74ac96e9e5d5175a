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

use std::io;
use std::net::SocketAddr;

pub use wire::Malformed;

/// Failure asking one ZooKeeper server or one Kafka broker.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// TCP connect, read or write failed or timed out.
    #[error("{addr}: {source}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
    /// The server answered something this client cannot parse.
    #[error("{addr}: {source}")]
    Malformed {
        /// The server.
        addr: SocketAddr,
        /// What was wrong with it.
        source: Malformed,
    },
    /// A ZooKeeper server answered a request with a ZooKeeper error code.
    #[error("{addr}: {op} {path} failed with ZooKeeper error {code} ({})", zk_client::zk_error_name(*.code))]
    ZkServer {
        /// The server.
        addr: SocketAddr,
        /// The operation.
        op: &'static str,
        /// The znode.
        path: String,
        /// ZooKeeper's error code (e.g. -101 no node).
        code: i32,
    },
    /// A Kafka server answered a request with a Kafka error code (e.g. 6
    /// NOT_LEADER_OR_FOLLOWER from a controller that does not lead).
    #[error("{addr}: {request} failed with Kafka error {code}{}", kafka_client::error_name(*.code).map(|n| format!(" ({n})")).unwrap_or_default())]
    KafkaServer {
        /// The server.
        addr: SocketAddr,
        /// The request.
        request: &'static str,
        /// Kafka's error code.
        code: i16,
    },
    /// The thread asking the server panicked (a bug in splitbrain).
    #[error(
        "{addr}: the observer thread panicked (a bug in splitbrain: please report it); ask again"
    )]
    Panicked {
        /// The server.
        addr: SocketAddr,
    },
}
