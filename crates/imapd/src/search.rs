//! SEARCH and UID SEARCH (RFC 3501 §6.4.4): every search key over the
//! index (flags, sizes, internal dates, UIDs, message numbers) and over
//! the text (header fields, Date for SENT*, BODY, TEXT), matched
//! case-insensitively as substrings, the file read only when a key needs
//! it. Charsets: UTF-8 and US-ASCII; others get `NO [BADCHARSET]`.
//!
//! Severities: none; a message that vanished meanwhile just does not
//! match.

use std::collections::HashSet;

use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::search::SearchKey;
use mail_maildir::{Flags, MessageInfo};

use crate::fetch::{crlf, split};
use crate::session::{Selected, indices, push, read_message, resolve_uids};

/// Nested keys deeper than this are refused (`NOT NOT NOT ...`).
const MAX_DEPTH: usize = 64;

/// Answers a SEARCH into `out`.
pub(crate) fn search(
    sel: &Selected,
    charset: Option<&Charset<'_>>,
    criteria: &Vec1<SearchKey<'_>>,
    uid: bool,
    out: &mut Vec<u8>,
) -> Result<String, String> {
    if let Some(c) = charset {
        let name = match c {
            Charset::Atom(a) => a.inner().to_owned(),
            Charset::Quoted(q) => q.inner().to_owned(),
        };
        if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
            return Err("NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset.".into());
        }
    }
    let keys = criteria.as_ref();
    for k in keys {
        check(k, 0)?;
    }
    let msgs = sel.mbox.messages();
    let mut hits = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let mut ctx = Ctx { sel, index: i, m, text: None };
        let mut all = true;
        for k in keys {
            if !ctx.eval(k)? {
                all = false;
                break;
            }
        }
        if all {
            hits.push(if uid { m.uid } else { i as u32 + 1 });
        }
    }
    let mut line = String::from("* SEARCH");
    for h in hits {
        line.push(' ');
        line.push_str(&h.to_string());
    }
    line.push_str("\r\n");
    push(out, &line);
    Ok("OK Search completed.".into())
}

/// Refuses what cannot be evaluated before reading any message.
fn check(k: &SearchKey<'_>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("BAD Search keys nested too deep.".into());
    }
    match k {
        SearchKey::And(v) => v.as_ref().iter().try_for_each(|k| check(k, depth + 1)),
        SearchKey::Not(k) => check(k, depth + 1),
        SearchKey::Or(a, b) => {
            check(a, depth + 1)?;
            check(b, depth + 1)
        }
        SearchKey::ModSequence { .. } => Err("BAD MODSEQ is not supported.".into()),
        _ => Ok(()),
    }
}

struct Ctx<'a> {
    sel: &'a Selected,
    index: usize,
    m: &'a MessageInfo,
    /// The message in CRLF form, read on first need; `None` inside when
    /// it vanished.
    text: Option<Option<Vec<u8>>>,
}

impl Ctx<'_> {
    fn text(&mut self) -> Option<&[u8]> {
        if self.text.is_none() {
            let t = read_message(&self.sel.mbox, self.m.uid).ok().map(|r| crlf(&r));
            self.text = Some(t);
        }
        self.text.as_ref().and_then(|t| t.as_deref())
    }

    fn header(&mut self, name: &str) -> Vec<Vec<u8>> {
        let Some(t) = self.text() else { return Vec::new() };
        header_values(split(t).0, name)
    }

    fn header_has(&mut self, name: &str, needle: &[u8]) -> bool {
        self.header(name).iter().any(|v| contains(v, needle))
    }

    fn sent_date(&mut self) -> Option<chrono::NaiveDate> {
        let v = self.header("Date").into_iter().next()?;
        let s = String::from_utf8_lossy(&v);
        chrono::DateTime::parse_from_rfc2822(s.trim()).ok().map(|d| d.date_naive())
    }

    fn eval(&mut self, k: &SearchKey<'_>) -> Result<bool, String> {
        let f = self.m.flags;
        let recent = self.sel.recent.contains(&self.m.uid);
        let internal = chrono::DateTime::from_timestamp(self.m.internal_date, 0)
            .map(|d| d.date_naive())
            .unwrap_or_default();
        let now = chrono::Utc::now().timestamp();
        Ok(match k {
            SearchKey::All => true,
            SearchKey::And(v) => {
                for k in v.as_ref() {
                    if !self.eval(k)? {
                        return Ok(false);
                    }
                }
                true
            }
            SearchKey::Not(k) => !self.eval(k)?,
            SearchKey::Or(a, b) => self.eval(a)? || self.eval(b)?,
            SearchKey::SequenceSet(set) => {
                let set: HashSet<usize> =
                    indices(&self.sel.mbox, set, false).unwrap_or_default().into_iter().collect();
                set.contains(&self.index)
            }
            SearchKey::Uid(set) => resolve_uids(&self.sel.mbox, set).binary_search(&self.m.uid).is_ok(),
            SearchKey::Answered => f.contains(Flags::ANSWERED),
            SearchKey::Deleted => f.contains(Flags::DELETED),
            SearchKey::Draft => f.contains(Flags::DRAFT),
            SearchKey::Flagged => f.contains(Flags::FLAGGED),
            SearchKey::Seen => f.contains(Flags::SEEN),
            SearchKey::Unanswered => !f.contains(Flags::ANSWERED),
            SearchKey::Undeleted => !f.contains(Flags::DELETED),
            SearchKey::Undraft => !f.contains(Flags::DRAFT),
            SearchKey::Unflagged => !f.contains(Flags::FLAGGED),
            SearchKey::Unseen => !f.contains(Flags::SEEN),
            SearchKey::Recent => recent,
            SearchKey::New => recent && !f.contains(Flags::SEEN),
            SearchKey::Old => !recent,
            // No keywords are kept (PERMANENTFLAGS has no \*).
            SearchKey::Keyword(_) => false,
            SearchKey::Unkeyword(_) => true,
            SearchKey::Larger(n) => self.m.size > u64::from(*n),
            SearchKey::Smaller(n) => self.m.size < u64::from(*n),
            SearchKey::Before(d) => internal < *d.as_ref(),
            SearchKey::On(d) => internal == *d.as_ref(),
            SearchKey::Since(d) => internal >= *d.as_ref(),
            SearchKey::SentBefore(d) => self.sent_date().is_some_and(|s| s < *d.as_ref()),
            SearchKey::SentOn(d) => self.sent_date().is_some_and(|s| s == *d.as_ref()),
            SearchKey::SentSince(d) => self.sent_date().is_some_and(|s| s >= *d.as_ref()),
            SearchKey::Older(secs) => self.m.internal_date <= now - i64::from(secs.get()),
            SearchKey::Younger(secs) => self.m.internal_date >= now - i64::from(secs.get()),
            SearchKey::From(s) => self.header_has("From", s.as_ref()),
            SearchKey::To(s) => self.header_has("To", s.as_ref()),
            SearchKey::Cc(s) => self.header_has("Cc", s.as_ref()),
            SearchKey::Bcc(s) => self.header_has("Bcc", s.as_ref()),
            SearchKey::Subject(s) => self.header_has("Subject", s.as_ref()),
            SearchKey::Header(name, s) => {
                let name = String::from_utf8_lossy(name.as_ref()).into_owned();
                let values = self.header(&name);
                // An empty string matches every message with the field.
                values.iter().any(|v| contains(v, s.as_ref()))
            }
            SearchKey::Body(s) => self.text().is_some_and(|t| contains(split(t).1, s.as_ref())),
            SearchKey::Text(s) => self.text().is_some_and(|t| contains(t, s.as_ref())),
            SearchKey::ModSequence { .. } => false,
        })
    }
}

/// The unfolded values of every `name` field in `header`.
fn header_values(header: &[u8], name: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n")).unwrap_or(line);
        if body.is_empty() {
            break;
        }
        if body.starts_with(b" ") || body.starts_with(b"\t") {
            if let Some(c) = current.as_mut() {
                c.extend_from_slice(body);
            }
            continue;
        }
        if let Some(c) = current.take() {
            out.push(c);
        }
        let mut parts = body.splitn(2, |&b| b == b':');
        let (Some(n), Some(v)) = (parts.next(), parts.next()) else { continue };
        if n.trim_ascii().eq_ignore_ascii_case(name.as_bytes()) {
            current = Some(v.trim_ascii_start().to_vec());
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}

/// Case-insensitive (ASCII) substring test; the empty needle matches.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.len() > hay.len() {
        return false;
    }
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_unfold() {
        let h = b"Subject: one\r\n two\r\nFrom: a@b\r\nsubject: x\r\n\r\n";
        assert_eq!(header_values(h, "SUBJECT"), vec![b"one two".to_vec(), b"x".to_vec()]);
        assert!(contains(b"Hello World", b"wORLD"));
        assert!(!contains(b"Hello", b"Help"));
    }
}
