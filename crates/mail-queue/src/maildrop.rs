//! Maildrop files: what `sendmail` leaves for pickup.
//!
//! Any local user may write into `maildrop/`, so pickup treats these files
//! as untrusted input: bounded size, exact layout, and the uid comes from
//! the file's owner, not from its content.
//!
//! ```text
//! "POSTERND" | version u16 BE | codec(Maildrop)
//! ```

use crate::{Error, Queue, State};
use mail_types::QueueId;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"POSTERND";
const VERSION: u16 = 1;

/// A message submitted by a local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maildrop {
    /// Envelope sender as given with `-f`, or empty to use the user's name.
    pub sender: String,
    /// Recipients from the command line.
    pub recipients: Vec<String>,
    /// `-t`: take recipients from To, Cc and Bcc.
    pub extract_recipients: bool,
    /// `-F`: the sender's full name, for a From: header cleanup adds.
    pub full_name: String,
    /// Login name of the submitting user (checked against the file owner).
    pub user: String,
    /// The message, LF line endings.
    pub content: Vec<u8>,
}

impl Queue {
    /// Writes a maildrop file durably and returns its id: temporary dot
    /// file in `maildrop/`, fsync, rename, fsync the directory.
    pub fn write_maildrop(&self, m: &Maildrop) -> Result<QueueId, Error> {
        let dir = self.dir(State::Maildrop);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.extend(stdx::codec::encode(m).map_err(|e| Error::Encode(e.to_string()))?);
        for _ in 0..100 {
            let id = QueueId::generate();
            let tmp = dir.join(format!(".{id}"));
            let mut f = match stdx::fs::create_new(&tmp, 0o600) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::Io { path: tmp, source: e }),
            };
            let result = f
                .write_all(&bytes)
                .and_then(|()| f.sync_all())
                .and_then(|()| fs::rename(&tmp, dir.join(id.as_str())))
                .and_then(|()| stdx::fs::fsync_dir(&dir));
            return match result {
                Ok(()) => Ok(id),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    Err(Error::Io { path: tmp, source: e })
                }
            };
        }
        Err(Error::Io {
            path: dir,
            source: std::io::Error::other("cannot find a free maildrop name"),
        })
    }

    /// Reads a maildrop file of at most `max_size` bytes. Returns the
    /// content and the uid that owns the file.
    pub fn read_maildrop(&self, id: &QueueId, max_size: u64) -> Result<(Maildrop, u32), Error> {
        let path = self.path(State::Maildrop, id);
        read_maildrop_file(&path, max_size)
    }
}

fn read_maildrop_file(path: &Path, max_size: u64) -> Result<(Maildrop, u32), Error> {
    let corrupt =
        |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    let f = fs::File::open(path).map_err(Error::io(path))?;
    let meta = f.metadata().map_err(Error::io(path))?;
    if !meta.is_file() {
        return Err(corrupt("not a regular file"));
    }
    if meta.len() > max_size {
        return Err(corrupt("larger than the size limit"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max_size + 1).read_to_end(&mut bytes).map_err(Error::io(path))?;
    Ok((decode(path, &bytes)?, meta.uid()))
}

/// Decodes maildrop bytes (`path` names them in errors). Public for the
/// fuzz target.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Maildrop, Error> {
    let corrupt = |reason: String| Error::Corrupt { path: path.to_owned(), reason };
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err(corrupt("bad magic".into()));
    }
    match bytes.get(8..10) {
        Some([a, b]) if u16::from_be_bytes([*a, *b]) == VERSION => {}
        _ => return Err(corrupt("unsupported version".into())),
    }
    stdx::codec::decode(&bytes[10..]).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn write_then_read() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let m = Maildrop {
            sender: String::new(),
            recipients: vec!["suporte".into()],
            extract_recipients: false,
            full_name: String::new(),
            user: "root".into(),
            content: b"Subject: Teste\n\nTeste de envio\n".to_vec(),
        };
        let id = q.write_maildrop(&m).unwrap();
        assert_eq!(q.scan(State::Maildrop).unwrap(), vec![id.clone()]);
        let (back, _uid) = q.read_maildrop(&id, 1 << 20).unwrap();
        assert_eq!(back, m);
        assert!(matches!(q.read_maildrop(&id, 10), Err(Error::Corrupt { .. })));
    }

    proptest! {
        #[test]
        fn decode_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&VERSION.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let _ = decode(Path::new("m"), &bytes);
            let _ = decode(Path::new("m"), &tail);
        }
    }
}
