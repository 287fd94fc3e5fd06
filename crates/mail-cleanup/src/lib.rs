//! The duties of Postfix's cleanup(8), as pure functions over message
//! bytes: prepend the `Received:` trace header, add the `Message-Id:`,
//! `Date:` and `From:` headers a message lacks, qualify bare addresses
//! with `myorigin`, rewrite the addresses of sender and recipient headers
//! with the canonical tables, and enforce `header_size_limit`. Also the
//! header helpers `sendmail -t` and local delivery need: recipient
//! extraction from To/Cc/Bcc (with Bcc removal) and header lookup.
//!
//! It does no I/O and knows nothing of the queue: callers pass the
//! LF-normalized content and write the result themselves. The canonical
//! tables reach it as a [`HeaderRewrite`] (mail-lookup's `Rewriter`
//! implements it over the table files), so this crate reads no file and
//! opens no socket. It does not apply header_checks or decode MIME.
//!
//! Used by `smtpd` and `pickup` before they write a queue file, by
//! `sendmail -t`, and by `local-delivery` (Delivered-To loop checks).
#![forbid(unsafe_code)]

mod addrlist;
mod header;

use std::sync::Arc;

use chrono::{DateTime, Local, TimeZone, Utc};
use mail_types::{Address, QueueId};

/// Which kind of header an address is in, for canonical mapping
/// (Postfix's `header_sender` and `header_recipient` classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderClass {
    /// From, Sender, Reply-To, Errors-To, Return-Receipt-To, Resent-From,
    /// Resent-Sender, Resent-Reply-To.
    Sender,
    /// To, Cc, Bcc, Apparently-To, Resent-To, Resent-Cc, Resent-Bcc.
    Recipient,
}

/// Postfix's sender headers (cleanup's `HDR_OPT_SENDER`).
const SENDER_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "Errors-To",
    "Return-Receipt-To",
    "Resent-From",
    "Resent-Sender",
    "Resent-Reply-To",
];

/// Postfix's recipient headers (cleanup's `HDR_OPT_RECIP`).
const RECIPIENT_HEADERS: &[&str] =
    &["To", "Cc", "Bcc", "Apparently-To", "Resent-To", "Resent-Cc", "Resent-Bcc"];

/// Canonical mapping of the addresses in headers. cleanup asks it for
/// each mailbox of a sender or recipient header.
pub trait HeaderRewrite: Send + Sync {
    /// Whether some table rewrites addresses of `class`: when none does,
    /// the headers of that class are not parsed at all.
    fn rewrites(&self, class: HeaderClass) -> bool;

    /// `addr` as the tables for `class` rewrite it; `Ok(None)` when they
    /// leave it as it is. `Err` is why a table could not be read: the
    /// message is refused for now (a temporary error), never passed on
    /// half-rewritten.
    fn rewrite(&self, addr: &Address, class: HeaderClass) -> Result<Option<Address>, String>;
}

/// The [`HeaderRewrite`] a [`CleanupParams`] carries: shared, and equal
/// only to itself (the parameters are compared, the tables are not).
#[derive(Clone)]
pub struct HeaderRewriter(pub Arc<dyn HeaderRewrite>);

impl std::fmt::Debug for HeaderRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderRewriter(..)")
    }
}

impl PartialEq for HeaderRewriter {
    fn eq(&self, other: &HeaderRewriter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for HeaderRewriter {}

/// The main.toml parameters cleanup uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupParams {
    /// `myhostname`: in `Received: by` and `Message-Id:`.
    pub myhostname: String,
    /// `myorigin`: the domain appended to unqualified addresses.
    pub myorigin: String,
    /// `append_at_myorigin`.
    pub append_at_myorigin: bool,
    /// `header_size_limit`: the largest header block accepted, in bytes;
    /// 0 disables the check.
    pub header_size_limit: usize,
    /// `mail_name`: the software name in `Received:` (Postern).
    pub mail_name: String,
    /// The canonical tables for header addresses (`canonical_maps`,
    /// `sender_canonical_maps`, `recipient_canonical_maps` with their
    /// classes); `None`: headers keep their addresses.
    pub header_rewrite: Option<HeaderRewriter>,
}

/// Where a message came from, for its `Received:` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The TLS session, as the lines of Postfix's `(using ...)` comment.
    pub tls: Option<Vec<String>>,
    /// The HELO/EHLO argument, if the client gave one.
    pub helo: Option<String>,
    /// The client's verified host name, or `unknown`.
    pub client_name: String,
    /// The client's IP address.
    pub client_addr: String,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`, `ESMTPSA` (RFC 3848), or
    /// `local` for mail picked up from maildrop/.
    pub protocol: String,
    /// The submitting user's uid, for local submissions.
    pub local_uid: Option<u32>,
    /// The queue id the message is stored under.
    pub queue_id: QueueId,
    /// The recipient, when the message has exactly one (`for <...>`).
    pub single_recipient: Option<String>,
    /// Arrival time.
    pub time: DateTime<Local>,
}

/// Why cleanup refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The header block is larger than `header_size_limit`.
    #[error("message header block of {size} bytes exceeds header_size_limit = {limit}")]
    HeaderTooLarge {
        /// Size of the header block.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A canonical table could not be read while the header addresses
    /// were rewritten; worth retrying.
    #[error("header address rewriting: {0}")]
    Lookup(String),
}

impl Error {
    /// Whether retrying the same message may succeed (a table that could
    /// not be read), as opposed to the message being refused for itself.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Lookup(_))
    }
}

/// Formats a date as RFC 5322 §3.3 `date-time`, e.g.
/// `Sat, 28 Nov 2026 13:02:34 -0300`.
pub fn rfc5322_date<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format("%a, %-d %b %Y %H:%M:%S %z").to_string()
}

/// Appends `@myorigin` to an unqualified address when
/// `append_at_myorigin` is set (Postfix's trivial-rewrite does this).
pub fn qualify(addr: Address, p: &CleanupParams) -> Address {
    if p.append_at_myorigin && !p.myorigin.is_empty() { addr.qualified(&p.myorigin) } else { addr }
}

/// Header text from the network or a user goes into our own header
/// lines: control characters could break the header structure, so they
/// become spaces.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn received(p: &CleanupParams, t: &Trace) -> String {
    let date = rfc5322_date(&t.time);
    let host = clean(&p.myhostname);
    let name = clean(&p.mail_name);
    if t.protocol.eq_ignore_ascii_case("local") {
        // Postfix pickup's form.
        let by = match t.local_uid {
            Some(uid) => format!("{name}, from userid {uid}"),
            None => name,
        };
        return format!("Received: by {host} ({by})\n\tid {}; {date}\n", t.queue_id);
    }
    let client = clean(&t.client_name);
    let helo = t.helo.as_deref().map_or_else(|| client.clone(), clean);
    let mut h = format!("Received: from {helo} ({client} [{}])\n", clean(&t.client_addr));
    // Postfix puts the TLS comment on its own folded lines after FROM.
    for line in t.tls.iter().flatten() {
        h.push('\t');
        h.push_str(&clean(line));
        h.push('\n');
    }
    h.push_str(&format!("\tby {host} ({name}) with {} id {}", clean(&t.protocol), t.queue_id));
    // RFC 5321 §4.4: the FOR clause names the recipient only when there is
    // exactly one, so the header does not reveal Bcc recipients.
    match &t.single_recipient {
        Some(r) => h.push_str(&format!("\n\tfor <{}>; {date}\n", clean(r))),
        None => h.push_str(&format!(";\n\t{date}\n")),
    }
    h
}

/// Does cleanup(8)'s work on one message.
///
/// `content` is LF-normalized. The result is the `Received:` header, the
/// original header fields, any missing `Message-Id:`, `Date:` and `From:`
/// (RFC 5322 §3.6 requires the latter two), a blank line and the body.
/// When the first non-header line is not blank (or the message has no
/// headers at all), a blank line is inserted before it, as Postfix does.
pub fn cleanup(
    p: &CleanupParams,
    trace: &Trace,
    sender: Option<&Address>,
    content: &[u8],
) -> Result<Vec<u8>, Error> {
    let parsed = header::parse(content);
    if p.header_size_limit > 0 && parsed.header_end > p.header_size_limit {
        return Err(Error::HeaderTooLarge { size: parsed.header_end, limit: p.header_size_limit });
    }
    let mut out = Vec::with_capacity(content.len() + 512);
    out.extend_from_slice(received(p, trace).as_bytes());
    // Rewriting may lengthen the header block; a field whose rewrite would
    // take it past the limit keeps its addresses as they came (nothing is
    // dropped, and the block stays within the limit it was accepted at).
    let limit = match p.header_size_limit {
        0 => REWRITE_CAP,
        n => n,
    };
    let mut size = parsed.header_end;
    for f in &parsed.fields {
        let rewritten = match &p.header_rewrite {
            Some(r) => rewrite_field(r.0.as_ref(), f)?,
            None => None,
        };
        match rewritten {
            Some(new) if size - f.raw.len() + new.len() <= limit => {
                size = size - f.raw.len() + new.len();
                out.extend_from_slice(new.as_bytes());
            }
            _ => out.extend_from_slice(f.raw),
        }
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    let has = |name: &str| parsed.fields.iter().any(|f| f.is(name));
    if !has("Message-ID") {
        // Postfix's form: UTC time stamp, queue id, host name.
        let stamp = trace.time.with_timezone(&Utc).format("%Y%m%d%H%M%S");
        let line = format!("Message-Id: <{stamp}.{}@{}>\n", trace.queue_id, clean(&p.myhostname));
        out.extend_from_slice(line.as_bytes());
    }
    if !has("Date") {
        out.extend_from_slice(format!("Date: {}\n", rfc5322_date(&trace.time)).as_bytes());
    }
    if !has("From") {
        let from = match sender {
            Some(a) => clean(&qualify(a.clone(), p).to_string()),
            None => "MAILER-DAEMON".to_owned(),
        };
        out.extend_from_slice(format!("From: {from}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(parsed.body);
    Ok(out)
}

/// How far rewriting may grow a header block when `header_size_limit` is
/// 0 ("no limit"): memory stays bounded whatever the configuration.
const REWRITE_CAP: usize = 1 << 20;

/// A sender or recipient field with its addresses rewritten, or `None`
/// when it is neither, nothing changed, or it is not UTF-8 (such a field
/// is kept as it came rather than guessed at).
fn rewrite_field(r: &dyn HeaderRewrite, f: &header::Field<'_>) -> Result<Option<String>, Error> {
    let class = if SENDER_HEADERS.iter().any(|n| f.is(n)) {
        HeaderClass::Sender
    } else if RECIPIENT_HEADERS.iter().any(|n| f.is(n)) {
        HeaderClass::Recipient
    } else {
        return Ok(None);
    };
    if !r.rewrites(class) {
        return Ok(None);
    }
    let Ok(raw) = std::str::from_utf8(f.raw) else { return Ok(None) };
    let Some(colon) = raw.find(':') else { return Ok(None) };
    let (name, value) = raw.split_at(colon + 1);
    let new = addrlist::rewrite(value, |text| {
        // An address that does not parse is left for the reader to judge.
        let Ok(addr) = Address::parse(text) else { return Ok(None) };
        Ok(r.rewrite(&addr, class).map_err(Error::Lookup)?.map(|a| a.to_string()))
    })?;
    Ok(new.map(|v| format!("{name}{v}")))
}

/// Recipients for `sendmail -t`, and the content with Bcc removed.
///
/// Addresses come from To, Cc and Bcc, or, when the message has any
/// Resent-To, Resent-Cc or Resent-Bcc, from those instead (RFC 5322
/// §3.6.6: a resent message goes to the resent recipients). Display
/// names, groups and comments are understood (RFC 5322 §3.4). Bcc and
/// Resent-Bcc header fields are removed from the returned content.
pub fn extract_recipients(content: &[u8]) -> (Vec<String>, Vec<u8>) {
    let parsed = header::parse(content);
    let resent =
        parsed.fields.iter().any(|f| f.is("Resent-To") || f.is("Resent-Cc") || f.is("Resent-Bcc"));
    let names: [&str; 3] =
        if resent { ["Resent-To", "Resent-Cc", "Resent-Bcc"] } else { ["To", "Cc", "Bcc"] };
    let mut rcpts = Vec::new();
    let mut out = Vec::with_capacity(content.len());
    for f in &parsed.fields {
        if names.iter().any(|n| f.is(n)) {
            rcpts.extend(addrlist::addresses(&f.value()));
        }
        if !(f.is("Bcc") || f.is("Resent-Bcc")) {
            out.extend_from_slice(f.raw);
        }
    }
    out.extend_from_slice(&content[parsed.header_end..]);
    (rcpts, out)
}

/// The unfolded value of the first header field called `name`
/// (case-insensitive), trimmed.
pub fn header_value(content: &[u8], name: &str) -> Option<String> {
    header::parse(content).fields.iter().find(|f| f.is(name)).map(|f| f.value())
}

/// The unfolded values of every header field called `name`, in order.
pub fn header_values(content: &[u8], name: &str) -> Vec<String> {
    header::parse(content).fields.iter().filter(|f| f.is(name)).map(|f| f.value()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use proptest::prelude::*;

    fn params() -> CleanupParams {
        CleanupParams {
            myhostname: "mail.fiap.edu.br".into(),
            myorigin: "fiap.edu.br".into(),
            append_at_myorigin: true,
            header_size_limit: 102_400,
            mail_name: "Postern".into(),
            header_rewrite: None,
        }
    }

    /// A canonical table in memory: sender and recipient entries apart,
    /// as sender_canonical_maps and recipient_canonical_maps are.
    struct Table {
        sender: Vec<(&'static str, &'static str)>,
        recipient: Vec<(&'static str, &'static str)>,
        broken: bool,
    }

    impl HeaderRewrite for Table {
        fn rewrites(&self, class: HeaderClass) -> bool {
            match class {
                HeaderClass::Sender => !self.sender.is_empty() || self.broken,
                HeaderClass::Recipient => !self.recipient.is_empty() || self.broken,
            }
        }

        fn rewrite(&self, addr: &Address, class: HeaderClass) -> Result<Option<Address>, String> {
            if self.broken {
                return Err("canonical: cannot read".into());
            }
            let t = if class == HeaderClass::Sender { &self.sender } else { &self.recipient };
            let key = addr.to_string();
            Ok(t.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                .map(|(_, v)| Address::parse(v).unwrap()))
        }
    }

    fn rewriting(table: Table) -> CleanupParams {
        CleanupParams { header_rewrite: Some(HeaderRewriter(Arc::new(table))), ..params() }
    }

    fn table() -> Table {
        Table {
            sender: vec![
                ("root@fiap.edu.br", "Administrador@fiap.edu.br"),
                ("root", "admin@fiap.edu.br"),
            ],
            recipient: vec![("ubuntu@fiap.edu.br", "suporte@fiap.edu.br")],
            broken: false,
        }
    }

    #[test]
    fn rewrites_sender_and_recipient_headers() {
        let msg = b"From: Nome do Remetente <root@fiap.edu.br>\n\
                    Reply-To: root@fiap.edu.br (o admin)\n\
                    Resent-From: root\n\
                    To: Nome do Destinatario <ubuntu@fiap.edu.br>, outro@x.org,\n\tequipe: ubuntu@fiap.edu.br;\n\
                    Cc: root@fiap.edu.br\n\
                    Subject: root@fiap.edu.br ubuntu@fiap.edu.br\n\
                    X-Original-To: ubuntu@fiap.edu.br\n\
                    Message-Id: <root@fiap.edu.br>\n\
                    Date: x\n\n\
                    From: root@fiap.edu.br in the body\n";
        let out = text(cleanup(&rewriting(table()), &smtp_trace(), None, msg).unwrap());
        let (head, body) = out.split_once("\n\n").unwrap();
        let head = head.split_once("\nFrom: ").map(|(_, h)| format!("From: {h}")).unwrap();
        assert_eq!(
            head,
            "From: Nome do Remetente <Administrador@fiap.edu.br>\n\
             Reply-To: Administrador@fiap.edu.br (o admin)\n\
             Resent-From: admin@fiap.edu.br\n\
             To: Nome do Destinatario <suporte@fiap.edu.br>, outro@x.org,\n\tequipe: suporte@fiap.edu.br;\n\
             Cc: root@fiap.edu.br\n\
             Subject: root@fiap.edu.br ubuntu@fiap.edu.br\n\
             X-Original-To: ubuntu@fiap.edu.br\n\
             Message-Id: <root@fiap.edu.br>\n\
             Date: x"
        );
        assert_eq!(body, "From: root@fiap.edu.br in the body\n");
        // Without the tables nothing changes.
        let plain = text(cleanup(&params(), &smtp_trace(), None, msg).unwrap());
        assert!(plain.contains("From: Nome do Remetente <root@fiap.edu.br>\n"), "{plain}");
        // A table that cannot be read refuses the message for now.
        let broken = Table { broken: true, ..table() };
        let e = cleanup(&rewriting(broken), &smtp_trace(), None, msg).unwrap_err();
        assert_eq!(e, Error::Lookup("canonical: cannot read".into()));
        assert!(e.is_temporary());
        assert!(!Error::HeaderTooLarge { size: 1, limit: 0 }.is_temporary());
    }

    #[test]
    fn rewriting_never_grows_the_header_past_the_limit() {
        let long: &'static str =
            Box::leak(format!("{}@fiap.edu.br", "a".repeat(60)).into_boxed_str());
        let t = Table { sender: vec![("r@x.org", long)], recipient: vec![], broken: false };
        let msg = b"From: r@x.org\nSender: r@x.org\nDate: x\nMessage-Id: <a@b>\n\nbody\n";
        // Room for one rewrite (block of 57 bytes + 69 growth), not two.
        let p = CleanupParams { header_size_limit: 130, ..rewriting(t) };
        let out = text(cleanup(&p, &smtp_trace(), None, msg).unwrap());
        assert!(out.contains(&format!("\nFrom: {long}\nSender: r@x.org\n")), "{out}");
    }

    fn time() -> DateTime<Local> {
        // 2026-11-28 13:02:34 UTC.
        Local.timestamp_opt(1_795_870_954, 0).unwrap()
    }

    fn smtp_trace() -> Trace {
        Trace {
            tls: None,
            helo: Some("mail.fiap.edu.br".into()),
            client_name: "localhost".into(),
            client_addr: "127.0.0.1".into(),
            protocol: "SMTP".into(),
            local_uid: None,
            queue_id: QueueId::parse("53E923E957").unwrap(),
            single_recipient: Some("suporte@fiap.edu.br".into()),
            time: time(),
        }
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn formats_rfc5322_dates() {
        let t = FixedOffset::west_opt(3 * 3600).unwrap().timestamp_opt(1_795_870_954, 0).unwrap();
        assert_eq!(rfc5322_date(&t), "Sat, 28 Nov 2026 10:02:34 -0300");
        let t = Utc.timestamp_opt(1_796_000_000, 0).unwrap();
        assert_eq!(rfc5322_date(&t), "Mon, 30 Nov 2026 00:53:20 +0000");
        let t = Utc.timestamp_opt(1_780_000_000, 0).unwrap();
        assert_eq!(rfc5322_date(&t), "Thu, 28 May 2026 20:26:40 +0000");
        let t = Utc.timestamp_opt(1_775_000_000, 0).unwrap();
        assert_eq!(rfc5322_date(&t), "Tue, 31 Mar 2026 23:33:20 +0000");
        let t = Utc.timestamp_opt(1_772_000_000, 0).unwrap();
        assert_eq!(rfc5322_date(&t), "Wed, 25 Feb 2026 06:13:20 +0000");
        let t = Utc.timestamp_opt(1_767_400_000, 0).unwrap();
        assert_eq!(rfc5322_date(&t), "Sat, 3 Jan 2026 00:26:40 +0000");
    }

    /// The tutorial's message: its only header is From, then a blank line.
    #[test]
    fn tutorial_message() {
        let content = b"From: Nome do Remetente <root@fiap.edu.br>\n\nTo: Nome do Destinatario <ubuntu@fiap.edu.br>\n\
                        Subject: Teste de Comandos SMTP\nE-mail teste - Comandos SMTP\n";
        let sender = Address::parse("root@fiap.edu.br").unwrap();
        let out = text(cleanup(&params(), &smtp_trace(), Some(&sender), content).unwrap());
        let date = rfc5322_date(&time());
        let want = format!(
            "Received: from mail.fiap.edu.br (localhost [127.0.0.1])\n\
             \tby mail.fiap.edu.br (Postern) with SMTP id 53E923E957\n\
             \tfor <suporte@fiap.edu.br>; {date}\n\
             From: Nome do Remetente <root@fiap.edu.br>\n\
             Message-Id: <20261128130234.53E923E957@mail.fiap.edu.br>\n\
             Date: {date}\n\
             \n\
             To: Nome do Destinatario <ubuntu@fiap.edu.br>\n\
             Subject: Teste de Comandos SMTP\n\
             E-mail teste - Comandos SMTP\n"
        );
        assert_eq!(out, want);
    }

    #[test]
    fn received_forms() {
        let mut t = smtp_trace();
        t.single_recipient = None;
        t.helo = None;
        t.protocol = "ESMTPSA".into();
        let out = text(
            cleanup(&params(), &t, None, b"Message-ID: <x@y>\nDate: d\nFrom: f\n\nb\n").unwrap(),
        );
        let date = rfc5322_date(&time());
        assert_eq!(
            out,
            format!(
                "Received: from localhost (localhost [127.0.0.1])\n\tby mail.fiap.edu.br (Postern) with ESMTPSA id 53E923E957;\n\
                 \t{date}\nMessage-ID: <x@y>\nDate: d\nFrom: f\n\nb\n"
            )
        );
        let mut t = smtp_trace();
        t.protocol = "local".into();
        t.local_uid = Some(0);
        let out = text(
            cleanup(&params(), &t, None, b"Message-Id: <x@y>\nDate: d\nFrom: f\n\nb\n").unwrap(),
        );
        assert!(out.starts_with(&format!(
            "Received: by mail.fiap.edu.br (Postern, from userid 0)\n\tid 53E923E957; {date}\n"
        )));
    }

    #[test]
    fn adds_missing_headers_case_insensitively() {
        let t = smtp_trace();
        let root = Address::parse("root").unwrap();
        let out = text(
            cleanup(&params(), &t, Some(&root), b"subject: hi\nmessage-id: <a@b>\n\nbody\n")
                .unwrap(),
        );
        let (_, rest) = out.split_once("subject: hi\nmessage-id: <a@b>\n").unwrap();
        assert!(rest.starts_with("Date: "), "{rest}");
        assert!(rest.ends_with("\nFrom: root@fiap.edu.br\n\nbody\n"), "{rest}");
        // Without append_at_myorigin the address stays bare; <> gives MAILER-DAEMON.
        let p = CleanupParams { append_at_myorigin: false, ..params() };
        let out = text(cleanup(&p, &t, Some(&root), b"Date: x\nMessage-Id: <a@b>\n\n").unwrap());
        assert!(out.ends_with("Date: x\nMessage-Id: <a@b>\nFrom: root\n\n"), "{out}");
        let out = text(cleanup(&p, &t, None, b"Date: x\nMessage-Id: <a@b>\n\n").unwrap());
        assert!(out.ends_with("From: MAILER-DAEMON\n\n"), "{out}");
    }

    #[test]
    fn headerless_and_separatorless_messages() {
        let t = smtp_trace();
        let all = |content: &[u8]| {
            let out = text(cleanup(&params(), &t, None, content).unwrap());
            out.split_once("From: MAILER-DAEMON\n").unwrap().1.to_owned()
        };
        // First line is not a header: everything is body, after a blank line.
        assert_eq!(
            all(b"just text\nSubject: not a header\n"),
            "\njust text\nSubject: not a header\n"
        );
        // Headers then a non-header line: Postfix inserts the blank line.
        let out = text(cleanup(&params(), &t, None, b"Subject: s\nbody line\n").unwrap());
        assert!(out.contains("Subject: s\nMessage-Id:"), "{out}");
        assert!(out.ends_with("From: MAILER-DAEMON\n\nbody line\n"), "{out}");
        // Only headers, last line without LF.
        let out = text(cleanup(&params(), &t, None, b"Subject: s").unwrap());
        assert!(out.contains("Subject: s\nMessage-Id:"), "{out}");
        assert!(out.ends_with("From: MAILER-DAEMON\n\n"), "{out}");
        assert_eq!(all(b""), "\n");
    }

    #[test]
    fn header_size_limit() {
        let p = CleanupParams { header_size_limit: 50, ..params() };
        let big = format!("Subject: {}\n\nbody\n", "x".repeat(60));
        assert_eq!(
            cleanup(&p, &smtp_trace(), None, big.as_bytes()),
            Err(Error::HeaderTooLarge { size: 70, limit: 50 })
        );
        // A big body is not a big header.
        let body = format!("Subject: s\n\n{}\n", "x".repeat(600));
        assert!(cleanup(&p, &smtp_trace(), None, body.as_bytes()).is_ok());
    }

    #[test]
    fn control_characters_do_not_break_received() {
        let mut t = smtp_trace();
        t.helo = Some("evil\nX-Injected: 1".into());
        let out = text(cleanup(&params(), &t, None, b"").unwrap());
        assert!(out.starts_with("Received: from evil X-Injected: 1 (localhost"), "{out}");
    }

    #[test]
    fn extracts_recipients_and_drops_bcc() {
        let msg = b"From: \"Doe, John\" <john@example.org>\n\
                    To: Mary <mary@example.org>, undisclosed-recipients:;,\n\tteam: a@x.org, \"B b\" <b@x.org> (c);\n\
                    CC: c@x.org (Carol), <d@x.org>\n\
                    Bcc: hidden@x.org,\n  other@x.org\n\
                    Subject: s\n\nBcc: not-a-header@x.org\n";
        let (rcpts, out) = extract_recipients(msg);
        assert_eq!(
            rcpts,
            [
                "mary@example.org",
                "a@x.org",
                "b@x.org",
                "c@x.org",
                "d@x.org",
                "hidden@x.org",
                "other@x.org"
            ]
        );
        assert_eq!(
            text(out),
            "From: \"Doe, John\" <john@example.org>\n\
             To: Mary <mary@example.org>, undisclosed-recipients:;,\n\tteam: a@x.org, \"B b\" <b@x.org> (c);\n\
             CC: c@x.org (Carol), <d@x.org>\n\
             Subject: s\n\nBcc: not-a-header@x.org\n"
        );
    }

    #[test]
    fn resent_headers_take_precedence() {
        let msg = b"To: old@x.org\nResent-To: new@x.org\nResent-Bcc: secret@x.org\n\nb\n";
        let (rcpts, out) = extract_recipients(msg);
        assert_eq!(rcpts, ["new@x.org", "secret@x.org"]);
        assert_eq!(text(out), "To: old@x.org\nResent-To: new@x.org\n\nb\n");
    }

    #[test]
    fn looks_up_header_values() {
        let msg = b"Delivered-To: a@x.org\nSubject: one\n two\ndelivered-to: b@x.org\n\nDelivered-To: body@x.org\n";
        assert_eq!(header_value(msg, "subject").as_deref(), Some("one two"));
        assert_eq!(header_values(msg, "Delivered-To"), ["a@x.org", "b@x.org"]);
        assert_eq!(header_value(msg, "X-None"), None);
    }

    #[test]
    fn qualifies_addresses() {
        let a = Address::parse("suporte").unwrap();
        assert_eq!(qualify(a.clone(), &params()).to_string(), "suporte@fiap.edu.br");
        let p = CleanupParams { append_at_myorigin: false, ..params() };
        assert_eq!(qualify(a, &p).to_string(), "suporte");
        let q = Address::parse("x@other.org").unwrap();
        assert_eq!(qualify(q.clone(), &params()), q);
    }

    /// The fuzz target `cleanup`.
    fn fuzz_cleanup(data: &[u8]) {
        let p = CleanupParams { header_size_limit: 1000, ..params() };
        let _ = cleanup(&p, &smtp_trace(), None, data);
        let p = CleanupParams { header_size_limit: 1000, ..rewriting(table()) };
        if let Ok(out) = cleanup(&p, &smtp_trace(), None, data) {
            let head = out.len() - header::parse(&out).body.len();
            prop_assert_le(head, 1000 + 1000);
        }
        let _ = extract_recipients(data);
        let _ = header_values(data, "To");
    }

    fn prop_assert_le(a: usize, b: usize) {
        assert!(a <= b, "{a} > {b}");
    }

    #[test]
    fn replays_fuzz_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cleanup");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            fuzz_cleanup(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "empty corpus in {}", dir.display());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            fuzz_cleanup(&bytes);
        }

        #[test]
        fn never_panics_on_header_like_text(
            lines in proptest::collection::vec("(To|Cc|Bcc|From|Date|Resent-To|[ \t]|)[: ]{0,2}[<>:;,@.()\" a-z]{0,30}", 0..30)
        ) {
            let msg: String = lines.iter().map(|l| format!("{l}\n")).collect();
            fuzz_cleanup(msg.as_bytes());
        }
    }
}
