//! RFC 5322 §3.4 address lists read from raw header bytes, for ENVELOPE.
//!
//! RFC 3501 §7.4.2 wants the display name as it is on the wire (encoded
//! words not decoded), which is why this does not use mail-parser's
//! address parser (it decodes). The reader is lenient the way Dovecot's
//! is: obsolete routes become the `adl`, a missing domain stays empty, a
//! comment serves as the name when there is no phrase, and anything it
//! cannot make sense of is skipped up to the next comma. Bounded by
//! [`MAX_ADDRESSES`] per field.

/// Most addresses taken from one header field.
pub const MAX_ADDRESSES: usize = 1_000;

/// One address or group marker, in ENVELOPE terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Mailbox {
        name: Option<Vec<u8>>,
        adl: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Vec<u8>,
    },
    /// Start of a group: its display name.
    GroupStart(Vec<u8>),
    GroupEnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An atom or a quoted string (unescaped): `quoted` tells which.
    Word(Vec<u8>, bool),
    Comment(Vec<u8>),
    DomainLiteral(Vec<u8>),
    Special(u8),
}

fn tokenize(v: &[u8]) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let mut w = Vec::new();
                i += 1;
                while i < v.len() && v[i] != b'"' {
                    if v[i] == b'\\' && i + 1 < v.len() {
                        i += 1;
                    }
                    if v[i] != b'\r' && v[i] != b'\n' {
                        w.push(v[i]);
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Word(w, true));
            }
            b'(' => {
                // Comments nest (RFC 5322 §3.2.2); the depth is a counter,
                // not recursion.
                let mut depth = 1usize;
                let mut w = Vec::new();
                i += 1;
                while i < v.len() && depth > 0 {
                    match v[i] {
                        b'\\' if i + 1 < v.len() => {
                            i += 1;
                            w.push(v[i]);
                        }
                        b'(' => {
                            depth += 1;
                            w.push(b'(');
                        }
                        b')' => {
                            depth -= 1;
                            if depth > 0 {
                                w.push(b')');
                            }
                        }
                        b'\r' | b'\n' => {}
                        b => w.push(b),
                    }
                    i += 1;
                }
                out.push(Tok::Comment(w));
            }
            b'[' => {
                let start = i;
                while i < v.len() && v[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(v.len());
                out.push(Tok::DomainLiteral(
                    v[start..i].iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect(),
                ));
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'.' | b']' => {
                out.push(Tok::Special(c));
                i += 1;
            }
            _ => {
                let start = i;
                while i < v.len() && !b" \t\r\n\"(<>@,;:.[]".contains(&v[i]) {
                    i += 1;
                }
                out.push(Tok::Word(v[start..i].to_vec(), false));
            }
        }
    }
    out
}

/// Joins phrase words with single spaces, as a display name.
fn phrase(words: &[&Tok]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for t in words {
        match t {
            Tok::Word(w, _) => {
                if !out.is_empty() {
                    out.push(b' ');
                }
                out.extend_from_slice(w);
            }
            Tok::Special(b'.') => out.push(b'.'),
            _ => {}
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

/// Splits `local@domain` tokens (no angle brackets) into its two halves.
fn addr_spec(toks: &[&Tok]) -> (Vec<u8>, Vec<u8>) {
    let at = toks.iter().rposition(|t| **t == Tok::Special(b'@'));
    let (local, domain) = match at {
        Some(at) => (&toks[..at], &toks[at + 1..]),
        None => (toks, &[][..]),
    };
    let join = |ts: &[&Tok]| {
        let mut out = Vec::new();
        for t in ts {
            match t {
                Tok::Word(w, _) | Tok::DomainLiteral(w) => out.extend_from_slice(w),
                Tok::Special(c) => out.push(*c),
                Tok::Comment(_) => {}
            }
        }
        out
    };
    (join(local), join(domain))
}

/// One mailbox from the tokens between two commas.
fn mailbox(toks: &[&Tok]) -> Option<Item> {
    let comment = toks.iter().rev().find_map(|t| match t {
        Tok::Comment(c) if !c.is_empty() => Some(c.clone()),
        _ => None,
    });
    let toks: Vec<&Tok> = toks.iter().copied().filter(|t| !matches!(t, Tok::Comment(_))).collect();
    if toks.is_empty() {
        return None;
    }
    if let Some(open) = toks.iter().position(|t| **t == Tok::Special(b'<')) {
        let close = toks
            .iter()
            .skip(open)
            .position(|t| **t == Tok::Special(b'>'))
            .map_or(toks.len(), |c| c + open);
        let name = phrase(&toks[..open]).or(comment);
        let mut inner = &toks[open + 1..close];
        // RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec.
        let mut adl = None;
        if let Some(colon) = inner.iter().position(|t| **t == Tok::Special(b':'))
            && inner.first().is_some_and(|t| **t == Tok::Special(b'@'))
        {
            {
                let mut route = Vec::new();
                for t in &inner[..colon] {
                    match t {
                        Tok::Word(w, _) | Tok::DomainLiteral(w) => route.extend_from_slice(w),
                        Tok::Special(c) => route.push(*c),
                        Tok::Comment(_) => {}
                    }
                }
                adl = Some(route);
                inner = &inner[colon + 1..];
            }
        }
        if inner.is_empty() {
            // "<>" (a null return path in a From line): Dovecot keeps it as
            // an address with an empty mailbox and host.
            return Some(Item::Mailbox { name, adl, mailbox: Vec::new(), host: Vec::new() });
        }
        let (mailbox, host) = addr_spec(inner);
        return Some(Item::Mailbox { name, adl, mailbox, host });
    }
    let (mailbox, host) = addr_spec(&toks);
    Some(Item::Mailbox { name: comment, adl: None, mailbox, host })
}

/// Parses an address-list header value into ENVELOPE items.
pub(crate) fn parse_list(value: &[u8]) -> Vec<Item> {
    let toks = tokenize(value);
    let mut out = Vec::new();
    let mut current: Vec<&Tok> = Vec::new();
    let mut in_group = false;
    let mut in_angle = false;
    let flush = |current: &mut Vec<&Tok>, out: &mut Vec<Item>| {
        if out.len() < MAX_ADDRESSES
            && let Some(m) = mailbox(current)
        {
            out.push(m);
        }
        current.clear();
    };
    for t in &toks {
        match t {
            Tok::Special(b'<') => {
                in_angle = true;
                current.push(t);
            }
            Tok::Special(b'>') => {
                in_angle = false;
                current.push(t);
            }
            Tok::Special(b':') if !in_angle && !in_group => {
                let name = phrase(&current).unwrap_or_default();
                current.clear();
                if out.len() < MAX_ADDRESSES {
                    out.push(Item::GroupStart(name));
                }
                in_group = true;
            }
            Tok::Special(b';') if in_group && !in_angle => {
                flush(&mut current, &mut out);
                out.push(Item::GroupEnd);
                in_group = false;
            }
            Tok::Special(b',') if !in_angle => flush(&mut current, &mut out),
            _ => current.push(t),
        }
    }
    flush(&mut current, &mut out);
    if in_group {
        out.push(Item::GroupEnd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, mailbox: &str, host: &str) -> Item {
        Item::Mailbox {
            name: name.map(|n| n.as_bytes().to_vec()),
            adl: None,
            mailbox: mailbox.into(),
            host: host.into(),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_list(b" \"Joe Q. Public\" <john.q.public@example.com>, Mary Smith <mary@x.test>, jdoe@example.org (John)"),
            vec![
                mb(Some("Joe Q. Public"), "john.q.public", "example.com"),
                mb(Some("Mary Smith"), "mary", "x.test"),
                mb(Some("John"), "jdoe", "example.org"),
            ]
        );
        assert_eq!(
            parse_list(b" =?utf-8?q?J=C3=B6rg?= <j@x.test>"),
            vec![mb(Some("=?utf-8?q?J=C3=B6rg?="), "j", "x.test")]
        );
    }

    #[test]
    fn groups() {
        assert_eq!(
            parse_list(b" A Group:Ed Jones <c@a.test>,joe@where.test;, undisclosed-recipients:;"),
            vec![
                Item::GroupStart(b"A Group".to_vec()),
                mb(Some("Ed Jones"), "c", "a.test"),
                mb(None, "joe", "where.test"),
                Item::GroupEnd,
                Item::GroupStart(b"undisclosed-recipients".to_vec()),
                Item::GroupEnd,
            ]
        );
    }

    #[test]
    fn route_and_missing_domain() {
        assert_eq!(
            parse_list(b"<@a.test,@b.test:u@c.test>, bare"),
            vec![
                Item::Mailbox {
                    name: None,
                    adl: Some(b"@a.test,@b.test".to_vec()),
                    mailbox: b"u".to_vec(),
                    host: b"c.test".to_vec()
                },
                mb(None, "bare", ""),
            ]
        );
    }
}
