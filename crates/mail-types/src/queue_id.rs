//! Queue ids: unique, sortable by time, safe in file names.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A queue id such as `19BCA3F2E1C0A7D2B01`.
///
/// The text is upper-case hexadecimal: 13 digits of microseconds since the
/// epoch (so ids sort by arrival time until the year 2255), 4 digits from the
/// process id and 2 of a per-process counter. Writers create queue files with
/// `O_EXCL`, so the rare collision is detected and a new id drawn.
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

impl QueueId {
    /// Draws a new id from the clock, the process id and a counter.
    pub fn generate() -> QueueId {
        let micros =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        QueueId(format!(
            "{:013X}{:04X}{:02X}",
            micros & 0xF_FFFF_FFFF_FFFF,
            pid & 0xFFFF,
            seq & 0xFF
        ))
    }

    /// Parses an id read from a file name, a log line or a command line.
    /// Accepts what [`QueueId::generate`] makes and nothing that could
    /// leave a directory.
    pub fn parse(s: &str) -> Result<QueueId, QueueIdError> {
        let ok = (10..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
        if ok { Ok(QueueId(s.to_owned())) } else { Err(QueueIdError) }
    }

    /// When the id was drawn, from its first 13 digits: for messages,
    /// the moment the queue file was started, close to arrival and finer
    /// than the envelope's whole seconds (log lines' `delay=`). `None` for
    /// ids not made by [`QueueId::generate`].
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
        assert!(a < b || a.as_str()[..13] == b.as_str()[..13]);
        assert_eq!(QueueId::parse(a.as_str()), Ok(a));
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
