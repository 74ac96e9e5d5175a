//! Each anomaly example with the servers' side of the story, from what the
//! replicas' segments hold ([`ReplicaDump`]s) and what the servers logged
//! ([`LogLine`]s): pure functions, no I/O, so that a run, `splitbrain
//! explain` and the tests build the same evidence from the same inputs.

use super::logs::{LineKind, LogLine};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use splitbrain_environments::db::segments::{DumpStatus, OffsetWindow, ReplicaDump};
use std::collections::BTreeSet;

/// Offsets read on each side of an anomaly's offset.
pub const WINDOW: u64 = 3;
/// Raw log lines kept per example.
pub const MAX_LINES: usize = 40;
/// Timeline entries kept per example.
pub const MAX_TIMELINE: usize = 16;

/// The anomalies whose examples get segment evidence (they name offsets).
pub const SEGMENT_ANOMALIES: [&str; 4] = ["lost-write", "inconsistent-offsets", "duplicate", "G1a"];
/// The anomalies whose examples get controller and ZooKeeper log lines.
pub const ELECTION_ANOMALIES: [&str; 2] = ["split-brain", "multiple-controllers"];

/// One example to find evidence for, from the checker's example JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The anomaly.
    pub anomaly: String,
    /// The example's position in the anomaly's `examples`.
    pub index: usize,
    /// The log (`queue-1`), if the example names one.
    pub key: Option<String>,
    /// Its partition number.
    pub partition: Option<i32>,
    /// The message, if one.
    pub msg: Option<u64>,
    /// Messages the example names (inconsistent-offsets: what was read).
    pub msgs: Vec<u64>,
    /// Offsets the example names.
    pub offsets: Vec<u64>,
    /// When it happened on the run's axis, ns (the acknowledgement, the
    /// first disagreeing read, the start of a split).
    pub time_ns: Option<u64>,
    /// Until when (a split's end), ns.
    pub end_ns: Option<u64>,
}

/// The partition number of a log key `topic-N`.
pub fn partition_of(key: &str) -> Option<i32> {
    key.rsplit_once('-')?.1.parse().ok()
}

/// The target for example `index` of `anomaly`; `op_time` gives the time
/// of an operation index.
pub fn target(
    anomaly: &str,
    index: usize,
    e: &Value,
    op_time: &dyn Fn(u64) -> Option<u64>,
) -> Target {
    let key = e["key"].as_str().map(String::from);
    let nums = |v: &Value| -> Vec<u64> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect()
    };
    let mut offsets = nums(&e["offsets"]);
    if let Some(o) = e["offset"].as_u64() {
        offsets.push(o);
    }
    let op = ["send-op", "first-disagreeing-op", "read-op"]
        .iter()
        .find_map(|k| e[*k].as_u64());
    Target {
        anomaly: anomaly.to_string(),
        index,
        partition: key.as_deref().and_then(partition_of),
        key,
        msg: e["msg"].as_u64(),
        msgs: nums(&e["msgs"]),
        offsets,
        time_ns: e["start-ns"].as_u64().or_else(|| op.and_then(op_time)),
        end_ns: e["end-ns"].as_u64(),
    }
}

/// The offset windows to dump for `targets`, merged where they overlap.
pub fn windows(targets: &[Target]) -> Vec<OffsetWindow> {
    let mut all: Vec<(i32, u64, u64)> = targets
        .iter()
        .filter_map(|t| Some((t.partition?, &t.offsets)))
        .flat_map(|(p, offs)| {
            offs.iter()
                .map(move |o| (p, o.saturating_sub(WINDOW), o + WINDOW))
        })
        .collect();
    all.sort_unstable();
    let mut out: Vec<OffsetWindow> = Vec::new();
    for (partition, from, to) in all {
        match out.last_mut() {
            Some(w) if w.partition == partition && from <= w.to + 1 => w.to = w.to.max(to),
            _ => out.push(OffsetWindow {
                partition,
                from,
                to,
            }),
        }
    }
    out
}

/// What one replica holds at one offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The offset.
    pub offset: u64,
    /// The message there (`None`: a record not of the workload).
    pub msg: Option<u64>,
    /// The leader epoch it was written in.
    #[serde(rename = "leader-epoch")]
    pub leader_epoch: Option<i64>,
}

/// One replica's side of an example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// `broker.id`.
    pub broker: i32,
    /// Its node.
    pub node: String,
    /// `read`, `unreachable`, `failed`, or `no-replica` (no log directory
    /// for the partition there).
    pub status: String,
    /// Why not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it holds at the example's offsets (and around them).
    pub at: Vec<Held>,
    /// Offsets (in the windows) where it holds the example's message.
    #[serde(rename = "msg-at")]
    pub msg_at: Vec<u64>,
}

/// One log line as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Seconds on the run's axis (negative: before the history started);
    /// `None` when the run's start is unknown.
    #[serde(rename = "time-s")]
    pub time_s: Option<f64>,
    /// Milliseconds since the Unix epoch, as logged (UTC).
    #[serde(rename = "unix-ms")]
    pub unix_ms: i64,
    /// Node.
    pub node: String,
    /// Broker id, for a Kafka line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<i32>,
    /// What it says (`truncate`, `unclean`, `leader`, …).
    pub kind: String,
    /// The line.
    pub text: String,
}

/// The servers' side of one example: results.json's `evidence` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExampleEvidence {
    /// The anomaly.
    pub anomaly: String,
    /// The example's position in the anomaly's `examples`.
    pub index: usize,
    /// The log, message and offsets the example names.
    pub key: Option<String>,
    /// The message.
    pub msg: Option<u64>,
    /// The offsets.
    pub offsets: Vec<u64>,
    /// Every broker's segments at those offsets (empty when not dumped).
    pub replicas: Vec<ReplicaView>,
    /// The segments bear the anomaly out (lost-write: the message is on no
    /// replica at its acknowledged offset; duplicate: a replica holds it at
    /// two offsets; inconsistent-offsets: a message read at the offset is
    /// there on no replica now). `None`: not dumped, or a replica could not
    /// be read.
    pub confirmed: Option<bool>,
    /// The logs show why: a truncation at or below the offset, or an
    /// unclean election, after the anomaly's time (lost-write,
    /// inconsistent-offsets); a leader election around it (duplicate); a
    /// controller or ZooKeeper election in the split's window (split-brain,
    /// multiple-controllers). `None`: no logs to read.
    pub explained: Option<bool>,
    /// The line that explains it, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What the segments say, in words.
    pub segments: String,
    /// The story in words, in time order.
    pub timeline: Vec<String>,
    /// The log lines it is drawn from.
    pub lines: Vec<Line>,
}

fn secs(ns: u64) -> String {
    format!("{:.1} s", ns as f64 / 1e9)
}

/// A list `1, 2 and 3`.
fn and_list<T: ToString>(items: &[T]) -> String {
    let s: Vec<String> = items.iter().map(ToString::to_string).collect();
    match s.len() {
        0 => String::new(),
        1 => s[0].clone(),
        n => format!("{} and {}", s[..n - 1].join(", "), s[n - 1]),
    }
}

/// Each replica's view of `t`'s partition and windows.
fn replica_views(t: &Target, dumps: &[ReplicaDump]) -> Vec<ReplicaView> {
    let Some(p) = t.partition else {
        return vec![];
    };
    let wanted: BTreeSet<u64> = t.offsets.iter().copied().collect();
    dumps
        .iter()
        .map(|d| {
            let status = match d.status {
                DumpStatus::Read if !d.partitions.contains(&p) => "no-replica",
                DumpStatus::Read => "read",
                DumpStatus::Unreachable => "unreachable",
                DumpStatus::Failed => "failed",
            };
            let near = |o: u64| {
                t.offsets
                    .iter()
                    .any(|w| o + WINDOW >= *w && o <= w + WINDOW)
            };
            let recs = d
                .records
                .iter()
                .filter(|r| r.partition == p && near(r.offset));
            let mut at = Vec::new();
            let mut msg_at = Vec::new();
            for r in recs {
                if t.msg.is_some() && r.msg == t.msg {
                    msg_at.push(r.offset);
                }
                if wanted.contains(&r.offset) {
                    at.push(Held {
                        offset: r.offset,
                        msg: r.msg,
                        leader_epoch: r.leader_epoch,
                    });
                }
            }
            ReplicaView {
                broker: d.broker,
                node: d.node.clone(),
                status: status.into(),
                error: d.error.clone(),
                at,
                msg_at,
            }
        })
        .collect()
}

/// Whether the segments bear `t` out, and that in words.
fn segment_verdict(t: &Target, views: &[ReplicaView], dumped: bool) -> (Option<bool>, String) {
    if !dumped {
        return (None, "segments not dumped".into());
    }
    if t.offsets.is_empty() || t.partition.is_none() {
        return (
            None,
            "the example names no offset: segments not read".into(),
        );
    }
    let replicas: Vec<&ReplicaView> = views.iter().filter(|v| v.status != "no-replica").collect();
    let unread: Vec<String> = replicas
        .iter()
        .filter(|v| v.status != "read")
        .map(|v| format!("broker {} {}", v.broker, v.status))
        .collect();
    let read: Vec<&&ReplicaView> = replicas.iter().filter(|v| v.status == "read").collect();
    let key = t.key.as_deref().unwrap_or("?");
    // What each offset holds, on which replicas.
    let mut holding = Vec::new();
    for o in &t.offsets {
        let mut groups: Vec<(Option<u64>, Option<i64>, Vec<i32>)> = Vec::new();
        for v in &read {
            let h = v.at.iter().find(|h| h.offset == *o);
            let (m, e) = h.map_or((None, None), |h| (h.msg, h.leader_epoch));
            match groups
                .iter_mut()
                .find(|g| g.0 == m && (m.is_none() || g.1 == e))
            {
                Some(g) => g.2.push(v.broker),
                None => groups.push((m, e, vec![v.broker])),
            }
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|(m, e, bs)| {
                let who = format!(
                    "broker{} {}",
                    if bs.len() > 1 { "s" } else { "" },
                    and_list(bs)
                );
                match m {
                    Some(m) => format!(
                        "{who} hold{} msg {m}{}",
                        if bs.len() > 1 { "" } else { "s" },
                        e.map_or(String::new(), |e| format!(" (leader epoch {e})"))
                    ),
                    None => format!("{who} hold{} nothing", if bs.len() > 1 { "" } else { "s" }),
                }
            })
            .collect();
        if !parts.is_empty() {
            holding.push(format!("at offset {o} {}", parts.join(", ")));
        }
    }
    let unread_note = if unread.is_empty() {
        String::new()
    } else {
        format!("; {} (not read)", unread.join(", "))
    };
    if read.is_empty() {
        return (
            None,
            format!("no replica of {key} could be read{unread_note}"),
        );
    }
    let holds_at = |o: u64| {
        read.iter()
            .filter(|v| v.msg_at.contains(&o))
            .map(|v| v.broker)
            .collect::<Vec<_>>()
    };
    let complete = unread.is_empty();
    let (confirmed, head) = match t.anomaly.as_str() {
        "lost-write" => {
            let o = t.offsets[0];
            let m = t.msg.unwrap_or(0);
            let holders = holds_at(o);
            let elsewhere: Vec<i32> = read
                .iter()
                .filter(|v| !v.msg_at.is_empty())
                .map(|v| v.broker)
                .collect();
            if holders.is_empty() {
                let c = if complete { Some(true) } else { None };
                let also = if elsewhere.is_empty() {
                    String::new()
                } else {
                    format!(" (but broker(s) {} hold it nearby)", and_list(&elsewhere))
                };
                (c, format!("no replica holds msg {m} at offset {o}{also}"))
            } else {
                (
                    Some(false),
                    format!(
                        "msg {m} is still at offset {o} on broker(s) {}",
                        and_list(&holders)
                    ),
                )
            }
        }
        "duplicate" | "G1a" => {
            let m = t.msg.unwrap_or(0);
            let twice: Vec<i32> = read
                .iter()
                .filter(|v| v.msg_at.len() >= 2)
                .map(|v| v.broker)
                .collect();
            if t.anomaly == "duplicate" {
                if twice.is_empty() {
                    (
                        if complete { Some(false) } else { None },
                        format!("no replica holds msg {m} at two offsets"),
                    )
                } else {
                    (
                        Some(true),
                        format!("broker(s) {} hold msg {m} at two offsets", and_list(&twice)),
                    )
                }
            } else {
                let any: Vec<i32> = read
                    .iter()
                    .filter(|v| !v.msg_at.is_empty())
                    .map(|v| v.broker)
                    .collect();
                (
                    Some(!any.is_empty()),
                    format!("msg {m} is on broker(s) [{}]", and_list(&any)),
                )
            }
        }
        "inconsistent-offsets" => {
            let o = t.offsets[0];
            let gone: Vec<u64> = t
                .msgs
                .iter()
                .copied()
                .filter(|m| {
                    !read
                        .iter()
                        .any(|v| v.at.iter().any(|h| h.offset == o && h.msg == Some(*m)))
                })
                .collect();
            if gone.is_empty() {
                (
                    Some(false),
                    format!("every message read at offset {o} is still there on some replica"),
                )
            } else {
                (
                    if complete { Some(true) } else { None },
                    format!(
                        "msg {} read at offset {o} is there on no replica now",
                        and_list(&gone)
                    ),
                )
            }
        }
        _ => (None, String::new()),
    };
    let mut s = head;
    if !holding.is_empty() {
        s.push_str("; ");
        s.push_str(&holding.join("; "));
    }
    s.push_str(&unread_note);
    (confirmed, s)
}

/// The run-axis time of a log line.
fn time_s(unix_ms: i64, start_ms: Option<i64>) -> Option<f64> {
    start_ms.map(|s| (unix_ms - s) as f64 / 1000.0)
}

fn when(unix_ms: i64, start_ms: Option<i64>) -> String {
    match time_s(unix_ms, start_ms) {
        Some(t) => format!("{t:.1} s"),
        None => {
            let s = unix_ms.rem_euclid(86_400_000);
            format!(
                "{:02}:{:02}:{:02}.{:03} UTC",
                s / 3_600_000,
                s / 60_000 % 60,
                s / 1000 % 60,
                s % 1000
            )
        }
    }
}

/// One timeline entry for a line (`None`: not worth a sentence).
fn sentence(l: &LogLine, start_ms: Option<i64>) -> Option<String> {
    let t = when(l.unix_ms, start_ms);
    let p = l.partition.as_deref().unwrap_or("?");
    let b = |x: Option<i32>| x.map_or("?".into(), |b| b.to_string());
    let epoch = l.epoch.map_or(String::new(), |e| format!(" (epoch {e})"));
    Some(match l.kind {
        LineKind::Leader => format!("{t} broker {} leads {p}{epoch}", b(l.leader)),
        LineKind::Unclean => format!(
            "{t} broker {} elected leader of {p} uncleanly{epoch} (log line)",
            b(l.leader)
        ),
        LineKind::Election => format!(
            "{t} controller elects broker {} leader of {p}{epoch}",
            b(l.leader)
        ),
        LineKind::Truncate => format!(
            "{t} broker {} truncates {p} to offset {}",
            b(l.broker),
            l.offset.map_or("?".into(), |o| o.to_string())
        ),
        LineKind::Fenced => format!("{t} broker {} fenced on {p}", b(l.broker)),
        LineKind::Controller => format!("{t} broker {} becomes controller", b(l.broker)),
        LineKind::SessionExpired => {
            format!("{t} {} ({}): ZooKeeper session expired", l.node, l.server)
        }
        LineKind::ZkRole => format!(
            "{t} ZooKeeper on {} is {}",
            l.node,
            l.text.rsplit("- ").next().unwrap_or("?").trim()
        ),
        LineKind::Follower | LineKind::Isr => return None,
    })
}

/// The lines about `t`, the explaining line if any.
fn lines_for<'a>(
    t: &Target,
    lines: &'a [LogLine],
    start_ms: Option<i64>,
) -> (Vec<&'a LogLine>, Option<&'a LogLine>) {
    let at_ms = |ns: u64| start_ms.map(|s| s + (ns / 1_000_000) as i64);
    let t_ms = t.time_ns.and_then(at_ms);
    if ELECTION_ANOMALIES.contains(&t.anomaly.as_str()) {
        let (Some(from), Some(to)) = (t_ms, t.end_ns.and_then(at_ms).or(t_ms)) else {
            return (vec![], None);
        };
        let sel: Vec<&LogLine> = lines
            .iter()
            .filter(|l| {
                matches!(
                    l.kind,
                    LineKind::Controller | LineKind::SessionExpired | LineKind::ZkRole
                ) && l.unix_ms >= from - 10_000
                    && l.unix_ms <= to + 10_000
            })
            .take(MAX_LINES)
            .collect();
        let why = sel
            .iter()
            .find(|l| l.kind == LineKind::Controller)
            .or_else(|| {
                sel.iter()
                    .find(|l| l.kind == LineKind::ZkRole && l.text.ends_with("LEADING"))
            })
            .copied();
        return (sel, why);
    }
    let Some(key) = t.key.as_deref() else {
        return (vec![], None);
    };
    let about: Vec<&LogLine> = lines
        .iter()
        .filter(|l| l.partition.as_deref() == Some(key))
        .collect();
    // From the last leadership change before the anomaly's time (so the
    // story starts with who led), to two minutes after it.
    let from = t_ms.and_then(|ms| {
        about
            .iter()
            .filter(|l| {
                l.unix_ms <= ms
                    && matches!(
                        l.kind,
                        LineKind::Leader | LineKind::Unclean | LineKind::Election
                    )
            })
            .map(|l| l.unix_ms)
            .next_back()
    });
    let sel: Vec<&LogLine> = about
        .iter()
        .filter(|l| {
            from.is_none_or(|f| l.unix_ms >= f) && t_ms.is_none_or(|ms| l.unix_ms <= ms + 120_000)
        })
        .take(MAX_LINES)
        .copied()
        .collect();
    // A lost write's cause comes after its acknowledgement. An
    // inconsistent offset's time is the *second*, disagreeing read: the cut
    // may come before it (after the first read), so any cut since the
    // leadership change before it counts.
    let inconsistent = t.anomaly == "inconsistent-offsets";
    let after = |l: &&&LogLine| inconsistent || t_ms.is_none_or(|ms| l.unix_ms >= ms - 1_000);
    // Without the anomaly's wall-clock time, no line can be tied to it.
    let why = match t.anomaly.as_str() {
        _ if t_ms.is_none() => None,
        "lost-write" | "inconsistent-offsets" => {
            let o = t.offsets.first().copied().unwrap_or(u64::MAX);
            let cuts =
                |l: &&&LogLine| l.kind == LineKind::Truncate && l.offset.is_some_and(|to| to <= o);
            // The leader that acknowledged it cutting its own log tells the
            // story best; any replica's cut below the offset will do.
            let leader = t_ms.and_then(|ms| {
                sel.iter()
                    .filter(|l| {
                        l.unix_ms <= ms
                            && matches!(
                                l.kind,
                                LineKind::Leader | LineKind::Unclean | LineKind::Election
                            )
                    })
                    .filter_map(|l| l.leader)
                    .next_back()
            });
            sel.iter()
                .filter(after)
                .find(|l| cuts(l) && leader.is_some() && l.broker == leader)
                .or_else(|| sel.iter().filter(after).find(cuts))
                .or_else(|| {
                    sel.iter()
                        .filter(after)
                        .find(|l| l.kind == LineKind::Unclean)
                })
                .copied()
        }
        "duplicate" => sel
            .iter()
            .find(|l| {
                matches!(
                    l.kind,
                    LineKind::Leader | LineKind::Unclean | LineKind::Election
                ) && t_ms.is_none_or(|ms| (l.unix_ms - ms).abs() <= 10_000)
            })
            .copied(),
        _ => None,
    };
    (sel, why)
}

/// Evidence for one target from the dumps (`None`: segments not dumped)
/// and the classified log lines; `start_ms` is the wall-clock time of the
/// history's time 0 (`None`: unknown, times are then shown as UTC).
pub fn assemble(
    t: &Target,
    dumps: Option<&[ReplicaDump]>,
    lines: &[LogLine],
    start_ms: Option<i64>,
) -> ExampleEvidence {
    let views = dumps.map(|d| replica_views(t, d)).unwrap_or_default();
    let (confirmed, segments) = segment_verdict(t, &views, dumps.is_some());
    let (sel, why) = lines_for(t, lines, start_ms);
    let have_logs = !lines.is_empty();
    let mut timeline: Vec<(i64, String)> = sel
        .iter()
        .filter_map(|l| Some((l.unix_ms, sentence(l, start_ms)?)))
        .collect();
    if let (Some(ns), Some(s)) = (t.time_ns, start_ms) {
        let ms = s + (ns / 1_000_000) as i64;
        let what = match (t.anomaly.as_str(), t.msg, t.offsets.first()) {
            ("lost-write", Some(m), Some(o)) => {
                let by = sel
                    .iter()
                    .filter(|l| {
                        l.unix_ms <= ms
                            && matches!(
                                l.kind,
                                LineKind::Leader | LineKind::Unclean | LineKind::Election
                            )
                    })
                    .filter_map(|l| l.leader)
                    .next_back()
                    .map_or(String::new(), |b| format!(" by broker {b}"));
                format!("{} msg {m} acknowledged at offset {o}{by}", secs(ns))
            }
            ("duplicate", Some(m), _) => format!("{} msg {m} sent", secs(ns)),
            ("inconsistent-offsets", _, Some(o)) => format!(
                "{} consumers read different messages at offset {o}",
                secs(ns)
            ),
            ("G1a", Some(m), _) => format!("{} msg {m} sent (the send failed)", secs(ns)),
            (a, _, _) => format!("{} {a} starts", secs(ns)),
        };
        timeline.push((ms, what));
        if let Some(end) = t.end_ns {
            timeline.push((
                s + (end / 1_000_000) as i64,
                format!("{} {} ends", secs(end), t.anomaly),
            ));
        }
    }
    timeline.sort_by_key(|(ms, _)| *ms);
    timeline.dedup_by(|a, b| a.1 == b.1);
    // The story ends soon after the line that explains it.
    if let Some(cause) = why {
        let mut after = 0;
        timeline.retain(|(ms, _)| {
            if *ms > cause.unix_ms {
                after += 1;
            }
            after <= 2
        });
    }
    let mut timeline: Vec<String> = timeline.into_iter().map(|(_, s)| s).collect();
    if timeline.len() > MAX_TIMELINE {
        let cut = timeline.len() - MAX_TIMELINE;
        timeline.drain(1..=cut);
        timeline.insert(1, format!("… {cut} earlier entries left out"));
    }
    if dumps.is_some() && !segments.is_empty() {
        timeline.push(format!("now: {segments}"));
    }
    ExampleEvidence {
        anomaly: t.anomaly.clone(),
        index: t.index,
        key: t.key.clone(),
        msg: t.msg,
        offsets: t.offsets.clone(),
        replicas: views,
        confirmed,
        explained: have_logs.then_some(why.is_some()),
        cause: why.and_then(|l| sentence(l, start_ms)),
        segments,
        timeline,
        lines: sel
            .iter()
            .map(|l| Line {
                time_s: time_s(l.unix_ms, start_ms),
                unix_ms: l.unix_ms,
                node: l.node.clone(),
                broker: l.broker,
                kind: serde_json::to_value(l.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                text: l.text.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use splitbrain_environments::db::segments::SegmentRecord;

    const START: i64 = 1_000_000;

    fn line(
        at_s: f64,
        broker: i32,
        kind: LineKind,
        leader: Option<i32>,
        epoch: Option<i64>,
        offset: Option<u64>,
    ) -> LogLine {
        LogLine {
            unix_ms: START + (at_s * 1000.0) as i64,
            node: format!("n{}", broker + 3),
            server: "kafka".into(),
            broker: Some(broker),
            kind,
            partition: Some("queue-1".into()),
            leader,
            epoch,
            offset,
            text: format!("{kind:?} line"),
        }
    }

    fn rec(offset: u64, msg: u64, epoch: i64) -> SegmentRecord {
        SegmentRecord {
            partition: 1,
            offset,
            msg: Some(msg),
            leader_epoch: Some(epoch),
            producer_id: Some(-1),
            producer_epoch: Some(-1),
            sequence: Some(-1),
            create_time_ms: None,
        }
    }

    fn dump(broker: i32, status: DumpStatus, records: Vec<SegmentRecord>) -> ReplicaDump {
        ReplicaDump {
            broker,
            node: format!("n{}", broker + 3),
            status,
            error: (status != DumpStatus::Read).then(|| "ssh: connect timed out".into()),
            partitions: if status == DumpStatus::Read {
                vec![1]
            } else {
                vec![]
            },
            records,
            elapsed_ms: 900,
        }
    }

    fn lost(msg: u64, offset: u64) -> Target {
        let e = json!({"key": "queue-1", "msg": msg, "offset": offset, "send-op": 7});
        target("lost-write", 0, &e, &|i| (i == 7).then_some(23_400_000_000))
    }

    /// The story of issue 13: broker 2 leads, acknowledges 1669 at 556,
    /// broker 3 is elected uncleanly, broker 2 truncates to 540.
    fn story() -> Vec<LogLine> {
        vec![
            line(13.2, 2, LineKind::Leader, Some(2), Some(4), Some(500)),
            line(31.0, 3, LineKind::Unclean, Some(3), Some(5), None),
            line(31.4, 2, LineKind::Truncate, None, None, Some(540)),
        ]
    }

    fn replaced() -> Vec<ReplicaDump> {
        (1..=3)
            .map(|b| {
                dump(
                    b,
                    DumpStatus::Read,
                    vec![rec(555, 1700, 5), rec(556, 1702, 5)],
                )
            })
            .collect()
    }

    #[test]
    fn a_lost_write_is_confirmed_and_explained() {
        let t = lost(1669, 556);
        assert_eq!(t.partition, Some(1));
        assert_eq!(
            windows(std::slice::from_ref(&t)),
            vec![OffsetWindow {
                partition: 1,
                from: 553,
                to: 559
            }]
        );
        let d = replaced();
        let e = assemble(&t, Some(&d), &story(), Some(START));
        assert_eq!(e.confirmed, Some(true), "{}", e.segments);
        assert_eq!(e.explained, Some(true));
        assert!(
            e.segments
                .starts_with("no replica holds msg 1669 at offset 556"),
            "{}",
            e.segments
        );
        assert!(
            e.segments
                .contains("at offset 556 brokers 1, 2 and 3 hold msg 1702 (leader epoch 5)"),
            "{}",
            e.segments
        );
        assert_eq!(
            e.timeline,
            vec![
                "13.2 s broker 2 leads queue-1 (epoch 4)",
                "23.4 s msg 1669 acknowledged at offset 556 by broker 2",
                "31.0 s broker 3 elected leader of queue-1 uncleanly (epoch 5) (log line)",
                "31.4 s broker 2 truncates queue-1 to offset 540",
                "now: no replica holds msg 1669 at offset 556; at offset 556 brokers 1, 2 and 3 hold msg 1702 (leader epoch 5)",
            ]
        );
        assert_eq!(
            e.cause.as_deref(),
            Some("31.4 s broker 2 truncates queue-1 to offset 540")
        );
    }

    #[test]
    fn the_acknowledging_leaders_truncation_is_the_cause_and_ends_the_story() {
        let t = lost(1669, 556);
        let mut lines = story();
        // A follower cuts first; the leader that acknowledged it later;
        // then more happens.
        lines.insert(1, line(25.0, 3, LineKind::Truncate, None, None, Some(550)));
        for k in 0..5 {
            lines.push(line(
                40.0 + f64::from(k),
                1,
                LineKind::Leader,
                Some(1),
                Some(6 + i64::from(k)),
                None,
            ));
        }
        let e = assemble(&t, Some(&replaced()), &lines, Some(START));
        assert_eq!(
            e.cause.as_deref(),
            Some("31.4 s broker 2 truncates queue-1 to offset 540")
        );
        // Two entries after the cause, then what the segments say now.
        let i = e
            .timeline
            .iter()
            .position(|l| l.starts_with("31.4 s"))
            .unwrap();
        assert_eq!(e.timeline.len(), i + 4, "{:#?}", e.timeline);
        assert!(e.timeline[i + 3].starts_with("now: "));
    }

    #[test]
    fn a_message_still_held_is_not_confirmed() {
        let t = lost(1702, 556);
        let e = assemble(&t, Some(&replaced()), &story(), Some(START));
        assert_eq!(e.confirmed, Some(false));
        assert!(
            e.segments
                .starts_with("msg 1702 is still at offset 556 on broker(s) 1, 2 and 3"),
            "{}",
            e.segments
        );
    }

    #[test]
    fn no_truncation_below_the_offset_leaves_it_unexplained() {
        let t = lost(1669, 556);
        // Only a leader change, and a truncation above the offset.
        let lines = vec![
            line(13.2, 2, LineKind::Leader, Some(2), Some(4), None),
            line(31.4, 2, LineKind::Truncate, None, None, Some(600)),
        ];
        let e = assemble(&t, Some(&replaced()), &lines, Some(START));
        assert_eq!(e.explained, Some(false));
        assert_eq!(e.cause, None);
        // Without logs at all: unknown, not false.
        assert_eq!(
            assemble(&t, Some(&replaced()), &[], Some(START)).explained,
            None
        );
    }

    #[test]
    fn an_unreachable_replica_is_said_so_and_nothing_is_confirmed() {
        let t = lost(1669, 556);
        let mut d = replaced();
        d[1] = dump(2, DumpStatus::Unreachable, vec![]);
        let e = assemble(&t, Some(&d), &story(), Some(START));
        assert_eq!(e.confirmed, None, "{}", e.segments);
        assert!(
            e.segments.contains("broker 2 unreachable (not read)"),
            "{}",
            e.segments
        );
        assert_eq!(e.replicas[1].status, "unreachable");
        assert!(e.replicas[1]
            .error
            .as_deref()
            .unwrap()
            .contains("timed out"));
        // Every node unreachable: still evidence, saying so.
        let all: Vec<ReplicaDump> = (1..=3)
            .map(|b| dump(b, DumpStatus::Unreachable, vec![]))
            .collect();
        let e = assemble(&t, Some(&all), &[], Some(START));
        assert_eq!(e.confirmed, None);
        assert!(
            e.segments
                .starts_with("no replica of queue-1 could be read"),
            "{}",
            e.segments
        );
    }

    #[test]
    fn duplicates_and_inconsistent_offsets() {
        let e = json!({"key": "queue-1", "msg": 9, "offsets": [10, 14], "send-op": 1});
        let t = target("duplicate", 0, &e, &|_| Some(0));
        let d = vec![dump(
            1,
            DumpStatus::Read,
            vec![rec(10, 9, 1), rec(14, 9, 2)],
        )];
        let ev = assemble(&t, Some(&d), &[], Some(START));
        assert_eq!(ev.confirmed, Some(true), "{}", ev.segments);
        let d = vec![dump(
            1,
            DumpStatus::Read,
            vec![rec(10, 9, 1), rec(14, 8, 2)],
        )];
        assert_eq!(
            assemble(&t, Some(&d), &[], Some(START)).confirmed,
            Some(false)
        );

        let e = json!({"key": "queue-1", "offset": 12, "msgs": [3, 4], "first-disagreeing-op": 1});
        let t = target("inconsistent-offsets", 0, &e, &|_| Some(0));
        let d = vec![dump(1, DumpStatus::Read, vec![rec(12, 4, 2)])];
        let ev = assemble(&t, Some(&d), &[], Some(START));
        assert_eq!(ev.confirmed, Some(true));
        assert!(
            ev.segments
                .starts_with("msg 3 read at offset 12 is there on no replica now"),
            "{}",
            ev.segments
        );
        let d = vec![
            dump(1, DumpStatus::Read, vec![rec(12, 4, 2)]),
            dump(2, DumpStatus::Read, vec![rec(12, 3, 1)]),
        ];
        assert_eq!(
            assemble(&t, Some(&d), &[], Some(START)).confirmed,
            Some(false)
        );
    }

    #[test]
    fn an_inconsistent_offset_cut_before_the_second_read_is_explained() {
        let e = json!({"key": "queue-1", "offset": 556, "msgs": [1669, 1702], "first-disagreeing-op": 1});
        // Leader change at 13.2 s, cut at 20 s, the disagreeing read at 23.4 s.
        let t = target("inconsistent-offsets", 0, &e, &|_| Some(23_400_000_000));
        let lines = vec![
            line(13.2, 2, LineKind::Leader, Some(2), Some(4), None),
            line(20.0, 3, LineKind::Truncate, None, None, Some(540)),
        ];
        let ev = assemble(&t, Some(&replaced()), &lines, Some(START));
        assert_eq!(ev.explained, Some(true));
        assert_eq!(
            ev.cause.as_deref(),
            Some("20.0 s broker 3 truncates queue-1 to offset 540")
        );
        // A lost write acknowledged after that cut is not explained by it.
        let ev = assemble(&lost(1669, 556), Some(&replaced()), &lines, Some(START));
        assert_eq!(ev.explained, Some(false));
    }

    #[test]
    fn a_split_brain_gets_election_lines() {
        let e = json!({"start-ns": 10_000_000_000u64, "end-ns": 20_000_000_000u64});
        let t = target("multiple-controllers", 0, &e, &|_| None);
        let mut ctl = line(12.0, 3, LineKind::Controller, None, None, None);
        ctl.partition = None;
        let far = LogLine {
            unix_ms: START + 90_000,
            ..ctl.clone()
        };
        let e = assemble(&t, None, &[ctl, far], Some(START));
        assert_eq!(e.explained, Some(true));
        assert_eq!(e.lines.len(), 1);
        assert_eq!(
            e.timeline,
            vec![
                "10.0 s multiple-controllers starts",
                "12.0 s broker 3 becomes controller",
                "20.0 s multiple-controllers ends"
            ]
        );
        assert_eq!(e.segments, "segments not dumped");
    }

    #[test]
    fn windows_merge() {
        let t = |o: Vec<u64>| Target {
            anomaly: "duplicate".into(),
            index: 0,
            key: Some("queue-0".into()),
            partition: Some(0),
            msg: None,
            msgs: vec![],
            offsets: o,
            time_ns: None,
            end_ns: None,
        };
        let w = windows(&[t(vec![10, 14]), t(vec![100])]);
        assert_eq!(
            w,
            vec![
                OffsetWindow {
                    partition: 0,
                    from: 7,
                    to: 17
                },
                OffsetWindow {
                    partition: 0,
                    from: 97,
                    to: 103
                }
            ]
        );
    }
}
