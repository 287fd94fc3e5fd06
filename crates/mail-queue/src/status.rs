//! Per-message status logs: the durable record of what happened to each
//! recipient (Postfix keeps this in the queue file and in `defer/`).
//!
//! `status/ID` is an append-only sequence of frames, each a 4-byte
//! little-endian length and a codec-encoded [`StatusRecord`]. A record is
//! appended and fdatasync'ed before qmgr treats the recipient as done, so
//! after a crash a recipient is re-delivered only if the crash fell
//! between its delivery and this append (the documented duplicate window).
//! A torn last frame (crash during the append) is ignored on read.
//! A log that keeps growing (a message deferred round after round) is
//! compacted to one record per recipient rather than allowed to reach
//! the size a reader refuses; final results always survive compaction.

use crate::{Error, Queue};
use mail_types::{DeliveryStatus, EnhancedStatus, QueueId};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Largest single status record a reader accepts.
const MAX_RECORD: u32 = 64 << 10;
/// Longest outcome text kept in a record (longer agent texts are cut),
/// so that every record stays far below [`MAX_RECORD`].
pub const MAX_TEXT: usize = 1000;
/// Largest status log a reader reads. Compaction keeps a log far below
/// it: at most one record per recipient of a bounded envelope.
const MAX_LOG: u64 = 128 << 20;
/// A log that would grow past this is considered for compaction.
const COMPACT_AT: u64 = 1 << 20;

/// One line of a status log.
///
/// On disk a record is a [`WireRecord`]: the outcome's variants there
/// are in the order of the type this one replaced (delivered, bounced,
/// deferred) and the code is text, so logs written before stay readable
/// and new ones read the same as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireRecord", into = "WireRecord")]
pub struct StatusRecord {
    /// Index into the envelope's recipients.
    pub recipient: u32,
    /// What happened.
    pub outcome: DeliveryStatus,
    /// When, seconds since the epoch.
    pub time: u64,
}

/// The on-disk form of a [`StatusRecord`]; nothing outside this module
/// sees it.
#[derive(Serialize, Deserialize)]
struct WireRecord {
    recipient: u32,
    outcome: WireOutcome,
    time: u64,
}

#[derive(Serialize, Deserialize)]
enum WireOutcome {
    Delivered { dsn: String, text: String },
    Bounced { dsn: String, text: String },
    Deferred { dsn: String, text: String },
}

impl From<StatusRecord> for WireRecord {
    fn from(r: StatusRecord) -> WireRecord {
        let dsn = r.outcome.dsn().to_string();
        let outcome = match r.outcome {
            DeliveryStatus::Sent { text, .. } => WireOutcome::Delivered { dsn, text },
            DeliveryStatus::Bounced { text, .. } => WireOutcome::Bounced { dsn, text },
            DeliveryStatus::Deferred { text, .. } => WireOutcome::Deferred { dsn, text },
        };
        WireRecord { recipient: r.recipient, outcome, time: r.time }
    }
}

impl From<WireRecord> for StatusRecord {
    /// A code that does not parse (older qmgr copied an agent's code
    /// unchecked) becomes the generic code of its outcome instead of
    /// failing the frame: a frame that fails to decode ends the log for
    /// the reader, and the final results after it would be lost, which
    /// means duplicate deliveries. The outcome itself is never guessed.
    fn from(w: WireRecord) -> StatusRecord {
        let code = |dsn: &str, generic| EnhancedStatus::parse(dsn).unwrap_or(generic);
        let outcome = match w.outcome {
            WireOutcome::Delivered { dsn, text } => {
                DeliveryStatus::Sent { dsn: code(&dsn, EnhancedStatus(2, 0, 0)), text }
            }
            WireOutcome::Bounced { dsn, text } => {
                DeliveryStatus::bounce(code(&dsn, EnhancedStatus(5, 0, 0)), text)
            }
            WireOutcome::Deferred { dsn, text } => {
                DeliveryStatus::defer(code(&dsn, EnhancedStatus(4, 0, 0)), text)
            }
        };
        StatusRecord { recipient: w.recipient, outcome, time: w.time }
    }
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
    /// crash together with its contents. Texts are cut to [`MAX_TEXT`].
    ///
    /// A log that has grown large (a message deferred round after round)
    /// is rewritten compacted instead ([`compact`]): one record per
    /// recipient, final results always kept, written to a new file and
    /// renamed over the old one, so a crash leaves the old log or the new
    /// one, both complete. The log therefore never reaches the size a
    /// reader refuses, and no final result is ever dropped to make room.
    pub fn append_status(&self, id: &QueueId, records: &[StatusRecord]) -> Result<(), Error> {
        if self.append_status_dir_later(id, records)? {
            self.sync_status_dir()?;
        }
        Ok(())
    }

    /// [`Queue::append_status`] for callers that record several logs and
    /// make `status/` durable once for all of them (qmgr's group commit):
    /// the records are synced, and `true` says a new log's directory
    /// entry is not yet, until [`Queue::sync_status_dir`] returns.
    pub fn append_status_dir_later(
        &self,
        id: &QueueId,
        records: &[StatusRecord],
    ) -> Result<bool, Error> {
        let path = self.status_path(id);
        let records: Vec<StatusRecord> = records.iter().map(bounded).collect();
        let buf = encode_frames(&records)?;
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(Error::io(&path))?;
        let meta = f.metadata().map_err(Error::io(&path))?;
        if !meta.is_file() {
            return Err(Error::Corrupt { path, reason: "status log is not a regular file".into() });
        }
        let len = meta.len();
        if len > MAX_LOG {
            return Err(Error::Corrupt { path, reason: "status log too large".into() });
        }
        let created = len == 0;
        let mut good = 0u64;
        if len > 0 {
            let mut old = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut (&f).take(MAX_LOG), &mut old)
                .map_err(Error::io(&path))?;
            good = valid_prefix(&old) as u64;
            if good + buf.len() as u64 > COMPACT_AT {
                let mut all = parse_log(&old);
                all.extend(records.iter().cloned());
                let compacted = encode_frames(&compact(all))?;
                // Worth a rewrite when it at least halves the log; else
                // the log is mostly final results already.
                if (compacted.len() as u64) < (good + buf.len() as u64) / 2
                    || good + buf.len() as u64 > MAX_LOG
                {
                    return self.replace_status(id, &compacted).map(|()| false);
                }
            }
            if good < len {
                f.set_len(good).map_err(Error::io(&path))?;
            }
        }
        if good + buf.len() as u64 > MAX_LOG {
            return Err(Error::Corrupt { path, reason: "status log full".into() });
        }
        f.write_all(&buf).map_err(Error::io(&path))?;
        f.sync_data().map_err(Error::io(&path))?;
        Ok(created)
    }

    /// Makes the directory entries of new status logs durable.
    pub fn sync_status_dir(&self) -> Result<(), Error> {
        let dir = self.root().join(crate::layout::STATUS);
        stdx::fs::fsync_dir(&dir).map_err(Error::io(&dir))
    }

    /// Replaces a status log with `bytes` atomically and durably.
    fn replace_status(&self, id: &QueueId, bytes: &[u8]) -> Result<(), Error> {
        let dir = self.root().join(crate::layout::STATUS);
        let path = self.status_path(id);
        if bytes.len() as u64 > MAX_LOG {
            return Err(Error::Corrupt { path, reason: "status log full even compacted".into() });
        }
        let tmp = dir.join(format!(".{id}.compact"));
        let _ = fs::remove_file(&tmp);
        let written = stdx::fs::create_new(&tmp, 0o600).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        // Replacing is the point here: the old log's results are all in
        // the new one.
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io { path, source: e });
        }
        stdx::fs::fsync_dir(&dir).map_err(Error::io(&dir))
    }

    /// Reads a message's status log; a missing log is an empty one. A torn
    /// or undecodable tail is ignored: those records were never confirmed.
    pub fn read_status(&self, id: &QueueId) -> Result<Vec<StatusRecord>, Error> {
        let path = self.status_path(id);
        let (f, meta) = match crate::layout::open_regular(&path) {
            Ok(x) => x,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if meta.len() > MAX_LOG {
            return Err(Error::Corrupt { path, reason: "status log too large".into() });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        f.take(MAX_LOG).read_to_end(&mut bytes).map_err(Error::io(&path))?;
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

/// One record per recipient, in recipient order: its first final result
/// if it has one (a final result is never given up, whatever came
/// after), else its latest deferral. Final records lose their texts
/// (nothing shows them again: `postqueue` lists pending recipients only,
/// and a bounce is reported in the round that recorded it), which bounds
/// a compacted log by the number of recipients.
pub fn compact(records: Vec<StatusRecord>) -> Vec<StatusRecord> {
    let mut by_rcpt: std::collections::BTreeMap<u32, StatusRecord> = Default::default();
    for r in records {
        match by_rcpt.get(&r.recipient) {
            Some(kept) if kept.outcome.is_final() => {}
            _ => {
                by_rcpt.insert(r.recipient, r);
            }
        }
    }
    by_rcpt
        .into_values()
        .map(|mut r| {
            if r.outcome.is_final() {
                r.outcome.text_mut().clear();
            }
            r
        })
        .collect()
}

/// A record with its texts cut to the bounds a log keeps.
fn bounded(r: &StatusRecord) -> StatusRecord {
    fn cut(s: &str, max: usize) -> String {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    }
    let mut r = r.clone();
    let text = r.outcome.text_mut();
    *text = cut(text, MAX_TEXT);
    r
}

fn encode_frames(records: &[StatusRecord]) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    for r in records {
        let bytes = stdx::codec::encode(r).map_err(|e| Error::Encode(e.to_string()))?;
        buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(&bytes);
    }
    Ok(buf)
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

    fn es(s: &str) -> EnhancedStatus {
        EnhancedStatus::parse(s).unwrap()
    }

    #[test]
    fn records_keep_the_bytes_of_the_older_format() {
        // The layout before DeliveryStatus: variants delivered, bounced,
        // deferred; code and text as strings.
        #[derive(Serialize)]
        enum OldOutcome {
            #[allow(dead_code)]
            Delivered {
                dsn: String,
                text: String,
            },
            Bounced {
                dsn: String,
                text: String,
            },
            Deferred {
                dsn: String,
                text: String,
            },
        }
        #[derive(Serialize)]
        struct OldRecord {
            recipient: u32,
            outcome: OldOutcome,
            time: u64,
        }
        let old =
            |outcome| stdx::codec::encode(&OldRecord { recipient: 3, outcome, time: 9 }).unwrap();
        let bounced = old(OldOutcome::Bounced { dsn: "5.1.1".into(), text: "no".into() });
        let r: StatusRecord = stdx::codec::decode(&bounced).unwrap();
        assert_eq!(r.outcome, DeliveryStatus::bounce(es("5.1.1"), "no"));
        assert_eq!(stdx::codec::encode(&r).unwrap(), bounced);
        // A code older qmgr copied unchecked from an agent: the record
        // (and the log after it) stays readable, with the generic code.
        let odd = old(OldOutcome::Deferred { dsn: "x".into(), text: "t".into() });
        let r: StatusRecord = stdx::codec::decode(&odd).unwrap();
        assert_eq!(r.outcome, DeliveryStatus::defer(es("4.0.0"), "t"));
    }

    #[test]
    fn append_read_and_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = QueueId::generate();
        assert!(q.read_status(&id).unwrap().is_empty());
        let r1 = StatusRecord {
            recipient: 0,
            outcome: DeliveryStatus::Sent { dsn: es("2.0.0"), text: "ok".into() },
            time: 5,
        };
        let r2 = StatusRecord {
            recipient: 1,
            outcome: DeliveryStatus::Deferred { dsn: es("4.4.1"), text: "later".into() },
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
            outcome: DeliveryStatus::Bounced { dsn: es("5.1.1"), text: "no".into() },
            time: 7,
        };
        q.append_status(&id, std::slice::from_ref(&r3)).unwrap();
        assert_eq!(q.read_status(&id).unwrap(), vec![r1, r3]);
    }

    #[test]
    fn a_log_deferred_round_after_round_stays_bounded_and_keeps_finals() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = QueueId::generate();
        let delivered = StatusRecord {
            recipient: 0,
            outcome: DeliveryStatus::Sent { dsn: es("2.0.0"), text: "ok".into() },
            time: 1,
        };
        q.append_status(&id, std::slice::from_ref(&delivered)).unwrap();
        let reason = "x".repeat(900);
        for round in 0..120u64 {
            let records: Vec<StatusRecord> = (1..400)
                .map(|i| StatusRecord {
                    recipient: i,
                    outcome: DeliveryStatus::Deferred { dsn: es("4.3.0"), text: reason.clone() },
                    time: round,
                })
                .collect();
            q.append_status(&id, &records).unwrap();
        }
        // 120 rounds of 399 deferrals would be about 45 MB appended.
        let len = fs::metadata(q.status_path(&id)).unwrap().len();
        assert!(len < 3 * COMPACT_AT, "log grew to {len} bytes");
        let back = q.read_status(&id).unwrap();
        assert!(back.iter().any(|r| r.recipient == 0 && r.outcome.is_final()));
        for i in 1..400 {
            let latest = back.iter().rfind(|r| r.recipient == i).unwrap();
            assert_eq!(latest.time, 119, "recipient {i}");
        }
    }

    #[test]
    fn compact_keeps_the_first_final_result() {
        let rec = |recipient, outcome, time| StatusRecord { recipient, outcome, time };
        let def = || DeliveryStatus::Deferred { dsn: es("4.0.0"), text: "later".into() };
        let sent = DeliveryStatus::Sent { dsn: es("2.0.0"), text: "ok".into() };
        let out = compact(vec![
            rec(1, def(), 1),
            rec(0, sent.clone(), 2),
            rec(0, def(), 3),
            rec(1, def(), 4),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].recipient, 0);
        assert!(out[0].outcome.is_final());
        assert_eq!(out[1].time, 4);
    }

    #[test]
    fn huge_texts_are_cut_so_later_records_stay_readable() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = QueueId::generate();
        let huge = StatusRecord {
            recipient: 0,
            outcome: DeliveryStatus::Deferred { dsn: es("4.0.0"), text: "é".repeat(100_000) },
            time: 1,
        };
        let after = StatusRecord {
            recipient: 1,
            outcome: DeliveryStatus::Sent { dsn: es("2.0.0"), text: "ok".into() },
            time: 2,
        };
        q.append_status(&id, &[huge, after.clone()]).unwrap();
        let back = q.read_status(&id).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1], after);
        match &back[0].outcome {
            DeliveryStatus::Deferred { text, .. } => assert!(text.len() <= MAX_TEXT),
            o => panic!("{o:?}"),
        }
    }

    proptest! {
        #[test]
        fn parse_log_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_log(&bytes);
        }
    }
}
