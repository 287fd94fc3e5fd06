//! Parsing one SMTP command line into a [`Command`] (RFC 5321 §4.1),
//! with the ESMTP parameters of MAIL (RFC 1870 SIZE, RFC 6152 BODY,
//! RFC 4954 §5 AUTH=).
//!
//! Errors come back as the exact [`Reply`] Postfix's smtpd would send, so
//! the server state machine only has to forward them.

use mail_types::{Address, EnhancedStatus};

use crate::reply::Reply;

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest AUTH command or SASL response line, CRLF included (RFC 4954 §4).
pub const MAX_AUTH_LINE: usize = 12288;

/// One parsed client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO name`.
    Helo(String),
    /// `EHLO name`.
    Ehlo(String),
    /// `MAIL FROM:<path> params`; `from` is `None` for the null sender `<>`.
    Mail { from: Option<Address>, params: MailParams },
    /// `RCPT TO:<path> params`.
    Rcpt { to: Address, params: RcptParams },
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`, with angle brackets removed.
    Vrfy(String),
    /// `HELP [string]`.
    Help,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4); the mechanism is upper-cased.
    Auth { mechanism: String, initial: Option<String> },
    /// Any other verb, as sent.
    Unknown(String),
}

/// The body type declared with `BODY=` (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// ESMTP parameters of MAIL FROM that we understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// Declared message size (RFC 1870); saturates at `u64::MAX`.
    pub size: Option<u64>,
    /// Declared body type (RFC 6152).
    pub body: Option<Body>,
    /// `AUTH=` submitter identity, as xtext (RFC 4954 §5).
    pub auth: Option<String>,
}

/// ESMTP parameters of RCPT TO. None are supported yet (no DSN), so this
/// is always empty; it exists so that adding NOTIFY/ORCPT is not a breaking change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RcptParams {}

fn status(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    Some(EnhancedStatus(class, subject, detail))
}

pub(crate) fn bad_syntax() -> Reply {
    Reply::new(500, status(5, 5, 2), "Error: bad syntax")
}

pub(crate) fn line_too_long() -> Reply {
    Reply::new(500, status(5, 5, 2), "Error: line too long")
}

fn syntax(usage: &str) -> Reply {
    Reply::new(501, status(5, 5, 4), format!("Syntax: {usage}"))
}

/// Splits a command line into its verb and the argument text after it.
/// Returns `None` when the line is empty, not UTF-8, or holds control
/// characters (NUL and friends have no business in a command, RFC 5321 §4.1.1).
pub(crate) fn split_verb(line: &[u8]) -> Option<(&str, &str)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?.trim_matches([' ', '\t']);
    if text.is_empty() {
        return None;
    }
    Some(match text.find([' ', '\t']) {
        Some(i) => (&text[..i], text[i..].trim_start_matches([' ', '\t'])),
        None => (text, ""),
    })
}

/// Parses one command line, with or without its CRLF (or bare LF).
///
/// On error returns the reply to send: `500 5.5.2 Error: bad syntax` for
/// empty or binary lines, `500 5.5.2 Error: line too long` past the RFC
/// limits, `501 ...` for bad arguments and `555 5.5.4` for unknown MAIL/RCPT
/// parameters. Never panics.
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let content_len =
        line.strip_suffix(b"\n").map_or(line.len(), |l| l.strip_suffix(b"\r").unwrap_or(l).len());
    if content_len + 2 > MAX_AUTH_LINE {
        return Err(line_too_long());
    }
    let (verb, arg) = split_verb(line).ok_or_else(bad_syntax)?;
    let is_auth = verb.eq_ignore_ascii_case("AUTH");
    if !is_auth && content_len + 2 > MAX_COMMAND_LINE {
        return Err(line_too_long());
    }
    let upper = verb.to_ascii_uppercase();
    match upper.as_str() {
        "HELO" if arg.is_empty() => Err(Reply::new(501, None, "Syntax: HELO hostname")),
        "HELO" => Ok(Command::Helo(arg.to_owned())),
        "EHLO" if arg.is_empty() => Err(Reply::new(501, None, "Syntax: EHLO hostname")),
        "EHLO" => Ok(Command::Ehlo(arg.to_owned())),
        "MAIL" => parse_mail(arg),
        "RCPT" => parse_rcpt(arg),
        "DATA" if arg.is_empty() => Ok(Command::Data),
        "DATA" => Err(syntax("DATA")),
        "RSET" if arg.is_empty() => Ok(Command::Rset),
        "RSET" => Err(syntax("RSET")),
        // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored.
        "NOOP" => Ok(Command::Noop),
        "QUIT" => Ok(Command::Quit),
        "VRFY" if arg.is_empty() => Err(syntax("VRFY address")),
        "VRFY" => {
            let a = arg.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(arg);
            Ok(Command::Vrfy(a.to_owned()))
        }
        "HELP" => Ok(Command::Help),
        "STARTTLS" if arg.is_empty() => Ok(Command::StartTls),
        "STARTTLS" => Err(syntax("STARTTLS")),
        "AUTH" => {
            let mut words = arg.split([' ', '\t']).filter(|w| !w.is_empty());
            match (words.next(), words.next(), words.next()) {
                (Some(mech), initial, None) => Ok(Command::Auth {
                    mechanism: mech.to_ascii_uppercase(),
                    initial: initial.map(str::to_owned),
                }),
                _ => Err(syntax("AUTH mechanism")),
            }
        }
        _ => Ok(Command::Unknown(verb.to_owned())),
    }
}

/// What went wrong with a reverse- or forward-path.
enum PathError {
    /// No `FROM:`/`TO:` keyword, or an unterminated `<`.
    Syntax,
    /// The mailbox inside is malformed.
    Address,
}

/// Splits `FROM:<path> params` (the keyword already checked by the caller)
/// into the path text and the parameter text.
///
/// RFC 5321 §4.1.2 wants `<...>`, but like Postfix with
/// `strict_rfc821_envelopes = no` we also take a bare address and a space
/// after the colon.
fn split_path(rest: &str) -> Result<(&str, &str), PathError> {
    let rest = rest.trim_start_matches([' ', '\t']);
    let (path, params) = if let Some(inner) = rest.strip_prefix('<') {
        let end = closing_angle(inner).ok_or(PathError::Syntax)?;
        let after = &inner[end + 1..];
        if !after.is_empty() && !after.starts_with([' ', '\t']) {
            return Err(PathError::Address);
        }
        (&inner[..end], after)
    } else {
        match rest.find([' ', '\t']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        }
    };
    // RFC 5321 §4.1.2 and Appendix C: a source route `@a,@b:user@c` must be
    // accepted and its route ignored.
    let path = if path.starts_with('@') {
        match path.find(':') {
            Some(i) => &path[i + 1..],
            None => return Err(PathError::Address),
        }
    } else {
        path
    };
    Ok((path, params.trim_matches([' ', '\t'])))
}

/// Index of the `>` that closes a path, skipping quoted strings.
fn closing_angle(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword).then(|| &arg[keyword.len()..])
}

fn parse_mail(arg: &str) -> Result<Command, Reply> {
    let usage = || syntax("MAIL FROM:<address>");
    let bad_sender = || Reply::new(501, status(5, 1, 7), "Bad sender address syntax");
    let rest = strip_keyword(arg, "FROM:").ok_or_else(usage)?;
    let (path, params_text) = split_path(rest).map_err(|e| match e {
        PathError::Syntax => usage(),
        PathError::Address => bad_sender(),
    })?;
    let from =
        if path.is_empty() { None } else { Some(Address::parse(path).map_err(|_| bad_sender())?) };
    let mut params = MailParams::default();
    for p in params_text.split([' ', '\t']).filter(|p| !p.is_empty()) {
        if let Some(v) = strip_keyword(p, "SIZE=") {
            // RFC 1870 §3: size-value is 1*20DIGIT.
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Reply::new(501, status(5, 5, 4), "Bad message size syntax"));
            }
            params.size = Some(v.parse().unwrap_or(u64::MAX));
        } else if p.eq_ignore_ascii_case("BODY=7BIT") {
            params.body = Some(Body::SevenBit);
        } else if p.eq_ignore_ascii_case("BODY=8BITMIME") {
            params.body = Some(Body::EightBitMime);
        } else if let Some(v) = strip_keyword(p, "AUTH=") {
            params.auth = Some(v.to_owned());
        } else {
            return Err(unsupported(p));
        }
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(arg: &str) -> Result<Command, Reply> {
    let usage = || syntax("RCPT TO:<address>");
    let bad_rcpt = || Reply::new(501, status(5, 1, 3), "Bad recipient address syntax");
    let rest = strip_keyword(arg, "TO:").ok_or_else(usage)?;
    let (path, params_text) = split_path(rest).map_err(|e| match e {
        PathError::Syntax => usage(),
        PathError::Address => bad_rcpt(),
    })?;
    if path.is_empty() {
        return Err(bad_rcpt());
    }
    let to = Address::parse(path).map_err(|_| bad_rcpt())?;
    if let Some(p) = params_text.split([' ', '\t']).find(|p| !p.is_empty()) {
        return Err(unsupported(p));
    }
    Ok(Command::Rcpt { to, params: RcptParams::default() })
}

fn unsupported(param: &str) -> Reply {
    Reply::new(555, status(5, 5, 4), format!("Unsupported option: {param}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn err(line: &str) -> String {
        String::from_utf8(parse_command(line.as_bytes()).unwrap_err().to_bytes()).unwrap()
    }

    #[test]
    fn parses_simple_verbs_case_insensitively() {
        let table: &[(&str, Command)] = &[
            ("HELO mail.fiap.edu.br\r\n", Command::Helo("mail.fiap.edu.br".into())),
            ("ehlo client.example\n", Command::Ehlo("client.example".into())),
            ("DATA\r\n", Command::Data),
            ("rset", Command::Rset),
            ("NOOP whatever", Command::Noop),
            ("Quit\r\n", Command::Quit),
            ("VRFY <root>", Command::Vrfy("root".into())),
            ("VRFY root", Command::Vrfy("root".into())),
            ("HELP", Command::Help),
            ("STARTTLS", Command::StartTls),
            ("AUTH plain", Command::Auth { mechanism: "PLAIN".into(), initial: None }),
            (
                "AUTH PLAIN AHVAcA==",
                Command::Auth { mechanism: "PLAIN".into(), initial: Some("AHVAcA==".into()) },
            ),
            ("XYZZY a b", Command::Unknown("XYZZY".into())),
        ];
        for (line, want) in table {
            assert_eq!(parse_command(line.as_bytes()).as_ref(), Ok(want), "{line}");
        }
    }

    #[test]
    fn parses_mail_forms() {
        let table: &[(&str, Option<&str>, MailParams)] = &[
            ("MAIL FROM:<root@fiap.edu.br>", Some("root@fiap.edu.br"), MailParams::default()),
            ("MAIL FROM: <root@fiap.edu.br>", Some("root@fiap.edu.br"), MailParams::default()),
            ("mail from:root@fiap.edu.br", Some("root@fiap.edu.br"), MailParams::default()),
            ("MAIL FROM:<>", None, MailParams::default()),
            ("MAIL FROM:<@a.org,@b.org:u@c.org>", Some("u@c.org"), MailParams::default()),
            (
                "MAIL FROM:<u@x.org> SIZE=1000 BODY=8bitmime",
                Some("u@x.org"),
                MailParams { size: Some(1000), body: Some(Body::EightBitMime), auth: None },
            ),
            (
                "MAIL FROM:<u@x.org> body=7BIT AUTH=<>",
                Some("u@x.org"),
                MailParams { size: None, body: Some(Body::SevenBit), auth: Some("<>".into()) },
            ),
            (
                "MAIL FROM:<u@x.org> SIZE=99999999999999999999999",
                Some("u@x.org"),
                MailParams { size: Some(u64::MAX), body: None, auth: None },
            ),
            ("MAIL FROM:<\"a>b\"@x.org>", Some("\"a>b\"@x.org"), MailParams::default()),
        ];
        for (line, from, params) in table {
            let want = Command::Mail { from: from.map(addr), params: params.clone() };
            assert_eq!(parse_command(line.as_bytes()), Ok(want), "{line}");
        }
    }

    #[test]
    fn parses_rcpt_forms() {
        for (line, to) in [
            ("RCPT TO:<suporte@fiap.edu.br>", "suporte@fiap.edu.br"),
            ("RCPT TO: <suporte@fiap.edu.br>", "suporte@fiap.edu.br"),
            ("rcpt to:<postmaster>", "postmaster"),
            ("RCPT TO:Postmaster", "Postmaster"),
        ] {
            assert_eq!(
                parse_command(line.as_bytes()),
                Ok(Command::Rcpt { to: addr(to), params: RcptParams::default() })
            );
        }
    }

    #[test]
    fn error_replies_are_postfix_texts() {
        let table = [
            ("", "500 5.5.2 Error: bad syntax\r\n"),
            ("   \r\n", "500 5.5.2 Error: bad syntax\r\n"),
            ("HELO", "501 Syntax: HELO hostname\r\n"),
            ("EHLO  ", "501 Syntax: EHLO hostname\r\n"),
            ("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            ("MAIL TO:<a@b.org>", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            ("MAIL FROM:<a@b.org", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            ("MAIL FROM:<a..b@x.org>", "501 5.1.7 Bad sender address syntax\r\n"),
            ("MAIL FROM:<a@b.org>x", "501 5.1.7 Bad sender address syntax\r\n"),
            ("MAIL FROM:<a@b.org> SIZE=12k", "501 5.5.4 Bad message size syntax\r\n"),
            ("MAIL FROM:<a@b.org> FOO=1", "555 5.5.4 Unsupported option: FOO=1\r\n"),
            (
                "MAIL FROM:<a@b.org> BODY=BINARYMIME",
                "555 5.5.4 Unsupported option: BODY=BINARYMIME\r\n",
            ),
            ("RCPT", "501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
            ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax\r\n"),
            ("RCPT TO:<a b@x.org>", "501 5.1.3 Bad recipient address syntax\r\n"),
            ("RCPT TO:<a@x.org> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY=NEVER\r\n"),
            ("DATA x", "501 5.5.4 Syntax: DATA\r\n"),
            ("RSET x", "501 5.5.4 Syntax: RSET\r\n"),
            ("VRFY", "501 5.5.4 Syntax: VRFY address\r\n"),
            ("STARTTLS now", "501 5.5.4 Syntax: STARTTLS\r\n"),
            ("AUTH", "501 5.5.4 Syntax: AUTH mechanism\r\n"),
            ("AUTH A B C", "501 5.5.4 Syntax: AUTH mechanism\r\n"),
            ("NO\0OP", "500 5.5.2 Error: bad syntax\r\n"),
        ];
        for (line, want) in table {
            assert_eq!(err(line), want, "{line:?}");
        }
        assert_eq!(parse_command(b"NOOP \xff\xfe"), Err(bad_syntax()));
    }

    #[test]
    fn enforces_line_limits() {
        let ok = format!("NOOP {}\r\n", "x".repeat(MAX_COMMAND_LINE - 7));
        assert_eq!(ok.len(), MAX_COMMAND_LINE);
        assert_eq!(parse_command(ok.as_bytes()), Ok(Command::Noop));
        let long = format!("NOOP {}\r\n", "x".repeat(MAX_COMMAND_LINE - 6));
        assert_eq!(parse_command(long.as_bytes()), Err(line_too_long()));
        let auth = format!("AUTH PLAIN {}\r\n", "A".repeat(4000));
        assert!(matches!(parse_command(auth.as_bytes()), Ok(Command::Auth { .. })));
        let auth = format!("AUTH PLAIN {}\r\n", "A".repeat(MAX_AUTH_LINE));
        assert_eq!(parse_command(auth.as_bytes()), Err(line_too_long()));
    }

    /// The fuzz target `smtp_command`, replayed on the committed corpus.
    #[test]
    fn replays_fuzz_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/smtp_command");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let _ = parse_command(&data);
            n += 1;
        }
        assert!(n > 0, "empty corpus in {}", dir.display());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = parse_command(&bytes);
        }

        #[test]
        fn never_panics_on_command_like_text(s in "(MAIL FROM:|RCPT TO:|AUTH |VRFY |HELO )[<>\"\\\\@:,. a-zA-Z0-9=\t]{0,80}") {
            let _ = parse_command(s.as_bytes());
        }
    }
}
