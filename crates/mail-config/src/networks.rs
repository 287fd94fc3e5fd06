//! `mynetworks`: the client networks trusted to relay, in Postfix's
//! `address/prefix` notation. IPv6 entries may be written in brackets as
//! Postfix prints them (`[::1]/128`). Host names, `/file/name` and
//! `type:table` entries, which Postfix also allows, are rejected with a
//! message saying so.

use std::fmt;
use std::net::IpAddr;

/// One `address/prefix`, with the host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(a)), 32, self.prefix) == u128::from(u32::from(n))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(a), 128, self.prefix) == u128::from(n)
            }
            _ => false,
        }
    }
}

/// `value` (a `bits`-wide address) with everything after `prefix` cleared.
fn masked(value: u128, bits: u32, prefix: u8) -> u128 {
    let host_bits = bits - u32::from(prefix);
    if host_bits >= 128 { 0 } else { (value >> host_bits) << host_bits }
}

/// A parsed `mynetworks` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<Net>);

impl Networks {
    /// Parses entries such as `127.0.0.0/8`, `127.0.0.1`, `[::1]/128`,
    /// `::1` and `10.0.0.0/8`. A bare address is a single host. `Err` says
    /// which entry is wrong and why.
    pub fn parse(list: &[String]) -> Result<Networks, String> {
        list.iter().map(|e| parse_entry(e)).collect::<Result<Vec<_>, _>>().map(Networks)
    }

    /// Whether `ip` is in one of the networks. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`, what a dual-stack socket reports) matches the
    /// IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(ip))
    }

    /// Whether the list is empty (nothing is trusted).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Networks {
    /// Postfix's notation, joined with spaces: `127.0.0.0/8 [::1]/128`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match n.addr {
                IpAddr::V4(a) => write!(f, "{a}/{}", n.prefix)?,
                IpAddr::V6(a) => write!(f, "[{a}]/{}", n.prefix)?,
            }
        }
        Ok(())
    }
}

fn parse_entry(entry: &str) -> Result<Net, String> {
    let bad = |why: &str| {
        format!("bad network \"{}\": {why}", entry.chars().take(80).collect::<String>())
    };
    let (addr_part, prefix_part) = match entry.rsplit_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let addr_text = match addr_part.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(|| bad("missing ']'"))?,
        None => addr_part,
    };
    if entry.starts_with('/')
        || entry.contains(':') && addr_text.parse::<IpAddr>().is_err() && !entry.starts_with('[')
    {
        // Postfix allows /file/name and type:table here; Postern does not.
        return Err(bad("expected address/prefix (files and lookup tables are not supported)"));
    }
    let addr: IpAddr =
        addr_text.parse().map_err(|_| bad("not an IP address (host names are not supported)"))?;
    let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_part {
        None => bits,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= bits)
            .ok_or_else(|| bad(&format!("prefix must be 0 to {bits}")))?,
        Some(_) => return Err(bad("prefix is not a number")),
    };
    let net = Net { addr, prefix };
    // Postfix refuses host bits after the prefix: "10.0.0.1/8" is almost
    // certainly a typo for a host or for "10.0.0.0/8".
    let value = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    if masked(value, u32::from(bits), prefix) != value {
        let fixed = match addr {
            IpAddr::V4(_) => {
                IpAddr::V4(u32::try_from(masked(value, 32, prefix)).unwrap_or(0).into())
            }
            IpAddr::V6(_) => IpAddr::V6(masked(value, 128, prefix).into()),
        };
        return Err(bad(&format!(
            "non-null host address bits, perhaps you mean {}",
            Networks(vec![Net { addr: fixed, prefix }])
        )));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(list: &[&str]) -> Result<Networks, String> {
        Networks::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_and_matching() {
        let n = nets(&["127.0.0.0/8", "192.0.2.7", "[::1]/128", "2001:db8::/32", "10.0.0.0/8"])
            .unwrap();
        assert!(n.contains(ip("127.1.2.3")));
        assert!(n.contains(ip("192.0.2.7")));
        assert!(!n.contains(ip("192.0.2.8")));
        assert!(n.contains(ip("::1")));
        assert!(n.contains(ip("2001:db8:1::5")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(n.contains(ip("10.255.0.1")));
        assert!(!n.contains(ip("11.0.0.1")));
        // IPv4-mapped IPv6 matches the IPv4 networks.
        assert!(n.contains(ip("::ffff:127.0.0.1")));
        assert!(!n.contains(ip("::ffff:8.8.8.8")));
        assert_eq!(n.to_string(), "127.0.0.0/8 192.0.2.7/32 [::1]/128 [2001:db8::]/32 10.0.0.0/8");
    }

    #[test]
    fn bare_ipv6_and_zero_prefix() {
        let n = nets(&["::1", "0.0.0.0/0"]).unwrap();
        assert!(n.contains(ip("::1")));
        assert!(n.contains(ip("8.8.8.8")));
        assert!(!n.contains(ip("::2")));
        assert!(nets(&[]).unwrap().is_empty());
    }

    #[test]
    fn rejects() {
        assert!(nets(&["10.0.0.1/8"]).unwrap_err().contains("perhaps you mean 10.0.0.0/8"));
        assert!(nets(&["10.0.0.0/33"]).is_err());
        assert!(nets(&["10.0.0.0/"]).is_err());
        assert!(nets(&["10.0.0.0/-1"]).is_err());
        assert!(nets(&["mail.example.com"]).is_err());
        assert!(nets(&["/etc/postern/networks"]).is_err());
        assert!(nets(&["hash:/etc/postern/networks"]).is_err());
        assert!(nets(&["[::1/128"]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            if let Ok(n) = Networks::parse(&[s]) {
                let _ = n.contains(ip("127.0.0.1"));
                let _ = n.to_string();
            }
        }
    }
}
