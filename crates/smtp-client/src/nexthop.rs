//! Postfix's next-hop syntax, as qmgr hands it over and as
//! `smtp_fallback_relay` holds it: `domain` or `host` (MX lookup),
//! `host:port` (MX lookup of host, that port), `[host]`, `[host]:port`,
//! `[addr]:port` (no MX lookup), and a list of those separated by commas
//! or spaces, tried in order.

/// One destination of a next-hop list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// A host or domain name, or an address (`[...]` only), lower case.
    pub host: String,
    /// The port, if the hop names one.
    pub port: Option<u16>,
    /// Look up MX records (`host`), or use the host's own addresses
    /// (`[host]`).
    pub mx: bool,
}

impl Hop {
    /// The hop as written: `[host]:port`, `host`, ...
    pub fn spelled(&self) -> String {
        let host = if self.mx { self.host.clone() } else { format!("[{}]", self.host) };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

/// The longest next-hop text and the most hops in one list.
const MAX_TEXT: usize = 2000;
const MAX_HOPS: usize = 10;

/// Parses a next-hop list. Errors name the bad element.
pub fn parse(text: &str) -> Result<Vec<Hop>, String> {
    if text.len() > MAX_TEXT {
        return Err("next hop too long".to_owned());
    }
    let mut out = Vec::new();
    for item in text.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
        if out.len() == MAX_HOPS {
            return Err(format!("more than {MAX_HOPS} next hops"));
        }
        out.push(parse_one(item)?);
    }
    if out.is_empty() {
        return Err("empty next hop".to_owned());
    }
    Ok(out)
}

fn parse_one(item: &str) -> Result<Hop, String> {
    let bad = || format!("bad next hop \"{}\"", crate::reply::printable(item.as_bytes(), 80));
    let (host, port, mx) = if let Some(rest) = item.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (host, port, false)
    } else {
        match item.rsplit_once(':') {
            // An IPv6 address without brackets has colons of its own.
            Some((h, p)) if !h.contains(':') => (h, Some(p), true),
            Some(_) => return Err(bad()),
            None => (item, None, true),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?),
    };
    let host = host.strip_prefix("ipv6:").unwrap_or(host);
    let ok_ip = !mx && host.parse::<std::net::IpAddr>().is_ok();
    let name = mail_dns::valid_hostname(host);
    let host = match (ok_ip, name) {
        (true, _) => host.to_ascii_lowercase(),
        (false, Some(n)) => n,
        (false, None) => return Err(bad()),
    };
    Ok(Hop { host, port, mx })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(host: &str, port: Option<u16>, mx: bool) -> Hop {
        Hop { host: host.into(), port, mx }
    }

    #[test]
    fn forms() {
        assert_eq!(parse("Example.ORG").unwrap(), [hop("example.org", None, true)]);
        assert_eq!(parse("mx.example:2525").unwrap(), [hop("mx.example", Some(2525), true)]);
        assert_eq!(parse("[relay.example]").unwrap(), [hop("relay.example", None, false)]);
        assert_eq!(
            parse("[127.0.0.1]:587, [::1]:25 relay.example").unwrap(),
            [
                hop("127.0.0.1", Some(587), false),
                hop("::1", Some(25), false),
                hop("relay.example", None, true)
            ]
        );
        assert_eq!(parse("[ipv6:::1]").unwrap(), [hop("::1", None, false)]);
        assert_eq!(parse("[relay.example]:587").unwrap()[0].spelled(), "[relay.example]:587");
        for bad in
            ["", " , ", "[x", "[x]y", "[x]:", "a:0", "a:99999", "1.2.3.4", "a b]", "::1", "a..b"]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
