//! Every anomaly example with the servers' side of the story (issue 13),
//! collected after the final read and the log collection, before the
//! cluster goes down: what each replica's segments hold at the example's
//! offsets (`environments::db::segments`, Kafka's DumpLogSegments over SSH)
//! and what the servers logged about it ([`logs`]), assembled into one
//! [`ExampleEvidence`] per example ([`assemble`]) and stored as
//! `evidence.json` in the run directory. The reports attach it to each
//! example; `splitbrain explain` prints it from a stored run.
//!
//! Collecting evidence never fails a run: an unreachable node, a failed
//! dump or a missing log is recorded in the evidence itself.

pub mod assemble;
pub mod logs;

pub use assemble::{ExampleEvidence, Target};

use crate::error::{Result, RunError};
use crate::report::words::OpRefs;
use serde::{Deserialize, Serialize};
use splitbrain_checkers::Verdict;
use splitbrain_environments::db::segments::{self, ReplicaDump};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// The evidence of a run, in its directory.
pub const EVIDENCE_FILE: &str = "evidence.json";
/// The wall-clock time of the history's time 0, in the run directory.
pub const CLOCK_FILE: &str = "clock.json";
/// Evidence examples per anomaly, unless the test says otherwise.
pub const DEFAULT_LIMIT: usize = 20;
/// The longest one node's segment dump may take.
pub const DUMP_LIMIT: Duration = Duration::from_secs(30);

/// `evidence.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidenceFile {
    /// Wall-clock ms since the Unix epoch of the history's time 0 (`None`
    /// when the run did not record it).
    #[serde(rename = "history-start-unix-ms")]
    pub history_start_unix_ms: Option<i64>,
    /// Time collecting took, ms (dumps, log reading, assembly).
    #[serde(rename = "collected-in-ms")]
    pub collected_in_ms: u64,
    /// Of which: checking the history again to find the examples, ms.
    #[serde(rename = "analysis-ms", default)]
    pub analysis_ms: u64,
    /// Of which: the segment dumps on the brokers' nodes (in parallel), ms.
    #[serde(rename = "dump-ms", default)]
    pub dump_ms: u64,
    /// Examples per anomaly looked at.
    pub limit: usize,
    /// What each broker's segments hold in the windows read (`None`: not
    /// dumped, e.g. `explain` on a run without evidence).
    pub dumps: Option<Vec<ReplicaDump>>,
    /// One per example looked at.
    pub examples: Vec<ExampleEvidence>,
}

impl EvidenceFile {
    /// The evidence for example `index` of `anomaly`, if collected.
    pub fn example(&self, anomaly: &str, index: usize) -> Option<&ExampleEvidence> {
        self.examples
            .iter()
            .find(|e| e.anomaly == anomaly && e.index == index)
    }

    /// results.json's `evidence-summary`: examples with evidence, what
    /// collecting took, and per anomaly how many examples the segments
    /// confirm and the logs explain.
    pub fn summary(&self) -> serde_json::Value {
        let mut per = serde_json::Map::new();
        for e in &self.examples {
            let entry = per.entry(e.anomaly.clone()).or_insert_with(|| {
                serde_json::json!({"examples": 0, "confirmed": 0, "explained": 0, "unreachable-replicas": 0})
            });
            let bump = |v: &mut serde_json::Value, k: &str, yes: bool| {
                if yes {
                    v[k] = serde_json::json!(v[k].as_u64().unwrap_or(0) + 1);
                }
            };
            bump(entry, "examples", true);
            bump(entry, "confirmed", e.confirmed == Some(true));
            bump(entry, "explained", e.explained == Some(true));
            bump(
                entry,
                "unreachable-replicas",
                e.replicas.iter().any(|r| r.status == "unreachable"),
            );
        }
        serde_json::json!({
            "examples": self.examples.len(),
            "collected-in-ms": self.collected_in_ms,
            "limit": self.limit,
            "segments-dumped": self.dumps.is_some(),
            "anomalies": per,
        })
    }

    /// Lost writes: (reported in the evidence, confirmed by the segments,
    /// explained by the logs, neither confirmed nor explained).
    pub fn lost_write_counts(&self) -> (usize, usize, usize, usize) {
        let lw: Vec<&ExampleEvidence> = self
            .examples
            .iter()
            .filter(|e| e.anomaly == "lost-write")
            .collect();
        let c = lw.iter().filter(|e| e.confirmed == Some(true)).count();
        let x = lw.iter().filter(|e| e.explained == Some(true)).count();
        let u = lw
            .iter()
            .filter(|e| e.confirmed != Some(true) || e.explained != Some(true))
            .count();
        (lw.len(), c, x, u)
    }
}

/// Records the wall-clock time of the history's time 0.
pub fn write_clock(dir: &Path, started_at: SystemTime) -> Result<()> {
    let ms = started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let path = dir.join(CLOCK_FILE);
    std::fs::write(
        &path,
        serde_json::json!({ "history-start-unix-ms": ms }).to_string() + "\n",
    )
    .map_err(RunError::io(format!(
        "cannot write {}; is the run directory writable?",
        path.display()
    )))
}

/// The wall-clock ms of the history's time 0, if the run recorded it.
pub fn read_clock(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(CLOCK_FILE)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["history-start-unix-ms"].as_i64()
}

/// The examples to find evidence for: up to `limit` per anomaly of those
/// that name offsets (segments) or a split's window (elections).
pub fn targets(verdict: &Verdict, ops: &OpRefs, limit: usize) -> Vec<Target> {
    let op_time = |i: u64| ops.get(&i).map(|o| o.time_ns);
    let mut out = Vec::new();
    for name in assemble::SEGMENT_ANOMALIES
        .iter()
        .chain(assemble::ELECTION_ANOMALIES.iter())
    {
        if let Some(a) = verdict.anomalies.get(*name) {
            for (i, e) in a.examples.iter().take(limit).enumerate() {
                out.push(assemble::target(name, i, e, &op_time));
            }
        }
    }
    out
}

/// Builds the evidence of `targets` from `dumps` and the logs collected in
/// `dir`.
pub fn build(
    dir: &Path,
    topic: &str,
    targets: &[Target],
    dumps: Option<Vec<ReplicaDump>>,
    limit: usize,
    started: Instant,
) -> EvidenceFile {
    let start_ms = read_clock(dir);
    let lines = logs::read_all(dir, topic);
    let examples = targets
        .iter()
        .map(|t| assemble::assemble(t, dumps.as_deref(), &lines, start_ms))
        .collect();
    EvidenceFile {
        history_start_unix_ms: start_ms,
        collected_in_ms: started.elapsed().as_millis() as u64,
        analysis_ms: 0,
        dump_ms: 0,
        limit,
        dumps,
        examples,
    }
}

/// The check options of the evidence pass: the default ones, keeping up to
/// `limit` examples per anomaly (the checker keeps the first ones, so the
/// report's examples are a prefix of these).
fn options(limit: usize) -> splitbrain_checkers::CheckOptions {
    let d = splitbrain_checkers::CheckOptions::default();
    splitbrain_checkers::CheckOptions {
        examples: d.examples.max(limit),
        ..d
    }
}

/// The analysis the reports would make (default check options) from one
/// made with [`options`]`(limit)`: each anomaly's examples cut to the
/// default number. The checkers keep the *first* examples, so this is what
/// checking again with the default options gives, without reading the
/// history again.
pub fn for_reports(mut analysis: crate::report::Analysis) -> crate::report::Analysis {
    let keep = splitbrain_checkers::CheckOptions::default().examples;
    for a in analysis.verdict.anomalies.values_mut() {
        a.examples.truncate(keep);
    }
    analysis
}

/// Collects a run's evidence while its cluster is up: checks the history
/// to find the examples, dumps their offsets from every broker (in
/// parallel, each node bounded by [`DUMP_LIMIT`]), reads the collected
/// logs and writes `evidence.json`. Returns it, and the analysis of the
/// history (examples up to `limit`; see [`for_reports`]), which the
/// reports may reuse.
pub fn collect(
    control: &splitbrain_core::control::Control,
    layout: &splitbrain_environments::db::cluster::ClusterLayout,
    dir: &Path,
    history: &Path,
    topic: &str,
    limit: usize,
) -> Result<(EvidenceFile, crate::report::Analysis)> {
    let started = Instant::now();
    let analysis = crate::report::analyze(history, &options(limit))?;
    let targets = targets(&analysis.verdict, &analysis.example_ops, limit);
    let analysis_ms = started.elapsed().as_millis() as u64;
    let windows = assemble::windows(&targets);
    let dump_started = Instant::now();
    let dumps = if windows.is_empty() {
        None
    } else {
        Some(segments::dump_segments(
            control, layout, topic, &windows, DUMP_LIMIT,
        ))
    };
    let dump_ms = dump_started.elapsed().as_millis() as u64;
    let mut file = build(dir, topic, &targets, dumps, limit, started);
    file.analysis_ms = analysis_ms;
    file.dump_ms = dump_ms;
    save(dir, &file)?;
    Ok((file, analysis))
}

/// Writes `evidence.json`.
pub fn save(dir: &Path, file: &EvidenceFile) -> Result<()> {
    let path = dir.join(EVIDENCE_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(file)? + "\n").map_err(RunError::io(
        format!(
            "cannot write {}; is the run directory writable?",
            path.display()
        ),
    ))
}

/// The stored `evidence.json` of a run, if any (unreadable: `None`).
pub fn load(dir: &Path) -> Option<EvidenceFile> {
    let text = std::fs::read_to_string(dir.join(EVIDENCE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// A run's evidence without a cluster: the stored `evidence.json`, or, for
/// a run without one, the log evidence built now from its history and
/// collected logs (no segments).
pub fn of_stored_run(dir: &Path, topic: &str) -> Result<EvidenceFile> {
    match load(dir) {
        Some(f) => Ok(f),
        None => rebuild(dir, topic),
    }
}

/// A run's evidence assembled again now, without a cluster, from its
/// history, its collected logs and the segment dumps stored in its
/// `evidence.json` (none for a run without one), with as many examples per
/// anomaly as that file had (else [`DEFAULT_LIMIT`]).
pub fn rebuild(dir: &Path, topic: &str) -> Result<EvidenceFile> {
    let started = Instant::now();
    let stored = load(dir);
    let limit = stored.as_ref().map_or(DEFAULT_LIMIT, |f| f.limit);
    let history = dir.join(crate::report::HISTORY_FILE);
    let analysis = crate::report::analyze(&history, &options(limit))?;
    let targets = targets(&analysis.verdict, &analysis.example_ops, limit);
    Ok(build(
        dir,
        topic,
        &targets,
        stored.and_then(|f| f.dumps),
        limit,
        started,
    ))
}

/// `evidence` objects inserted into the anomalies' examples of a
/// results.json `anomalies` value.
pub fn attach(anomalies: &mut serde_json::Value, file: &EvidenceFile) {
    let Some(map) = anomalies.as_object_mut() else {
        return;
    };
    for (name, a) in map.iter_mut() {
        if let Some(examples) = a.get_mut("examples").and_then(|e| e.as_array_mut()) {
            for (i, e) in examples.iter_mut().enumerate() {
                // Only where the example is the one the evidence was
                // collected for (a report regenerated with other options
                // may list other examples).
                let ev = file
                    .example(name, i)
                    .filter(|ev| ev.msg.is_none() || e["msg"].as_u64() == ev.msg);
                if let (Some(ev), Some(obj)) = (ev, e.as_object_mut()) {
                    if let Ok(v) = serde_json::to_value(ev) {
                        obj.insert("evidence".into(), v);
                    }
                }
            }
        }
    }
}

/// The evidence of one example as text lines: the timeline, then the raw
/// lines (for `splitbrain explain`).
pub fn explain_text(e: &ExampleEvidence, raw: bool) -> String {
    let mut out = format!(
        "{} #{}{}{}{}\n",
        e.anomaly,
        e.index,
        e.key.as_deref().map_or(String::new(), |k| format!(" {k}")),
        e.msg.map_or(String::new(), |m| format!(" msg {m}")),
        if e.offsets.is_empty() {
            String::new()
        } else {
            format!(
                " offset {}",
                e.offsets
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    out.push_str(&format!(
        "  confirmed by the segments: {}; explained by the logs: {}{}\n",
        yn(e.confirmed),
        yn(e.explained),
        e.cause
            .as_deref()
            .map_or(String::new(), |c| format!(" ({c})"))
    ));
    for t in &e.timeline {
        out.push_str(&format!("  {t}\n"));
    }
    for r in &e.replicas {
        if let Some(err) = &r.error {
            out.push_str(&format!(
                "  broker {} ({}): {}: {err}\n",
                r.broker, r.node, r.status
            ));
        }
    }
    if raw && !e.lines.is_empty() {
        out.push_str("  log lines:\n");
        for l in &e.lines {
            let t = l.time_s.map_or(String::new(), |t| format!("{t:.3} s "));
            out.push_str(&format!("    {t}{} {}\n", l.node, l.text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evidence_is_attached_to_its_example() {
        let t = Target {
            anomaly: "lost-write".into(),
            index: 1,
            key: Some("queue-0".into()),
            partition: Some(0),
            msg: Some(5),
            msgs: vec![],
            offsets: vec![3],
            time_ns: None,
            end_ns: None,
        };
        let ev = assemble::assemble(&t, None, &[], None);
        let file = EvidenceFile {
            history_start_unix_ms: None,
            collected_in_ms: 1,
            analysis_ms: 0,
            dump_ms: 0,
            limit: 20,
            dumps: None,
            examples: vec![ev],
        };
        let mut a = json!({"lost-write": {"count": 2, "examples": [{"msg": 4}, {"msg": 5}]}});
        attach(&mut a, &file);
        assert!(a["lost-write"]["examples"][0].get("evidence").is_none());
        assert_eq!(a["lost-write"]["examples"][1]["evidence"]["msg"], 5);
        assert_eq!(
            a["lost-write"]["examples"][1]["evidence"]["segments"],
            "segments not dumped"
        );
        // Round trip through the file.
        let back: EvidenceFile =
            serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
        assert_eq!(back, file);
        assert_eq!(file.lost_write_counts(), (1, 0, 0, 1));
        let s = file.summary();
        assert_eq!(s["examples"], 1);
        assert_eq!(s["anomalies"]["lost-write"]["examples"], 1);
        assert_eq!(s["anomalies"]["lost-write"]["confirmed"], 0);
        assert_eq!(s["segments-dumped"], false);
    }

    #[test]
    fn reports_carry_the_evidence_of_a_lost_write() {
        let dir = std::env::temp_dir().join(format!("sb-evreport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // msg 1 acknowledged at offset 0, msg 2 at 1; only msg 2 is read.
        let history = dir.join(crate::report::HISTORY_FILE);
        std::fs::write(
            &history,
            [
                r#"{"index":0,"time":1000,"process":0,"type":"invoke","f":"send","value":{"key":"queue-0","msg":1}}"#,
                r#"{"index":1,"time":2000,"process":0,"type":"ok","f":"send","value":{"key":"queue-0","msg":1,"offset":0}}"#,
                r#"{"index":2,"time":3000,"process":0,"type":"invoke","f":"send","value":{"key":"queue-0","msg":2}}"#,
                r#"{"index":3,"time":4000,"process":0,"type":"ok","f":"send","value":{"key":"queue-0","msg":2,"offset":1}}"#,
                r#"{"index":4,"time":5000,"process":1,"type":"invoke","f":"poll","value":null}"#,
                r#"{"index":5,"time":6000,"process":1,"type":"ok","f":"poll","value":{"records":{"queue-0":[[1,2]]}}}"#,
            ]
            .join("\n")
                + "\n",
        )
        .unwrap();
        let analysis = crate::report::analyze(&history, &options(20)).unwrap();
        let t = targets(&analysis.verdict, &analysis.example_ops, 20);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(
            (t[0].msg, t[0].offsets.clone(), t[0].time_ns),
            (Some(1), vec![0], Some(2000))
        );
        let dumps = vec![ReplicaDump {
            broker: 1,
            node: "n4".into(),
            status: segments::DumpStatus::Read,
            error: None,
            partitions: vec![0],
            records: vec![],
            elapsed_ms: 1,
        }];
        let file = build(&dir, "queue", &t, Some(dumps), 20, Instant::now());
        save(&dir, &file).unwrap();
        let info = crate::report::load_run_info(&dir).unwrap();
        assert!(info.evidence.is_some());
        let results = crate::report::results_json(&analysis, &info);
        let ev = &results["anomalies"]["lost-write"]["examples"][0]["evidence"];
        assert_eq!(ev["confirmed"], true, "{ev}");
        assert_eq!(
            results["evidence-summary"]["anomalies"]["lost-write"]["confirmed"],
            1
        );
        let html = crate::report::html::render(&analysis, &info);
        assert!(html.contains("id=\"evidence-summary\""), "no summary");
        assert!(
            html.contains("<li>now: no replica holds msg 1 at offset 0"),
            "no timeline"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wide_analysis_cut_for_the_reports_is_the_default_one() {
        use splitbrain_checkers::synth::{Plants, Synth, SynthOptions};
        let dir = std::env::temp_dir().join(format!("sb-evwide-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let history = dir.join("history.jsonl");
        let mut synth = Synth::new(SynthOptions {
            ops: 20_000,
            keys: 4,
            consumers: 4,
            plants: Plants::parse(
                "lost-write=30,duplicate=25,inconsistent-offsets=15,G1a=12,poll-skip=14,nonmonotonic-poll=12,phantom=11",
            )
            .unwrap(),
            ..SynthOptions::default()
        })
        .unwrap();
        let mut out = Vec::new();
        while synth.next_chunk(&mut out) {}
        std::fs::write(&history, &out).unwrap();
        let default =
            crate::report::analyze(&history, &splitbrain_checkers::CheckOptions::default())
                .unwrap();
        let wide = crate::report::analyze(&history, &options(200)).unwrap();
        assert!(wide.verdict.anomalies["lost-write"].examples.len() > 10);
        assert_eq!(for_reports(wide).verdict, default.verdict);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_clock_round_trips() {
        let dir = std::env::temp_dir().join(format!("sb-evclock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_991_126_410);
        write_clock(&dir, t).unwrap();
        assert_eq!(read_clock(&dir), Some(1_795_991_126_410));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
