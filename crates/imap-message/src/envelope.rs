//! ENVELOPE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) from raw header fields.
//!
//! Values stay as on the wire (encoded words are not decoded, as the RFC
//! requires), unfolded and trimmed. The first occurrence of each field
//! counts. Sender and Reply-To default to From when absent or empty;
//! groups become the RFC's NIL-host markers.

use imap_types::core::NString;
use imap_types::envelope::{Address, Envelope};

use crate::address::{self, Item};
use crate::mime::Entity;
use crate::strings::{nstring, nstring_value, unfold};

/// The raw value of the first field `name` (case-insensitive).
pub(crate) fn first_value<'a>(raw: &'a [u8], entity: &Entity, name: &str) -> Option<&'a [u8]> {
    entity
        .fields
        .iter()
        .find(|f| raw[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| &raw[f.value.clone()])
}

fn addresses(value: Option<&[u8]>) -> Vec<Address<'static>> {
    let Some(value) = value else { return Vec::new() };
    address::parse_list(value)
        .into_iter()
        .map(|item| match item {
            Item::Mailbox { name, adl, mailbox, host } => Address {
                name: name.map_or(NString::NIL, |n| nstring(unfold(&n))),
                adl: adl.map_or(NString::NIL, |a| nstring(unfold(&a))),
                mailbox: nstring(unfold(&mailbox)),
                host: nstring(unfold(&host)),
            },
            Item::GroupStart(name) => Address {
                name: NString::NIL,
                adl: NString::NIL,
                mailbox: nstring(unfold(&name)),
                host: NString::NIL,
            },
            Item::GroupEnd => Address {
                name: NString::NIL,
                adl: NString::NIL,
                mailbox: NString::NIL,
                host: NString::NIL,
            },
        })
        .collect()
}

pub(crate) fn envelope(raw: &[u8], entity: &Entity) -> Envelope<'static> {
    let get = |name: &str| first_value(raw, entity, name);
    let from = addresses(get("from"));
    let mut sender = addresses(get("sender"));
    if sender.is_empty() {
        sender.clone_from(&from);
    }
    let mut reply_to = addresses(get("reply-to"));
    if reply_to.is_empty() {
        reply_to.clone_from(&from);
    }
    Envelope {
        date: nstring_value(get("date")),
        subject: nstring_value(get("subject")),
        from,
        sender,
        reply_to,
        to: addresses(get("to")),
        cc: addresses(get("cc")),
        bcc: addresses(get("bcc")),
        in_reply_to: nstring_value(get("in-reply-to")),
        message_id: nstring_value(get("message-id")),
    }
}
