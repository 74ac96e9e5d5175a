//! A test's full configuration: what `splitbrain run` reads from a TOML test
//! file (every field optional, defaults below) and from its options, and
//! stores as `test.toml` in the run directory (with the seed actually used).

use crate::error::{Result, RunError};
use serde::{Deserialize, Serialize};
use splitbrain_checkers::catalog::{self, Severity};
use splitbrain_workloads::consumer::ConsumerMode;
use splitbrain_workloads::effects::CommitOrder;
use splitbrain_workloads::observer::ObserverConfig;
use splitbrain_workloads::queue::QueueOptions;
use splitbrain_workloads::txn::TxnOptions;

/// One test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestConfig {
    /// Test name: the store directory (`store/<name>/<timestamp>/`).
    pub name: String,
    /// Random seed for the fault schedule (and partition choices); 0 picks
    /// one from the clock, recorded in the stored test.toml.
    pub seed: u64,
    /// Seconds of load (the nemesis schedule runs during it). Heal, drain,
    /// DLQ replay and final read come after.
    pub time_limit: u64,
    /// Anomalies this test expects; the run passes when exactly these are
    /// found (see docs/results.md).
    pub expect: Vec<String>,
    /// Anomalies this test tolerates: they may or may not be found without
    /// failing it (see docs/running.md).
    pub tolerate: Vec<String>,
    /// Where the nodes come from.
    pub env: EnvConfig,
    /// How many servers of each kind.
    pub cluster: ClusterConfig,
    /// The Kafka settings under test.
    pub kafka: KafkaConfig,
    /// The queue workload.
    pub workload: WorkloadConfig,
    /// Faults and their schedule.
    pub nemesis: NemesisConfig,
    /// Examples per anomaly (lost-write, inconsistent-offsets, duplicate,
    /// G1a, split-brain, multiple-controllers) for which the servers'
    /// evidence is collected before the cluster goes down; 0: none.
    pub evidence: usize,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            name: "test".into(),
            seed: 0,
            time_limit: 60,
            expect: vec![],
            tolerate: vec![],
            env: EnvConfig::default(),
            cluster: ClusterConfig::default(),
            kafka: KafkaConfig::default(),
            workload: WorkloadConfig::default(),
            nemesis: NemesisConfig::default(),
            evidence: crate::evidence::DEFAULT_LIMIT,
        }
    }
}

/// Where the nodes come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvConfig {
    /// `netns` (network namespaces on this machine, created and removed by
    /// the run), `ssh` (hosts listed in `hosts`, set up and cleaned by the
    /// run), `docker` (containers on this machine's Docker engine, created
    /// and removed by the run) or `existing` (an environment made by
    /// `splitbrain env up`, named by `name`, left as it is).
    pub kind: String,
    /// Nodes to create (netns); 0: ZooKeeper + Kafka servers plus the
    /// newcomers a `rapid-add`/`safe-add` needs.
    pub nodes: usize,
    /// Hosts TOML file (kind `ssh`; format in docs/environments.md).
    pub hosts: Option<String>,
    /// Environment name (kind `existing`); for netns/ssh/docker a fresh
    /// name is derived from the test name.
    pub name: Option<String>,
    /// Kind `docker`: base image of the node image; default
    /// `$SPLITBRAIN_DOCKER_BASE`, else `debian:bookworm` (from a registry;
    /// without one, `splitbrain/bookworm-base`, made with debootstrap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_base: Option<String>,
    /// Kind `ssh`: install what a host lacks (Java 17+, iptables) with its
    /// package manager (apt-get or dnf; through `sudo -n` for a login user
    /// other than root) before the cluster starts. False (the default): a
    /// host that lacks them stops the run with an error naming the host,
    /// what is missing and this fix.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub install: bool,
    /// Kind `ssh`: the directory on every host the ZooKeeper and Kafka jars
    /// are uploaded to (absolute; default `/opt/splitbrain/artifacts`).
    /// Content-addressed: jars already there are not uploaded again, and
    /// the directory outlives the run so the next run reuses them
    /// (`splitbrain env down --purge-artifacts` removes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts_dir: Option<String>,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            kind: "netns".into(),
            nodes: 0,
            hosts: None,
            name: None,
            docker_base: None,
            install: false,
            artifacts_dir: None,
        }
    }
}

/// Servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// ZooKeeper servers.
    pub zookeeper: usize,
    /// Kafka brokers.
    pub kafka: usize,
    /// Brokers' `zookeeper.session.timeout.ms`.
    pub zk_session_timeout_ms: u32,
    /// Seconds to wait for servers to be ready.
    pub ready_timeout: u64,
    /// `zookeeper` (the default: Kafka on a ZooKeeper ensemble of
    /// `zookeeper` servers) or `kraft` (Kafka's own quorum of `controllers`
    /// dedicated controllers, no ZooKeeper).
    #[serde(skip_serializing_if = "ClusterConfig::is_zookeeper_mode")]
    pub mode: String,
    /// KRaft mode: number of controllers.
    #[serde(skip_serializing_if = "ClusterConfig::is_default_controllers")]
    pub controllers: usize,
    /// KRaft mode: `dynamic` (KIP-853, the default) or `static` voters.
    #[serde(skip_serializing_if = "ClusterConfig::is_dynamic_quorum")]
    pub quorum: String,
    /// ZooKeeper server i (KRaft: controller i) and broker i share node i,
    /// each with its own directory, pid file and ports; servers added by
    /// `rapid-add`/`safe-add` still take nodes of their own. Needs
    /// max(zookeeper, kafka) nodes instead of their sum; a partition of a
    /// node cuts both servers on it, so `partition:zk-from-kafka` cannot
    /// run (docs/environments.md, Colocated layout).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub colocate: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            zookeeper: 3,
            kafka: 3,
            zk_session_timeout_ms: 6000,
            ready_timeout: 90,
            mode: "zookeeper".into(),
            controllers: 3,
            quorum: "dynamic".into(),
            colocate: false,
        }
    }
}

// The KRaft fields are written only when set, so that configs (and the
// results that embed them) of ZooKeeper-mode runs read as before.
impl ClusterConfig {
    fn is_zookeeper_mode(mode: &str) -> bool {
        mode == "zookeeper"
    }
    fn is_default_controllers(n: &usize) -> bool {
        *n == 3
    }
    fn is_dynamic_quorum(q: &str) -> bool {
        q == "dynamic"
    }
    /// Whether the cluster runs in KRaft mode.
    pub fn is_kraft(&self) -> bool {
        self.mode == "kraft"
    }
    /// Servers of the metadata side: ZooKeeper servers, or KRaft controllers.
    pub fn metadata_servers(&self) -> usize {
        if self.is_kraft() {
            self.controllers
        } else {
            self.zookeeper
        }
    }
    /// Where the servers go: separate nodes, or colocated (`colocate`).
    pub fn placement(&self) -> splitbrain_environments::db::cluster::Placement {
        splitbrain_environments::db::cluster::Placement::from_colocate(self.colocate)
    }
    /// Nodes running the initial servers: metadata servers + brokers, or
    /// the larger of the two when colocated.
    pub fn server_nodes(&self) -> usize {
        self.placement()
            .nodes_needed(self.metadata_servers(), self.kafka)
    }
}

/// The Kafka settings under test (broker, topic and producer side).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Producer `acks` (`all`, `1`, `0`).
    pub acks: String,
    /// Producer `enable.idempotence`.
    pub idempotence: bool,
    /// Brokers' `min.insync.replicas`.
    pub min_insync_replicas: u16,
    /// Brokers' `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// The test topic's replication factor.
    pub replication_factor: i32,
    /// The test topic's partitions.
    pub partitions: i32,
}

impl Default for KafkaConfig {
    /// The client side (acks, idempotence, partitions) as the queue
    /// workload's defaults say; the broker side as the test's safe setup.
    fn default() -> Self {
        let queue = workload_defaults();
        KafkaConfig {
            acks: queue.producer.acks,
            idempotence: queue.producer.enable_idempotence,
            min_insync_replicas: 2,
            unclean_leader_election: false,
            replication_factor: 3,
            partitions: queue.partitions,
        }
    }
}

/// The queue workload's own defaults, the one source of the runner's.
fn workload_defaults() -> QueueOptions {
    QueueOptions::new(String::new(), std::path::PathBuf::new())
}

/// The queue workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Sends per second in all (0: as fast as possible).
    pub rate: f64,
    /// Producer clients.
    pub producers: usize,
    /// Concurrent senders sharing them.
    pub senders: usize,
    /// Consumers.
    pub consumers: usize,
    /// `group` (subscribe, rebalances) or `assign`.
    pub consumer_mode: String,
    /// Message payload bytes.
    pub payload: usize,
    /// Producer `message.timeout.ms`.
    pub message_timeout_ms: u64,
    /// Application-level attempts per message before it goes to the DLQ.
    pub max_attempts: u32,
    /// Seconds the drain and the final read may take at most.
    pub read_timeout: u64,
    /// Observer sampling interval, ms.
    pub observe_interval_ms: u64,
    /// Consumers write a dedup record with each effect and skip messages
    /// that have one (default true; `false` is a control that must show
    /// `effect-duplicate` under `crash:consumer`).
    pub dedup: bool,
    /// When consumers commit offsets: `after-apply` (default) or
    /// `before-apply` (a control that must show `effect-lost` under
    /// `crash:consumer`).
    pub commit: String,
    /// Under the fault `crash:consumer`: seconds between consumer crashes.
    pub crash_every: u64,
    /// Which workload: `queue` (default) or `txn` (transactions, topic
    /// `txn`; its own settings under `[workload.txn]`; `rate` is then
    /// transactions per second, `producers` the transactional producers,
    /// `consumers` the readers).
    pub kind: String,
    /// Settings of the `txn` workload only.
    pub txn: TxnWorkloadConfig,
}

/// Settings of the transactional workload (`workload.kind = "txn"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TxnWorkloadConfig {
    /// Fraction of transactions aborted on purpose, 0 to 1.
    pub abort_fraction: f64,
    /// Sends per transaction: 1 to this many.
    pub sends_per_txn: usize,
    /// Each transaction polls first and commits its offsets with the
    /// transaction (consume-transform-produce).
    pub consume_transform_produce: bool,
    /// Readers' `isolation.level`: `read_committed`, or `read_uncommitted`
    /// (a control that must show `G1a`).
    pub isolation_level: String,
    /// Producers' `transaction.timeout.ms`.
    pub transaction_timeout_ms: u64,
    /// Bound of one transactional call (init, commit, abort), seconds.
    pub call_timeout: u64,
}

impl Default for TxnWorkloadConfig {
    /// The txn workload's own defaults (`TxnOptions::new`).
    fn default() -> Self {
        let t = TxnOptions::new(String::new());
        TxnWorkloadConfig {
            abort_fraction: t.abort_fraction,
            sends_per_txn: t.sends_per_txn,
            consume_transform_produce: t.consume_transform_produce,
            isolation_level: t.isolation_level,
            transaction_timeout_ms: t.transaction_timeout_ms,
            call_timeout: t.txn_call_timeout.as_secs(),
        }
    }
}

impl Default for WorkloadConfig {
    /// The queue workload's defaults (`QueueOptions::new`, the producer
    /// settings, the backoff, the observer's interval), so that a test file
    /// and a direct use of the workload start from the same values.
    fn default() -> Self {
        let queue = workload_defaults();
        WorkloadConfig {
            rate: queue.rate,
            producers: queue.producers,
            senders: queue.senders,
            consumers: queue.consumers,
            consumer_mode: match queue.consumer_mode {
                ConsumerMode::Group => "group",
                ConsumerMode::Assign => "assign",
            }
            .into(),
            payload: queue.payload_size,
            message_timeout_ms: queue.producer.message_timeout_ms,
            max_attempts: queue.backoff.max_attempts,
            read_timeout: queue.drain_timeout.as_secs(),
            observe_interval_ms: ObserverConfig::default().interval.as_millis() as u64,
            dedup: queue.effects.dedup,
            commit: queue.effects.commit.as_str().into(),
            crash_every: 5,
            kind: "queue".into(),
            txn: TxnWorkloadConfig::default(),
        }
    }
}

/// Faults and their schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NemesisConfig {
    /// The mix, drawn from with the seed: `partition:<kind>` (kinds:
    /// halves, random-halves, isolate-one, majorities-ring, bridge,
    /// isolate-zk-leader, isolate-kafka-controller, zk-from-kafka),
    /// `kill:<zk|kafka>[:<one|minority|primary|all>]`, the same for
    /// `pause`, `rapid-add`, `safe-add`; and `crash:consumer` (consumers
    /// crash every `workload.crash_every` s during the whole load, apart
    /// from this schedule: the workload does it). Empty: no faults.
    pub faults: Vec<String>,
    /// Seconds of calm before each fault (the first one included).
    pub quiet: u64,
    /// Seconds each fault lasts before it is undone.
    pub duration: u64,
    /// Faults at most (0: as many as fit in the time limit).
    pub max_faults: usize,
    /// ZooKeeper servers `rapid-add`/`safe-add` start.
    pub add_count: usize,
    /// `rapid-add` moves one broker (the last) onto the new servers, as in
    /// the incident (how: docs/nemeses.md).
    pub move_broker: bool,
    /// Most faults active at once (1: one at a time). With N > 1 a fault
    /// may start `quiet` s after the previous one started while fewer than
    /// N hold (docs/nemeses.md, overlapping faults).
    pub concurrency: usize,
    /// An exact schedule to carry out instead of planning one from the
    /// fields above (what `run --replay` and `shrink` write: each fault
    /// with its times and pinned targets; docs/running.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<splitbrain_nemeses::Schedule>,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            faults: vec![],
            quiet: 10,
            duration: 20,
            max_faults: 0,
            add_count: 4,
            move_broker: true,
            concurrency: 1,
            schedule: None,
        }
    }
}

impl TestConfig {
    /// Partitions a colocated layout cannot make, refused before anything
    /// starts: `zk-from-kafka` (every broker shares a node with a ZooKeeper
    /// server or sits beside none) and `majorities-ring` on fewer than 4
    /// nodes running servers (every node's majority would be everybody).
    fn validate_colocated_faults(&self) -> std::result::Result<(), String> {
        use splitbrain_nemeses::{Fault, PartitionKind};
        if !self.cluster.colocate {
            return Ok(());
        }
        let Ok(faults) = super::faults::mix(self) else {
            return Ok(()); // reported by the fault check
        };
        for f in faults {
            match f {
                Fault::Partition {
                    kind: PartitionKind::ZkFromKafka,
                } => {
                    return Err(
                        "nemesis fault partition:zk-from-kafka cuts brokers off from \
                                ZooKeeper by node, which cluster.colocate = true rules out (they \
                                share nodes): remove it or set cluster.colocate = false"
                            .into(),
                    )
                }
                Fault::Partition {
                    kind: PartitionKind::MajoritiesRing,
                } if self.cluster.server_nodes() < 4 => {
                    return Err(format!(
                        "nemesis fault partition:majorities-ring needs at least 4 nodes running \
                         servers; colocated, {} ZooKeeper + {} Kafka run on {}: raise \
                         cluster.zookeeper or cluster.kafka, or set cluster.colocate = false",
                        self.cluster.metadata_servers(),
                        self.cluster.kafka,
                        self.cluster.server_nodes()
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Parses a TOML test file.
    pub fn from_toml(text: &str) -> Result<TestConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// As TOML (what the run stores).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Newcomer nodes a membership fault needs: the most servers any
    /// `rapid-add`/`safe-add` of the mix starts, in any spelling the fault
    /// grammar accepts (`rapid-add`, `rapid-add:4`, ...). A mix that does not
    /// parse needs none here; `validate` reports it.
    pub fn extra_nodes(&self) -> usize {
        super::faults::mix(self)
            .map(|faults| {
                faults
                    .iter()
                    .filter_map(|f| match f {
                        splitbrain_nemeses::Fault::AddZookeeper { count, .. }
                        | splitbrain_nemeses::Fault::AddControllers { count, .. } => Some(*count),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Nodes the environment needs.
    pub fn nodes_needed(&self) -> usize {
        if self.env.nodes > 0 {
            self.env.nodes
        } else {
            self.cluster.server_nodes() + self.extra_nodes()
        }
    }

    /// Checks what can be checked before touching anything.
    pub fn validate(&self) -> Result<()> {
        crate::store::validate_test_name(&self.name)?;
        self.validate_fields()
            .map_err(|reason| RunError::Config { reason })
    }

    fn validate_fields(&self) -> std::result::Result<(), String> {
        if !matches!(
            self.env.kind.as_str(),
            "netns" | "ssh" | "docker" | "existing"
        ) {
            return Err(format!(
                "env.kind {:?}: use netns, ssh, docker or existing",
                self.env.kind
            ));
        }
        if self.env.kind == "ssh" && self.env.hosts.is_none() {
            return Err("env.kind = \"ssh\" needs env.hosts (a hosts TOML file)".into());
        }
        if (self.env.install || self.env.artifacts_dir.is_some()) && self.env.kind != "ssh" {
            return Err(format!(
                "env.install and env.artifacts_dir are for env.kind = \"ssh\" (hosts splitbrain did not make), not {:?}",
                self.env.kind
            ));
        }
        if let Some(dir) = &self.env.artifacts_dir {
            if !dir.starts_with('/') || dir.trim_end_matches('/').is_empty() {
                return Err(format!(
                    "env.artifacts_dir {dir:?} must be an absolute path other than / (it is on the hosts)"
                ));
            }
        }
        if self.env.kind == "existing" && self.env.name.is_none() {
            return Err("env.kind = \"existing\" needs env.name".into());
        }
        if self.env.docker_base.is_some() && self.env.kind != "docker" {
            return Err(format!(
                "env.docker_base is for env.kind = \"docker\", not {:?}",
                self.env.kind
            ));
        }
        if !matches!(self.cluster.mode.as_str(), "zookeeper" | "kraft") {
            return Err(format!(
                "cluster.mode {:?}: use zookeeper or kraft",
                self.cluster.mode
            ));
        }
        if !matches!(self.cluster.quorum.as_str(), "dynamic" | "static") {
            return Err(format!(
                "cluster.quorum {:?}: use dynamic or static",
                self.cluster.quorum
            ));
        }
        if self.cluster.metadata_servers() == 0 || self.cluster.kafka == 0 {
            return Err(
                "cluster.zookeeper (cluster.controllers in KRaft mode) and cluster.kafka must each be at least 1"
                    .into(),
            );
        }
        if self.env.nodes > 0 && self.env.nodes < self.cluster.server_nodes() + self.extra_nodes() {
            return Err(format!(
                "env.nodes = {} is too few: {} {} + {} Kafka{} + {} newcomers",
                self.env.nodes,
                self.cluster.metadata_servers(),
                if self.cluster.is_kraft() {
                    "controllers"
                } else {
                    "ZooKeeper"
                },
                self.cluster.kafka,
                if self.cluster.colocate {
                    " (colocated: the larger count)"
                } else {
                    ""
                },
                self.extra_nodes()
            ));
        }
        self.validate_colocated_faults()?;
        if self.seed > i64::MAX as u64 {
            return Err(format!(
                "seed {} is too large: at most {}",
                self.seed,
                i64::MAX
            ));
        }
        if self.time_limit == 0 {
            return Err("time_limit must be at least 1 second".into());
        }
        if !matches!(self.workload.consumer_mode.as_str(), "group" | "assign") {
            return Err("workload.consumer_mode: use group or assign".into());
        }
        if !matches!(self.kafka.acks.as_str(), "all" | "-1" | "1" | "0") {
            return Err(format!("kafka.acks {:?}: use all, 1 or 0", self.kafka.acks));
        }
        if self.kafka.partitions < 1 || self.kafka.replication_factor < 1 {
            return Err("kafka.partitions and kafka.replication_factor must be at least 1".into());
        }
        if self.kafka.replication_factor as usize > self.cluster.kafka {
            return Err(format!(
                "kafka.replication_factor {} exceeds the {} brokers",
                self.kafka.replication_factor, self.cluster.kafka
            ));
        }
        for f in &self.nemesis.faults {
            if f != super::faults::CONSUMER_CRASH {
                super::faults::parse_fault(f, self.nemesis.add_count, None)
                    .map_err(|e| e.to_string())?;
            }
        }
        self.workload
            .commit
            .parse::<CommitOrder>()
            .map_err(|e| format!("workload.{e}"))?;
        if !matches!(self.workload.kind.as_str(), "queue" | "txn") {
            return Err(format!(
                "workload.kind {:?}: use queue or txn",
                self.workload.kind
            ));
        }
        if self.workload.kind == "txn" {
            let t = &self.workload.txn;
            if !(0.0..=1.0).contains(&t.abort_fraction) {
                return Err(format!(
                    "workload.txn.abort_fraction = {}: use a number from 0 to 1",
                    t.abort_fraction
                ));
            }
            if t.sends_per_txn == 0 || t.call_timeout == 0 || t.transaction_timeout_ms == 0 {
                return Err("workload.txn: sends_per_txn, call_timeout and \
                            transaction_timeout_ms must each be at least 1"
                    .into());
            }
            if !matches!(
                t.isolation_level.as_str(),
                "read_committed" | "read_uncommitted"
            ) {
                return Err(format!(
                    "workload.txn.isolation_level {:?}: use read_committed or read_uncommitted",
                    t.isolation_level
                ));
            }
            if !self.kafka.idempotence || !matches!(self.kafka.acks.as_str(), "all" | "-1") {
                return Err(
                    "workload.kind = \"txn\" needs kafka.idempotence = true and \
                            kafka.acks = \"all\" (transactions require both)"
                        .into(),
                );
            }
            if self
                .nemesis
                .faults
                .iter()
                .any(|f| f == super::faults::CONSUMER_CRASH)
            {
                return Err(format!(
                    "nemesis fault {:?} is for the queue workload's consumers; remove it for \
                     workload.kind = \"txn\"",
                    super::faults::CONSUMER_CRASH
                ));
            }
        }
        if self.workload.crash_every == 0 {
            return Err("workload.crash_every must be at least 1 second".into());
        }
        for name in self.expect.iter().chain(&self.tolerate) {
            // Informational findings never fail a run: nothing to expect.
            if !catalog::lookup(name).is_some_and(|a| a.severity == Severity::Anomaly) {
                let known: Vec<&str> = catalog::ANOMALIES
                    .iter()
                    .filter(|a| a.severity == Severity::Anomaly)
                    .map(|a| a.name)
                    .collect();
                return Err(format!(
                    "expect/tolerate: unknown anomaly {name:?}; known: {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcomer_nodes_follow_every_spelling_of_an_add() {
        let mut c = TestConfig::default();
        assert_eq!(c.extra_nodes(), 0);
        c.nemesis.faults = vec!["rapid-add".into()];
        assert_eq!(c.extra_nodes(), c.nemesis.add_count);
        c.nemesis.faults = vec!["kill:kafka".into(), "safe-add:2".into()];
        assert_eq!(c.extra_nodes(), 2);
        c.nemesis.faults = vec!["rapid-add:5:3".into()];
        assert_eq!(c.extra_nodes(), 5);
        c.nemesis.faults = vec!["partition:halves".into()];
        assert_eq!(c.extra_nodes(), 0);
        // KRaft controllers added by a membership fault need spare nodes too.
        c.nemesis.faults = vec!["rapid-add-controllers".into()];
        assert_eq!(c.extra_nodes(), c.nemesis.add_count);
        c.nemesis.faults = vec!["safe-add-controllers:3".into()];
        assert_eq!(c.extra_nodes(), 3);
    }

    #[test]
    fn ssh_preparation_fields_parse_validate_and_stay_out_of_default_configs() {
        let c = TestConfig::from_toml(
            "[env]\nkind = \"ssh\"\nhosts = \"h.toml\"\ninstall = true\nartifacts_dir = \"/srv/jars\"\n",
        )
        .unwrap();
        assert!(c.env.install);
        assert_eq!(c.env.artifacts_dir.as_deref(), Some("/srv/jars"));
        assert!(c.validate().is_ok());
        assert_eq!(TestConfig::from_toml(&c.to_toml()).unwrap(), c);
        // A config that does not set them reads as before.
        let text = TestConfig::default().to_toml();
        assert!(
            !text.contains("install") && !text.contains("artifacts_dir"),
            "{text}"
        );
        let mut bad = c.clone();
        bad.env.artifacts_dir = Some("jars".into());
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("absolute"), "{err}");
        let mut bad = c;
        bad.env.kind = "netns".into();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("env.install") && err.contains("ssh"), "{err}");
    }

    #[test]
    fn defaults_round_trip_and_validate() {
        let c = TestConfig::default();
        assert!(c.validate().is_ok());
        let back = TestConfig::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.nodes_needed(), 6);
        // The workload's defaults, as `splitbrain run` has always used them.
        assert_eq!((c.workload.senders, c.workload.rate), (8, 200.0));
        assert_eq!(c.workload.observe_interval_ms, 250);
        assert_eq!((c.kafka.acks.as_str(), c.kafka.idempotence), ("all", true));
    }

    #[test]
    fn partial_files_fill_defaults_and_typos_are_rejected() {
        let c = TestConfig::from_toml(
            "name = \"x\"\nexpect = [\"split-brain\"]\n[nemesis]\nfaults = [\"rapid-add\"]\n[kafka]\nacks = \"1\"\n",
        )
        .unwrap();
        assert_eq!(c.kafka.acks, "1");
        assert!(c.kafka.idempotence);
        assert_eq!(c.nodes_needed(), 10);
        assert!(c.validate().is_ok());
        assert!(TestConfig::from_toml("[kafka]\nack = \"1\"\n").is_err());
        let mut bad = c.clone();
        bad.expect = vec!["lost-writes".into()];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown anomaly"));
        let mut bad = c;
        bad.nemesis.faults = vec!["partition:nope".into()];
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_txn_workload_is_chosen_by_kind_and_its_settings_are_checked() {
        let c = TestConfig::from_toml(
            "[workload]\nkind = \"txn\"\n[workload.txn]\nabort_fraction = 0.5\n\
             isolation_level = \"read_uncommitted\"\n",
        )
        .unwrap();
        assert_eq!(c.workload.kind, "txn");
        assert_eq!(c.workload.txn.abort_fraction, 0.5);
        assert_eq!(c.workload.txn.sends_per_txn, 4);
        c.validate().unwrap();
        let back = TestConfig::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        // A default test is still the queue workload.
        assert_eq!(TestConfig::default().workload.kind, "queue");
        let reason = |c: &TestConfig| c.validate().unwrap_err().to_string();
        let mut bad = c.clone();
        bad.workload.kind = "bank".into();
        assert!(
            reason(&bad).contains("use queue or txn"),
            "{}",
            reason(&bad)
        );
        let mut bad = c.clone();
        bad.workload.txn.abort_fraction = -0.1;
        assert!(reason(&bad).contains("abort_fraction"));
        let mut bad = c.clone();
        bad.workload.txn.isolation_level = "serializable".into();
        assert!(reason(&bad).contains("isolation_level"));
        let mut bad = c.clone();
        bad.kafka.idempotence = false;
        assert!(reason(&bad).contains("idempotence"));
        let mut bad = c;
        bad.nemesis.faults = vec!["crash:consumer".into()];
        assert!(reason(&bad).contains("queue workload"));
        assert!(TestConfig::from_toml("[workload.txn]\nabort = 0.1\n").is_err());
    }

    #[test]
    fn colocation_is_opt_in_and_needs_the_larger_count_plus_newcomers() {
        let c = TestConfig::default();
        assert!(!c.cluster.colocate);
        assert!(!c.to_toml().contains("colocate"), "{}", c.to_toml());
        let k = TestConfig::from_toml(
            "name = \"k\"\n[cluster]\ncolocate = true\n[nemesis]\nfaults = [\"kill:kafka\", \"kill:zk\"]\n",
        )
        .unwrap();
        assert!(k.cluster.colocate);
        assert_eq!(k.nodes_needed(), 3);
        k.validate().unwrap();
        assert!(k.to_toml().contains("colocate = true"));
        assert_eq!(TestConfig::from_toml(&k.to_toml()).unwrap(), k);
        // The incident: 3 old nodes (ZooKeeper and brokers) + 4 newcomers.
        let mut incident = k.clone();
        incident.nemesis.faults = vec!["rapid-add".into()];
        assert_eq!(incident.nodes_needed(), 7);
        incident.cluster.colocate = false;
        assert_eq!(incident.nodes_needed(), 10);
        // More brokers than ZooKeeper servers: the brokers' count.
        let mut wide = k.clone();
        wide.cluster.kafka = 5;
        assert_eq!(wide.nodes_needed(), 5);
        // KRaft: controllers beside brokers.
        let mut kraft = k.clone();
        kraft.cluster.mode = "kraft".into();
        kraft.cluster.controllers = 3;
        assert_eq!(kraft.nodes_needed(), 3);
        kraft.validate().unwrap();
        // env.nodes is checked against the colocated count.
        let mut few = k.clone();
        few.env.nodes = 2;
        let reason = few.validate().unwrap_err().to_string();
        assert!(reason.contains("colocated"), "{reason}");
        few.env.nodes = 3;
        few.validate().unwrap();
    }

    #[test]
    fn colocation_refuses_partitions_it_cannot_make() {
        let mut c = TestConfig::default();
        c.cluster.colocate = true;
        let reason = |c: &TestConfig| c.validate().unwrap_err().to_string();
        c.nemesis.faults = vec!["partition:zk-from-kafka".into()];
        assert!(reason(&c).contains("zk-from-kafka"), "{}", reason(&c));
        c.nemesis.faults = vec!["partition:majorities-ring".into()];
        assert!(reason(&c).contains("at least 4 nodes"), "{}", reason(&c));
        // Five colocated nodes make a ring.
        c.cluster.zookeeper = 5;
        c.cluster.kafka = 5;
        c.validate().unwrap();
        // Kinds that work on shared nodes.
        c.nemesis.faults = vec![
            "partition:halves".into(),
            "partition:isolate-zk-leader".into(),
            "partition:isolate-kafka-controller".into(),
        ];
        c.validate().unwrap();
        // The same faults are fine on separate nodes.
        let mut s = TestConfig::default();
        s.nemesis.faults = vec![
            "partition:zk-from-kafka".into(),
            "partition:majorities-ring".into(),
        ];
        s.validate().unwrap();
    }

    #[test]
    fn kraft_mode_is_opt_in_and_zookeeper_configs_read_and_write_as_before() {
        let c = TestConfig::default();
        assert!(!c.cluster.is_kraft());
        assert!(!c.to_toml().contains("\nmode ="), "{}", c.to_toml());
        let k = TestConfig::from_toml(
            "name = \"k\"\n[cluster]\nmode = \"kraft\"\ncontrollers = 3\nkafka = 3\n",
        )
        .unwrap();
        assert!(k.cluster.is_kraft());
        assert_eq!(k.nodes_needed(), 6);
        assert!(k.validate().is_ok());
        assert!(k.to_toml().contains("mode = \"kraft\""));
        assert_eq!(TestConfig::from_toml(&k.to_toml()).unwrap(), k);
        let mut bad = k.clone();
        bad.cluster.mode = "raft".into();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("zookeeper or kraft"));
        let mut bad = k.clone();
        bad.cluster.quorum = "fixed".into();
        assert!(bad.validate().is_err());
        let mut bad = k;
        bad.cluster.controllers = 0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn docker_is_an_environment_kind_and_takes_a_base_image() {
        let c = TestConfig::from_toml(
            "[env]\nkind = \"docker\"\ndocker_base = \"splitbrain/bookworm-base\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.env.docker_base.as_deref(),
            Some("splitbrain/bookworm-base")
        );
        assert_eq!(TestConfig::from_toml(&c.to_toml()).unwrap(), c);
        // Unset, it is not written: configs of other kinds read as before.
        assert!(!TestConfig::default().to_toml().contains("docker_base"));
        let other = TestConfig::from_toml("[env]\ndocker_base = \"x\"\n").unwrap();
        let err = other.validate().unwrap_err().to_string();
        assert!(err.contains("docker_base"), "{err}");
        let unknown = TestConfig::from_toml("[env]\nkind = \"kubernetes\"\n").unwrap();
        let err = unknown.validate().unwrap_err().to_string();
        assert!(err.contains("docker"), "{err}");
    }
}
