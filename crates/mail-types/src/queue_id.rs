//! Queue ids: unique, sortable by time, safe in file names.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A queue id such as `19BCA3F2E1C0A0003K9Q`.
///
/// The text is upper-case: 13 hexadecimal digits of microseconds since
/// the epoch (so ids sort by arrival time until the year 2255), then at
/// least 6 base-36 digits (0-9A-Z) of a number that makes the id unique.
/// For queue files that number is the file's inode, as in Postfix's long
/// queue ids: while a queue file exists no other file on its file system
/// has its inode, and a file keeps its inode through every rename between
/// queue states, so two live queue files cannot get the same id even
/// from different processes or across a clock step. The microseconds
/// also never repeat within one process (they are forced to increase),
/// so an inode freed and reused at once still yields a new id. The queue
/// still refuses to replace an existing file when it moves one, so even
/// a file copied in by hand cannot be overwritten.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(String);

/// Why a string is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIdError;

impl fmt::Display for QueueIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a queue id (expected 10 to 32 characters 0-9 A-Z)")
    }
}

impl std::error::Error for QueueIdError {}

static COUNTER: AtomicU32 = AtomicU32::new(0);
static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

/// Microseconds since the epoch, strictly increasing within this process
/// even when the clock stands still or steps back.
fn next_micros() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST_MICROS.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1)) & 0xF_FFFF_FFFF_FFFF;
        match LAST_MICROS.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// `n` in base 36 with digits 0-9A-Z, at least 6 digits.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::with_capacity(13);
    while n > 0 || out.len() < 6 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl QueueId {
    /// Draws an id for a queue file whose inode is `inode` (the caller
    /// has created the file and holds it): the current time and the
    /// inode, which no other live file on that file system has.
    pub fn for_inode(inode: u64) -> QueueId {
        QueueId(format!("{:013X}{}", next_micros(), base36(inode)))
    }

    /// Draws an id without a file to anchor it (maildrop names, which
    /// are created with `O_EXCL`): the time, the whole process id and a
    /// per-process counter.
    pub fn generate() -> QueueId {
        let seq = u64::from(COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFFFF);
        let pid = u64::from(std::process::id());
        QueueId(format!("{:013X}{}", next_micros(), base36((pid << 16) | seq)))
    }

    /// Parses an id read from a file name, a log line or a command line.
    /// Accepts what [`QueueId::generate`] and [`QueueId::for_inode`] make,
    /// the older 19-digit hexadecimal ids still in queues, and nothing
    /// that could leave a directory.
    pub fn parse(s: &str) -> Result<QueueId, QueueIdError> {
        let ok = (10..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
        if ok { Ok(QueueId(s.to_owned())) } else { Err(QueueIdError) }
    }

    /// When the id was drawn, from its first 13 digits: for messages,
    /// the moment the queue file was started, close to arrival and finer
    /// than the envelope's whole seconds (log lines' `delay=`). `None` for
    /// ids not made here.
    pub fn created(&self) -> Option<SystemTime> {
        let micros = u64::from_str_radix(self.0.get(..13)?, 16).ok()?;
        UNIX_EPOCH.checked_add(std::time::Duration::from_micros(micros))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_are_unique_and_ordered() {
        let a = QueueId::generate();
        let b = QueueId::generate();
        assert_ne!(a, b);
        assert!(a < b);
        assert_eq!(QueueId::parse(a.as_str()), Ok(a));
        let c = QueueId::for_inode(12);
        assert_eq!(c.as_str().len(), 19);
        assert!(c.as_str().ends_with("00000C"));
        assert_eq!(QueueId::parse(c.as_str()), Ok(c.clone()));
        assert!(b < c);
        let big = QueueId::for_inode(u64::MAX);
        assert_eq!(QueueId::parse(big.as_str()), Ok(big));
    }

    #[test]
    fn same_inode_never_repeats_an_id() {
        // An inode freed and reused at once (same process, same
        // microsecond) still gives a new id.
        let ids: std::collections::HashSet<QueueId> =
            (0..1000).map(|_| QueueId::for_inode(42)).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn ids_of_the_old_format_still_parse() {
        let old = QueueId::parse("19BCA3F2E1C0A7D2B01").unwrap();
        assert!(old.created().is_some());
    }

    #[test]
    fn created_is_the_generation_time() {
        let before = SystemTime::now();
        let id = QueueId::generate();
        let t = id.created().unwrap();
        let slack = std::time::Duration::from_millis(5);
        assert!(t + slack >= before && t <= SystemTime::now() + slack);
        assert_eq!(QueueId::parse("ZZZZZZZZZZZZZZ").unwrap().created(), None);
    }

    #[test]
    fn rejects_path_tricks() {
        for bad in [
            "",
            "../../etc/passwd",
            "abcdefghijk",
            "ABCDEF/GHIJK",
            "0123456789ABCDEF0123456789ABCDEF0",
        ] {
            assert!(QueueId::parse(bad).is_err(), "{bad}");
        }
    }
}
