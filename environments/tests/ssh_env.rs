//! The ssh environment against real sshd hosts: the nodes of a netns
//! environment. Needs root.

use splitbrain_core::control::{Control, Session};
use splitbrain_core::firewall::{self, Block};
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_environments::nodes::ssh;
use splitbrain_environments::{EnvKind, EnvState};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn hosts_toml(env: &TestEnv, base: &Path) -> String {
    let mut text = String::new();
    for node in env.nodes() {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\naddress = \"{}\"\nkey_path = \"{}\"\nknown_hosts = \"{}\"\ndir = \"{}\"\n\n",
            node.name,
            node.address,
            node.key_path.display(),
            node.known_hosts.display(),
            base.join(&node.name).display()
        ));
    }
    text
}

#[test]
fn ssh_env_checks_hosts_and_down_removes_only_its_own_things() {
    let netns = TestEnv::up("ssh_env", 2);
    let work = tempfile::tempdir().unwrap();
    let hosts = work.path().join("hosts.toml");
    std::fs::write(&hosts, hosts_toml(&netns, work.path())).unwrap();
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
    std::fs::write(&hosts, hosts_toml(&netns, work.path())).unwrap();
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
