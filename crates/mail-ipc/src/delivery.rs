//! qmgr → delivery agent: deliver these recipients of this queue file.
//!
//! The agent reads the content from `active/ID` itself (it is on the
//! same disk), so requests stay small. It answers with one result per
//! recipient, in any order, and qmgr records each durably.

use mail_types::{Class, DeliveryStatus, EnhancedStatus};
use serde::{Deserialize, Serialize};

/// One delivery request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    /// The queue id; the file is in `active/`.
    pub queue_id: String,
    /// Envelope sender, empty for `<>`.
    pub sender: String,
    /// Arrival time (seconds since the epoch), for `delay=` in logs.
    pub arrival: u64,
    /// The recipients this agent should handle.
    pub recipients: Vec<DeliveryRecipient>,
}

/// A recipient in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecipient {
    /// Index into the envelope's recipients.
    pub index: u32,
    /// Address to deliver to.
    pub address: String,
    /// Address as originally given.
    pub original: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReply {
    /// One entry per recipient of the request.
    pub results: Vec<RecipientResult>,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientResult {
    /// Index into the envelope's recipients.
    pub index: u32,
    /// Outcome kind.
    pub kind: ResultKind,
    /// Enhanced status code as text, `x.y.z`.
    pub dsn: String,
    /// Human-readable detail, as in Postfix's `status=sent (...)`.
    pub text: String,
}

/// Outcome kinds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultKind {
    /// Delivered.
    Sent,
    /// Try again later.
    Deferred,
    /// Permanent failure.
    Bounced,
}

impl RecipientResult {
    /// Wire form of a delivery status.
    pub fn new(index: u32, status: &DeliveryStatus) -> RecipientResult {
        let kind = match status {
            DeliveryStatus::Sent { .. } => ResultKind::Sent,
            DeliveryStatus::Failed { class: Class::Transient, .. } => ResultKind::Deferred,
            DeliveryStatus::Failed { class: Class::Permanent, .. } => ResultKind::Bounced,
        };
        RecipientResult {
            index,
            kind,
            dsn: status.dsn().to_string(),
            text: status.text().to_owned(),
        }
    }

    /// Back to a delivery status. An unparsable code from the peer becomes
    /// the generic code of its kind rather than an error.
    pub fn status(&self) -> DeliveryStatus {
        let parsed = EnhancedStatus::parse(&self.dsn);
        match self.kind {
            ResultKind::Sent => DeliveryStatus::Sent {
                dsn: parsed.unwrap_or(EnhancedStatus(2, 0, 0)),
                text: self.text.clone(),
            },
            ResultKind::Deferred => {
                DeliveryStatus::defer(parsed.unwrap_or(EnhancedStatus(4, 0, 0)), self.text.clone())
            }
            ResultKind::Bounced => {
                DeliveryStatus::bounce(parsed.unwrap_or(EnhancedStatus(5, 0, 0)), self.text.clone())
            }
        }
    }
}
