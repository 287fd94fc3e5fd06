//! The local-domain test: is mail for this domain delivered on this
//! machine? The one home of the rule that smtpd (accept or relay), qmgr
//! (which transport) and local delivery (alias targets that stay local)
//! all apply, so they can never disagree.
//!
//! It is Postfix's `resolve_local()`: the domain, with one trailing dot
//! removed, compared case-insensitively with each `mydestination` entry
//! (already `$name`-expanded by [`crate::Main`], so the default
//! `$myhostname, localhost.$mydomain, localhost` covers this host name and
//! `localhost`). As in Postfix, `myhostname` is local only because the
//! default `mydestination` names it: an operator who leaves it out of
//! `mydestination` has said the host name is not a mail destination. A
//! domain ending in two dots, or empty, is never local.
//!
//! Not yet handled, as in the rest of Postern: `mydestination` entries
//! that name lookup tables (`hash:/etc/postfix/domains`) and address
//! literals (`user@[192.0.2.1]`) matching `inet_interfaces`.

/// The domains in `mydestination`, normalised for [`LocalDomains::contains`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalDomains {
    /// Lower-case, without a trailing dot, no empty entries.
    domains: Vec<String>,
}

impl LocalDomains {
    /// Builds the set from expanded `mydestination` entries.
    pub fn new<I, S>(entries: I) -> LocalDomains
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut domains: Vec<String> =
            entries.into_iter().filter_map(|e| normalise(e.as_ref())).collect();
        domains.dedup();
        LocalDomains { domains }
    }

    /// Whether mail for `domain` is delivered here.
    pub fn contains(&self, domain: &str) -> bool {
        match normalise(domain) {
            Some(d) => self.domains.contains(&d),
            None => false,
        }
    }

    /// The domains, lower-case and without trailing dots, in
    /// `mydestination`'s order.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }
}

/// Lower-cases and strips one trailing dot; `None` for an empty name or
/// one that still ends in a dot (`example.com..`).
fn normalise(domain: &str) -> Option<String> {
    let d = domain.trim();
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.is_empty() || d.ends_with('.') { None } else { Some(d.to_ascii_lowercase()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_resolve_local() {
        let l = LocalDomains::new([
            "mail.example.com",
            "localhost.example.com",
            "localhost",
            "Example.COM.",
        ]);
        assert!(l.contains("MAIL.example.com"));
        assert!(l.contains("example.com."));
        assert!(l.contains("localhost.example.com"));
        assert!(l.contains("localhost"));
        assert!(l.contains("LOCALHOST."));
        assert!(!l.contains("other.example.com"));
        assert!(!l.contains("example.com.."));
        assert!(!l.contains("."));
        assert!(!l.contains(""));
        assert!(!l.contains("sub.mail.example.com"));
        assert_eq!(
            l.domains(),
            ["mail.example.com", "localhost.example.com", "localhost", "example.com"]
        );
    }

    #[test]
    fn empty_mydestination_has_no_local_domain() {
        let l = LocalDomains::new(Vec::<String>::new());
        assert!(!l.contains("localhost"));
        let l = LocalDomains::new(["", "."]);
        assert!(l.domains().is_empty());
    }
}
