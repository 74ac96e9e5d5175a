//! `splitbrain nemesis` as a user runs it: planning is deterministic, bad
//! input says what is expected, and `heal` empties splitbrain's rules on
//! every node of a real (netns) environment. Needs root for `heal`.

mod common;

use common::{run, text};
use splitbrain_core::firewall::{self, Block};
use splitbrain_environments::nodes::netns::TestEnv;
use std::time::Duration;

#[test]
fn plan_is_repeatable_from_its_seed() {
    let args = [
        "nemesis",
        "plan",
        "--seed",
        "5",
        "--fault",
        "partition:halves",
        "--fault",
        "pause:zookeeper:one",
        "--quiet",
        "1000..3000",
        "--fault-for",
        "2000",
        "--seconds",
        "30",
    ];
    let a = run(&args);
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(a.stdout, run(&args).stdout, "same seed, same plan");
    let plan: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(plan["spec"]["seed"], 5);
    let steps = plan["steps"].as_array().unwrap();
    assert!(steps.len() >= 4 && steps.len().is_multiple_of(2), "{plan}");
    assert_eq!(steps[0]["action"]["action"], "start");
    assert_eq!(steps[1]["action"]["action"], "stop");
    let mut other = args.to_vec();
    other[3] = "6";
    assert_ne!(a.stdout, run(&other).stdout, "another seed, another plan");
}

#[test]
fn bad_faults_and_intervals_say_what_is_expected() {
    let out = run(&["nemesis", "plan", "--fault", "partition:sideways"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("choose one of"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "nemesis",
        "plan",
        "--fault",
        "kill:kafka:one",
        "--quiet",
        "9..1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("5000..15000"),
        "{}",
        text(&out)
    );
}

#[test]
fn heal_empties_the_rules_of_every_node_and_run_needs_a_cluster() {
    let env = TestEnv::up("nemesis-cli", 3);
    let control = env.control();
    let peer = env.nodes()[2].address;
    for node in ["n1", "n2"] {
        control
            .on(node, move |s| {
                firewall::set_blocked(s, &[Block::both(peer)], Duration::from_secs(10))
            })
            .unwrap();
    }
    let out = run(&["nemesis", "--env-name", env.name(), "heal"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 rule(s) removed"),
        "{}",
        text(&out)
    );
    for (node, r) in control.on_all(|_, s| firewall::blocked(s, Duration::from_secs(10))) {
        assert!(r.unwrap().is_empty(), "{node}: rules left");
    }
    let out = run(&["nemesis", "--env-name", env.name(), "heal", "--remove"]);
    assert!(out.status.success(), "{}", text(&out));
    for (node, r) in control.on_all(|_, s| {
        s.exec_ok(
            "iptables -w -S | grep -c SPLITBRAIN; true",
            Duration::from_secs(10),
        )
    }) {
        assert_eq!(r.unwrap().stdout.trim(), "0", "{node}: chain left");
    }

    let out = run(&[
        "nemesis",
        "--env-name",
        env.name(),
        "run",
        "--fault",
        "partition:halves",
        "--seconds",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no cluster"),
        "{}",
        text(&out)
    );
}
