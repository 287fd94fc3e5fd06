//! SMTP replies: building them on the server side and parsing reply lines
//! on the client side (RFC 5321 §4.2, enhanced codes per RFC 2034 §3).

use std::fmt;

use mail_types::EnhancedStatus;

/// Longest reply line we accept from a peer, including CRLF
/// (RFC 5321 §4.5.3.1.5 says 512; we allow some slack for chatty servers).
pub const MAX_REPLY_LINE: usize = 4096;

/// One SMTP reply, possibly multi-line.
///
/// Every line carries the same code and, when present, the same enhanced
/// status code, as RFC 2034 §3 asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The RFC 3463 enhanced status code, when the reply has one.
    pub enhanced: Option<EnhancedStatus>,
    /// The text lines, without code or line ending.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: Option<EnhancedStatus>, text: impl Into<String>) -> Reply {
        Reply { code, enhanced, lines: vec![text.into()] }
    }

    /// A one-line reply with an enhanced status code.
    pub fn with_status(code: u16, status: EnhancedStatus, text: impl Into<String>) -> Reply {
        Reply::new(code, Some(status), text)
    }

    /// Whether this is a 4xx or 5xx reply (it counts toward the error limit).
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// The wire form: `250-first` ... `250 last`, each line ending in CRLF.
    ///
    /// CR and LF inside a text line are replaced by spaces, so text from
    /// configuration or from a lookup table can never inject a reply line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let last = self.lines.len().saturating_sub(1);
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() { &empty } else { &self.lines };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let mut head = format!("{:03}{sep}", self.code);
            if let Some(e) = self.enhanced {
                head.push_str(&e.to_string());
                if !line.is_empty() {
                    head.push(' ');
                }
            }
            out.extend_from_slice(head.as_bytes());
            out.extend(line.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    /// The reply on one line, as log lines quote it: `550 5.1.1 text; more`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        for (i, line) in self.lines.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "; " })?;
            f.write_str(line)?;
        }
        Ok(())
    }
}

/// Why a reply line from a server could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The line does not start with three digits, the first 2 to 5.
    #[error("reply line does not start with a reply code")]
    BadCode,
    /// The code is followed by something other than space, dash or the end.
    #[error("reply code not followed by space or dash")]
    BadSeparator,
    /// The line is longer than [`MAX_REPLY_LINE`].
    #[error("reply line longer than {MAX_REPLY_LINE} octets")]
    TooLong,
    /// The text is not UTF-8.
    #[error("reply text is not UTF-8")]
    NotUtf8,
}

/// Parses one reply line (with or without its CRLF or LF).
///
/// Returns the code, whether this is the last line of the reply
/// (`250 x` rather than `250-x`), and the text after the separator.
/// A bare `250` is a complete last line (RFC 5321 §4.2: the text is optional).
pub fn parse_reply_line(line: &[u8]) -> Result<(u16, bool, &str), ReplyError> {
    if line.len() > MAX_REPLY_LINE {
        return Err(ReplyError::TooLong);
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let code = match line.get(..3) {
        Some([a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9']) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(ReplyError::BadCode),
    };
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(ReplyError::BadSeparator),
    };
    let text = std::str::from_utf8(text).map_err(|_| ReplyError::NotUtf8)?;
    Ok((code, last, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_single_and_multi_line() {
        let r = Reply::with_status(250, EnhancedStatus(2, 1, 0), "Ok");
        assert_eq!(r.to_bytes(), b"250 2.1.0 Ok\r\n");
        let r = Reply {
            code: 250,
            enhanced: None,
            lines: vec!["host".into(), "PIPELINING".into(), "8BITMIME".into()],
        };
        assert_eq!(r.to_bytes(), b"250-host\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        let r = Reply::new(354, None, "End data with <CR><LF>.<CR><LF>");
        assert_eq!(r.to_bytes(), b"354 End data with <CR><LF>.<CR><LF>\r\n");
        let r = Reply { code: 221, enhanced: None, lines: vec![] };
        assert_eq!(r.to_bytes(), b"221 \r\n");
    }

    #[test]
    fn encoding_neutralises_line_breaks() {
        let r = Reply::new(550, None, "a\r\n250 fake");
        assert_eq!(r.to_bytes(), b"550 a  250 fake\r\n");
    }

    #[test]
    fn display_is_one_line() {
        let r = Reply {
            code: 550,
            enhanced: Some(EnhancedStatus(5, 1, 1)),
            lines: vec!["a".into(), "b".into()],
        };
        assert_eq!(r.to_string(), "550 5.1.1 a; b");
    }

    #[test]
    fn parses_reply_lines() {
        assert_eq!(parse_reply_line(b"250-mail.example\r\n"), Ok((250, false, "mail.example")));
        assert_eq!(parse_reply_line(b"250 2.0.0 Ok\n"), Ok((250, true, "2.0.0 Ok")));
        assert_eq!(parse_reply_line(b"354"), Ok((354, true, "")));
        assert_eq!(parse_reply_line(b"25"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply_line(b"650 x"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply_line(b"250x"), Err(ReplyError::BadSeparator));
        assert_eq!(parse_reply_line(b"250 \xff"), Err(ReplyError::NotUtf8));
        assert_eq!(parse_reply_line(&[b'2'; 5000]), Err(ReplyError::TooLong));
    }

    #[test]
    fn round_trips_through_parser() {
        let r = Reply { code: 250, enhanced: None, lines: vec!["a".into(), "b c".into()] };
        let bytes = r.to_bytes();
        let lines: Vec<_> =
            bytes.split_inclusive(|&b| b == b'\n').map(|l| parse_reply_line(l).unwrap()).collect();
        assert_eq!(lines, vec![(250, false, "a"), (250, true, "b c")]);
    }

    proptest! {
        #[test]
        fn reply_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_reply_line(&bytes);
        }
    }
}
