//! End-to-end tests of `env.kind = "ssh"` on plain SSH hosts: containers of
//! a bare Debian image (stock sshd, sudo; no Java, no iptables, no artifact
//! mount), one logged into as a non-root user with passwordless sudo, listed
//! in a hosts TOML file, packages through a private apt proxy on this
//! machine (`nodes::docker::ssh_hosts`). Needs root and a Docker engine
//! (started by the tests; skipped with a reason when impossible, failed
//! under CI).

use splitbrain_core::control::Session;
use splitbrain_environments::nodes::docker::ssh_hosts::{SshHosts, SshHostsOptions};
use splitbrain_environments::nodes::docker::{find_resources, test_env::lease_for_test};
use splitbrain_environments::nodes::ssh::parse_hosts;
use std::time::{Duration, Instant};

const CMD: Duration = Duration::from_secs(30);

fn sh(session: &mut Session, cmd: &str) -> (i32, String) {
    let out = session
        .exec(cmd, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (out.status, format!("{}{}", out.stdout, out.stderr))
}

/// The fixture itself: what the end-to-end runs start from is what a user's
/// fresh VMs offer, and nothing more.
#[test]
fn plain_ssh_hosts_are_bare_and_reach_packages_only_through_the_proxy() {
    let Some(lease) = lease_for_test() else {
        return;
    };
    let started = Instant::now();
    let opts = SshHostsOptions {
        hosts: 2,
        sudo_hosts: vec![1],
        ..SshHostsOptions::default()
    };
    let hosts = SshHosts::up(lease, "ssh-fixture", &opts).expect("plain SSH hosts up");
    eprintln!("2 plain SSH hosts up in {:?}", started.elapsed());
    let name = hosts.name().to_string();
    let cli = hosts.cli().clone();

    // The hosts file is what `env up --kind ssh` reads.
    let text = std::fs::read_to_string(hosts.hosts_file()).unwrap();
    let nodes = parse_hosts(&text, hosts.hosts_file()).expect("a valid hosts file");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].user, "deploy", "{text}");
    assert_eq!(nodes[1].user, "root", "{text}");

    for node in &nodes {
        let mut s = Session::connect(node, CMD).expect("key login, host key known");
        assert_eq!(sh(&mut s, "id -un"), (0, format!("{}\n", node.user)));
        assert_eq!(
            sh(&mut s, "sudo -n id -u"),
            (0, "0\n".into()),
            "{}",
            node.name
        );
        // Bare: no Java, no iptables, nothing of splitbrain's, no jars.
        for absent in [
            "command -v java",
            "sudo -n sh -c 'command -v iptables'",
            "test -e /var/lib/splitbrain",
            "test -e /opt/splitbrain",
        ] {
            let (status, out) = sh(&mut s, absent);
            assert_ne!(status, 0, "{}: `{absent}` succeeded: {out}", node.name);
        }
        // Debian's stock sshd limits.
        let (status, config) = sh(&mut s, "sudo -n /usr/sbin/sshd -T");
        assert_eq!(status, 0, "{config}");
        assert!(config.contains("\nmaxsessions 10\n"), "{config}");
        assert!(config.contains("\nmaxstartups 10:30:100\n"), "{config}");
    }

    // The non-root user installs Java through the proxy, with sudo -n.
    let mut deploy = Session::connect(&nodes[0], CMD).unwrap();
    let t = Instant::now();
    let (status, out) = sh(
        &mut deploy,
        "sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null \
         && java -version",
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("openjdk version \"17"), "{out}");
    eprintln!(
        "apt-get update + install openjdk-17-jre-headless through the proxy: {:?}",
        t.elapsed()
    );
    let cached = walk_size(&hosts.apt_proxy().unwrap().cache_dir());
    assert!(cached > 10_000_000, "the proxy cached only {cached} bytes");

    // Control: without the proxy there is no way out.
    let mut root = Session::connect(&nodes[1], CMD).unwrap();
    let (status, out) = sh(
        &mut root,
        "apt-get -o Acquire::http::Proxy=false -o Acquire::http::Timeout=5 \
         -o Acquire::Retries=0 -o APT::Update::Error-Mode=any update",
    );
    assert_ne!(status, 0, "apt reached the mirror without the proxy: {out}");

    drop(deploy);
    drop(root);
    hosts.down().expect("down");
    assert!(find_resources(&cli, &name).unwrap().is_empty());
}

fn walk_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
