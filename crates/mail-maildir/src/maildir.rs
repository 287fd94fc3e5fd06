//! Maildir delivery: write to `tmp/`, fsync, link into `new/`, fsync `new/`.
//!
//! The protocol is qmail's (<https://cr.yp.to/proto/maildir.html>) as Postfix
//! implements it in `local/maildir.c`; the unique names follow the modern
//! recommendation of that page (`secs.M{usec}P{pid}Q{count}.host`) plus
//! Dovecot's `,S=size` so that Dovecot and our own pop3d/imapd know a
//! message's size without a `stat()`.

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
/// (mode 0700) when missing. The file is created in `tmp/` with
/// `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, written, fsynced, hard-linked into
/// `new/` (renamed on file systems without hard links) and `new/` is
/// fsynced, so that a success means the message is on stable storage. On any
/// error nothing stays behind in `tmp/` or `new/`.
///
/// `hostname` goes into the file name, with `/` and `:` escaped as the
/// Maildir specification asks.
pub fn deliver(
    maildir: &Path,
    content_prefix: &[u8],
    content: &[u8],
    hostname: &str,
) -> Result<Delivered, Error> {
    let maildir = layout::normalize(maildir);
    layout::prepare(&maildir)?;
    let size = content_prefix.len() as u64 + content.len() as u64;
    let name = unique_name(hostname, size);
    let tmp = maildir.join("tmp").join(&name);
    let new_dir = maildir.join("new");
    let new = new_dir.join(&name);

    if let Err(e) = write_tmp(&tmp, content_prefix, content) {
        // The file may exist half-written; a failed unlink leaves it for the
        // usual 36-hour tmp/ cleanup of Maildir readers.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = link_or_rename(&tmp, &new) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The message is in new/ now. A failure to remove the tmp/ name only
    // leaves a second link that tmp/ cleanup removes; it is not a delivery
    // failure (Postfix only logs it).
    let _ = fs::remove_file(&tmp);
    if let Err(source) = sync_dir(&new_dir) {
        // We are about to report a failure, so the message will be delivered
        // again later: take this copy back to avoid a duplicate.
        let _ = fs::remove_file(&new);
        return Err(Error::Sync { path: new_dir, source });
    }
    Ok(Delivered { path: new, name })
}

/// Returns a new unique Maildir file name for a message of `size` bytes,
/// `{secs}.M{usec}P{pid}Q{count}.{hostname},S={size}`.
pub fn unique_name(hostname: &str, size: u64) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format_name(SystemTime::now(), std::process::id(), count, hostname, size)
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
    let write = |file: &mut File| -> io::Result<()> {
        file.write_all(prefix)?;
        file.write_all(content)
    };
    write(&mut file).map_err(|source| Error::Write { path: tmp.to_owned(), source })?;
    file.sync_all().map_err(|source| Error::Sync { path: tmp.to_owned(), source })
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
    use std::os::unix::fs::PermissionsExt;

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
        assert!(d.name.ends_with(&format!(",S={size}")), "{}", d.name);
        assert_eq!(fs::metadata(&d.path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(names(&md.join("tmp")).is_empty());
        assert!(names(&md.join("cur")).is_empty());
        assert_eq!(names(&md.join("new")), vec![d.name.clone()]);
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
