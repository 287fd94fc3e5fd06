//! Serde support for the vocabulary types: each is written as its text
//! form (so the bytes on disk and on the wire are those of the `String`
//! fields the types replaced) and read back through its own parser, so a
//! forged or damaged value fails at decode instead of reaching the code
//! that trusts the type.

use crate::{Address, EnhancedStatus, QueueId};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest text a decoder accepts for one of these values before parsing
/// it: far above any valid one (an address is at most 64 + 1 + 255
/// octets), so it only refuses nonsense early.
const MAX_TEXT: usize = 4096;

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() > MAX_TEXT {
        return Err(D::Error::custom("value longer than 4096 bytes"));
    }
    Ok(s)
}

impl Serialize for QueueId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for QueueId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<QueueId, D::Error> {
        QueueId::parse(&text(d)?).map_err(D::Error::custom)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        Address::parse(&text(d)?).map_err(D::Error::custom)
    }
}

impl Serialize for EnhancedStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EnhancedStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EnhancedStatus, D::Error> {
        let s = text(d)?;
        EnhancedStatus::parse(&s).ok_or_else(|| D::Error::custom("not an enhanced status code"))
    }
}

/// `#[serde(with = "mail_types::reverse_path")]` for an envelope sender,
/// `Option<Address>`: the null sender `<>` is written as the empty
/// string, as the `String` field it replaces held it.
pub mod reverse_path {
    use super::*;

    /// Writes `None` as `""`, an address as its text.
    pub fn serialize<S: Serializer>(a: &Option<Address>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.collect_str(a),
            None => s.serialize_str(""),
        }
    }

    /// Reads `""` as `None`, anything else through [`Address::parse`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Address>, D::Error> {
        let s = text(d)?;
        if s.is_empty() {
            return Ok(None);
        }
        Address::parse(&s).map(Some).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Old {
        id: String,
        addr: String,
        sender: String,
        dsn: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct New {
        id: QueueId,
        addr: Address,
        #[serde(with = "reverse_path")]
        sender: Option<Address>,
        dsn: EnhancedStatus,
    }

    fn old(id: &str, addr: &str, sender: &str, dsn: &str) -> Vec<u8> {
        let o = Old { id: id.into(), addr: addr.into(), sender: sender.into(), dsn: dsn.into() };
        stdx::codec::encode(&o).unwrap()
    }

    #[test]
    fn bytes_are_those_of_the_strings_they_replace() {
        let bytes = old("19BCA3F2E1C0A7D2B01", "Suporte@fiap.edu.br", "", "5.1.1");
        let new: New = stdx::codec::decode(&bytes).unwrap();
        assert_eq!(new.addr.local(), "Suporte");
        assert_eq!(new.sender, None);
        assert_eq!(new.dsn, EnhancedStatus(5, 1, 1));
        assert_eq!(stdx::codec::encode(&new).unwrap(), bytes);
        let bytes = old("19BCA3F2E1C0A7D2B01", "a@x.org", "root@x.org", "2.0.0");
        let new: New = stdx::codec::decode(&bytes).unwrap();
        assert_eq!(new.sender.as_ref().map(|a| a.to_string()).as_deref(), Some("root@x.org"));
        assert_eq!(stdx::codec::encode(&new).unwrap(), bytes);
    }

    #[test]
    fn forged_values_fail_at_decode() {
        for bytes in [
            old("../../etc/passwd", "a@x.org", "", "2.0.0"),
            old("19BCA3F2E1C0A7D2B01", "a b@x.org", "", "2.0.0"),
            old("19BCA3F2E1C0A7D2B01", "", "", "2.0.0"),
            old("19BCA3F2E1C0A7D2B01", "a@x.org", "a..b@x.org", "2.0.0"),
            old("19BCA3F2E1C0A7D2B01", "a@x.org", "", "7.0.0"),
            old("19BCA3F2E1C0A7D2B01", "a@x.org", "", "5.1000.1"),
            old("19BCA3F2E1C0A7D2B01", &"a".repeat(5000), "", "2.0.0"),
        ] {
            assert!(stdx::codec::decode::<New>(&bytes).is_err());
        }
    }
}
