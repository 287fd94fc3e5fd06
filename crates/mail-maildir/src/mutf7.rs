//! IMAP's modified UTF-7 (RFC 3501 §5.1.3), the form mailbox names take on
//! the wire for IMAP4rev1 clients and, as Courier and Dovecot keep them, in
//! Maildir++ folder directory names.
//!
//! Printable ASCII (0x20–0x7e) stands for itself, except `&`, written `&-`;
//! anything else is UTF-16 in a modified base64 (`,` instead of `/`, no
//! padding) between `&` and `-`. The decoder is strict so that one name
//! has one spelling: a shift that encodes printable ASCII, an empty shift
//! other than `&-`, two shifts in a row, leftover bits that are not zero,
//! or a lone surrogate make the text invalid.

/// The modified base64 alphabet: RFC 2045's with `,` for `/`.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// The modified UTF-7 form of `text`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut pending: Vec<u16> = Vec::new();
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Writes the UTF-16 units as one `&...-` shift.
fn flush(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let digits = chunk.len() + 1;
        for i in 0..digits {
            let six = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[six as usize]));
        }
    }
    out.push('-');
    units.clear();
}

/// The text a modified UTF-7 string stands for; `None` when it is not
/// valid (see the module documentation) or holds characters outside
/// printable ASCII.
pub fn decode(wire: &str) -> Option<String> {
    let bytes = wire.as_bytes();
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    // Whether the previous token was a base64 shift: RFC 3501 asks for
    // one shift per run of non-ASCII characters.
    let mut after_shift = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..=0x7e).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(char::from(b));
            i += 1;
            after_shift = false;
            continue;
        }
        let end = i + 1 + bytes[i + 1..].iter().position(|&c| c == b'-')?;
        let run = &bytes[i + 1..end];
        i = end + 1;
        if run.is_empty() {
            out.push('&');
            after_shift = false;
            continue;
        }
        if after_shift {
            return None;
        }
        out.push_str(&decode_run(run)?);
        after_shift = true;
    }
    Some(out)
}

/// One base64 run (between `&` and `-`) as text.
fn decode_run(run: &[u8]) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut bytes = Vec::with_capacity(run.len() * 3 / 4);
    for &c in run {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push(((bits >> nbits) & 0xff) as u8);
        }
    }
    // Leftover bits must be padding zeros, and fewer than six of them.
    if nbits >= 6 || bits & ((1 << nbits) - 1) != 0 || bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
    let text = String::from_utf16(&units).ok()?;
    // Printable ASCII must not hide in a shift: a name would have two
    // spellings.
    if text.chars().any(|c| (' '..='~').contains(&c)) {
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_3501_examples() {
        // RFC 3501 §5.1.3.
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(), "~peter/mail/台北/日本語");
        assert_eq!(encode("a&b"), "a&-b");
        assert_eq!(decode("a&-b").unwrap(), "a&b");
        assert_eq!(encode("Lixeira"), "Lixeira");
        assert_eq!(encode("Itens Excluídos"), "Itens Exclu&AO0-dos");
        assert_eq!(decode("Itens Exclu&AO0-dos").unwrap(), "Itens Excluídos");
        // Outside the BMP: a surrogate pair.
        assert_eq!(decode(&encode("x😀y")).unwrap(), "x😀y");
    }

    #[test]
    fn invalid_forms_are_refused() {
        for bad in [
            "&",                  // unterminated
            "&U,BTFw",            // unterminated
            "&U,BTFw-&ZeVnLIqe-", // two shifts in a row
            "&AGE-",              // "a" in a shift
            "&AO1-",              // non-zero padding bits
            "&2D0-",              // lone surrogate
            "&A-",                // too few bits
            "&*-",                // not in the alphabet
            "tab\there",          // control character
            "é",                  // raw non-ASCII
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(s in any::<String>()) {
            let wire = encode(&s);
            prop_assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&wire), Some(s));
        }

        #[test]
        fn decode_never_panics(s in "[ -~]{0,40}") {
            if let Some(text) = decode(&s) {
                prop_assert_eq!(encode(&text), s);
            }
        }
    }
}
