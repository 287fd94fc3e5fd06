//! SEARCH, SORT and THREAD (RFC 3501 §6.4.4, RFC 5256) and their UID
//! forms. imap-message evaluates the keys (RFC 2047 words decoded, body
//! text with its transfer encoding removed) and orders the messages;
//! this module gives it the per-message facts the index holds (flags,
//! UID, internal date, size, `\Recent`) through its `SearchContext`, and
//! reads a message's bytes only when a key needs them.
//!
//! Severities: none; a message that vanished meanwhile just does not
//! match.

use std::borrow::Cow;
use std::num::NonZeroU32;

use chrono::{DateTime, FixedOffset};
use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::search::SearchKey;
use imap_message::search::{self as msearch, SearchContext};
use imap_message::sort::{SortFacts, SortItem};
use mail_maildir::{Flags, MessageInfo};

use crate::fetch::crlf;
use crate::pre::SearchReturn;
use crate::session::{Selected, position, push, read_message};

/// How a SEARCH answers.
pub(crate) struct How<'a> {
    /// UID SEARCH.
    pub(crate) uid: bool,
    /// The command's tag, for ESEARCH's `(TAG ...)`.
    pub(crate) tag: &'a str,
    /// RETURN options (ESEARCH, RFC 4731), or `None` for a plain SEARCH
    /// response (never under IMAP4rev2, whose caller always sets them).
    pub(crate) ret: Option<SearchReturn>,
}

/// Answers a SEARCH into `out`.
pub(crate) fn search(
    sel: &mut Selected,
    charset: Option<&Charset<'_>>,
    criteria: &Vec1<SearchKey<'_>>,
    how: &How<'_>,
    out: &mut Vec<u8>,
) -> Result<String, String> {
    let uid = how.uid;
    let hits = match matching(sel, charset, criteria, uid) {
        Ok(h) => h,
        Err(e) => {
            // RFC 5182 §2.1: a failed SEARCH SAVE empties `$`.
            if how.ret.is_some_and(|r| r.save) {
                sel.saved.clear();
            }
            return Err(e);
        }
    };
    let modseq = if criteria.as_ref().iter().any(uses_modseq) {
        let msgs = sel.mbox.messages();
        hits.iter()
            .filter_map(|h| if uid { position(&sel.mbox, *h) } else { Some(*h as usize - 1) })
            .filter_map(|i| msgs.get(i).map(|m| m.modseq))
            .max()
    } else {
        None
    };
    if let Some(ret) = how.ret {
        esearch(sel, &hits, ret, how, modseq, out);
        return Ok("OK Search completed.".into());
    }
    let mut line = String::from("* SEARCH");
    for h in &hits {
        line.push(' ');
        line.push_str(&h.to_string());
    }
    // RFC 7162 §3.1.5: with a MODSEQ key, the highest modseq of the
    // messages found (nothing when none are).
    if let Some(m) = modseq {
        line.push_str(&format!(" (MODSEQ {m})"));
    }
    line.push_str("\r\n");
    push(out, &line);
    Ok("OK Search completed.".into())
}

/// Answers a SORT into `out`.
pub(crate) fn sort(
    sel: &Selected,
    criteria: &Vec1<SortCriterion>,
    charset: &Charset<'_>,
    keys: &Vec1<SearchKey<'_>>,
    uid: bool,
    out: &mut Vec<u8>,
) -> Result<String, String> {
    let facts = facts(sel, charset, keys)?;
    let items = items(sel, &facts, uid);
    let ids = imap_message::sort::sort(&items, criteria.as_ref());
    out.extend_from_slice(&encode(Data::Sort(ids, None)));
    Ok("OK Sort completed.".into())
}

/// Answers a THREAD into `out`.
pub(crate) fn thread(
    sel: &Selected,
    algorithm: &ThreadingAlgorithm<'_>,
    charset: &Charset<'_>,
    keys: &Vec1<SearchKey<'_>>,
    uid: bool,
    out: &mut Vec<u8>,
) -> Result<String, String> {
    let facts = facts(sel, charset, keys)?;
    let items = items(sel, &facts, uid);
    let Some(threads) = imap_message::thread::thread(&items, algorithm) else {
        return Err("BAD Unknown threading algorithm.".into());
    };
    out.extend_from_slice(&encode(Data::Thread(threads)));
    Ok("OK Thread completed.".into())
}

/// ESEARCH (RFC 4731) in Dovecot's order: MIN MAX ALL COUNT, then
/// MODSEQ (RFC 7162 §3.1.5); SAVE keeps the result as `$` (RFC 5182:
/// only MIN and/or MAX when those are asked without ALL or COUNT), and
/// alone sends nothing.
fn esearch(
    sel: &mut Selected,
    hits: &[u32],
    ret: SearchReturn,
    how: &How<'_>,
    modseq: Option<u64>,
    out: &mut Vec<u8>,
) {
    let (min, max) = (hits.first().copied(), hits.last().copied());
    if ret.save {
        let chosen: Vec<u32> = if (ret.min || ret.max) && !ret.all && !ret.count {
            let mut v: Vec<u32> = [ret.min.then_some(min), ret.max.then_some(max)]
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            v.dedup();
            v
        } else {
            hits.to_vec()
        };
        let msgs = sel.mbox.messages();
        sel.saved = chosen
            .into_iter()
            .filter_map(|h| if how.uid { Some(h) } else { msgs.get(h as usize - 1).map(|m| m.uid) })
            .collect();
        if !(ret.min || ret.max || ret.all || ret.count) {
            return;
        }
    }
    let mut line = b"* ESEARCH (TAG ".to_vec();
    crate::wire::string(&mut line, how.tag.as_bytes());
    line.push(b')');
    if how.uid {
        line.extend_from_slice(b" UID");
    }
    let mut add = |s: String| {
        line.push(b' ');
        line.extend_from_slice(s.as_bytes());
    };
    if ret.min
        && let Some(m) = min
    {
        add(format!("MIN {m}"));
    }
    if ret.max
        && let Some(m) = max
    {
        add(format!("MAX {m}"));
    }
    if ret.all && !hits.is_empty() {
        let ranges = mail_maildir::uidlist::to_ranges(hits.iter().copied());
        add(format!("ALL {}", crate::session::format_ranges(&ranges)));
    }
    if ret.count {
        add(format!("COUNT {}", hits.len()));
    }
    if let Some(m) = modseq {
        add(format!("MODSEQ {m}"));
    }
    line.extend_from_slice(b"\r\n");
    out.extend_from_slice(&line);
}

/// Whether a search key (or one inside it) is MODSEQ.
pub(crate) fn uses_modseq(key: &SearchKey<'_>) -> bool {
    fn go(key: &SearchKey<'_>, depth: usize) -> bool {
        if depth > msearch::MAX_SEARCH_DEPTH {
            return false;
        }
        match key {
            SearchKey::ModSequence { .. } => true,
            SearchKey::Not(k) => go(k, depth + 1),
            SearchKey::Or(a, b) => go(a, depth + 1) || go(b, depth + 1),
            SearchKey::And(v) => v.as_ref().iter().any(|k| go(k, depth + 1)),
            _ => false,
        }
    }
    go(key, 0)
}

fn encode(data: Data<'_>) -> Vec<u8> {
    ResponseCodec::default().encode(&Response::Data(data)).dump()
}

/// The matching messages' sort facts, by position.
fn facts(
    sel: &Selected,
    charset: &Charset<'_>,
    keys: &Vec1<SearchKey<'_>>,
) -> Result<Vec<(usize, SortFacts)>, String> {
    let hits = matching(sel, Some(charset), keys, false)?;
    let mut out = Vec::with_capacity(hits.len());
    for seq in hits {
        let i = seq as usize - 1;
        let Some(m) = sel.mbox.messages().get(i) else { continue };
        let facts = match read_message(&sel.mbox, m.uid) {
            Ok(raw) => imap_message::Message::parse(&crlf(&raw)).sort_facts(),
            Err(_) => SortFacts::default(),
        };
        out.push((i, facts));
    }
    Ok(out)
}

fn items<'f>(sel: &Selected, facts: &'f [(usize, SortFacts)], uid: bool) -> Vec<SortItem<'f>> {
    let msgs = sel.mbox.messages();
    facts
        .iter()
        .filter_map(|(i, f)| {
            let m = msgs.get(*i)?;
            let seq = NonZeroU32::new(*i as u32 + 1)?;
            Some(SortItem {
                seq,
                id: if uid { NonZeroU32::new(m.uid)? } else { seq },
                arrival: m.internal_date,
                size: u32::try_from(m.size).unwrap_or(u32::MAX),
                facts: f,
            })
        })
        .collect()
}

/// Message numbers (or UIDs) of the messages matching every key.
fn matching(
    sel: &Selected,
    charset: Option<&Charset<'_>>,
    criteria: &Vec1<SearchKey<'_>>,
    uid: bool,
) -> Result<Vec<u32>, String> {
    if !msearch::charset_supported(charset) {
        return Err("NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset.".into());
    }
    let keys = criteria.as_ref();
    if keys.iter().any(msearch::too_deep) {
        return Err("BAD Search keys nested too deep.".into());
    }
    let msgs = sel.mbox.messages();
    let last_uid = msgs.last().map_or(0, |m| m.uid);
    let now = chrono::Utc::now().fixed_offset();
    let mut hits = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let ctx = Ctx { sel, index: i, m, last_uid, now };
        if keys.iter().all(|k| msearch::matches(k, &ctx)) {
            hits.push(if uid { m.uid } else { i as u32 + 1 });
        }
    }
    Ok(hits)
}

struct Ctx<'a> {
    sel: &'a Selected,
    index: usize,
    m: &'a MessageInfo,
    last_uid: u32,
    now: DateTime<FixedOffset>,
}

impl SearchContext for Ctx<'_> {
    fn seq(&self) -> NonZeroU32 {
        NonZeroU32::new(self.index as u32 + 1).unwrap_or(NonZeroU32::MIN)
    }
    fn uid(&self) -> NonZeroU32 {
        NonZeroU32::new(self.m.uid).unwrap_or(NonZeroU32::MIN)
    }
    fn last_seq(&self) -> u32 {
        self.sel.mbox.messages().len() as u32
    }
    fn last_uid(&self) -> u32 {
        self.last_uid
    }
    fn has_flag(&self, flag: &Flag<'_>) -> bool {
        let f = self.m.flags;
        match flag {
            Flag::Answered => f.contains(Flags::ANSWERED),
            Flag::Deleted => f.contains(Flags::DELETED),
            Flag::Draft => f.contains(Flags::DRAFT),
            Flag::Flagged => f.contains(Flags::FLAGGED),
            Flag::Seen => f.contains(Flags::SEEN),
            Flag::Keyword(k) => {
                self.sel.mbox.keywords().flag(k.inner()).is_some_and(|kf| f.contains(kf))
            }
            Flag::Extension(_) => false,
        }
    }
    fn is_recent(&self) -> bool {
        self.sel.recent.contains(&self.m.uid)
    }
    fn internal_date(&self) -> DateTime<FixedOffset> {
        DateTime::from_timestamp(self.m.internal_date, 0).unwrap_or_default().fixed_offset()
    }
    fn size(&self) -> u32 {
        u32::try_from(self.m.size).unwrap_or(u32::MAX)
    }
    fn modseq(&self) -> u64 {
        self.m.modseq
    }
    fn now(&self) -> DateTime<FixedOffset> {
        self.now
    }
    fn raw(&self) -> Option<Cow<'_, [u8]>> {
        read_message(&self.sel.mbox, self.m.uid).ok().map(|r| Cow::Owned(crlf(&r)))
    }
}
