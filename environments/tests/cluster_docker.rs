//! The ZooKeeper/Kafka lifecycle tests of `cluster.rs`, unchanged, on the
//! Docker environment: the same layout, configs and commands over SSH, with
//! the artifact cache mounted read-only at the same path in every container.
//! Shows that the Docker nodes behave like the netns ones. Needs root, a
//! Docker engine (started by the test if need be) and the artifact cache
//! (`environments/artifacts/fetch`).

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use splitbrain_core::cluster::ZkMode;
use splitbrain_environments::artifacts::Artifacts;
use splitbrain_environments::cluster::{self, ClusterGuard, ClusterLayout};
use splitbrain_environments::docker::test_env::lease_for_test;
use splitbrain_environments::docker::DockerTestEnv;
use splitbrain_environments::observe;
use splitbrain_environments::zk_client::ZkSession;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A Docker environment standing in for `netns::TestEnv`, so the test bodies
/// below are the netns ones verbatim.
struct TestEnv;

impl TestEnv {
    fn up(test_name: &str, nodes: usize) -> DockerTestEnv {
        DockerTestEnv::up(test_name, nodes)
            .unwrap_or_else(|e| panic!("Docker environment could not be brought up: {e}"))
    }
}

const WAIT: Duration = Duration::from_secs(90);

fn leaders(obs: &splitbrain_core::cluster::Observation) -> Vec<u64> {
    obs.zookeeper
        .iter()
        .filter(|v| v.mode == ZkMode::Leader)
        .map(|v| v.server_id)
        .collect()
}

/// Every process of the layout is gone (checked over SSH).
fn assert_all_stopped(guard_layout: &ClusterLayout, control: &splitbrain_core::control::Control) {
    for (node, svc) in guard_layout.services() {
        assert_eq!(
            svc.pid(control, &node).unwrap(),
            None,
            "{} still running on {node}",
            svc.kind.name()
        );
    }
}

#[test]
fn docker_three_zookeeper_three_kafka_produce_consume_and_fail_over() {
    let Some(_lease) = lease_for_test() else {
        return;
    };
    let env = TestEnv::up("cluster-basic", 6);
    let control = env.control().unwrap();
    let layout =
        ClusterLayout::plan(env.name(), env.nodes(), 3, 3, Artifacts::locate().unwrap()).unwrap();
    let guard = ClusterGuard::new(control.clone(), layout.clone());
    let started = Instant::now();
    cluster::up(&control, &layout, WAIT).unwrap();
    eprintln!("3 ZooKeeper + 3 Kafka up in {:?}", started.elapsed());

    // Exactly one ZooKeeper leader; every broker names the same controller,
    // and so does every ZooKeeper server's /controller.
    let obs = observe::observe(&layout);
    assert_eq!(leaders(&obs).len(), 1, "{obs:#?}");
    let followers = obs
        .zookeeper
        .iter()
        .filter(|v| v.mode == ZkMode::Follower)
        .count();
    assert_eq!(followers, 2, "{obs:#?}");
    let controllers: BTreeSet<Option<i32>> = obs.kafka.iter().map(|b| b.controller).collect();
    assert_eq!(controllers.len(), 1, "{obs:#?}");
    let controller = obs.kafka[0].controller.expect("a controller");
    assert!(obs
        .zookeeper
        .iter()
        .all(|v| v.controller == Some(controller) && v.cluster_id.is_some()));

    // A topic with 3 partitions, replication factor 3.
    let topic = "splitbrain-basic";
    cluster::create_topic(&layout, topic, 3, 3, WAIT).unwrap();
    let md = cluster::metadata(&layout, Some(&[topic]), Duration::from_secs(2)).unwrap();
    let parts = &md.topics[0].partitions;
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p.replicas.len() == 3 && p.leader >= 0));

    // 1,000 messages from an idempotent producer, acks=all.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", layout.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    for i in 0..1000u32 {
        let payload = i.to_string();
        let key = (i % 3).to_string();
        let mut record = BaseRecord::to(topic).payload(&payload).key(&key);
        // Bounded: the local queue is far larger than 1,000 messages.
        let mut tries = 0;
        while let Err((e, r)) = producer.send(record) {
            tries += 1;
            assert!(tries < 100, "queue stays full: {e}");
            record = r;
            producer.poll(Duration::from_millis(100));
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(producer.in_flight_count(), 0);

    // Read everything back from the start of each partition.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", layout.bootstrap_servers())
        .set("group.id", "splitbrain-basic-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = BTreeSet::new();
    let mut count = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 1000 && Instant::now() < deadline {
        if let Some(msg) = consumer.poll(Duration::from_millis(500)) {
            let msg = msg.unwrap();
            let v: u32 = std::str::from_utf8(msg.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            seen.insert(v);
            count += 1;
        }
    }
    assert_eq!(seen, (0..1000).collect::<BTreeSet<u32>>());
    assert_eq!(count, 1000, "duplicates read");
    drop(consumer);
    drop(producer);

    // kill -9 the leader of partition 0; another broker becomes its leader.
    let old = md.leader(topic, 0).unwrap();
    let victim = layout.broker(old).unwrap();
    let pid = victim.service().kill(&control, &victim.node.name).unwrap();
    assert!(pid.parse::<u32>().is_ok(), "kill printed {pid:?}");
    assert_eq!(
        victim.service().pid(&control, &victim.node.name).unwrap(),
        None
    );
    let survivors: Vec<_> = layout.kafka.iter().filter(|b| b.id != old).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let new = loop {
        let now = survivors.iter().find_map(|b| {
            splitbrain_environments::kafka_client::metadata(
                b.addr(&layout.kafka_settings),
                Some(&[topic]),
                Duration::from_millis(500),
            )
            .ok()
            .and_then(|m| m.leader(topic, 0))
        });
        match now {
            Some(l) if l != old => break l,
            _ if Instant::now() > deadline => panic!("partition 0 still led by {now:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    eprintln!("partition 0 leader: {old} killed, {new} took over");
    assert_ne!(new, old);
    let obs = observe::observe(&layout);
    let dead = obs.kafka.iter().find(|b| b.broker_id == old).unwrap();
    assert!(dead.error.is_some(), "{dead:?}");

    // Logs and configs collected into a run directory.
    let run = tempfile::tempdir().unwrap();
    let files = cluster::collect(&control, &layout, run.path()).unwrap();
    assert!(
        run.path().join("n1/zookeeper/zoo.cfg").exists(),
        "{files:?}"
    );
    assert!(
        run.path().join("n4/kafka/server.properties").exists(),
        "{files:?}"
    );
    assert!(
        run.path().join("n4/kafka/logs_server.log").exists(),
        "{files:?}"
    );
    assert!(
        run.path().join("n2/zookeeper/logs_zookeeper.log").exists(),
        "{files:?}"
    );

    // Everything stops: the guard kills what runs; nothing is left.
    drop(guard);
    assert_all_stopped(&layout, &control);
}

#[test]
fn docker_rapid_add_of_four_participants_makes_a_second_leader_over_an_empty_tree() {
    let Some(_lease) = lease_for_test() else {
        return;
    };
    let env = TestEnv::up("cluster-rapid-add", 7);
    let control = env.control().unwrap();
    let layout = ClusterLayout::plan(
        env.name(),
        &env.nodes()[..3],
        3,
        0,
        Artifacts::locate().unwrap(),
    )
    .unwrap();
    let mut guard = ClusterGuard::new(control.clone(), layout);
    cluster::up(&control, guard.layout(), WAIT).unwrap();

    // The old ensemble holds data.
    let first = guard.layout().zookeeper[0].client_addr(&guard.layout().zk_settings);
    let mut s = ZkSession::connect(first, Duration::from_secs(10), Duration::from_secs(2)).unwrap();
    assert!(s.create("/splitbrain-data", b"old ensemble").unwrap());
    for i in 0..10 {
        s.create(&format!("/splitbrain-data/item-{i}"), b"x")
            .unwrap();
    }
    s.close().unwrap();
    let before = observe::observe(guard.layout());
    assert_eq!(leaders(&before).len(), 1, "{before:#?}");

    // Four newcomers at once, each listing all seven as participants.
    let newcomers = env.nodes()[3..7].to_vec();
    let added = cluster::rapid_add(&control, guard.layout_mut(), &newcomers).unwrap();
    let added_ids: Vec<u64> = added.iter().map(|s| s.id).collect();
    assert_eq!(added_ids, [4, 5, 6, 7]);
    assert!(added.iter().all(|s| s.config_members.len() == 7));

    // Within a bounded time: two leaders at once, one on each side.
    let deadline = Instant::now() + WAIT;
    let obs = loop {
        let obs = observe::observe(guard.layout());
        let ls = leaders(&obs);
        if ls.iter().any(|id| *id <= 3) && ls.iter().any(|id| *id >= 4) {
            break obs;
        }
        assert!(Instant::now() < deadline, "no second leader: {obs:#?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("{}", serde_json::to_string(&obs).unwrap());
    assert_eq!(leaders(&obs).len(), 2, "{obs:#?}");
    let old_side: Vec<_> = obs.zookeeper.iter().filter(|v| v.server_id <= 3).collect();
    let new_side: Vec<_> = obs.zookeeper.iter().filter(|v| v.server_id >= 4).collect();
    // Each side believes in its own membership...
    assert!(old_side.iter().all(|v| v.members == [1, 2, 3]), "{obs:#?}");
    let new_leader = new_side.iter().find(|v| v.mode == ZkMode::Leader).unwrap();
    assert_eq!(new_leader.members, [1, 2, 3, 4, 5, 6, 7]);
    // ...and the newcomers' tree is empty where the old one has data.
    let old_count = old_side[0].znode_count.unwrap();
    let new_count = new_leader.znode_count.unwrap();
    assert!(
        new_count + 11 <= old_count,
        "old {old_count}, new {new_count}"
    );
    let mut s = ZkSession::connect(
        new_leader_addr(guard.layout(), new_leader.server_id),
        Duration::from_secs(10),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(s.get_data("/splitbrain-data").unwrap(), None);
    s.close().unwrap();
    let mut s = ZkSession::connect(first, Duration::from_secs(10), Duration::from_secs(2)).unwrap();
    assert_eq!(
        s.get_data("/splitbrain-data").unwrap().as_deref(),
        Some(&b"old ensemble"[..])
    );
    s.close().unwrap();

    // The way back: the newcomers go, the old ensemble is untouched.
    cluster::remove_zookeeper(&control, guard.layout_mut(), &added_ids).unwrap();
    assert_eq!(guard.layout().zookeeper.len(), 3);
    for server in &added {
        assert_eq!(
            server.service().pid(&control, &server.node.name).unwrap(),
            None
        );
    }
    let after = observe::observe(guard.layout());
    assert_eq!(leaders(&after).len(), 1, "{after:#?}");

    let mut all = guard.layout().clone();
    all.zookeeper.extend(added);
    drop(guard);
    assert_all_stopped(&all, &control);
}

fn new_leader_addr(layout: &ClusterLayout, id: u64) -> std::net::SocketAddr {
    layout
        .zk_server(id)
        .unwrap()
        .client_addr(&layout.zk_settings)
}
