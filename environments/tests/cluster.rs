//! Real ZooKeeper and Kafka processes on network-namespace nodes, driven over
//! SSH (issue 3's must-show tests; the scenarios live in `scenarios/`). Needs
//! root, sshd, java and the artifact cache (`environments/artifacts/fetch`).

mod scenarios;

use splitbrain_environments::nodes::netns::TestEnv;

#[test]
fn three_zookeeper_three_kafka_produce_consume_and_fail_over() {
    let env = TestEnv::up("cluster-basic", 6);
    scenarios::produce_consume_and_fail_over(env.name(), env.nodes(), env.control());
}

#[test]
fn rapid_add_of_four_participants_makes_a_second_leader_over_an_empty_tree() {
    let env = TestEnv::up("cluster-rapid-add", 7);
    scenarios::rapid_add_makes_a_second_leader(env.name(), env.nodes(), env.control());
}

#[test]
fn safe_add_one_server_at_a_time_keeps_a_single_leader() {
    let env = TestEnv::up("cluster-safe-add", 5);
    scenarios::safe_add_keeps_a_single_leader(env.name(), env.nodes(), env.control());
}
