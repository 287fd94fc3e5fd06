//! LIST and LSUB matching (RFC 3501 §6.3.8): the reference joined to the
//! pattern, `*` matching anything and `%` anything but the hierarchy
//! separator, on the names as the session writes them.
//!
//! Severities: none.

/// The hierarchy separator (Maildir++'s).
pub(crate) const SEP: u8 = b'.';

/// Whether `name` matches `pattern`; INBOX matches case-insensitively.
/// Bounded: each `*` or `%` tries each position once per level of the
/// recursion, and patterns and names are short (command line and folder
/// name limits).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8], budget: &mut u32) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..], budget)),
            Some((b'%', rest)) => {
                let stop = n.iter().position(|&b| b == SEP).unwrap_or(n.len());
                (0..=stop).any(|i| go(rest, &n[i..], budget))
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..], budget),
        }
    }
    // A pattern full of wildcards could take exponential time; a match
    // that needs more steps than this does not exist in practice.
    let mut budget = 100_000;
    if name == "INBOX" {
        return go(pattern.to_ascii_uppercase().as_bytes(), name.as_bytes(), &mut budget);
    }
    go(pattern.as_bytes(), name.as_bytes(), &mut budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a.b"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a.b"));
        assert!(matches("a.%", "a.b"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("In%", "INBOX"));
        assert!(!matches("b*", "a"));
        // A pattern that would take exponential time gives up.
        assert!(!matches(&"*a".repeat(30), &format!("{}b", "a".repeat(60))));
    }
}
