//! Partitions as iptables rules *inside* a node, applied over SSH.
//!
//! All of splitbrain's rules live in one dedicated chain, [`CHAIN`], jumped to
//! from `INPUT` and `OUTPUT`, so healing removes exactly splitbrain's rules and
//! nothing else a node (or Docker) may have. The nemeses crate builds grudges
//! (who drops whom) on top of [`set_blocked`] and [`heal`].
//!
//! iptables needs root: the commands run through
//! [`Session::exec_privileged_ok`] (`sudo -n` for a login user other than
//! root; a sudo that wants a password is a clear error).

use crate::control::{ControlError, Session};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// The iptables chain (filter table) holding splitbrain's rules on a node.
pub const CHAIN: &str = "SPLITBRAIN";

/// Which packets to drop for one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Drop packets arriving from the peer (Jepsen's `drop!`: "this node
    /// ignores the peer").
    Inbound,
    /// Drop packets sent to the peer.
    Outbound,
    /// Both: no traffic between this node and the peer at all.
    Both,
}

/// One rule: drop traffic between this node and `peer` in `direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Block {
    /// The other side's address.
    pub peer: IpAddr,
    /// What to drop.
    pub direction: Direction,
}

impl Block {
    /// Drop everything between this node and `peer`.
    pub fn both(peer: IpAddr) -> Block {
        Block {
            peer,
            direction: Direction::Both,
        }
    }
}

/// Shell command that creates [`CHAIN`] and its jumps if missing (for one
/// iptables binary). Idempotent.
fn ensure_chain(bin: &str) -> String {
    format!(
        "{{ {bin} -w -N {CHAIN} 2>/dev/null || true; \
         {bin} -w -C INPUT -j {CHAIN} 2>/dev/null || {bin} -w -I INPUT 1 -j {CHAIN}; \
         {bin} -w -C OUTPUT -j {CHAIN} 2>/dev/null || {bin} -w -I OUTPUT 1 -j {CHAIN}; }}"
    )
}

/// The `-A` rule lines (iptables-save syntax) that implement `blocks` for
/// one address family.
fn rule_lines(blocks: &[Block], v6: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for b in blocks.iter().filter(|b| b.peer.is_ipv6() == v6) {
        let peer = b.peer;
        if matches!(b.direction, Direction::Inbound | Direction::Both) {
            lines.push(format!("-A {CHAIN} -s {peer} -j DROP"));
        }
        if matches!(b.direction, Direction::Outbound | Direction::Both) {
            lines.push(format!("-A {CHAIN} -d {peer} -j DROP"));
        }
    }
    lines
}

/// `iptables-restore --noflush` input that replaces [`CHAIN`]'s rules with
/// `lines` in one transaction (declaring an existing chain flushes it; no
/// other chain is touched), so a grudge changes without a moment of "healed".
fn restore(bin: &str, lines: &[String]) -> String {
    let mut input = vec!["*filter".to_string(), format!(":{CHAIN} - [0:0]")];
    input.extend(lines.iter().cloned());
    input.push("COMMIT".into());
    let quoted: Vec<String> = input.iter().map(|l| format!("'{l}'")).collect();
    format!(
        "printf '%s\\n' {} | {bin}-restore -w --noflush",
        quoted.join(" ")
    )
}

/// The shell command [`set_blocked`] runs: make [`CHAIN`] hold exactly the
/// rules for `blocks` (an empty list heals), replacing the previous rules
/// atomically. Exposed so callers can show or log it.
pub fn set_blocked_command(blocks: &[Block]) -> String {
    let mut parts = vec![
        ensure_chain("iptables"),
        restore("iptables", &rule_lines(blocks, false)),
    ];
    let v6 = rule_lines(blocks, true);
    if v6.is_empty() {
        parts.push(format!(
            "{{ ip6tables -w -F {CHAIN} 2>/dev/null || true; }}"
        ));
    } else {
        parts.push(ensure_chain("ip6tables"));
        parts.push(restore("ip6tables", &v6));
    }
    // `set -e` so a failing step is reported rather than half-applied silently.
    format!("set -e; {}", parts.join("; "))
}

/// The shell command [`heal`] runs: empty [`CHAIN`] (IPv4 and IPv6) if it
/// exists. Touches no other rule.
pub fn heal_command() -> String {
    format!(
        "for t in iptables ip6tables; do \
         if $t -w -n -L {CHAIN} >/dev/null 2>&1; then $t -w -F {CHAIN} || exit 1; fi; done"
    )
}

/// The shell command [`remove`] runs: delete the jumps to [`CHAIN`] and the
/// chain itself, leaving the node's firewall as splitbrain found it.
pub fn remove_command() -> String {
    format!(
        "for t in iptables ip6tables; do \
         while $t -w -D INPUT -j {CHAIN} 2>/dev/null; do :; done; \
         while $t -w -D OUTPUT -j {CHAIN} 2>/dev/null; do :; done; \
         $t -w -F {CHAIN} 2>/dev/null; $t -w -X {CHAIN} 2>/dev/null; done; true"
    )
}

/// Makes the node behind `session` drop exactly the traffic described by
/// `blocks` (replacing any earlier splitbrain rules on that node).
pub fn set_blocked(
    session: &mut Session,
    blocks: &[Block],
    timeout: Duration,
) -> Result<(), ControlError> {
    session.exec_privileged_ok(&set_blocked_command(blocks), timeout)?;
    Ok(())
}

/// Removes every splitbrain drop rule on the node (the chain stays, empty).
pub fn heal(session: &mut Session, timeout: Duration) -> Result<(), ControlError> {
    session.exec_privileged_ok(&heal_command(), timeout)?;
    Ok(())
}

/// Removes splitbrain's chain and jumps from the node entirely.
pub fn remove(session: &mut Session, timeout: Duration) -> Result<(), ControlError> {
    session.exec_privileged_ok(&remove_command(), timeout)?;
    Ok(())
}

/// Reads back the rules currently in [`CHAIN`] on the node (IPv4 and IPv6).
pub fn blocked(session: &mut Session, timeout: Duration) -> Result<Vec<Block>, ControlError> {
    let out = session.exec_privileged_ok(
        &format!("for t in iptables ip6tables; do $t -w -S {CHAIN} 2>/dev/null || true; done"),
        timeout,
    )?;
    Ok(parse_rules(&out.stdout))
}

/// Parses `iptables -S SPLITBRAIN` output into blocks, merging an inbound and
/// an outbound rule for the same peer into [`Direction::Both`]. Lines that are
/// not splitbrain drop rules are ignored.
pub fn parse_rules(text: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 6 || words[0] != "-A" || words[1] != CHAIN || !line.ends_with("-j DROP") {
            continue;
        }
        let (flag, addr) = (words[2], words[3]);
        let addr = addr
            .strip_suffix("/32")
            .or_else(|| addr.strip_suffix("/128"))
            .unwrap_or(addr);
        let Ok(peer) = addr.parse::<IpAddr>() else {
            continue;
        };
        let direction = match flag {
            "-s" => Direction::Inbound,
            "-d" => Direction::Outbound,
            _ => continue,
        };
        if let Some(existing) = blocks.iter_mut().find(|b| b.peer == peer) {
            if existing.direction != direction {
                existing.direction = Direction::Both;
            }
        } else {
            blocks.push(Block { peer, direction });
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_replaces_the_chain_in_one_restore() {
        let cmd = set_blocked_command(&[Block::both("10.88.1.3".parse().unwrap())]);
        let restore = cmd.find("iptables-restore -w --noflush").unwrap();
        let declare = cmd.find("':SPLITBRAIN - [0:0]'").unwrap();
        let inbound = cmd.find("'-A SPLITBRAIN -s 10.88.1.3 -j DROP'").unwrap();
        let outbound = cmd.find("'-A SPLITBRAIN -d 10.88.1.3 -j DROP'").unwrap();
        let commit = cmd.find("'COMMIT'").unwrap();
        assert!(declare < inbound && inbound < outbound && outbound < commit && commit < restore);
        assert!(
            !cmd.contains("ip6tables-restore"),
            "no IPv6 rules for IPv4 peers: {cmd}"
        );
    }

    #[test]
    fn empty_list_only_empties_the_chain() {
        let cmd = set_blocked_command(&[]);
        assert!(cmd.contains(":SPLITBRAIN - [0:0]"));
        assert!(!cmd.contains("DROP"));
    }

    #[test]
    fn ipv6_peers_go_to_ip6tables() {
        let cmd = set_blocked_command(&[Block::both("fd00::2".parse().unwrap())]);
        let v6 = cmd.find("ip6tables-restore").unwrap();
        let rule = cmd.find("'-A SPLITBRAIN -s fd00::2 -j DROP'").unwrap();
        assert!(rule < v6);
        assert!(
            cmd.find("iptables-restore").unwrap() < rule,
            "rule not in the IPv4 restore"
        );
    }

    #[test]
    fn parses_rules_back_merging_directions() {
        let text = "-N SPLITBRAIN\n\
                    -A SPLITBRAIN -s 10.88.1.3/32 -j DROP\n\
                    -A SPLITBRAIN -d 10.88.1.3/32 -j DROP\n\
                    -A SPLITBRAIN -s 10.88.1.4/32 -j DROP\n\
                    -A SPLITBRAIN -d 10.88.1.5/32 -j ACCEPT\n";
        let blocks = parse_rules(text);
        assert_eq!(
            blocks,
            vec![
                Block::both("10.88.1.3".parse().unwrap()),
                Block {
                    peer: "10.88.1.4".parse().unwrap(),
                    direction: Direction::Inbound
                },
            ]
        );
    }

    #[test]
    fn round_trip_through_rule_lines() {
        let blocks = vec![
            Block::both("10.88.2.2".parse().unwrap()),
            Block {
                peer: "10.88.2.9".parse().unwrap(),
                direction: Direction::Outbound,
            },
        ];
        // What `iptables -S` prints for the rules the command loads.
        let listed: String = rule_lines(&blocks, false)
            .iter()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {} {}/32 -j DROP\n", w[0], w[1], w[2], w[3])
            })
            .collect();
        assert_eq!(parse_rules(&listed), blocks);
    }
}
