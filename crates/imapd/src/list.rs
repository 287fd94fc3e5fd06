//! LIST and LSUB matching (RFC 3501 §6.3.8): the reference joined to the
//! pattern, `*` matching anything and `%` anything but the hierarchy
//! separator, on the names as the session writes them; and the parser of
//! LIST-EXTENDED's form (RFC 5258, RFC 5819, RFC 6154), which the pinned
//! imap-codec does not read: selection options, several patterns,
//! RETURN options with STATUS.
//!
//! The parser reads the whole message (literals included, as the framing
//! delivered it) and is bounded by it: at most [`MAX_ITEMS`] options,
//! patterns or STATUS items each, no recursion.
//!
//! Severities: none; unknown options are a tagged BAD.

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

/// The most selection options, patterns, return options or STATUS
/// items a LIST may hold.
pub(crate) const MAX_ITEMS: usize = 16;

/// A LIST in RFC 5258's form.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Extended {
    pub(crate) subscribed: bool,
    pub(crate) remote: bool,
    pub(crate) recursive: bool,
    pub(crate) special_use: bool,
    pub(crate) reference: Vec<u8>,
    pub(crate) patterns: Vec<Vec<u8>>,
    pub(crate) return_subscribed: bool,
    pub(crate) return_children: bool,
    pub(crate) return_special_use: bool,
    /// LIST-STATUS's items, upper case (`MESSAGES`, ...).
    pub(crate) return_status: Option<Vec<String>>,
    /// Anything beyond RFC 3501's `LIST ref pattern` was given.
    pub(crate) extended: bool,
}

/// Parses the arguments of a LIST: `rest` starts right after `LIST`.
/// `Ok(None)` when it does not read as a LIST at all (the codec then
/// answers), `Err` with the BAD text for an unknown option.
pub(crate) fn parse_extended(rest: &[u8]) -> Result<Option<Extended>, &'static str> {
    let mut c = Cur { s: rest, at: 0 };
    let mut l = Extended::default();
    if !c.eat(b' ') {
        return Ok(None);
    }
    if c.peek() == Some(b'(') {
        l.extended = true;
        let Some(opts) = c.atoms() else { return Ok(None) };
        for o in opts {
            match o.to_ascii_uppercase().as_slice() {
                b"SUBSCRIBED" => l.subscribed = true,
                b"REMOTE" => l.remote = true,
                b"RECURSIVEMATCH" => l.recursive = true,
                b"SPECIAL-USE" => l.special_use = true,
                _ => return Err("BAD Error in IMAP command LIST: Unknown select options"),
            }
        }
        if !c.eat(b' ') {
            return Ok(None);
        }
    }
    let Some(reference) = c.string(false) else { return Ok(None) };
    l.reference = reference;
    if !c.eat(b' ') {
        return Ok(None);
    }
    if c.eat(b'(') {
        l.extended = true;
        loop {
            let Some(p) = c.string(true) else { return Ok(None) };
            l.patterns.push(p);
            if l.patterns.len() > MAX_ITEMS {
                return Ok(None);
            }
            if c.eat(b')') {
                break;
            }
            if !c.eat(b' ') {
                return Ok(None);
            }
        }
    } else {
        let Some(p) = c.string(true) else { return Ok(None) };
        l.patterns.push(p);
    }
    if c.eat(b' ') {
        l.extended = true;
        let Some(word) = c.atom() else { return Ok(None) };
        if !word.eq_ignore_ascii_case(b"RETURN") || !c.eat(b' ') || !c.eat(b'(') {
            return Ok(None);
        }
        let mut n = 0;
        while !c.eat(b')') {
            n += 1;
            if n > MAX_ITEMS || (n > 1 && !c.eat(b' ')) {
                return Ok(None);
            }
            let Some(o) = c.atom() else { return Ok(None) };
            match o.to_ascii_uppercase().as_slice() {
                b"SUBSCRIBED" => l.return_subscribed = true,
                b"CHILDREN" => l.return_children = true,
                b"SPECIAL-USE" => l.return_special_use = true,
                b"STATUS" => {
                    if !c.eat(b' ') || c.peek() != Some(b'(') {
                        return Ok(None);
                    }
                    let Some(items) = c.atoms() else { return Ok(None) };
                    let items: Vec<String> = items
                        .iter()
                        .map(|i| String::from_utf8_lossy(i).to_ascii_uppercase())
                        .collect();
                    if items.is_empty() {
                        return Ok(None);
                    }
                    l.return_status = Some(items);
                }
                _ => return Err("BAD Error in IMAP command LIST: Unknown return options"),
            }
        }
    }
    if !(c.eat(b'\r') && c.eat(b'\n') || c.eat(b'\n')) || c.at != rest.len() {
        return Ok(None);
    }
    Ok(Some(l))
}

/// A cursor over a command's bytes (also MULTIAPPEND's, `pre.rs`).
pub(crate) struct Cur<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) at: usize,
}

impl Cur<'_> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    /// An atom: no SP, parentheses, quotes, braces, controls or `%*`
    /// (`]` allowed, as ASTRING-CHAR does).
    fn atom(&mut self) -> Option<&[u8]> {
        self.word(false)
    }

    fn word(&mut self, wildcards: bool) -> Option<&[u8]> {
        let start = self.at;
        while let Some(b) = self.peek() {
            let special = matches!(b, b' ' | b'(' | b')' | b'"' | b'{' | b'\\')
                || b < 0x20
                || b == 0x7f
                || (!wildcards && matches!(b, b'%' | b'*'));
            if special {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then(|| &self.s[start..self.at])
    }

    /// `(atom atom ...)`, at most [`MAX_ITEMS`] atoms.
    fn atoms(&mut self) -> Option<Vec<Vec<u8>>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut out = Vec::new();
        while !self.eat(b')') {
            if !out.is_empty() && !self.eat(b' ') {
                return None;
            }
            out.push(self.atom()?.to_vec());
            if out.len() > MAX_ITEMS {
                return None;
            }
        }
        Some(out)
    }

    /// An astring (or, with `wildcards`, a list-mailbox): an atom, a
    /// quoted string or a literal.
    pub(crate) fn string(&mut self, wildcards: bool) -> Option<Vec<u8>> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.at += 1;
                            return Some(out);
                        }
                        b'\\' => {
                            self.at += 1;
                            let b = self.peek()?;
                            if b != b'"' && b != b'\\' {
                                return None;
                            }
                            out.push(b);
                            self.at += 1;
                        }
                        b'\r' | b'\n' | 0 => return None,
                        b => {
                            out.push(b);
                            self.at += 1;
                        }
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let start = self.at;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.at += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.at]).ok()?;
                if digits.is_empty() || digits.len() > 10 {
                    return None;
                }
                let n: usize = digits.parse().ok()?;
                self.eat(b'+');
                if !(self.eat(b'}') && self.eat(b'\r') && self.eat(b'\n')) {
                    return None;
                }
                let end = self.at.checked_add(n).filter(|e| *e <= self.s.len())?;
                let out = self.s[self.at..end].to_vec();
                self.at = end;
                Some(out)
            }
            _ => self.word(wildcards).map(<[u8]>::to_vec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_list_commands() {
        assert!(!parse_extended(b" \"\" *\r\n").unwrap().unwrap().extended);
        let l = parse_extended(
            b" (SUBSCRIBED recursivematch) {0}\r\n (\"INBOX\" Se* {2+}\r\na%) RETURN (CHILDREN STATUS (MESSAGES uidnext))\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(l.subscribed && l.recursive && !l.remote && l.return_children && l.extended);
        assert_eq!(l.reference, b"");
        assert_eq!(l.patterns, [&b"INBOX"[..], b"Se*", b"a%"]);
        assert_eq!(l.return_status, Some(vec!["MESSAGES".to_string(), "UIDNEXT".to_string()]));
        assert_eq!(parse_extended(b" () \"\" x RETURN ()\r\n").unwrap().unwrap().patterns, [b"x"]);
        assert!(parse_extended(b" (BOGUS) \"\" *\r\n").is_err());
        assert!(parse_extended(b" \"\" * RETURN (BOGUS)\r\n").is_err());
        for bad in [
            &b" (SUBSCRIBED \"\" *\r\n"[..],
            b" \"\" (a b\r\n",
            b" \"\" *",
            b" \"\" * RETURN (STATUS ())\r\n",
            b" \"\" {99}\r\nx\r\n",
            b" \"\" * RETURN\r\n",
            b" \"\\x\" *\r\n",
        ] {
            assert_eq!(parse_extended(bad), Ok(None), "{bad:?}");
        }
        let many = format!(" \"\" ({})\r\n", vec!["a"; MAX_ITEMS + 1].join(" "));
        assert_eq!(parse_extended(many.as_bytes()), Ok(None));
    }

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
