//! `splitbrain run --replay RUN_DIR`: a stored run again, with the same
//! settings (its `test.toml`, seed included) and the exact schedule it
//! carried out (read back from its history by
//! [`splitbrain_nemeses::replay::recorded`]: each fault at its recorded
//! time after the start of the load, on the targets it hit). The new run's
//! `links.json` names the original and the anomaly kinds it found;
//! results.json and the report say whether the same kinds came back
//! ([`crate::report::links`]).

use crate::error::{Result, RunError};
use crate::report::{self, CONFIG_FILE, HISTORY_FILE, RESULTS_FILE};
use crate::run::config::TestConfig;
use crate::run::interrupt::Interrupt;
use crate::run::{self, RunOutcome};
use serde_json::{json, Value};
use splitbrain_checkers::CheckOptions;
use splitbrain_nemeses::replay;
use splitbrain_nemeses::Schedule;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The links file of a run directory: how it relates to other runs
/// (`replay-of`, `shrunk-from`, `shrunk-to`, `shrink`).
pub const LINKS_FILE: &str = "links.json";

/// A stored run, as replay and shrink need it.
#[derive(Clone, Debug)]
pub struct StoredTest {
    /// Its directory.
    pub dir: PathBuf,
    /// Its test config (`test.toml`, with the seed it used).
    pub config: TestConfig,
    /// The schedule it carried out, each start pinned to what it hit.
    pub schedule: Schedule,
    /// The anomaly kinds it found.
    pub anomalies: BTreeSet<String>,
}

fn replay_error(what: String) -> RunError {
    RunError::Replay { what }
}

/// Reads what a run directory keeps: its config, its recorded schedule
/// and the anomaly kinds found (from results.json, or else by checking its
/// history again).
pub fn load(dir: &Path) -> Result<StoredTest> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        replay_error(format!(
            "{}: {e}; pass a run directory of the store (store/<test>/<timestamp>)",
            config_path.display()
        ))
    })?;
    let config = TestConfig::from_toml(&text).map_err(|source| RunError::Toml {
        what: format!("{} is not a test config", config_path.display()),
        source,
    })?;
    let history = dir.join(HISTORY_FILE);
    let text = std::fs::read_to_string(&history).map_err(|e| {
        replay_error(format!(
            "{}: {e}; the run recorded no history to replay",
            history.display()
        ))
    })?;
    let schedule = replay::recorded(&replay::nemesis_events(&text))
        .map_err(|e| replay_error(format!("{}: {e}", history.display())))?;
    let anomalies = match stored_anomalies(dir) {
        Some(a) => a,
        None => report::found(&report::analyze(&history, &CheckOptions::default())?.verdict),
    };
    Ok(StoredTest {
        dir: dir.to_path_buf(),
        config,
        schedule,
        anomalies,
    })
}

/// The anomaly kinds results.json lists as found, if it is there.
pub fn stored_anomalies(dir: &Path) -> Option<BTreeSet<String>> {
    let text = std::fs::read_to_string(dir.join(RESULTS_FILE)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(anomaly_kinds(&v))
}

/// Anomaly kinds with a count above 0 in a results.json document
/// (informational findings excluded, as in [`report::found`]).
pub fn anomaly_kinds(results: &Value) -> BTreeSet<String> {
    results["anomalies"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(n, a)| {
                    a["count"].as_u64().unwrap_or(0) > 0
                        && splitbrain_checkers::catalog::is_anomaly(n)
                })
                .map(|(n, _)| n.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// How a run directory is named in links: `<test>/<run>` under its store
/// (the path as given when it is not in one).
pub fn store_name(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match (dir.parent().and_then(Path::file_name), dir.file_name()) {
        (Some(t), Some(r)) => format!("{}/{}", t.to_string_lossy(), r.to_string_lossy()),
        _ => dir.display().to_string(),
    }
}

/// A run directory's links (an empty object when it has none).
pub fn read_links(dir: &Path) -> Value {
    std::fs::read_to_string(dir.join(LINKS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// Sets `key` of a run directory's links to `value`.
pub fn add_link(dir: &Path, key: &str, value: Value) -> Result<()> {
    let mut links = read_links(dir);
    links[key] = value;
    let path = dir.join(LINKS_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&links)? + "\n").map_err(RunError::io(
        format!("cannot write {}; is the store writable?", path.display()),
    ))
}

/// Replays the run in `original`: same config and seed, its exact
/// schedule; the new run goes into `store` under the same test name.
pub fn replay(original: &Path, store: &Path, interrupt: Interrupt) -> Result<RunOutcome> {
    let stored = load(original)?;
    let link = json!({
        "run": store_name(original),
        "dir": original.display().to_string(),
        "anomalies": stored.anomalies,
    });
    let mut cfg = stored.config;
    // Its test.toml then holds the exact schedule: a replay of it replays
    // the same.
    cfg.nemesis.schedule = Some(stored.schedule);
    run::run_planned(
        cfg,
        store,
        interrupt,
        run::Planned {
            links: vec![("replay-of".into(), link)],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_nemeses::{Action, Pin};

    #[test]
    fn a_stored_run_gives_its_config_its_pinned_schedule_and_its_anomalies() {
        let root = tempfile::tempdir().unwrap();
        let dir = crate::store::create_run_dir(root.path(), "kills").unwrap();
        let cfg = TestConfig {
            name: "kills".into(),
            seed: 42,
            ..TestConfig::default()
        };
        std::fs::write(dir.join(CONFIG_FILE), cfg.to_toml()).unwrap();
        let schedule = json!({"spec": {"seed": 42, "faults": [{"fault": "kill", "service": "kafka", "target": "one"}],
            "quiet": {"fixed": 1000}, "fault": {"fixed": 1000}, "total_ms": 5000},
            "steps": [{"at_ms": 1000, "action": {"action": "start", "fault": {"fault": "kill", "service": "kafka", "target": "one"}}},
                      {"at_ms": 2000, "action": {"action": "stop"}}]});
        let lines = [
            json!({"index": 0, "time": 0, "process": "nemesis", "type": "info", "f": "schedule", "value": schedule}),
            json!({"index": 1, "time": 5, "process": "nemesis", "type": "info", "f": "kill", "value": {"id": 5, "node": "n5", "fault-id": 0}}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(HISTORY_FILE), text).unwrap();
        std::fs::write(
            dir.join(RESULTS_FILE),
            json!({"anomalies": {"lost": {"count": 3}, "duplicate": {"count": 0}, "unseen": {"count": 9}}}).to_string(),
        )
        .unwrap();
        let stored = load(&dir).unwrap();
        assert_eq!(stored.config.seed, 42);
        assert_eq!(stored.anomalies, ["lost".to_string()].into());
        assert!(matches!(
            stored.schedule.steps[0].action,
            Action::Start { .. }
        ));
        assert_eq!(
            stored.schedule.steps[0].pin,
            Some(Pin::Servers { ids: vec![5] })
        );
        assert_eq!(stored.schedule.spec.concurrency, 1);
        assert!(store_name(&dir).starts_with("kills/"));
        // The pinned schedule survives the stored test.toml.
        let mut with = stored.config.clone();
        with.nemesis.schedule = Some(stored.schedule.clone());
        let back = TestConfig::from_toml(&with.to_toml()).unwrap();
        assert_eq!(back.nemesis.schedule, Some(stored.schedule.clone()));

        add_link(&dir, "shrunk-to", json!({"run": "kills-min/1"})).unwrap();
        add_link(&dir, "shrink", json!("shrinks/x")).unwrap();
        let links = read_links(&dir);
        assert_eq!(links["shrunk-to"]["run"], "kills-min/1");
        assert_eq!(links["shrink"], "shrinks/x");

        std::fs::remove_file(dir.join(CONFIG_FILE)).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("pass a run directory"), "{e}");
    }
}
