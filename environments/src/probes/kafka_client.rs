//! Asking ONE Kafka broker what it believes: a Metadata request (API key 3,
//! version 1) over a fresh TCP connection, answered by that broker alone.
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
}
