//! Asking ONE Kafka broker what it believes: a Metadata request (API key 3,
//! version 1) over a fresh TCP connection, answered by that broker alone.
//! In KRaft mode also DescribeQuorum (API key 55, version 1), answered by a
//! controller that leads the metadata quorum (others refuse with
//! NOT_LEADER_OR_FOLLOWER), or by a broker, which forwards it to the
//! controller it believes active: so a broker's answer names the leader
//! that broker follows.
//!
//! Why not rdkafka here: librdkafka treats the broker list as bootstrap
//! servers only and then talks to whichever broker it likes (and caches
//! metadata), so a reply could not be pinned to one broker's own view. The
//! request is fixed-size and version 1 is supported by every broker from
//! 0.10 to 3.9, so the hand-written encoding is small and stable.

use crate::probes::wire::{self, Decoder, Encoder, Malformed};
use crate::probes::ProbeError;
use std::net::SocketAddr;
use std::time::Duration;

/// A broker as listed in a Metadata response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataBroker {
    /// `broker.id`.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// One partition as the answering broker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataPartition {
    /// Partition number.
    pub partition: i32,
    /// Kafka error code for this partition (0 = none; 5 = leader not available).
    pub error_code: i16,
    /// Leader broker id, -1 if none.
    pub leader: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
}

/// One topic as the answering broker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataTopic {
    /// Topic name.
    pub name: String,
    /// Kafka error code for the topic (0 = none; 3 = unknown topic).
    pub error_code: i16,
    /// Whether it is an internal topic (`__consumer_offsets`).
    pub internal: bool,
    /// Its partitions, sorted by number.
    pub partitions: Vec<MetadataPartition>,
}

/// A broker's answer to Metadata v1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Brokers it knows are alive.
    pub brokers: Vec<MetadataBroker>,
    /// The controller it names; `None` when it names none (-1).
    pub controller: Option<i32>,
    /// Topics (all of them, or the ones asked for).
    pub topics: Vec<MetadataTopic>,
}

impl QuorumDescription {
    /// The voters backing this leader: itself and every voter that fetched
    /// from it within `window_ms` of the leader's own clock (the leader
    /// reports its current time as its own last-caught-up time). Clock-free
    /// for the observer: all times are the leader's.
    pub fn backing(&self, window_ms: i64) -> Vec<i32> {
        let Some(leader) = self.leader_id else {
            return Vec::new();
        };
        let now = self
            .voters
            .iter()
            .find(|v| v.replica_id == leader)
            .map(|v| v.last_caught_up_ms)
            .unwrap_or(-1);
        self.voters
            .iter()
            .filter(|v| {
                v.replica_id == leader
                    || (now >= 0 && v.last_fetch_ms >= 0 && now - v.last_fetch_ms <= window_ms)
            })
            .map(|v| v.replica_id)
            .collect()
    }
}

impl Metadata {
    /// Leader of `topic`/`partition`, if the broker names one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topics
            .iter()
            .find(|t| t.name == topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
            .filter(|&l| l >= 0)
    }
}

const METADATA: i16 = 3;
const VERSION: i16 = 1;

/// Encodes a Metadata v1 request; `topics: None` asks for all topics.
pub fn encode_metadata_request(correlation_id: i32, topics: Option<&[&str]>) -> Vec<u8> {
    let mut e = Encoder::new()
        .i16(METADATA)
        .i16(VERSION)
        .i32(correlation_id)
        .str16("splitbrain-observer");
    match topics {
        None => e = e.i32(-1),
        Some(ts) => {
            e = e.i32(ts.len() as i32);
            for t in ts {
                e = e.str16(t);
            }
        }
    }
    e.finish()
}

/// Decodes a Metadata v1 response (after its length prefix).
pub fn decode_metadata_response(body: &[u8], correlation_id: i32) -> Result<Metadata, Malformed> {
    let mut d = Decoder::new(body);
    let got = d.i32()?;
    if got != correlation_id {
        return Err(Malformed(format!(
            "correlation id {got}, expected {correlation_id}"
        )));
    }
    let n = d.array_len()?;
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        let node_id = d.i32()?;
        let host = d.str16()?.unwrap_or_default();
        let port = d.i32()?;
        let _rack = d.str16()?;
        brokers.push(MetadataBroker {
            node_id,
            host,
            port,
        });
    }
    let controller = d.i32()?;
    let n = d.array_len()?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let error_code = d.i16()?;
        let name = d.str16()?.unwrap_or_default();
        let internal = d.bool()?;
        let np = d.array_len()?;
        let mut partitions = Vec::with_capacity(np);
        for _ in 0..np {
            let error_code = d.i16()?;
            let partition = d.i32()?;
            let leader = d.i32()?;
            let ids = |d: &mut Decoder| -> Result<Vec<i32>, Malformed> {
                let k = d.array_len()?;
                (0..k).map(|_| d.i32()).collect()
            };
            let replicas = ids(&mut d)?;
            let isr = ids(&mut d)?;
            partitions.push(MetadataPartition {
                partition,
                error_code,
                leader,
                replicas,
                isr,
            });
        }
        partitions.sort_by_key(|p| p.partition);
        topics.push(MetadataTopic {
            name,
            error_code,
            internal,
            partitions,
        });
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Metadata {
        brokers,
        controller: (controller >= 0).then_some(controller),
        topics,
    })
}

/// Asks the broker at `addr`, and only it, for its metadata; `topics: None`
/// means all topics. One connection, one request, bounded by `timeout` per
/// network step.
pub fn metadata(
    addr: SocketAddr,
    topics: Option<&[&str]>,
    timeout: Duration,
) -> Result<Metadata, ProbeError> {
    let io_err = |source| ProbeError::Io { addr, source };
    let mut stream = wire::connect(addr, timeout).map_err(io_err)?;
    let correlation_id = 1;
    wire::write_frame(
        &mut stream,
        &encode_metadata_request(correlation_id, topics),
    )
    .map_err(io_err)?;
    let body = wire::read_frame(&mut stream).map_err(io_err)?;
    decode_metadata_response(&body, correlation_id)
        .map_err(|source| ProbeError::Malformed { addr, source })
}

/// A replica of the metadata log as the quorum leader reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Its `node.id`.
    pub replica_id: i32,
    /// Its log end offset as the leader last heard it; -1 if unknown.
    pub log_end_offset: i64,
    /// The leader's wall-clock time (ms) of this replica's last fetch; -1
    /// for the leader itself or when unknown.
    pub last_fetch_ms: i64,
    /// The leader's wall-clock time (ms) up to which this replica had
    /// caught up; the leader reports its own current time here.
    pub last_caught_up_ms: i64,
}

/// An answer to DescribeQuorum: the metadata quorum as its leader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader's `node.id`; `None` when unknown (-1).
    pub leader_id: Option<i32>,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The high watermark of the metadata log.
    pub high_watermark: i64,
    /// The voters, with how far each has replicated.
    pub voters: Vec<QuorumReplica>,
    /// Observers (brokers, controllers not yet voters).
    pub observers: Vec<QuorumReplica>,
}

const DESCRIBE_QUORUM: i16 = 55;
/// The metadata log's topic: the one partition KRaft replicates.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's name for an error code this client may see; `None` for others.
pub fn error_name(code: i16) -> Option<&'static str> {
    Some(match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        15 => "COORDINATOR_NOT_AVAILABLE",
        35 => "UNSUPPORTED_VERSION",
        41 => "NOT_CONTROLLER",
        42 => "INVALID_REQUEST",
        104 => "INCONSISTENT_CLUSTER_ID",
        _ => return None,
    })
}

/// Encodes a DescribeQuorum v1 request for `__cluster_metadata-0`
/// (request header v2: flexible). Version 1 adds each replica's fetch
/// times, which tell whether a leader still has followers.
pub fn encode_describe_quorum_request(correlation_id: i32) -> Vec<u8> {
    Encoder::new()
        .i16(DESCRIBE_QUORUM)
        .i16(1)
        .i32(correlation_id)
        .str16("splitbrain-observer")
        .no_tags()
        .uvarint(2) // one topic
        .compact_str(METADATA_TOPIC)
        .uvarint(2) // one partition
        .i32(0)
        .no_tags()
        .no_tags()
        .no_tags()
        .finish()
}

fn decode_replicas(d: &mut Decoder) -> Result<Vec<QuorumReplica>, Malformed> {
    let n = d.compact_array_len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let replica_id = d.i32()?;
        let log_end_offset = d.i64()?;
        let last_fetch_ms = d.i64()?;
        let last_caught_up_ms = d.i64()?;
        d.skip_tags()?;
        out.push(QuorumReplica {
            replica_id,
            log_end_offset,
            last_fetch_ms,
            last_caught_up_ms,
        });
    }
    Ok(out)
}

/// Decodes a DescribeQuorum v1 response (after its length prefix): the
/// description, or the error code the server answered with (top level
/// first, then the partition's).
pub fn decode_describe_quorum_response(
    body: &[u8],
    correlation_id: i32,
) -> Result<Result<QuorumDescription, i16>, Malformed> {
    let mut d = Decoder::new(body);
    let got = d.i32()?;
    if got != correlation_id {
        return Err(Malformed(format!(
            "correlation id {got}, expected {correlation_id}"
        )));
    }
    d.skip_tags()?; // response header v1
    let error = d.i16()?;
    if error != 0 {
        return Ok(Err(error));
    }
    let topics = d.compact_array_len()?;
    let mut found = None;
    for _ in 0..topics {
        let name = d.compact_str()?.unwrap_or_default();
        let parts = d.compact_array_len()?;
        for _ in 0..parts {
            let index = d.i32()?;
            let error = d.i16()?;
            let leader = d.i32()?;
            let leader_epoch = d.i32()?;
            let high_watermark = d.i64()?;
            let voters = decode_replicas(&mut d)?;
            let observers = decode_replicas(&mut d)?;
            d.skip_tags()?;
            if name == METADATA_TOPIC && index == 0 {
                found = Some(if error != 0 {
                    Err(error)
                } else {
                    Ok(QuorumDescription {
                        leader_id: (leader >= 0).then_some(leader),
                        leader_epoch,
                        high_watermark,
                        voters,
                        observers,
                    })
                });
            }
        }
        d.skip_tags()?;
    }
    d.skip_tags()?;
    found.ok_or_else(|| Malformed(format!("no {METADATA_TOPIC}-0 in the answer")))
}

/// Asks the Kafka server at `addr` (a controller's or a broker's listener),
/// and only it, to describe the metadata quorum. A controller that does not
/// lead answers with an error ([`ProbeError::KafkaServer`]).
pub fn describe_quorum(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<QuorumDescription, ProbeError> {
    let io_err = |source| ProbeError::Io { addr, source };
    let mut stream = wire::connect(addr, timeout).map_err(io_err)?;
    let correlation_id = 2;
    wire::write_frame(&mut stream, &encode_describe_quorum_request(correlation_id))
        .map_err(io_err)?;
    let body = wire::read_frame(&mut stream).map_err(io_err)?;
    decode_describe_quorum_response(&body, correlation_id)
        .map_err(|source| ProbeError::Malformed { addr, source })?
        .map_err(|code| ProbeError::KafkaServer {
            addr,
            request: "DescribeQuorum",
            code,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as a 3.9 broker encodes it, built by hand from the
    /// protocol's field list.
    fn sample_response() -> Vec<u8> {
        Encoder::new()
            .i32(7) // correlation id
            .i32(2) // brokers
            .i32(1)
            .str16("10.88.4.5")
            .i32(9092)
            .i16(-1) // rack null
            .i32(2)
            .str16("10.88.4.6")
            .i32(9092)
            .i16(-1)
            .i32(2) // controller
            .i32(1) // topics
            .i16(0)
            .str16("t")
            .bool(false)
            .i32(2) // partitions, out of order on purpose
            .i16(0)
            .i32(1)
            .i32(-1) // no leader
            .i32(2)
            .i32(1)
            .i32(2)
            .i32(0)
            .i16(0)
            .i32(0)
            .i32(2)
            .i32(2)
            .i32(1)
            .i32(2)
            .i32(1)
            .i32(2)
            .finish()
    }

    #[test]
    fn decodes_controller_brokers_and_leaders() {
        let m = decode_metadata_response(&sample_response(), 7).unwrap();
        assert_eq!(m.controller, Some(2));
        assert_eq!(m.brokers.len(), 2);
        assert_eq!(m.brokers[0].host, "10.88.4.5");
        assert_eq!(m.topics[0].partitions[0].partition, 0);
        assert_eq!(m.leader("t", 0), Some(2));
        assert_eq!(m.leader("t", 1), None);
        assert_eq!(m.topics[0].partitions[1].isr, Vec::<i32>::new());
        assert_eq!(m.leader("other", 0), None);
    }

    #[test]
    fn wrong_correlation_or_truncation_is_an_error() {
        let r = sample_response();
        assert!(decode_metadata_response(&r, 8).is_err());
        for cut in [3, 10, r.len() - 1] {
            assert!(decode_metadata_response(&r[..cut], 7).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn request_asks_for_all_topics_with_null_array() {
        let r = encode_metadata_request(5, None);
        let mut d = Decoder::new(&r);
        assert_eq!(d.i16().unwrap(), 3);
        assert_eq!(d.i16().unwrap(), 1);
        assert_eq!(d.i32().unwrap(), 5);
        assert_eq!(d.str16().unwrap().as_deref(), Some("splitbrain-observer"));
        assert_eq!(d.i32().unwrap(), -1);
        assert_eq!(d.remaining(), 0);
    }

    fn quorum_response(partition_error: i16) -> Vec<u8> {
        Encoder::new()
            .i32(9) // correlation id
            .no_tags()
            .i16(0)
            .uvarint(2) // one topic
            .compact_str(METADATA_TOPIC)
            .uvarint(2) // one partition
            .i32(0)
            .i16(partition_error)
            .i32(1002) // leader
            .i32(7) // epoch
            .i64(123) // high watermark
            .uvarint(4) // three voters: LEO, last fetch, last caught up
            .i32(1001)
            .i64(120)
            .i64(9_500)
            .i64(9_400)
            .no_tags()
            .i32(1002)
            .i64(123)
            .i64(-1)
            .i64(10_000) // the leader: its own clock
            .no_tags()
            .i32(1003)
            .i64(-1)
            .i64(4_000)
            .i64(3_000)
            .no_tags()
            .uvarint(2) // one observer
            .i32(1)
            .i64(123)
            .i64(9_900)
            .i64(9_900)
            .no_tags()
            .no_tags()
            .no_tags()
            .no_tags()
            .finish()
    }

    #[test]
    fn decodes_the_quorum_leader_epoch_voters_and_high_watermark() {
        let q = decode_describe_quorum_response(&quorum_response(0), 9)
            .unwrap()
            .unwrap();
        assert_eq!(q.leader_id, Some(1002));
        assert_eq!(q.leader_epoch, 7);
        assert_eq!(q.high_watermark, 123);
        let voters: Vec<i32> = q.voters.iter().map(|v| v.replica_id).collect();
        assert_eq!(voters, [1001, 1002, 1003]);
        assert_eq!(q.voters[2].log_end_offset, -1);
        assert_eq!(q.observers[0].replica_id, 1);
        // 1001 fetched 500 ms ago, 1003 six seconds ago.
        assert_eq!(q.backing(2000), [1001, 1002]);
        assert_eq!(q.backing(10_000), [1001, 1002, 1003]);
    }

    #[test]
    fn a_refusal_is_its_error_code_and_truncation_is_malformed() {
        assert_eq!(
            decode_describe_quorum_response(&quorum_response(6), 9).unwrap(),
            Err(6)
        );
        let top = Encoder::new().i32(9).no_tags().i16(41).finish();
        assert_eq!(decode_describe_quorum_response(&top, 9).unwrap(), Err(41));
        let r = quorum_response(0);
        for cut in [2, 8, 20, r.len() - 1] {
            assert!(
                decode_describe_quorum_response(&r[..cut], 9).is_err(),
                "cut {cut}"
            );
        }
        assert!(decode_describe_quorum_response(&r, 8).is_err());
    }

    #[test]
    fn describe_quorum_request_is_flexible_v1_for_the_metadata_partition() {
        let r = encode_describe_quorum_request(3);
        let mut d = Decoder::new(&r);
        assert_eq!(d.i16().unwrap(), 55);
        assert_eq!(d.i16().unwrap(), 1);
        assert_eq!(d.i32().unwrap(), 3);
        assert_eq!(d.str16().unwrap().as_deref(), Some("splitbrain-observer"));
        d.skip_tags().unwrap();
        assert_eq!(d.compact_array_len().unwrap(), 1);
        assert_eq!(d.compact_str().unwrap().as_deref(), Some(METADATA_TOPIC));
        assert_eq!(d.compact_array_len().unwrap(), 1);
        assert_eq!(d.i32().unwrap(), 0);
        for _ in 0..3 {
            d.skip_tags().unwrap();
        }
        assert_eq!(d.remaining(), 0);
        assert_eq!(error_name(6), Some("NOT_LEADER_OR_FOLLOWER"));
        assert_eq!(error_name(999), None);
    }
}
