//! Where builds may reach: the one rule for every destination a build's clone or pull would
//! connect to, and the proxy (`proxy`) the clone tools' HTTP goes through.
//!
//! Refused: loopback, unspecified (`0.0.0.0/8`, `::`), link-local (`169.254.0.0/16`, where
//! cloud metadata lives, and `fe80::/10`), private (RFC 1918 `10/8`, `172.16/12`,
//! `192.168/16`; `100.64.0.0/10` shared CGNAT; `fc00::/7` unique-local; `fec0::/10`
//! site-local), multicast, broadcast, reserved (`240.0.0.0/4`, `192.0.0.0/24`, benchmarking
//! `198.18.0.0/15`), documentation ranges (`192.0.2.0/24`, `198.51.100.0/24`,
//! `203.0.113.0/24`, `2001:db8::/32`), and any address of the host's own interfaces. IPv4
//! written as IPv6 (`::ffff:a.b.c.d`, `64:ff9b::a.b.c.d`, `::a.b.c.d`) is judged as the IPv4
//! address. An address inside one of `images.allowed_networks` is allowed whatever it is.

pub mod proxy;

use crate::core::config::parse_cidr;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The setting that opens a refused address, for messages.
pub const SETTING: &str = "images.allowed_networks";

/// The rule: which addresses are refused, and the networks an administrator allowed.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    allowed: Vec<(IpAddr, u8)>,
}

/// A destination refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub host: String,
    pub addr: IpAddr,
    pub reason: &'static str,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = if self.host == self.addr.to_string() {
            String::new()
        } else {
            format!("{} resolves to ", self.host)
        };
        write!(
            f,
            "{via}{}, {}: builds may not reach it unless an administrator adds its network \
             to {SETTING}",
            self.addr, self.reason
        )
    }
}

/// Why a destination cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressError {
    Refused(Refusal),
    /// The name does not resolve (the resolver's message, no remote content).
    Unresolved {
        host: String,
        error: String,
    },
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressError::Refused(r) => r.fmt(f),
            EgressError::Unresolved { host, error } => {
                write!(f, "cannot resolve the host {host}: {error}")
            }
        }
    }
}

impl Rules {
    /// From `images.allowed_networks` (validated with the configuration; an entry that does
    /// not parse allows nothing).
    pub fn new(allowed_networks: &[String]) -> Rules {
        Rules {
            allowed: allowed_networks
                .iter()
                .filter_map(|n| parse_cidr(n))
                .map(|(addr, prefix)| (canonical(addr), prefix_for(addr, prefix)))
                .collect(),
        }
    }

    /// Whether `addr` may be reached (the host's interfaces read now).
    pub fn check(&self, addr: IpAddr) -> Result<(), &'static str> {
        self.check_with(addr, &host_addresses())
    }

    /// [`Rules::check`] with the host's own addresses given.
    pub fn check_with(&self, addr: IpAddr, own: &[IpAddr]) -> Result<(), &'static str> {
        let addr = canonical(addr);
        if self
            .allowed
            .iter()
            .any(|(net, prefix)| in_network(addr, *net, *prefix))
        {
            return Ok(());
        }
        if let Some(reason) = classify(addr) {
            return Err(reason);
        }
        if own.iter().any(|a| canonical(*a) == addr) {
            return Err("an address of the server itself");
        }
        Ok(())
    }

    /// Resolves `host` and checks every address it resolves to; the addresses to connect to.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::net::lookup_host((host, port)).await {
                Ok(found) => found.collect(),
                Err(e) => {
                    return Err(EgressError::Unresolved {
                        host: host.to_owned(),
                        error: e.to_string(),
                    });
                }
            },
        };
        if addrs.is_empty() {
            return Err(EgressError::Unresolved {
                host: host.to_owned(),
                error: "no address".into(),
            });
        }
        let own = host_addresses();
        for a in &addrs {
            self.check_with(a.ip(), &own).map_err(|reason| {
                EgressError::Refused(Refusal {
                    host: host.to_owned(),
                    addr: a.ip(),
                    reason,
                })
            })?;
        }
        Ok(addrs)
    }
}

/// IPv4 written as IPv6 (mapped, NAT64, the old compatible form) as IPv4; others as they are.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let embedded = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
            let seg = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                IpAddr::V4(v4)
            } else if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || (seg[..6] == [0; 6] && !matches!(u128::from(v6), 0 | 1))
            {
                IpAddr::V4(embedded)
            } else {
                addr
            }
        }
        v4 => v4,
    }
}

/// The prefix length of a network given as IPv4-in-IPv6: as an IPv4 network.
fn prefix_for(addr: IpAddr, prefix: u8) -> u8 {
    match (addr, canonical(addr)) {
        (IpAddr::V6(_), IpAddr::V4(_)) => prefix.saturating_sub(96),
        _ => prefix,
    }
}

/// Whether `addr` lies in `net`/`prefix` (both of one family).
pub fn in_network(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Why an address is refused by kind (loopback, private, ...), or `None` for a public one.
pub fn classify(addr: IpAddr) -> Option<&'static str> {
    let v4 = |a: Ipv4Addr, net: [u8; 4], prefix: u8| {
        in_network(IpAddr::V4(a), IpAddr::V4(Ipv4Addr::from(net)), prefix)
    };
    match canonical(addr) {
        IpAddr::V4(a) => {
            let table: [([u8; 4], u8, &'static str); 16] = [
                ([0, 0, 0, 0], 8, "an unspecified (this-network) address"),
                ([127, 0, 0, 0], 8, "a loopback address"),
                (
                    [169, 254, 0, 0],
                    16,
                    "a link-local address (cloud metadata services live there)",
                ),
                ([10, 0, 0, 0], 8, "a private address"),
                ([172, 16, 0, 0], 12, "a private address"),
                ([192, 168, 0, 0], 16, "a private address"),
                ([100, 64, 0, 0], 10, "a shared (carrier-grade NAT) address"),
                ([192, 0, 0, 0], 24, "a reserved (IETF protocol) address"),
                ([192, 0, 2, 0], 24, "a documentation address"),
                ([198, 51, 100, 0], 24, "a documentation address"),
                ([203, 0, 113, 0], 24, "a documentation address"),
                ([198, 18, 0, 0], 15, "a benchmarking address"),
                ([224, 0, 0, 0], 4, "a multicast address"),
                ([255, 255, 255, 255], 32, "the broadcast address"),
                ([240, 0, 0, 0], 4, "a reserved address"),
                ([192, 88, 99, 0], 24, "a reserved (6to4 relay) address"),
            ];
            table
                .iter()
                .find(|(net, prefix, _)| v4(a, *net, *prefix))
                .map(|(_, _, why)| *why)
        }
        IpAddr::V6(a) => {
            let v6 = |net: &str, prefix: u8| {
                net.parse::<Ipv6Addr>()
                    .is_ok_and(|n| in_network(IpAddr::V6(a), IpAddr::V6(n), prefix))
            };
            if a.is_unspecified() {
                Some("an unspecified address")
            } else if a.is_loopback() {
                Some("a loopback address")
            } else if v6("fe80::", 10) {
                Some("a link-local address")
            } else if v6("fc00::", 7) {
                Some("a private (unique-local) address")
            } else if v6("fec0::", 10) {
                Some("a private (site-local) address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if v6("2001:db8::", 32) {
                Some("a documentation address")
            } else if v6("100::", 64) {
                Some("a reserved (discard) address")
            } else {
                None
            }
        }
    }
}

/// The addresses of this host's interfaces (empty if they cannot be read).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `list`, freed below with
    // freeifaddrs; on failure it returns -1 and `list` is not used.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type; the
            // casts read it as that type only.
            let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
            if family == libc::AF_INET {
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once; nothing points into it now.
    unsafe { libc::freeifaddrs(list) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        for (addr, want) in [
            ("127.0.0.1", "loopback"),
            ("127.5.6.7", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("169.254.169.254", "link-local"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "carrier-grade"),
            ("100.127.255.254", "carrier-grade"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique-local"),
            ("fc00::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
        ] {
            let why = classify(ip(addr)).unwrap_or_else(|| panic!("{addr} allowed"));
            assert!(why.contains(want), "{addr}: {why}");
        }
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(classify(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn allowed_networks_open_addresses_and_own_addresses_are_refused() {
        let rules = Rules::new(&[
            "127.0.0.2/32".into(),
            "10.1.0.0/16".into(),
            "fd00::/8".into(),
        ]);
        assert_eq!(rules.check_with(ip("127.0.0.2"), &[]), Ok(()));
        assert_eq!(rules.check_with(ip("::ffff:127.0.0.2"), &[]), Ok(()));
        assert!(rules.check_with(ip("127.0.0.1"), &[]).is_err());
        assert_eq!(rules.check_with(ip("10.1.200.3"), &[]), Ok(()));
        assert!(rules.check_with(ip("10.2.0.1"), &[]).is_err());
        assert_eq!(rules.check_with(ip("fd12::1"), &[]), Ok(()));
        let own = [ip("8.8.4.4")];
        assert_eq!(
            rules.check_with(ip("8.8.4.4"), &own),
            Err("an address of the server itself")
        );
        assert_eq!(rules.check_with(ip("8.8.8.8"), &own), Ok(()));
        let mapped = Rules::new(&["::ffff:10.9.0.0/112".into()]);
        assert_eq!(mapped.check_with(ip("10.9.1.1"), &[]), Ok(()));
        assert!(mapped.check_with(ip("10.8.1.1"), &[]).is_err());
    }

    #[test]
    fn networks_match_by_prefix() {
        assert!(in_network(ip("10.0.0.1"), ip("10.0.0.0"), 8));
        assert!(!in_network(ip("11.0.0.1"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_network(ip("1.2.3.4"), ip("1.2.3.4"), 32));
        assert!(!in_network(ip("::1"), ip("127.0.0.1"), 8));
        assert!(in_network(ip("2001:db8::5"), ip("2001:db8::"), 32));
    }

    #[test]
    fn the_hosts_own_addresses_include_loopback() {
        assert!(host_addresses().contains(&ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn names_are_resolved_and_every_address_checked() {
        let rules = Rules::new(&[]);
        match rules.resolve("localhost", 80).await {
            Err(EgressError::Refused(r)) => {
                assert_eq!(r.reason, "a loopback address");
                let text = r.to_string();
                assert!(text.contains("localhost resolves to"), "{text}");
                assert!(text.contains(SETTING), "{text}");
            }
            other => panic!("{other:?}"),
        }
        let open = Rules::new(&["127.0.0.0/8".into(), "::1/128".into()]);
        assert!(open.resolve("127.0.0.1", 80).await.is_ok());
        assert!(matches!(
            rules.resolve("no-such-host.invalid", 80).await,
            Err(EgressError::Unresolved { .. })
        ));
    }
}
