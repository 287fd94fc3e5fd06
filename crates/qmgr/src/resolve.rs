//! Where a recipient goes: Postfix's trivial-rewrite `resolve`, done in
//! qmgr, without I/O beyond the `transport_maps` lookups.
//!
//! Order (transport(5), postconf(5)): a domain in `mydestination` takes
//! `local_transport`, one in `relay_domains` `relay_transport`, any
//! other `default_transport`; then a
//! `transport_maps` entry for the address or its domain replaces the
//! transport, the next hop, or both (an empty half keeps the default).
//! The default next hop of a remote domain is the nexthop written in
//! `relay_transport` or `default_transport`, else `relayhost`, else the
//! domain itself (its MX).
//! `error:` and `discard:` are Postfix's error(8) and discard(8) agents,
//! answered by qmgr inline.

use mail_config::LocalDomains;
use mail_lookup::DomainList;
use mail_lookup::maps::Maps;
use mail_types::{Address, EnhancedStatus};

/// Longest transport name accepted from configuration (a master.toml
/// service name).
const MAX_TRANSPORT: usize = 64;

/// The decision for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Hand it to `transport` (a unix service) for `nexthop`.
    Deliver { transport: String, nexthop: String },
    /// `error:`: bounce at once with this code and text.
    Error { dsn: EnhancedStatus, text: String },
    /// `discard:`: report it delivered without delivering it.
    Discard { text: String },
    /// The tables could not be read, or said something unusable: try
    /// again later (never a bounce for a configuration problem).
    Defer { dsn: EnhancedStatus, text: String },
}

/// The routing configuration, built once.
pub(crate) struct Router {
    local_domains: LocalDomains,
    transport_maps: Maps,
    relayhost: String,
    default_transport: (String, String),
    local_transport: String,
    recipient_delimiter: String,
    relay_domains: DomainList,
    relay_transport: (String, String),
}

/// `transport:nexthop`, either half possibly empty; no colon is all
/// transport (Postfix's rule for the `*_transport` parameters).
fn split_value(value: &str) -> (&str, &str) {
    match value.split_once(':') {
        Some((t, n)) => (t.trim(), n.trim()),
        None => (value.trim(), ""),
    }
}

fn valid_transport(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TRANSPORT
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `error:` text may start with its own code (`error:5.1.1 no such user`,
/// as error(8) reads it); a code of class 2 or 4 is not a bounce and is
/// ignored, leaving 5.0.0.
fn error_code(text: &str) -> (EnhancedStatus, String) {
    if let Some((code, rest)) = text.split_once(' ')
        && let Ok(dsn) = EnhancedStatus::parse(code).ok_or(())
        && dsn.0 == 5
    {
        return (dsn, rest.trim().to_owned());
    }
    (EnhancedStatus(5, 0, 0), text.to_owned())
}

impl Router {
    /// A router over these settings. `transport_maps` are the table
    /// files (already resolved against the configuration directory).
    pub(crate) fn new(
        local_domains: LocalDomains,
        transport_maps: Maps,
        relayhost: &str,
        default_transport: &str,
        local_transport: &str,
        recipient_delimiter: &str,
    ) -> Router {
        let (t, n) = split_value(default_transport);
        let default_transport = (if t.is_empty() { "smtp" } else { t }.to_owned(), n.to_owned());
        let (l, _) = split_value(local_transport);
        Router {
            local_domains,
            transport_maps,
            relayhost: relayhost.trim().to_owned(),
            default_transport,
            local_transport: if l.is_empty() { "local" } else { l }.to_owned(),
            recipient_delimiter: recipient_delimiter.to_owned(),
            relay_domains: DomainList::default(),
            relay_transport: ("relay".to_owned(), String::new()),
        }
    }

    /// Routes `relay_domains` to `relay_transport` (`transport[:nexthop]`,
    /// an empty transport meaning `relay`).
    pub(crate) fn with_relay(mut self, domains: DomainList, relay_transport: &str) -> Router {
        let (t, n) = split_value(relay_transport);
        self.relay_domains = domains;
        self.relay_transport = (if t.is_empty() { "relay" } else { t }.to_owned(), n.to_owned());
        self
    }

    /// Whether `transport` is the local delivery agent's.
    pub(crate) fn is_local(&self, transport: &str) -> bool {
        transport == self.local_transport
    }

    /// The route of one recipient.
    pub(crate) fn resolve(&self, address: &Address) -> Route {
        let domain = address.domain().map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        let local = match &domain {
            None => true,
            Some(d) => self.local_domains.contains(d),
        };
        let (mut transport, mut nexthop) = if local {
            (self.local_transport.clone(), String::new())
        } else {
            let d = domain.clone().unwrap_or_default();
            // trivial-rewrite's address classes: relay_domains take
            // relay_transport, everything else default_transport.
            let class = match self.relay_domains.matches(&d) {
                Ok(true) => &self.relay_transport,
                Ok(false) => &self.default_transport,
                Err(e) => {
                    return Route::Defer {
                        dsn: EnhancedStatus(4, 3, 0),
                        text: format!("relay_domains lookup failure: {e}"),
                    };
                }
            };
            let n = if !class.1.is_empty() {
                class.1.clone()
            } else if !self.relayhost.is_empty() {
                self.relayhost.clone()
            } else {
                d
            };
            (class.0.clone(), n)
        };
        match self.lookup(address, domain.as_deref()) {
            Err(e) => {
                return Route::Defer {
                    dsn: EnhancedStatus(4, 3, 0),
                    text: format!("transport_maps lookup failure: {e}"),
                };
            }
            Ok(None) => {}
            Ok(Some(value)) => {
                let (t, n) = split_value(&value);
                if t == "error" {
                    let (dsn, text) = error_code(n);
                    return Route::Error { dsn, text };
                }
                if t == "discard" {
                    let text = if n.is_empty() { "discarded" } else { n };
                    return Route::Discard { text: text.to_owned() };
                }
                if !t.is_empty() {
                    transport = t.to_owned();
                }
                if !n.is_empty() {
                    nexthop = n.to_owned();
                }
            }
        }
        if !valid_transport(&transport) {
            return Route::Defer {
                dsn: EnhancedStatus(4, 3, 5),
                text: format!("mail transport unavailable: bad transport name \"{transport}\""),
            };
        }
        if self.is_local(&transport) {
            // local delivery needs no next hop; one group for all of it.
            nexthop.clear();
        }
        Route::Deliver { transport, nexthop }
    }

    /// transport(5)'s search: `user+ext@domain`, `user@domain`, then the
    /// domain, its parents as `.parent`, and `*`.
    fn lookup(&self, address: &Address, domain: Option<&str>) -> Result<Option<String>, String> {
        if self.transport_maps.is_empty() {
            return Ok(None);
        }
        let get = |key: &str| self.transport_maps.get(key).map_err(|e| e.to_string());
        let full = address.to_string().to_lowercase();
        if domain.is_some() {
            if let Some(v) = get(&full)? {
                return Ok(Some(v));
            }
            let (user, _) =
                mail_lookup::split_extension(address.local(), &self.recipient_delimiter);
            let bare = format!("{user}@{}", domain.unwrap_or_default()).to_lowercase();
            if bare != full
                && let Some(v) = get(&bare)?
            {
                return Ok(Some(v));
            }
        }
        if let Some(d) = domain {
            if let Some(v) = get(d)? {
                return Ok(Some(v));
            }
            let mut rest = d;
            while let Some(i) = rest.find('.') {
                let parent = &rest[i..];
                if parent.len() > 1
                    && let Some(v) = get(parent)?
                {
                    return Ok(Some(v));
                }
                rest = &rest[i + 1..];
            }
        }
        get("*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn router(
        table: &str,
        relayhost: &str,
        default_transport: &str,
    ) -> (Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let maps = if table.is_empty() {
            Maps::new(vec![])
        } else {
            let path = dir.path().join("transport");
            std::fs::File::create(&path).unwrap().write_all(table.as_bytes()).unwrap();
            Maps::new(vec![path])
        };
        let r = Router::new(
            LocalDomains::new(["postern.test", "localhost"]),
            maps,
            relayhost,
            default_transport,
            "local:mail.postern.test",
            "+",
        );
        (r, dir)
    }

    fn deliver(t: &str, n: &str) -> Route {
        Route::Deliver { transport: t.into(), nexthop: n.into() }
    }

    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[test]
    fn local_and_remote_without_tables() {
        let (r, _d) = router("", "", "smtp");
        assert_eq!(r.resolve(&a("suporte@postern.test")), deliver("local", ""));
        assert_eq!(r.resolve(&a("suporte@POSTERN.test")), deliver("local", ""));
        assert_eq!(r.resolve(&a("suporte")), deliver("local", ""));
        assert_eq!(r.resolve(&a("x@Example.ORG")), deliver("smtp", "example.org"));
        // Literals are never local (the smtpd rule).
        assert_eq!(r.resolve(&a("x@[127.0.0.1]")), deliver("smtp", "[127.0.0.1]"));
    }

    #[test]
    fn relayhost_and_default_transport_nexthops() {
        let (r, _d) = router("", "[relay.example]:587, backup.example", "smtp");
        assert_eq!(
            r.resolve(&a("x@example.org")),
            deliver("smtp", "[relay.example]:587, backup.example")
        );
        assert_eq!(r.resolve(&a("suporte@postern.test")), deliver("local", ""));
        // A nexthop in default_transport wins over relayhost (postconf(5)).
        let (r, _d) = router("", "[relay.example]", "relay:[other.example]:2525");
        assert_eq!(r.resolve(&a("x@example.org")), deliver("relay", "[other.example]:2525"));
    }

    #[test]
    fn relay_domains_take_relay_transport() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("relay_domains"), "tabled.example OK\n").unwrap();
        let items = ["partner.example".to_owned(), "hash:relay_domains".to_owned()];
        let domains = DomainList::new("relay_domains", &items, d.path()).unwrap();
        let (r, _t) = router("other.example smtp:[x.example]\n", "", "smtp");
        let r = r.with_relay(domains, "relay");
        // The recipient's domain, a subdomain and a table's key: relay,
        // their own MX as next hop.
        assert_eq!(r.resolve(&a("u@partner.example")), deliver("relay", "partner.example"));
        assert_eq!(r.resolve(&a("u@mx.partner.example")), deliver("relay", "mx.partner.example"));
        assert_eq!(r.resolve(&a("u@tabled.example")), deliver("relay", "tabled.example"));
        assert_eq!(r.resolve(&a("u@example.org")), deliver("smtp", "example.org"));
        // Ours stays local; transport_maps still wins over the class.
        assert_eq!(r.resolve(&a("suporte@postern.test")), deliver("local", ""));
        assert_eq!(r.resolve(&a("u@other.example")), deliver("smtp", "[x.example]"));
        // relayhost serves relay domains too; a nexthop in
        // relay_transport wins over it.
        let items = ["partner.example".to_owned()];
        let domains = || DomainList::new("relay_domains", &items, d.path()).unwrap();
        let (r, _t) = router("", "[smarthost.example]", "smtp");
        let r = r.with_relay(domains(), "");
        assert_eq!(r.resolve(&a("u@partner.example")), deliver("relay", "[smarthost.example]"));
        let (r, _t) = router("", "[smarthost.example]", "smtp");
        let r = r.with_relay(domains(), "inbound:[10.0.0.7]:2525");
        assert_eq!(r.resolve(&a("u@partner.example")), deliver("inbound", "[10.0.0.7]:2525"));
    }

    #[test]
    fn transport_maps_search_order_and_values() {
        let table = "\
user+tag@example.org  smtp:[tagged.example]
user@example.org      smtp:[user.example]:2525
example.org           smtp:
.example.net          :[sub.example]
example.net           relay:
bad.example           error:5.1.1 no such domain here
soft.example          error:4.0.0 class 4 is no bounce
gone.example          discard:
quiet.example         discard:dropped by policy
postern.test          local:
forced.postern.test   smtp:[in.example]
weird.example         sm/tp:[x]
*                     smtp:[catchall.example]
";
        let (r, _d) = router(table, "[relay.example]", "smtp");
        assert_eq!(r.resolve(&a("user+tag@example.org")), deliver("smtp", "[tagged.example]"));
        assert_eq!(r.resolve(&a("user+other@example.org")), deliver("smtp", "[user.example]:2525"));
        assert_eq!(r.resolve(&a("USER@example.org")), deliver("smtp", "[user.example]:2525"));
        // An empty nexthop keeps the default one (relayhost here).
        assert_eq!(r.resolve(&a("other@example.org")), deliver("smtp", "[relay.example]"));
        // A parent matches only in the .domain form; an empty transport keeps the default.
        assert_eq!(r.resolve(&a("x@a.b.example.net")), deliver("smtp", "[sub.example]"));
        assert_eq!(r.resolve(&a("x@example.net")), deliver("relay", "[relay.example]"));
        assert_eq!(
            r.resolve(&a("x@bad.example")),
            Route::Error { dsn: EnhancedStatus(5, 1, 1), text: "no such domain here".into() }
        );
        assert_eq!(
            r.resolve(&a("x@soft.example")),
            Route::Error {
                dsn: EnhancedStatus(5, 0, 0),
                text: "4.0.0 class 4 is no bounce".into()
            }
        );
        assert_eq!(r.resolve(&a("x@gone.example")), Route::Discard { text: "discarded".into() });
        assert_eq!(
            r.resolve(&a("x@quiet.example")),
            Route::Discard { text: "dropped by policy".into() }
        );
        assert_eq!(r.resolve(&a("x@postern.test")), deliver("local", ""));
        assert_eq!(r.resolve(&a("x@forced.postern.test")), deliver("smtp", "[in.example]"));
        assert!(matches!(r.resolve(&a("x@weird.example")), Route::Defer { .. }));
        assert_eq!(r.resolve(&a("x@elsewhere.example")), deliver("smtp", "[catchall.example]"));
        // "*" applies to our own domains too, as in Postfix.
        assert_eq!(r.resolve(&a("suporte@localhost")), deliver("smtp", "[catchall.example]"));
    }

    #[test]
    fn a_table_that_cannot_be_read_defers() {
        let maps = Maps::new(vec!["/nonexistent/transport".into()]);
        let r = Router::new(LocalDomains::new(["postern.test"]), maps, "", "smtp", "local", "+");
        match r.resolve(&a("x@example.org")) {
            Route::Defer { dsn, text } => {
                assert_eq!(dsn, EnhancedStatus(4, 3, 0));
                assert!(text.contains("transport_maps lookup failure"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
}
