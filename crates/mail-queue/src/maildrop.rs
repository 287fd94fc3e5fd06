//! Maildrop files: what `sendmail` leaves for pickup.
//!
//! Any local user may write into `maildrop/`, so pickup treats these files
//! as untrusted input: bounded size, exact layout, and the uid comes from
//! the file's owner, not from its content.
//!
//! Permissions (Postfix's scheme). In a system install `maildrop/` is
//! `mail_owner:setgid_group` mode 1730: only that group may enter it, so an
//! ordinary user cannot write there, list it, or open another user's file
//! by a guessed name. `sendmail` hands the message to the setgid `postdrop`
//! helper, which writes the file as the user with the group's rights. A
//! file is mode 0640 and belongs to the directory's group (a writer in
//! another group, root, gives it that group), so pickup, running as
//! mail_owner with the group among its groups, reads it, and nobody else
//! but its submitter does. A development instance keeps `maildrop/` at
//! 1733 (its owner's only). The writer cannot read the directory to fsync
//! it, so the new entry is made durable with `syncfs` instead.
//!
//! ```text
//! "POSTERND" | version u16 BE | codec(Maildrop)
//! ```

use crate::{Error, Queue, State};
use mail_types::QueueId;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const MAGIC: &[u8; 8] = b"POSTERND";
const VERSION: u16 = 1;
/// Readable by pickup through the file's group (the directory's), not
/// by other users.
const FILE_MODE: u32 = 0o640;

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
    /// Login name of the submitting user, informational only: pickup
    /// takes the identity from the file's owner uid.
    pub user: String,
    /// The message, LF line endings.
    pub content: Vec<u8>,
}

impl Queue {
    /// Writes a maildrop file durably and returns its id: temporary dot
    /// file in `maildrop/` (mode 0640, the directory's group), fsync,
    /// rename, then make the new directory entry durable.
    ///
    /// Once the rename has succeeded the message is submitted (pickup
    /// will find it), so an error after that point is returned only when
    /// the entry may really be lost in a crash, and then says so.
    pub fn write_maildrop(&self, m: &Maildrop) -> Result<QueueId, Error> {
        let dir = self.dir(State::Maildrop);
        let bytes = encode(m)?;
        // The directory's group reads the file: stat it through the path,
        // which a setgid postdrop may search but not list.
        let dir_gid = fs::metadata(&dir).map_err(Error::io(&dir))?.gid();
        for _ in 0..100 {
            let id = QueueId::generate();
            let tmp = dir.join(format!(".{id}"));
            let mut f = match stdx::fs::create_new(&tmp, FILE_MODE) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::Io { path: tmp, source: e }),
            };
            let written = give_group(&f, dir_gid)
                // The umask may have trimmed the mode pickup needs.
                .and_then(|()| f.set_permissions(fs::Permissions::from_mode(FILE_MODE)))
                .and_then(|()| f.write_all(&bytes))
                .and_then(|()| f.sync_all())
                .and_then(|()| fs::rename(&tmp, dir.join(id.as_str())));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(Error::Io { path: tmp, source: e });
            }
            return match sync_entry(&dir, &f) {
                Ok(()) => Ok(id),
                Err(e) => Err(Error::Io {
                    path: dir,
                    source: std::io::Error::new(
                        e.kind(),
                        format!(
                            "maildrop file {id} was written but may be lost in a crash: \
                             cannot flush its directory entry: {e}"
                        ),
                    ),
                }),
            };
        }
        Err(Error::Io {
            path: dir,
            source: std::io::Error::other("cannot find a free maildrop name"),
        })
    }

    /// Reads a maildrop file of at most `max_size` bytes. Returns the
    /// content and the uid that owns the file. A symbolic link, a FIFO
    /// or anything else but a regular file is `Corrupt`, found out
    /// without following or blocking on it.
    pub fn read_maildrop(&self, id: &QueueId, max_size: u64) -> Result<(Maildrop, u32), Error> {
        let path = self.path(State::Maildrop, id);
        read_maildrop_file(&path, max_size)
    }
}

/// Gives a new maildrop file the directory's group when the writer's own
/// group differs (root, or a member of the group who is not running
/// postdrop). A writer who may not do that is not refused here: in a
/// development instance pickup runs as the writer and reads the file as
/// its owner.
fn give_group(f: &fs::File, dir_gid: u32) -> std::io::Result<()> {
    if f.metadata()?.gid() == dir_gid {
        return Ok(());
    }
    match nix::unistd::fchown(f.as_raw_fd(), None, Some(nix::unistd::Gid::from_raw(dir_gid))) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The bytes of a maildrop file for `m`: what `sendmail` hands to
/// `postdrop` on its standard input, which [`decode`] reads back.
pub fn encode(m: &Maildrop) -> Result<Vec<u8>, Error> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend(stdx::codec::encode(m).map_err(|e| Error::Encode(e.to_string()))?);
    Ok(bytes)
}

fn read_maildrop_file(path: &Path, max_size: u64) -> Result<(Maildrop, u32), Error> {
    let corrupt =
        |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    // Any local user can put a symbolic link or a FIFO here; the reader
    // may be root (`mailq`), so follow no link and never wait for a writer.
    let (f, meta) = crate::layout::open_regular(path)?;
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

/// Makes the directory entry of `file` (just renamed into `dir`)
/// durable: fsync of the directory, or, when we may not open the
/// directory for reading (an ordinary user and `maildrop/` at 1733),
/// `syncfs` on the file, which flushes its whole file system, directory
/// included.
fn sync_entry(dir: &Path, file: &fs::File) -> std::io::Result<()> {
    match stdx::fs::fsync_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if needs_syncfs(&e) => {
            nix::unistd::syncfs(file.as_raw_fd()).map_err(std::io::Error::from)
        }
        Err(e) => Err(e),
    }
}

/// Is this failure to fsync the directory one that `syncfs` on the file
/// can stand in for? Only a permission refusal: other errors (EIO) mean
/// the file system is in trouble.
fn needs_syncfs(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
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
        let m = sample();
        let id = q.write_maildrop(&m).unwrap();
        assert_eq!(q.scan(State::Maildrop).unwrap(), vec![id.clone()]);
        let (back, _uid) = q.read_maildrop(&id, 1 << 20).unwrap();
        assert_eq!(back, m);
        assert!(matches!(q.read_maildrop(&id, 10), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn fifo_and_symlink_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let fifo = QueueId::generate();
        nix::unistd::mkfifo(
            &q.path(State::Maildrop, &fifo),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert!(matches!(q.read_maildrop(&fifo, 1 << 20), Err(Error::Corrupt { .. })));
        let secret = d.path().join("secret");
        fs::write(&secret, b"not yours").unwrap();
        let link = QueueId::generate();
        std::os::unix::fs::symlink(&secret, q.path(State::Maildrop, &link)).unwrap();
        assert!(matches!(q.read_maildrop(&link, 1 << 20), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn only_permission_errors_fall_back_to_syncfs() {
        let e = std::io::Error::from_raw_os_error;
        assert!(needs_syncfs(&e(libc::EACCES)));
        assert!(needs_syncfs(&e(libc::EPERM)));
        assert!(!needs_syncfs(&e(libc::EIO)));
        assert!(!needs_syncfs(&e(libc::ENOENT)));
    }

    #[test]
    fn file_is_for_its_owner_and_the_directory_group() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let id = q.write_maildrop(&sample()).unwrap();
        let meta = fs::metadata(q.path(State::Maildrop, &id)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), fs::metadata(q.dir(State::Maildrop)).unwrap().gid());
    }

    #[test]
    fn root_gives_the_file_the_directory_group() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to give maildrop/ another group");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        // Any group root is not in by default stands in for postdrop.
        q.secure_maildrop(0, 65534).unwrap();
        let meta = fs::metadata(q.dir(State::Maildrop)).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o1730, 65534));
        let id = q.write_maildrop(&sample()).unwrap();
        let meta = fs::metadata(q.path(State::Maildrop, &id)).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o640, 65534));
    }

    #[test]
    fn unreadable_directory_still_succeeds() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_layout().unwrap();
        let dir = q.dir(State::Maildrop);
        // maildrop/ as a system install has it: no read for others. Root
        // reads it anyway; the fsync fallback is then covered by the
        // decision test above.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1333)).unwrap();
        let file = fs::File::open(d.path()).unwrap();
        if !nix::unistd::geteuid().is_root() {
            assert!(needs_syncfs(&stdx::fs::fsync_dir(&dir).unwrap_err()));
        }
        // syncfs itself works on any descriptor we hold.
        nix::unistd::syncfs(file.as_raw_fd()).unwrap();
        let id = q.write_maildrop(&sample()).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1733)).unwrap();
        assert_eq!(q.scan(State::Maildrop).unwrap(), vec![id]);
    }

    fn sample() -> Maildrop {
        Maildrop {
            sender: String::new(),
            recipients: vec!["suporte".into()],
            extract_recipients: false,
            full_name: String::new(),
            user: "root".into(),
            content: b"Subject: Teste\n\nTeste de envio\n".to_vec(),
        }
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
