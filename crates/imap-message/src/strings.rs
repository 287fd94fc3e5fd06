//! Turning message bytes into IMAP strings that always validate.
//!
//! imap-types refuses NUL in any string and CR, LF or 8-bit bytes in a
//! quoted string. Header values are unfolded first (RFC 5322 §2.2.3, as
//! Dovecot does for ENVELOPE), so the result is a quoted string when it
//! can be and a literal otherwise; a NUL, which no IMAP string can carry,
//! becomes 0x80 as in Dovecot.

use std::borrow::Cow;

use imap_types::core::{IString, Literal, NString, Quoted};

/// Removes CR and LF (header unfolding) and replaces NUL.
pub(crate) fn unfold(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .filter(|&&b| b != b'\r' && b != b'\n')
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect()
}

/// An IMAP string for `bytes` (used as given, after NUL replacement).
pub(crate) fn istring(bytes: Vec<u8>) -> IString<'static> {
    let bytes = if bytes.contains(&0) {
        bytes.into_iter().map(|b| if b == 0 { 0x80 } else { b }).collect()
    } else {
        bytes
    };
    match String::from_utf8(bytes) {
        Ok(s) if Quoted::validate(s.as_bytes()).is_ok() => IString::Quoted(Quoted::unvalidated(s)),
        Ok(s) => IString::Literal(Literal::unvalidated(s.into_bytes())),
        Err(e) => IString::Literal(Literal::unvalidated(e.into_bytes())),
    }
}

/// An IMAP string from text known to be short and plain.
pub(crate) fn istr(s: &str) -> IString<'static> {
    istring(s.as_bytes().to_vec())
}

/// A non-NIL nstring for `bytes`.
pub(crate) fn nstring(bytes: Vec<u8>) -> NString<'static> {
    NString(Some(istring(bytes)))
}

/// An nstring for section data that may hold anything: NUL becomes 0x80.
pub fn nstring_data(bytes: Cow<'_, [u8]>) -> NString<'_> {
    let bytes = if bytes.contains(&0) {
        Cow::Owned(bytes.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect())
    } else {
        bytes
    };
    // Always a literal, as Dovecot sends section data: the size is
    // known and nothing needs escaping.
    NString(Some(IString::Literal(Literal::unvalidated(bytes))))
}

/// The header value without its leading white space, unfolded, or NIL
/// when there is no such field. Trailing white space stays, as in
/// Dovecot's ENVELOPE.
pub(crate) fn nstring_value(value: Option<&[u8]>) -> NString<'static> {
    match value {
        Some(v) => nstring(unfold(trim_start_ws(v))),
        None => NString::NIL,
    }
}

pub(crate) fn trim_start_ws(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if first.is_ascii_whitespace() { v = rest } else { break }
    }
    v
}

pub(crate) fn trim_ws(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if first.is_ascii_whitespace() { v = rest } else { break }
    }
    while let [rest @ .., last] = v {
        if last.is_ascii_whitespace() { v = rest } else { break }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_when_possible() {
        assert!(matches!(istring(b"plain".to_vec()), IString::Quoted(_)));
        assert!(matches!(istring("caf\u{e9}".as_bytes().to_vec()), IString::Literal(_)));
        assert!(matches!(istring(vec![0xff, 0x00]), IString::Literal(_)));
        assert_eq!(unfold(b"a\r\n b\0"), b"a b\x80");
    }
}
