//! Delivery outcomes and RFC 3463 enhanced status codes.

use std::fmt;

/// Whether a failure may succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again later (4xx, `4.x.x`).
    Transient,
    /// Give up and bounce (5xx, `5.x.x`).
    Permanent,
}

/// An RFC 3463 enhanced status code such as `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What happened to one recipient of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Delivered; the text says where (`delivered to maildir`).
    Sent { dsn: EnhancedStatus, text: String },
    /// Not delivered this time.
    Failed { class: Class, dsn: EnhancedStatus, text: String },
}

impl DeliveryStatus {
    /// A successful delivery with the usual `2.0.0` code.
    pub fn sent(text: impl Into<String>) -> DeliveryStatus {
        DeliveryStatus::Sent { dsn: EnhancedStatus(2, 0, 0), text: text.into() }
    }

    /// A transient failure.
    pub fn defer(dsn: EnhancedStatus, text: impl Into<String>) -> DeliveryStatus {
        DeliveryStatus::Failed { class: Class::Transient, dsn, text: text.into() }
    }

    /// A permanent failure.
    pub fn bounce(dsn: EnhancedStatus, text: impl Into<String>) -> DeliveryStatus {
        DeliveryStatus::Failed { class: Class::Permanent, dsn, text: text.into() }
    }

    /// The enhanced status code.
    pub fn dsn(&self) -> EnhancedStatus {
        match self {
            DeliveryStatus::Sent { dsn, .. } | DeliveryStatus::Failed { dsn, .. } => *dsn,
        }
    }

    /// The human-readable text.
    pub fn text(&self) -> &str {
        match self {
            DeliveryStatus::Sent { text, .. } | DeliveryStatus::Failed { text, .. } => text,
        }
    }

    /// Postfix's `status=` word for log lines: `sent`, `deferred` or `bounced`.
    pub fn log_word(&self) -> &'static str {
        match self {
            DeliveryStatus::Sent { .. } => "sent",
            DeliveryStatus::Failed { class: Class::Transient, .. } => "deferred",
            DeliveryStatus::Failed { class: Class::Permanent, .. } => "bounced",
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
