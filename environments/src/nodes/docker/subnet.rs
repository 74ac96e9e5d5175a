//! Subnets of the Docker environment: one /24 per environment inside
//! 10.89.0.0/16 (the netns environment uses 10.88.0.0/16), so addresses are
//! predictable and never clash with each other or anything else.

use crate::nodes::EnvError;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A /24 inside 10.89.0.0/16: `10.89.<third>.0/24`. The host (the engine's
/// bridge) is `.1`, node `i` (1-based) is `.(i+1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DockerSubnet {
    third: u8,
}

impl DockerSubnet {
    /// Most nodes one /24 holds (.2 … .254).
    pub const MAX_NODES: usize = 253;

    /// `10.89.<third>.0/24`; `third` 0 and 255 are refused (network and
    /// broadcast-looking ranges confuse people reading addresses).
    pub fn new(third: u8) -> Result<Self, EnvError> {
        if third == 0 || third == 255 {
            return Err(EnvError::BadInput(format!(
                "subnet 10.89.{third}.0/24: choose 10.89.1.0/24 … 10.89.254.0/24"
            )));
        }
        Ok(DockerSubnet { third })
    }

    /// Every subnet the environment may pick, in order.
    pub fn all() -> impl Iterator<Item = DockerSubnet> {
        (1..=254).map(|third| DockerSubnet { third })
    }

    /// The third octet.
    pub fn third(&self) -> u8 {
        self.third
    }

    /// The bridge's (host's) address, `.1`.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 89, self.third, 1)
    }

    /// Node `index` (1-based, so `n1` is `.2`). `None` past [`Self::MAX_NODES`].
    pub fn node_address(&self, index: usize) -> Option<Ipv4Addr> {
        if index == 0 || index > Self::MAX_NODES {
            return None;
        }
        Some(Ipv4Addr::new(10, 89, self.third, (index + 1) as u8))
    }
}

impl fmt::Display for DockerSubnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "10.89.{}.0/24", self.third)
    }
}

impl FromStr for DockerSubnet {
    type Err = EnvError;

    fn from_str(s: &str) -> Result<Self, EnvError> {
        let bad = || {
            EnvError::BadInput(format!(
                "subnet {s:?}: the Docker environment takes a /24 inside 10.89.0.0/16, \
                 e.g. 10.89.7.0/24"
            ))
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let [a, b, c, d] = addr.octets();
        if prefix != "24" || a != 10 || b != 89 || d != 0 {
            return Err(bad());
        }
        DockerSubnet::new(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_a_24_inside_10_89() {
        let s: DockerSubnet = "10.89.7.0/24".parse().unwrap();
        assert_eq!(s.to_string(), "10.89.7.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 89, 7, 1));
        assert_eq!(s.node_address(1), Some(Ipv4Addr::new(10, 89, 7, 2)));
        assert_eq!(s.node_address(253), Some(Ipv4Addr::new(10, 89, 7, 254)));
        assert_eq!(s.node_address(254), None);
        assert_eq!(s.node_address(0), None);
    }

    #[test]
    fn refuses_anything_outside_10_89_slash_24() {
        for bad in [
            "10.88.7.0/24",
            "10.89.7.0/16",
            "10.89.7.1/24",
            "10.89.0.0/24",
            "10.89.255.0/24",
            "192.168.1.0/24",
            "10.89.7.0",
            "garbage",
        ] {
            assert!(bad.parse::<DockerSubnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn all_covers_254_subnets() {
        assert_eq!(DockerSubnet::all().count(), 254);
    }
}
