//! The run's faults: the test file's fault mix as the nemeses crate's
//! [`Fault`]s, and its schedule as a [`ScheduleSpec`] (docs/nemeses.md).

use super::config::TestConfig;
use splitbrain_core::db::JoinProcedure;
use splitbrain_nemeses::{
    Action, Fault, FaultDefaults, FaultSpecError, Interval, Schedule, ScheduleSpec,
};
use splitbrain_workloads::queue::CrashSchedule;

/// The fault that crashes consumers. Not a nemesis: the queue workload
/// crashes its own consumers (it alone knows them), every
/// `workload.crash_every` s of the load; see [`consumer_crashes`].
pub const CONSUMER_CRASH: &str = "crash:consumer";

/// The workload's crash schedule when the mix holds `crash:consumer`.
pub fn consumer_crashes(cfg: &TestConfig) -> Option<CrashSchedule> {
    cfg.nemesis
        .faults
        .iter()
        .any(|f| f == CONSUMER_CRASH)
        .then(|| CrashSchedule {
            every: std::time::Duration::from_secs(cfg.workload.crash_every.max(1)),
            seed: cfg.seed,
        })
}

/// Parses one fault of the mix with the nemeses crate's one grammar
/// (docs/nemeses.md): what the spelling leaves out of `rapid-add`/`safe-add`
/// comes from `add_count` and, for `rapid-add`, `move_broker` (a broker id).
pub fn parse_fault(
    s: &str,
    add_count: usize,
    move_broker: Option<i64>,
) -> Result<Fault, FaultSpecError> {
    Fault::parse_with(
        s,
        &FaultDefaults {
            add_count,
            rapid_add_broker: move_broker,
        },
    )
}

/// The mix of a test: every fault parsed (`crash:consumer` aside: the
/// workload does it); `rapid-add` moves the last broker when
/// `nemesis.move_broker` is set.
pub fn mix(cfg: &TestConfig) -> Result<Vec<Fault>, FaultSpecError> {
    let moved = cfg.nemesis.move_broker.then_some(cfg.cluster.kafka as i64);
    cfg.nemesis
        .faults
        .iter()
        .filter(|f| *f != CONSUMER_CRASH)
        .map(|f| parse_fault(f, cfg.nemesis.add_count, moved))
        .collect()
}

/// The test's schedule: quiet `nemesis.quiet` s, a fault for
/// `nemesis.duration` s, and again, within the load period; at most
/// `nemesis.max_faults` faults (0: no limit). `nemesis.schedule`, when
/// set, is the schedule as it is.
pub fn schedule(cfg: &TestConfig) -> Result<Schedule, FaultSpecError> {
    let n = &cfg.nemesis;
    if let Some(exact) = &n.schedule {
        return Ok(exact.clone());
    }
    let spec = ScheduleSpec {
        seed: cfg.seed,
        faults: mix(cfg)?,
        quiet: Interval::Fixed(n.quiet * 1000),
        fault: Interval::Fixed(n.duration * 1000),
        total_ms: cfg.time_limit * 1000,
        concurrency: n.concurrency,
    };
    let mut plan = Schedule::plan(&spec);
    if n.max_faults > 0 {
        plan.keep_first_faults(n.max_faults);
    }
    Ok(plan)
}

/// Short description of a fault for progress lines.
pub fn describe(f: &Fault) -> String {
    match f {
        Fault::Partition { kind } => format!("partition {}", kind.name()),
        Fault::Kill { service, target } => format!("kill {service:?} {target:?}").to_lowercase(),
        Fault::Pause { service, target } => format!("pause {service:?} {target:?}").to_lowercase(),
        Fault::AddZookeeper {
            procedure,
            count,
            move_broker,
        } => format!(
            "{} of {count} ZooKeeper servers{}",
            match procedure {
                JoinProcedure::Rapid => "rapid-add",
                JoinProcedure::Safe => "safe-add",
            },
            move_broker.map_or(String::new(), |b| format!(", broker {b} moved"))
        ),
        Fault::AddControllers { count, .. } => {
            format!("{} of {count} KRaft controllers", f.start_f())
        }
    }
}

/// The fault in effect `elapsed_ms` into the schedule, if any (the newest,
/// when several overlap).
pub fn current(plan: &Schedule, elapsed_ms: u64) -> Option<&Fault> {
    let mut active: Vec<(usize, &Fault)> = Vec::new();
    let mut starts = 0;
    for step in plan.steps.iter().take_while(|s| s.at_ms <= elapsed_ms) {
        match &step.action {
            Action::Start { fault } => {
                active.push((starts, fault));
                starts += 1;
            }
            Action::Stop => match step.undoes {
                Some(k) => active.retain(|(n, _)| *n != k),
                None => {
                    active.pop();
                }
            },
        }
    }
    active.last().map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_core::db::ServerKind;
    use splitbrain_nemeses::{PartitionKind, Target};

    #[test]
    fn faults_parse() {
        assert_eq!(
            parse_fault("kill:zk", 4, None).ok(),
            Some(Fault::Kill {
                service: ServerKind::Zookeeper,
                target: Target::One
            })
        );
        assert_eq!(
            parse_fault("pause:kafka:primary", 4, None).ok(),
            Some(Fault::Pause {
                service: ServerKind::Kafka,
                target: Target::Primary
            })
        );
        assert_eq!(
            parse_fault("rapid-add", 4, Some(3)).ok(),
            Some(Fault::AddZookeeper {
                procedure: JoinProcedure::Rapid,
                count: 4,
                move_broker: Some(3)
            })
        );
        assert_eq!(
            parse_fault("partition:halves", 4, None).ok(),
            Some(Fault::Partition {
                kind: PartitionKind::Halves
            })
        );
        for bad in [
            "partition:nope",
            "kill:nginx",
            "kill:zk:most",
            "explode",
            "kill",
        ] {
            assert!(parse_fault(bad, 4, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_are_bounded_and_report_the_current_fault() {
        let mut cfg = TestConfig {
            seed: 7,
            time_limit: 100,
            ..TestConfig::default()
        };
        cfg.nemesis.faults = vec!["kill:kafka".into()];
        cfg.nemesis.quiet = 10;
        cfg.nemesis.duration = 20;
        let plan = schedule(&cfg).unwrap();
        let starts: Vec<u64> = plan
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Start { .. }))
            .map(|s| s.at_ms)
            .collect();
        assert_eq!(starts, vec![10_000, 40_000, 70_000]);
        assert!(current(&plan, 5_000).is_none());
        assert!(current(&plan, 15_000).is_some());
        assert!(current(&plan, 35_000).is_none());
        cfg.nemesis.max_faults = 1;
        let plan = schedule(&cfg).unwrap();
        assert_eq!(plan.steps.len(), 2);
        assert!(current(&plan, 50_000).is_none());
    }
}
