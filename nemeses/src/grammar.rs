//! The one text form of a fault, shared by the command line
//! (`splitbrain nemesis --fault …`) and test files (`nemesis.faults`), in
//! the spirit of fail-rs: one grammar, one parser.
//!
//! ```text
//! partition:<kind>
//! kill:<zk|zookeeper|kafka|controller>[:<one|minority|primary|all>]   target default: one
//! pause:<zk|zookeeper|kafka|controller>[:<one|minority|primary|all>]  target default: one
//! rapid-add[:<count>[:<broker to move>]]
//! safe-add[:<count>[:<broker to move>]]
//! rapid-add-controllers[:<count>]    KRaft: newcomers with a static voter set of old+new
//! safe-add-controllers[:<count>]     KRaft: KIP-853 add-controller, one at a time
//! ```
//!
//! What a spelling leaves out of `rapid-add`/`safe-add` comes from
//! [`FaultDefaults`] (a test file's `nemesis.add_count` and
//! `nemesis.move_broker`); `str::parse` uses [`FaultDefaults::default`].

use crate::grudge::GrudgeError;
use crate::nemesis::{Fault, Target};
use splitbrain_core::db::{JoinProcedure, ServerKind};

/// Every spelling, for error messages.
pub const USAGE: &str =
    "expected partition:<kind>, kill:<zk|zookeeper|kafka>[:<one|minority|primary|all>], \
     pause:<zk|zookeeper|kafka>[:<one|minority|primary|all>], rapid-add[:<count>[:<broker>]] \
     safe-add[:<count>[:<broker>]], rapid-add-controllers[:<count>] or \
     safe-add-controllers[:<count>]";

/// What a spelling may leave out, filled in by [`Fault::parse_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultDefaults {
    /// ZooKeeper servers `rapid-add`/`safe-add` start when the spelling
    /// gives no count.
    pub add_count: usize,
    /// The broker `rapid-add` moves onto the new servers when the spelling
    /// names none (the incident's move). `safe-add` moves a broker only
    /// when its spelling names one.
    pub rapid_add_broker: Option<i64>,
}

impl Default for FaultDefaults {
    /// Four newcomers (the incident's), no broker moved.
    fn default() -> Self {
        Self {
            add_count: 4,
            rapid_add_broker: None,
        }
    }
}

/// Why a fault's spelling was refused. Every message names the spelling
/// and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum FaultSpecError {
    /// The first word is not a fault.
    #[error("fault `{spec}`: unknown fault `{word}`; {USAGE}")]
    UnknownFault {
        /// The whole spelling.
        spec: String,
        /// The word not understood.
        word: String,
    },
    /// Too few or too many `:`-separated parts.
    #[error("fault `{spec}`: wrong number of parts; {USAGE}")]
    Shape {
        /// The whole spelling.
        spec: String,
    },
    /// Not a service.
    #[error("fault `{spec}`: service `{word}` is not zk, zookeeper, kafka or controller (KRaft); {USAGE}")]
    UnknownService {
        /// The whole spelling.
        spec: String,
        /// The word not understood.
        word: String,
    },
    /// Not a target.
    #[error("fault `{spec}`: target `{word}` is not one, minority, primary or all; {USAGE}")]
    UnknownTarget {
        /// The whole spelling.
        spec: String,
        /// The word not understood.
        word: String,
    },
    /// Not a partition kind.
    #[error("fault `{spec}`: {source}")]
    PartitionKind {
        /// The whole spelling.
        spec: String,
        /// What the kind parser said (it lists the kinds).
        #[source]
        source: GrudgeError,
    },
    /// The count of new servers is not a positive number (or none was
    /// given and the default is 0).
    #[error("fault `{spec}`: server count `{word}` must be a number of at least 1 (set it in the spelling, e.g. rapid-add:4, or with nemesis.add_count); {USAGE}")]
    Count {
        /// The whole spelling.
        spec: String,
        /// The count given (or the default).
        word: String,
    },
    /// The broker to move is not a broker id.
    #[error("fault `{spec}`: broker `{word}` is not a broker id (a number); {USAGE}")]
    Broker {
        /// The whole spelling.
        spec: String,
        /// The word not understood.
        word: String,
    },
}

impl Fault {
    /// Parses one fault's spelling (module docs), filling what it leaves
    /// out from `defaults`.
    pub fn parse_with(spec: &str, defaults: &FaultDefaults) -> Result<Fault, FaultSpecError> {
        let s = || spec.to_string();
        let service = |w: &str| match w {
            "zk" | "zookeeper" => Ok(ServerKind::Zookeeper),
            "kafka" => Ok(ServerKind::Kafka),
            "controller" => Ok(ServerKind::Controller),
            _ => Err(FaultSpecError::UnknownService {
                spec: s(),
                word: w.into(),
            }),
        };
        let target = |w: Option<&str>| match w {
            None | Some("one") => Ok(Target::One),
            Some("minority") => Ok(Target::Minority),
            Some("primary") => Ok(Target::Primary),
            Some("all") => Ok(Target::All),
            Some(w) => Err(FaultSpecError::UnknownTarget {
                spec: s(),
                word: w.into(),
            }),
        };
        let add = |procedure, rest: &[&str]| -> Result<Fault, FaultSpecError> {
            if rest.len() > 2 {
                return Err(FaultSpecError::Shape { spec: s() });
            }
            let count = match rest.first() {
                Some(c) => c.parse().ok().filter(|&c: &usize| c > 0).ok_or_else(|| {
                    FaultSpecError::Count {
                        spec: s(),
                        word: (*c).into(),
                    }
                })?,
                None if defaults.add_count > 0 => defaults.add_count,
                None => {
                    return Err(FaultSpecError::Count {
                        spec: s(),
                        word: defaults.add_count.to_string(),
                    })
                }
            };
            let move_broker = match (rest.get(1), procedure) {
                (Some(b), _) => Some(b.parse().map_err(|_| FaultSpecError::Broker {
                    spec: s(),
                    word: (*b).into(),
                })?),
                (None, JoinProcedure::Rapid) => defaults.rapid_add_broker,
                (None, JoinProcedure::Safe) => None,
            };
            Ok(Fault::AddZookeeper {
                procedure,
                count,
                move_broker,
            })
        };
        let parts: Vec<&str> = spec.trim().split(':').collect();
        match parts.as_slice() {
            ["partition", kind] => Ok(Fault::Partition {
                kind: kind
                    .parse()
                    .map_err(|source| FaultSpecError::PartitionKind { spec: s(), source })?,
            }),
            ["kill" | "pause", svc, rest @ ..] if rest.len() <= 1 => {
                let service = service(svc)?;
                let target = target(rest.first().copied())?;
                Ok(if parts[0] == "kill" {
                    Fault::Kill { service, target }
                } else {
                    Fault::Pause { service, target }
                })
            }
            ["rapid-add", rest @ ..] => add(JoinProcedure::Rapid, rest),
            ["safe-add", rest @ ..] => add(JoinProcedure::Safe, rest),
            ["rapid-add-controllers" | "safe-add-controllers", rest @ ..] if rest.len() <= 1 => {
                let procedure = if parts[0] == "rapid-add-controllers" {
                    JoinProcedure::Rapid
                } else {
                    JoinProcedure::Safe
                };
                match add(procedure, rest)? {
                    Fault::AddZookeeper { count, .. } => {
                        Ok(Fault::AddControllers { procedure, count })
                    }
                    other => Ok(other),
                }
            }
            ["partition" | "kill" | "pause" | "rapid-add-controllers" | "safe-add-controllers", ..] => {
                Err(FaultSpecError::Shape { spec: s() })
            }
            [word, ..] => Err(FaultSpecError::UnknownFault {
                spec: s(),
                word: (*word).into(),
            }),
            [] => Err(FaultSpecError::Shape { spec: s() }),
        }
    }

    /// Whether the fault starts ZooKeeper servers or KRaft controllers on free nodes (the
    /// environment needs that many spare nodes).
    pub fn adds_servers(&self) -> Option<usize> {
        match self {
            Fault::AddZookeeper { count, .. } | Fault::AddControllers { count, .. } => Some(*count),
            _ => None,
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = FaultSpecError;

    /// [`Fault::parse_with`] with [`FaultDefaults::default`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::parse_with(s, &FaultDefaults::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> FaultDefaults {
        FaultDefaults {
            add_count: 4,
            rapid_add_broker: Some(3),
        }
    }

    /// Every spelling found in the repository (campaigns/*.toml, ci/*.toml,
    /// tests/, docs/, src/) parses, to the fault it meant before the two
    /// grammars became one.
    #[test]
    fn every_spelling_in_the_repository_parses() {
        let cases: Vec<(&str, Fault)> = vec![
            (
                "kill:kafka",
                Fault::Kill {
                    service: ServerKind::Kafka,
                    target: Target::One,
                },
            ),
            (
                "kill:zk",
                Fault::Kill {
                    service: ServerKind::Zookeeper,
                    target: Target::One,
                },
            ),
            (
                "pause:kafka",
                Fault::Pause {
                    service: ServerKind::Kafka,
                    target: Target::One,
                },
            ),
            (
                "pause:zk",
                Fault::Pause {
                    service: ServerKind::Zookeeper,
                    target: Target::One,
                },
            ),
            (
                "kill:kafka:primary",
                Fault::Kill {
                    service: ServerKind::Kafka,
                    target: Target::Primary,
                },
            ),
            (
                "kill:kafka:one",
                Fault::Kill {
                    service: ServerKind::Kafka,
                    target: Target::One,
                },
            ),
            (
                "pause:zookeeper:one",
                Fault::Pause {
                    service: ServerKind::Zookeeper,
                    target: Target::One,
                },
            ),
            (
                "pause:zookeeper:minority",
                Fault::Pause {
                    service: ServerKind::Zookeeper,
                    target: Target::Minority,
                },
            ),
            (
                "pause:zk:minority",
                Fault::Pause {
                    service: ServerKind::Zookeeper,
                    target: Target::Minority,
                },
            ),
            (
                "pause:kafka:primary",
                Fault::Pause {
                    service: ServerKind::Kafka,
                    target: Target::Primary,
                },
            ),
            (
                "kill:zk:all",
                Fault::Kill {
                    service: ServerKind::Zookeeper,
                    target: Target::All,
                },
            ),
            (
                "rapid-add",
                Fault::AddZookeeper {
                    procedure: JoinProcedure::Rapid,
                    count: 4,
                    move_broker: Some(3),
                },
            ),
            (
                "safe-add",
                Fault::AddZookeeper {
                    procedure: JoinProcedure::Safe,
                    count: 4,
                    move_broker: None,
                },
            ),
            (
                "rapid-add:4:2",
                Fault::AddZookeeper {
                    procedure: JoinProcedure::Rapid,
                    count: 4,
                    move_broker: Some(2),
                },
            ),
            (
                "rapid-add:5",
                Fault::AddZookeeper {
                    procedure: JoinProcedure::Rapid,
                    count: 5,
                    move_broker: Some(3),
                },
            ),
            (
                "safe-add:1",
                Fault::AddZookeeper {
                    procedure: JoinProcedure::Safe,
                    count: 1,
                    move_broker: None,
                },
            ),
            (
                "safe-add:4:2",
                Fault::AddZookeeper {
                    procedure: JoinProcedure::Safe,
                    count: 4,
                    move_broker: Some(2),
                },
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                Fault::parse_with(spec, &incident()).unwrap(),
                want,
                "{spec}"
            );
        }
        for kind in [
            "halves",
            "random-halves",
            "isolate-one",
            "majorities-ring",
            "bridge",
            "isolate-zk-leader",
            "isolate-kafka-controller",
            "zk-from-kafka",
        ] {
            let spec = format!("partition:{kind}");
            assert_eq!(
                spec.parse::<Fault>().unwrap(),
                Fault::Partition {
                    kind: kind.parse().unwrap()
                },
                "{spec}"
            );
        }
    }

    #[test]
    fn the_command_line_form_has_its_own_defaults() {
        assert_eq!(
            "rapid-add".parse::<Fault>().unwrap(),
            Fault::AddZookeeper {
                procedure: JoinProcedure::Rapid,
                count: 4,
                move_broker: None
            }
        );
        assert_eq!(
            "safe-add:2".parse::<Fault>().unwrap(),
            Fault::AddZookeeper {
                procedure: JoinProcedure::Safe,
                count: 2,
                move_broker: None
            }
        );
    }

    #[test]
    fn bad_spellings_say_what_is_wrong_and_what_is_expected() {
        let no_count = FaultDefaults {
            add_count: 0,
            rapid_add_broker: None,
        };
        let cases: [(&str, &FaultDefaults, &str); 15] = [
            ("", &incident(), "unknown fault ``"),
            ("explode", &incident(), "unknown fault `explode`"),
            ("partition", &incident(), "wrong number of parts"),
            ("partition:sideways", &incident(), "choose one of"),
            ("partition:halves:x", &incident(), "wrong number of parts"),
            ("kill", &incident(), "wrong number of parts"),
            ("kill:nginx", &incident(), "service `nginx`"),
            ("kill:redis:one", &incident(), "service `redis`"),
            ("kill:zk:most", &incident(), "target `most`"),
            ("pause:kafka:one:two", &incident(), "wrong number of parts"),
            ("rapid-add:0", &incident(), "server count `0`"),
            ("rapid-add:x", &incident(), "server count `x`"),
            ("safe-add:2:b", &incident(), "broker `b`"),
            ("safe-add:2:1:1", &incident(), "wrong number of parts"),
            ("rapid-add", &no_count, "nemesis.add_count"),
        ];
        for (bad, defaults, says) in cases {
            let err = Fault::parse_with(bad, defaults).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(err.contains(&format!("fault `{bad}`")), "{bad:?}: {err}");
            if !says.contains("choose") {
                assert!(err.contains(USAGE), "{bad:?}: {err}");
            }
        }
    }

    #[test]
    fn controller_membership_faults_parse_with_count_from_spelling_or_defaults() {
        assert_eq!(
            Fault::parse_with("rapid-add-controllers", &incident()).unwrap(),
            Fault::AddControllers {
                procedure: JoinProcedure::Rapid,
                count: 4,
            }
        );
        let safe = Fault::parse_with("safe-add-controllers:2", &incident()).unwrap();
        assert_eq!(
            safe,
            Fault::AddControllers {
                procedure: JoinProcedure::Safe,
                count: 2,
            }
        );
        assert_eq!(safe.start_f(), "safe-add-controllers");
        assert_eq!(safe.adds_servers(), Some(2));
        assert_eq!(
            "rapid-add-controllers:3"
                .parse::<Fault>()
                .unwrap()
                .start_f(),
            "rapid-add-controllers"
        );
        // No broker to move in KRaft: a third part is refused, as are bad counts.
        for (spec, needle) in [
            ("rapid-add-controllers:2:3", "wrong number of parts"),
            ("safe-add-controllers:0", "server count `0`"),
            ("safe-add-controllers:x", "server count `x`"),
        ] {
            let err = Fault::parse_with(spec, &incident())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn adds_servers_counts_only_membership_faults() {
        assert_eq!(
            Fault::parse_with("rapid-add", &incident())
                .unwrap()
                .adds_servers(),
            Some(4)
        );
        assert_eq!("kill:zk".parse::<Fault>().unwrap().adds_servers(), None);
        // KRaft controllers and their leader as targets.
        for spec in [
            "kill:controller",
            "pause:controller:primary",
            "partition:isolate-kraft-leader",
        ] {
            let f = spec.parse::<Fault>().unwrap();
            let debug = format!("{f:?}");
            assert!(
                debug.contains("Controller") || debug.contains("IsolateKraftLeader"),
                "{spec}: {debug}"
            );
        }
    }
}
