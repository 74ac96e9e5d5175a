//! The servers' own account, from the logs `collect logs` copied into the
//! run directory (`nodes/<node>/kafka/logs_*.log`,
//! `nodes/<node>/zookeeper/logs_zookeeper.log`): the lines about a
//! partition's leadership, ISR and truncation, and about controller and
//! ZooKeeper elections, each with its time on the run's axis.
//!
//! The line shapes matched are Kafka 3.9's (ZooKeeper mode) and ZooKeeper
//! 3.8's, as they appear in real runs; the tests below use such lines.

use serde::Serialize;
use std::path::Path;

/// What a log line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineKind {
    /// A broker becomes the partition's leader (`Leader queue-1 ... starts
    /// at leader epoch E`).
    Leader,
    /// A broker becomes a follower.
    Follower,
    /// The controller elects a leader for an offline partition from outside
    /// the ISR (`leaderRecoveryState=RECOVERING`): an unclean election.
    Unclean,
    /// The controller elects a leader (clean).
    Election,
    /// A replica cuts its log (`Truncating to offset N`).
    Truncate,
    /// ISR shrinks, grows or is rewritten.
    Isr,
    /// A request or replica fenced (stale leader epoch, broker epoch).
    Fenced,
    /// A broker became the controller.
    Controller,
    /// A ZooKeeper session expired (broker or server side).
    SessionExpired,
    /// A ZooKeeper server changed its role (LOOKING, LEADING, FOLLOWING).
    ZkRole,
}

/// One classified line of a server's log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch (the logs are written in UTC).
    #[serde(rename = "unix-ms")]
    pub unix_ms: i64,
    /// Node whose log it is.
    pub node: String,
    /// `kafka` or `zookeeper`.
    pub server: String,
    /// The broker id, for a Kafka log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<i32>,
    /// What it says.
    pub kind: LineKind,
    /// The partition it is about (`queue-1`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Leader it names (election, leader), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<i32>,
    /// Leader epoch it names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// Offset it names (truncation, leader start), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The line as written (without its timestamp).
    pub text: String,
}

/// `2026-11-29 22:25:26,410` (with or without the surrounding `[ ]`) as
/// ms since the Unix epoch, read as UTC.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.strip_prefix('[').unwrap_or(s);
    let b = s.as_bytes();
    if b.len() < 23 || b[4] != b'-' || b[10] != b' ' || b[19] != b',' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let month = time::Month::try_from(n(5..7)? as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0..4)? as i32, month, n(8..10)? as u8).ok()?;
    let t = date
        .with_hms_milli(
            n(11..13)? as u8,
            n(14..16)? as u8,
            n(17..19)? as u8,
            n(20..23)? as u16,
        )
        .ok()?
        .assume_utc();
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The number after `key` in `text` (`leaderEpoch=5` → 5 for `leaderEpoch=`).
fn number_after(text: &str, key: &str) -> Option<i64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The topic-partition a line names, `topic-N` with nothing more digits
/// after (so `queue-1` is not found in `queue-10`).
fn partition_in(text: &str, topic: &str) -> Option<String> {
    let needle = format!("{topic}-");
    let mut from = 0;
    while let Some(i) = text[from..].find(&needle) {
        let start = from + i;
        let before_ok = start == 0
            || !text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let rest = &text[start + needle.len()..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if before_ok && digits > 0 {
            return Some(text[start..start + needle.len() + digits].to_string());
        }
        from = start + needle.len();
    }
    None
}

/// Classifies one Kafka log line (timestamp removed); `None` for a line of
/// no interest.
pub fn classify_kafka(text: &str, topic: &str) -> Option<(LineKind, Option<String>)> {
    let partition = partition_in(text, topic);
    let kind = if text.contains("successfully elected as the controller") {
        LineKind::Controller
    } else if text.contains("Session expired") || text.contains("session expired") {
        LineKind::SessionExpired
    } else if partition.is_none() {
        return None;
    } else if text.contains("to OnlinePartition") && text.contains("leaderRecoveryState=RECOVERING")
    {
        LineKind::Unclean
    } else if text.contains("to OnlinePartition with state LeaderAndIsr(") {
        LineKind::Election
    } else if text.contains("] Leader ") && text.contains("starts at leader epoch") {
        LineKind::Leader
    } else if text.contains("] Follower ") && text.contains("starts at leader epoch") {
        LineKind::Follower
    } else if text.contains("Truncating to offset ") {
        LineKind::Truncate
    } else if text.contains("ISR updated to")
        || text.contains("Shrinking ISR")
        || text.contains("Expanding ISR")
        || text.contains("state changed to (Leader:")
    {
        LineKind::Isr
    } else if text.to_ascii_lowercase().contains("fenc") {
        LineKind::Fenced
    } else {
        return None;
    };
    Some((kind, partition))
}

/// Classifies one ZooKeeper log line (timestamp removed).
pub fn classify_zookeeper(text: &str) -> Option<LineKind> {
    if text.contains("Expiring session") {
        Some(LineKind::SessionExpired)
    } else if text.contains("QuorumPeer - ")
        && ["- LOOKING", "- LEADING", "- FOLLOWING", "- OBSERVING"]
            .iter()
            .any(|s| text.trim_end().ends_with(s))
    {
        Some(LineKind::ZkRole)
    } else {
        None
    }
}

/// One Kafka line's fields: leader, epoch, offset.
fn kafka_fields(
    kind: LineKind,
    text: &str,
    broker: Option<i32>,
) -> (Option<i32>, Option<i64>, Option<u64>) {
    let off = |k: &str| number_after(text, k).and_then(|o| u64::try_from(o).ok());
    match kind {
        LineKind::Leader => (
            number_after(text, "[Broker id=")
                .map(|b| b as i32)
                .or(broker),
            number_after(text, "starts at leader epoch "),
            off(" from offset "),
        ),
        LineKind::Follower => (
            number_after(text, "Current leader is ").map(|b| b as i32),
            number_after(text, "starts at leader epoch "),
            off(" from offset "),
        ),
        LineKind::Unclean | LineKind::Election => (
            number_after(text, "LeaderAndIsr(leader=").map(|b| b as i32),
            number_after(text, "leaderEpoch="),
            None,
        ),
        LineKind::Isr => (
            number_after(text, "(Leader:").map(|b| b as i32),
            number_after(text, "LeaderEpoch:"),
            None,
        ),
        LineKind::Truncate => (None, None, off("Truncating to offset ")),
        _ => (None, None, None),
    }
}

/// `broker.id` from a collected `server.properties`.
fn broker_id(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("server.properties")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("broker.id="))
        .and_then(|v| v.trim().parse().ok())
}

/// Every classified line of every server log under `run_dir/nodes`, in
/// time order. Missing or unreadable files are skipped (a node whose logs
/// could not be collected simply has none).
pub fn read_all(run_dir: &Path, topic: &str) -> Vec<LogLine> {
    let mut out = Vec::new();
    let Ok(nodes) = std::fs::read_dir(run_dir.join("nodes")) else {
        return out;
    };
    for node in nodes.flatten() {
        let name = node.file_name().to_string_lossy().into_owned();
        let kafka = node.path().join("kafka");
        let broker = broker_id(&kafka);
        for file in [
            "logs_server.log",
            "logs_state-change.log",
            "logs_controller.log",
        ] {
            let Ok(text) = std::fs::read_to_string(kafka.join(file)) else {
                continue;
            };
            for line in text.lines() {
                let Some(rest) = line.strip_prefix('[') else {
                    continue;
                };
                let (Some(ms), Some(body)) = (parse_time(rest), rest.get(24..)) else {
                    continue;
                };
                let body = body.trim_start();
                let Some((kind, partition)) = classify_kafka(body, topic) else {
                    continue;
                };
                let (leader, epoch, offset) = kafka_fields(kind, body, broker);
                out.push(LogLine {
                    unix_ms: ms,
                    node: name.clone(),
                    server: "kafka".into(),
                    broker,
                    kind,
                    partition,
                    leader,
                    epoch,
                    offset,
                    text: body.to_string(),
                });
            }
        }
        let zk = node.path().join("zookeeper").join("logs_zookeeper.log");
        if let Ok(text) = std::fs::read_to_string(zk) {
            for line in text.lines() {
                let (Some(ms), Some(body)) = (parse_time(line), line.get(23..)) else {
                    continue;
                };
                let body = body.trim_start();
                if let Some(kind) = classify_zookeeper(body) {
                    out.push(LogLine {
                        unix_ms: ms,
                        node: name.clone(),
                        server: "zookeeper".into(),
                        broker: None,
                        kind,
                        partition: None,
                        leader: None,
                        epoch: None,
                        offset: None,
                        text: body.to_string(),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.unix_ms.cmp(&b.unix_ms).then_with(|| a.node.cmp(&b.node)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_milliseconds() {
        assert_eq!(parse_time("[1970-01-01 00:00:01,250] INFO x"), Some(1250));
        assert_eq!(
            parse_time("2026-11-29 22:25:26,410 [myid:] INFO"),
            Some(1_795_991_126_410)
        );
        assert_eq!(parse_time("not a time"), None);
    }

    #[test]
    fn partitions_are_matched_whole() {
        assert_eq!(
            partition_in("Leader queue-1 with", "queue"),
            Some("queue-1".into())
        );
        assert_eq!(
            partition_in("[Partition queue-10 broker=2]", "queue"),
            Some("queue-10".into())
        );
        assert_eq!(partition_in("myqueue-1 x", "queue"), None);
        assert_eq!(partition_in("__consumer_offsets-1", "queue"), None);
    }

    #[test]
    fn kafka_lines_are_classified() {
        let unclean = "INFO [Controller id=3 epoch=2] Changed partition queue-0 from OfflinePartition to OnlinePartition with state LeaderAndIsr(leader=3, leaderEpoch=5, isrWithBrokerEpoch=List(BrokerState(brokerId=3, brokerEpoch=-1)), leaderRecoveryState=RECOVERING, partitionEpoch=6) (state.change.logger)";
        let (k, p) = classify_kafka(unclean, "queue").unwrap();
        assert_eq!((k, p.as_deref()), (LineKind::Unclean, Some("queue-0")));
        assert_eq!(kafka_fields(k, unclean, Some(3)), (Some(3), Some(5), None));
        let clean = unclean.replace("RECOVERING", "RECOVERED");
        assert_eq!(
            classify_kafka(&clean, "queue").unwrap().0,
            LineKind::Election
        );

        let leader = "INFO [Broker id=1] Leader queue-0 with topic id Some(e9W) starts at leader epoch 1 from offset 516 with partition epoch 1, high watermark 515, ISR [1,3], adding replicas [] and removing replicas [] . Previous leader Some(2) and previous leader epoch was 0. (state.change.logger)";
        let (k, _) = classify_kafka(leader, "queue").unwrap();
        assert_eq!(k, LineKind::Leader);
        assert_eq!(kafka_fields(k, leader, None), (Some(1), Some(1), Some(516)));

        let trunc = "INFO [UnifiedLog partition=queue-0, dir=/x/n4/kafka/data] Truncating to offset 1181 (kafka.log.UnifiedLog)";
        let (k, _) = classify_kafka(trunc, "queue").unwrap();
        assert_eq!(k, LineKind::Truncate);
        assert_eq!(kafka_fields(k, trunc, Some(1)), (None, None, Some(1181)));
        // A truncation that cuts nothing is not one.
        assert!(classify_kafka("INFO [UnifiedLog partition=queue-0, dir=/x] Truncating to 0 has no effect as the largest offset in the log is -1 (kafka.log.UnifiedLog)", "queue").is_none());

        let isr = "INFO [Partition queue-0 broker=3] ISR updated to 3,1  and version updated to 7 (kafka.cluster.Partition)";
        assert_eq!(classify_kafka(isr, "queue").unwrap().0, LineKind::Isr);
        let ctl = "INFO [Controller id=1] 1 successfully elected as the controller. Epoch incremented to 1 and epoch zk version is now 1 (kafka.controller.KafkaController)";
        assert_eq!(
            classify_kafka(ctl, "queue").unwrap().0,
            LineKind::Controller
        );
        // Other partitions' and topics' lines are of no interest.
        assert!(classify_kafka(
            "INFO Created log for partition __consumer_offsets-3 in /x",
            "queue"
        )
        .is_none());
    }

    #[test]
    fn zookeeper_roles_and_expiry() {
        assert_eq!(
            classify_zookeeper("[myid:] INFO  [QuorumPeer[myid=1](plain=10.88.158.2:2181)(secure=disabled)] QuorumPeer - LEADING"),
            Some(LineKind::ZkRole)
        );
        assert_eq!(
            classify_zookeeper("[myid:1] INFO  [SessionTracker:o.a.z.s.ZooKeeperServer@] - Expiring session 0x1000, timeout of 6000ms exceeded"),
            Some(LineKind::SessionExpired)
        );
        assert_eq!(classify_zookeeper("[myid:] INFO  [WorkerReceiver[myid=1]] FastLeaderElection - Notification: my state:LOOKING"), None);
    }

    #[test]
    fn reads_a_run_directory() {
        let dir = std::env::temp_dir().join(format!("sb-evlogs-{}", std::process::id()));
        let k = dir.join("nodes/n4/kafka");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(k.join("server.properties"), "broker.id=1\n").unwrap();
        std::fs::write(
            k.join("logs_server.log"),
            "[2026-11-29 22:26:13,529] INFO [UnifiedLog partition=queue-0, dir=/x] Truncating to offset 1181 (kafka.log.UnifiedLog)\n\
             java.lang.Exception: a stack line\n\
             [2026-11-29 22:26:13,000] INFO unrelated (x)\n",
        )
        .unwrap();
        let lines = read_all(&dir, "queue");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].broker, Some(1));
        assert_eq!(lines[0].offset, Some(1181));
        assert_eq!(lines[0].node, "n4");
    }
}
