//! Parsing one SMTP command line into a [`Command`] (RFC 5321 §4.1),
//! with the ESMTP parameters of MAIL (RFC 1870 SIZE, RFC 6152 BODY,
//! RFC 4954 §5 AUTH=, RFC 3461 RET and ENVID, RFC 6531 SMTPUTF8) and
//! RCPT (RFC 3461 NOTIFY and ORCPT), and BDAT (RFC 3030).
//!
//! Errors come back as the exact [`Reply`] Postfix's smtpd would send, so
//! the server state machine only has to forward them.

use mail_types::esmtp::{Notify, Orcpt, Ret};
use mail_types::{Address, EnhancedStatus};

use crate::reply::Reply;

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest AUTH command or SASL response line, CRLF included (RFC 4954 §4).
pub const MAX_AUTH_LINE: usize = 12288;
/// Longest MAIL or RCPT line, CRLF included: RFC 3461 §5 adds 500
/// octets for ORCPT and NOTIFY (and 100 for ENVID and RET on MAIL) to
/// RFC 5321's 512.
pub const MAX_PARAM_LINE: usize = MAX_COMMAND_LINE + 500;
/// Longest decoded ENVID (RFC 3461 §4.4).
pub const MAX_ENVID: usize = 100;
/// Longest ORCPT value as sent (RFC 3461 §4.2).
pub const MAX_ORCPT: usize = 500;

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
    /// `BDAT size [LAST]` (RFC 3030 §2): `size` octets of message data follow the line.
    Bdat { size: u64, last: bool },
    /// Any other verb, as sent.
    Unknown(String),
}

/// The body type declared with `BODY=` (RFC 6152).
pub use mail_types::esmtp::Body;

/// ESMTP parameters of RCPT TO (RFC 3461 NOTIFY and ORCPT), as the
/// queue file stores them.
pub use mail_types::esmtp::RecipientParams as RcptParams;

/// ESMTP parameters of MAIL FROM that we understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// Declared message size (RFC 1870); saturates at `u64::MAX`.
    pub size: Option<u64>,
    /// Declared body type (RFC 6152).
    pub body: Option<Body>,
    /// `AUTH=` submitter identity, as xtext (RFC 4954 §5).
    pub auth: Option<String>,
    /// `SMTPUTF8` (RFC 6531 §3.4): the transaction may use UTF-8 addresses.
    pub smtputf8: bool,
    /// DSN `RET=` (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    /// DSN `ENVID=` (RFC 3461 §4.4), xtext-decoded.
    pub envid: Option<String>,
}

impl MailParams {
    /// What the queue file keeps of them (SIZE and AUTH= are not kept).
    pub fn envelope_params(&self) -> mail_types::esmtp::EnvelopeParams {
        mail_types::esmtp::EnvelopeParams {
            body: self.body,
            smtputf8: self.smtputf8,
            ret: self.ret,
            envid: self.envid.clone(),
        }
    }
}

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
    if content_len + 2 > line_limit(verb) {
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
        "BDAT" => parse_bdat(arg),
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

/// The longest line, CRLF included, for a command with this verb.
pub(crate) fn line_limit(verb: &str) -> usize {
    if verb.eq_ignore_ascii_case("AUTH") {
        MAX_AUTH_LINE
    } else if verb.eq_ignore_ascii_case("MAIL") || verb.eq_ignore_ascii_case("RCPT") {
        MAX_PARAM_LINE
    } else {
        MAX_COMMAND_LINE
    }
}

/// Postfix's reply to a BDAT line it cannot parse. 521, and the session
/// ends: without a size nobody can tell where the chunk ends and the
/// next command begins.
pub(crate) fn bdat_syntax() -> Reply {
    Reply::new(521, status(5, 5, 4), "Syntax: BDAT count [LAST]")
}

/// `BDAT size [LAST]`: the size is 1*DIGIT (RFC 3030 §2) and must fit
/// in 64 bits.
fn parse_bdat(arg: &str) -> Result<Command, Reply> {
    let mut words = arg.split([' ', '\t']).filter(|w| !w.is_empty());
    let (size, last) = match (words.next(), words.next(), words.next()) {
        (Some(size), last, None) => (size, last),
        _ => return Err(bdat_syntax()),
    };
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bdat_syntax());
    }
    let size = size.parse::<u64>().map_err(|_| bdat_syntax())?;
    match last {
        None => Ok(Command::Bdat { size, last: false }),
        Some(l) if l.eq_ignore_ascii_case("LAST") => Ok(Command::Bdat { size, last: true }),
        Some(_) => Err(bdat_syntax()),
    }
}

/// Decodes xtext (RFC 3461 §4): `+HH` (upper-case hex) stands for one
/// octet, other characters are `!` to `~` except `+` and `=`. With
/// `utf8`, RFC 6533's forms are taken too: `\x{HEX}` for a code point,
/// and UTF-8 characters as themselves (unitext). The result must be
/// printable: no controls, so it can go into log lines and headers.
fn xtext_decode(s: &str, utf8: bool) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let decoded = match c {
            '+' => {
                let hi = chars.next()?;
                let lo = chars.next()?;
                let hex = |c: char| c.to_digit(16).filter(|_| !c.is_ascii_lowercase());
                let b = hex(hi)? * 16 + hex(lo)?;
                char::from_u32(b).filter(char::is_ascii)?
            }
            '\\' if utf8 => {
                if chars.next()? != 'x' || chars.next()? != '{' {
                    return None;
                }
                let mut v = 0u32;
                let mut n = 0;
                loop {
                    let d = chars.next()?;
                    if d == '}' {
                        break;
                    }
                    v = v.checked_mul(16)?.checked_add(d.to_digit(16)?)?;
                    n += 1;
                    if n > 6 {
                        return None;
                    }
                }
                if n == 0 {
                    return None;
                }
                char::from_u32(v)?
            }
            '!'..='~' if c != '=' => c,
            c if utf8 && !c.is_ascii() => c,
            _ => return None,
        };
        if decoded.is_control() {
            return None;
        }
        out.push(decoded);
    }
    Some(out)
}

fn parse_notify(v: &str) -> Option<Notify> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::NEVER);
    }
    let mut n = Notify::NEVER;
    for word in v.split(',') {
        let flag = if word.eq_ignore_ascii_case("SUCCESS") {
            &mut n.success
        } else if word.eq_ignore_ascii_case("FAILURE") {
            &mut n.failure
        } else if word.eq_ignore_ascii_case("DELAY") {
            &mut n.delay
        } else {
            // NEVER combined with anything, an empty word, an unknown one.
            return None;
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    Some(n)
}

/// `ORCPT=addr-type;xtext` (RFC 3461 §4.2). The type is an atom; `utf-8`
/// (RFC 6533) also takes `\x{..}` escapes and raw UTF-8.
fn parse_orcpt(v: &str) -> Option<Orcpt> {
    if v.len() > MAX_ORCPT {
        return None;
    }
    let (addr_type, coded) = v.split_once(';')?;
    if addr_type.is_empty()
        || !addr_type.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || coded.is_empty()
    {
        return None;
    }
    let addr_type = addr_type.to_ascii_lowercase();
    let address = xtext_decode(coded, addr_type == "utf-8")?;
    Some(Orcpt { addr_type, address })
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
    let bad = |what: &str| Reply::new(501, status(5, 5, 4), format!("Bad {what} parameter syntax"));
    let multiple =
        |what: &str| Reply::new(501, status(5, 5, 4), format!("Error: multiple {what} options"));
    for p in params_text.split([' ', '\t']).filter(|p| !p.is_empty()) {
        if let Some(v) = strip_keyword(p, "SIZE=") {
            // RFC 1870 §3: size-value is 1*20DIGIT.
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Reply::new(501, status(5, 5, 4), "Bad message size syntax"));
            }
            if params.size.is_some() {
                return Err(multiple("SIZE="));
            }
            params.size = Some(v.parse().unwrap_or(u64::MAX));
        } else if let Some(v) = strip_keyword(p, "BODY=") {
            // BINARYMIME needs BDAT-only transfer, which we do not
            // promise: refused as Postfix does, as an unknown option.
            let body = if v.eq_ignore_ascii_case("7BIT") {
                Body::SevenBit
            } else if v.eq_ignore_ascii_case("8BITMIME") {
                Body::EightBitMime
            } else {
                return Err(unsupported(p));
            };
            if params.body.is_some() {
                return Err(multiple("BODY="));
            }
            params.body = Some(body);
        } else if p.eq_ignore_ascii_case("SMTPUTF8") {
            if params.smtputf8 {
                return Err(multiple("SMTPUTF8"));
            }
            params.smtputf8 = true;
        } else if let Some(v) = strip_keyword(p, "RET=") {
            let ret = if v.eq_ignore_ascii_case("FULL") {
                Ret::Full
            } else if v.eq_ignore_ascii_case("HDRS") {
                Ret::Hdrs
            } else {
                return Err(bad("RET"));
            };
            // Postfix answers a repeated RET= as a malformed one.
            if params.ret.is_some() {
                return Err(bad("RET"));
            }
            params.ret = Some(ret);
        } else if let Some(v) = strip_keyword(p, "ENVID=") {
            let envid = xtext_decode(v, false)
                .filter(|e| !e.is_empty() && e.len() <= MAX_ENVID && params.envid.is_none())
                .ok_or_else(|| bad("ENVID"))?;
            params.envid = Some(envid);
        } else if let Some(v) = strip_keyword(p, "AUTH=") {
            if params.auth.is_some() {
                return Err(Reply::new(503, status(5, 5, 4), "Error: multiple AUTH= options"));
            }
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
    let mut params = RcptParams::default();
    let bad = |what: &str| {
        Reply::new(501, status(5, 5, 4), format!("Error: Bad {what} parameter syntax"))
    };
    for p in params_text.split([' ', '\t']).filter(|p| !p.is_empty()) {
        if let Some(v) = strip_keyword(p, "NOTIFY=") {
            let notify =
                parse_notify(v).filter(|_| params.notify.is_none()).ok_or_else(|| bad("NOTIFY"))?;
            params.notify = Some(notify);
        } else if let Some(v) = strip_keyword(p, "ORCPT=") {
            let orcpt =
                parse_orcpt(v).filter(|_| params.orcpt.is_none()).ok_or_else(|| bad("ORCPT"))?;
            params.orcpt = Some(orcpt);
        } else {
            return Err(unsupported(p));
        }
    }
    Ok(Command::Rcpt { to, params })
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
                MailParams {
                    size: Some(1000),
                    body: Some(Body::EightBitMime),
                    ..Default::default()
                },
            ),
            (
                "MAIL FROM:<u@x.org> body=7BIT AUTH=<>",
                Some("u@x.org"),
                MailParams {
                    body: Some(Body::SevenBit),
                    auth: Some("<>".into()),
                    ..Default::default()
                },
            ),
            (
                "MAIL FROM:<u@x.org> SIZE=99999999999999999999999",
                Some("u@x.org"),
                MailParams { size: Some(u64::MAX), ..Default::default() },
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
            ("RCPT TO:<a@x.org> FOO=NEVER", "555 5.5.4 Unsupported option: FOO=NEVER\r\n"),
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
    fn parses_dsn_and_smtputf8_mail_parameters() {
        let mail = |line: &str| match parse_command(line.as_bytes()) {
            Ok(Command::Mail { params, .. }) => params,
            other => panic!("{line}: {other:?}"),
        };
        let p = mail("MAIL FROM:<a@x.org> RET=hdrs ENVID=QQ+2B314+3D SMTPUTF8 BODY=8BITMIME");
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("QQ+314="));
        assert!(p.smtputf8);
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert_eq!(
            p.envelope_params(),
            mail_types::esmtp::EnvelopeParams {
                body: Some(Body::EightBitMime),
                smtputf8: true,
                ret: Some(Ret::Hdrs),
                envid: Some("QQ+314=".into()),
            }
        );
        assert_eq!(mail("MAIL FROM:<a@x.org> ret=FULL").ret, Some(Ret::Full));
        let max = format!("MAIL FROM:<a@x.org> ENVID={}", "e".repeat(MAX_ENVID));
        assert_eq!(mail(&max).envid.map(|e| e.len()), Some(MAX_ENVID));
        // UTF-8 addresses parse; whether they are allowed is the session's call.
        let Ok(Command::Mail { from: Some(from), .. }) =
            parse_command("MAIL FROM:<üser@exämple.org> SMTPUTF8".as_bytes())
        else {
            panic!()
        };
        assert_eq!(from.to_string(), "üser@exämple.org");
    }

    #[test]
    fn parses_dsn_rcpt_parameters() {
        let rcpt = |line: &str| match parse_command(line.as_bytes()) {
            Ok(Command::Rcpt { params, .. }) => params,
            other => panic!("{line}: {other:?}"),
        };
        let p = rcpt("RCPT TO:<b@x.org> NOTIFY=success,DELAY ORCPT=rfc822;b+2Bx@x.org");
        assert_eq!(p.notify, Some(Notify { success: true, failure: false, delay: true }));
        let o = p.orcpt.unwrap();
        assert_eq!((o.addr_type.as_str(), o.address.as_str()), ("rfc822", "b+x@x.org"));
        assert_eq!(rcpt("RCPT TO:<b@x.org> NOTIFY=NEVER").notify, Some(Notify::NEVER));
        let p = rcpt("RCPT TO:<b@x.org> NOTIFY=FAILURE,SUCCESS,DELAY");
        assert_eq!(p.notify, Some(Notify { success: true, failure: true, delay: true }));
        // RFC 6533 utf-8-addr-xtext and unitext.
        let o = rcpt("RCPT TO:<b@x.org> ORCPT=UTF-8;\\x{FC}ser@ex\\x{E4}mple.org").orcpt.unwrap();
        assert_eq!((o.addr_type.as_str(), o.address.as_str()), ("utf-8", "üser@exämple.org"));
        let o = rcpt("RCPT TO:<b@x.org> ORCPT=utf-8;üser@x.org").orcpt.unwrap();
        assert_eq!(o.address, "üser@x.org");
        assert_eq!(rcpt("RCPT TO:<b@x.org>"), RcptParams::default());
    }

    #[test]
    fn bad_esmtp_parameters_get_postfix_replies() {
        let bad_orcpt = "501 5.5.4 Error: Bad ORCPT parameter syntax\r\n";
        let bad_notify = "501 5.5.4 Error: Bad NOTIFY parameter syntax\r\n";
        let bad_envid = "501 5.5.4 Bad ENVID parameter syntax\r\n";
        let long_envid = format!("MAIL FROM:<a@x.org> ENVID={}", "e".repeat(MAX_ENVID + 1));
        let long_orcpt = format!("RCPT TO:<a@x.org> ORCPT=rfc822;{}", "o".repeat(MAX_ORCPT));
        let table: &[(&str, &str)] = &[
            ("MAIL FROM:<a@x.org> RET=ALL", "501 5.5.4 Bad RET parameter syntax\r\n"),
            ("MAIL FROM:<a@x.org> RET=", "501 5.5.4 Bad RET parameter syntax\r\n"),
            ("MAIL FROM:<a@x.org> RET=FULL RET=HDRS", "501 5.5.4 Bad RET parameter syntax\r\n"),
            ("MAIL FROM:<a@x.org> ENVID=", bad_envid),
            ("MAIL FROM:<a@x.org> ENVID=a+0Db", bad_envid),
            ("MAIL FROM:<a@x.org> ENVID=a+2b", bad_envid),
            ("MAIL FROM:<a@x.org> ENVID=a+2", bad_envid),
            ("MAIL FROM:<a@x.org> ENVID=a=b", bad_envid),
            ("MAIL FROM:<a@x.org> ENVID=ü", bad_envid),
            ("MAIL FROM:<a@x.org> ENVID=a ENVID=b", bad_envid),
            (&long_envid, bad_envid),
            ("MAIL FROM:<a@x.org> SMTPUTF8=yes", "555 5.5.4 Unsupported option: SMTPUTF8=yes\r\n"),
            (
                "MAIL FROM:<a@x.org> SMTPUTF8 smtputf8",
                "501 5.5.4 Error: multiple SMTPUTF8 options\r\n",
            ),
            (
                "MAIL FROM:<a@x.org> BODY=7BIT BODY=7BIT",
                "501 5.5.4 Error: multiple BODY= options\r\n",
            ),
            ("MAIL FROM:<a@x.org> SIZE=1 SIZE=2", "501 5.5.4 Error: multiple SIZE= options\r\n"),
            ("MAIL FROM:<a@x.org> AUTH=<> AUTH=<>", "503 5.5.4 Error: multiple AUTH= options\r\n"),
            ("MAIL FROM:<a@x.org> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY=NEVER\r\n"),
            ("RCPT TO:<a@x.org> NOTIFY=", bad_notify),
            ("RCPT TO:<a@x.org> NOTIFY=NEVER,SUCCESS", bad_notify),
            ("RCPT TO:<a@x.org> NOTIFY=SUCCESS,,DELAY", bad_notify),
            ("RCPT TO:<a@x.org> NOTIFY=SUCCESS,SUCCESS", bad_notify),
            ("RCPT TO:<a@x.org> NOTIFY=SOMETIMES", bad_notify),
            ("RCPT TO:<a@x.org> NOTIFY=NEVER NOTIFY=NEVER", bad_notify),
            ("RCPT TO:<a@x.org> ORCPT=a@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=;a@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=rfc822;", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=rfc822;a+0Ab@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=rfc822;üser@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=utf-8;\\x{85}@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=utf-8;\\x{}@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=utf-8;\\x{1234567}@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=utf-8;\\y{41}@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=rfc 822;a@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=rfc_822;a@x.org", bad_orcpt),
            ("RCPT TO:<a@x.org> ORCPT=r;a ORCPT=r;b", bad_orcpt),
            (&long_orcpt, bad_orcpt),
            ("RCPT TO:<a@x.org> SMTPUTF8", "555 5.5.4 Unsupported option: SMTPUTF8\r\n"),
            ("BDAT", "521 5.5.4 Syntax: BDAT count [LAST]\r\n"),
            ("BDAT x", "521 5.5.4 Syntax: BDAT count [LAST]\r\n"),
            ("BDAT -1", "521 5.5.4 Syntax: BDAT count [LAST]\r\n"),
            ("BDAT 1 FIRST", "521 5.5.4 Syntax: BDAT count [LAST]\r\n"),
            ("BDAT 1 LAST x", "521 5.5.4 Syntax: BDAT count [LAST]\r\n"),
            ("BDAT 18446744073709551616", "521 5.5.4 Syntax: BDAT count [LAST]\r\n"),
        ];
        for (line, want) in table {
            assert_eq!(err(line), *want, "{line:?}");
        }
    }

    #[test]
    fn parses_bdat() {
        for (line, size, last) in [
            ("BDAT 0 LAST", 0, true),
            ("bdat 10", 10, false),
            ("BDAT 18446744073709551615 last", u64::MAX, true),
            ("BDAT 007\r\n", 7, false),
        ] {
            assert_eq!(parse_command(line.as_bytes()), Ok(Command::Bdat { size, last }), "{line}");
        }
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
        // MAIL and RCPT get RFC 3461's extra 500 octets, for their parameters.
        let rcpt = format!("RCPT TO:<a@x.org> ORCPT=rfc822;{}\r\n", "o".repeat(480));
        assert!(rcpt.len() > MAX_COMMAND_LINE && rcpt.len() <= MAX_PARAM_LINE);
        assert!(matches!(parse_command(rcpt.as_bytes()), Ok(Command::Rcpt { .. })));
        let rcpt = format!("RCPT TO:<a@x.org> X={}\r\n", "o".repeat(MAX_PARAM_LINE));
        assert_eq!(parse_command(rcpt.as_bytes()), Err(line_too_long()));
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
        fn never_panics_on_command_like_text(s in "(MAIL FROM:|RCPT TO:|AUTH |VRFY |HELO |BDAT )[<>\"\\\\@:,. a-zA-Z0-9=\t]{0,80}") {
            let _ = parse_command(s.as_bytes());
        }

        #[test]
        fn never_panics_on_esmtp_parameters(s in "(MAIL FROM:<a@b.c>|RCPT TO:<a@b.c>)( (RET|ENVID|NOTIFY|ORCPT|BODY|SMTPUTF8)=?[+\\\\x{};,a-zA-Z0-9ü\u{85}-]{0,30}){0,4}") {
            let _ = parse_command(s.as_bytes());
        }
    }
}
