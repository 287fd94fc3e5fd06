//! One FETCH data item answered from the message bytes.
//!
//! This is the glue imapd would otherwise write itself: a section that
//! names no part is sent as an empty string (Dovecot's answer), a
//! `<partial>` answer carries its origin, and BINARY data with NUL bytes
//! goes out as a literal8 (RFC 3516 §4.3).

use std::borrow::Cow;

use imap_types::core::{LiteralMode, NString8};
use imap_types::extensions::binary::Literal8;
use imap_types::fetch::{MessageDataItem, MessageDataItemName};

use crate::Message;
use crate::section::{BinaryError, partial};
use crate::strings::nstring_data;

fn cut<'a>(data: Cow<'a, [u8]>, part: Option<(u32, std::num::NonZeroU32)>) -> Cow<'a, [u8]> {
    match (part, data) {
        (None, d) => d,
        (Some((start, len)), Cow::Borrowed(b)) => Cow::Borrowed(partial(b, start, len)),
        (Some((start, len)), Cow::Owned(o)) => Cow::Owned(partial(&o, start, len).to_vec()),
    }
}

pub(crate) fn fetch<'a>(
    msg: &Message<'a>,
    item: &MessageDataItemName<'_>,
) -> Option<Result<MessageDataItem<'a>, BinaryError>> {
    let item = match item {
        MessageDataItemName::Body => MessageDataItem::Body(msg.body_structure(false)),
        MessageDataItemName::BodyStructure => {
            MessageDataItem::BodyStructure(msg.body_structure(true))
        }
        MessageDataItemName::Envelope => MessageDataItem::Envelope(msg.envelope()),
        MessageDataItemName::BodyExt { section, partial: part, peek: _ } => {
            let data = msg.section(section.as_ref()).unwrap_or(Cow::Borrowed(&[]));
            MessageDataItem::BodyExt {
                section: section.clone().map(bounded_static::IntoBoundedStatic::into_static),
                origin: part.map(|(start, _)| start),
                data: nstring_data(cut(data, *part)),
            }
        }
        MessageDataItemName::Rfc822 => {
            MessageDataItem::Rfc822(nstring_data(Cow::Borrowed(msg.raw())))
        }
        MessageDataItemName::Rfc822Header => {
            MessageDataItem::Rfc822Header(nstring_data(Cow::Borrowed(msg.header())))
        }
        MessageDataItemName::Rfc822Text => {
            MessageDataItem::Rfc822Text(nstring_data(Cow::Borrowed(msg.text())))
        }
        MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(msg.size()),
        MessageDataItemName::Binary { section, partial: part, peek: _ } => {
            let data = match msg.binary(section) {
                Ok(d) => cut(d, *part),
                // Dovecot's answer for a part that does not exist, as for BODY[].
                Err(BinaryError::NoSuchPart) => Cow::Borrowed(&[][..]),
                Err(e) => return Some(Err(e)),
            };
            let value = if data.contains(&0) {
                NString8::Literal8(Literal8 { data, mode: LiteralMode::Sync })
            } else {
                NString8::NString(nstring_data(data))
            };
            MessageDataItem::Binary { section: section.clone(), value }
        }
        MessageDataItemName::BinarySize { section } => match msg.binary_size(section) {
            Ok(size) => MessageDataItem::BinarySize { section: section.clone(), size },
            Err(BinaryError::NoSuchPart) => {
                MessageDataItem::BinarySize { section: section.clone(), size: 0 }
            }
            Err(e) => return Some(Err(e)),
        },
        _ => return None,
    };
    Some(Ok(item))
}
