//! The ssh environment against real sshd hosts: the nodes of a netns
//! environment. Needs root.

use splitbrain_core::control::{Control, Session};
use splitbrain_core::firewall::{self, Block};
use splitbrain_environments::db::artifacts::Artifacts;
use splitbrain_environments::db::prepare::{self, PrepareOptions};
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_environments::nodes::ssh;
use splitbrain_environments::{EnvKind, EnvState};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn ssh_env_checks_hosts_and_down_removes_only_its_own_things() {
    let netns = TestEnv::up("ssh_env", 2);
    let work = tempfile::tempdir().unwrap();
    let hosts = work.path().join("hosts.toml");
    std::fs::write(&hosts, netns.hosts_toml(|n| work.path().join(n))).unwrap();
    let name = format!("t-ssh-{}", std::process::id());

    let state = ssh::up(&name, &hosts, T).unwrap();
    assert_eq!(state.kind, EnvKind::Ssh);
    assert_eq!(EnvState::load(&name).unwrap(), state);
    assert!(state.shared.is_none());
    let n1_dir = work.path().join("n1");
    assert!(n1_dir.join(ssh::MARKER).exists());

    // What a cluster would leave behind: a process with a pid file under the
    // node dir, and a partition.
    let control = Control::connect(&state.nodes, T).unwrap();
    let pid_file = n1_dir.join("run/server.pid");
    let out = control
        .exec_ok(
            "n1",
            &format!(
                "nohup sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {}; cat {}",
                pid_file.display(),
                pid_file.display()
            ),
            T,
        )
        .unwrap();
    let pid: i32 = out.stdout.trim().parse().unwrap();
    let n2 = state.node("n2").unwrap().address;
    control
        .on("n1", move |s| {
            firewall::set_blocked(s, &[Block::both(n2)], T)
        })
        .unwrap();
    // Something splitbrain did not create, in the same namespace: must stay.
    control
        .exec_ok(
            "n1",
            "iptables -w -N NOT-OURS && iptables -w -A INPUT -p udp --dport 9 -j ACCEPT",
            T,
        )
        .unwrap();
    // n2's directory lost its marker: down must not delete it.
    let n2_dir = work.path().join("n2");
    std::fs::remove_file(n2_dir.join(ssh::MARKER)).unwrap();
    drop(control);

    ssh::down(&name, T).unwrap();
    assert!(!n1_dir.exists(), "marked node dir not removed");
    assert!(n2_dir.exists(), "unmarked node dir was removed");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} survived"
    );
    assert!(EnvState::try_load(&name).unwrap().is_none(), "state kept");

    // The hosts themselves are untouched and still answer.
    let mut s = Session::connect(netns.node("n1"), T).unwrap();
    let rules = s.exec_ok("iptables -w -S", T).unwrap().stdout;
    assert!(!rules.contains("SPLITBRAIN"), "chain left: {rules}");
    assert!(
        rules.contains("-N NOT-OURS"),
        "removed a chain it did not create: {rules}"
    );
    assert!(
        rules.contains("--dport 9"),
        "removed a rule it did not create: {rules}"
    );
    assert_eq!(s.exec_ok("hostname", T).unwrap().stdout.trim(), "n1");
}

#[test]
fn ssh_env_up_fails_clearly_on_unreachable_or_unknown_hosts() {
    let netns = TestEnv::up("ssh_env_bad", 1);
    let work = tempfile::tempdir().unwrap();
    let node = netns.node("n1");

    // A known_hosts file without the host: refused, nothing recorded.
    let empty = work.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let hosts = work.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        format!(
            "[[nodes]]\nname = \"n1\"\naddress = \"{}\"\nkey_path = \"{}\"\nknown_hosts = \"{}\"\ndir = \"{}\"\n",
            node.address,
            node.key_path.display(),
            empty.display(),
            work.path().join("n1").display()
        ),
    )
    .unwrap();
    let name = format!("t-sshbad-{}", std::process::id());
    let err = ssh::up(&name, &hosts, Duration::from_secs(3)).unwrap_err();
    assert!(err.to_string().contains("host key not found"), "{err}");
    assert!(EnvState::try_load(&name).unwrap().is_none());

    // An address where nothing listens (inside this env's subnet).
    let unused = format!("10.88.{}.200", netns.subnet().0);
    std::fs::write(
        &hosts,
        format!(
            "[[nodes]]\nname = \"n9\"\naddress = \"{unused}\"\nkey_path = \"{}\"\nknown_hosts = \"{}\"\n",
            node.key_path.display(),
            node.known_hosts.display()
        ),
    )
    .unwrap();
    let err = ssh::up(&name, &hosts, Duration::from_secs(2)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("n9") && text.contains("connect"), "{text}");
    assert!(EnvState::try_load(&name).unwrap().is_none());
}

#[test]
fn ssh_env_down_with_unreachable_hosts_keeps_state_and_says_so() {
    let netns = TestEnv::up("ssh_env_gone", 1);
    let work = tempfile::tempdir().unwrap();
    let hosts = work.path().join("hosts.toml");
    std::fs::write(&hosts, netns.hosts_toml(|n| work.path().join(n))).unwrap();
    let name = format!("t-sshgone-{}", std::process::id());
    let state = ssh::up(&name, &hosts, T).unwrap();
    assert!(state.control(T).is_ok());
    // The hosts disappear.
    drop(netns);
    let err = ssh::down(&name, Duration::from_secs(2)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("n1") && text.contains("re-run"), "{text}");
    // The state is kept so `down` can be re-run later; remove it by hand here.
    let state = EnvState::load(&name).unwrap();
    std::fs::remove_dir_all(state.dir()).unwrap();
}

/// Removes the ssh environment (its state and what it put on the hosts,
/// jars included) if the test fails half-way.
struct DownOnDrop(String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if EnvState::try_load(&self.0).ok().flatten().is_some() {
            let _ = ssh::down_purging(&self.0, T, true);
        }
    }
}

fn options(store: &Path, hashes: &Path) -> PrepareOptions {
    let mut opts = PrepareOptions::new(&Artifacts::cache_dir());
    // netns nodes share this machine's file system: a store under the
    // test's temporary directory, never /opt/splitbrain of the machine.
    opts.artifacts_dir = store.to_path_buf();
    opts.hash_cache = Some(hashes.to_path_buf());
    opts
}

/// Preparation against real sshd hosts: the first uploads every jar (in
/// parallel to both nodes) into a content-addressed store, the second
/// uploads nothing; the servers' class path (the recorded tree) runs Kafka's
/// and ZooKeeper's own classes on a node; a java that is not there is a
/// clear error naming the node and the fix; `env down` removes the node
/// directories and the parents `up` made, keeps the store for the next
/// environment (which uploads nothing either) and purges it on request.
#[test]
fn ssh_prepare_uploads_jars_once_and_down_removes_what_up_made() {
    let netns = TestEnv::up("ssh_prepare", 2);
    let work = tempfile::tempdir().unwrap();
    let hosts = work.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        netns.hosts_toml(|n| work.path().join(n).join("a/b")),
    )
    .unwrap();
    let store = work.path().join("jars/store");
    let hashes = work.path().join("hashes.json");
    let name = format!("t-sshprep-{}", std::process::id());
    let _down = DownOnDrop(name.clone());

    let mut state = ssh::up(&name, &hosts, T).unwrap();
    let marker = work.path().join("n1/a/b").join(ssh::MARKER);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        format!("top={}", work.path().join("n1").display())
    );

    let opts = options(&store, &hashes);
    // Ctrl-C before it starts: each node stops before its first upload.
    let pressed = std::sync::atomic::AtomicBool::new(true);
    let err = prepare::prepare(&mut state, &opts, &mut |_| {}, Some(&pressed))
        .unwrap_err()
        .to_string();
    assert!(err.contains("n1: interrupted before uploading"), "{err}");
    assert_eq!(std::fs::read_dir(store.join("blobs")).unwrap().count(), 0);
    let mut lines = Vec::new();
    let first =
        prepare::prepare(&mut state, &opts, &mut |l| lines.push(l.to_string()), None).unwrap();
    let manifest = prepare::manifest(&opts.cache, None).unwrap();
    let blobs = manifest.blobs().len();
    println!(
        "first prepare: {:.2}s, {} bytes uploaded to 2 nodes ({} blobs each), hashing {:.2}s",
        first.seconds,
        first.bytes_uploaded(),
        blobs,
        first.hash_seconds
    );
    assert_eq!(first.nodes.len(), 2);
    assert!(first
        .nodes
        .iter()
        .all(|n| n.java_version >= prepare::MIN_JAVA));
    assert!(first.nodes.iter().all(|n| !n.java_installed));
    // Both nodes listed the empty store before either uploaded, so each
    // uploaded every blob (the same files: they share this file system).
    let distinct: u64 = manifest.blobs().values().map(|j| j.size).sum();
    for n in &first.nodes {
        assert_eq!((n.jars_uploaded, n.jars_present), (blobs, 0), "{n:?}");
        assert_eq!(n.bytes_uploaded, distinct);
    }
    assert!(
        lines.iter().any(|l| l.contains("uploading jars: 0/")),
        "no progress line: {lines:?}"
    );
    // The store was made by the interrupted preparation above; its marker
    // names the directory made for it, for --purge-artifacts.
    assert_eq!(first.nodes[0].dir_created, None);
    assert_eq!(
        std::fs::read_to_string(store.join(prepare::ARTIFACTS_MARKER))
            .unwrap()
            .trim(),
        format!("top={}", work.path().join("jars").display())
    );
    for sha in manifest.blobs().keys() {
        assert!(
            store.join("blobs").join(sha).is_file(),
            "blob {sha} missing"
        );
    }
    // Where every command finds the jars from now on.
    let artifacts = Artifacts::for_env(&EnvState::load(&name).unwrap()).unwrap();
    assert_eq!(artifacts.root, prepare::tree_dir(&store, &manifest.tree));
    assert!(artifacts.on_nodes);
    // Here the hosts share this file system, so the tree can be looked at.
    Artifacts::at(&artifacts.root).check().unwrap();
    let control = Control::connect(&state.nodes, T).unwrap();
    let out = control
        .exec_ok(
            "n1",
            &format!(
                "java -cp '{}' kafka.Kafka --version; java -cp '{}' org.apache.zookeeper.version.VersionInfoMain",
                artifacts.kafka_classpath(),
                artifacts.zookeeper_classpath()
            ),
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(out.stdout.contains("3.9"), "{out:?}");
    assert!(out.stdout.contains("3.8"), "{out:?}");
    // cluster up checks the tree on the nodes, and names those without it.
    artifacts.check_where_used(&control).unwrap();
    let gone = Artifacts::on_nodes(&store.join("trees/0000000000000000"), "java");
    let err = gone.check_where_used(&control).unwrap_err().to_string();
    assert!(err.contains("not in") && err.contains("n1, n2"), "{err}");
    drop(control);

    let second = prepare::prepare(&mut state, &opts, &mut |_| {}, None).unwrap();
    println!(
        "second prepare: {:.2}s, {} bytes uploaded, hashing {:.3}s (cached)",
        second.seconds,
        second.bytes_uploaded(),
        second.hash_seconds
    );
    assert_eq!(second.bytes_uploaded(), 0);
    for n in &second.nodes {
        assert_eq!((n.jars_uploaded, n.jars_present), (0, blobs), "{n:?}");
        assert!(!n.tree_made);
    }
    assert!(second.seconds < first.seconds, "{second:?} vs {first:?}");

    // No java there: a clear error naming the node, what is missing and the fix.
    let mut no_java = opts.clone();
    no_java.java = "/nonexistent/bin/java".into();
    let err = prepare::prepare(&mut state, &no_java, &mut |_| {}, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("n1 (") && err.contains("n2 ("), "{err}");
    assert!(err.contains("missing Java 17+"), "{err}");
    assert!(err.contains("env.install = true"), "{err}");

    // down: node directories and the parents up made go; the store stays.
    let kept = ssh::down_purging(&name, T, false).unwrap();
    assert_eq!(kept, vec![store.clone()]);
    assert!(!work.path().join("n1").exists(), "parents up made are left");
    assert!(!work.path().join("n2").exists());
    assert!(store.join("blobs").is_dir(), "the jar store was not kept");

    // The next environment on these hosts reuses the jars, and purging
    // removes the store and the directory made for it.
    let mut state = ssh::up(&name, &hosts, T).unwrap();
    let third = prepare::prepare(&mut state, &opts, &mut |_| {}, None).unwrap();
    assert_eq!(third.bytes_uploaded(), 0);
    assert_eq!(third.nodes[0].dir_created, None);
    ssh::down_purging(&name, T, true).unwrap();
    assert!(!work.path().join("jars").exists(), "purge left the store");
    assert!(work.path().exists());
}

/// An `up` that fails on one host (its directory cannot be made) records
/// nothing and takes back the directories it made on the others.
#[test]
fn ssh_env_up_that_fails_on_one_host_leaves_the_others_as_found() {
    let netns = TestEnv::up("ssh_env_half", 2);
    let work = tempfile::tempdir().unwrap();
    let blocker = work.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let mut text = String::new();
    for (node, dir) in netns.nodes().iter().zip([
        work.path().join("n1/a/b"),
        blocker.join("n2"), // under a file: mkdir fails
    ]) {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\naddress = \"{}\"\nkey_path = \"{}\"\nknown_hosts = \"{}\"\ndir = \"{}\"\n\n",
            node.name,
            node.address,
            node.key_path.display(),
            node.known_hosts.display(),
            dir.display()
        ));
    }
    let hosts = work.path().join("hosts.toml");
    std::fs::write(&hosts, text).unwrap();
    let name = format!("t-sshhalf-{}", std::process::id());
    let err = ssh::up(&name, &hosts, T).unwrap_err().to_string();
    assert!(err.contains("n2"), "{err}");
    assert!(EnvState::try_load(&name).unwrap().is_none());
    assert!(!work.path().join("n1").exists(), "n1's directory was left");
}
