//! Shrinking a failing run's schedule: delta debugging over its faults and
//! times, as a pure algorithm ([`shrink`]) over [`Candidate`]s and an
//! oracle that says whether a candidate still fails; the runner's oracle
//! (real runs on fresh clusters) is in [`real`].
//!
//! Candidates, biggest reductions first: drop chunks of faults (ddmin:
//! halves, quarters, … single faults), halve a fault's hold, halve the
//! quiet gap before a fault (moving it and every later one earlier), move
//! one fault earlier on its own, and shorten the load towards the last
//! stop. The first candidate that still fails becomes the current test
//! and generation starts again from it (greedy first improvement, as
//! QuickCheck-style shrinkers do); it ends when no candidate fails or the
//! oracle says the budget is spent.

pub mod real;

use splitbrain_nemeses::{Fault, Pin, Schedule, ScheduleSpec};

/// Shortest hold a shrink gives a fault, ms.
pub const MIN_HOLD_MS: u64 = 1000;
/// Shortest load after the last stop a shrink keeps, ms (the workload
/// needs some load after the heal to see what the fault did).
pub const MIN_TAIL_MS: u64 = 5000;
/// Smallest time step a shrink tries, ms.
pub const MIN_STEP_MS: u64 = 500;

/// One fault of a candidate: when it holds and what it hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start, ms after the load starts.
    pub start_ms: u64,
    /// Stop, ms after the load starts (after the start).
    pub stop_ms: u64,
    /// The fault.
    pub fault: Fault,
    /// Its targets, when pinned.
    pub pin: Option<Pin>,
}

impl Span {
    /// How long it holds, ms.
    pub fn hold_ms(&self) -> u64 {
        self.stop_ms.saturating_sub(self.start_ms)
    }
}

/// A test to try: its faults (in start order) and its load length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Load length, ms (the schedule's length).
    pub load_ms: u64,
    /// The faults, in start order.
    pub faults: Vec<Span>,
}

impl Candidate {
    /// The candidate of a schedule (its load: the schedule's length).
    pub fn of_schedule(schedule: &Schedule) -> Candidate {
        Candidate {
            load_ms: schedule.spec.total_ms,
            faults: schedule
                .intervals()
                .into_iter()
                .map(|(start_ms, stop_ms, fault, pin)| Span {
                    start_ms,
                    stop_ms,
                    fault,
                    pin,
                })
                .collect(),
        }
    }

    /// The schedule to run: `spec` (the original's, kept as the record of
    /// where the faults came from) with this load length and as much
    /// concurrency as the faults need.
    pub fn schedule(&self, spec: &ScheduleSpec) -> Schedule {
        let mut spec = spec.clone();
        spec.total_ms = self.load_ms;
        let mut s = Schedule::from_intervals(
            spec,
            self.faults
                .iter()
                .map(|f| (f.start_ms, f.stop_ms, f.fault.clone(), f.pin.clone())),
        );
        s.spec.concurrency = s.max_overlap().max(1);
        s
    }

    /// Total time faults hold, ms (overlaps counted per fault).
    pub fn fault_ms(&self) -> u64 {
        self.faults.iter().map(Span::hold_ms).sum()
    }

    /// One line: faults, fault time, load.
    pub fn describe(&self) -> String {
        format!(
            "{} fault(s), {:.1} s of faults, {:.1} s of load",
            self.faults.len(),
            self.fault_ms() as f64 / 1000.0,
            self.load_ms as f64 / 1000.0
        )
    }

    /// The order shrinking aims down: fewer faults, then less fault time,
    /// then a shorter load, then earlier faults.
    fn size(&self) -> (usize, u64, u64, u64) {
        (
            self.faults.len(),
            self.fault_ms(),
            self.load_ms,
            self.faults.iter().map(|f| f.start_ms).sum(),
        )
    }

    /// Every fault holds at least 1 ms within the load; starts in order.
    fn is_valid(&self) -> bool {
        self.faults
            .iter()
            .all(|f| f.start_ms < f.stop_ms && f.stop_ms <= self.load_ms)
            && self
                .faults
                .windows(2)
                .all(|w| w[0].start_ms <= w[1].start_ms)
    }

    fn last_stop(&self) -> u64 {
        self.faults.iter().map(|f| f.stop_ms).max().unwrap_or(0)
    }
}

/// Smaller candidates than `c`, biggest reductions first; each valid and
/// strictly smaller ([`Candidate::size`]).
pub fn candidates(c: &Candidate) -> Vec<Candidate> {
    let mut out = Vec::new();
    let n = c.faults.len();
    // Drop chunks: n/2, n/4, … 1 faults at a time (ddmin's complements).
    let mut chunk = n.div_ceil(2);
    while chunk > 0 {
        for from in (0..n).step_by(chunk) {
            let mut d = c.clone();
            d.faults.drain(from..(from + chunk).min(n));
            out.push(d);
        }
        chunk = if chunk == 1 { 0 } else { chunk.div_ceil(2) };
    }
    // Halve a hold.
    for i in 0..n {
        let hold = c.faults[i].hold_ms();
        let shorter = (hold / 2).max(MIN_HOLD_MS);
        if hold.saturating_sub(shorter) >= MIN_STEP_MS {
            let mut d = c.clone();
            d.faults[i].stop_ms = d.faults[i].start_ms + shorter;
            out.push(d);
        }
    }
    // Halve the quiet gap before fault i: it and every later one earlier.
    for i in 0..n {
        let before = if i == 0 {
            0
        } else {
            c.faults[..i].iter().map(|f| f.stop_ms).max().unwrap_or(0)
        };
        let gap = c.faults[i].start_ms.saturating_sub(before);
        let shift = gap / 2;
        if shift >= MIN_STEP_MS {
            let mut d = c.clone();
            for f in &mut d.faults[i..] {
                f.start_ms -= shift;
                f.stop_ms -= shift;
            }
            d.load_ms -= shift;
            out.push(d);
        }
    }
    // Move one fault earlier on its own (towards the previous start).
    for i in 0..n {
        let floor = if i == 0 { 0 } else { c.faults[i - 1].start_ms };
        let shift = c.faults[i].start_ms.saturating_sub(floor) / 2;
        if shift >= MIN_STEP_MS {
            let mut d = c.clone();
            d.faults[i].start_ms -= shift;
            d.faults[i].stop_ms -= shift;
            out.push(d);
        }
    }
    // Shorten the load towards the last stop plus a tail.
    let floor = (c.last_stop() + MIN_TAIL_MS).max(MIN_TAIL_MS);
    if c.load_ms > floor {
        let target = floor.max(c.load_ms - (c.load_ms - floor).div_ceil(2));
        if c.load_ms - target >= MIN_STEP_MS {
            out.push(Candidate {
                load_ms: target,
                ..c.clone()
            });
        }
    }
    out.retain(|d| d.is_valid() && d.size() < c.size());
    out
}

/// What the oracle says of a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It still fails the same way: keep it.
    Fails,
    /// It does not (in any of its tries).
    Passes,
    /// No more runs fit in the budget: stop with what was found.
    OutOfBudget,
}

/// One candidate tried.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The candidate.
    pub candidate: Candidate,
    /// What the oracle said.
    pub verdict: Verdict,
}

/// What [`shrink`] found.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The original.
    pub original: Candidate,
    /// The smallest candidate known to fail (the original if none smaller).
    pub minimal: Candidate,
    /// Every candidate tried, in order.
    pub attempts: Vec<Attempt>,
    /// Whether it stopped for the budget (else: no smaller candidate fails).
    pub out_of_budget: bool,
}

/// Shrinks `original` (known to fail) with `oracle`. Never tries a
/// candidate twice.
pub fn shrink(original: Candidate, mut oracle: impl FnMut(&Candidate) -> Verdict) -> Shrunk {
    let mut current = original.clone();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut out_of_budget = false;
    'outer: loop {
        for cand in candidates(&current) {
            if attempts.iter().any(|a| a.candidate == cand) {
                continue;
            }
            let verdict = oracle(&cand);
            attempts.push(Attempt {
                candidate: cand.clone(),
                verdict,
            });
            match verdict {
                Verdict::Fails => {
                    current = cand;
                    continue 'outer;
                }
                Verdict::Passes => {}
                Verdict::OutOfBudget => {
                    out_of_budget = true;
                    break 'outer;
                }
            }
        }
        break;
    }
    Shrunk {
        original,
        minimal: current,
        attempts,
        out_of_budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::db::ServerKind;
    use splitbrain_nemeses::{Interval, PartitionKind, Target};

    fn kill(id: i64) -> Fault {
        Fault::Kill {
            service: ServerKind::Kafka,
            target: Target::Ids(vec![id]),
        }
    }

    fn span(start_s: u64, stop_s: u64, fault: Fault) -> Span {
        Span {
            start_ms: start_s * 1000,
            stop_ms: stop_s * 1000,
            fault,
            pin: None,
        }
    }

    /// Five faults over 100 s; the "bug": broker 2 killed for at least
    /// 3 s while broker 3 is killed too (two faults at once).
    fn original() -> Candidate {
        Candidate {
            load_ms: 100_000,
            faults: vec![
                span(5, 15, kill(1)),
                span(20, 40, kill(2)),
                span(25, 35, kill(3)),
                span(
                    50,
                    60,
                    Fault::Partition {
                        kind: PartitionKind::Halves,
                    },
                ),
                span(70, 80, kill(1)),
            ],
        }
    }

    fn bug(c: &Candidate) -> bool {
        let of = |id| c.faults.iter().filter(move |f| f.fault == kill(id));
        of(2).any(|two| {
            two.hold_ms() >= 3000
                && of(3).any(|three| three.start_ms < two.stop_ms && two.start_ms < three.stop_ms)
        })
    }

    #[test]
    fn a_fake_bug_shrinks_to_its_two_overlapping_faults() {
        let mut runs = 0;
        let shrunk = shrink(original(), |c| {
            runs += 1;
            if bug(c) {
                Verdict::Fails
            } else {
                Verdict::Passes
            }
        });
        let m = &shrunk.minimal;
        assert!(bug(m), "the minimal still fails");
        assert_eq!(m.faults.len(), 2, "{m:?}");
        assert!(m
            .faults
            .iter()
            .all(|f| f.fault == kill(2) || f.fault == kill(3)));
        assert!(
            m.faults.iter().all(|f| f.hold_ms() < 10_000),
            "holds shortened: {m:?}"
        );
        assert!(m.load_ms < 30_000, "load shortened: {m:?}");
        assert!(m.faults[0].start_ms < 20_000, "moved earlier: {m:?}");
        assert!(!shrunk.out_of_budget);
        assert_eq!(runs, shrunk.attempts.len());
        // Each candidate tried once.
        for (i, a) in shrunk.attempts.iter().enumerate() {
            assert!(!shrunk.attempts[..i]
                .iter()
                .any(|b| b.candidate == a.candidate));
        }
        // Every accepted one failed, and the minimal is the last accepted.
        let last = shrunk
            .attempts
            .iter()
            .rev()
            .find(|a| a.verdict == Verdict::Fails)
            .unwrap();
        assert_eq!(&last.candidate, m);
    }

    #[test]
    fn nothing_smaller_fails_keeps_the_original() {
        let shrunk = shrink(original(), |_| Verdict::Passes);
        assert_eq!(shrunk.minimal, original());
        assert!(!shrunk.attempts.is_empty());
    }

    #[test]
    fn the_budget_stops_it_with_the_best_so_far() {
        let mut left = 3;
        let shrunk = shrink(original(), |_| {
            if left == 0 {
                return Verdict::OutOfBudget;
            }
            left -= 1;
            Verdict::Fails
        });
        assert!(shrunk.out_of_budget);
        assert_eq!(shrunk.attempts.len(), 4);
        assert_eq!(shrunk.minimal, shrunk.attempts[2].candidate);
        assert!(shrunk.minimal.faults.len() < original().faults.len());
    }

    #[test]
    fn candidates_are_valid_and_smaller() {
        let c = original();
        let cands = candidates(&c);
        assert!(cands.len() > 10);
        for d in &cands {
            assert!(d.is_valid() && d.size() < c.size(), "{d:?}");
        }
        // A single fault at the minimum hold and time 0: nothing but the load.
        let tiny = Candidate {
            load_ms: 6000,
            faults: vec![Span {
                start_ms: 0,
                stop_ms: MIN_HOLD_MS,
                fault: kill(1),
                pin: None,
            }],
        };
        assert_eq!(candidates(&tiny).len(), 1, "only dropping the fault");
    }

    #[test]
    fn a_candidate_round_trips_through_its_schedule() {
        let spec = ScheduleSpec {
            seed: 1,
            faults: vec![kill(1)],
            quiet: Interval::Fixed(1),
            fault: Interval::Fixed(1),
            total_ms: 100_000,
            concurrency: 1,
        };
        let c = original();
        let s = c.schedule(&spec);
        assert_eq!(s.spec.concurrency, 2, "kill 2 and kill 3 overlap");
        assert_eq!(Candidate::of_schedule(&s), c);
    }
}
