//! The delivery log line, in Postfix's shape, for every program that
//! reports a delivery result (qmgr, local-delivery, the SMTP client):
//!
//! ```text
//! QUEUEID: to=<a@b>, orig_to=<c>, relay=R, delay=D, delays=a/b/c/d, dsn=X.Y.Z, status=WORD (TEXT)
//! ```
//!
//! pflogsumm and other log tools parse these fields by position and
//! punctuation, so the shape is kept here once rather than in each
//! program. Building the line is pure; the caller logs it.

use crate::{DeliveryStatus, QueueId};
use std::fmt::Write;

/// The fields of one delivery log line.
#[derive(Debug, Clone)]
pub struct DeliveryLine<'a> {
    /// The message.
    pub queue_id: &'a QueueId,
    /// The address delivered to (`to=`).
    pub to: &'a str,
    /// The address as the client gave it; shown as `orig_to=` only when
    /// not empty and not the same address as `to` (compared ignoring
    /// case, as Postfix does).
    pub orig_to: &'a str,
    /// Where it went: `local`, `none`, `host[addr]:port`.
    pub relay: &'a str,
    /// Seconds from arrival to now.
    pub delay: f64,
    /// Postfix's `delays=` breakdown (before the queue manager, in the
    /// queue, connection setup, transmission), when the caller has it.
    pub delays: Option<[f64; 4]>,
    /// What happened.
    pub status: &'a DeliveryStatus,
}

impl DeliveryLine<'_> {
    /// The line, without the `postern/PROGRAM[PID]: ` prefix the logger adds.
    pub fn format(&self) -> String {
        let mut s = format!("{}: to=<{}>", self.queue_id, self.to);
        if !self.orig_to.is_empty() && !self.orig_to.eq_ignore_ascii_case(self.to) {
            let _ = write!(s, ", orig_to=<{}>", self.orig_to);
        }
        let _ = write!(s, ", relay={}, delay={:.2}", self.relay, nonnegative(self.delay));
        if let Some([a, b, c, d]) = self.delays {
            let _ = write!(s, ", delays={}/{}/{}/{}", short(a), short(b), short(c), short(d));
        }
        let _ = write!(
            s,
            ", dsn={}, status={} ({})",
            self.status.dsn(),
            self.status.log_word(),
            self.status.text()
        );
        s
    }
}

fn nonnegative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// A `delays=` component as Postfix prints it: `0` for nothing, two
/// decimals below one second, one below ten, whole seconds above, with
/// trailing zeros dropped (`0.08`, `0.1`, `1.5`, `2077`).
fn short(x: f64) -> String {
    let x = nonnegative(x);
    let text = if x < 1.0 {
        format!("{x:.2}")
    } else if x < 10.0 {
        format!("{x:.1}")
    } else {
        return format!("{x:.0}");
    };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() { "0".to_owned() } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EnhancedStatus;

    fn id() -> QueueId {
        QueueId::parse("3F2E1C0A7D").unwrap()
    }

    #[test]
    fn a_delivery_has_postfix_shape() {
        // Postfix 3.x, local(8), field for field:
        // 3F2E1C0A7D: to=<suporte@fiap.edu.br>, orig_to=<suporte>, relay=local, delay=0.35, delays=0.08/0.01/0/0.26, dsn=2.0.0, status=sent (delivered to maildir)
        let status = DeliveryStatus::sent("delivered to maildir");
        let line = DeliveryLine {
            queue_id: &id(),
            to: "suporte@fiap.edu.br",
            orig_to: "suporte",
            relay: "local",
            delay: 0.349,
            delays: Some([0.08, 0.01, 0.0, 0.26]),
            status: &status,
        };
        assert_eq!(
            line.format(),
            "3F2E1C0A7D: to=<suporte@fiap.edu.br>, orig_to=<suporte>, relay=local, delay=0.35, \
             delays=0.08/0.01/0/0.26, dsn=2.0.0, status=sent (delivered to maildir)"
        );
    }

    #[test]
    fn a_deferral_without_delays_or_orig_to() {
        // Postfix qmgr(8), a result it decided itself:
        // 3F2E1C0A7D: to=<a@x.org>, relay=none, delay=12, dsn=4.3.0, status=deferred (...)
        // (Postfix prints delay=12 there; Postern keeps two decimals.)
        let status = DeliveryStatus::defer(EnhancedStatus(4, 3, 0), "mail transport unavailable");
        let line = DeliveryLine {
            queue_id: &id(),
            to: "a@x.org",
            orig_to: "A@X.org",
            relay: "none",
            delay: 12.0,
            delays: None,
            status: &status,
        };
        assert_eq!(
            line.format(),
            "3F2E1C0A7D: to=<a@x.org>, relay=none, delay=12.00, dsn=4.3.0, \
             status=deferred (mail transport unavailable)"
        );
    }

    #[test]
    fn pflogsumm_fields_survive() {
        // What pflogsumm matches: ` to=<...>`, `relay=X,`, `delay=N,`,
        // `status=WORD` right after `dsn=`.
        let status = DeliveryStatus::bounce(EnhancedStatus(5, 1, 1), "unknown user: \"x\"");
        let line = DeliveryLine {
            queue_id: &id(),
            to: "x@y.org",
            orig_to: "",
            relay: "local",
            delay: -3.0,
            delays: Some([f64::NAN, 1.56, 9.96, 2077.4]),
            status: &status,
        }
        .format();
        assert!(line.contains(": to=<x@y.org>, relay=local, delay=0.00, "), "{line}");
        assert!(line.contains(", delays=0/1.6/10/2077, dsn=5.1.1, status=bounced ("), "{line}");
    }

    #[test]
    fn short_delays() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.004), "0");
        assert_eq!(short(0.1), "0.1");
        assert_eq!(short(1.0), "1");
        assert_eq!(short(10.4), "10");
    }
}
