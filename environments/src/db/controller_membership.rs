//! KRaft controller membership as nemesis faults: what
//! [`ClusterControl::add_controllers`](splitbrain_core::db::ClusterControl::add_controllers)
//! and `remove_controllers` do on an [`EnvCluster`](super::cluster_control::EnvCluster),
//! built on [`cluster::rapid_add_controllers`] and
//! [`cluster::safe_add_controllers`], with what the servers did recorded as
//! JSON for the nemesis event.

use crate::db::cluster::{self, ClusterLayout};
use crate::db::kraft::{self, Controller, KraftCluster};
use crate::probes::kafka_client::QuorumDescription;
use serde_json::{json, Value};
use splitbrain_core::control::{Control, Node};
use splitbrain_core::db::{ControllersAdded, DbError, JoinProcedure, Server, ServerKind};
use std::time::{Duration, Instant};

/// Bound of one DescribeQuorum question.
const ASK: Duration = Duration::from_millis(500);

/// How long the rapid procedure watches the newcomers after starting them
/// (they fetch as observers or claim nothing; the leader's voter set is
/// read after this).
const RAPID_SETTLE: Duration = Duration::from_secs(25);

fn kraft_of(layout: &ClusterLayout) -> Result<&KraftCluster, DbError> {
    layout.kraft.as_ref().ok_or_else(|| {
        DbError::Unsupported(
            "adding KRaft controllers needs a KRaft-mode cluster: set cluster.mode = \"kraft\""
                .into(),
        )
    })
}

/// The leader's description, as the first controller answering as leader
/// gives it; `None` when none does.
fn leader_view(k: &KraftCluster) -> Option<QuorumDescription> {
    kraft::describe_each(&k.controllers, &k.settings, ASK)
        .into_iter()
        .find_map(|(id, a)| a.ok().filter(|q| q.leader_id == Some(id)))
}

fn describe_json(q: &QuorumDescription) -> Value {
    json!({
        "leader": q.leader_id,
        "epoch": q.leader_epoch,
        "high_watermark": q.high_watermark,
        "voters": q.voters.iter().map(|v| v.replica_id).collect::<Vec<_>>(),
        "observers": q.observers.iter().map(|v| v.replica_id).collect::<Vec<_>>(),
    })
}

/// Every controller that answers as a leader (more than one is a split
/// brain), with its view.
fn leaders_json(k: &KraftCluster) -> Value {
    Value::Array(
        kraft::describe_each(&k.controllers, &k.settings, ASK)
            .into_iter()
            .filter_map(|(id, a)| {
                a.ok()
                    .filter(|q| q.leader_id == Some(id))
                    .map(|q| describe_json(&q))
            })
            .collect(),
    )
}

fn to_server(c: &Controller) -> Server {
    Server {
        kind: ServerKind::Controller,
        id: i64::from(c.id),
        node: c.node.name.clone(),
        address: c.node.address,
    }
}

/// Adds controllers on `nodes` the way `procedure` says; the layout is
/// updated (newcomers appended) even when a step fails, so removing them
/// finds them. `publish` is handed the layout as soon as newcomers run
/// (rapid: once all started; safe: after each one), so the observer asks
/// them while the fault is still being carried out.
pub fn add_controllers(
    control: &Control,
    layout: &mut ClusterLayout,
    nodes: &[Node],
    procedure: JoinProcedure,
    timeout: Duration,
    publish: &dyn Fn(&ClusterLayout),
) -> Result<ControllersAdded, DbError> {
    let before = leader_view(kraft_of(layout)?);
    let old_ids: Vec<i32> = kraft_of(layout)?.controllers.iter().map(|c| c.id).collect();
    let mut report = json!({
        "voters_before": before.as_ref().map(describe_json),
    });
    let newcomers: Vec<Controller> = match procedure {
        JoinProcedure::Rapid => {
            let started = cluster::rapid_add_controllers(control, layout, nodes);
            publish(layout);
            let (newcomers, formatted) =
                started.map_err(|e| DbError::failed("rapid-add-controllers", e))?;
            let k = kraft_of(layout)?.clone();
            report["static_voters"] = json!(k.controllers.iter().map(|c| c.id).collect::<Vec<_>>());
            report["formatted"] = json!(newcomers
                .iter()
                .zip(&formatted)
                .map(|(c, f)| json!({"id": c.id, "output": f}))
                .collect::<Vec<_>>());
            // Let them run long enough to fetch, vote or fail.
            let deadline = Instant::now() + RAPID_SETTLE.min(timeout);
            for c in &newcomers {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = kraft::wait_answering(c, &k.settings, left.max(ASK));
            }
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            report["newcomers"] = json!(kraft::describe_each(&newcomers, &k.settings, ASK)
                .into_iter()
                .map(|(id, a)| match a {
                    Ok(q) => json!({"id": id, "answer": describe_json(&q)}),
                    Err(e) => json!({"id": id, "error": e.to_string()}),
                })
                .collect::<Vec<_>>());
            newcomers
        }
        JoinProcedure::Safe => {
            // One node per call, so each newcomer is published once it runs.
            let mut result = Ok(Vec::new());
            for node in nodes {
                let step = cluster::safe_add_controllers(
                    control,
                    layout,
                    std::slice::from_ref(node),
                    timeout,
                );
                publish(layout);
                match (step, &mut result) {
                    (Ok(s), Ok(all)) => all.extend(s),
                    (Err(e), _) => {
                        result = Err(e);
                        break;
                    }
                    (Ok(_), Err(_)) => {}
                }
            }
            let k = kraft_of(layout)?;
            let added: Vec<Controller> = k
                .controllers
                .iter()
                .filter(|c| !old_ids.contains(&c.id))
                .cloned()
                .collect();
            match result {
                Ok(steps) => {
                    report["steps"] = json!(steps
                        .iter()
                        .map(|s| json!({
                            "id": s.id,
                            "formatted": s.formatted,
                            "add_controller_exit": s.add_controller.0,
                            "add_controller_output": s.add_controller.1,
                            "voters": s.voters,
                        }))
                        .collect::<Vec<_>>());
                }
                Err(e) => {
                    return Err(DbError::failed(
                        format!(
                            "safe-add-controllers (controllers {:?} started)",
                            added.iter().map(|c| c.id).collect::<Vec<_>>()
                        ),
                        e,
                    ))
                }
            }
            added
        }
    };
    let k = kraft_of(layout)?;
    let after = leader_view(k);
    report["voters_after"] = json!(after.as_ref().map(describe_json));
    report["leaders_after"] = leaders_json(k);
    Ok(ControllersAdded {
        servers: newcomers.iter().map(to_server).collect(),
        report,
    })
}

/// Takes the controllers `ids` out: voters first leave the quorum with
/// `remove-controller` (one at a time, each waited for), then every one is
/// killed, wiped and dropped from the layout.
pub fn remove_controllers(
    control: &Control,
    layout: &mut ClusterLayout,
    ids: &[i64],
    timeout: Duration,
) -> Result<Value, DbError> {
    let k = kraft_of(layout)?.clone();
    let gone: Vec<Controller> = k
        .controllers
        .iter()
        .filter(|c| ids.contains(&i64::from(c.id)))
        .cloned()
        .collect();
    let staying: Vec<Controller> = k
        .controllers
        .iter()
        .filter(|c| !ids.contains(&i64::from(c.id)))
        .cloned()
        .collect();
    let bootstrap = staying
        .iter()
        .map(|c| c.addr(&k.settings).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut removed = Vec::new();
    for c in &gone {
        let voters: Vec<i32> = leader_view(&k)
            .map(|q| q.voters.iter().map(|v| v.replica_id).collect())
            .unwrap_or_default();
        if !voters.contains(&c.id) {
            continue;
        }
        let Some(on) = staying.first() else { break };
        // Its real directory id: `--no-initial-controllers` formatting
        // picks its own, so the planned one may not be it.
        let meta = c.service().data_dir().join("meta.properties");
        let directory_id = control
            .exec_ok(
                &c.node.name,
                &format!(
                    "sed -n 's/^directory.id=//p' {}",
                    crate::db::service::sh_quote(&meta.to_string_lossy())
                ),
                Duration::from_secs(10),
            )
            .map(|o| o.stdout.trim().to_string())
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| c.directory_id.clone());
        let (status, output) = kraft::quorum_tool(
            control,
            &on.node.name,
            &layout.artifacts,
            &bootstrap,
            &[
                "remove-controller".into(),
                "--controller-id".into(),
                c.id.to_string(),
                "--controller-directory-id".into(),
                directory_id.clone(),
            ],
        )
        .map_err(|e| DbError::failed(format!("remove-controller {}", c.id), e))?;
        if status != 0 {
            return Err(DbError::failed(
                format!("remove-controller {} (directory id {directory_id})", c.id),
                format!("exit {status}: {output}"),
            ));
        }
        // Wait until the leader no longer lists it.
        let deadline = Instant::now() + timeout;
        let mut left = false;
        while Instant::now() < deadline {
            if leader_view(&k).is_some_and(|q| !q.voters.iter().any(|v| v.replica_id == c.id)) {
                left = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        removed.push(
            json!({"id": c.id, "directory_id": directory_id, "exit": status,
                            "output": output, "left_voters": left}),
        );
        if !left {
            return Err(DbError::failed(
                format!("remove-controller {}", c.id),
                format!("still a voter after {timeout:?}; tool said (exit {status}): {output}"),
            ));
        }
    }
    // Their own account of the quorum, kept before the wipe removes their
    // logs: role transitions and the voter sets they used.
    let log_lines: Vec<Value> = gone
        .iter()
        .map(|c| {
            let log = c.service().log_dir().join("server.log");
            let lines = control
                .exec(
                    &c.node.name,
                    &format!(
                        "grep -h -E 'Completed transition to|static voters|Latest set of voters' {} | head -n 8 | cut -c1-400",
                        crate::db::service::sh_quote(&log.to_string_lossy())
                    ),
                    Duration::from_secs(10),
                )
                .map(|o| o.stdout.lines().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default();
            json!({"id": c.id, "lines": lines})
        })
        .collect();
    for c in &gone {
        let svc = c.service();
        svc.kill(control, &c.node.name)
            .map_err(|e| DbError::failed(format!("kill controller {}", c.id), e))?;
        svc.wipe(control, &c.node.name)
            .map_err(|e| DbError::failed(format!("wipe controller {}", c.id), e))?;
    }
    if let Some(k) = layout.kraft.as_mut() {
        k.controllers.retain(|c| !ids.contains(&i64::from(c.id)));
    }
    let after = leader_view(kraft_of(layout)?);
    Ok(json!({
        "remove_controller": removed,
        "server_log": log_lines,
        "voters_after": after.as_ref().map(describe_json),
    }))
}
