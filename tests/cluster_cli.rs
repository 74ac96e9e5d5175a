//! `splitbrain cluster up/status/down` as a user runs them, on a real netns
//! environment. Needs root, java and the artifact cache.

mod common;

use common::{run, text};
use splitbrain_core::cluster::{Observation, ZkMode};
use splitbrain_environments::db::service::{Service, ServiceKind};
use splitbrain_environments::nodes::netns::TestEnv;

#[test]
fn cluster_up_status_down_on_a_fresh_environment() {
    let env = TestEnv::up("cluster-cli", 2);
    let name = env.name().to_string();

    // Too many servers for the nodes: a clear error naming the fix.
    let out = run(&[
        "cluster",
        "up",
        "--zk",
        "3",
        "--kafka",
        "3",
        "--env-name",
        &name,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--nodes 6"), "{}", text(&out));

    let out = run(&[
        "cluster",
        "up",
        "--zk",
        "1",
        "--kafka",
        "1",
        "--env-name",
        &name,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("bootstrap.servers="), "{}", text(&out));

    // A second `up` refuses: one cluster per environment.
    let out = run(&[
        "cluster",
        "up",
        "--zk",
        "1",
        "--kafka",
        "1",
        "--env-name",
        &name,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cluster down"), "{}", text(&out));

    // One sample may miss a 200 ms timeout on a loaded machine: a bounded
    // number of tries until every server answered.
    let mut obs: Option<Observation> = None;
    for _ in 0..40 {
        let out = run(&["cluster", "status", "--json", "--env-name", &name]);
        assert!(out.status.success(), "{}", text(&out));
        let o: Observation = serde_json::from_slice(&out.stdout).unwrap();
        let answered = o.zookeeper.iter().all(|v| v.error.is_none())
            && o.kafka.iter().all(|b| b.error.is_none());
        obs = Some(o);
        if answered {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let obs = obs.unwrap();
    let mut table = String::new();
    for _ in 0..40 {
        let out = run(&["cluster", "status", "--env-name", &name]);
        assert!(out.status.success(), "{}", text(&out));
        table = text(&out);
        if table.contains("standalone") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(table.contains("standalone"), "{table}");
    assert!(table.contains("BROKER"), "{table}");
    assert_eq!(obs.zookeeper.len(), 1);
    assert_eq!(obs.zookeeper[0].mode, ZkMode::Standalone);
    assert_eq!(obs.kafka.len(), 1);
    assert_eq!(obs.kafka[0].controller, Some(1), "{obs:?}");
    assert_eq!(obs.zookeeper[0].controller, Some(1), "{obs:?}");

    let run_dir = tempfile::tempdir().unwrap();
    let dir = run_dir.path().to_string_lossy().to_string();
    let out = run(&["cluster", "down", "--collect", &dir, "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(run_dir.path().join("n1/zookeeper/zoo.cfg").exists());
    assert!(run_dir.path().join("n2/kafka/logs_server.log").exists());

    // Nothing of the cluster runs on the nodes any more.
    let control = env.control();
    for node in env.nodes() {
        for kind in [ServiceKind::Zookeeper, ServiceKind::Kafka] {
            let svc = Service::new(kind, &node.dir);
            assert_eq!(
                svc.pid(&control, &node.name).unwrap(),
                None,
                "{} on {}",
                kind.name(),
                node.name
            );
        }
    }
    let out = run(&["cluster", "down", "--env-name", &name]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
}
