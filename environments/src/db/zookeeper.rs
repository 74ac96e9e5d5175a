//! ZooKeeper on a node: its configuration (`zoo.cfg`, `myid`, logging) and
//! how to install and start it over SSH. Rendering is pure; the lifecycle
//! functions run [`Service`] commands through [`Control`].

use crate::db::artifacts::Artifacts;
use crate::db::service::{Service, ServiceKind};
use crate::db::ClusterError;
use crate::probes::zk_client;
use crate::probes::ProbeError;
use serde::{Deserialize, Serialize};
use splitbrain_core::cluster::ZkMode;
use splitbrain_core::control::{Control, Node};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether a server votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZkRole {
    /// Votes in elections and counts towards quorums.
    Participant,
    /// Receives the leader's updates but does not vote.
    Observer,
}

impl ZkRole {
    /// The word used in `server.N=` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ZkRole::Participant => "participant",
            ZkRole::Observer => "observer",
        }
    }
}

/// One `server.N=` line of a configuration: a server as some server's
/// config lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZkMember {
    /// `N`, equal to that server's `myid`.
    pub id: u64,
    /// Its address.
    pub address: IpAddr,
    /// Participant or observer.
    pub role: ZkRole,
}

/// Settings of every ZooKeeper server of a cluster. [`Default`] gives short
/// timeouts for fast tests and small heaps for a 2-core machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZkSettings {
    /// `tickTime` in ms: the unit of every other ZooKeeper timeout.
    pub tick_time_ms: u32,
    /// `initLimit` in ticks: how long a follower may take to sync with a new leader.
    pub init_limit: u32,
    /// `syncLimit` in ticks: how far a follower may lag before it is dropped.
    pub sync_limit: u32,
    /// `maxSessionTimeout` in ms. Default 60 s, so that Kafka's
    /// `zookeeper.session.timeout.ms` decides (ZooKeeper would otherwise cap
    /// it at 20 ticks).
    pub max_session_timeout_ms: u32,
    /// Client port.
    pub client_port: u16,
    /// Quorum (follower-to-leader) port.
    pub quorum_port: u16,
    /// Leader election port.
    pub election_port: u16,
    /// `reconfigEnabled`: dynamic reconfiguration (`reconfig`); false by default,
    /// as in ZooKeeper. The safe way to add servers needs it.
    pub reconfig_enabled: bool,
    /// `standaloneEnabled`: false lets a one-server ensemble grow by reconfig.
    pub standalone_enabled: bool,
    /// JVM heap (`-Xmx`) in MiB.
    pub heap_mb: u32,
    /// Extra JVM options, appended after splitbrain's.
    pub jvm_opts: Vec<String>,
    /// Extra `key=value` lines appended to `zoo.cfg`.
    pub extra: Vec<(String, String)>,
}

impl Default for ZkSettings {
    fn default() -> Self {
        Self {
            tick_time_ms: 250,
            init_limit: 20,
            sync_limit: 10,
            max_session_timeout_ms: 60_000,
            client_port: 2181,
            quorum_port: 2888,
            election_port: 3888,
            reconfig_enabled: false,
            standalone_enabled: true,
            heap_mb: 128,
            jvm_opts: Vec::new(),
            extra: Vec::new(),
        }
    }
}

/// JVM options both servers share: small footprint and fast start-up matter
/// more here than peak throughput (2 cores, many JVMs).
pub fn base_jvm_opts(heap_mb: u32) -> Vec<String> {
    vec![
        format!("-Xmx{heap_mb}m"),
        "-Xms32m".into(),
        "-XX:+UseSerialGC".into(),
        "-XX:TieredStopAtLevel=1".into(),
        "-XX:-UsePerfData".into(),
        "-Xss512k".into(),
        "-Djava.net.preferIPv4Stack=true".into(),
        "-Djava.awt.headless=true".into(),
    ]
}

/// Renders `zoo.cfg` for server `me` whose config lists `members`.
pub fn render_zoo_cfg(
    settings: &ZkSettings,
    me: &ZkMember,
    members: &[ZkMember],
    data_dir: &Path,
) -> String {
    let s = settings;
    let mut out = String::from("# Written by splitbrain.\n");
    let _ = writeln!(out, "tickTime={}", s.tick_time_ms);
    let _ = writeln!(out, "initLimit={}", s.init_limit);
    let _ = writeln!(out, "syncLimit={}", s.sync_limit);
    let _ = writeln!(out, "maxSessionTimeout={}", s.max_session_timeout_ms);
    let _ = writeln!(out, "dataDir={}", data_dir.display());
    let _ = writeln!(out, "clientPort={}", s.client_port);
    let _ = writeln!(out, "clientPortAddress={}", me.address);
    // The observer and the workloads open many connections from one address.
    out.push_str("maxClientCnxns=0\n");
    out.push_str("4lw.commands.whitelist=*\n");
    out.push_str("admin.enableServer=false\n");
    // Transaction logs are pre-allocated in 64 MiB steps by default; tests
    // write little, and many servers share one disk.
    out.push_str("preAllocSize=1024\n");
    let _ = writeln!(out, "reconfigEnabled={}", s.reconfig_enabled);
    let _ = writeln!(out, "standaloneEnabled={}", s.standalone_enabled);
    for (k, v) in &s.extra {
        let _ = writeln!(out, "{k}={v}");
    }
    for m in members {
        let _ = writeln!(out, "{}", member_line(s, m));
    }
    out
}

/// `server.N=addr:quorum:election:role;addr:client`, as in `zoo.cfg` and
/// as `reconfig -add` takes it.
pub fn member_line(settings: &ZkSettings, m: &ZkMember) -> String {
    format!(
        "server.{id}={addr}:{qp}:{ep}:{role};{addr}:{cp}",
        id = m.id,
        addr = m.address,
        qp = settings.quorum_port,
        ep = settings.election_port,
        role = m.role.as_str(),
        cp = settings.client_port,
    )
}

impl ZkSettings {
    /// Defaults plus what dynamic reconfiguration (the safe way to add
    /// servers) needs: `reconfigEnabled=true`, and `skipACL=yes` so that
    /// `reconfig` needs no super-user credentials (test clusters only).
    pub fn with_reconfig() -> Self {
        Self {
            reconfig_enabled: true,
            extra: vec![("skipACL".into(), "yes".into())],
            ..Self::default()
        }
    }
}

/// Shell command running ZooKeeper's own CLI (`ZooKeeperMain`) against the
/// server at `server`: `reconfig -add <lines> -remove <ids>`. Prints the new
/// configuration on success.
pub fn reconfig_cmd(
    artifacts: &Artifacts,
    settings: &ZkSettings,
    server: SocketAddr,
    add: &[ZkMember],
    remove: &[u64],
) -> String {
    let q = crate::db::service::sh_quote;
    let mut cmd = format!(
        "{} -Xmx64m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp {} org.apache.zookeeper.ZooKeeperMain -server {} reconfig",
        q(&artifacts.java),
        q(&artifacts.zookeeper_classpath()),
        server
    );
    if !add.is_empty() {
        let lines: Vec<String> = add.iter().map(|m| member_line(settings, m)).collect();
        cmd.push_str(&format!(" -add {}", q(&lines.join(","))));
    }
    if !remove.is_empty() {
        let ids: Vec<String> = remove.iter().map(u64::to_string).collect();
        cmd.push_str(&format!(" -remove {}", ids.join(",")));
    }
    // ZooKeeperMain exits 0 even when the command fails: judge by output.
    format!("out=$({cmd} 2>&1); echo \"$out\" | grep -v ' INFO \\| WARN ' ; echo \"$out\" | grep -q '^version=' || exit 1")
}

/// Runs `reconfig` on the running ensemble (dynamic reconfiguration, the
/// documented safe way to change membership; needs
/// [`ZkSettings::with_reconfig`]) through the server `via`, using the
/// ZooKeeper CLI on that server's node. Returns the CLI's output (the new
/// configuration).
pub fn reconfig(
    control: &Control,
    via: &ZkServer,
    settings: &ZkSettings,
    artifacts: &Artifacts,
    add: &[ZkMember],
    remove: &[u64],
) -> Result<String, ClusterError> {
    let cmd = reconfig_cmd(artifacts, settings, via.client_addr(settings), add, remove);
    let out = control.exec_ok(&via.node.name, &cmd, Duration::from_secs(60))?;
    Ok(out.stdout)
}

/// Renders the logback configuration: one rolling-free file per server (a
/// test run is short), at INFO.
pub fn render_logback(log_dir: &Path) -> String {
    format!(
        r#"<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{}/zookeeper.log</file>
    <encoder><pattern>%d{{ISO8601}} [myid:%X{{myid}}] %-5level [%thread] %logger{{0}} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"#,
        log_dir.display()
    )
}

/// JVM arguments that run ZooKeeper with the service's files.
pub fn java_args(svc: &Service, settings: &ZkSettings, artifacts: &Artifacts) -> Vec<String> {
    let mut args = base_jvm_opts(settings.heap_mb);
    args.extend(settings.jvm_opts.iter().cloned());
    args.push(format!(
        "-Dlogback.configurationFile={}",
        svc.dir.join("logback.xml").display()
    ));
    args.push(format!("-Dzookeeper.log.dir={}", svc.log_dir().display()));
    args.push("-cp".into());
    args.push(artifacts.zookeeper_classpath());
    args.push("org.apache.zookeeper.server.quorum.QuorumPeerMain".into());
    args.push(svc.config_path().to_string_lossy().into_owned());
    args
}

/// One ZooKeeper server placed on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZkServer {
    /// The node it runs on.
    pub node: Node,
    /// Its `myid`.
    pub id: u64,
    /// How it runs in its own configuration.
    pub role: ZkRole,
    /// The server list of its `zoo.cfg` (itself included). Servers of one
    /// healthy ensemble share it; after a rapid add the newcomers' lists
    /// differ from the old servers'.
    pub config_members: Vec<ZkMember>,
}

impl ZkServer {
    /// Its service directory on the node.
    pub fn service(&self) -> Service {
        Service::new(ServiceKind::Zookeeper, &self.node.dir)
    }
    /// This server as a `server.N=` line.
    pub fn member(&self) -> ZkMember {
        ZkMember {
            id: self.id,
            address: self.node.address,
            role: self.role,
        }
    }
    /// Address of its client port.
    pub fn client_addr(&self, settings: &ZkSettings) -> SocketAddr {
        SocketAddr::new(self.node.address, settings.client_port)
    }
}

/// Writes `zoo.cfg`, `myid`, `logback.xml` and `run.sh` to the server's node.
pub fn install(
    control: &Control,
    server: &ZkServer,
    settings: &ZkSettings,
    artifacts: &Artifacts,
) -> Result<(), ClusterError> {
    let svc = server.service();
    let cfg = render_zoo_cfg(
        settings,
        &server.member(),
        &server.config_members,
        &svc.data_dir(),
    );
    let logback = render_logback(&svc.log_dir());
    let run = svc.run_script(&artifacts.java, &java_args(&svc, settings, artifacts));
    let cmd = crate::db::service::write_files_cmd(&[
        (svc.config_path(), cfg, 0o644),
        (
            svc.data_dir().join("myid"),
            format!("{}\n", server.id),
            0o644,
        ),
        (svc.dir.join("logback.xml"), logback, 0o644),
        (svc.run_script_path(), run, 0o755),
    ]);
    control.exec_ok(&server.node.name, &cmd, crate::db::service::COMMAND_TIMEOUT)?;
    Ok(())
}

/// What [`srvr`](zk_client::parse_srvr) says, or why it could not be asked.
pub fn mode(addr: SocketAddr, timeout: Duration) -> Result<ZkMode, ProbeError> {
    let text = zk_client::four_letter_word(addr, "srvr", timeout)?;
    zk_client::parse_srvr(&text)
        .map(|s| s.mode)
        .map_err(|source| ProbeError::Malformed { addr, source })
}

/// Waits until every server in `servers` serves as leader, follower or
/// observer (or standalone), polling `srvr` every 100 ms, for at most `timeout`.
pub fn wait_serving(
    servers: &[ZkServer],
    settings: &ZkSettings,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for server in servers {
            match mode(server.client_addr(settings), Duration::from_millis(300)) {
                Ok(ZkMode::Leader | ZkMode::Follower | ZkMode::Observer | ZkMode::Standalone) => {}
                Ok(m) => waiting.push(format!("{} (id {}): {m:?}", server.node.name, server.id)),
                Err(e) => waiting.push(format!("{} (id {}): {e}", server.node.name, server.id)),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::NotReady {
                what: "ZooKeeper servers serving".into(),
                timeout,
                detail: waiting.join("; "),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u64) -> Vec<ZkMember> {
        (1..=n)
            .map(|id| ZkMember {
                id,
                address: format!("10.88.7.{}", id + 1).parse().unwrap(),
                role: ZkRole::Participant,
            })
            .collect()
    }

    #[test]
    fn zoo_cfg_lists_every_member_with_role_and_client_address() {
        let ms = members(3);
        let cfg = render_zoo_cfg(&ZkSettings::default(), &ms[1], &ms, Path::new("/d/zk/data"));
        assert!(cfg.contains("server.1=10.88.7.2:2888:3888:participant;10.88.7.2:2181\n"));
        assert!(cfg.contains("server.3=10.88.7.4:2888:3888:participant;10.88.7.4:2181\n"));
        assert!(cfg.contains("clientPortAddress=10.88.7.3\n"));
        assert!(cfg.contains("dataDir=/d/zk/data\n"));
        assert!(cfg.contains("4lw.commands.whitelist=*\n"));
        assert!(cfg.contains("admin.enableServer=false\n"));
        assert!(cfg.contains("reconfigEnabled=false\n"));
        assert!(cfg.contains("tickTime=250\n"));
    }

    #[test]
    fn zoo_cfg_follows_settings() {
        let mut ms = members(4);
        ms[3].role = ZkRole::Observer;
        let settings = ZkSettings {
            tick_time_ms: 100,
            reconfig_enabled: true,
            standalone_enabled: false,
            client_port: 12181,
            extra: vec![("snapCount".into(), "1000".into())],
            ..ZkSettings::default()
        };
        let cfg = render_zoo_cfg(&settings, &ms[3], &ms, Path::new("/d"));
        assert!(cfg.contains("tickTime=100\n"));
        assert!(cfg.contains("reconfigEnabled=true\n"));
        assert!(cfg.contains("standaloneEnabled=false\n"));
        assert!(cfg.contains("snapCount=1000\n"));
        assert!(cfg.contains("server.4=10.88.7.5:2888:3888:observer;10.88.7.5:12181\n"));
        assert!(cfg.contains("clientPort=12181\n"));
    }

    #[test]
    fn reconfig_command_adds_and_removes() {
        let ms = members(4);
        let art = Artifacts::at(Path::new("/cache"));
        let settings = ZkSettings::with_reconfig();
        let cmd = reconfig_cmd(
            &art,
            &settings,
            "10.88.7.2:2181".parse().unwrap(),
            &ms[3..],
            &[2],
        );
        assert!(cmd.contains("org.apache.zookeeper.ZooKeeperMain -server 10.88.7.2:2181 reconfig"));
        assert!(cmd.contains("-add 'server.4=10.88.7.5:2888:3888:participant;10.88.7.5:2181'"));
        assert!(cmd.contains("-remove 2"));
        let cfg = render_zoo_cfg(&settings, &ms[0], &ms, Path::new("/d"));
        assert!(cfg.contains("reconfigEnabled=true\n") && cfg.contains("skipACL=yes\n"));
    }

    #[test]
    fn java_args_run_quorum_peer_main_on_the_config() {
        let svc = Service::new(ServiceKind::Zookeeper, Path::new("/n/n1"));
        let art = Artifacts::at(Path::new("/cache"));
        let args = java_args(&svc, &ZkSettings::default(), &art);
        assert!(args.contains(&"-Xmx128m".to_string()));
        assert!(args.contains(&"/cache/zookeeper/lib/*".to_string()));
        let n = args.len();
        assert_eq!(
            args[n - 2],
            "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        );
        assert_eq!(args[n - 1], "/n/n1/zookeeper/zoo.cfg");
    }

    #[test]
    fn logback_writes_into_the_log_dir() {
        let x = render_logback(Path::new("/n/n1/zookeeper/logs"));
        assert!(x.contains("<file>/n/n1/zookeeper/logs/zookeeper.log</file>"));
    }
}
