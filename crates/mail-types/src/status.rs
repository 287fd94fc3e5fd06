//! Delivery outcomes and RFC 3463 enhanced status codes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether a failure may succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again later (4xx, `4.x.x`).
    Transient,
    /// Give up and bounce (5xx, `5.x.x`).
    Permanent,
}

/// An RFC 3463 enhanced status code such as `5.1.1`. Decoding one
/// (serde) goes through [`EnhancedStatus::parse`] and its range checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus(pub u8, pub u16, pub u16);

impl EnhancedStatus {
    /// Parses `x.y.z` with x in 2, 4 or 5.
    pub fn parse(s: &str) -> Option<EnhancedStatus> {
        let mut it = s.split('.');
        let class: u8 = it.next()?.parse().ok()?;
        let subject: u16 = it.next()?.parse().ok()?;
        let detail: u16 = it.next()?.parse().ok()?;
        if it.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(EnhancedStatus(class, subject, detail))
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What happened to one recipient of one delivery attempt: the one
/// outcome type of Postern, from the delivery agent's reply through the
/// status log to the log line.
///
/// Serde writes it as the variant index, then the code as text, then the
/// text: the bytes of the IPC reply it replaced (`Sent`, `Deferred`,
/// `Bounced` in that order). The status log, whose older records order
/// the variants differently, converts at its edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryStatus {
    /// Delivered: final. The text says where (`delivered to maildir`).
    Sent {
        /// Usually `2.0.0`.
        dsn: EnhancedStatus,
        /// Where it went.
        text: String,
    },
    /// Not delivered this time; will be retried.
    Deferred {
        /// A `4.x.x` code, as a rule.
        dsn: EnhancedStatus,
        /// Why.
        text: String,
    },
    /// Failed permanently: final, a bounce is owed to the sender.
    Bounced {
        /// A `5.x.x` code, or `4.4.7` for a message that expired.
        dsn: EnhancedStatus,
        /// Why.
        text: String,
    },
}

impl DeliveryStatus {
    /// A successful delivery with the usual `2.0.0` code.
    pub fn sent(text: impl Into<String>) -> DeliveryStatus {
        DeliveryStatus::Sent { dsn: EnhancedStatus(2, 0, 0), text: text.into() }
    }

    /// A transient failure.
    pub fn defer(dsn: EnhancedStatus, text: impl Into<String>) -> DeliveryStatus {
        DeliveryStatus::Deferred { dsn, text: text.into() }
    }

    /// A permanent failure.
    pub fn bounce(dsn: EnhancedStatus, text: impl Into<String>) -> DeliveryStatus {
        DeliveryStatus::Bounced { dsn, text: text.into() }
    }

    /// A failure of the given class.
    pub fn failed(class: Class, dsn: EnhancedStatus, text: impl Into<String>) -> DeliveryStatus {
        match class {
            Class::Transient => DeliveryStatus::defer(dsn, text),
            Class::Permanent => DeliveryStatus::bounce(dsn, text),
        }
    }

    /// The class of a failure; `None` for a delivery.
    pub fn class(&self) -> Option<Class> {
        match self {
            DeliveryStatus::Sent { .. } => None,
            DeliveryStatus::Deferred { .. } => Some(Class::Transient),
            DeliveryStatus::Bounced { .. } => Some(Class::Permanent),
        }
    }

    /// Whether the recipient needs no more attempts.
    pub fn is_final(&self) -> bool {
        !matches!(self, DeliveryStatus::Deferred { .. })
    }

    /// The enhanced status code.
    pub fn dsn(&self) -> EnhancedStatus {
        match self {
            DeliveryStatus::Sent { dsn, .. }
            | DeliveryStatus::Deferred { dsn, .. }
            | DeliveryStatus::Bounced { dsn, .. } => *dsn,
        }
    }

    /// The human-readable text.
    pub fn text(&self) -> &str {
        match self {
            DeliveryStatus::Sent { text, .. }
            | DeliveryStatus::Deferred { text, .. }
            | DeliveryStatus::Bounced { text, .. } => text,
        }
    }

    /// The text, for changing it in place (cutting it to a bound).
    pub fn text_mut(&mut self) -> &mut String {
        match self {
            DeliveryStatus::Sent { text, .. }
            | DeliveryStatus::Deferred { text, .. }
            | DeliveryStatus::Bounced { text, .. } => text,
        }
    }

    /// Postfix's `status=` word for log lines: `sent`, `deferred` or `bounced`.
    pub fn log_word(&self) -> &'static str {
        match self {
            DeliveryStatus::Sent { .. } => "sent",
            DeliveryStatus::Deferred { .. } => "deferred",
            DeliveryStatus::Bounced { .. } => "bounced",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_enhanced_status() {
        assert_eq!(EnhancedStatus::parse("5.1.1"), Some(EnhancedStatus(5, 1, 1)));
        assert_eq!(EnhancedStatus(4, 3, 1).to_string(), "4.3.1");
        for bad in ["", "3.1.1", "5.1", "5.1.1.1", "5.x.1", "5.1000.1"] {
            assert_eq!(EnhancedStatus::parse(bad), None, "{bad}");
        }
    }
}
