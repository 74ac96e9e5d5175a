//! Every partition kind on real nodes (network namespaces with their own
//! sshd): the grudge's reachability matrix must equal the one measured with
//! TCP connects between every pair of nodes; after `heal` everything
//! reaches everything; at the end no splitbrain rule or chain is left.
//! Needs root. No JVMs: each node runs a tiny TCP listener.

use splitbrain_core::control::Control;
use splitbrain_core::firewall;
use splitbrain_environments::nodes::netns::TestEnv;
use splitbrain_nemeses::{Grudge, PartitionKind, Partitioner, Topology};
use std::collections::BTreeMap;
use std::time::Duration;

const PORT: u16 = 7777;
const NODES: usize = 5;
const T: Duration = Duration::from_secs(20);

/// Starts a listener on every node's address that accepts and closes
/// connections; it exits by itself after 5 minutes at the latest.
fn start_listeners(control: &Control) {
    for (node, r) in control.on_all(|node, s| {
        let dir = node.dir.display().to_string();
        let cmd = format!(
            "mkdir -p {dir}/run; setsid perl -MIO::Socket::INET -e '\
             alarm 300; my $s = IO::Socket::INET->new(LocalAddr => \"{addr}\", LocalPort => {PORT}, \
             Listen => 64, ReuseAddr => 1) or die \"listen: $!\"; \
             while (my $c = $s->accept) {{ close $c }}' > {dir}/run/listener.log 2>&1 < /dev/null & \
             echo $! > {dir}/run/listener.pid; \
             for i in $(seq 50); do ss -ltn | grep -q '{addr}:{PORT}' && exit 0; sleep 0.1; done; \
             cat {dir}/run/listener.log; exit 1",
            addr = node.address
        );
        s.exec_ok(&cmd, T)
    }) {
        r.unwrap_or_else(|e| panic!("listener on {node}: {e}"));
    }
}

fn stop_listeners(control: &Control) {
    for (node, r) in control.on_all(|node, s| {
        s.exec_ok(
            &format!(
                "kill $(cat {}/run/listener.pid) 2>/dev/null; true",
                node.dir.display()
            ),
            T,
        )
    }) {
        r.unwrap_or_else(|e| panic!("stop listener on {node}: {e}"));
    }
}

/// `m[i][j]`: a TCP connect from node i to node j's listener succeeded
/// within 1 s (all probes of a node run at once).
fn measure(control: &Control) -> Vec<Vec<bool>> {
    let nodes = control.nodes().to_vec();
    let addrs: Vec<String> = nodes.iter().map(|n| n.address.to_string()).collect();
    let results = control.on_all(move |me, s| {
        let probes: Vec<String> = addrs
            .iter()
            .filter(|a| **a != me.address.to_string())
            .map(|a| {
                format!(
                    "( if timeout 1 bash -c 'exec 3<>/dev/tcp/{a}/{PORT}' 2>/dev/null; \
                     then echo '{a} yes'; else echo '{a} no'; fi ) &"
                )
            })
            .collect();
        let out = s.exec_ok(&format!("{} wait", probes.join(" ")), T)?;
        Ok(out.stdout)
    });
    let index: BTreeMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.address.to_string(), i))
        .collect();
    let mut m = vec![vec![false; nodes.len()]; nodes.len()];
    for (i, (node, r)) in results.into_iter().enumerate() {
        let out = r.unwrap_or_else(|e| panic!("probe from {node}: {e}"));
        m[i][i] = true;
        let mut seen = 0;
        for line in out.lines() {
            let (addr, verdict) = line.split_once(' ').expect("probe line");
            m[i][index[addr]] = verdict == "yes";
            seen += 1;
        }
        assert_eq!(seen, nodes.len() - 1, "probes from {node}: {out}");
    }
    m
}

fn show(names: &[String], m: &[Vec<bool>]) -> String {
    let mut s = String::new();
    for (i, row) in m.iter().enumerate() {
        let cells: String = row.iter().map(|&r| if r { '+' } else { '.' }).collect();
        s.push_str(&format!("{} {cells}\n", names[i]));
    }
    s
}

fn check_kind(kind: PartitionKind) {
    let t0 = std::time::Instant::now();
    let env = TestEnv::up(&format!("part-{kind}"), NODES);
    eprintln!("{kind}: env up after {:?}", t0.elapsed());
    let control = env.control();
    let names: Vec<String> = env.nodes().iter().map(|n| n.name.clone()).collect();
    let topology = Topology {
        nodes: names.clone(),
        zookeeper: names[..3].to_vec(),
        kafka: names[3..].to_vec(),
        zk_leader: Some(names[1].clone()),
        kafka_controller: Some(names[3].clone()),
        kraft_leader: Some(names[0].clone()),
    };
    start_listeners(&control);
    eprintln!("{kind}: listeners after {:?}", t0.elapsed());
    assert!(
        measure(&control).iter().flatten().all(|&r| r),
        "before any partition everything reaches everything"
    );

    let grudge = Grudge::compute(kind, &topology, &mut rand::rng()).unwrap();
    let expected = grudge.reachability();
    assert!(
        expected.iter().flatten().any(|&r| !r),
        "{kind}: the grudge cuts something"
    );
    let mut partitioner = Partitioner::new(control.clone());
    partitioner.add(Partitioner::cuts_of(&grudge)).unwrap();
    let measured = measure(&control);
    assert_eq!(
        measured,
        expected,
        "{kind}: measured\n{}expected\n{}",
        show(&names, &measured),
        show(&names, &expected)
    );
    // The nemesis's own probe (what proves a partition in its events)
    // agrees with the measured matrix on every ordered pair.
    let pairs: Vec<(String, String)> = names
        .iter()
        .flat_map(|a| names.iter().map(move |b| (a.clone(), b.clone())))
        .filter(|(a, b)| a != b)
        .collect();
    let probes = partitioner.probe(&pairs, PORT).unwrap();
    for p in &probes {
        let (i, j) = (
            names.iter().position(|n| *n == p.from).unwrap(),
            names.iter().position(|n| *n == p.to).unwrap(),
        );
        assert_eq!(p.reached, expected[i][j], "{kind}: probe {p:?}");
        assert_eq!(
            partitioner.should_reach(&p.from, &p.to),
            expected[i][j],
            "{kind}: {p:?}"
        );
        assert_eq!(
            p.outcome,
            if p.reached { "connected" } else { "timeout" },
            "{kind}: {p:?}"
        );
    }
    eprintln!(
        "{kind} after {:?}:\n{}",
        t0.elapsed(),
        show(&names, &measured)
    );

    assert!(partitioner.heal().is_empty());
    assert!(
        measure(&control).iter().flatten().all(|&r| r),
        "{kind}: after heal everything reaches everything"
    );
    assert!(partitioner.remove_all().is_empty());
    for (node, r) in control.on_all(|_, s| {
        let rules = firewall::blocked(s, T)?;
        let chains = s.exec_ok("iptables -w -S | grep -c SPLITBRAIN; true", T)?;
        Ok((rules, chains.stdout.trim().to_string()))
    }) {
        let (rules, chains) = r.unwrap();
        assert!(rules.is_empty(), "{node}: rules left: {rules:?}");
        assert_eq!(chains, "0", "{node}: splitbrain chain or jumps left");
    }
    stop_listeners(&control);
    eprintln!("{kind}: done after {:?}", t0.elapsed());
}

macro_rules! kind_tests {
    ($($name:ident => $kind:expr,)*) => {$(
        #[test]
        fn $name() {
            check_kind($kind);
        }
    )*};
}

kind_tests! {
    halves => PartitionKind::Halves,
    random_halves => PartitionKind::RandomHalves,
    isolate_one => PartitionKind::IsolateOne,
    majorities_ring => PartitionKind::MajoritiesRing,
    bridge => PartitionKind::Bridge,
    isolate_zk_leader => PartitionKind::IsolateZkLeader,
    isolate_kafka_controller => PartitionKind::IsolateKafkaController,
    zk_from_kafka => PartitionKind::ZkFromKafka,
}

/// Two layers overlap, and lifting one leaves the other in force.
#[test]
fn layers_overlap_and_lift_separately() {
    let env = TestEnv::up("part-layers", 3);
    let control = env.control();
    start_listeners(&control);
    let cut = |a: &str, b: &str| {
        let mut c = splitbrain_nemeses::Cuts::new();
        c.insert(a.to_string(), [b.to_string()].into_iter().collect());
        c
    };
    let mut p = Partitioner::new(control.clone());
    let one = p.add(cut("n1", "n2")).unwrap();
    let _two = p.add(cut("n1", "n3")).unwrap();
    let m = measure(&control);
    assert!(
        !m[0][1] && !m[1][0] && !m[0][2] && !m[2][0] && m[1][2],
        "{m:?}"
    );
    p.remove(one).unwrap();
    let m = measure(&control);
    assert!(m[0][1] && m[1][0] && !m[0][2] && !m[2][0], "{m:?}");
    assert!(p.heal().is_empty());
    assert!(measure(&control).iter().flatten().all(|&r| r));
    assert!(p.remove_all().is_empty());
    stop_listeners(&control);
}
