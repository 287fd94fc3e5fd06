//! Maildir delivery: write an unnamed file in `tmp/` (or a named one where
//! the file system has no `O_TMPFILE`), fsync, link into `new/`, fsync
//! `new/` (at once, or shared by a batch of deliveries: [`Unsynced`]).
//!
//! The protocol is qmail's (<https://cr.yp.to/proto/maildir.html>) as Postfix
//! implements it in `local/maildir.c`; the unique names follow the modern
//! recommendation of that page (`secs.M{usec}P{pid}Q{count}.host`) plus
//! Dovecot's `,S=size,W=vsize` so that Dovecot and our own pop3d/imapd know
//! a message's size, and its size with CRLF line ends, without reading it.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::layout;

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Full path of the file in `new/`.
    pub path: PathBuf,
    /// Its file name (the Maildir unique name).
    pub name: String,
}

/// Per-process delivery counter: with the pid and the time it makes names
/// unique even for many deliveries in the same microsecond, from any thread.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Delivers `content_prefix` followed by `content` (usually `Delivered-To:`
/// and `Return-Path:` headers, then the queued message) into `maildir`.
///
/// The Maildir (with its parents) and its `tmp/ new/ cur/` are created
/// (mode 0700) when missing. The file is written, fsynced and given its
/// name in `new/` (see [`deliver_unsynced`]), and `new/` is fsynced, so
/// that a success means the message is on stable storage. On any error
/// nothing stays behind in `tmp/` or `new/`.
///
/// `hostname` goes into the file name, with `/` and `:` escaped as the
/// Maildir specification asks.
pub fn deliver(
    maildir: &Path,
    content_prefix: &[u8],
    content: &[u8],
    hostname: &str,
) -> Result<Delivered, Error> {
    deliver_unsynced(maildir, content_prefix, content, hostname)?.sync()
}

/// A message whose file is on stable storage and named in `new/`, but
/// whose directory entry is not yet: it counts as delivered only once
/// [`Unsynced::sync`] (or an fsync of [`Unsynced::new_dir`] made after
/// it, shared with other deliveries into the same `new/`) has succeeded.
#[derive(Debug)]
pub struct Unsynced {
    /// Where the message is.
    pub delivered: Delivered,
    /// `new/`, opened (without following a symlink) by whoever delivered,
    /// so that it can be fsynced later under any identity.
    pub new_dir: File,
    /// Whether the file was made without a name in `tmp/` (`O_TMPFILE`).
    pub unnamed: bool,
}

impl Unsynced {
    /// Identifies `new/` (device and inode), so that deliveries into the
    /// same directory share one fsync.
    pub fn dir_id(&self) -> io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let meta = self.new_dir.metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    /// fsyncs `new/`; on failure removes the message again (it will be
    /// delivered anew, so keeping it would only make a duplicate).
    pub fn sync(self) -> Result<Delivered, Error> {
        match self.new_dir.sync_all() {
            Ok(()) => Ok(self.delivered),
            Err(source) => {
                let _ = self.discard();
                let path = self.delivered.path.parent().map(Path::to_owned).unwrap_or_default();
                Err(Error::Sync { path, source })
            }
        }
    }

    /// Removes the message from `new/` (after its directory's fsync
    /// failed); needs the identity that delivered it.
    pub fn discard(&self) -> io::Result<()> {
        discard(&self.new_dir, &self.delivered.name)
    }
}

/// Removes the message `name` from `new_dir` (an [`Unsynced::new_dir`]
/// kept for several messages), as [`Unsynced::discard`] does.
pub fn discard(new_dir: &File, name: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    nix::unistd::unlinkat(Some(new_dir.as_raw_fd()), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
        .map_err(io::Error::from)
}

/// [`deliver`] without the final fsync of `new/`, which the caller owes
/// (once for all the messages it delivered into that directory) before
/// it reports any of them delivered.
///
/// The file is created without a name in `tmp/` (`O_TMPFILE`, mode 0600),
/// written, fsynced and linked into `new/`: no `tmp/` entry is made or
/// removed. Where the file system has no `O_TMPFILE`, it is created in
/// `tmp/` with `O_CREAT|O_EXCL|O_NOFOLLOW`, written, fsynced, hard-linked
/// into `new/` (renamed on file systems without hard links) and its
/// `tmp/` name removed, as qmail does.
pub fn deliver_unsynced(
    maildir: &Path,
    content_prefix: &[u8],
    content: &[u8],
    hostname: &str,
) -> Result<Unsynced, Error> {
    deliver_with(maildir, content_prefix, content, hostname, true)
}

/// [`deliver_unsynced`]; `unnamed` false forces the `tmp/` name (tests
/// of the fallback on file systems that do have `O_TMPFILE`).
pub(crate) fn deliver_with(
    maildir: &Path,
    content_prefix: &[u8],
    content: &[u8],
    hostname: &str,
    unnamed: bool,
) -> Result<Unsynced, Error> {
    let maildir = layout::normalize(maildir);
    layout::prepare(&maildir)?;
    let size = content_prefix.len() as u64 + content.len() as u64;
    let mut vsize = crate::crlf::CrlfSize::default();
    vsize.update(content_prefix);
    vsize.update(content);
    let name = unique_name_sized(hostname, size, vsize.size());
    let tmp_dir = maildir.join("tmp");
    let new_dir = maildir.join("new");
    let new = new_dir.join(&name);
    let unnamed = unnamed && write_unnamed(&tmp_dir, &new, content_prefix, content)?;
    if !unnamed {
        write_named(&tmp_dir.join(&name), &new, content_prefix, content)?;
    }
    let dir = match open_dir(&new_dir) {
        Ok(d) => d,
        Err(source) => {
            // Without it new/ cannot be fsynced: the delivery fails, so
            // the copy must go.
            let _ = fs::remove_file(&new);
            return Err(Error::Create { path: new_dir, source });
        }
    };
    Ok(Unsynced { delivered: Delivered { path: new, name }, new_dir: dir, unnamed })
}

/// Writes the message into an unnamed file in `tmp_dir` and links it to
/// `new`; `Ok(false)` when this file system cannot do that (nothing was
/// left behind then), so the caller uses a `tmp/` name instead.
fn write_unnamed(tmp_dir: &Path, new: &Path, prefix: &[u8], content: &[u8]) -> Result<bool, Error> {
    let mut file = match stdx::fs::create_unnamed(tmp_dir, 0o600) {
        Ok(f) => f,
        Err(e) if stdx::fs::is_unsupported(&e) => return Ok(false),
        Err(source) => return Err(Error::Create { path: tmp_dir.to_owned(), source }),
    };
    // A failure from here on drops the file, and with it every trace.
    write_and_sync(&mut file, tmp_dir, prefix, content)?;
    match stdx::fs::link_unnamed(&file, new) {
        Ok(()) => Ok(true),
        Err(e) if stdx::fs::is_unsupported(&e) || no_hard_links(&e) => Ok(false),
        Err(source) => Err(Error::Link { from: tmp_dir.to_owned(), to: new.to_owned(), source }),
    }
}

/// The qmail way: `tmp/NAME`, then a link to `new/NAME`, then the `tmp/`
/// name removed.
fn write_named(tmp: &Path, new: &Path, prefix: &[u8], content: &[u8]) -> Result<(), Error> {
    if let Err(e) = write_tmp(tmp, prefix, content) {
        // The file may exist half-written; a failed unlink leaves it for the
        // usual 36-hour tmp/ cleanup of Maildir readers.
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    if let Err(e) = link_or_rename(tmp, new) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    // The message is in new/ now. A failure to remove the tmp/ name only
    // leaves a second link that tmp/ cleanup removes; it is not a delivery
    // failure (Postfix only logs it).
    let _ = fs::remove_file(tmp);
    Ok(())
}

/// A directory for fsyncs, never through a symlink.
fn open_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
}

/// Returns a new unique Maildir file name for a message of `size` bytes,
/// `{secs}.M{usec}P{pid}Q{count}.{hostname},S={size}`.
pub fn unique_name(hostname: &str, size: u64) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format_name(SystemTime::now(), std::process::id(), count, hostname, size)
}

/// [`unique_name`] with Dovecot's `,W={vsize}` after `,S=`: the size with
/// CRLF line ends ([`crate::crlf`]), which pop3d and imapd (ours and
/// Dovecot's) then take from the name instead of reading the file.
pub(crate) fn unique_name_sized(hostname: &str, size: u64, vsize: u64) -> String {
    format!("{},W={vsize}", unique_name(hostname, size))
}

fn format_name(now: SystemTime, pid: u32, count: u64, hostname: &str, size: u64) -> String {
    // A clock before 1970 is broken; a zero time still gives unique names
    // thanks to the pid and counter.
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{},S={}",
        since.as_secs(),
        since.subsec_micros(),
        pid,
        count,
        escape_hostname(hostname),
        size
    )
}

/// Escapes the host name for use in a Maildir name. The specification asks
/// for `/` → `\057` and `:` → `\072`; we also escape `,` (which starts
/// Dovecot's `,S=` fields), `\`, blanks, control characters and non-ASCII
/// bytes the same way, so that the name stays one portable path component.
fn escape_hostname(hostname: &str) -> String {
    if hostname.is_empty() {
        return "localhost".to_owned();
    }
    let mut out = String::with_capacity(hostname.len());
    for b in hostname.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b',' | b'\\') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\{b:03o}");
        }
    }
    out
}

fn write_tmp(tmp: &Path, prefix: &[u8], content: &[u8]) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(|source| Error::Create { path: tmp.to_owned(), source })?;
    write_and_sync(&mut file, tmp, prefix, content)
}

/// `path` names the file in errors (for an unnamed one, its directory).
fn write_and_sync(
    file: &mut File,
    path: &Path,
    prefix: &[u8],
    content: &[u8],
) -> Result<(), Error> {
    let write = |file: &mut File| -> io::Result<()> {
        file.write_all(prefix)?;
        file.write_all(content)
    };
    write(file).map_err(|source| Error::Write { path: path.to_owned(), source })?;
    file.sync_all().map_err(|source| Error::Sync { path: path.to_owned(), source })
}

/// `link()` refuses to replace an existing name, which `rename()` would do
/// silently, so it is preferred; file systems that have no hard links get a
/// `rename()` instead (as Dovecot does).
fn link_or_rename(tmp: &Path, new: &Path) -> Result<(), Error> {
    let link_error = |source| Error::Link { from: tmp.to_owned(), to: new.to_owned(), source };
    match fs::hard_link(tmp, new) {
        Ok(()) => Ok(()),
        Err(e) if no_hard_links(&e) => fs::rename(tmp, new).map_err(link_error),
        Err(e) => Err(link_error(e)),
    }
}

fn no_hard_links(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::ENOSYS | libc::EXDEV | libc::EOPNOTSUPP | libc::EMLINK)
    )
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn name_format() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(
            format_name(t, 42, 7, "mail.example.org", 1234),
            "1700000000.M123456P42Q7.mail.example.org,S=1234"
        );
        assert_eq!(format_name(t, 1, 0, "a/b:c", 0), "1700000000.M123456P1Q0.a\\057b\\072c,S=0");
    }

    #[test]
    fn hostname_escaping() {
        assert_eq!(escape_hostname(""), "localhost");
        assert_eq!(escape_hostname("x,y z"), "x\\054y\\040z");
        assert_eq!(escape_hostname("é"), "\\303\\251");
    }

    #[test]
    fn delivers_exact_content() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("home/u/Maildir/");
        let d = deliver(&md, b"Delivered-To: u@x\n", b"Subject: hi\n\nbody\n", "h").unwrap();
        assert!(d.path.starts_with(dir.path().join("home/u/Maildir/new")));
        assert_eq!(fs::read(&d.path).unwrap(), b"Delivered-To: u@x\nSubject: hi\n\nbody\n");
        let size = fs::metadata(&d.path).unwrap().len();
        // Four bare LFs make the CRLF size four more.
        assert!(d.name.ends_with(&format!(",S={size},W={}", size + 4)), "{}", d.name);
        assert_eq!(fs::metadata(&d.path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(names(&md.join("tmp")).is_empty());
        assert!(names(&md.join("cur")).is_empty());
        assert_eq!(names(&md.join("new")), vec![d.name.clone()]);
    }

    #[test]
    fn unnamed_and_named_files_land_alike_and_leave_tmp_empty() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        for unnamed in [true, false] {
            let u = deliver_with(&md, b"P: 1\n", b"\nbody\n", "h", unnamed).unwrap();
            if unnamed && !u.unnamed {
                eprintln!("skipped: no O_TMPFILE on {}: the fallback ran", md.display());
            }
            if !unnamed {
                assert!(!u.unnamed, "the tmp/ name was forced");
            }
            let d = u.sync().unwrap();
            assert_eq!(fs::read(&d.path).unwrap(), b"P: 1\n\nbody\n");
            assert_eq!(fs::metadata(&d.path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(&d.path).unwrap().nlink(), 1);
            assert!(names(&md.join("tmp")).is_empty());
        }
        assert_eq!(names(&md.join("new")).len(), 2);
    }

    #[test]
    fn unsynced_deliveries_name_their_directory_and_can_be_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let one = deliver_unsynced(&a, b"", b"1", "h").unwrap();
        let two = deliver_unsynced(&a, b"", b"2", "h").unwrap();
        let other = deliver_unsynced(&b, b"", b"3", "h").unwrap();
        assert_eq!(one.dir_id().unwrap(), two.dir_id().unwrap());
        assert_ne!(one.dir_id().unwrap(), other.dir_id().unwrap());
        // Visible at once (only its durability waits for the fsync).
        assert_eq!(names(&a.join("new")).len(), 2);
        two.discard().unwrap();
        assert_eq!(names(&a.join("new")), vec![one.delivered.name.clone()]);
        one.sync().unwrap();
        other.sync().unwrap();
    }

    #[test]
    fn names_unique_across_10k_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        let mut seen = HashSet::new();
        for i in 0..10_000u32 {
            let d = deliver(&md, b"", i.to_string().as_bytes(), "host").unwrap();
            assert!(seen.insert(d.name));
        }
        assert_eq!(names(&md.join("new")).len(), 10_000);
        assert!(names(&md.join("tmp")).is_empty());
    }

    #[test]
    fn names_unique_across_threads() {
        let mut handles = Vec::new();
        for _ in 0..4 {
            handles.push(std::thread::spawn(|| {
                (0..2000).map(|_| unique_name("h", 1)).collect::<Vec<_>>()
            }));
        }
        let mut seen = HashSet::new();
        for h in handles {
            for n in h.join().unwrap() {
                assert!(seen.insert(n));
            }
        }
    }

    #[test]
    fn symlinked_maildir_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("elsewhere");
        fs::create_dir(&real).unwrap();
        let md = dir.path().join("Maildir");
        std::os::unix::fs::symlink(&real, &md).unwrap();
        let err = deliver(&md, b"", b"x\n", "h").unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }));
        assert!(!err.is_transient());
        let err = deliver(Path::new(&format!("{}/", md.display())), b"", b"x\n", "h").unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }));
        assert!(names(&real).is_empty());
    }

    #[test]
    fn symlinked_tmp_refused() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        crate::make(&md).unwrap();
        fs::remove_dir(md.join("tmp")).unwrap();
        let target = dir.path().join("t");
        fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, md.join("tmp")).unwrap();
        assert!(matches!(deliver(&md, b"", b"x", "h"), Err(Error::Symlink { .. })));
        assert!(names(&target).is_empty());
    }

    #[test]
    fn unwritable_new_leaves_nothing_in_tmp() {
        // Root ignores directory permissions, so this only means something
        // for ordinary users.
        if nix::unistd::geteuid().is_root() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: unwritable_new_leaves_nothing_in_tmp: needs a non-root user\n",
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        crate::make(&md).unwrap();
        fs::set_permissions(md.join("new"), fs::Permissions::from_mode(0o500)).unwrap();
        let err = deliver(&md, b"", b"x", "h").unwrap_err();
        assert!(matches!(err, Error::Link { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(names(&md.join("tmp")).is_empty());
        fs::set_permissions(md.join("new"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn link_failure_leaves_nothing_in_tmp() {
        // new/ is a plain file: everything up to the link works, the link
        // fails (ENOTDIR) even for root.
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        crate::make(&md).unwrap();
        fs::remove_dir(md.join("new")).unwrap();
        fs::write(md.join("new"), b"").unwrap();
        let err = deliver(&md, b"", b"x", "h").unwrap_err();
        assert!(matches!(err, Error::Link { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(names(&md.join("tmp")).is_empty());
    }

    #[test]
    fn maildir_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        fs::write(&md, b"").unwrap();
        let err = deliver(&md, b"", b"x", "h").unwrap_err();
        assert!(err.is_transient());
        assert!(err.to_string().contains("Maildir"), "{err}");
    }
}
