//! A queue file written while the message arrives, for smtpd: the
//! envelope first (it is known when DATA starts), then the content in
//! pieces, and only at the end the content length, the trailer, the link
//! into `incoming/` and the fsyncs.
//!
//! It gives the guarantees of [`Queue::reserve`] and [`Pending::commit`]
//! (the id is the inode's; a file reaches `incoming/` only complete, and
//! the commit returns only after the file and the directory are synced;
//! dropping an uncommitted [`Spool`] removes its temporary file), without
//! holding the message in memory. The bytes on disk are exactly what
//! [`crate::format::encode`] would produce, which the tests check against
//! the reader.
//!
//! [`Pending::commit`]: crate::Pending::commit

use std::io::{Seek, SeekFrom, Write};

use mail_types::QueueId;

use crate::format::{self, Crc32, Envelope, MAX_CONTENT, TRAILER};
use crate::{Error, Pending, Queue};

/// Bytes of `format::encode(envelope, &[])` after the envelope: the
/// content length (8), the head checksum (4), the content checksum (4)
/// and the trailer.
const TAIL: usize = 8 + 4 + 4 + TRAILER.len();

/// A queue file being written in pieces (see the module documentation).
#[derive(Debug)]
pub struct Spool {
    /// The reserved tmp file: its id, its exclusive creation, its removal
    /// on drop and the move into `incoming/` are `Pending`'s.
    pending: Pending,
    /// Where the content length goes, filled in at commit.
    length_at: u64,
    /// Checksum of the header and envelope; the length is added at commit.
    head_crc: Crc32,
    content_crc: Crc32,
    content_len: u64,
}

impl Queue {
    /// Starts a queue file with `envelope`; the content follows with
    /// [`Spool::write`]. The id is known at once, for `Received:`.
    pub fn spool(&self, envelope: &Envelope) -> Result<Spool, Error> {
        spool_into(self.reserve()?, envelope)
    }
}

/// Writes the head of `envelope`'s file into `pending`.
fn spool_into(mut pending: Pending, envelope: &Envelope) -> Result<Spool, Error> {
    let mut head = format::encode(envelope, &[])?;
    head.truncate(head.len() - TAIL);
    let mut head_crc = Crc32::default();
    head_crc.update(&head);
    let length_at = head.len() as u64;
    // The length and its checksum are filled in at commit; until then
    // the file is visibly incomplete to any reader.
    head.extend_from_slice(&[0; 12]);
    let (file, path) = pending.file()?;
    file.write_all(&head).map_err(Error::io(path))?;
    Ok(Spool { pending, length_at, head_crc, content_crc: Crc32::default(), content_len: 0 })
}

impl Spool {
    /// The queue id this file will have.
    pub fn id(&self) -> &QueueId {
        self.pending.id()
    }

    /// Content bytes written so far.
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// Appends content (LF line endings, as cleanup leaves it).
    pub fn write(&mut self, content: &[u8]) -> Result<(), Error> {
        let len = self.content_len.saturating_add(content.len() as u64);
        if len > MAX_CONTENT {
            return Err(Error::Encode("content too large".into()));
        }
        let (file, path) = self.pending.file()?;
        file.write_all(content).map_err(Error::io(path))?;
        self.content_crc.update(content);
        self.content_len = len;
        Ok(())
    }

    /// Marks the file as in use: `Queue::clean_tmp` removes files in
    /// `tmp/` untouched for a while, and a slow client may send nothing
    /// that is ready to write for longer than that. Nothing to do for a
    /// file without a name there.
    pub fn touch(&mut self) -> Result<(), Error> {
        if !self.pending.is_named() {
            return Ok(());
        }
        let (file, path) = self.pending.file()?;
        file.set_modified(std::time::SystemTime::now()).map_err(Error::io(path))
    }

    /// Finishes the file and moves it into `incoming/`: content checksum,
    /// trailer, content length and head checksum, link into `incoming/`
    /// (never over another file), fsync, fsync of `incoming/`. Only after this returns
    /// may the client be told 250.
    pub fn commit(mut self) -> Result<QueueId, Error> {
        let len = self.content_len.to_be_bytes();
        let mut head_crc = self.head_crc;
        head_crc.update(&len);
        let mut fixup = len.to_vec();
        fixup.extend_from_slice(&head_crc.finish().to_be_bytes());
        let mut tail = self.content_crc.finish().to_be_bytes().to_vec();
        tail.extend_from_slice(TRAILER);
        let length_at = self.length_at;
        let (file, path) = self.pending.file()?;
        file.write_all(&tail).map_err(Error::io(path))?;
        self.pending.cut_here()?;
        let (file, path) = self.pending.file()?;
        file.seek(SeekFrom::Start(length_at))
            .and_then(|_| file.write_all(&fixup))
            .map_err(Error::io(path))?;
        self.pending.publish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;
    use crate::format::Recipient;
    use crate::layout::TMP;
    use std::fs::{self, File};

    fn env() -> Envelope {
        Envelope {
            sender: Some("a@b.c".parse().unwrap()),
            recipients: vec![Recipient {
                address: "d@e.f".parse().unwrap(),
                original: "d".into(),
                esmtp: Default::default(),
            }],
            arrival: 7,
            client: "localhost[127.0.0.1]".into(),
            origin: "smtpd".into(),
            attrs: vec![("helo".into(), "x".into())],
            esmtp: Default::default(),
        }
    }

    fn queue() -> (tempfile::TempDir, Queue) {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        (d, q)
    }

    #[test]
    fn spooled_file_is_what_encode_writes() {
        let (d, q) = queue();
        // Named in tmp/ (no O_TMPFILE), so the unfinished file can be
        // looked at; the unnamed kind is the same bytes (below).
        let mut s = spool_into(q.reserve_named().unwrap(), &env()).unwrap();
        let id = s.id().clone();
        // Not in incoming/ until committed, and visibly incomplete.
        assert!(q.scan(State::Incoming).unwrap().is_empty());
        s.write(b"Subject: x\n\n").unwrap();
        s.write(b"").unwrap();
        s.write(b"body\n").unwrap();
        assert!(format::read(&d.path().join(TMP).join(id.as_str())).is_err());
        // A touched file is young again for clean_tmp.
        let tmp = d.path().join(TMP).join(id.as_str());
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options().write(true).open(&tmp).unwrap().set_modified(old).unwrap();
        s.touch().unwrap();
        assert_eq!(q.clean_tmp(std::time::Duration::from_secs(600)).unwrap(), 0);
        assert_eq!(s.commit().unwrap(), id);
        let path = q.path(State::Incoming, &id);
        assert_eq!(
            fs::read(&path).unwrap(),
            format::encode(&env(), b"Subject: x\n\nbody\n").unwrap()
        );
        assert_eq!(q.read_envelope(State::Incoming, &id).unwrap(), env());
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);
        // Empty content is a valid file too.
        let id = q.spool(&env()).unwrap().commit().unwrap();
        assert_eq!(q.read(State::Incoming, &id).unwrap().content, b"");
    }

    #[test]
    fn dropped_spool_leaves_nothing() {
        let (d, q) = queue();
        let mut s = q.spool(&env()).unwrap();
        s.write(&[b'x'; 100_000]).unwrap();
        drop(s);
        assert_eq!(fs::read_dir(d.path().join(TMP)).unwrap().count(), 0);
        assert!(q.scan(State::Incoming).unwrap().is_empty());
    }

    #[test]
    fn missing_queue_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path().join("none"));
        assert!(matches!(q.spool(&env()), Err(Error::Io { .. })));
    }
}
