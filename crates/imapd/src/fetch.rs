//! FETCH and UID FETCH (RFC 3501 §6.4.5): the data items from the index
//! (FLAGS, UID, RFC822.SIZE, INTERNALDATE) and the message text ones
//! (RFC822, RFC822.HEADER, RFC822.TEXT, BODY[]/BODY.PEEK[] with HEADER,
//! HEADER.FIELDS, HEADER.FIELDS.NOT and TEXT, and `<partial>`), in CRLF
//! form whatever the file holds. A body item without PEEK sets `\Seen`
//! and the response then carries the new FLAGS.
//!
//! Severities: a message another process removed is skipped and the
//! command ends `NO [EXPUNGEISSUED]`; nothing is fatal.

use std::collections::HashSet;

use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section,
};
use imap_codec::imap_types::sequence::SequenceSet;
use mail_maildir::Flags;

use crate::session::{Selected, flag_list, indices, push, read_message};

/// Answers a FETCH into `out`; `Ok` is the tagged text.
pub(crate) fn fetch(
    sel: &mut Selected,
    set: &SequenceSet,
    items: &MacroOrMessageDataItemNames<'_>,
    uid: bool,
    out: &mut Vec<u8>,
    fetched: &mut (u64, u64),
) -> Result<String, String> {
    let mut items: Vec<MessageDataItemName<'_>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => match m {
            Macro::Fast => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
            ],
            _ => {
                return Err("BAD FETCH ALL and FULL need ENVELOPE, not served yet.".into());
            }
        },
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v.clone(),
    };
    if uid && !items.contains(&MessageDataItemName::Uid) {
        items.insert(0, MessageDataItemName::Uid);
    }
    for item in &items {
        if !supported(item) {
            return Err(format!("BAD FETCH item {} is not served yet.", item_name(item)));
        }
    }
    let sets_seen = !sel.read_only
        && items.iter().any(|i| match i {
            MessageDataItemName::BodyExt { peek, .. } => !peek,
            MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => true,
            _ => false,
        });
    let wants_flags = items.contains(&MessageDataItemName::Flags);
    let needs_text = items.iter().any(|i| {
        matches!(
            i,
            MessageDataItemName::BodyExt { .. }
                | MessageDataItemName::Rfc822
                | MessageDataItemName::Rfc822Header
                | MessageDataItemName::Rfc822Text
        )
    });
    let positions = indices(&sel.mbox, set, uid)?;
    let mut gone = false;
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
        let mut sep = |line: &mut Vec<u8>| {
            if !first {
                line.push(b' ');
            }
            first = false;
        };
        for item in &items {
            sep(&mut line);
            match item {
                MessageDataItemName::Uid => push(&mut line, &format!("UID {}", m.uid)),
                MessageDataItemName::Flags => {
                    push(&mut line, &format!("FLAGS {}", flag_list(&m, &sel.recent)));
                }
                MessageDataItemName::Rfc822Size => push(&mut line, &format!("RFC822.SIZE {}", m.size)),
                MessageDataItemName::InternalDate => {
                    push(&mut line, &format!("INTERNALDATE \"{}\"", internal_date(m.internal_date)));
                }
                MessageDataItemName::Rfc822 => {
                    let t = text.as_deref().unwrap_or_default();
                    literal(&mut line, "RFC822", t);
                    fetched.0 += 1;
                    fetched.1 += t.len() as u64;
                }
                MessageDataItemName::Rfc822Header => {
                    let t = text.as_deref().unwrap_or_default();
                    literal(&mut line, "RFC822.HEADER", split(t).0);
                }
                MessageDataItemName::Rfc822Text => {
                    let t = text.as_deref().unwrap_or_default();
                    literal(&mut line, "RFC822.TEXT", split(t).1);
                }
                MessageDataItemName::BodyExt { section, partial, .. } => {
                    let t = text.as_deref().unwrap_or_default();
                    let (spec, data) = body_section(section.as_ref(), t);
                    let (origin, data) = match partial {
                        Some((start, len)) => {
                            let s = (*start as usize).min(data.len());
                            let e = s.saturating_add(len.get() as usize).min(data.len());
                            (Some(*start), &data[s..e])
                        }
                        None => (None, &data[..]),
                    };
                    let key = match origin {
                        Some(o) => format!("BODY[{spec}]<{o}>"),
                        None => format!("BODY[{spec}]"),
                    };
                    literal(&mut line, &key, data);
                    if section.is_none() {
                        fetched.0 += 1;
                        fetched.1 += data.len() as u64;
                    }
                }
                _ => {}
            }
        }
        if flags_changed && !wants_flags {
            sep(&mut line);
            push(&mut line, &format!("FLAGS {}", flag_list(&m, &sel.recent)));
        }
        line.extend_from_slice(b")\r\n");
        out.extend_from_slice(&line);
    }
    if gone {
        return Err("NO [EXPUNGEISSUED] Some of the requested messages no longer exist.".into());
    }
    Ok("OK Fetch completed.".into())
}

fn supported(item: &MessageDataItemName<'_>) -> bool {
    match item {
        MessageDataItemName::Uid
        | MessageDataItemName::Flags
        | MessageDataItemName::Rfc822Size
        | MessageDataItemName::InternalDate
        | MessageDataItemName::Rfc822
        | MessageDataItemName::Rfc822Header
        | MessageDataItemName::Rfc822Text => true,
        MessageDataItemName::BodyExt { section, .. } => match section {
            None => true,
            Some(Section::Header(None) | Section::Text(None)) => true,
            Some(Section::HeaderFields(None, _) | Section::HeaderFieldsNot(None, _)) => true,
            Some(_) => false,
        },
        _ => false,
    }
}

fn item_name(item: &MessageDataItemName<'_>) -> &'static str {
    match item {
        MessageDataItemName::Body => "BODY",
        MessageDataItemName::BodyStructure => "BODYSTRUCTURE",
        MessageDataItemName::Envelope => "ENVELOPE",
        MessageDataItemName::Binary { .. } => "BINARY",
        MessageDataItemName::BinarySize { .. } => "BINARY.SIZE",
        MessageDataItemName::BodyExt { .. } => "BODY[part]",
        _ => "(this one)",
    }
}

/// The section's name as echoed, and its bytes.
fn body_section<'t>(section: Option<&Section<'_>>, t: &'t [u8]) -> (String, std::borrow::Cow<'t, [u8]>) {
    use std::borrow::Cow;
    match section {
        None => (String::new(), Cow::Borrowed(t)),
        Some(Section::Header(None)) => ("HEADER".into(), Cow::Borrowed(split(t).0)),
        Some(Section::Text(None)) => ("TEXT".into(), Cow::Borrowed(split(t).1)),
        Some(Section::HeaderFields(None, names)) => {
            let names: Vec<String> = names
                .as_ref()
                .iter()
                .map(|n| String::from_utf8_lossy(n.as_ref()).to_ascii_uppercase())
                .collect();
            let spec = format!("HEADER.FIELDS ({})", names.join(" "));
            (spec, Cow::Owned(header_fields(split(t).0, &names, true)))
        }
        Some(Section::HeaderFieldsNot(None, names)) => {
            let names: Vec<String> = names
                .as_ref()
                .iter()
                .map(|n| String::from_utf8_lossy(n.as_ref()).to_ascii_uppercase())
                .collect();
            let spec = format!("HEADER.FIELDS.NOT ({})", names.join(" "));
            (spec, Cow::Owned(header_fields(split(t).0, &names, false)))
        }
        Some(_) => (String::new(), Cow::Borrowed(&[][..])),
    }
}

/// The header fields named (`keep`) or all others, each with its
/// continuation lines, then the blank line (RFC 3501: the delimiting
/// blank line is part of HEADER.FIELDS).
fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let mut taking = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_uppercase();
            taking = wanted.contains(name.as_str()) == keep;
        }
        if taking {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The header (with its blank line) and the body of a CRLF message.
pub(crate) fn split(t: &[u8]) -> (&[u8], &[u8]) {
    if t.starts_with(b"\r\n") {
        return (&t[..2], &t[2..]);
    }
    match t.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => (&t[..p + 4], &t[p + 4..]),
        None => (t, &[]),
    }
}

/// The message with every bare LF as CRLF (what RFC822.SIZE counts).
pub(crate) fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut last_cr = false;
    mail_maildir::crlf::to_crlf(raw, &mut last_cr, &mut out);
    out
}

fn literal(line: &mut Vec<u8>, key: &str, data: &[u8]) {
    line.extend_from_slice(format!("{key} {{{}}}\r\n", data.len()).as_bytes());
    line.extend_from_slice(data);
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
    fn sections() {
        let t = b"From: a\r\nSubject: hi\r\n there\r\nTo: b\r\n\r\nbody\r\n";
        assert_eq!(split(t).1, b"body\r\n");
        assert_eq!(
            header_fields(split(t).0, &["SUBJECT".into()], true),
            b"Subject: hi\r\n there\r\n\r\n"
        );
        assert_eq!(
            header_fields(split(t).0, &["SUBJECT".into()], false),
            b"From: a\r\nTo: b\r\n\r\n"
        );
        assert_eq!(crlf(b"a\nb\r\n"), b"a\r\nb\r\n");
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(1_700_000_000), "14-Nov-2023 22:13:20 +0000");
    }
}
