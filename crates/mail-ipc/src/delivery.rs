//! qmgr → delivery agent: deliver these recipients of this queue file.
//!
//! The agent reads the content from `active/ID` itself (it is on the
//! same disk), so requests stay small. It answers with one result per
//! recipient, in any order, and qmgr records each durably.

use mail_types::{Address, DeliveryStatus, QueueId};
use serde::{Deserialize, Serialize};

/// One delivery request. The queue id decodes through
/// [`QueueId::parse`], so a forged request cannot name a path outside
/// `active/`; the addresses through `Address::parse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    /// The queue id; the file is in `active/`.
    pub queue_id: QueueId,
    /// Envelope sender, `None` for `<>` (empty text on the wire).
    #[serde(with = "mail_types::reverse_path")]
    pub sender: Option<Address>,
    /// Arrival time (seconds since the epoch), for `delay=` in logs.
    pub arrival: u64,
    /// The next hop qmgr resolved for these recipients, in Postfix's
    /// nexthop syntax: for `smtp`, a domain (MX lookup), `[host]:port`
    /// (no MX lookup) or a comma-separated list of those (tried in
    /// order); empty for `local`. All recipients of one request share it.
    pub nexthop: String,
    /// The recipients this agent should handle.
    pub recipients: Vec<DeliveryRecipient>,
}

/// A recipient in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecipient {
    /// Index into the envelope's recipients.
    pub index: u32,
    /// Address to deliver to.
    pub address: Address,
    /// Address as originally given: text, as in the envelope.
    pub original: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReply {
    /// One entry per recipient of the request.
    pub results: Vec<RecipientResult>,
}

/// What happened to one recipient. On the wire: the index, then the
/// status's variant (`Sent`, `Deferred`, `Bounced`), code as text and
/// text, the bytes of the older `kind`/`dsn`/`text` fields; a code that
/// is not one fails the decode of the whole reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientResult {
    /// Index into the envelope's recipients.
    pub index: u32,
    /// What happened.
    pub status: DeliveryStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_types::EnhancedStatus;

    /// The layout of these messages before they carried typed values.
    #[derive(Serialize)]
    struct OldRequest {
        queue_id: String,
        sender: String,
        arrival: u64,
        nexthop: String,
        recipients: Vec<(u32, String, String)>,
    }

    #[derive(Serialize)]
    enum OldKind {
        #[allow(dead_code)]
        Sent,
        Deferred,
        #[allow(dead_code)]
        Bounced,
    }

    #[derive(Serialize)]
    struct OldResult {
        index: u32,
        kind: OldKind,
        dsn: String,
        text: String,
    }

    fn old_request(id: &str) -> Vec<u8> {
        let r = OldRequest {
            queue_id: id.into(),
            sender: String::new(),
            arrival: 1,
            nexthop: "[mx.example.org]:25".into(),
            recipients: vec![(0, "a@x.org".into(), "a@x.org".into())],
        };
        stdx::codec::encode(&r).unwrap()
    }

    #[test]
    fn requests_keep_their_bytes_and_refuse_forged_ids() {
        let bytes = old_request("19BCA3F2E1C0A7D2B01");
        let req: DeliveryRequest = stdx::codec::decode(&bytes).unwrap();
        assert_eq!(req.queue_id.as_str(), "19BCA3F2E1C0A7D2B01");
        assert_eq!(stdx::codec::encode(&req).unwrap(), bytes);
        assert!(stdx::codec::decode::<DeliveryRequest>(&old_request("../../etc/passwd")).is_err());
    }

    #[test]
    fn results_keep_their_bytes_and_refuse_bad_codes() {
        let old = |dsn: &str| {
            let r = OldResult {
                index: 2,
                kind: OldKind::Deferred,
                dsn: dsn.into(),
                text: "later".into(),
            };
            stdx::codec::encode(&r).unwrap()
        };
        let r: RecipientResult = stdx::codec::decode(&old("4.4.1")).unwrap();
        assert_eq!(r.status, DeliveryStatus::defer(EnhancedStatus(4, 4, 1), "later"));
        assert_eq!(stdx::codec::encode(&r).unwrap(), old("4.4.1"));
        assert!(stdx::codec::decode::<RecipientResult>(&old("9.9.9")).is_err());
    }
}
