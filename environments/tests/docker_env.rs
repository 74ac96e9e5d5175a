//! The Docker environment end to end (issue 8): five containers up, SSH to
//! each, an iptables partition between two of them measured with TCP
//! connects, and `down` leaving no container or network behind. Needs root
//! and a Docker engine, which the test starts (installing Debian's docker.io
//! if missing) and stops again when it started it.

use splitbrain_environments::docker::{find_resources, DockerTestEnv};
use std::process::Command;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `cmd` on a node over SSH with the environment's key and known_hosts
/// (strict host key checking: the keys came from the containers).
fn ssh(env: &DockerTestEnv, node: usize, cmd: &str) -> (i32, String) {
    let rec = &env.record;
    let out = Command::new("ssh")
        .args(["-i", &rec.key_path.to_string_lossy()])
        .args([
            "-o",
            &format!("UserKnownHostsFile={}", rec.known_hosts.display()),
        ])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=5"])
        .arg(format!("root@{}", rec.nodes[node].address))
        .arg(cmd)
        .output()
        .expect("ssh runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn five_nodes_ssh_partition_and_clean_down() {
    if !is_root() {
        eprintln!("SKIPPED: the Docker environment needs root (to start dockerd and debootstrap); run the tests as root");
        return;
    }
    let start = Instant::now();
    let env = match DockerTestEnv::up("five-nodes", 5) {
        Ok(env) => env,
        Err(e) => panic!("Docker environment could not be brought up: {e}"),
    };
    eprintln!("env up (5 nodes) took {:?}", start.elapsed());
    let rec = env.record.clone();
    assert_eq!(rec.nodes.len(), 5);

    // SSH to each node: its own hostname and address.
    for (i, node) in rec.nodes.iter().enumerate() {
        let (status, out) = ssh(&env, i, "hostname; ip -4 -o addr show scope global");
        assert_eq!(status, 0, "ssh to {}", node.name);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(node.name.as_str()));
        assert!(out.contains(&format!("{}/24", node.address)), "{out}");
    }

    // A TCP connect from n2 to n1's sshd, bounded to 2 s.
    let connect = |env: &DockerTestEnv| {
        let cmd = format!(
            "timeout 2 bash -c '</dev/tcp/{}/22' && echo open || echo closed",
            rec.nodes[0].address
        );
        ssh(env, 1, &cmd).1
    };
    assert_eq!(connect(&env), "open");

    // Partition n1 from n2 with iptables inside n1's own namespace.
    let n2 = rec.nodes[1].address;
    let (status, _) = ssh(
        &env,
        0,
        &format!(
            "iptables -N SPLITBRAIN && iptables -I INPUT -j SPLITBRAIN && iptables -I OUTPUT -j SPLITBRAIN \
             && iptables -A SPLITBRAIN -s {n2} -j DROP && iptables -A SPLITBRAIN -d {n2} -j DROP"
        ),
    );
    assert_eq!(status, 0, "iptables in n1");
    let t = Instant::now();
    assert_eq!(
        connect(&env),
        "closed",
        "n2 still reaches n1 through the partition"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "connect failed fast, not dropped"
    );
    // Others are unaffected: n3 still reaches n1, and the host still does.
    let cmd = format!(
        "timeout 2 bash -c '</dev/tcp/{}/22' && echo open || echo closed",
        rec.nodes[0].address
    );
    assert_eq!(ssh(&env, 2, &cmd).1, "open");
    // Heal: n2 reaches n1 again.
    let (status, _) = ssh(&env, 0, "iptables -F SPLITBRAIN");
    assert_eq!(status, 0);
    assert_eq!(connect(&env), "open");

    // Down leaves nothing labelled with the environment.
    let cli = env.cli();
    let env_name = rec.env.clone();
    let state_dir = env.state_dir.clone();
    env.down().expect("env down");
    let left = find_resources(&cli, &env_name).expect("engine still answers");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!state_dir.exists());
}
