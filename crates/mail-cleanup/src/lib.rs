//! The duties of Postfix's cleanup(8), as pure functions over message
//! bytes: prepend the `Received:` trace header, add the `Message-Id:`,
//! `Date:` and `From:` headers a message lacks, qualify bare addresses
//! with `myorigin`, and enforce `header_size_limit`. Also the header
//! helpers `sendmail -t` and local delivery need: recipient extraction
//! from To/Cc/Bcc (with Bcc removal) and header lookup.
//!
//! It does no I/O and knows nothing of the queue: callers pass the
//! LF-normalized content and write the result themselves. It does not
//! rewrite addresses inside existing headers, apply header_checks or
//! canonical maps, or decode MIME.
//!
//! Used by `smtpd` and `pickup` before they write a queue file, by
//! `sendmail -t`, and by `local-delivery` (Delivered-To loop checks).
#![forbid(unsafe_code)]

mod addrlist;
mod header;

use chrono::{DateTime, Local, TimeZone, Utc};
use mail_types::{Address, QueueId};

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
    for f in &parsed.fields {
        out.extend_from_slice(f.raw);
        if !f.raw.ends_with(b"\n") {
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
        }
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
        let _ = extract_recipients(data);
        let _ = header_values(data, "To");
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
