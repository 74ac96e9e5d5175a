//! What each replica's log segments hold at given offsets, read with
//! Kafka's own `kafka.tools.DumpLogSegments` (in the broker's jars) over
//! SSH on every broker's node at once, and filtered there (by `awk`) to the
//! offsets asked for, so that only a few lines per window come back.
//!
//! A node that cannot be reached gives a [`ReplicaDump`] saying so, never an
//! error: evidence is collected on the way to a report and must not stop it.

use crate::db::cluster::ClusterLayout;
use crate::db::service::sh_quote;
use serde::{Deserialize, Serialize};
use splitbrain_core::control::Control;
use std::time::{Duration, Instant};

/// Offsets `from..=to` of one partition of `topic`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetWindow {
    /// The partition.
    pub partition: i32,
    /// First offset wanted.
    pub from: u64,
    /// Last offset wanted (inclusive).
    pub to: u64,
}

/// One record found in a replica's segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The partition.
    pub partition: i32,
    /// Its offset.
    pub offset: u64,
    /// The queue workload's message number, from the payload's leading
    /// digits (`None` for a payload not written by it).
    pub msg: Option<u64>,
    /// The leader epoch of the batch that holds it (`partitionLeaderEpoch`).
    #[serde(rename = "leader-epoch")]
    pub leader_epoch: Option<i64>,
    /// The batch's producer id (-1 without idempotence).
    #[serde(rename = "producer-id")]
    pub producer_id: Option<i64>,
    /// The batch's producer epoch.
    #[serde(rename = "producer-epoch")]
    pub producer_epoch: Option<i64>,
    /// The record's sequence number (-1 without idempotence).
    pub sequence: Option<i64>,
    /// The record's CreateTime, ms since the Unix epoch.
    #[serde(rename = "create-time-ms")]
    pub create_time_ms: Option<u64>,
}

/// Whether a replica's segments could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpStatus {
    /// Read: `records` is what its segments hold in the windows.
    Read,
    /// The node could not be reached over SSH (or did not answer in time).
    Unreachable,
    /// The node answered but the dump failed or was cut short (`error`).
    Failed,
}

/// What one broker's segments hold in the windows asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDump {
    /// `broker.id`.
    pub broker: i32,
    /// The node it runs on.
    pub node: String,
    /// Whether it could be read.
    pub status: DumpStatus,
    /// Why not, when not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Partitions of which this broker has a log directory (a replica).
    pub partitions: Vec<i32>,
    /// The records in the windows, in file order.
    pub records: Vec<SegmentRecord>,
    /// Time the dump took, ms.
    #[serde(rename = "elapsed-ms")]
    pub elapsed_ms: u64,
}

/// The JVM's flags for the dump: a small heap, and start-up over peak speed
/// (C1 only, serial GC, no perf data): about a third of the default start-up
/// time for a tool that reads a few segments.
const JVM_FLAGS: &str =
    "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData -Xshare:auto";

/// Marker lines the remote script adds to DumpLogSegments' output.
const LOG: &str = "splitbrain-log ";
const FILE: &str = "splitbrain-file ";
const EXIT: &str = "splitbrain-exit ";

/// The awk filter run on the node: keeps batch headers overlapping a window
/// and records inside one, for the partition of the file being dumped. `R`
/// is `partition:from:to` windows separated by spaces.
const AWK: &str = r#"BEGIN { n = split(R, rs, " ") }
/^splitbrain-/ { print; next }
/^Dumping / { p = $2; sub(/\/[^\/]*$/, "", p); sub(/.*-/, "", p); print "splitbrain-file " p; next }
/^baseOffset: / { b = $2 + 0; l = $4 + 0; for (i = 1; i <= n; i++) { split(rs[i], r, ":"); if (r[1] == p && l >= r[2] + 0 && b <= r[3] + 0) { print; break } } next }
/^\| offset: / { o = $3 + 0; for (i = 1; i <= n; i++) { split(rs[i], r, ":"); if (r[1] == p && o >= r[2] + 0 && o <= r[3] + 0) { print; break } } }"#;

/// The shell command that dumps `topic`'s windows from the log directory
/// `data_dir` with `java` and `classpath`, bounded by `limit` (coreutils
/// `timeout`).
pub fn dump_command(
    java: &str,
    classpath: &str,
    data_dir: &str,
    topic: &str,
    windows: &[OffsetWindow],
    limit: Duration,
) -> String {
    let mut partitions: Vec<i32> = windows.iter().map(|w| w.partition).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let ranges: Vec<String> = windows
        .iter()
        .map(|w| format!("{}:{}:{}", w.partition, w.from, w.to))
        .collect();
    let plist: Vec<String> = partitions.iter().map(i32::to_string).collect();
    format!(
        "cd {dir} || exit 3; files=; for p in {plist}; do d={topic}-$p; [ -d \"$d\" ] || continue; echo \"{LOG}$p\"; \
         for f in \"$d\"/*.log; do [ -f \"$f\" ] && files=\"$files${{files:+,}}$PWD/$f\"; done; done; \
         [ -n \"$files\" ] || exit 0; \
         {{ timeout {secs} {java} {JVM_FLAGS} -cp {cp} kafka.tools.DumpLogSegments --print-data-log --files \"$files\"; echo \"{EXIT}$?\"; }} 2>/dev/null \
         | awk -v R={ranges} {awk}",
        dir = sh_quote(data_dir),
        plist = plist.join(" "),
        topic = sh_quote(topic),
        secs = limit.as_secs().max(1),
        java = sh_quote(java),
        cp = sh_quote(classpath),
        ranges = sh_quote(&ranges.join(" ")),
        awk = sh_quote(AWK),
    )
}

/// The value after `name: ` in a DumpLogSegments line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w.strip_suffix(':') == Some(name) {
            return words.next();
        }
    }
    None
}

fn num<T: std::str::FromStr>(line: &str, name: &str) -> Option<T> {
    field(line, name).and_then(|v| v.parse().ok())
}

/// The queue workload's message number: the payload's leading digits.
pub fn msg_of_payload(payload: &str) -> Option<u64> {
    let digits: &str = &payload[..payload
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(payload.len())];
    digits.parse().ok()
}

/// What the remote command printed: the partitions with a log directory,
/// the records, and DumpLogSegments' exit status (if it got that far).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedDump {
    /// Partitions with a log directory on the node.
    pub partitions: Vec<i32>,
    /// The records in the windows.
    pub records: Vec<SegmentRecord>,
    /// DumpLogSegments' exit status (124: cut short by the time limit).
    pub exit: Option<i32>,
}

/// Parses the filtered output of [`dump_command`].
pub fn parse_dump(text: &str) -> ParsedDump {
    let mut out = ParsedDump::default();
    let mut partition: Option<i32> = None;
    // The current batch: (base, last, leader epoch, producer id, epoch).
    let mut batch: Option<(u64, u64, i64, i64, i64)> = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix(LOG) {
            if let Ok(p) = p.trim().parse() {
                out.partitions.push(p);
            }
        } else if let Some(p) = line.strip_prefix(FILE) {
            partition = p.trim().parse().ok();
            batch = None;
        } else if let Some(s) = line.strip_prefix(EXIT) {
            out.exit = s.trim().parse().ok();
        } else if line.starts_with("baseOffset: ") {
            batch = (|| {
                Some((
                    num(line, "baseOffset")?,
                    num(line, "lastOffset")?,
                    num(line, "partitionLeaderEpoch")?,
                    num(line, "producerId")?,
                    num(line, "producerEpoch")?,
                ))
            })();
        } else if line.starts_with("| offset: ") {
            let (Some(p), Some(offset)) = (partition, num::<u64>(line, "offset")) else {
                continue;
            };
            let b = batch.filter(|b| b.0 <= offset && offset <= b.1);
            // The payload is the rest of the line: it may hold spaces.
            let payload = line.split_once(" payload: ").map(|(_, p)| p);
            out.records.push(SegmentRecord {
                partition: p,
                offset,
                msg: payload.and_then(msg_of_payload),
                leader_epoch: b.map(|b| b.2),
                producer_id: b.map(|b| b.3),
                producer_epoch: b.map(|b| b.4),
                sequence: num(line, "sequence"),
                create_time_ms: num(line, "CreateTime"),
            });
        }
    }
    out
}

/// Dumps `windows` of `topic` from every broker of `layout` at once; each
/// node's work is bounded by `limit`. A broker whose node cannot be reached
/// gets [`DumpStatus::Unreachable`], never an error.
pub fn dump_segments(
    control: &Control,
    layout: &ClusterLayout,
    topic: &str,
    windows: &[OffsetWindow],
    limit: Duration,
) -> Vec<ReplicaDump> {
    let brokers: Vec<(i32, String, String)> = layout
        .kafka
        .iter()
        .map(|b| {
            (
                b.id,
                b.node.name.clone(),
                b.service().data_dir().to_string_lossy().into_owned(),
            )
        })
        .collect();
    let java = layout.artifacts.java.clone();
    let classpath = layout.artifacts.kafka_classpath();
    let names: Vec<&str> = brokers.iter().map(|b| b.1.as_str()).collect();
    let commands: Vec<(String, String)> = brokers
        .iter()
        .map(|(_, node, dir)| {
            let cmd = dump_command(&java, &classpath, dir, topic, windows, limit);
            (node.clone(), cmd)
        })
        .collect();
    // The SSH exec gets a little more than the dump's own limit, so that a
    // dump cut short still reports what it read.
    let ssh_limit = limit + Duration::from_secs(5);
    let started = Instant::now();
    let results = control.on_nodes(&names, move |node, s| {
        let cmd = commands
            .iter()
            .find(|(n, _)| n == &node.name)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let t = Instant::now();
        s.exec(&cmd, ssh_limit).map(|out| (out, t.elapsed()))
    });
    brokers
        .iter()
        .zip(results)
        .map(|((id, node, _), (_, result))| replica_dump(*id, node, result, started))
        .collect()
}

/// One broker's [`ReplicaDump`] from what its node answered.
pub fn replica_dump(
    broker: i32,
    node: &str,
    result: Result<
        (splitbrain_core::control::Output, Duration),
        splitbrain_core::control::ControlError,
    >,
    started: Instant,
) -> ReplicaDump {
    let mut dump = ReplicaDump {
        broker,
        node: node.to_string(),
        status: DumpStatus::Read,
        error: None,
        partitions: vec![],
        records: vec![],
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    match result {
        Err(e) => {
            dump.status = DumpStatus::Unreachable;
            dump.error = Some(e.to_string());
        }
        Ok((out, took)) => {
            dump.elapsed_ms = took.as_millis() as u64;
            let parsed = parse_dump(&out.stdout);
            dump.partitions = parsed.partitions;
            dump.records = parsed.records;
            if out.status == 3 {
                dump.status = DumpStatus::Failed;
                dump.error = Some("the broker's log directory is missing".into());
            } else if parsed.exit == Some(124) {
                dump.status = DumpStatus::Failed;
                dump.error = Some("DumpLogSegments was cut short by the time limit".into());
            } else if let Some(code) = parsed.exit.filter(|c| *c != 0) {
                dump.status = DumpStatus::Failed;
                dump.error = Some(format!(
                    "DumpLogSegments exited with status {code}{}",
                    if out.stderr.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", out.stderr.trim())
                    }
                ));
            }
        }
    }
    dump
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::control::{ControlError, Output};

    const OUT: &str = "splitbrain-log 1\nsplitbrain-log 2\n\
splitbrain-file 1\n\
baseOffset: 540 lastOffset: 542 count: 3 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 4 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1795991131452 size: 391 magic: 2 compresscodec: none crc: 3367338859 isvalid: true\n\
| offset: 541 CreateTime: 1795991131451 keySize: 1 valueSize: 100 sequence: -1 headerKeys: [] key: 1 payload: 1669......\n\
| offset: 542 CreateTime: 1795991131452 keySize: 1 valueSize: 100 sequence: 7 headerKeys: [] key: 4 payload: 1702......\n\
splitbrain-file 2\n\
| offset: 3 CreateTime: 1795991131452 keySize: 1 valueSize: 3 sequence: -1 headerKeys: [] key: 4 payload: abc\n\
splitbrain-exit 0\n";

    #[test]
    fn parses_records_with_their_batch() {
        let d = parse_dump(OUT);
        assert_eq!(d.partitions, vec![1, 2]);
        assert_eq!(d.exit, Some(0));
        assert_eq!(d.records.len(), 3);
        let r = &d.records[0];
        assert_eq!((r.partition, r.offset, r.msg), (1, 541, Some(1669)));
        assert_eq!(r.leader_epoch, Some(4));
        assert_eq!(r.producer_id, Some(-1));
        assert_eq!(r.create_time_ms, Some(1795991131451));
        assert_eq!(d.records[1].sequence, Some(7));
        // A record outside any batch header read: no batch fields; a
        // payload not written by the workload: no msg.
        let r = &d.records[2];
        assert_eq!(
            (r.partition, r.offset, r.msg, r.leader_epoch),
            (2, 3, None, None)
        );
    }

    #[test]
    fn payload_digits_are_the_message() {
        assert_eq!(msg_of_payload("1669......"), Some(1669));
        assert_eq!(msg_of_payload("7"), Some(7));
        assert_eq!(msg_of_payload("....."), None);
    }

    #[test]
    fn command_names_each_partition_once_and_every_window() {
        let w = |partition, from, to| OffsetWindow {
            partition,
            from,
            to,
        };
        let cmd = dump_command(
            "java",
            "/a/kafka/lib/*",
            "/n/n4/kafka/data",
            "queue",
            &[w(1, 530, 550), w(1, 700, 710), w(0, 0, 5)],
            Duration::from_secs(20),
        );
        assert!(cmd.contains("for p in 0 1;"), "{cmd}");
        assert!(cmd.contains("-v R='1:530:550 1:700:710 0:0:5'"), "{cmd}");
        assert!(cmd.contains("timeout 20 'java'"), "{cmd}");
        assert!(cmd.contains("kafka.tools.DumpLogSegments --print-data-log"));
    }

    #[test]
    fn an_unreachable_node_is_said_so() {
        let e = ControlError::WorkerGone {
            node: "n5".into(),
            command: "dump".into(),
        };
        let d = replica_dump(2, "n5", Err(e), Instant::now());
        assert_eq!(d.status, DumpStatus::Unreachable);
        assert!(d.error.unwrap().contains("n5"));
        assert!(d.records.is_empty());
    }

    #[test]
    fn a_dump_cut_short_keeps_what_it_read() {
        let out = Output {
            status: 0,
            stdout: OUT.replace("splitbrain-exit 0", "splitbrain-exit 124"),
            stderr: String::new(),
        };
        let d = replica_dump(1, "n4", Ok((out, Duration::from_millis(5))), Instant::now());
        assert_eq!(d.status, DumpStatus::Failed);
        assert_eq!(d.records.len(), 3);
        assert!(d.error.unwrap().contains("time limit"));
    }
}
