//! One fuzz input through every public function, for the cargo-fuzz
//! target `imap_message` and the stable replay of its corpus.
//!
//! The input is cut at each `\0\0` into up to eight messages (so SORT
//! and THREAD see several), and every FETCH item, part path up to three
//! levels, search key, sort key and threading algorithm is computed on
//! them. The FETCH answers are returned so the fuzz target can also run
//! them through imap-codec's encoder.

use std::borrow::Cow;
use std::num::NonZeroU32;

use chrono::{DateTime, FixedOffset, TimeZone};
use imap_types::core::{AString, Atom, Vec1};
use imap_types::datetime::NaiveDate;
use imap_types::extensions::sort::{SortCriterion, SortKey};
use imap_types::extensions::thread::ThreadingAlgorithm;
use imap_types::fetch::{MessageDataItem, MessageDataItemName, Part, Section};
use imap_types::flag::Flag;
use imap_types::search::SearchKey;

use crate::Message;
use crate::search::{SearchContext, matches};
use crate::sort::{SortItem, sort};
use crate::thread::thread;

struct Ctx<'a> {
    raw: &'a [u8],
    seq: NonZeroU32,
}

impl SearchContext for Ctx<'_> {
    fn seq(&self) -> NonZeroU32 {
        self.seq
    }
    fn uid(&self) -> NonZeroU32 {
        self.seq
    }
    fn last_seq(&self) -> u32 {
        8
    }
    fn last_uid(&self) -> u32 {
        8
    }
    fn has_flag(&self, _: &Flag<'_>) -> bool {
        self.raw.len().is_multiple_of(2)
    }
    fn is_recent(&self) -> bool {
        false
    }
    fn internal_date(&self) -> DateTime<FixedOffset> {
        epoch()
    }
    fn size(&self) -> u32 {
        u32::try_from(self.raw.len()).unwrap_or(u32::MAX)
    }
    fn modseq(&self) -> u64 {
        1
    }
    fn now(&self) -> DateTime<FixedOffset> {
        epoch()
    }
    fn raw(&self) -> Option<Cow<'_, [u8]>> {
        Some(Cow::Borrowed(self.raw))
    }
}

fn epoch() -> DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .and_then(|z| z.timestamp_opt(1_780_000_000, 0).single())
        .unwrap_or_default()
}

fn paths() -> Vec<Vec<NonZeroU32>> {
    let n: Vec<NonZeroU32> = (1..=3).filter_map(NonZeroU32::new).collect();
    let mut out = vec![Vec::new()];
    for &a in &n {
        out.push(vec![a]);
        for &b in &n {
            out.push(vec![a, b]);
            for &c in &n {
                out.push(vec![a, b, c]);
            }
        }
    }
    out
}

/// Runs everything on `data`; returns every FETCH answer.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) -> Vec<MessageDataItem<'_>> {
    let mut raws: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(2).position(|w| w == b"\0\0") {
        raws.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    raws.push(rest);
    raws.truncate(8);
    let word: String = String::from_utf8_lossy(&data[..data.len().min(4)])
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let needle = AString::try_from(word).unwrap_or_else(|_| AString::from(Atom::unvalidated("a")));
    let day = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).map(NaiveDate::unvalidated);
    let mut keys = vec![
        SearchKey::From(needle.clone()),
        SearchKey::To(needle.clone()),
        SearchKey::Cc(needle.clone()),
        SearchKey::Bcc(needle.clone()),
        SearchKey::Subject(needle.clone()),
        SearchKey::Body(needle.clone()),
        SearchKey::Text(needle.clone()),
        SearchKey::Header(needle.clone(), needle.clone()),
    ];
    if let Some(d) = day {
        keys.extend([
            SearchKey::SentBefore(d.clone()),
            SearchKey::SentOn(d.clone()),
            SearchKey::SentSince(d),
        ]);
    }
    let mut out = Vec::new();
    let mut facts = Vec::new();
    for (i, raw) in raws.iter().enumerate() {
        let msg = Message::parse(raw);
        let mut names = vec![
            MessageDataItemName::Envelope,
            MessageDataItemName::Body,
            MessageDataItemName::BodyStructure,
            MessageDataItemName::Rfc822,
            MessageDataItemName::Rfc822Header,
            MessageDataItemName::Rfc822Text,
            MessageDataItemName::Rfc822Size,
            MessageDataItemName::BodyExt {
                section: None,
                partial: NonZeroU32::new(7).map(|l| (3, l)),
                peek: true,
            },
        ];
        if let Ok(fields) = Vec1::try_from(vec![
            needle.clone(),
            AString::try_from("subject").unwrap_or(needle.clone()),
        ]) {
            names.push(MessageDataItemName::BodyExt {
                section: Some(Section::HeaderFields(None, fields.clone())),
                partial: None,
                peek: true,
            });
            names.push(MessageDataItemName::BodyExt {
                section: Some(Section::HeaderFieldsNot(None, fields)),
                partial: None,
                peek: true,
            });
        }
        for path in paths() {
            names.push(MessageDataItemName::Binary {
                section: path.clone(),
                partial: None,
                peek: true,
            });
            names.push(MessageDataItemName::BinarySize { section: path.clone() });
            let Ok(p) = Vec1::try_from(path) else {
                names.push(MessageDataItemName::BodyExt {
                    section: Some(Section::Header(None)),
                    partial: None,
                    peek: true,
                });
                names.push(MessageDataItemName::BodyExt {
                    section: Some(Section::Text(None)),
                    partial: None,
                    peek: true,
                });
                continue;
            };
            let part = Part(p);
            for section in [
                Section::Part(part.clone()),
                Section::Mime(part.clone()),
                Section::Header(Some(part.clone())),
                Section::Text(Some(part.clone())),
            ] {
                names.push(MessageDataItemName::BodyExt {
                    section: Some(section),
                    partial: None,
                    peek: true,
                });
            }
        }
        for name in &names {
            if let Some(Ok(item)) = msg.fetch(name) {
                out.push(item);
            }
        }
        let seq = NonZeroU32::new(u32::try_from(i + 1).unwrap_or(1)).unwrap_or(NonZeroU32::MIN);
        let ctx = Ctx { raw, seq };
        for k in &keys {
            let _ = matches(k, &ctx);
        }
        facts.push((seq, msg.sort_facts(), ctx.size()));
    }
    let items: Vec<SortItem<'_>> = facts
        .iter()
        .map(|(seq, f, size)| SortItem { seq: *seq, id: *seq, arrival: 0, size: *size, facts: f })
        .collect();
    for key in [
        SortKey::Arrival,
        SortKey::Cc,
        SortKey::Date,
        SortKey::From,
        SortKey::Size,
        SortKey::Subject,
        SortKey::To,
        SortKey::DisplayFrom,
        SortKey::DisplayTo,
    ] {
        let _ = sort(&items, &[SortCriterion { reverse: true, key }]);
    }
    let _ = thread(&items, &ThreadingAlgorithm::References);
    let _ = thread(&items, &ThreadingAlgorithm::OrderedSubject);
    out
}
