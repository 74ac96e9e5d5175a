//! Benchmark: run `true` on every node of an environment, concurrently,
//! (a) as fresh `ssh` processes and (b) over reused [`Control`] sessions,
//! in the same run, and print the medians and their ratio.
//!
//! Usage: `cargo run -p splitbrain-environments --example fanout -- <env> [rounds]`
//! (used by `bench/env.sh`).

use splitbrain_core::control::Control;
use splitbrain_environments::EnvState;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: fanout <env-name> [rounds]");
        std::process::exit(2);
    };
    let rounds: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
        .max(1);
    let state = match EnvState::load(&name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(2);
        }
    };
    let timeout = Duration::from_secs(10);

    let mut fresh = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let children: Vec<_> = state
            .nodes
            .iter()
            .map(|n| {
                Command::new("ssh")
                    .args([
                        "-F",
                        "/dev/null",
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "StrictHostKeyChecking=yes",
                    ])
                    .arg("-o")
                    .arg(format!("UserKnownHostsFile={}", n.known_hosts.display()))
                    .args([
                        "-o",
                        "GlobalKnownHostsFile=/dev/null",
                        "-o",
                        "ConnectTimeout=10",
                    ])
                    .arg("-i")
                    .arg(&n.key_path)
                    .arg("-p")
                    .arg(n.port.to_string())
                    .arg(format!("{}@{}", n.user, n.address))
                    .arg("true")
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("run ssh (openssh-client)")
            })
            .collect();
        for mut c in children {
            let st = c.wait().expect("wait for ssh");
            assert!(st.success(), "fresh ssh failed: {st}");
        }
        fresh.push(started.elapsed());
    }

    let control = Control::connect(&state.nodes, timeout).expect("connect");
    // One warm-up round (first channel on each session).
    for (node, r) in control.exec_all("true", timeout) {
        r.unwrap_or_else(|e| panic!("{node}: {e}"));
    }
    let mut reused = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for (node, r) in control.exec_all("true", timeout) {
            let out = r.unwrap_or_else(|e| panic!("{node}: {e}"));
            assert_eq!(out.status, 0, "{node}: true failed");
        }
        reused.push(started.elapsed());
    }
    let (f, r) = (median(fresh), median(reused));
    println!(
        "fan-out of `true` on {} nodes (median of {rounds}): fresh ssh processes {:.1} ms, reused sessions {:.1} ms, ratio {:.1}x",
        state.nodes.len(),
        f.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3,
        f.as_secs_f64() / r.as_secs_f64()
    );
}
