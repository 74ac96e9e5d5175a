//! The ZooKeeper/Kafka lifecycle scenarios of `cluster.rs` (in `scenarios/`),
//! unchanged, on the Docker environment: the same layout, configs and
//! commands over SSH, with the artifact cache mounted read-only at the same
//! path in every container. Shows that the Docker nodes behave like the netns
//! ones. Needs root, a Docker engine (started by the test if need be) and the
//! artifact cache (`environments/artifacts/fetch`).

mod scenarios;

use splitbrain_environments::nodes::docker::test_env::lease_for_test;
use splitbrain_environments::nodes::docker::DockerTestEnv;

fn docker_env(test_name: &str, nodes: usize) -> DockerTestEnv {
    DockerTestEnv::up(test_name, nodes)
        .unwrap_or_else(|e| panic!("Docker environment could not be brought up: {e}"))
}

#[test]
fn docker_three_zookeeper_three_kafka_produce_consume_and_fail_over() {
    let Some(_lease) = lease_for_test() else {
        return;
    };
    let env = docker_env("cluster-basic", 6);
    let control = env.control().expect("SSH to the Docker nodes");
    scenarios::produce_consume_and_fail_over(env.name(), env.nodes(), control);
}

#[test]
fn docker_rapid_add_of_four_participants_makes_a_second_leader_over_an_empty_tree() {
    let Some(_lease) = lease_for_test() else {
        return;
    };
    let env = docker_env("cluster-rapid-add", 7);
    let control = env.control().expect("SSH to the Docker nodes");
    scenarios::rapid_add_makes_a_second_leader(env.name(), env.nodes(), control);
}
