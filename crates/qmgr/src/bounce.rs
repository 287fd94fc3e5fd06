//! Delivery status notifications (RFC 3464 `multipart/report` messages,
//! built with mail-builder): non-delivery reports, delay warnings and
//! success notices, queued from the null sender `<>` to the original
//! sender, in Postfix's words.
//!
//! Which recipients a notice covers follows the DSN requests stored in
//! the envelope (RFC 3461): `NOTIFY=NEVER` gets nothing, `SUCCESS` a
//! success notice, a recipient without `NOTIFY` failure and delay
//! notices (Postfix's default). A failure report returns the whole message
//! (up to [`MAX_RETURNED`], Postfix's `bounce_size_limit`) only for
//! `RET=FULL`; otherwise, and in delay and success notices, the header
//! block. Decision: without RET Postern returns the headers, where
//! Postfix returns the message: a body is not sent back unasked. `ENVID` and `ORCPT` come back as
//! `Original-Envelope-Id` and `Original-Recipient`.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use mail_queue::{Envelope, Queue, Recipient};
use mail_submit::{Origin, Submission};
use mail_types::esmtp::{Notify, Ret};
use mail_types::{DeliveryStatus, QueueId};
use std::fmt::Write as _;
use std::time::Duration;

/// Largest message returned whole in a failure report; larger ones come
/// back as headers only (Postfix's `bounce_size_limit` default).
pub(crate) const MAX_RETURNED: usize = 50_000;
/// Largest header block returned.
const MAX_ATTACHED_HEADERS: usize = 64 << 10;
/// Longest text of one field in the report (a remote reply can be long).
const MAX_FIELD_TEXT: usize = 900;

/// The three kinds of notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Failure,
    Delay,
    Success,
}

/// What happened to one recipient, as RFC 3464's `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Failed,
    Delayed,
    /// Into a mailbox here.
    Delivered,
    /// Handed to another system, which may not send notices itself.
    Relayed,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient in a notice.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) index: u32,
    pub(crate) action: Action,
    pub(crate) status: DeliveryStatus,
}

/// What a notice says about this host and queue.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) myhostname: String,
    pub(crate) mail_name: String,
    /// For a delay warning's "will be retried until".
    pub(crate) max_lifetime: Duration,
}

/// The NOTIFY in force for a recipient: absent means FAILURE,DELAY.
fn notify_of(r: &Recipient) -> Notify {
    r.esmtp.notify.unwrap_or(Notify { success: false, failure: true, delay: true })
}

/// Whether recipient `r` asked for a notice of this kind.
pub(crate) fn wants(r: &Recipient, kind: Kind) -> bool {
    let n = notify_of(r);
    match kind {
        Kind::Failure => n.failure,
        Kind::Delay => n.delay,
        Kind::Success => n.success,
    }
}

/// Text safe for a header-like field: one line, printable ASCII, bounded.
fn field(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else if c.is_ascii() {
                ' '
            } else {
                '?'
            }
        })
        .collect();
    if out.len() > MAX_FIELD_TEXT {
        out.truncate(MAX_FIELD_TEXT);
    }
    out
}

/// The header block of `content` (up to the first empty line), bounded.
fn headers_of(content: &[u8]) -> &[u8] {
    let end = content.windows(2).position(|w| w == b"\n\n").map(|p| p + 1).unwrap_or(content.len());
    &content[..end.min(MAX_ATTACHED_HEADERS)]
}

fn rfc822_date(secs: u64) -> String {
    Date::new(i64::try_from(secs).unwrap_or(0)).to_rfc822()
}

fn sender_text(envelope: &Envelope) -> String {
    envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn subject(kind: Kind) -> &'static str {
    match kind {
        Kind::Failure => "Undelivered Mail Returned to Sender",
        Kind::Delay => "Delayed Mail (still being retried)",
        Kind::Success => "Successful Mail Delivery Report",
    }
}

/// The human-readable first part, in Postfix's words.
fn notification(host: &Host, kind: Kind, envelope: &Envelope, items: &[Item], now: u64) -> String {
    let mut m = format!("This is the mail system at host {}.\n\n", host.myhostname);
    match kind {
        Kind::Failure => m.push_str(
            "I'm sorry to have to inform you that your message could not\n\
             be delivered to one or more recipients. It's attached below.\n\n\
             For further assistance, please send mail to postmaster.\n\n\
             If you do so, please include this problem report. You can\n\
             delete your own text from the attached returned message.\n\n",
        ),
        Kind::Delay => {
            let age = now.saturating_sub(envelope.arrival);
            let _ = write!(
                m,
                "####################################################################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                 ####################################################################\n\n\
                 Your message could not be delivered for more than {} minute(s).\n\
                 It will be retried until it is {} minute(s) old.\n\n\
                 For further assistance, please send mail to postmaster.\n\n\
                 If you do so, please include this problem report. You can\n\
                 delete your own text from the attached returned message.\n\n",
                age / 60,
                host.max_lifetime.as_secs() / 60,
            );
        }
        Kind::Success => m.push_str(
            "Your message was successfully delivered to the destination(s)\n\
             listed below. If the message was delivered to mailbox you will\n\
             receive no further notifications. Otherwise you may still receive\n\
             notifications of mail delivery errors from other systems.\n\n",
        ),
    }
    let _ = write!(m, "                   The {} program\n\n", host.mail_name);
    for it in items {
        let Some(r) = envelope.recipients.get(it.index as usize) else { continue };
        let _ = writeln!(m, "<{}>: {}", r.address, field(it.status.text()));
    }
    m
}

/// The machine-readable `message/delivery-status` part.
fn delivery_status(
    host: &Host,
    id: &QueueId,
    envelope: &Envelope,
    items: &[Item],
    now: u64,
) -> String {
    let mut m = String::new();
    if let Some(envid) = &envelope.esmtp.envid {
        let _ = writeln!(m, "Original-Envelope-Id: {}", field(envid));
    }
    let _ = writeln!(m, "Reporting-MTA: dns; {}", field(&host.myhostname));
    let _ = writeln!(m, "X-Postern-Queue-ID: {id}");
    let _ = writeln!(m, "X-Postern-Sender: rfc822; {}", field(&sender_text(envelope)));
    let _ = writeln!(m, "Arrival-Date: {}", rfc822_date(envelope.arrival));
    for it in items {
        let Some(r) = envelope.recipients.get(it.index as usize) else { continue };
        m.push('\n');
        let _ = writeln!(m, "Final-Recipient: rfc822; {}", field(&r.address.to_string()));
        if let Some(o) = &r.esmtp.orcpt {
            let _ =
                writeln!(m, "Original-Recipient: {}; {}", field(&o.addr_type), field(&o.address));
        } else if r.original != r.address.to_string() && !r.original.is_empty() {
            let _ = writeln!(m, "Original-Recipient: rfc822; {}", field(&r.original));
        }
        let _ = writeln!(m, "Action: {}", it.action.word());
        let _ = writeln!(m, "Status: {}", it.status.dsn());
        let _ = writeln!(m, "Diagnostic-Code: X-Postern; {}", field(it.status.text()));
        if it.action == Action::Delayed {
            let until = envelope.arrival.saturating_add(host.max_lifetime.as_secs());
            let _ = writeln!(m, "Will-Retry-Until: {}", rfc822_date(until.max(now)));
        }
    }
    m
}

/// One notice to build: about which message, which recipients, when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Notice<'a> {
    pub(crate) kind: Kind,
    /// The message it is about.
    pub(crate) id: &'a QueueId,
    pub(crate) envelope: &'a Envelope,
    pub(crate) content: &'a [u8],
    pub(crate) items: &'a [Item],
    /// Seconds since the epoch.
    pub(crate) now: u64,
}

/// The whole notice, in the queue's line endings (LF).
pub(crate) fn build(host: &Host, n: &Notice<'_>, notice_id: &QueueId) -> Vec<u8> {
    let Notice { kind, id, envelope, content, items, now } = *n;
    let whole = kind == Kind::Failure
        && envelope.esmtp.ret == Some(Ret::Full)
        && content.len() <= MAX_RETURNED;
    let returned = if whole {
        MimePart::new(ContentType::new("message/rfc822"), BodyPart::Binary(content.into()))
            .header("Content-Description", Raw::new("Undelivered Message"))
            .transfer_encoding("8bit")
    } else {
        MimePart::new(
            ContentType::new("text/rfc822-headers"),
            BodyPart::Binary(headers_of(content).into()),
        )
        .header(
            "Content-Description",
            Raw::new(match kind {
                Kind::Failure => "Undelivered Message Headers",
                Kind::Delay => "Delayed Message Headers",
                Kind::Success => "Message Headers",
            }),
        )
        .transfer_encoding("8bit")
    };
    let text = MimePart::new(
        ContentType::new("text/plain").attribute("charset", "us-ascii"),
        BodyPart::Text(notification(host, kind, envelope, items, now).into()),
    )
    .header("Content-Description", Raw::new("Notification"));
    let status = MimePart::new(
        ContentType::new("message/delivery-status"),
        BodyPart::Binary(delivery_status(host, id, envelope, items, now).into_bytes().into()),
    )
    .header("Content-Description", Raw::new("Delivery report"))
    .transfer_encoding("7bit");
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        BodyPart::Multipart(vec![text, status, returned]),
    );
    let host_name = host.myhostname.clone();
    let stamp = chrono::DateTime::from_timestamp(i64::try_from(now).unwrap_or(0), 0)
        .map(|t| t.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_default();
    let message = MessageBuilder::new()
        .from(("Mail Delivery System".to_owned(), format!("MAILER-DAEMON@{host_name}")))
        .to(sender_text(envelope))
        .subject(subject(kind))
        .date(Date::new(i64::try_from(now).unwrap_or(0)))
        .message_id(format!("{stamp}.{notice_id}@{host_name}"))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report);
    let mut out = Vec::new();
    message.serialize(&mut out);
    crlf_to_lf(out)
}

/// The builder writes CRLF; queue files hold LF (the agents add CR
/// where the protocol wants it).
fn crlf_to_lf(bytes: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Queues a notice to the message's sender, from the null sender and as
/// built (it needs no cleanup). The caller wakes nobody: qmgr takes it
/// from `incoming/` at its next scan.
pub(crate) fn enqueue(
    queue: &Queue,
    host: &Host,
    n: &Notice<'_>,
) -> Result<QueueId, mail_submit::Error> {
    // A notice about a notice is never sent; refusing here keeps it so.
    let Some(to) = n.envelope.sender.clone() else {
        return Err(mail_queue::Error::Encode("no notice to the null sender".into()).into());
    };
    let sub = Submission {
        esmtp: Default::default(),
        sender: None,
        recipients: vec![Recipient::new(to.clone(), to.to_string())],
        origin: Origin::Bounce,
    };
    let queued = mail_submit::submit_built(queue, &sub, |notice_id| build(host, n, notice_id))?;
    Ok(queued.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_types::EnhancedStatus;
    use mail_types::esmtp::{EnvelopeParams, Orcpt, RecipientParams};

    fn host() -> Host {
        Host {
            myhostname: "mail.example.org".into(),
            mail_name: "Postern".into(),
            max_lifetime: Duration::from_secs(5 * 86400),
        }
    }

    fn envelope(ret: Option<Ret>) -> Envelope {
        Envelope {
            sender: Some("root@example.org".parse().unwrap()),
            recipients: vec![
                Recipient {
                    address: "nobody@example.org".parse().unwrap(),
                    original: "nobody@example.org".into(),
                    esmtp: RecipientParams {
                        notify: None,
                        orcpt: Some(Orcpt {
                            addr_type: "rfc822".into(),
                            address: "No@Example.org".into(),
                        }),
                    },
                },
                Recipient::new("quiet@example.org".parse().unwrap(), "quiet@example.org"),
            ],
            arrival: 1_700_000_000,
            client: "local".into(),
            origin: "pickup".into(),
            attrs: vec![],
            esmtp: EnvelopeParams { ret, envid: Some("ENV-42".into()), ..Default::default() },
        }
    }

    fn failed() -> Vec<Item> {
        vec![Item {
            index: 0,
            action: Action::Failed,
            status: DeliveryStatus::bounce(EnhancedStatus(5, 1, 1), "unknown user: \"nobody\""),
        }]
    }

    /// `build` with its arguments spelt out, as the tests read best.
    #[allow(clippy::too_many_arguments)]
    fn build8(
        host: &Host,
        kind: Kind,
        id: &QueueId,
        notice_id: &QueueId,
        envelope: &Envelope,
        content: &[u8],
        items: &[Item],
        now: u64,
    ) -> Vec<u8> {
        build(host, &Notice { kind, id, envelope, content, items, now }, notice_id)
    }

    const CONTENT: &[u8] = b"Subject: hi\nX: y\n\nsecret body\n";

    fn parse(bytes: &[u8]) -> String {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains('\r'), "queue files hold LF line ends");
        text
    }

    #[test]
    fn failure_report_is_a_multipart_report_with_the_whole_message() {
        let id = QueueId::generate();
        let out = build8(
            &host(),
            Kind::Failure,
            &id,
            &QueueId::generate(),
            &envelope(Some(Ret::Full)),
            CONTENT,
            &failed(),
            1_700_000_100,
        );
        let text = parse(&out);
        assert!(text.contains("To: <root@example.org>\n"), "{text}");
        assert!(
            text.contains("From: \"Mail Delivery System\" <MAILER-DAEMON@mail.example.org>\n"),
            "{text}"
        );
        assert!(text.contains("Subject: Undelivered Mail Returned to Sender\n"));
        assert!(text.contains("Auto-Submitted: auto-replied\n"));
        assert!(text.contains("multipart/report"), "{text}");
        assert!(
            text.contains("report-type=\"delivery-status\"")
                || text.contains("report-type=delivery-status"),
            "{text}"
        );
        assert!(text.contains("<nobody@example.org>: unknown user: \"nobody\"\n"));
        assert!(text.contains("Content-Type: message/delivery-status\n"), "{text}");
        assert!(text.contains("Original-Envelope-Id: ENV-42\n"));
        assert!(text.contains(&format!("X-Postern-Queue-ID: {id}\n")));
        assert!(text.contains("Final-Recipient: rfc822; nobody@example.org\n"));
        assert!(text.contains("Original-Recipient: rfc822; No@Example.org\n"));
        assert!(text.contains("Action: failed\nStatus: 5.1.1\n"));
        assert!(text.contains("Content-Type: message/rfc822\n"), "{text}");
        assert!(text.contains("secret body"), "RET=FULL: the whole message comes back");
    }

    #[test]
    fn ret_hdrs_and_delay_and_success_notices_return_headers_only() {
        let id = QueueId::generate();
        let text = parse(&build8(
            &host(),
            Kind::Failure,
            &id,
            &id,
            &envelope(Some(Ret::Hdrs)),
            CONTENT,
            &failed(),
            1,
        ));
        assert!(text.contains("Content-Type: text/rfc822-headers\n"), "{text}");
        assert!(text.contains("Subject: hi\nX: y\n"));
        assert!(!text.contains("secret body"));

        let delayed = vec![Item {
            index: 0,
            action: Action::Delayed,
            status: DeliveryStatus::defer(EnhancedStatus(4, 4, 1), "connect to x: refused"),
        }];
        let text = parse(&build8(
            &host(),
            Kind::Delay,
            &id,
            &id,
            &envelope(None),
            CONTENT,
            &delayed,
            1_700_003_600,
        ));
        assert!(text.contains("Subject: Delayed Mail (still being retried)\n"));
        assert!(text.contains("THIS IS A WARNING ONLY"));
        assert!(text.contains("Action: delayed\nStatus: 4.4.1\n"));
        assert!(text.contains("Will-Retry-Until: "));
        assert!(!text.contains("secret body"));

        let sent = vec![Item {
            index: 1,
            action: Action::Delivered,
            status: DeliveryStatus::sent("delivered to maildir"),
        }];
        let text = parse(&build(
            &host(),
            &Notice {
                kind: Kind::Success,
                id: &id,
                envelope: &envelope(None),
                content: CONTENT,
                items: &sent,
                now: 1,
            },
            &id,
        ));
        assert!(text.contains("Subject: Successful Mail Delivery Report\n"));
        assert!(text.contains("Action: delivered\nStatus: 2.0.0\n"), "{text}");
        assert!(!text.contains("secret body"));
    }

    #[test]
    fn a_big_message_comes_back_as_headers_and_fields_stay_one_line() {
        let id = QueueId::generate();
        let text = parse(&build8(
            &host(),
            Kind::Failure,
            &id,
            &id,
            &envelope(None),
            CONTENT,
            &failed(),
            1,
        ));
        assert!(
            text.contains("Content-Type: text/rfc822-headers\n") && !text.contains("secret body"),
            "no RET: headers"
        );

        let mut big = b"Subject: big\n\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_RETURNED));
        let items = vec![Item {
            index: 0,
            action: Action::Failed,
            status: DeliveryStatus::bounce(EnhancedStatus(5, 0, 0), "a\nInjected: yes\u{7}"),
        }];
        let text = parse(&build(
            &host(),
            &Notice {
                kind: Kind::Failure,
                id: &id,
                envelope: &envelope(Some(Ret::Full)),
                content: &big,
                items: &items,
                now: 1,
            },
            &id,
        ));
        assert!(text.contains("Content-Type: text/rfc822-headers\n"));
        assert!(!text.contains("xxxxxxxx"));
        assert!(!text.contains("\nInjected: yes"), "{text}");
    }

    #[test]
    fn notify_decides_who_gets_what() {
        let mut r = Recipient::new("a@b.org".parse().unwrap(), "a@b.org");
        assert!(wants(&r, Kind::Failure) && wants(&r, Kind::Delay) && !wants(&r, Kind::Success));
        r.esmtp.notify = Some(Notify::NEVER);
        assert!(!wants(&r, Kind::Failure) && !wants(&r, Kind::Delay) && !wants(&r, Kind::Success));
        r.esmtp.notify = Some(Notify { success: true, failure: false, delay: false });
        assert!(wants(&r, Kind::Success) && !wants(&r, Kind::Failure));
    }
}
