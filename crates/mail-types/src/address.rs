//! Mail addresses as RFC 5321 §4.1.2 spells a `Mailbox`.

use std::fmt;

/// Longest local part RFC 5321 §4.5.3.1.1 requires us to accept.
const MAX_LOCAL: usize = 64;
/// Longest domain, RFC 5321 §4.5.3.1.2.
const MAX_DOMAIN: usize = 255;

/// A mailbox address: a local part and, unless the address is unqualified
/// (as `sendmail suporte` gives it), a domain.
///
/// The domain is kept in lower case; the local part as written, since only
/// the destination host may interpret its case (RFC 5321 §2.4).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: Option<String>,
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// The local part is empty.
    EmptyLocalPart,
    /// The local part is longer than 64 octets.
    LocalPartTooLong,
    /// The local part has a character or dot placement RFC 5321 forbids.
    BadLocalPart,
    /// The domain is empty, too long, or has a bad label.
    BadDomain,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::EmptyLocalPart => "empty local part",
            AddressError::LocalPartTooLong => "local part longer than 64 octets",
            AddressError::BadLocalPart => "malformed local part",
            AddressError::BadDomain => "malformed domain",
        })
    }
}

impl std::error::Error for AddressError {}

impl Address {
    /// Parses `local@domain` or a bare `local` (unqualified).
    ///
    /// The split is at the last `@` outside a quoted local part.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let (local, domain) = split_at_domain(s);
        check_local(local)?;
        let domain = match domain {
            Some(d) => Some(check_domain(d)?),
            None => None,
        };
        Ok(Address { local: local.to_owned(), domain })
    }

    /// Builds an address from parts already checked elsewhere (a lookup
    /// result, say). The parts are still validated.
    pub fn new(local: &str, domain: Option<&str>) -> Result<Address, AddressError> {
        check_local(local)?;
        let domain = match domain {
            Some(d) => Some(check_domain(d)?),
            None => None,
        };
        Ok(Address { local: local.to_owned(), domain })
    }

    /// The local part as written.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain in lower case, if the address is qualified.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Whether the address holds anything but ASCII: such an address
    /// may only be used in a transaction that declared `SMTPUTF8`
    /// (RFC 6531 §3.4).
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || self.domain.as_deref().is_some_and(|d| !d.is_ascii())
    }

    /// Returns the address with `domain` appended if it had none
    /// (Postfix's `append_at_myorigin`).
    pub fn qualified(self, domain: &str) -> Address {
        if self.domain.is_some() {
            return self;
        }
        Address { local: self.local, domain: Some(domain.to_ascii_lowercase()) }
    }
}

fn split_at_domain(s: &str) -> (&str, Option<&str>) {
    // A quoted local part may itself contain '@'; the domain never does.
    match s.rfind('@') {
        Some(i) if !s[i..].contains('"') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

fn check_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL {
        return Err(AddressError::LocalPartTooLong);
    }
    if local.starts_with('"') {
        // RFC 5321 Quoted-string: qtextSMTP or quoted-pairSMTP.
        let inner = local
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
            .ok_or(AddressError::BadLocalPart)?;
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                if !(' '..='~').contains(&c) {
                    return Err(AddressError::BadLocalPart);
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || c.is_control() {
                return Err(AddressError::BadLocalPart);
            }
        }
        return if escaped { Err(AddressError::BadLocalPart) } else { Ok(()) };
    }
    // Dot-string: atoms of atext separated by single dots (RFC 5322 §3.2.3),
    // with UTF-8 allowed as RFC 6531 does.
    for atom in local.split('.') {
        if atom.is_empty() || !atom.chars().all(is_atext) {
            return Err(AddressError::BadLocalPart);
        }
    }
    Ok(())
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

fn check_domain(domain: &str) -> Result<String, AddressError> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return Err(AddressError::BadDomain);
    }
    if let Some(lit) = domain.strip_prefix('[') {
        // Address literal, RFC 5321 §4.1.3.
        let inner = lit.strip_suffix(']').ok_or(AddressError::BadDomain)?;
        let ok = match inner.strip_prefix("IPv6:").or_else(|| inner.strip_prefix("ipv6:")) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        return if ok { Ok(domain.to_ascii_lowercase()) } else { Err(AddressError::BadDomain) };
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || c == '-'
                    || c == '_'
                    || (!c.is_ascii() && !c.is_control())
            });
        if !ok {
            return Err(AddressError::BadDomain);
        }
    }
    Ok(domain.to_lowercase())
}

/// Compares with the text form, for tests and checks against literals.
impl PartialEq<&str> for Address {
    fn eq(&self, other: &&str) -> bool {
        match &self.domain {
            Some(d) => other
                .strip_suffix(d.as_str())
                .and_then(|o| o.strip_suffix('@'))
                .is_some_and(|l| l == self.local),
            None => *other == self.local,
        }
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Address, AddressError> {
        Address::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.domain {
            Some(d) => write!(f, "{}@{}", self.local, d),
            None => f.write_str(&self.local),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let a = Address::parse("root@Fiap.EDU.br").unwrap();
        assert_eq!((a.local(), a.domain()), ("root", Some("fiap.edu.br")));
        assert!(a == "root@fiap.edu.br" && a != "root@fiap.edu" && a != "root");
        let a = Address::parse("suporte").unwrap();
        assert_eq!(a.domain(), None);
        assert!(a == "suporte" && a != "suporte@x.org");
        assert_eq!(a.qualified("example.org").to_string(), "suporte@example.org");
        assert_eq!(Address::parse("\"a@b c\"@x.org").unwrap().local(), "\"a@b c\"");
        assert!(Address::parse("u@[127.0.0.1]").is_ok());
        assert!(Address::parse("u+ext@x.org").is_ok());
        // RFC 6531: UTF-8 local parts and domains; the domain lower-cased.
        let a = Address::parse("üser@Exämple.ORG").unwrap();
        assert_eq!((a.local(), a.domain()), ("üser", Some("exämple.org")));
        assert!(a.is_utf8() && !Address::parse("u@x.org").unwrap().is_utf8());
        assert!(Address::parse("u@exämple.org").unwrap().is_utf8());
        // C1 controls are refused in UTF-8 as C0 ones are in ASCII.
        assert!(Address::parse("a\u{85}b@x.org").is_err());
        assert!(Address::parse("a@x\u{9f}.org").is_err());
        assert!(Address::parse("a\u{7f}@x.org").is_err());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "@x.org",
            "a..b@x.org",
            ".a@x.org",
            "a@",
            "a@-x.org",
            "a@x..org",
            "a b@x.org",
            "a@[1.2.3]",
            "\"a@x.org",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Address::parse(&"a".repeat(65)), Err(AddressError::LocalPartTooLong));
    }
}
