//! A Kafka broker (ZooKeeper mode) on a node: `server.properties`, logging,
//! installation over SSH and waiting for registration.

use crate::db::artifacts::Artifacts;
use crate::db::service::{Service, ServiceKind};
use crate::db::zookeeper::base_jvm_opts;
use crate::db::ClusterError;
use crate::probes::zk_client::ZkSession;
use serde::{Deserialize, Serialize};
use splitbrain_core::control::{Control, Node};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Settings of every broker of a cluster, the ones a test varies in the
/// open. [`Default`] is tuned for short tests on a small machine; replication
/// settings are capped at the number of brokers by [`KafkaSettings::for_brokers`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaSettings {
    /// Listener port.
    pub port: u16,
    /// JVM heap (`-Xmx`) in MiB.
    pub heap_mb: u32,
    /// `zookeeper.session.timeout.ms`: how long a broker cut off from
    /// ZooKeeper keeps its registration (and controllership).
    pub zookeeper_session_timeout_ms: u32,
    /// `zookeeper.connection.timeout.ms`: how long a starting broker waits for ZooKeeper.
    pub zookeeper_connection_timeout_ms: u32,
    /// `default.replication.factor`.
    pub default_replication_factor: u16,
    /// `num.partitions` for auto-created topics.
    pub num_partitions: u32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u16,
    /// `unclean.leader.election.enable`: true may lose acknowledged writes.
    pub unclean_leader_election: bool,
    /// `auto.create.topics.enable` (Kafka's default is true; off here so
    /// topics are made on purpose).
    pub auto_create_topics: bool,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: u16,
    /// `transaction.state.log.replication.factor`.
    pub transaction_state_log_replication_factor: u16,
    /// `transaction.state.log.min.isr`.
    pub transaction_state_log_min_isr: u16,
    /// `replica.lag.time.max.ms`: when a silent follower leaves the ISR.
    pub replica_lag_time_max_ms: u32,
    /// Extra JVM options, appended after splitbrain's.
    pub jvm_opts: Vec<String>,
    /// Extra `key=value` lines appended to `server.properties` (later lines
    /// win in Java properties, so these override the above).
    pub extra: Vec<(String, String)>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            port: 9092,
            heap_mb: 384,
            zookeeper_session_timeout_ms: 6000,
            zookeeper_connection_timeout_ms: 20_000,
            default_replication_factor: 3,
            num_partitions: 3,
            min_insync_replicas: 2,
            unclean_leader_election: false,
            auto_create_topics: false,
            offsets_topic_replication_factor: 3,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_min_isr: 2,
            replica_lag_time_max_ms: 10_000,
            jvm_opts: Vec::new(),
            extra: Vec::new(),
        }
    }
}

impl KafkaSettings {
    /// Defaults with every replication setting capped at `brokers` (a
    /// one-broker cluster cannot hold three replicas of `__consumer_offsets`).
    pub fn for_brokers(brokers: usize) -> Self {
        let n = brokers.clamp(1, u16::MAX as usize) as u16;
        let d = Self::default();
        Self {
            default_replication_factor: d.default_replication_factor.min(n),
            min_insync_replicas: d.min_insync_replicas.min(n),
            offsets_topic_replication_factor: d.offsets_topic_replication_factor.min(n),
            transaction_state_log_replication_factor: d
                .transaction_state_log_replication_factor
                .min(n),
            transaction_state_log_min_isr: d.transaction_state_log_min_isr.min(n),
            ..d
        }
    }
}

/// One broker placed on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    /// The node it runs on.
    pub node: Node,
    /// `broker.id`.
    pub id: i32,
    /// ZooKeeper client addresses of its `zookeeper.connect`.
    pub zookeeper_connect: Vec<SocketAddr>,
}

impl Broker {
    /// Its service directory on the node.
    pub fn service(&self) -> Service {
        Service::new(ServiceKind::Kafka, &self.node.dir)
    }
    /// Its listener address.
    pub fn addr(&self, settings: &KafkaSettings) -> SocketAddr {
        SocketAddr::new(self.node.address, settings.port)
    }
}

/// Renders `server.properties`.
pub fn render_server_properties(
    settings: &KafkaSettings,
    broker: &Broker,
    log_dir: &Path,
) -> String {
    let s = settings;
    let addr = broker.addr(s);
    let connect: Vec<String> = broker
        .zookeeper_connect
        .iter()
        .map(|a| a.to_string())
        .collect();
    let mut out = String::from("# Written by splitbrain.\n");
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{k}={v}");
    };
    kv("broker.id", &broker.id);
    kv("listeners", &format!("PLAINTEXT://{addr}"));
    kv("advertised.listeners", &format!("PLAINTEXT://{addr}"));
    kv("log.dirs", &log_dir.display());
    kv("zookeeper.connect", &connect.join(","));
    kv(
        "zookeeper.session.timeout.ms",
        &s.zookeeper_session_timeout_ms,
    );
    kv(
        "zookeeper.connection.timeout.ms",
        &s.zookeeper_connection_timeout_ms,
    );
    write_shared_properties(s, &mut kv);
    out
}

/// Writes the settings every Kafka server of a cluster shares, in either
/// mode (replication defaults, small-machine thread counts, then
/// `extra`): KRaft's controllers get them too, since they, not the
/// brokers, apply topic defaults and elect partition leaders.
pub(crate) fn write_shared_properties(
    s: &KafkaSettings,
    kv: &mut dyn FnMut(&str, &dyn std::fmt::Display),
) {
    kv("default.replication.factor", &s.default_replication_factor);
    kv("num.partitions", &s.num_partitions);
    kv("min.insync.replicas", &s.min_insync_replicas);
    kv("unclean.leader.election.enable", &s.unclean_leader_election);
    kv("auto.create.topics.enable", &s.auto_create_topics);
    kv(
        "offsets.topic.replication.factor",
        &s.offsets_topic_replication_factor,
    );
    kv(
        "transaction.state.log.replication.factor",
        &s.transaction_state_log_replication_factor,
    );
    kv(
        "transaction.state.log.min.isr",
        &s.transaction_state_log_min_isr,
    );
    kv("replica.lag.time.max.ms", &s.replica_lag_time_max_ms);
    // Small-machine settings: fewer threads and internal partitions, no
    // start-up delay for consumer groups, a small log-cleaner buffer (its
    // 128 MiB default would take a third of the heap).
    kv("offsets.topic.num.partitions", &5);
    kv("transaction.state.log.num.partitions", &5);
    kv("group.initial.rebalance.delay.ms", &0);
    kv("num.network.threads", &2);
    kv("num.io.threads", &4);
    kv("background.threads", &4);
    kv("log.cleaner.threads", &1);
    kv("log.cleaner.dedupe.buffer.size", &8_388_608);
    kv("delete.topic.enable", &true);
    for (k, v) in &s.extra {
        kv(k, v);
    }
}

/// Renders the reload4j configuration: the broker's own log plus the
/// controller and state-change logs, which tell who was controller when.
pub fn render_log4j(log_dir: &Path) -> String {
    let d = log_dir.display();
    format!(
        "log4j.rootLogger=INFO, server\n\
log4j.appender.server=org.apache.log4j.FileAppender\n\
log4j.appender.server.File={d}/server.log\n\
log4j.appender.server.layout=org.apache.log4j.PatternLayout\n\
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n\n\
log4j.appender.controller=org.apache.log4j.FileAppender\n\
log4j.appender.controller.File={d}/controller.log\n\
log4j.appender.controller.layout=org.apache.log4j.PatternLayout\n\
log4j.appender.controller.layout.ConversionPattern=[%d] %p %m (%c)%n\n\
log4j.appender.state=org.apache.log4j.FileAppender\n\
log4j.appender.state.File={d}/state-change.log\n\
log4j.appender.state.layout=org.apache.log4j.PatternLayout\n\
log4j.appender.state.layout.ConversionPattern=[%d] %p %m (%c)%n\n\
log4j.logger.kafka.controller=INFO, controller\n\
log4j.additivity.kafka.controller=false\n\
log4j.logger.state.change.logger=INFO, state\n\
log4j.additivity.state.change.logger=false\n\
log4j.logger.org.apache.zookeeper=INFO\n\
log4j.logger.kafka.request.logger=WARN\n"
    )
}

/// JVM arguments that run the broker with the service's files.
pub fn java_args(svc: &Service, settings: &KafkaSettings, artifacts: &Artifacts) -> Vec<String> {
    let mut args = base_jvm_opts(settings.heap_mb);
    args.extend(settings.jvm_opts.iter().cloned());
    args.push(format!(
        "-Dlog4j.configuration=file:{}",
        svc.dir.join("log4j.properties").display()
    ));
    args.push(format!("-Dkafka.logs.dir={}", svc.log_dir().display()));
    args.push("-cp".into());
    args.push(artifacts.kafka_classpath());
    args.push("kafka.Kafka".into());
    args.push(svc.config_path().to_string_lossy().into_owned());
    args
}

/// Writes `server.properties`, `log4j.properties` and `run.sh` to the broker's node.
pub fn install(
    control: &Control,
    broker: &Broker,
    settings: &KafkaSettings,
    artifacts: &Artifacts,
) -> Result<(), ClusterError> {
    let svc = broker.service();
    let props = render_server_properties(settings, broker, &svc.data_dir());
    let log4j = render_log4j(&svc.log_dir());
    let run = svc.run_script(&artifacts.java, &java_args(&svc, settings, artifacts));
    let cmd = crate::db::service::write_files_cmd(&[
        (svc.config_path(), props, 0o644),
        (svc.dir.join("log4j.properties"), log4j, 0o644),
        (svc.run_script_path(), run, 0o755),
    ]);
    control.exec_ok(&broker.node.name, &cmd, crate::db::service::COMMAND_TIMEOUT)?;
    Ok(())
}

/// Broker ids registered in `/brokers/ids` as the server at `zk` sees them.
pub fn registered_brokers(zk: SocketAddr, timeout: Duration) -> Result<Vec<i32>, ClusterError> {
    let mut session = ZkSession::connect(zk, Duration::from_secs(10), timeout)?;
    let ids = session.get_children("/brokers/ids")?.unwrap_or_default();
    let _ = session.close();
    Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
}

/// Waits until every broker in `ids` is registered in `/brokers/ids` as
/// read from the ZooKeeper server at `zk`, polling every 200 ms.
pub fn wait_registered(zk: SocketAddr, ids: &[i32], timeout: Duration) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match registered_brokers(zk, Duration::from_millis(500)) {
            Ok(found) => {
                let missing: Vec<i32> =
                    ids.iter().copied().filter(|i| !found.contains(i)).collect();
                if missing.is_empty() {
                    return Ok(());
                }
                format!("registered {found:?}, missing {missing:?}")
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(ClusterError::NotReady {
                what: format!("brokers {ids:?} registered in /brokers/ids"),
                timeout,
                detail: last,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every broker in `brokers` answers a Metadata request
/// (its listener is open, which happens after it registers) naming a
/// controller and all of `brokers` as alive, polling every 200 ms.
pub fn wait_answering(
    brokers: &[Broker],
    settings: &KafkaSettings,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for b in brokers {
            match crate::probes::kafka_client::metadata(
                b.addr(settings),
                Some(&[]),
                Duration::from_millis(500),
            ) {
                Ok(m) => {
                    let alive: Vec<i32> = m.brokers.iter().map(|x| x.node_id).collect();
                    let missing: Vec<i32> = brokers
                        .iter()
                        .map(|x| x.id)
                        .filter(|i| !alive.contains(i))
                        .collect();
                    if m.controller.is_none() || !missing.is_empty() {
                        waiting.push(format!(
                            "broker {}: controller {:?}, does not list {missing:?} yet",
                            b.id, m.controller
                        ));
                    }
                }
                Err(e) => waiting.push(format!("broker {}: {e}", b.id)),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::NotReady {
                what: "brokers answering metadata requests".into(),
                timeout,
                detail: waiting.join("; "),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> Broker {
        Broker {
            node: Node {
                name: "n4".into(),
                address: "10.88.7.5".parse().unwrap(),
                host: None,
                port: 22,
                user: "root".into(),
                key_path: "/k".into(),
                known_hosts: "/kh".into(),
                dir: "/n/n4".into(),
            },
            id: 2,
            zookeeper_connect: vec![
                "10.88.7.2:2181".parse().unwrap(),
                "10.88.7.3:2181".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn server_properties_carry_identity_and_test_settings() {
        let p = render_server_properties(
            &KafkaSettings::default(),
            &broker(),
            Path::new("/n/n4/kafka/data"),
        );
        for line in [
            "broker.id=2",
            "listeners=PLAINTEXT://10.88.7.5:9092",
            "log.dirs=/n/n4/kafka/data",
            "zookeeper.connect=10.88.7.2:2181,10.88.7.3:2181",
            "zookeeper.session.timeout.ms=6000",
            "default.replication.factor=3",
            "min.insync.replicas=2",
            "unclean.leader.election.enable=false",
            "auto.create.topics.enable=false",
        ] {
            assert!(p.lines().any(|l| l == line), "missing {line} in\n{p}");
        }
    }

    #[test]
    fn settings_vary_and_extras_come_last() {
        let s = KafkaSettings {
            unclean_leader_election: true,
            min_insync_replicas: 1,
            zookeeper_session_timeout_ms: 3000,
            extra: vec![("num.io.threads".into(), "1".into())],
            ..KafkaSettings::default()
        };
        let p = render_server_properties(&s, &broker(), Path::new("/d"));
        assert!(p.contains("unclean.leader.election.enable=true\n"));
        assert!(p.contains("min.insync.replicas=1\n"));
        assert!(p.contains("zookeeper.session.timeout.ms=3000\n"));
        assert!(p.ends_with("num.io.threads=1\n"));
    }

    #[test]
    fn replication_is_capped_by_broker_count() {
        let s = KafkaSettings::for_brokers(1);
        assert_eq!(s.default_replication_factor, 1);
        assert_eq!(s.min_insync_replicas, 1);
        assert_eq!(s.offsets_topic_replication_factor, 1);
        assert_eq!(s.transaction_state_log_min_isr, 1);
        assert_eq!(KafkaSettings::for_brokers(5), KafkaSettings::default());
    }

    #[test]
    fn java_args_run_kafka_on_the_config() {
        let b = broker();
        let args = java_args(
            &b.service(),
            &KafkaSettings::default(),
            &Artifacts::at(Path::new("/c")),
        );
        assert!(args.contains(&"-Xmx384m".to_string()));
        assert!(
            args.contains(&"-Dlog4j.configuration=file:/n/n4/kafka/log4j.properties".to_string())
        );
        assert!(args.contains(&"/c/kafka/lib/*".to_string()));
        assert_eq!(args[args.len() - 1], "/n/n4/kafka/server.properties");
    }
}
