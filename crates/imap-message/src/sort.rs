//! SORT (RFC 5256 §3, with DISPLAYFROM and DISPLAYTO of RFC 5957) and
//! the base subject (RFC 5256 §2.1) that SORT and THREAD share.
//!
//! imapd keeps one [`SortFacts`] per message (from
//! [`crate::Message::sort_facts`]: only header fields, so it can be
//! cached in the index) and calls [`sort`] with the messages a SEARCH
//! program selected. Strings compare with i;ascii-casemap (RFC 5256
//! §2.2: ASCII letters fold, nothing else does); every tie is broken by
//! sequence number, as RFC 5256 §3 requires.

use std::cmp::Ordering;
use std::num::NonZeroU32;

use imap_types::extensions::sort::{SortCriterion, SortKey};

use crate::Message;
use crate::address::{Item, parse_list};
use crate::envelope::first_value;
use crate::text::{decoded_value, sent_date};

/// Most message ids read from one References field.
pub const MAX_REFERENCES: usize = 100;

/// What SORT and THREAD need from one message's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortFacts {
    /// The Date field, seconds since the epoch (UTC), if it parsed.
    pub sent: Option<i64>,
    /// The base subject (RFC 5256 §2.1), ASCII upper-cased for comparing.
    pub base_subject: String,
    /// Whether extracting the base subject removed a reply or forward
    /// marker (`Re:`, `Fwd:`, `(fwd)`, `[fwd: ...]`), for THREAD.
    pub is_reply: bool,
    /// addr-mailbox of the first From address, ASCII upper-cased.
    pub from: String,
    /// addr-mailbox of the first To address, ASCII upper-cased.
    pub to: String,
    /// addr-mailbox of the first Cc address, ASCII upper-cased.
    pub cc: String,
    /// RFC 5957 display name of the first From address (decoded), or its
    /// addr-spec, ASCII upper-cased.
    pub display_from: String,
    /// The same for the first To address.
    pub display_to: String,
    /// The Message-ID, without angle brackets, if there is one.
    pub message_id: Option<String>,
    /// The References ids in order, or failing those the first id of
    /// In-Reply-To (RFC 5256 §3 REFERENCES step 1).
    pub references: Vec<String>,
}

/// The message ids (`<...>`) in a References or In-Reply-To value, in
/// order, without brackets; at most [`MAX_REFERENCES`].
pub(crate) fn message_ids(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while out.len() < MAX_REFERENCES {
        let Some(open) = rest.iter().position(|&b| b == b'<') else { break };
        let after = &rest[open + 1..];
        let Some(close) = after.iter().position(|&b| b == b'>') else { break };
        let id: Vec<u8> =
            after[..close].iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        if !id.is_empty() {
            out.push(String::from_utf8_lossy(&id).into_owned());
        }
        rest = &after[close + 1..];
    }
    out
}

/// The first address of an address list, as ENVELOPE lists them:
/// (addr-mailbox, display name or addr-spec). A group counts with its
/// name as the mailbox (the group-start address of ENVELOPE), which is
/// what Dovecot compares too.
fn first_address(raw: &[u8], msg: &Message<'_>, name: &str) -> (String, String) {
    let e = &msg.tree().entities[0];
    let Some(f) =
        e.fields.iter().find(|f| raw[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
    else {
        return (String::new(), String::new());
    };
    match parse_list(&raw[f.value.clone()]).into_iter().next() {
        Some(Item::Mailbox { name, mailbox, host, .. }) => {
            let mailbox_s = String::from_utf8_lossy(&mailbox).into_owned();
            let display = match name {
                Some(n) => {
                    // Encoded words in the display name are decoded.
                    let mut v = n.clone();
                    v.extend_from_slice(b"\r\n");
                    match mail_parser::parsers::MessageStream::new(&v).parse_unstructured() {
                        mail_parser::HeaderValue::Text(t) => t.into_owned(),
                        _ => String::from_utf8_lossy(&n).into_owned(),
                    }
                }
                None if host.is_empty() => mailbox_s.clone(),
                None => format!("{mailbox_s}@{}", String::from_utf8_lossy(&host)),
            };
            (mailbox_s.to_ascii_uppercase(), display.to_ascii_uppercase())
        }
        Some(Item::GroupStart(group)) => {
            let g = String::from_utf8_lossy(&group).to_ascii_uppercase();
            (g.clone(), g)
        }
        Some(Item::GroupEnd) | None => (String::new(), String::new()),
    }
}

impl SortFacts {
    /// Reads the facts from the message's top-level header.
    pub fn from_message(msg: &Message<'_>) -> SortFacts {
        let raw = msg.raw();
        let e = &msg.tree().entities[0];
        let subject = e
            .fields
            .iter()
            .find(|f| raw[f.name.clone()].eq_ignore_ascii_case(b"subject"))
            .map(|f| decoded_value(raw, f))
            .unwrap_or_default();
        let (base, is_reply) = base_subject(&subject);
        let (from, display_from) = first_address(raw, msg, "from");
        let (to, display_to) = first_address(raw, msg, "to");
        let (cc, _) = first_address(raw, msg, "cc");
        let mut references = first_value(raw, e, "references").map(message_ids).unwrap_or_default();
        if references.is_empty() {
            references = first_value(raw, e, "in-reply-to").map(message_ids).unwrap_or_default();
            references.truncate(1);
        }
        SortFacts {
            sent: sent_date(raw, e).map(|(t, _)| t),
            base_subject: base.to_ascii_uppercase(),
            is_reply,
            from,
            to,
            cc,
            display_from,
            display_to,
            message_id: first_value(raw, e, "message-id")
                .and_then(|v| message_ids(v).into_iter().next()),
            references,
        }
    }
}

fn strip_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// subj-blob = "[" *BLOBCHAR "]" *WSP
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find([']', '['])?;
    if !rest[end..].starts_with(']') {
        return None;
    }
    Some(rest[end + 1..].trim_start_matches(' '))
}

/// One subj-leader: `*subj-blob subj-refwd` or a single space.
fn strip_leader(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix(' ') {
        return Some(rest);
    }
    let mut p = s;
    while let Some(r) = strip_blob(p) {
        p = r;
    }
    for word in ["re", "fwd", "fw"] {
        let Some(mut r) = strip_ci(p, word) else { continue };
        r = r.trim_start_matches(' ');
        if let Some(after_blob) = strip_blob(r)
            && let Some(done) = after_blob.strip_prefix(':')
        {
            return Some(done);
        }
        if let Some(done) = r.strip_prefix(':') {
            return Some(done);
        }
    }
    None
}

/// RFC 5256 §2.1: the base subject of a decoded Subject value, and
/// whether a reply or forward marker was removed.
pub fn base_subject(subject: &str) -> (String, bool) {
    // Step 1: white space runs (tabs, folding) become one space.
    let mut s = String::with_capacity(subject.len());
    for ch in subject.chars() {
        let ch = if matches!(ch, '\t' | '\r' | '\n') { ' ' } else { ch };
        if ch == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(ch);
    }
    let mut s: &str = &s;
    let mut reply = false;
    loop {
        // Step 2: trailing "(fwd)" and white space.
        loop {
            if let Some(r) = s.strip_suffix(' ') {
                s = r;
            } else if s.len() >= 5
                && s.is_char_boundary(s.len() - 5)
                && s[s.len() - 5..].eq_ignore_ascii_case("(fwd)")
            {
                s = &s[..s.len() - 5];
                reply = true;
            } else {
                break;
            }
        }
        // Steps 3 to 5: leaders and blobs until nothing changes.
        loop {
            let mut changed = false;
            while let Some(r) = strip_leader(s) {
                if !s.starts_with(' ') {
                    reply = true;
                }
                s = r;
                changed = true;
            }
            if let Some(r) = strip_blob(s)
                && r.chars().any(|c| c != ' ')
            {
                s = r;
                changed = true;
            }
            if !changed {
                break;
            }
        }
        // Step 6: "[fwd: ...]" around the whole subject.
        match strip_ci(s, "[fwd:").and_then(|r| r.strip_suffix(']')) {
            Some(inner) => {
                s = inner;
                reply = true;
            }
            None => break,
        }
    }
    (s.to_owned(), reply)
}

/// One message to sort: its facts and the per-message values that are
/// not in its header.
#[derive(Debug, Clone, Copy)]
pub struct SortItem<'f> {
    /// The message sequence number (the final tie-breaker).
    pub seq: NonZeroU32,
    /// What to return for this message: its sequence number for SORT, its
    /// UID for UID SORT.
    pub id: NonZeroU32,
    /// The internal date, seconds since the epoch.
    pub arrival: i64,
    /// RFC822.SIZE.
    pub size: u32,
    pub facts: &'f SortFacts,
}

impl SortItem<'_> {
    /// The sent date, or the internal date when there is no usable Date
    /// field (RFC 5256 §3, DATE).
    pub fn date(&self) -> i64 {
        self.facts.sent.unwrap_or(self.arrival)
    }
}

fn compare(a: &SortItem<'_>, b: &SortItem<'_>, key: &SortKey) -> Ordering {
    match key {
        SortKey::Arrival => a.arrival.cmp(&b.arrival),
        SortKey::Cc => a.facts.cc.cmp(&b.facts.cc),
        SortKey::Date => a.date().cmp(&b.date()),
        SortKey::From => a.facts.from.cmp(&b.facts.from),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Subject => a.facts.base_subject.cmp(&b.facts.base_subject),
        SortKey::To => a.facts.to.cmp(&b.facts.to),
        SortKey::DisplayFrom => a.facts.display_from.cmp(&b.facts.display_from),
        SortKey::DisplayTo => a.facts.display_to.cmp(&b.facts.display_to),
    }
}

/// The ids of `items` in the order `criteria` gives (RFC 5256 §3).
pub fn sort(items: &[SortItem<'_>], criteria: &[SortCriterion]) -> Vec<NonZeroU32> {
    let mut order: Vec<&SortItem<'_>> = items.iter().collect();
    order.sort_by(|a, b| {
        for c in criteria {
            let o = compare(a, b, &c.key);
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.seq.cmp(&b.seq)
    });
    order.into_iter().map(|i| i.id).collect()
}
