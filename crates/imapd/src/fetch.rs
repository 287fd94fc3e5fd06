//! FETCH and UID FETCH (RFC 3501 §6.4.5): the data items from the index
//! (FLAGS, UID, RFC822.SIZE, INTERNALDATE) written here, and every item
//! the message bytes decide (ENVELOPE, BODY, BODYSTRUCTURE, RFC822*,
//! BODY[section]<partial> with part numbers, HEADER, HEADER.FIELDS(.NOT),
//! TEXT and MIME, BINARY and BINARY.SIZE) computed by imap-message from
//! the message in CRLF form and encoded by imap-codec. A body item
//! without PEEK sets `\Seen` and the response then carries the new FLAGS.
//!
//! Severities: a message another process removed is skipped and the
//! command ends `NO [EXPUNGEISSUED]`; nothing is fatal.

use std::num::NonZeroU32;

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::sequence::SequenceSet;
use mail_maildir::Flags;

use crate::session::{Selected, flag_list, indices, push, read_message};

/// Answers a FETCH into `out`; `Ok` is the tagged text.
pub(crate) fn fetch(
    sel: &mut Selected,
    set: &SequenceSet,
    items: &MacroOrMessageDataItemNames<'_>,
    uid: bool,
    changed_since: Option<u64>,
    out: &mut Vec<u8>,
    fetched: &mut (u64, u64),
) -> Result<String, String> {
    use MessageDataItemName as N;
    let mut items: Vec<N<'_>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => match m {
            Macro::Fast => vec![N::Flags, N::InternalDate, N::Rfc822Size],
            Macro::All => vec![N::Flags, N::InternalDate, N::Rfc822Size, N::Envelope],
            _ => vec![N::Flags, N::InternalDate, N::Rfc822Size, N::Envelope, N::Body],
        },
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v.clone(),
    };
    if uid && !items.contains(&N::Uid) {
        items.insert(0, N::Uid);
    }
    // CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1), after the rest
    // as Dovecot writes it.
    if changed_since.is_some() && !items.contains(&N::ModSeq) {
        items.push(N::ModSeq);
    }
    let sets_seen = !sel.read_only
        && items.iter().any(|i| match i {
            N::BodyExt { peek, .. } | N::Binary { peek, .. } => !peek,
            N::Rfc822 | N::Rfc822Text => true,
            _ => false,
        });
    let wants_flags = items.contains(&N::Flags);
    let needs_text = items
        .iter()
        .any(|i| !matches!(i, N::Uid | N::Flags | N::InternalDate | N::Rfc822Size | N::ModSeq));
    let mut positions = indices(&sel.mbox, set, uid)?;
    if let Some(since) = changed_since {
        let msgs = sel.mbox.messages();
        positions.retain(|i| msgs.get(*i).is_some_and(|m| m.modseq > since));
    }
    let mut gone = false;
    let mut unknown_cte = false;
    for i in positions {
        let Some(m) = sel.mbox.messages().get(i).cloned() else { continue };
        let text = if needs_text {
            match read_message(&sel.mbox, m.uid) {
                Ok(raw) => Some(crlf(&raw)),
                Err(_) => {
                    gone = true;
                    continue;
                }
            }
        } else {
            None
        };
        let parsed = text.as_deref().map(imap_message::Message::parse);
        let mut flags_changed = false;
        if sets_seen && !m.flags.contains(Flags::SEEN) {
            match sel.mbox.set_flags(m.uid, m.flags | Flags::SEEN) {
                Ok(()) => flags_changed = true,
                Err(e) => tracing::warn!("UID {}: cannot set the Seen flag: {e}", m.uid),
            }
        }
        let m = sel.mbox.messages().get(i).cloned().unwrap_or(m);
        let mut line = format!("* {} FETCH (", i + 1).into_bytes();
        let mut first = true;
        for item in &items {
            let mut piece = Vec::new();
            match item {
                N::Uid => push(&mut piece, &format!("UID {}", m.uid)),
                N::Flags => {
                    push(&mut piece, &format!("FLAGS {}", flag_list(&sel.mbox, &m, &sel.recent)))
                }
                N::Rfc822Size => push(&mut piece, &format!("RFC822.SIZE {}", m.size)),
                N::ModSeq => push(&mut piece, &format!("MODSEQ ({})", m.modseq)),
                N::InternalDate => {
                    push(
                        &mut piece,
                        &format!("INTERNALDATE \"{}\"", internal_date(m.internal_date)),
                    );
                }
                other => {
                    let Some(msg) = parsed.as_ref() else { continue };
                    match msg.fetch(other) {
                        Some(Ok(data)) => {
                            if matches!(other, N::Rfc822 | N::BodyExt { section: None, .. }) {
                                fetched.0 += 1;
                                fetched.1 += u64::from(msg.size());
                            }
                            piece = encode_item(i, data);
                        }
                        Some(Err(_)) => {
                            unknown_cte = true;
                            continue;
                        }
                        None => continue,
                    }
                }
            }
            if !first {
                line.push(b' ');
            }
            first = false;
            line.extend_from_slice(&piece);
        }
        if flags_changed && !wants_flags {
            if !first {
                line.push(b' ');
            }
            push(&mut line, &format!("FLAGS {}", flag_list(&sel.mbox, &m, &sel.recent)));
        }
        line.extend_from_slice(b")\r\n");
        out.extend_from_slice(&line);
    }
    if unknown_cte {
        return Err("NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.".into());
    }
    if gone {
        return Err("NO [EXPUNGEISSUED] Some of the requested messages no longer exist.".into());
    }
    Ok("OK Fetch completed.".into())
}

/// One data item as imap-codec writes it (literals included): the
/// item is encoded in a one-item FETCH response, whose frame is cut off.
fn encode_item(index: usize, item: MessageDataItem<'_>) -> Vec<u8> {
    let seq = NonZeroU32::new(index as u32 + 1).unwrap_or(NonZeroU32::MIN);
    let response = Response::Data(Data::Fetch { seq, items: Vec1::from(item) });
    let bytes = ResponseCodec::default().encode(&response).dump();
    let prefix = format!("* {seq} FETCH (");
    let body = bytes.strip_prefix(prefix.as_bytes()).unwrap_or(&bytes);
    body.strip_suffix(b")\r\n").unwrap_or(body).to_vec()
}

/// The message with every bare LF as CRLF (what RFC822.SIZE counts).
pub(crate) fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut last_cr = false;
    mail_maildir::crlf::to_crlf(raw, &mut last_cr, &mut out);
    out
}

/// `17-Jul-1996 02:44:25 +0000` (internal dates are kept in UTC).
pub(crate) fn internal_date(secs: i64) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t.format("%d-%b-%Y %H:%M:%S +0000").to_string(),
        None => "01-Jan-1970 00:00:00 +0000".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_encoded_as_the_codec_writes_them() {
        assert_eq!(crlf(b"a\nb\r\n"), b"a\r\nb\r\n");
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(1_700_000_000), "14-Nov-2023 22:13:20 +0000");
        let msg = imap_message::Message::parse(b"Subject: hi\r\n\r\nbody\r\n");
        let item = msg
            .fetch(&MessageDataItemName::BodyExt { section: None, partial: None, peek: true })
            .unwrap()
            .unwrap();
        assert_eq!(encode_item(0, item), b"BODY[] {21}\r\nSubject: hi\r\n\r\nbody\r\n");
    }
}
