//! Non-delivery notifications (RFC 3464 delivery status reports), queued
//! from the null sender `<>` to the original sender, in Postfix's words.
//!
//! The report is plain text assembled here rather than with a MIME
//! builder: its shape is fixed, and every field is ours or already a
//! single header line.

use crate::schedule::Settings;
use mail_queue::{Envelope, Queue, Recipient, StatusRecord};
use mail_submit::{Origin, Submission};
use mail_types::{DeliveryStatus, QueueId};
use std::fmt::Write as _;

/// Largest header block of the original message we attach.
const MAX_ATTACHED_HEADERS: usize = 64 << 10;

fn rfc5322_date(t: chrono::DateTime<chrono::Local>) -> String {
    t.format("%a, %e %b %Y %H:%M:%S %z (%Z)").to_string()
}

/// The header block of `content` (up to the first empty line), bounded.
fn headers_of(content: &[u8]) -> &[u8] {
    let end = content.windows(2).position(|w| w == b"\n\n").map(|p| p + 1).unwrap_or(content.len());
    &content[..end.min(MAX_ATTACHED_HEADERS)]
}

/// Builds the report text.
pub(crate) fn build(
    s: &Settings,
    id: &QueueId,
    bounce_id: &QueueId,
    envelope: &Envelope,
    content: &[u8],
    failed: &[&StatusRecord],
) -> Vec<u8> {
    let now = chrono::Local::now();
    let boundary = format!("{bounce_id}.{}/{}", now.timestamp(), s.myhostname);
    let mut m = String::new();
    let _ = write!(
        m,
        "From: MAILER-DAEMON@{host} (Mail Delivery System)\n\
         To: {to}\n\
         Subject: Undelivered Mail Returned to Sender\n\
         Date: {date}\n\
         Message-Id: <{stamp}.{bounce_id}@{host}>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n\
         --{boundary}\n\
         Content-Description: Notification\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         This is the mail system at host {host}.\n\
         \n\
         I'm sorry to have to inform you that your message could not\n\
         be delivered to one or more recipients. It's attached below.\n\
         \n\
         For further assistance, please send mail to postmaster.\n\
         \n\
         If you do so, please include this problem report. You can\n\
         delete your own text from the attached returned message.\n\
         \n\
                            The {name} program\n\n",
        host = s.myhostname,
        to = sender_text(envelope),
        date = rfc5322_date(now),
        stamp = now.format("%Y%m%d%H%M%S"),
        name = s.mail_name,
    );
    for r in failed {
        let Some(rcpt) = envelope.recipients.get(r.recipient as usize) else { continue };
        if let DeliveryStatus::Bounced { text, .. } = &r.outcome {
            let _ = writeln!(m, "<{}>: {}", rcpt.address, text);
        }
    }
    let arrival = chrono::DateTime::from_timestamp(envelope.arrival as i64, 0)
        .map(|t| rfc5322_date(t.with_timezone(&chrono::Local)))
        .unwrap_or_default();
    let _ = write!(
        m,
        "\n--{boundary}\n\
         Content-Description: Delivery report\n\
         Content-Type: message/delivery-status\n\
         \n\
         Reporting-MTA: dns; {host}\n\
         X-Postern-Queue-ID: {id}\n\
         X-Postern-Sender: rfc822; {sender}\n\
         Arrival-Date: {arrival}\n",
        host = s.myhostname,
        sender = sender_text(envelope),
    );
    for r in failed {
        let Some(rcpt) = envelope.recipients.get(r.recipient as usize) else { continue };
        if let DeliveryStatus::Bounced { dsn, text } = &r.outcome {
            let _ = write!(m, "\nFinal-Recipient: rfc822; {}\n", rcpt.address);
            if rcpt.original != rcpt.address.to_string() {
                let _ = writeln!(m, "Original-Recipient: rfc822; {}", rcpt.original);
            }
            let _ = write!(
                m,
                "Action: failed\nStatus: {dsn}\nDiagnostic-Code: X-Postern; {}\n",
                text.replace('\n', " ")
            );
        }
    }
    let _ = write!(
        m,
        "\n--{boundary}\n\
         Content-Description: Undelivered Message Headers\n\
         Content-Type: text/rfc822-headers\n\
         Content-Transfer-Encoding: 8bit\n\n"
    );
    let mut out = m.into_bytes();
    out.extend_from_slice(headers_of(content));
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

/// The envelope sender as text, empty for `<>`.
fn sender_text(envelope: &Envelope) -> String {
    envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// Queues a notification to `envelope.sender` about `failed`, from the
/// null sender and as built (it needs no cleanup). qmgr finds it in
/// `incoming/` at its next scan: there is no one to wake.
pub(crate) fn enqueue(
    queue: &Queue,
    s: &Settings,
    id: &QueueId,
    envelope: &Envelope,
    content: &[u8],
    failed: &[&StatusRecord],
) -> Result<QueueId, mail_submit::Error> {
    // Callers never bounce a bounce; refusing here keeps it so.
    let Some(to) = envelope.sender.clone() else {
        return Err(mail_queue::Error::Encode("no bounce to the null sender".into()).into());
    };
    let sub = Submission {
        esmtp: Default::default(),
        sender: None,
        recipients: vec![Recipient {
            original: to.to_string(),
            address: to,
            esmtp: Default::default(),
        }],
        origin: Origin::Bounce,
    };
    let queued = mail_submit::submit_built(queue, &sub, |bounce_id| {
        build(s, id, bounce_id, envelope, content, failed)
    })?;
    Ok(queued.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn report_names_the_recipient_status_and_original_headers() {
        let s = Settings {
            queue_run_delay: Duration::from_secs(300),
            min_backoff: Duration::from_secs(300),
            max_backoff: Duration::from_secs(4000),
            max_lifetime: Duration::from_secs(5 * 86400),
            bounce_lifetime: Duration::from_secs(5 * 86400),
            active_limit: 100,
            concurrency: 2,
            local_recipient_limit: 50,
            default_recipient_limit: 50,
            local_domains: mail_config::LocalDomains::new(["example.org"]),
            myhostname: "mail.example.org".into(),
            mail_name: "Postern".into(),
        };
        let env = Envelope {
            sender: Some("root@example.org".parse().unwrap()),
            recipients: vec![Recipient {
                address: "nobody@example.org".parse().unwrap(),
                original: "nobody@example.org".into(),
                esmtp: Default::default(),
            }],
            arrival: 1_700_000_000,
            client: "local".into(),
            origin: "pickup".into(),
            attrs: vec![],
            esmtp: Default::default(),
        };
        let rec = StatusRecord {
            recipient: 0,
            outcome: DeliveryStatus::bounce(
                mail_types::EnhancedStatus(5, 1, 1),
                "unknown user: \"nobody\"",
            ),
            time: 0,
        };
        let id = QueueId::generate();
        let text = build(
            &s,
            &id,
            &QueueId::generate(),
            &env,
            b"Subject: hi\nX: y\n\nsecret body\n",
            &[&rec],
        );
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("To: root@example.org\n"));
        assert!(text.contains("<nobody@example.org>: unknown user: \"nobody\"\n"));
        assert!(text.contains("Status: 5.1.1\n"));
        assert!(text.contains("Subject: hi\nX: y\n"));
        assert!(!text.contains("secret body"));
    }
}
