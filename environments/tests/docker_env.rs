//! The Docker environment end to end (issue 8): five containers up, SSH to
//! each through the control layer, an iptables partition between two of them
//! measured with TCP connects, and `down` leaving no container, network or
//! build residue behind. Needs root and a Docker engine, which the tests start
//! (installing Debian's docker.io if missing) and stop again when they
//! started it.

use splitbrain_core::control::Control;
use splitbrain_core::firewall::{heal, set_blocked, Block};
use splitbrain_environments::nodes::docker::engine::EngineLease;
use splitbrain_environments::nodes::docker::image::{build_residue, LOCAL_BASE_IMAGE};
use splitbrain_environments::nodes::docker::test_env::lease_for_test;
use splitbrain_environments::nodes::docker::{
    down, find_resources, up, DockerOptions, DockerSubnet, DockerTestEnv,
};
use splitbrain_environments::{EnvKind, EnvState};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// The engine lease every test takes first, or `None` (with the reason
/// printed) when these tests cannot run here.
fn lease_or_skip() -> Option<EngineLease> {
    lease_for_test()
}

/// From `from`, one TCP connect to `to`'s sshd, bounded to 2 s: "open" or
/// "closed", and how long it took.
fn tcp_connect(control: &Control, from: &str, to: std::net::IpAddr) -> (String, Duration) {
    let cmd = format!("timeout 2 bash -c '</dev/tcp/{to}/22' && echo open || echo closed");
    let start = Instant::now();
    let out = control.exec_ok(from, &cmd, T).expect("connect probe runs");
    (out.stdout.trim().to_string(), start.elapsed())
}

/// The engine must not have touched the host's firewall: no DOCKER chains,
/// no NAT rules (the netns environment's bridge depends on it).
fn host_firewall_untouched() {
    for table in ["filter", "nat"] {
        let out = std::process::Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output()
            .expect("iptables runs on the host");
        let rules = String::from_utf8_lossy(&out.stdout);
        assert!(
            !rules.contains("DOCKER"),
            "dockerd changed the host's {table} table:\n{rules}"
        );
    }
}

#[test]
fn five_nodes_ssh_partition_and_clean_down() {
    // Our own lease keeps the engine up until we have looked at it after
    // `down`; the environment holds another.
    let Some(lease) = lease_or_skip() else { return };
    let started_engine = lease.started_engine();
    let cli = lease.cli().clone();
    let start = Instant::now();
    let env = DockerTestEnv::up_with(
        EngineLease::acquire().expect("second lease"),
        "five-nodes",
        5,
    )
    .unwrap_or_else(|e| panic!("Docker environment could not be brought up: {e}"));
    eprintln!("env up (5 nodes) took {:?}", start.elapsed());
    host_firewall_untouched();

    // Other code finds the nodes by name, as for netns.
    let state = EnvState::load(env.name()).expect("state by name");
    assert_eq!(state.kind, EnvKind::Docker);
    assert!(state.ready);
    assert_eq!(&state.nodes, env.nodes());
    let nodes = state.nodes.clone();
    assert_eq!(nodes.len(), 5);

    // SSH to each node (host keys checked against the keys read from the
    // containers): its own hostname, address and directory.
    let control = Control::connect(&nodes, T).expect("SSH to every node");
    for node in &nodes {
        let out = control
            .exec_ok(
                &node.name,
                &format!(
                    "hostname; ip -4 -o addr show scope global; test -d {}",
                    node.dir.display()
                ),
                T,
            )
            .expect("ssh exec");
        assert_eq!(out.stdout.lines().next(), Some(node.name.as_str()));
        assert!(
            out.stdout.contains(&format!("{}/24", node.address)),
            "{}",
            out.stdout
        );
    }

    // Files go both ways over SSH (scp), into the node's own directory.
    let remote = nodes[0].dir.join("probe.txt");
    let local = tempfile::tempdir().expect("tempdir");
    let local_copy = local.path().join("probe.txt");
    let (r, l) = (remote.clone(), local_copy.clone());
    control
        .on("n1", move |s| {
            s.write_file(&r, b"written over ssh\n", 0o644)?;
            s.download(&r, &l)
        })
        .expect("write_file + download on n1");
    assert_eq!(std::fs::read(&local_copy).unwrap(), b"written over ssh\n");

    let (n1, n2) = (&nodes[0], &nodes[1]);
    assert_eq!(tcp_connect(&control, "n2", n1.address).0, "open");

    // Partition n1 | n2 with iptables inside n1's own network namespace.
    let block = Block::both(n2.address);
    control
        .on("n1", move |s| set_blocked(s, &[block], T))
        .expect("partition n1 from n2");
    let (result, took) = tcp_connect(&control, "n2", n1.address);
    assert_eq!(
        result, "closed",
        "n2 still reaches n1 through the partition"
    );
    assert!(
        took >= Duration::from_secs(2),
        "dropped packets time out; this failed fast ({took:?})"
    );
    assert_eq!(tcp_connect(&control, "n1", n2.address).0, "closed");
    // Only that pair: n3 still reaches both.
    assert_eq!(tcp_connect(&control, "n3", n1.address).0, "open");
    assert_eq!(tcp_connect(&control, "n3", n2.address).0, "open");

    // Heal: n2 reaches n1 again.
    control.on("n1", |s| heal(s, T)).expect("heal n1");
    assert_eq!(tcp_connect(&control, "n2", n1.address).0, "open");
    drop(control);

    // Down leaves nothing labelled with the environment, and no build residue.
    let name = env.name().to_string();
    env.down().expect("env down");
    let left = find_resources(&cli, &name).expect("engine still answers");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!EnvState::dir_of(&name).exists());
    let residue = build_residue(&cli).expect("engine still answers");
    assert!(residue.is_empty(), "residue: {residue:?}");

    // The engine this test started is stopped when its last lease ends.
    drop(lease);
    if started_engine {
        assert!(
            !cli.answers(Duration::from_secs(5)),
            "the dockerd the test started still runs"
        );
    }
}

/// `down` after a crash: the control process's memory and records are gone,
/// yet the labels lead `down` to every container and the network; a second
/// `down` finds nothing and succeeds.
#[test]
fn down_after_a_crash_finds_everything_by_label() {
    let Some(lease) = lease_or_skip() else { return };
    let cli = lease.cli().clone();
    let env = DockerTestEnv::up_with(EngineLease::acquire().expect("second lease"), "crash", 2)
        .unwrap_or_else(|e| panic!("Docker environment could not be brought up: {e}"));
    let name = env.name().to_string();
    // Simulate the crash: the records are lost and nothing runs `Drop`.
    std::fs::remove_dir_all(EnvState::dir_of(&name)).expect("remove state");
    let found = find_resources(&cli, &name).expect("list");
    assert_eq!((found.containers.len(), found.networks.len()), (2, 1));
    down(&name, false).expect("down without a record");
    assert!(find_resources(&cli, &name).expect("list").is_empty());
    down(&name, false).expect("second down is a no-op");
    drop(env);
    drop(lease);
}

/// `up` that fails half-way (the subnet is taken) removes what it made and
/// says what to do.
#[test]
fn failed_up_leaves_nothing_behind() {
    let Some(lease) = lease_or_skip() else { return };
    let cli = lease.cli().clone();
    let first = DockerTestEnv::up_with(EngineLease::acquire().expect("second lease"), "taken", 1)
        .unwrap_or_else(|e| panic!("Docker environment could not be brought up: {e}"));
    let taken: DockerSubnet = format!("{}.0/24", {
        let a = first.nodes()[0].address.to_string();
        a.rsplit_once('.').expect("IPv4").0.to_string()
    })
    .parse()
    .expect("valid subnet");
    let name = format!("td-clash-{}", std::process::id());
    let opts = DockerOptions {
        name: name.clone(),
        nodes: 2,
        subnet: Some(taken),
        base_image: std::env::var("SPLITBRAIN_DOCKER_BASE")
            .unwrap_or_else(|_| LOCAL_BASE_IMAGE.to_string()),
        artifacts: None,
        start_engine: false,
    };
    let err = up(&opts, None).expect_err("a taken subnet must fail");
    assert!(err.to_string().contains("env down"), "{err}");
    assert!(find_resources(&cli, &name).expect("list").is_empty());
    assert!(!EnvState::dir_of(&name).exists());
    drop(first);
    drop(lease);
}
