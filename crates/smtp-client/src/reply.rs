//! SMTP replies, parsed without I/O (RFC 5321 §4.2): the session feeds
//! each line it read, and the parser says when a reply is complete.
//!
//! Everything here is outside input, so it is bounded: a line longer
//! than [`MAX_LINE`] octets (RFC 5321 §4.5.3.1.5: 512 with CRLF) and a
//! reply of more than [`MAX_LINES`] lines are protocol errors, as is a
//! line that does not start with three digits and a space or hyphen, or
//! a continuation whose code differs from the first line's. The session
//! turns every error into a deferral ("lost connection" in Postfix's
//! words would hide the cause). Text kept from a reply is made printable
//! so it can go into a log line and a bounce.

/// The longest reply line, CRLF included.
pub const MAX_LINE: usize = 512;

/// The most lines of one reply. EHLO replies are the longest a real
/// server sends (about 15 lines).
pub const MAX_LINES: usize = 100;

/// A complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without the code and separator, printable.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx (354 to DATA, 334 to AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The enhanced status code at the start of the first line (RFC 2034),
    /// if it is there and its class agrees with the reply code.
    pub fn enhanced(&self) -> Option<mail_types::EnhancedStatus> {
        let first = self.lines.first()?;
        let word = first.split(' ').next()?;
        let status = mail_types::EnhancedStatus::parse(word)?;
        (u16::from(status.0) == self.code / 100).then_some(status)
    }

    /// The whole reply on one line, as Postfix logs it: `550 5.1.1 <u@d>:
    /// Recipient address rejected: ...`, lines joined with a space.
    pub fn text(&self) -> String {
        let mut s = self.code.to_string();
        for l in &self.lines {
            if !l.is_empty() {
                s.push(' ');
                s.push_str(l);
            }
        }
        // A bounce and a log line need not carry 100 lines of text.
        if s.len() > 1000 {
            let mut cut = 1000;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        s
    }
}

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line of more than [`MAX_LINE`] octets.
    LineTooLong,
    /// More than [`MAX_LINES`] lines.
    TooManyLines,
    /// Not `DDD`, `DDD text` or `DDD-text`, or a code out of 200..=599.
    Malformed(String),
    /// A continuation line with another code than the first.
    CodeChanged,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::LineTooLong => write!(f, "reply line longer than {MAX_LINE} octets"),
            ReplyError::TooManyLines => write!(f, "reply of more than {MAX_LINES} lines"),
            ReplyError::Malformed(line) => write!(f, "malformed reply: {line}"),
            ReplyError::CodeChanged => f.write_str("malformed reply: the code changes within it"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Collects the lines of one reply.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Feeds one line, with or without its CRLF. `Ok(Some)` when it was the
    /// last line of the reply (the parser is then ready for the next).
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        if line.len() > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let malformed = || ReplyError::Malformed(printable(line, 60));
        let (digits, rest) = line.split_at_checked(3).ok_or_else(malformed)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
        let code = digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        if !(200..=599).contains(&code) {
            return Err(malformed());
        }
        let (last, text) = match rest.split_first() {
            None => (true, &[][..]),
            Some((b' ', text)) => (true, text),
            Some((b'-', text)) => (false, text),
            Some(_) => return Err(malformed()),
        };
        match self.code {
            Some(c) if c != code => return Err(ReplyError::CodeChanged),
            _ => self.code = Some(code),
        }
        self.lines.push(printable(text, MAX_LINE));
        if last {
            self.code = None;
            Ok(Some(Reply { code, lines: std::mem::take(&mut self.lines) }))
        } else {
            Ok(None)
        }
    }
}

/// `bytes` as text safe for a log line: at most `max` characters,
/// anything but printable ASCII made `?`.
pub fn printable(bytes: &[u8], max: usize) -> String {
    bytes
        .iter()
        .take(max)
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' })
        .collect()
}

/// The EHLO keywords that change what the client does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE, with the server's limit (0: none announced).
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// AUTH mechanisms offered, upper case.
    pub auth: Vec<String>,
}

impl Extensions {
    /// From an EHLO reply: the first line is the greeting name, each
    /// further line a keyword with parameters.
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut e = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else { continue };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => e.pipelining = true,
                "SIZE" => e.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => e.eight_bit_mime = true,
                "SMTPUTF8" => e.smtputf8 = true,
                "STARTTLS" => e.starttls = true,
                "DSN" => e.dsn = true,
                "AUTH" => e.auth = words.map(|w| w.to_ascii_uppercase()).take(20).collect(),
                _ => {}
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(lines: &[&[u8]]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::new();
        let mut out = Vec::new();
        for l in lines {
            if let Some(r) = p.feed(l)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn single_and_multi_line_replies() {
        let r = parse_all(&[b"250 2.0.0 Ok: queued as ABC\r\n"]).unwrap();
        assert_eq!(r[0].code, 250);
        assert_eq!(r[0].text(), "250 2.0.0 Ok: queued as ABC");
        assert_eq!(r[0].enhanced(), Some(mail_types::EnhancedStatus(2, 0, 0)));
        let r = parse_all(&[
            b"250-mx.example\r\n",
            b"250-PIPELINING\r\n",
            b"250-SIZE 1000\r\n",
            b"250-STARTTLS\r\n",
            b"250-AUTH PLAIN login\r\n",
            b"250 8BITMIME\r\n",
        ])
        .unwrap();
        assert_eq!(r.len(), 1);
        let e = Extensions::from_ehlo(&r[0]);
        assert!(e.pipelining && e.starttls && e.eight_bit_mime && !e.dsn && !e.smtputf8);
        assert_eq!(e.size, Some(1000));
        assert_eq!(e.auth, ["PLAIN", "LOGIN"]);
        // A bare code is a whole reply.
        assert_eq!(parse_all(&[b"354\r\n"]).unwrap()[0].code, 354);
        // An enhanced code of another class is not believed.
        assert_eq!(parse_all(&[b"550 4.1.1 no\r\n"]).unwrap()[0].enhanced(), None);
    }

    #[test]
    fn bad_replies_are_errors() {
        let long = vec![b'x'; MAX_LINE + 1];
        let mut l = b"250 ".to_vec();
        l.extend_from_slice(&long);
        assert_eq!(parse_all(&[&l]), Err(ReplyError::LineTooLong));
        assert!(matches!(parse_all(&[b"hello there\r\n"]), Err(ReplyError::Malformed(_))));
        assert!(matches!(parse_all(&[b"25\r\n"]), Err(ReplyError::Malformed(_))));
        assert!(matches!(parse_all(&[b"999 x\r\n"]), Err(ReplyError::Malformed(_))));
        assert!(matches!(parse_all(&[b"250x\r\n"]), Err(ReplyError::Malformed(_))));
        assert_eq!(parse_all(&[b"250-a\r\n", b"251 b\r\n"]), Err(ReplyError::CodeChanged));
        let many: Vec<&[u8]> = vec![b"250-x\r\n"; MAX_LINES + 1];
        assert_eq!(parse_all(&many), Err(ReplyError::TooManyLines));
        let r = parse_all(&[b"550 bad\x1b[31m\xff\r\n"]).unwrap();
        assert_eq!(r[0].text(), "550 bad?[31m?");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..600), 0..20)) {
            let mut p = ReplyParser::new();
            for l in &lines {
                if let Ok(Some(r)) = p.feed(l) {
                    let _ = r.text();
                    let _ = r.enhanced();
                    let _ = Extensions::from_ehlo(&r);
                }
            }
        }
    }
}
