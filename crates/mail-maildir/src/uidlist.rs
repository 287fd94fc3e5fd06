//! The on-disk UID lists: our own index (`postern-uidlist`) and, read once
//! for an import, Dovecot's `dovecot-uidlist` and Courier's
//! `courierimapuiddb`.
//!
//! Our index is a text file in the Maildir, in the spirit of Dovecot's
//! version 3 uidlist so that an operator can read it:
//!
//! ```text
//! postern-uidlist 1 V1700000000 N43 M57 X50 E52:3-5,9 E56:40 S1699999000.123456789,1699999010.250000000
//! 41 W1260 T1700000000 M55 :cur/1700000000.M1P2Q3.host,S=1234,W=1260:2,S
//! 42 W88 T1700000100 M57 :new/1700000100.M5P6Q7.host,S=85
//! ```
//!
//! The header names the format and its version, then `<letter><value>`
//! fields: `V` UIDVALIDITY, `N` the next UID, `M` the highest modseq
//! (CONDSTORE's HIGHESTMODSEQ), `X` the modseq from which the expunge log
//! is complete, and one `E<modseq>:<uid ranges>` per logged expunge (the
//! UIDs that went at that modseq, for QRESYNC's VANISHED), and `S` the
//! mtimes of `new/` and `cur/` (seconds.nanoseconds each) when the records
//! were last listed from them, if those had settled (see
//! [`DirStamps`]). A record is the
//! UID, fields (`W` the RFC 822 size with CRLF line ends, `T` the internal
//! date in seconds since the epoch, `M` the modseq of its last change),
//! then `:` and where the file was last seen (`new/` or `cur/` and its full
//! name, up to the end of the line: names may hold blanks). Fields with
//! other letters are skipped, so version 1 grows fields without a format
//! change (an index written before modseqs existed reads with every modseq
//! 1 and an empty log complete from now on); a different version is not
//! read at all (the index is rebuilt).
//!
//! The expunge log keeps the most recent [`MAX_EXPUNGE_RANGES`] UID ranges;
//! older events are dropped and `X` raised to the modseq of the newest
//! dropped one, so "what went since modseq m" is exact for `m >= X` and
//! otherwise answered with every UID below the next UID that is not in the
//! folder, which RFC 7162 §3.2.5.1 allows (VANISHED (EARLIER) may name
//! UIDs the client never had).
//!
//! Every parser here is total and bounded: the caller reads at most
//! [`MAX_INDEX_BYTES`], and anything out of shape makes the whole file
//! "damaged" (for our index) or is skipped line by line (for imports, which
//! only ever keep UIDs that would otherwise be new).

use std::collections::HashSet;

/// The file name of our index inside a Maildir.
pub const INDEX_FILE: &str = "postern-uidlist";
/// The first word of our index.
const MAGIC: &str = "postern-uidlist";
/// The only format version this code writes and reads.
pub const INDEX_VERSION: u32 = 1;
/// The most messages one Maildir may hold for us; beyond it opening fails
/// with a clear error rather than using unbounded memory.
pub const MAX_MESSAGES: usize = 1_000_000;
/// The largest index (and imported uidlist) we read: a record is about 100
/// bytes, so this leaves room for [`MAX_MESSAGES`] long names.
pub const MAX_INDEX_BYTES: u64 = 320 * 1024 * 1024;
/// The longest file name we accept in a Maildir (Linux's `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;
/// How many UID ranges the expunge log keeps (see the module docs).
pub const MAX_EXPUNGE_RANGES: usize = 4096;

/// Our index as read from or written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// UIDVALIDITY (never 0).
    pub uid_validity: u32,
    /// The UID the next new message gets; above every record's UID.
    pub uid_next: u32,
    /// The highest modseq given so far (at least every record's).
    pub highest_modseq: u64,
    /// The modseq from which [`Index::expunged`] is complete.
    pub expunge_floor: u64,
    /// Logged expunges, oldest first.
    pub expunged: Vec<Expunged>,
    /// The messages, by ascending UID.
    pub records: Vec<Record>,
    /// The mtimes of `new/` and `cur/` just before the listing the
    /// records come from, when a later change would have moved them.
    pub dirs: Option<DirStamps>,
}

/// The mtimes of `new/` and `cur/` (seconds and nanoseconds since the
/// epoch) at a listing of them. Recorded only when both lay at least a
/// second in the past when they were read, Dovecot's rule: a change in the
/// same clock tick as an earlier one may leave a directory's mtime as it
/// was, so only an mtime older than that can show that nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamps {
    /// `new/`'s mtime.
    pub new: (i64, u32),
    /// `cur/`'s mtime.
    pub cur: (i64, u32),
}

/// UIDs that went at one modseq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expunged {
    /// The modseq of the expunge.
    pub modseq: u64,
    /// The UIDs, as ascending disjoint inclusive ranges.
    pub uids: Vec<(u32, u32)>,
}

impl Index {
    /// An empty index.
    pub fn new(uid_validity: u32) -> Index {
        Index {
            uid_validity,
            uid_next: 1,
            highest_modseq: 1,
            expunge_floor: 1,
            expunged: Vec::new(),
            records: Vec::new(),
            dirs: None,
        }
    }

    /// The next modseq, now the highest.
    pub fn bump_modseq(&mut self) -> u64 {
        self.highest_modseq = self.highest_modseq.saturating_add(1);
        self.highest_modseq
    }

    /// Logs that `uids` went at a new modseq (returned), dropping the
    /// oldest events beyond [`MAX_EXPUNGE_RANGES`].
    pub fn log_expunge(&mut self, uids: impl IntoIterator<Item = u32>) -> u64 {
        let ranges = to_ranges(uids);
        let modseq = self.bump_modseq();
        if ranges.is_empty() {
            return modseq;
        }
        self.expunged.push(Expunged { modseq, uids: ranges });
        let mut total: usize = self.expunged.iter().map(|e| e.uids.len()).sum();
        while total > MAX_EXPUNGE_RANGES && !self.expunged.is_empty() {
            let dropped = self.expunged.remove(0);
            total -= dropped.uids.len();
            self.expunge_floor = self.expunge_floor.max(dropped.modseq);
        }
        modseq
    }
}

/// Ascending disjoint inclusive ranges of some UIDs.
pub fn to_ranges(uids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut v: Vec<u32> = uids.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for u in v {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(u) => *hi = u,
            _ => out.push((u, u)),
        }
    }
    out
}

/// One message of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its UID.
    pub uid: u32,
    /// RFC 822 size: the bytes with every bare LF counted as CRLF.
    pub size: u64,
    /// Internal date, seconds since the epoch (the file's mtime).
    pub internal_date: i64,
    /// The modseq of its last change (arrival or flags).
    pub modseq: u64,
    /// Whether it was last seen in `new/` (else `cur/`).
    pub in_new: bool,
    /// Its full file name when last seen (flags included).
    pub file_name: String,
}

/// The unique part of a Maildir file name (before the last `:`), which
/// stays the same when the flags change.
pub fn key_of(file_name: &str) -> &str {
    crate::parse_file_name(file_name).unique
}

/// Whether `name` is a file name we treat as a message: not empty, no dot
/// file, at most [`MAX_NAME_LEN`] bytes, no control characters or `/`, and
/// a non-empty unique part.
pub fn is_message_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && !name.chars().any(|c| c.is_control() || c == '/')
        && !key_of(name).is_empty()
}

/// Renders the index (with its trailing newline, which [`parse_index`]
/// requires: a file cut short is noticed).
pub fn render_index(index: &Index) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64 + index.records.len() * 100);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{MAGIC} {INDEX_VERSION} V{} N{} M{} X{}",
        index.uid_validity, index.uid_next, index.highest_modseq, index.expunge_floor
    );
    for e in &index.expunged {
        let _ = write!(out, " E{}:", e.modseq);
        for (n, (lo, hi)) in e.uids.iter().enumerate() {
            let sep = if n == 0 { "" } else { "," };
            if lo == hi {
                let _ = write!(out, "{sep}{lo}");
            } else {
                let _ = write!(out, "{sep}{lo}-{hi}");
            }
        }
    }
    if let Some(d) = index.dirs {
        let _ = write!(out, " S{}.{:09},{}.{:09}", d.new.0, d.new.1, d.cur.0, d.cur.1);
    }
    out.push('\n');
    for r in &index.records {
        let place = if r.in_new { "new" } else { "cur" };
        let _ = writeln!(
            out,
            "{} W{} T{} M{} :{place}/{}",
            r.uid, r.size, r.internal_date, r.modseq, r.file_name
        );
    }
    out.into_bytes()
}

/// Parses our index. The error says why it is damaged (for the log line
/// of the rebuild).
pub fn parse_index(bytes: &[u8]) -> Result<Index, String> {
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(format!("larger than {MAX_INDEX_BYTES} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let body = text.strip_suffix('\n').ok_or_else(|| "no final newline".to_owned())?;
    let mut lines = body.split('\n');
    let header = lines.next().unwrap_or("");
    let mut words = header.split(' ');
    if words.next() != Some(MAGIC) {
        return Err("not a postern-uidlist".to_owned());
    }
    match words.next().map(str::parse::<u32>) {
        Some(Ok(INDEX_VERSION)) => {}
        Some(Ok(v)) => return Err(format!("format version {v} (this program reads 1)")),
        _ => return Err("no format version".to_owned()),
    }
    let (mut validity, mut next, mut highest, mut floor) = (None, None, None, None);
    let mut dirs = None;
    let mut expunged: Vec<Expunged> = Vec::new();
    let mut ranges = 0usize;
    for word in words {
        match word.split_at_checked(1) {
            Some(("V", v)) => validity = Some(parse_u32(v).ok_or("bad UIDVALIDITY")?),
            Some(("N", v)) => next = Some(parse_u32(v).ok_or("bad next UID")?),
            Some(("M", v)) => highest = Some(parse_u64(v).ok_or("bad highest modseq")?),
            Some(("X", v)) => floor = Some(parse_u64(v).ok_or("bad expunge log floor")?),
            Some(("E", v)) => {
                let e = parse_expunged(v).ok_or("bad expunge log entry")?;
                ranges += e.uids.len();
                if ranges > MAX_EXPUNGE_RANGES
                    || expunged.last().is_some_and(|l| l.modseq >= e.modseq)
                {
                    return Err("bad expunge log".to_owned());
                }
                expunged.push(e);
            }
            Some(("S", v)) => dirs = Some(parse_stamps(v).ok_or("bad directory stamps")?),
            Some((l, _)) if l.bytes().all(|b| b.is_ascii_alphabetic()) => {}
            _ => return Err("bad header field".to_owned()),
        }
    }
    let uid_validity = validity.filter(|&v| v != 0).ok_or("no UIDVALIDITY")?;
    let uid_next = next.filter(|&n| n != 0).ok_or("no next UID")?;
    let mut records = Vec::new();
    let mut keys = HashSet::new();
    let mut last_uid = 0u32;
    for (n, line) in lines.enumerate() {
        if records.len() >= MAX_MESSAGES {
            return Err(format!("more than {MAX_MESSAGES} records"));
        }
        let r = parse_record(line).map_err(|e| format!("line {}: {e}", n + 2))?;
        if r.uid <= last_uid {
            return Err(format!("line {}: UID {} out of order", n + 2, r.uid));
        }
        if r.uid >= uid_next {
            return Err(format!("line {}: UID {} not below the next UID", n + 2, r.uid));
        }
        if !keys.insert(key_of(&r.file_name).to_owned()) {
            return Err(format!("line {}: file listed twice", n + 2));
        }
        last_uid = r.uid;
        records.push(r);
    }
    let max_record = records.iter().map(|r| r.modseq).max().unwrap_or(1);
    let max_logged = expunged.last().map_or(1, |e| e.modseq);
    // An index from before modseqs has none: 1 everywhere.
    let highest_modseq = highest.unwrap_or(1);
    if highest_modseq < max_record.max(max_logged) {
        return Err("a modseq above the highest".to_owned());
    }
    // Without a floor, nothing before now was logged.
    let expunge_floor = floor.unwrap_or(highest_modseq).min(highest_modseq);
    Ok(Index { uid_validity, uid_next, highest_modseq, expunge_floor, expunged, records, dirs })
}

/// `<secs>.<nanos>,<secs>.<nanos>` (`new/`, then `cur/`).
fn parse_stamps(v: &str) -> Option<DirStamps> {
    let one = |t: &str| {
        let (secs, nanos) = t.split_once('.')?;
        Some((parse_i64(secs)?, parse_u32(nanos).filter(|&n| n < 1_000_000_000)?))
    };
    let (new, cur) = v.split_once(',')?;
    Some(DirStamps { new: one(new)?, cur: one(cur)? })
}

/// `<modseq>:<lo>[-<hi>],...` with ascending disjoint ranges.
fn parse_expunged(v: &str) -> Option<Expunged> {
    let (m, list) = v.split_once(':')?;
    let modseq = parse_u64(m)?;
    let mut uids: Vec<(u32, u32)> = Vec::new();
    for item in list.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((lo, hi)) => (parse_u32(lo)?, parse_u32(hi)?),
            None => (parse_u32(item)?, parse_u32(item)?),
        };
        if lo == 0 || hi < lo || uids.last().is_some_and(|&(_, h)| h >= lo) {
            return None;
        }
        uids.push((lo, hi));
        if uids.len() > MAX_EXPUNGE_RANGES {
            return None;
        }
    }
    Some(Expunged { modseq, uids })
}

fn parse_record(line: &str) -> Result<Record, &'static str> {
    let (fields, place) = line.split_once(" :").ok_or("no file name")?;
    let mut words = fields.split(' ');
    let uid = words.next().and_then(parse_u32).filter(|&u| u != 0).ok_or("bad UID")?;
    let (mut size, mut date, mut modseq) = (None, None, None);
    for word in words {
        match word.split_at_checked(1) {
            Some(("W", v)) => size = Some(parse_u64(v).ok_or("bad size")?),
            Some(("T", v)) => date = Some(parse_i64(v).ok_or("bad date")?),
            Some(("M", v)) => modseq = Some(parse_u64(v).filter(|&m| m != 0).ok_or("bad modseq")?),
            Some((l, _)) if l.bytes().all(|b| b.is_ascii_alphabetic()) => {}
            _ => return Err("bad field"),
        }
    }
    let (in_new, name) = if let Some(name) = place.strip_prefix("new/") {
        (true, name)
    } else if let Some(name) = place.strip_prefix("cur/") {
        (false, name)
    } else {
        return Err("file neither in new/ nor cur/");
    };
    if !is_message_name(name) {
        return Err("bad file name");
    }
    Ok(Record {
        uid,
        size: size.ok_or("no size")?,
        internal_date: date.ok_or("no date")?,
        modseq: modseq.unwrap_or(1),
        in_new,
        file_name: name.to_owned(),
    })
}

/// UIDs another IMAP server gave the messages of this Maildir, read for a
/// one-time import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Its UIDVALIDITY.
    pub uid_validity: u32,
    /// Its next UID (already above every imported UID).
    pub uid_next: u32,
    /// Unique name (the part before `:`) and UID, by ascending UID, each
    /// UID and each name once.
    pub uids: Vec<(String, u32)>,
}

/// Parses a `dovecot-uidlist` (version 3, and the version 1 format that
/// Courier's `courierimapuiddb` also uses) or a `courierimapuiddb`.
///
/// Version 3: header `3 V<validity> N<next> ...`, records
/// `<uid> [<fields>] :<name>`. Version 1: header `1 <validity> <next>`,
/// records `<uid> <name>`. Courier's later version 2 writes `<name> <uid>`
/// records; both orders are accepted for versions 1 and 2. `None` when the
/// header is unusable; lines that cannot be read are skipped (those
/// messages get new UIDs, above every imported one).
pub fn parse_foreign_uidlist(bytes: &[u8]) -> Option<Imported> {
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return None;
    }
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let mut header = lines.next()?.split_ascii_whitespace();
    let version = header.next()?;
    let (validity, next) = match version {
        "3" => {
            let (mut v, mut n) = (None, None);
            for w in header {
                if let Some(x) = w.strip_prefix('V') {
                    v = parse_u32(x);
                } else if let Some(x) = w.strip_prefix('N') {
                    n = parse_u32(x);
                }
            }
            (v?, n?)
        }
        "1" | "2" => (parse_u32(header.next()?)?, parse_u32(header.next()?)?),
        _ => return None,
    };
    if validity == 0 {
        return None;
    }
    let mut uids: Vec<(String, u32)> = Vec::new();
    for line in lines.take(MAX_MESSAGES) {
        let parsed = if version == "3" { foreign_v3(line) } else { foreign_v1(line) };
        if let Some((name, uid)) = parsed {
            let key = name.split(':').next().unwrap_or("");
            if uid != 0 && uid < u32::MAX && is_message_name(key) {
                uids.push((key.to_owned(), uid));
            }
        }
    }
    uids.sort_by_key(|&(_, uid)| uid);
    let (mut seen_uid, mut seen_key) = (HashSet::new(), HashSet::new());
    uids.retain(|(key, uid)| seen_uid.insert(*uid) && seen_key.insert(key.clone()));
    let max = uids.last().map_or(0, |&(_, uid)| uid);
    Some(Imported { uid_validity: validity, uid_next: next.max(max.saturating_add(1)), uids })
}

fn foreign_v3(line: &str) -> Option<(&str, u32)> {
    let (fields, name) = line.split_once(" :").or_else(|| line.split_once(':'))?;
    let uid = parse_u32(fields.split(' ').next()?.trim())?;
    Some((name, uid))
}

fn foreign_v1(line: &str) -> Option<(&str, u32)> {
    let mut words = line.split_ascii_whitespace();
    let (first, last) = (words.next()?, words.next_back()?);
    match (parse_u32(first), parse_u32(last)) {
        (Some(uid), _) => Some((last, uid)),
        (None, Some(uid)) => Some((first, uid)),
        (None, None) => None,
    }
}

fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

fn parse_u32(s: &str) -> Option<u32> {
    digits(s)?.parse().ok()
}

fn parse_u64(s: &str) -> Option<u64> {
    digits(s)?.parse().ok()
}

fn parse_i64(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(rest) => digits(rest)?.parse::<i64>().ok().map(|v| -v),
        None => digits(s)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        Index {
            uid_validity: 1_700_000_000,
            uid_next: 43,
            highest_modseq: 57,
            expunge_floor: 50,
            expunged: vec![
                Expunged { modseq: 52, uids: vec![(3, 5), (9, 9)] },
                Expunged { modseq: 56, uids: vec![(40, 40)] },
            ],
            records: vec![
                Record {
                    uid: 7,
                    size: 1260,
                    internal_date: 1_700_000_000,
                    modseq: 55,
                    in_new: false,
                    file_name: "1700000000.M1P2Q3.host,S=1234,W=1260:2,S".into(),
                },
                Record {
                    uid: 42,
                    size: 88,
                    internal_date: -5,
                    modseq: 57,
                    in_new: true,
                    file_name: "with blank and : colon".into(),
                },
            ],
            dirs: Some(DirStamps { new: (1_699_999_000, 5), cur: (1_699_999_010, 250_000_000) }),
        }
    }

    #[test]
    fn index_round_trip() {
        let idx = sample();
        let text = render_index(&idx);
        assert!(text.starts_with(
            b"postern-uidlist 1 V1700000000 N43 M57 X50 E52:3-5,9 E56:40 \
              S1699999000.000000005,1699999010.250000000\n\
              7 W1260 T1700000000 M55 :cur/"
        ));
        assert_eq!(parse_index(&text).unwrap(), idx);
        let empty = Index::new(1);
        assert_eq!(parse_index(&render_index(&empty)).unwrap(), empty);
    }

    #[test]
    fn an_index_from_before_modseqs_reads_with_modseq_1() {
        let idx = parse_index(b"postern-uidlist 1 V5 N9\n3 W10 T2 :new/x\n").unwrap();
        assert_eq!((idx.highest_modseq, idx.expunge_floor), (1, 1));
        assert_eq!(idx.records[0].modseq, 1);
        assert!(idx.expunged.is_empty());
    }

    #[test]
    fn expunge_log_is_bounded_and_raises_its_floor() {
        let mut idx = Index::new(1);
        assert_eq!(idx.log_expunge([5, 3, 4, 9]), 2);
        assert_eq!(idx.expunged, [Expunged { modseq: 2, uids: vec![(3, 5), (9, 9)] }]);
        // Every other UID: one range each, so the log overflows.
        for n in 0..MAX_EXPUNGE_RANGES as u32 {
            idx.log_expunge([100 + 2 * n]);
        }
        let total: usize = idx.expunged.iter().map(|e| e.uids.len()).sum();
        assert!(total <= MAX_EXPUNGE_RANGES);
        assert_eq!(idx.expunge_floor, 2, "the first event is gone");
        assert_eq!(idx.expunged[0].modseq, 3);
        let text = render_index(&idx);
        assert_eq!(parse_index(&text).unwrap(), idx);
        assert_eq!(to_ranges([1, 2, 3, 7, 8, 10, 2]), [(1, 3), (7, 8), (10, 10)]);
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let text = b"postern-uidlist 1 V5 N9 M77\n3 W10 K1 T2 M4 :new/x\n";
        let idx = parse_index(text).unwrap();
        assert_eq!((idx.uid_validity, idx.uid_next), (5, 9));
        assert_eq!(idx.records[0].file_name, "x");
        assert!(idx.records[0].in_new);
    }

    #[test]
    fn damage_is_reported() {
        let good = render_index(&sample());
        let cut = &good[..good.len() - 3];
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (cut.to_vec(), "no final newline"),
            (b"".to_vec(), "no final newline"),
            (b"dovecot 3\n".to_vec(), "not a postern-uidlist"),
            (b"postern-uidlist 2 V1 N2\n".to_vec(), "version 2"),
            (b"postern-uidlist 1 N2\n".to_vec(), "UIDVALIDITY"),
            (b"postern-uidlist 1 V0 N2\n".to_vec(), "UIDVALIDITY"),
            (b"postern-uidlist 1 V1 N2 V\n".to_vec(), "UIDVALIDITY"),
            (b"postern-uidlist 1 V1\n".to_vec(), "next UID"),
            (b"postern-uidlist 1 V1 N5\n3 W1 T1 :new/a\n2 W1 T1 :new/b\n".to_vec(), "order"),
            (b"postern-uidlist 1 V1 N5\n5 W1 T1 :new/a\n".to_vec(), "below"),
            (b"postern-uidlist 1 V1 N5\n1 W1 T1 :new/a\n2 W1 T1 :cur/a:2,S\n".to_vec(), "twice"),
            (b"postern-uidlist 1 V1 N5\n1 W1 T1 :tmp/a\n".to_vec(), "neither"),
            (b"postern-uidlist 1 V1 N5\n1 W1 T1 :new/.a\n".to_vec(), "bad file name"),
            (b"postern-uidlist 1 V1 N5\n1 W1 :new/a\n".to_vec(), "no date"),
            (b"postern-uidlist 1 V1 N5\n1 T1 :new/a\n".to_vec(), "no size"),
            (b"postern-uidlist 1 V1 N5\n1 W-1 T1 :new/a\n".to_vec(), "bad size"),
            (b"postern-uidlist 1 V1 N5\n0 W1 T1 :new/a\n".to_vec(), "bad UID"),
            (b"postern-uidlist 1 V1 N5\n1 W1 T1 new/a\n".to_vec(), "no file name"),
            (b"postern-uidlist 1 V1 N5\n1 W1 T1 7 :new/a\n".to_vec(), "bad field"),
            (b"postern-uidlist 1 V1 N5\n\n".to_vec(), "no file name"),
            (b"postern-uidlist 1 V1 N5 M3\n1 W1 T1 M4 :new/a\n".to_vec(), "above the highest"),
            (b"postern-uidlist 1 V1 N5 M3 E4:1\n".to_vec(), "above the highest"),
            (b"postern-uidlist 1 V1 N5 M9 E4:2-1\n".to_vec(), "expunge log entry"),
            (b"postern-uidlist 1 V1 N5 M9 E4:1,1\n".to_vec(), "expunge log entry"),
            (b"postern-uidlist 1 V1 N5 M9 E4:0\n".to_vec(), "expunge log entry"),
            (b"postern-uidlist 1 V1 N5 M9 E4\n".to_vec(), "expunge log entry"),
            (b"postern-uidlist 1 V1 N5 M9 E4:1 E4:2\n".to_vec(), "expunge log"),
            (b"postern-uidlist 1 V1 N5 Mx\n".to_vec(), "highest modseq"),
            (b"postern-uidlist 1 V1 N5 S1.000000002\n".to_vec(), "directory stamps"),
            (b"postern-uidlist 1 V1 N5 S1.1000000000,1.0\n".to_vec(), "directory stamps"),
            (b"postern-uidlist 1 V1 N5 S1,1.0\n".to_vec(), "directory stamps"),
            (b"postern-uidlist 1 V1 N5\n1 W1 T1 M0 :new/a\n".to_vec(), "bad modseq"),
        ];
        cases.push((vec![0xff, b'\n'], "UTF-8"));
        for (text, want) in cases {
            let err = parse_index(&text).unwrap_err();
            assert!(err.contains(want), "{:?}: {err}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn message_names() {
        assert!(is_message_name("1700000000.M1P2Q3.host,S=5:2,S"));
        assert!(is_message_name("plain"));
        for bad in ["", ".hidden", ":2,S", "a\nb", "a\tb", "a/b", &"x".repeat(256)] {
            assert!(!is_message_name(bad), "{bad:?}");
        }
        assert_eq!(key_of("k,S=1:2,RS"), "k,S=1");
    }

    #[test]
    fn dovecot_v3() {
        let text = b"3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n\
            25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394\n\
            25017 W2481 :1276533073.M242911P3632.kurkku:2,F\n\
            25017 :duplicate-uid\n\
            garbage line\n\
            25010 :1276528487.M364837P9451.kurkku,S=1355,W=1394\n";
        let imp = parse_foreign_uidlist(text).unwrap();
        assert_eq!(imp.uid_validity, 1_275_660_208);
        assert_eq!(imp.uid_next, 25022);
        assert_eq!(
            imp.uids,
            vec![
                ("1276528487.M364837P9451.kurkku,S=1355,W=1394".to_owned(), 25006),
                ("1276533073.M242911P3632.kurkku".to_owned(), 25017),
            ]
        );
    }

    #[test]
    fn courier_and_dovecot_v1() {
        let imp = parse_foreign_uidlist(b"1 1600000000 4\n1 a.host\n3 b.host:2,S\n").unwrap();
        assert_eq!(imp.uid_validity, 1_600_000_000);
        assert_eq!(imp.uids, vec![("a.host".to_owned(), 1), ("b.host".to_owned(), 3)]);
        let imp = parse_foreign_uidlist(b"2 99 2\nname.x 7\n").unwrap();
        // The next UID is above every imported one whatever the header says.
        assert_eq!((imp.uid_next, imp.uids.len()), (8, 1));
        for bad in [&b""[..], b"4 V1 N1\n", b"3 N5\n", b"1 0 5\n", b"1 x y\n", b"\xff\xfe"] {
            assert_eq!(parse_foreign_uidlist(bad), None, "{bad:?}");
        }
    }
}
