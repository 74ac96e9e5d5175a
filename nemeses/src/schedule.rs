//! Nemesis schedules: when faults start and stop during a run.
//!
//! A [`ScheduleSpec`] (seed, mix of faults, quiet and fault durations, total
//! length) is planned into a [`Schedule`]: a list of timed steps, computed
//! from the seed alone, so a run can be repeated exactly. By default one
//! fault is active at a time: quiet, fault, quiet, fault, …; with
//! [`ScheduleSpec::concurrency`] N > 1 up to N overlap (see
//! [`Schedule::plan`]). The schedule always ends healed. [`run`] carries it out beside the workload, records the
//! seed and the full plan first (`f: "schedule"`), and finishes with
//! `heal-all`. A fault error (a fault that did not start, stop or heal,
//! found no target, or whose effect was not shown) ends the schedule and is
//! reported in [`ScheduleReport::errors`]: the run is then ERROR.

use crate::nemesis::{Fault, FaultId, Nemesis, NemesisError, Pin};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use splitbrain_core::history::{HistoryWriter, OpType};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A length of time: fixed, or drawn uniformly from bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interval {
    /// Always this many milliseconds.
    Fixed(u64),
    /// Uniformly between the bounds (milliseconds, inclusive).
    Random {
        /// Lower bound.
        min_ms: u64,
        /// Upper bound.
        max_ms: u64,
    },
}

/// An interval's spelling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interval `{0}`: expected milliseconds, e.g. 10000, or bounds, e.g. 5000..15000")]
pub struct IntervalError(pub String);

impl std::str::FromStr for Interval {
    type Err = IntervalError;

    /// `MS` (fixed) or `MIN..MAX` (random within bounds), in milliseconds.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IntervalError(s.to_string());
        match s.split_once("..") {
            Some((lo, hi)) => {
                let min_ms: u64 = lo.trim().parse().map_err(|_| bad())?;
                let max_ms: u64 = hi.trim().parse().map_err(|_| bad())?;
                if min_ms > max_ms {
                    return Err(bad());
                }
                Ok(Interval::Random { min_ms, max_ms })
            }
            None => s.trim().parse().map(Interval::Fixed).map_err(|_| bad()),
        }
    }
}

impl Interval {
    fn draw(self, rng: &mut StdRng) -> u64 {
        match self {
            Interval::Fixed(ms) => ms,
            Interval::Random { min_ms, max_ms } => {
                let (lo, hi) = (min_ms.min(max_ms), min_ms.max(max_ms));
                rng.random_range(lo..=hi)
            }
        }
    }
}

/// What to plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Seed of every random choice (intervals, which fault).
    pub seed: u64,
    /// The mix: each fault period picks one of these uniformly.
    pub faults: Vec<Fault>,
    /// Quiet time before each fault.
    pub quiet: Interval,
    /// How long each fault lasts.
    pub fault: Interval,
    /// Length of the whole schedule in milliseconds: no fault starts after
    /// it, and every fault has stopped by it.
    pub total_ms: u64,
    /// Most faults active at once (0 and 1: one at a time, as before).
    #[serde(default = "one")]
    pub concurrency: usize,
}

fn one() -> usize {
    1
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Start this fault.
    Start {
        /// The fault.
        fault: Fault,
    },
    /// Undo the fault [`Step::undoes`] names, or else the newest fault
    /// still active (with one fault at a time: the previous step's).
    Stop,
}

/// One timed step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Milliseconds after the schedule starts.
    pub at_ms: u64,
    /// What to do.
    pub action: Action,
    /// A start's targets, fixed instead of drawn (a replay's, from the
    /// recorded start events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
    /// A stop's fault: its number in start order, from 0 (the nemesis's
    /// `fault-id` in a run of this schedule alone). Absent: the newest
    /// fault still active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<usize>,
}

impl Step {
    /// A start of `fault` at `at_ms`, targets drawn.
    pub fn start(at_ms: u64, fault: Fault) -> Step {
        Step {
            at_ms,
            action: Action::Start { fault },
            pin: None,
            undoes: None,
        }
    }

    /// A stop at `at_ms` of fault number `undoes` (or the newest active).
    pub fn stop(at_ms: u64, undoes: Option<usize>) -> Step {
        Step {
            at_ms,
            action: Action::Stop,
            pin: None,
            undoes,
        }
    }
}

/// A planned schedule: the spec it came from and its steps in time order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The spec (with the seed).
    pub spec: ScheduleSpec,
    /// Steps in time order: alternating start and stop when one fault is
    /// active at a time.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Plans `spec`. The same spec always gives the same steps. A fault
    /// that would outlast `total_ms` is cut short there; one that would
    /// start at or after it is not planned. An empty mix plans nothing.
    ///
    /// One at a time (concurrency 0 or 1): quiet, fault, quiet, fault, …
    /// With concurrency N > 1 each fault starts `quiet` after the previous
    /// one *started*, while fewer than N are active; when N are, `quiet`
    /// after the first of them stops. Stops name their fault
    /// ([`Step::undoes`]); faults stopping at the same time stop newest
    /// first, and the end heals in reverse start order.
    pub fn plan(spec: &ScheduleSpec) -> Schedule {
        if spec.concurrency > 1 {
            return Self::plan_overlapping(spec);
        }
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let mut steps = Vec::new();
        let mut t = 0u64;
        // Bounded: each period advances time by at least 1 ms.
        while !spec.faults.is_empty() {
            t = t.saturating_add(spec.quiet.draw(&mut rng).max(1));
            if t >= spec.total_ms {
                break;
            }
            let fault = spec.faults[rng.random_range(0..spec.faults.len())].clone();
            let len = spec.fault.draw(&mut rng).max(1);
            steps.push(Step::start(t, fault));
            t = t.saturating_add(len).min(spec.total_ms);
            steps.push(Step::stop(t, None));
        }
        Schedule {
            spec: spec.clone(),
            steps,
        }
    }

    fn plan_overlapping(spec: &ScheduleSpec) -> Schedule {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        // (start, end, fault) of every planned fault, in start order.
        let mut faults: Vec<(u64, u64, Fault)> = Vec::new();
        let mut last_start = 0u64;
        while !spec.faults.is_empty() {
            let mut t = last_start.saturating_add(spec.quiet.draw(&mut rng).max(1));
            // Bounded: each round moves `t` past the earliest active end.
            loop {
                let active: Vec<u64> = faults.iter().map(|f| f.1).filter(|&end| end > t).collect();
                if active.len() < spec.concurrency {
                    break;
                }
                let first_end = active.into_iter().min().unwrap_or(t);
                t = first_end.saturating_add(spec.quiet.draw(&mut rng).max(1));
            }
            if t >= spec.total_ms {
                break;
            }
            let fault = spec.faults[rng.random_range(0..spec.faults.len())].clone();
            let len = spec.fault.draw(&mut rng).max(1);
            faults.push((t, t.saturating_add(len).min(spec.total_ms), fault));
            last_start = t;
        }
        Schedule {
            spec: spec.clone(),
            steps: steps_of(faults.into_iter().map(|(a, b, f)| (a, b, f, None))),
        }
    }

    /// Most faults this schedule holds active at once.
    pub fn max_overlap(&self) -> usize {
        let (mut now, mut most) = (0usize, 0usize);
        for step in &self.steps {
            match step.action {
                Action::Start { .. } => {
                    now += 1;
                    most = most.max(now);
                }
                Action::Stop => now = now.saturating_sub(1),
            }
        }
        most
    }

    /// Keeps the first `max` faults (their starts and their stops).
    pub fn keep_first_faults(&mut self, max: usize) {
        let mut starts = 0;
        let mut newest_active: Vec<usize> = Vec::new();
        self.steps.retain(|s| match s.action {
            Action::Start { .. } => {
                starts += 1;
                newest_active.push(starts - 1);
                starts <= max
            }
            Action::Stop => {
                let k = match s.undoes {
                    Some(k) => {
                        newest_active.retain(|&a| a != k);
                        k
                    }
                    None => newest_active.pop().unwrap_or(0),
                };
                k < max
            }
        });
    }

    /// Every fault as `(start ms, stop ms, fault, pin)`, in start order
    /// (a fault never stopped stops at `spec.total_ms`).
    pub fn intervals(&self) -> Vec<(u64, u64, Fault, Option<Pin>)> {
        let mut out: Vec<(u64, u64, Fault, Option<Pin>)> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        for step in &self.steps {
            match &step.action {
                Action::Start { fault } => {
                    open.push(out.len());
                    out.push((step.at_ms, u64::MAX, fault.clone(), step.pin.clone()));
                }
                Action::Stop => {
                    let k = match step.undoes {
                        Some(k) => {
                            open.retain(|&a| a != k);
                            Some(k)
                        }
                        None => open.pop(),
                    };
                    if let Some(f) = k.and_then(|k| out.get_mut(k)) {
                        f.1 = step.at_ms;
                    }
                }
            }
        }
        for f in &mut out {
            if f.1 == u64::MAX {
                f.1 = self.spec.total_ms.max(f.0);
            }
        }
        out
    }

    /// The schedule of these faults `(start, stop, fault, pin)` (in start
    /// order), with `spec` kept as the record of where they came from.
    pub fn from_intervals(
        spec: ScheduleSpec,
        faults: impl IntoIterator<Item = (u64, u64, Fault, Option<Pin>)>,
    ) -> Schedule {
        Schedule {
            spec,
            steps: steps_of(faults),
        }
    }
}

/// Steps of faults `(start, stop, fault, pin)` given in start order: in
/// time order, stops before starts at the same time, and stops at the same
/// time newest first; each stop names its fault.
fn steps_of(faults: impl IntoIterator<Item = (u64, u64, Fault, Option<Pin>)>) -> Vec<Step> {
    // (at, 0 = stop / 1 = start, tie-break, step)
    let mut keyed: Vec<(u64, u8, i64, Step)> = Vec::new();
    for (k, (start, stop, fault, pin)) in faults.into_iter().enumerate() {
        let mut s = Step::start(start, fault);
        s.pin = pin;
        keyed.push((start, 1, k as i64, s));
        keyed.push((
            stop.max(start),
            0,
            -(k as i64),
            Step::stop(stop.max(start), Some(k)),
        ));
    }
    keyed.sort_by_key(|(at, kind, tie, _)| (*at, *kind, *tie));
    keyed.into_iter().map(|(.., s)| s).collect()
}

/// When a fault error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultPhase {
    /// Starting it (or verifying that it took effect).
    Start,
    /// Undoing it at its planned stop (or verifying the undo).
    Stop,
    /// The final `heal-all`.
    Heal,
}

/// A fault that failed to start, to stop or to heal, or found no target,
/// or whose effect could not be shown. Fatal to a run: the run did not test
/// what it says it tested, so its outcome is ERROR, never PASS.
#[derive(Debug, thiserror::Error)]
#[error("fault error at {at_ms} ms ({phase:?}){}: {error}", fault.as_ref().map(|f| format!(" of {}", f.start_f())).unwrap_or_default())]
pub struct FaultError {
    /// When in the fault's life.
    pub phase: FaultPhase,
    /// The fault (`None` for the final heal).
    pub fault: Option<Fault>,
    /// Milliseconds after the schedule began.
    pub at_ms: u64,
    /// What went wrong.
    #[source]
    pub error: NemesisError,
}

/// What [`run`] did.
#[derive(Debug, Default)]
pub struct ScheduleReport {
    /// Faults started and verified applied.
    pub faults_applied: usize,
    /// Fault errors, each also recorded as `fault-error`. Any makes the run
    /// ERROR (the schedule stops at the first start or stop error and heals).
    pub errors: Vec<FaultError>,
    /// Whether the run was cancelled before the schedule's end.
    pub cancelled: bool,
}

impl ScheduleReport {
    /// No fault error: every planned fault that started was verified
    /// applied, undone and healed.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Records a fault error (`f: "fault-error"`) and keeps it in the report.
fn fault_error(
    report: &mut ScheduleReport,
    history: Option<&HistoryWriter>,
    begin: Instant,
    phase: FaultPhase,
    fault: Option<Fault>,
    error: NemesisError,
) -> Result<(), NemesisError> {
    if let Some(h) = history {
        h.nemesis(
            OpType::Info,
            "fault-error",
            &serde_json::json!({"fault": fault, "phase": phase, "error": error.to_string(),
                                "fatal": true}),
        )?;
    }
    report.errors.push(FaultError {
        phase,
        fault,
        at_ms: begin.elapsed().as_millis() as u64,
        error,
    });
    Ok(())
}

/// Carries out `schedule` with `nemesis`: records it first (`f:
/// "schedule"`, with seed and steps), sleeps until each step (waking early
/// when `cancel` is set), and ends with [`Nemesis::heal_all`] whatever
/// happened. A fault that fails to start or to stop (its effect not shown
/// included) is recorded (`f: "fault-error"`, `fatal: true`), kept in
/// [`ScheduleReport::errors`], and ends the schedule: no further fault
/// starts, and everything is healed. A failed final heal is a fault error
/// too. `Err` only when the history cannot be written.
pub fn run(
    nemesis: &mut Nemesis<'_>,
    schedule: &Schedule,
    history: Option<&HistoryWriter>,
    cancel: &AtomicBool,
) -> Result<ScheduleReport, NemesisError> {
    if let Some(h) = history {
        h.nemesis(OpType::Info, "schedule", schedule)?;
    }
    let begin = Instant::now();
    let mut report = ScheduleReport::default();
    // Started faults by number (start order); `None` once stopped.
    let mut started: Vec<Option<(FaultId, Fault)>> = Vec::new();
    for step in &schedule.steps {
        let due = begin + Duration::from_millis(step.at_ms);
        // Sleep in short slices so cancellation is noticed promptly.
        while Instant::now() < due && !cancel.load(Ordering::SeqCst) {
            let left = due.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        if cancel.load(Ordering::SeqCst) {
            report.cancelled = true;
            break;
        }
        match &step.action {
            Action::Start { fault } => match nemesis.start_pinned(fault, step.pin.as_ref()) {
                Ok(id) => {
                    report.faults_applied += 1;
                    started.push(Some((id, fault.clone())));
                }
                Err(e) => {
                    fault_error(
                        &mut report,
                        history,
                        begin,
                        FaultPhase::Start,
                        Some(fault.clone()),
                        e,
                    )?;
                    // Its partial effects are undone by the heal below.
                    break;
                }
            },
            Action::Stop => {
                let slot = match step.undoes {
                    Some(k) => started.get_mut(k),
                    None => started.iter_mut().rev().find(|s| s.is_some()),
                };
                if let Some((id, fault)) = slot.and_then(Option::take) {
                    if let Err(e) = nemesis.stop(id) {
                        fault_error(
                            &mut report,
                            history,
                            begin,
                            FaultPhase::Stop,
                            Some(fault),
                            e,
                        )?;
                        break;
                    }
                }
            }
        }
    }
    if let Err(e) = nemesis.heal_all() {
        fault_error(&mut report, history, begin, FaultPhase::Heal, None, e)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grudge::PartitionKind;
    use splitbrain_core::db::ServerKind;

    fn spec(seed: u64) -> ScheduleSpec {
        ScheduleSpec {
            seed,
            faults: vec![
                Fault::Partition {
                    kind: PartitionKind::Halves,
                },
                Fault::Pause {
                    service: ServerKind::Zookeeper,
                    target: crate::nemesis::Target::One,
                },
            ],
            quiet: Interval::Random {
                min_ms: 1000,
                max_ms: 3000,
            },
            fault: Interval::Fixed(5000),
            total_ms: 60_000,
            concurrency: 1,
        }
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a = Schedule::plan(&spec(1));
        assert_eq!(a, Schedule::plan(&spec(1)));
        assert_ne!(a.steps, Schedule::plan(&spec(2)).steps);
    }

    #[test]
    fn steps_alternate_stay_in_bounds_and_end_healed() {
        for seed in 0..50 {
            let s = Schedule::plan(&spec(seed));
            assert!(!s.steps.is_empty());
            assert_eq!(s.steps.len() % 2, 0, "every start has its stop");
            let mut last = 0;
            for (i, step) in s.steps.iter().enumerate() {
                assert!(step.at_ms >= last, "time order");
                assert!(step.at_ms <= 60_000);
                last = step.at_ms;
                match (&step.action, i % 2) {
                    (Action::Start { .. }, 0) | (Action::Stop, 1) => {}
                    other => panic!("step {i} out of order: {other:?}"),
                }
            }
            // Quiet gaps between a stop and the next start are within bounds.
            for pair in s.steps.windows(2).skip(1).step_by(2) {
                let gap = pair[1].at_ms - pair[0].at_ms;
                assert!((1000..=3000).contains(&gap), "gap {gap}");
            }
            // Every fault lasts 5 s, except one cut short by the end.
            for pair in s.steps.chunks(2) {
                let len = pair[1].at_ms - pair[0].at_ms;
                assert!(len == 5000 || pair[1].at_ms == 60_000, "len {len}");
            }
        }
    }

    #[test]
    fn the_mix_is_used() {
        let s = Schedule::plan(&spec(3));
        let kinds: std::collections::BTreeSet<&str> = s
            .steps
            .iter()
            .filter_map(|st| match &st.action {
                Action::Start { fault } => Some(fault.start_f()),
                Action::Stop => None,
            })
            .collect();
        assert_eq!(
            kinds,
            ["pause", "start-partition"].into_iter().collect(),
            "both faults of the mix appear over 60 s"
        );
    }

    #[test]
    fn empty_mix_or_tiny_total_plans_nothing() {
        let mut sp = spec(1);
        sp.faults.clear();
        assert!(Schedule::plan(&sp).steps.is_empty());
        let mut sp = spec(1);
        sp.total_ms = 500;
        assert!(Schedule::plan(&sp).steps.is_empty());
    }

    #[test]
    fn intervals_parse() {
        assert_eq!("2500".parse::<Interval>().unwrap(), Interval::Fixed(2500));
        assert_eq!(
            "5000..15000".parse::<Interval>().unwrap(),
            Interval::Random {
                min_ms: 5000,
                max_ms: 15000
            }
        );
        for bad in ["", "x", "9..1", "1..", "-5"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    #[test]
    fn schedule_round_trips_through_json() {
        let s = Schedule::plan(&spec(9));
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"seed\":9"));
        let back: Schedule = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }

    fn kill(service: ServerKind, target: crate::nemesis::Target) -> Fault {
        Fault::Kill { service, target }
    }

    fn fast_plan(faults: Vec<Fault>) -> Schedule {
        Schedule::plan(&ScheduleSpec {
            seed: 1,
            faults,
            quiet: Interval::Fixed(10),
            fault: Interval::Fixed(10),
            total_ms: 100,
            concurrency: 1,
        })
    }

    #[test]
    fn a_fault_without_a_target_is_a_fatal_fault_error() {
        use crate::fake::{self, FakeDb};
        let mut db = FakeDb::new();
        db.controller = None;
        let dir = tempfile::tempdir().unwrap();
        let (h, path) = fake::history(dir.path());
        let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h.clone()), 1);
        let plan = fast_plan(vec![kill(
            ServerKind::Kafka,
            crate::nemesis::Target::Primary,
        )]);
        assert!(plan.steps.len() >= 4, "{plan:?}");
        let report = run(&mut n, &plan, Some(&h), &AtomicBool::new(false)).unwrap();
        assert!(!report.is_clean());
        assert_eq!(report.faults_applied, 0);
        assert_eq!(report.errors.len(), 1, "the schedule stops at the first");
        let e = &report.errors[0];
        assert_eq!(e.phase, FaultPhase::Start);
        assert!(e.to_string().contains("no Kafka controller"), "{e}");
        let events = fake::events(&path);
        let errors: Vec<_> = events.iter().filter(|(f, _)| f == "fault-error").collect();
        assert_eq!(errors.len(), 1, "{events:?}");
        assert_eq!(errors[0].1["fatal"], true);
        assert_eq!(errors[0].1["phase"], "start");
        assert_eq!(errors[0].1["fault"]["target"], "primary");
        assert_eq!(events.last().unwrap().0, "heal-all", "healed at the end");
    }

    #[test]
    fn a_schedule_whose_faults_all_apply_is_clean() {
        use crate::fake::{self, FakeDb};
        let mut db = FakeDb::new();
        let mut n = Nemesis::new(&db, fake::no_nodes(), None, 1);
        let plan = fast_plan(vec![kill(
            ServerKind::Kafka,
            crate::nemesis::Target::Primary,
        )]);
        let starts = plan.steps.len() / 2;
        let report = run(&mut n, &plan, None, &AtomicBool::new(false)).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.faults_applied, starts);
        // The same plan against processes that survive SIGKILL: an error.
        drop(n);
        db.survives_kill = true;
        let mut n = Nemesis::new(&db, fake::no_nodes(), None, 1).with_options(
            crate::nemesis::NemesisOptions {
                verify_timeout: std::time::Duration::from_millis(300),
                ..Default::default()
            },
        );
        let report = run(&mut n, &plan, None, &AtomicBool::new(false)).unwrap();
        assert_eq!(report.faults_applied, 0);
        assert!(matches!(
            report.errors[0].error,
            NemesisError::NotVerified { .. }
        ));
    }

    fn overlapping(seed: u64, n: usize) -> ScheduleSpec {
        ScheduleSpec {
            seed,
            quiet: Interval::Random {
                min_ms: 1000,
                max_ms: 4000,
            },
            fault: Interval::Random {
                min_ms: 3000,
                max_ms: 9000,
            },
            concurrency: n,
            ..spec(seed)
        }
    }

    /// Active fault numbers after each step, checking every stop undoes
    /// an active fault.
    fn replay_stack(s: &Schedule) -> Vec<Vec<usize>> {
        let mut active: Vec<usize> = Vec::new();
        let mut starts = 0;
        let mut out = Vec::new();
        for step in &s.steps {
            match step.action {
                Action::Start { .. } => {
                    active.push(starts);
                    starts += 1;
                }
                Action::Stop => {
                    let k = step.undoes.expect("overlapping stops name their fault");
                    assert!(active.contains(&k), "stop of inactive {k}: {s:?}");
                    active.retain(|&a| a != k);
                }
            }
            out.push(active.clone());
        }
        out
    }

    #[test]
    fn overlapping_plans_are_seeded_bounded_and_end_healed() {
        for n in [2, 3] {
            let a = Schedule::plan(&overlapping(5, n));
            assert_eq!(
                a,
                Schedule::plan(&overlapping(5, n)),
                "same seed, same plan"
            );
            assert_ne!(a.steps, Schedule::plan(&overlapping(6, n)).steps);
            let mut saw_overlap = false;
            for seed in 0..50 {
                let s = Schedule::plan(&overlapping(seed, n));
                let stacks = replay_stack(&s);
                assert!(stacks.iter().all(|a| a.len() <= n), "more than {n}: {s:?}");
                saw_overlap |= stacks.iter().any(|a| a.len() >= 2);
                assert!(stacks.last().unwrap().is_empty(), "all stopped by the end");
                assert_eq!(s.max_overlap(), stacks.iter().map(Vec::len).max().unwrap());
                let mut last = 0;
                for step in &s.steps {
                    assert!(step.at_ms >= last && step.at_ms <= 60_000);
                    last = step.at_ms;
                }
            }
            assert!(saw_overlap, "faults overlap with concurrency {n}");
        }
        // Concurrency 1 (and 0) plans exactly as before: one at a time.
        let one = Schedule::plan(&overlapping(5, 1));
        assert_eq!(one.max_overlap(), 1);
        assert!(one.steps.iter().all(|s| s.undoes.is_none()));
        assert_eq!(one.steps, Schedule::plan(&overlapping(5, 0)).steps);
    }

    #[test]
    fn faults_stopping_together_stop_newest_first() {
        // Both cut short by the end: the newer stops first.
        let kill = Fault::Kill {
            service: ServerKind::Kafka,
            target: crate::nemesis::Target::One,
        };
        let s = Schedule::from_intervals(
            spec(1),
            vec![
                (1000, 60_000, kill.clone(), None),
                (2000, 60_000, kill.clone(), None),
            ],
        );
        let stops: Vec<Option<usize>> = s
            .steps
            .iter()
            .filter(|s| s.action == Action::Stop)
            .map(|s| s.undoes)
            .collect();
        assert_eq!(stops, vec![Some(1), Some(0)]);
        let back = s.intervals();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].0, back[0].1, back[1].0), (1000, 60_000, 2000));
    }

    #[test]
    fn overlapping_faults_run_and_are_undone_in_reverse_order() {
        use crate::fake::{self, FakeDb};
        let db = FakeDb::new();
        let dir = tempfile::tempdir().unwrap();
        let (h, path) = fake::history(dir.path());
        let mut n = Nemesis::new(&db, fake::no_nodes(), Some(h.clone()), 1);
        let z = |id| crate::nemesis::Target::Ids(vec![id]);
        // kill zk 2 during [0, 300), pause zk 3 during [100, 200), kill
        // kafka 4 during [150, 300): at 150 three are active; at 300 the
        // two still active stop newest first.
        let plan = Schedule::from_intervals(
            ScheduleSpec {
                total_ms: 300,
                concurrency: 3,
                ..spec(1)
            },
            vec![
                (10, 300, kill(ServerKind::Zookeeper, z(2)), None),
                (
                    100,
                    200,
                    Fault::Pause {
                        service: ServerKind::Zookeeper,
                        target: z(3),
                    },
                    None,
                ),
                (150, 300, kill(ServerKind::Kafka, z(4)), None),
            ],
        );
        assert_eq!(plan.max_overlap(), 3);
        let report = run(&mut n, &plan, Some(&h), &AtomicBool::new(false)).unwrap();
        assert!(report.is_clean(), "{report:?}");
        let order: Vec<(String, i64)> = fake::events(&path)
            .into_iter()
            .filter(|(f, _)| ["kill", "pause", "restart", "resume"].contains(&f.as_str()))
            .map(|(f, v)| (f, v["id"].as_i64().unwrap()))
            .collect();
        let want: Vec<(String, i64)> = [
            ("kill", 2),
            ("pause", 3),
            ("kill", 4),
            ("resume", 3),
            ("restart", 4),
            ("restart", 2),
        ]
        .iter()
        .map(|(f, i)| (f.to_string(), *i))
        .collect();
        assert_eq!(order, want);
    }

    #[test]
    fn keeping_the_first_faults_keeps_their_stops() {
        let s = Schedule::plan(&overlapping(3, 3));
        let all = s.intervals();
        assert!(all.len() > 3);
        let mut kept = s.clone();
        kept.keep_first_faults(2);
        assert_eq!(kept.intervals(), all[..2].to_vec());
        assert_eq!(replay_stack(&kept).last().unwrap(), &Vec::<usize>::new());
    }
}
