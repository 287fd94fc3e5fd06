//! A queue file written while the message arrives, for smtpd: the
//! envelope first (it is known when DATA starts), then the content in
//! pieces, and only at the end the content length, the trailer, the fsync
//! and the rename into `incoming/`.
//!
//! It gives the guarantees of [`Queue::reserve`] and [`Pending::commit`]
//! (the id is reserved by an exclusive create in `tmp/`; a file reaches
//! `incoming/` only complete, by rename after fsync, followed by an fsync
//! of the directory; dropping an uncommitted [`Spool`] removes its
//! temporary file), without holding the message in memory. The bytes on
//! disk are exactly what [`crate::format::encode`] would produce, which
//! the tests check against the reader.
//!
//! [`Pending::commit`]: crate::Pending::commit

use std::fs::{self, File};
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::path::PathBuf;

use mail_types::QueueId;

use crate::format::{self, Envelope, MAX_CONTENT, TRAILER};
use crate::layout::TMP;
use crate::{Error, Queue, State};

/// Bytes of `format::encode(envelope, &[])` after the envelope: the
/// content length (8) and the trailer.
const TAIL: usize = 8 + TRAILER.len();

/// A queue file being written in pieces (see the module documentation).
#[derive(Debug)]
pub struct Spool {
    queue: Queue,
    id: QueueId,
    path: PathBuf,
    /// `None` once committed: Drop must not remove the file then.
    file: Option<File>,
    /// Where the content length goes, filled in at commit.
    length_at: u64,
    content_len: u64,
}

impl Queue {
    /// Starts a queue file with `envelope`; the content follows with
    /// [`Spool::write`]. The id is known at once, for `Received:`.
    pub fn spool(&self, envelope: &Envelope) -> Result<Spool, Error> {
        let mut head = format::encode(envelope, &[])?;
        head.truncate(head.len() - TAIL);
        let length_at = head.len() as u64;
        // The length is filled in at commit; until then the file is
        // visibly incomplete to any reader.
        head.extend_from_slice(&[0; 8]);
        let tmp_dir = self.root().join(TMP);
        for _ in 0..100 {
            let id = QueueId::generate();
            let path = tmp_dir.join(id.as_str());
            match stdx::fs::create_new(&path, 0o600) {
                Ok(file) => {
                    let mut spool = Spool {
                        queue: self.clone(),
                        id,
                        path,
                        file: Some(file),
                        length_at,
                        content_len: 0,
                    };
                    spool.put(&head)?;
                    return Ok(spool);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::Io { path, source: e }),
            }
        }
        Err(Error::Io {
            path: tmp_dir,
            source: std::io::Error::other("cannot find a free queue id"),
        })
    }
}

impl Spool {
    /// The queue id this file will have.
    pub fn id(&self) -> &QueueId {
        &self.id
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
        self.put(content)?;
        self.content_len = len;
        Ok(())
    }

    /// Marks the file as in use: `Queue::clean_tmp` removes files in
    /// `tmp/` untouched for a while, and a slow client may send nothing
    /// that is ready to write for longer than that.
    pub fn touch(&mut self) -> Result<(), Error> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Encode("spool file already committed".into()))?;
        file.set_modified(std::time::SystemTime::now()).map_err(Error::io(&self.path))
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Encode("spool file already committed".into()))?;
        file.write_all(bytes).map_err(Error::io(&self.path))
    }

    /// Finishes the file and moves it into `incoming/`: trailer, content
    /// length, fsync, rename, fsync of `incoming/`. Only after this
    /// returns may the client be told 250.
    pub fn commit(mut self) -> Result<QueueId, Error> {
        self.put(TRAILER)?;
        let (length_at, len) = (self.length_at, self.content_len);
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Encode("spool file already committed".into()))?;
        file.seek(SeekFrom::Start(length_at))
            .and_then(|_| file.write_all(&len.to_be_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(Error::io(&self.path))?;
        let incoming = self.queue.dir(State::Incoming);
        let dest = incoming.join(self.id.as_str());
        fs::rename(&self.path, &dest).map_err(Error::io(&dest))?;
        self.file = None;
        self.path = dest;
        stdx::fs::fsync_dir(&incoming).map_err(Error::io(&incoming))?;
        Ok(self.id.clone())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Recipient;

    fn env() -> Envelope {
        Envelope {
            sender: "a@b.c".into(),
            recipients: vec![Recipient { address: "d@e.f".into(), original: "d".into() }],
            arrival: 7,
            client: "localhost[127.0.0.1]".into(),
            origin: "smtpd".into(),
            attrs: vec![("helo".into(), "x".into())],
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
        let mut s = q.spool(&env()).unwrap();
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
