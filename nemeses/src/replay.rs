//! Replay: the exact schedule a run carried out, read back from its
//! history. The `schedule` event holds the plan (seed, steps and times
//! relative to the schedule's start, which is the start of the load); the
//! start events (`kill`, `pause`, `start-partition`) hold what each fault
//! hit, under its `fault-id` (its number in start order). [`recorded`]
//! joins them into a [`Schedule`] whose starts are pinned ([`Pin`]) to
//! those targets, so a replay hits the same servers and cuts the same
//! links instead of drawing them again.

use crate::nemesis::Pin;
use crate::partition::Cuts;
use crate::schedule::{Action, Schedule};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a history holds no replayable schedule.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No `schedule` event: the run had no fault schedule, or the history
    /// was cut before it.
    #[error("the history has no `schedule` event (was the run started by `splitbrain run`?); nothing to replay")]
    NoSchedule,
    /// The `schedule` event does not parse.
    #[error("the history's `schedule` event is not a schedule: {0}")]
    BadSchedule(#[from] serde_json::Error),
}

/// What a recorded start hit: the servers (`kill`, `pause`) or the cuts
/// (`start-partition`), by `fault-id`.
fn recorded_pins(events: &[(String, Value)]) -> BTreeMap<u64, Pin> {
    let mut pins: BTreeMap<u64, Pin> = BTreeMap::new();
    for (f, v) in events {
        let Some(id) = v.get("fault-id").and_then(Value::as_u64) else {
            continue;
        };
        match f.as_str() {
            "kill" | "pause" => {
                if let Some(server) = v.get("id").and_then(Value::as_i64) {
                    match pins.entry(id).or_insert(Pin::Servers { ids: vec![] }) {
                        Pin::Servers { ids } if !ids.contains(&server) => ids.push(server),
                        _ => {}
                    }
                }
            }
            "start-partition" => {
                if let Some(cuts) = v
                    .get("grudge")
                    .and_then(|g| serde_json::from_value::<Cuts>(g.clone()).ok())
                {
                    pins.insert(id, Pin::Cuts { cuts });
                }
            }
            _ => {}
        }
    }
    pins
}

/// The schedule recorded in `events` (the `(f, value)` of each nemesis
/// event, in history order) with every start that hit something pinned to
/// what it hit. Planned faults that never started (the load ended first,
/// or a fault error ended the schedule) are left out: no event names their
/// `fault-id`.
pub fn recorded(events: &[(String, Value)]) -> Result<Schedule, ReplayError> {
    let plan = events
        .iter()
        .find(|(f, _)| f == "schedule")
        .map(|(_, v)| v.clone())
        .ok_or(ReplayError::NoSchedule)?;
    let mut schedule: Schedule = serde_json::from_value(plan)?;
    let started = events
        .iter()
        .filter_map(|(_, v)| v.get("fault-id").and_then(Value::as_u64))
        .max()
        .map_or(0, |k| k as usize + 1);
    schedule.keep_first_faults(started);
    let pins = recorded_pins(events);
    let mut k = 0u64;
    for step in &mut schedule.steps {
        if let Action::Start { .. } = step.action {
            if let Some(pin) = pins.get(&k) {
                step.pin = Some(pin.clone());
            }
            k += 1;
        }
    }
    Ok(schedule)
}

/// The `(f, value)` of every nemesis event of a history file's text.
pub fn nemesis_events(history_text: &str) -> Vec<(String, Value)> {
    history_text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["process"] == "nemesis")
        .map(|v| {
            (
                v["f"].as_str().unwrap_or_default().to_string(),
                v["value"].clone(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeDb};
    use crate::nemesis::{Fault, Nemesis, Target};
    use crate::schedule::{self, Interval, ScheduleSpec};
    use splitbrain_core::db::ServerKind;
    use std::sync::atomic::AtomicBool;

    /// Kills and pauses of random servers: which ones depends on the seed.
    fn plan() -> Schedule {
        Schedule::plan(&ScheduleSpec {
            seed: 4,
            faults: vec![
                Fault::Kill {
                    service: ServerKind::Zookeeper,
                    target: Target::One,
                },
                Fault::Pause {
                    service: ServerKind::Zookeeper,
                    target: Target::Minority,
                },
            ],
            quiet: Interval::Fixed(20),
            fault: Interval::Fixed(20),
            total_ms: 400,
            concurrency: 1,
        })
    }

    /// `(f, server id)` of every kill/pause event, in order.
    fn hits(events: &[(String, Value)]) -> Vec<(String, i64)> {
        events
            .iter()
            .filter(|(f, _)| f == "kill" || f == "pause")
            .map(|(f, v)| (f.clone(), v["id"].as_i64().unwrap()))
            .collect()
    }

    fn run_with_seed(schedule: &Schedule, seed: u64) -> Vec<(String, Value)> {
        let db = FakeDb::new();
        let dir = tempfile::tempdir().unwrap();
        let (h, path) = fake::history(dir.path());
        let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h.clone()), seed);
        let report = schedule::run(&mut n, schedule, Some(&h), &AtomicBool::new(false)).unwrap();
        assert!(report.is_clean(), "{report:?}");
        nemesis_events(&std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn a_replay_hits_what_the_original_hit_whatever_its_seed() {
        let original = run_with_seed(&plan(), 1);
        let replayed = recorded(&original).unwrap();
        assert!(replayed
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Start { .. }))
            .all(|s| s.pin.is_some()));
        // Drawn targets differ between seeds (the control) ...
        let seeds: Vec<Vec<(String, i64)>> = (2..12)
            .map(|seed| hits(&run_with_seed(&plan(), seed)))
            .collect();
        assert!(
            seeds.iter().any(|h| *h != hits(&original)),
            "some other seed draws other targets: {seeds:?}"
        );
        // ... pinned ones do not.
        for seed in 2..12 {
            let again = run_with_seed(&replayed, seed);
            assert_eq!(hits(&again), hits(&original), "seed {seed}");
            assert!(again
                .iter()
                .filter(|(f, _)| f == "kill" || f == "pause")
                .all(|(_, v)| v["pinned"] == true));
        }
    }

    #[test]
    fn faults_that_never_started_are_left_out() {
        let original = run_with_seed(&plan(), 1);
        let all = plan().intervals().len();
        // Cut the history after the second fault's events.
        let cut: Vec<(String, Value)> = original
            .iter()
            .filter(|(_, v)| v.get("fault-id").and_then(Value::as_u64).unwrap_or(0) < 2)
            .filter(|(f, _)| f != "heal-all")
            .cloned()
            .collect();
        let r = recorded(&cut).unwrap();
        assert!(all > 2);
        assert_eq!(r.intervals().len(), 2);
        let times = |s: &Schedule| -> Vec<(u64, u64, Fault)> {
            s.intervals()
                .into_iter()
                .map(|(a, b, f, _)| (a, b, f))
                .collect()
        };
        assert_eq!(times(&r), times(&plan())[..2].to_vec());
        assert!(r.steps.iter().all(|s| match s.action {
            Action::Start { .. } => s.pin.is_some(),
            Action::Stop => true,
        }));
        // No start at all: an empty schedule.
        let none = recorded(&original[..1]).unwrap();
        assert!(none.steps.is_empty());
    }

    #[test]
    fn a_history_without_a_schedule_is_refused() {
        let e = recorded(&[("kill".into(), serde_json::json!({"fault-id": 0}))]).unwrap_err();
        assert!(e.to_string().contains("no `schedule` event"), "{e}");
    }
}
