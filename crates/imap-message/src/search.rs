//! SEARCH evaluation (RFC 3501 §6.4.4, RFC 9051 §6.4.4, RFC 7162 MODSEQ,
//! RFC 5032 OLDER/YOUNGER).
//!
//! imapd implements [`SearchContext`] for one message of the selected
//! mailbox and calls [`matches`] for each. Keys on flags, dates, sizes,
//! numbers and modseq never touch the message bytes; the others ask
//! [`SearchContext::raw`] once per message and parse it once.
//!
//! String keys match a case-insensitive substring (Unicode lower case)
//! after RFC 2047 decoding of header fields, and after transfer and
//! charset decoding of text parts for BODY and TEXT. Dates compare by
//! calendar day in the time zone of the date itself (RFC 3501:
//! "disregarding time and timezone"); a message without a usable Date
//! field is taken to have been sent at its internal date, as RFC 5256
//! does for SORT.
//!
//! Search programs nest through NOT, OR and parenthesised lists; a
//! program nested deeper than [`MAX_SEARCH_DEPTH`] matches no message
//! at all (whatever NOTs it holds), and [`too_deep`] lets imapd refuse it
//! with BAD before evaluating it.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::num::NonZeroU32;

use chrono::{DateTime, FixedOffset, NaiveDate};
use imap_types::core::Charset;
use imap_types::flag::Flag;
use imap_types::search::SearchKey;
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::mime::Tree;
use crate::text::{body_texts, decoded_header, decoded_values, fold, sent_date};

/// Deepest nesting of search keys evaluated.
pub const MAX_SEARCH_DEPTH: usize = 100;

/// The facts about one message that SEARCH needs and the bytes do not
/// hold. imapd implements it over its index entry.
pub trait SearchContext {
    /// The message sequence number.
    fn seq(&self) -> NonZeroU32;
    /// The UID.
    fn uid(&self) -> NonZeroU32;
    /// The number of messages in the mailbox: `*` of a sequence set.
    fn last_seq(&self) -> u32;
    /// The highest UID in the mailbox: `*` of a UID set.
    fn last_uid(&self) -> u32;
    /// Whether the message has `flag` (a system flag or a keyword;
    /// keywords compare case-insensitively).
    fn has_flag(&self, flag: &Flag<'_>) -> bool;
    /// Whether the message is \Recent in this session.
    fn is_recent(&self) -> bool;
    /// The internal date (INTERNALDATE).
    fn internal_date(&self) -> DateTime<FixedOffset>;
    /// RFC822.SIZE.
    fn size(&self) -> u32;
    /// The message's modseq (RFC 7162); 0 when CONDSTORE is off.
    fn modseq(&self) -> u64;
    /// The current time, for OLDER and YOUNGER (RFC 5032).
    fn now(&self) -> DateTime<FixedOffset>;
    /// The message bytes (CRLF line ends), read on demand. `None` when
    /// they cannot be read (expunged meanwhile): content keys then do not
    /// match.
    fn raw(&self) -> Option<Cow<'_, [u8]>>;
}

/// The charsets SEARCH accepts (RFC 9051 §6.4.4: US-ASCII and UTF-8).
/// For any other the caller answers `NO [BADCHARSET (US-ASCII UTF-8)]`.
pub fn charset_supported(charset: Option<&Charset<'_>>) -> bool {
    charset.is_none_or(|c| {
        let c: &str = c.as_ref();
        c.eq_ignore_ascii_case("utf-8")
            || c.eq_ignore_ascii_case("us-ascii")
            || c.eq_ignore_ascii_case("utf8")
    })
}

/// Whether `value` is in `set`, with `*` standing for `largest`
/// (RFC 9051 §9, seq-range: `n:*` and `*:n` are the same range).
pub fn in_sequence_set(set: &SequenceSet, value: u32, largest: u32) -> bool {
    let num = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(s) => num(s) == value,
        Sequence::Range(a, b) => {
            let (a, b) = (num(a), num(b));
            (a.min(b)..=a.max(b)).contains(&value)
        }
    })
}

struct Eval<'c, C: SearchContext> {
    ctx: &'c C,
    raw: OnceCell<Option<Cow<'c, [u8]>>>,
    tree: OnceCell<Option<Tree>>,
    header: OnceCell<Option<String>>,
    bodies: OnceCell<Option<Vec<String>>>,
    /// Set when the program nests deeper than [`MAX_SEARCH_DEPTH`].
    too_deep: Cell<bool>,
}

impl<'c, C: SearchContext> Eval<'c, C> {
    fn raw(&self) -> Option<&[u8]> {
        self.raw.get_or_init(|| self.ctx.raw()).as_deref()
    }

    fn tree(&self) -> Option<&Tree> {
        self.tree.get_or_init(|| self.raw().map(Tree::parse)).as_ref()
    }

    fn header_values(&self, name: &[u8]) -> Vec<String> {
        match (self.raw(), self.tree()) {
            (Some(raw), Some(tree)) => decoded_values(raw, &tree.entities[0], name),
            _ => Vec::new(),
        }
    }

    fn header_contains(&self, name: &[u8], needle: &[u8]) -> bool {
        let needle = fold(&String::from_utf8_lossy(needle));
        self.header_values(name).iter().any(|v| fold(v).contains(&needle))
    }

    fn whole_header(&self) -> Option<&str> {
        self.header
            .get_or_init(|| match (self.raw(), self.tree()) {
                (Some(raw), Some(tree)) => Some(fold(&decoded_header(raw, &tree.entities[0]))),
                _ => None,
            })
            .as_deref()
    }

    fn bodies(&self) -> &[String] {
        self.bodies
            .get_or_init(|| match (self.raw(), self.tree()) {
                (Some(raw), Some(tree)) => {
                    Some(body_texts(raw, tree).iter().map(|t| fold(t)).collect())
                }
                _ => None,
            })
            .as_deref()
            .unwrap_or_default()
    }

    fn body_contains(&self, needle: &[u8]) -> bool {
        let needle = fold(&String::from_utf8_lossy(needle));
        self.bodies().iter().any(|b| b.contains(&needle))
    }

    fn sent_day(&self) -> NaiveDate {
        match (self.raw(), self.tree()) {
            (Some(raw), Some(tree)) => sent_date(raw, &tree.entities[0]).map(|(_, d)| d),
            _ => None,
        }
        .unwrap_or_else(|| self.ctx.internal_date().date_naive())
    }

    fn eval(&self, key: &SearchKey<'_>, depth: usize) -> bool {
        if depth > MAX_SEARCH_DEPTH {
            self.too_deep.set(true);
            return false;
        }
        let c = self.ctx;
        let internal_day = || c.internal_date().date_naive();
        match key {
            SearchKey::And(keys) => keys.as_ref().iter().all(|k| self.eval(k, depth + 1)),
            SearchKey::Or(a, b) => self.eval(a, depth + 1) || self.eval(b, depth + 1),
            SearchKey::Not(k) => !self.eval(k, depth + 1),
            SearchKey::SequenceSet(set) => in_sequence_set(set, c.seq().get(), c.last_seq()),
            SearchKey::Uid(set) => in_sequence_set(set, c.uid().get(), c.last_uid()),
            SearchKey::All => true,
            SearchKey::Answered => c.has_flag(&Flag::Answered),
            SearchKey::Deleted => c.has_flag(&Flag::Deleted),
            SearchKey::Draft => c.has_flag(&Flag::Draft),
            SearchKey::Flagged => c.has_flag(&Flag::Flagged),
            SearchKey::Seen => c.has_flag(&Flag::Seen),
            SearchKey::Unanswered => !c.has_flag(&Flag::Answered),
            SearchKey::Undeleted => !c.has_flag(&Flag::Deleted),
            SearchKey::Undraft => !c.has_flag(&Flag::Draft),
            SearchKey::Unflagged => !c.has_flag(&Flag::Flagged),
            SearchKey::Unseen => !c.has_flag(&Flag::Seen),
            SearchKey::Keyword(k) => c.has_flag(&Flag::Keyword(k.clone())),
            SearchKey::Unkeyword(k) => !c.has_flag(&Flag::Keyword(k.clone())),
            SearchKey::Recent => c.is_recent(),
            SearchKey::New => c.is_recent() && !c.has_flag(&Flag::Seen),
            SearchKey::Old => !c.is_recent(),
            SearchKey::Before(d) => internal_day() < *d.as_ref(),
            SearchKey::On(d) => internal_day() == *d.as_ref(),
            SearchKey::Since(d) => internal_day() >= *d.as_ref(),
            SearchKey::SentBefore(d) => self.sent_day() < *d.as_ref(),
            SearchKey::SentOn(d) => self.sent_day() == *d.as_ref(),
            SearchKey::SentSince(d) => self.sent_day() >= *d.as_ref(),
            SearchKey::Larger(n) => c.size() > *n,
            SearchKey::Smaller(n) => c.size() < *n,
            SearchKey::Bcc(s) => self.header_contains(b"bcc", s.as_ref()),
            SearchKey::Cc(s) => self.header_contains(b"cc", s.as_ref()),
            SearchKey::From(s) => self.header_contains(b"from", s.as_ref()),
            SearchKey::To(s) => self.header_contains(b"to", s.as_ref()),
            SearchKey::Subject(s) => self.header_contains(b"subject", s.as_ref()),
            SearchKey::Header(name, s) => self.header_contains(name.as_ref(), s.as_ref()),
            SearchKey::Body(s) => self.body_contains(s.as_ref()),
            SearchKey::Text(s) => {
                let needle = fold(&String::from_utf8_lossy(s.as_ref()));
                self.whole_header().is_some_and(|h| h.contains(&needle))
                    || self.body_contains(s.as_ref())
            }
            SearchKey::Older(secs) => {
                (c.now() - c.internal_date()).num_seconds() >= i64::from(secs.get())
            }
            SearchKey::Younger(secs) => {
                (c.now() - c.internal_date()).num_seconds() <= i64::from(secs.get())
            }
            // RFC 7162 §3.1.5: the per-flag entry may be ignored when the
            // server keeps one modseq per message, as we do.
            SearchKey::ModSequence { modseq, .. } => c.modseq() >= *modseq,
        }
    }
}

/// Whether the message behind `ctx` matches `key`.
pub fn matches<C: SearchContext>(key: &SearchKey<'_>, ctx: &C) -> bool {
    let eval = Eval {
        ctx,
        raw: OnceCell::new(),
        tree: OnceCell::new(),
        header: OnceCell::new(),
        bodies: OnceCell::new(),
        too_deep: Cell::new(false),
    };
    let result = eval.eval(key, 0);
    result && !eval.too_deep.get()
}

/// Whether `key` nests deeper than [`MAX_SEARCH_DEPTH`] (answer BAD).
pub fn too_deep(key: &SearchKey<'_>) -> bool {
    let mut stack = vec![(key, 0usize)];
    while let Some((k, d)) = stack.pop() {
        if d > MAX_SEARCH_DEPTH {
            return true;
        }
        match k {
            SearchKey::And(keys) => stack.extend(keys.as_ref().iter().map(|k| (k, d + 1))),
            SearchKey::Or(a, b) => {
                stack.push((a, d + 1));
                stack.push((b, d + 1));
            }
            SearchKey::Not(k) => stack.push((k, d + 1)),
            _ => {}
        }
    }
    false
}

/// Whether any key of `key` looks at the message bytes (so imapd can
/// skip reading them, or read them in bulk first).
pub fn needs_content(key: &SearchKey<'_>) -> bool {
    // Iterative: the key tree is walked with an explicit stack.
    let mut stack = vec![key];
    while let Some(k) = stack.pop() {
        match k {
            SearchKey::And(keys) => stack.extend(keys.as_ref().iter()),
            SearchKey::Or(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            SearchKey::Not(k) => stack.push(k),
            SearchKey::Bcc(_)
            | SearchKey::Cc(_)
            | SearchKey::From(_)
            | SearchKey::To(_)
            | SearchKey::Subject(_)
            | SearchKey::Header(..)
            | SearchKey::Body(_)
            | SearchKey::Text(_)
            | SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_) => return true,
            _ => {}
        }
    }
    false
}
