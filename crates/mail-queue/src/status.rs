//! Per-message status logs: the durable record of what happened to each
//! recipient (Postfix keeps this in the queue file and in `defer/`).
//!
//! `status/ID` is an append-only sequence of frames, each a 4-byte
//! little-endian length and a codec-encoded [`StatusRecord`]. A record is
//! appended and fdatasync'ed before qmgr treats the recipient as done, so
//! after a crash a recipient is re-delivered only if the crash fell
//! between its delivery and this append (the documented duplicate window).
//! A torn last frame (crash during the append) is ignored on read.

use crate::{Error, Queue};
use mail_types::QueueId;
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Largest single status record a reader accepts.
const MAX_RECORD: u32 = 64 << 10;
/// Largest status log a reader reads.
const MAX_LOG: u64 = 64 << 20;

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Delivered: final.
    Delivered {
        /// Enhanced status code, e.g. `2.0.0`.
        dsn: String,
        /// Where it went, e.g. `delivered to maildir`.
        text: String,
    },
    /// Failed permanently: final, a bounce is owed to the sender.
    Bounced {
        /// Enhanced status code, e.g. `5.1.1`.
        dsn: String,
        /// Why.
        text: String,
    },
    /// Failed this time; will be retried. The latest one is the reason
    /// `postqueue -p` shows.
    Deferred {
        /// Enhanced status code, e.g. `4.4.1`.
        dsn: String,
        /// Why.
        text: String,
    },
}

impl Outcome {
    /// Whether the recipient needs no more attempts.
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Deferred { .. })
    }
}

/// One line of a status log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// Index into the envelope's recipients.
    pub recipient: u32,
    /// What happened.
    pub outcome: Outcome,
    /// When, seconds since the epoch.
    pub time: u64,
}

impl Queue {
    pub(crate) fn status_path(&self, id: &QueueId) -> PathBuf {
        self.root().join(crate::layout::STATUS).join(id.as_str())
    }

    /// Appends records to a message's status log and makes them durable.
    ///
    /// A torn tail left by an earlier failed append (crash, full disk) is
    /// cut off first: records after it would otherwise never be read. A
    /// new log's directory entry is synced too, so the log survives a
    /// crash together with its contents.
    pub fn append_status(&self, id: &QueueId, records: &[StatusRecord]) -> Result<(), Error> {
        let path = self.status_path(id);
        let mut buf = Vec::new();
        for r in records {
            let bytes = stdx::codec::encode(r).map_err(|e| Error::Encode(e.to_string()))?;
            buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            buf.extend_from_slice(&bytes);
        }
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(Error::io(&path))?;
        let len = f.metadata().map_err(Error::io(&path))?.len();
        if len > MAX_LOG {
            return Err(Error::Corrupt { path, reason: "status log too large".into() });
        }
        let created = len == 0;
        if len > 0 {
            let mut old = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut f, &mut old).map_err(Error::io(&path))?;
            let good = valid_prefix(&old) as u64;
            if good < len {
                f.set_len(good).map_err(Error::io(&path))?;
            }
        }
        f.write_all(&buf).map_err(Error::io(&path))?;
        f.sync_data().map_err(Error::io(&path))?;
        if created {
            let dir = self.root().join(crate::layout::STATUS);
            stdx::fs::fsync_dir(&dir).map_err(Error::io(&dir))?;
        }
        Ok(())
    }

    /// Reads a message's status log; a missing log is an empty one. A torn
    /// or undecodable tail is ignored: those records were never confirmed.
    pub fn read_status(&self, id: &QueueId) -> Result<Vec<StatusRecord>, Error> {
        let path = self.status_path(id);
        let bytes = match fs::metadata(&path) {
            Ok(m) if m.len() > MAX_LOG => {
                return Err(Error::Corrupt { path, reason: "status log too large".into() });
            }
            Ok(_) => fs::read(&path).map_err(Error::io(&path))?,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        Ok(parse_log(&bytes))
    }

    /// Removes status logs whose queue file no longer exists anywhere
    /// (left by a crash between the two unlinks of [`Queue::remove`]).
    pub fn remove_orphan_status(&self) -> Result<usize, Error> {
        let dir = self.root().join(crate::layout::STATUS);
        let mut n = 0;
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            let Some(id) = entry.file_name().to_str().and_then(|s| QueueId::parse(s).ok()) else {
                continue;
            };
            if self.locate(&id).is_none() && fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Parses frames until the bytes run out or stop making sense. Public
/// for the fuzz target.
pub fn parse_log(bytes: &[u8]) -> Vec<StatusRecord> {
    frames(bytes).map(|(r, _)| r).collect()
}

/// How many leading bytes of a log are whole, decodable frames.
fn valid_prefix(bytes: &[u8]) -> usize {
    frames(bytes).last().map_or(0, |(_, end)| end)
}

/// The decodable frames of a log, each with the offset just past it,
/// up to the first one that is torn or undecodable.
fn frames(bytes: &[u8]) -> impl Iterator<Item = (StatusRecord, usize)> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let rest = bytes.get(at..)?;
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        if len > MAX_RECORD {
            return None;
        }
        let frame = rest.get(4..4 + len as usize)?;
        let record = stdx::codec::decode::<StatusRecord>(frame).ok()?;
        at += 4 + len as usize;
        Some((record, at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn append_read_and_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = QueueId::generate();
        assert!(q.read_status(&id).unwrap().is_empty());
        let r1 = StatusRecord {
            recipient: 0,
            outcome: Outcome::Delivered { dsn: "2.0.0".into(), text: "ok".into() },
            time: 5,
        };
        let r2 = StatusRecord {
            recipient: 1,
            outcome: Outcome::Deferred { dsn: "4.4.1".into(), text: "later".into() },
            time: 6,
        };
        q.append_status(&id, std::slice::from_ref(&r1)).unwrap();
        q.append_status(&id, std::slice::from_ref(&r2)).unwrap();
        assert_eq!(q.read_status(&id).unwrap(), vec![r1.clone(), r2]);
        // Tear the last frame.
        let p = q.status_path(&id);
        let len = fs::metadata(&p).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 3).unwrap();
        assert_eq!(q.read_status(&id).unwrap(), vec![r1.clone()]);
        // A record appended after the torn one is read back: the tail is
        // cut before appending.
        let r3 = StatusRecord {
            recipient: 2,
            outcome: Outcome::Bounced { dsn: "5.1.1".into(), text: "no".into() },
            time: 7,
        };
        q.append_status(&id, std::slice::from_ref(&r3)).unwrap();
        assert_eq!(q.read_status(&id).unwrap(), vec![r1, r3]);
    }

    proptest! {
        #[test]
        fn parse_log_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_log(&bytes);
        }
    }
}
