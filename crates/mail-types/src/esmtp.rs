//! The ESMTP facts about a message that travel with its envelope: the
//! body type (RFC 6152), the DSN requests (RFC 3461 RET, ENVID, NOTIFY,
//! ORCPT) and the SMTPUTF8 flag (RFC 6531).
//!
//! smtpd parses them (`smtp_proto`), the queue file stores them
//! (`mail_queue::Envelope`), and the bounce code reads them back. Kept
//! here so the three agree on one type without depending on each other.

use serde::{Deserialize, Serialize};

/// The body type declared with `BODY=` (RFC 6152; RFC 3030 BINARYMIME is
/// refused, so it never reaches the queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// `RET=` of MAIL FROM (RFC 3461 §4.3): what a failure notice returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the headers only.
    Hdrs,
}

/// `NOTIFY=` of RCPT TO (RFC 3461 §4.1): `NEVER`, or any non-empty set
/// of `SUCCESS`, `FAILURE`, `DELAY`. All false means `NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Notify {
    /// Notify on delivery.
    pub success: bool,
    /// Notify on a permanent failure.
    pub failure: bool,
    /// Notify when delivery is delayed.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify { success: false, failure: false, delay: false };

    /// Whether this is `NOTIFY=NEVER`.
    pub fn is_never(self) -> bool {
        self == Notify::NEVER
    }
}

impl std::fmt::Display for Notify {
    /// The parameter value: `NEVER` or e.g. `SUCCESS,FAILURE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let words = [(self.success, "SUCCESS"), (self.failure, "FAILURE"), (self.delay, "DELAY")];
        let mut first = true;
        for (on, word) in words {
            if on {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(word)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// `ORCPT=` of RCPT TO (RFC 3461 §4.2), decoded: the address type as
/// the client spelt it, lower-cased (`rfc822`, `utf-8`, ...), and the
/// address with its xtext (or RFC 6533 `\x{..}`) escapes undone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Orcpt {
    /// The address type, lower case.
    pub addr_type: String,
    /// The original recipient address, decoded; printable, no CR/LF/NUL.
    pub address: String,
}

impl std::fmt::Display for Orcpt {
    /// `type;address`, as Postfix logs and DSNs show it (decoded).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{};{}", self.addr_type, self.address)
    }
}

/// The MAIL FROM facts stored with a message's envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvelopeParams {
    /// `BODY=` as declared; `None` when the client did not say.
    pub body: Option<Body>,
    /// `SMTPUTF8` was given: addresses and headers may hold UTF-8.
    pub smtputf8: bool,
    /// DSN `RET=`.
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, decoded from xtext; printable ASCII, at most 100 octets.
    pub envid: Option<String>,
}

/// The RCPT TO facts stored with each envelope recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecipientParams {
    /// DSN `NOTIFY=`; `None` means the default (failures and delays).
    pub notify: Option<Notify>,
    /// DSN `ORCPT=`.
    pub orcpt: Option<Orcpt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_text() {
        assert_eq!(Notify::NEVER.to_string(), "NEVER");
        let n = Notify { success: true, failure: false, delay: true };
        assert_eq!(n.to_string(), "SUCCESS,DELAY");
        let o = Orcpt { addr_type: "rfc822".into(), address: "a@b.org".into() };
        assert_eq!(o.to_string(), "rfc822;a@b.org");
    }
}
