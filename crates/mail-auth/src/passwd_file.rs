//! Dovecot-style passwd-files: parsing and a cache that follows changes.
//!
//! Layout, one user per line (Dovecot's `passwd-file` driver):
//!
//! ```text
//! user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
//! ```
//!
//! We need uid, gid and an absolute home, so the first six fields are
//! required; `shell` and the extra fields are accepted and ignored. Lines
//! starting with `#` and blank lines are skipped. A malformed line is logged
//! with the file name and line number and skipped: one typo must not lock
//! every other user out.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use stdx::stamp::Stamp;

use crate::Error;
use crate::userdb::User;

/// Largest passwd-file we load (Dovecot has no limit; a file this size is
/// a mistake, not a user list).
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Longest line we accept; longer lines are skipped with a warning.
pub const MAX_LINE_LENGTH: usize = 8 * 1024;

/// Why one passwd-file line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Fewer than the six fields `user:password:uid:gid:gecos:home`.
    #[error("missing fields (need user:password:uid:gid:gecos:home)")]
    MissingFields,
    /// The user name is empty.
    #[error("empty user name")]
    EmptyName,
    /// The uid is not a number in 0..2^32.
    #[error("invalid uid")]
    BadUid,
    /// The gid is not a number in 0..2^32.
    #[error("invalid gid")]
    BadGid,
    /// The home is empty or relative.
    #[error("home is not an absolute path")]
    BadHome,
    /// The line is longer than [`MAX_LINE_LENGTH`].
    #[error("line too long")]
    TooLong,
    /// The line is not UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The line contains a NUL byte.
    #[error("line contains a NUL byte")]
    Nul,
}

/// Parses one line. `Ok(None)` for blank lines and comments.
pub fn parse_passwd_line(line: &str) -> Result<Option<User>, LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.len() > MAX_LINE_LENGTH {
        return Err(LineError::TooLong);
    }
    if line.contains('\0') {
        return Err(LineError::Nul);
    }
    let mut fields = line.split(':');
    let (Some(name), Some(password), Some(uid), Some(gid), Some(_gecos), Some(home)) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(LineError::MissingFields);
    };
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    let uid = parse_id(uid).ok_or(LineError::BadUid)?;
    let gid = parse_id(gid).ok_or(LineError::BadGid)?;
    if !home.starts_with('/') {
        return Err(LineError::BadHome);
    }
    Ok(Some(User {
        name: name.to_owned(),
        uid,
        gid,
        home: PathBuf::from(home),
        // An empty password field means "no password": nobody can log in
        // with one, but the user still receives mail.
        password_hash: if password.is_empty() { None } else { Some(password.to_owned()) },
    }))
}

/// Only plain decimal digits: `u32::from_str` would also take `+5`.
fn parse_id(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// Parses a whole passwd-file, logging (`tracing::warn!`) and skipping bad
/// lines and later duplicates of a user (the first line wins, as in
/// Dovecot). `path` is only used in the log messages.
pub fn parse_passwd_file(contents: &[u8], path: &Path) -> HashMap<String, User> {
    let mut users = HashMap::new();
    for (index, raw) in contents.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let parsed = if raw.len() > MAX_LINE_LENGTH + 1 {
            Err(LineError::TooLong)
        } else {
            std::str::from_utf8(raw).map_err(|_| LineError::NotUtf8).and_then(parse_passwd_line)
        };
        match parsed {
            Ok(Some(user)) => {
                if users.contains_key(&user.name) {
                    tracing::warn!(
                        file = %path.display(),
                        line = number,
                        user = %user.name,
                        "passwd-file: duplicate user, line ignored"
                    );
                } else {
                    users.insert(user.name.clone(), user);
                }
            }
            Ok(None) => {}
            Err(reason) => tracing::warn!(
                file = %path.display(),
                line = number,
                "passwd-file: {reason}, line ignored"
            ),
        }
    }
    users
}

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    users: HashMap<String, User>,
}

/// A passwd-file with its parsed contents cached. Each lookup `stat`s the
/// file and re-reads it only when its device, inode, size or modification
/// time changed, so edits (in place or by rename) show up at once.
#[derive(Debug)]
pub struct PasswdFile {
    path: PathBuf,
    cache: Mutex<Option<Loaded>>,
}

impl PasswdFile {
    /// A passwd-file at `path`; nothing is read until the first lookup.
    pub fn new(path: impl Into<PathBuf>) -> PasswdFile {
        PasswdFile { path: path.into(), cache: Mutex::new(None) }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks `name` up exactly (see `UserDb::lookup` for the lower-case
    /// fallback).
    pub fn lookup_exact(&self, name: &str) -> Result<Option<User>, Error> {
        let read_error = |source| Error::Read { path: self.path.clone(), source };
        let current = Stamp::of(&fs::metadata(&self.path).map_err(read_error)?);
        // A panic while holding the lock cannot leave the cache half
        // updated (we replace it whole), so a poisoned lock is still usable.
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = matches!(&*cache, Some(loaded) if loaded.stamp == current);
        if !fresh {
            *cache = Some(self.load()?);
        }
        Ok(cache.as_ref().and_then(|loaded| loaded.users.get(name).cloned()))
    }

    fn load(&self) -> Result<Loaded, Error> {
        let read_error = |source| Error::Read { path: self.path.clone(), source };
        let mut file = File::open(&self.path).map_err(read_error)?;
        // The stamp comes from the open file, so that a change racing with
        // this read is seen at the next lookup.
        let meta = file.metadata().map_err(read_error)?;
        if meta.len() > MAX_FILE_SIZE {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                size: meta.len(),
                limit: MAX_FILE_SIZE,
            });
        }
        let mut contents = Vec::new();
        // Bounded even if the file grows while we read it.
        file.by_ref().take(MAX_FILE_SIZE).read_to_end(&mut contents).map_err(read_error)?;
        Ok(Loaded { stamp: Stamp::of(&meta), users: parse_passwd_file(&contents, &self.path) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserDb;
    use proptest::prelude::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, SystemTime};

    const SAMPLE: &str = "\
# Postern demo users
suporte:{SHA512-CRYPT}$6$salt$hash:1001:1001:Suporte:/home/suporte::
\r
alice:{PLAIN}secret:2000:2000::/var/vmail/alice:/bin/false:userdb_quota_rule=*:storage=1G
nopass::2001:2001::/var/vmail/nopass
";

    #[test]
    fn parses_valid_lines() {
        let users = parse_passwd_file(SAMPLE.as_bytes(), Path::new("users"));
        assert_eq!(users.len(), 3);
        let s = &users["suporte"];
        assert_eq!((s.uid, s.gid), (1001, 1001));
        assert_eq!(s.home, PathBuf::from("/home/suporte"));
        assert_eq!(s.password_hash.as_deref(), Some("{SHA512-CRYPT}$6$salt$hash"));
        assert_eq!(users["alice"].password_hash.as_deref(), Some("{PLAIN}secret"));
        assert_eq!(users["alice"].home, PathBuf::from("/var/vmail/alice"));
        assert_eq!(users["nopass"].password_hash, None);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "\
short:x:1:1
:x:1:1::/h
baduid:x:-1:1::/h
bigid:x:4294967296:1::/h
plus:x:+1:1::/h
badgid:x:1:g::/h
relhome:x:1:1::home/u
nohome:x:1:1::
ok:x:1:1::/h
ok:y:2:2::/other
";
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(b"latin1:\xe9:1:1::/h\nnul:a\0b:1:1::/h\n");
        bytes.extend_from_slice(
            format!("long:{}:1:1::/h\n", "x".repeat(MAX_LINE_LENGTH)).as_bytes(),
        );
        let users = parse_passwd_file(&bytes, Path::new("users"));
        assert_eq!(users.len(), 1, "{users:?}");
        // The first of two duplicates wins.
        assert_eq!(users["ok"].uid, 1);
        assert_eq!(users["ok"].password_hash.as_deref(), Some("x"));
    }

    #[test]
    fn line_errors() {
        assert_eq!(parse_passwd_line("a:b:c"), Err(LineError::MissingFields));
        assert_eq!(parse_passwd_line(":p:1:1::/h"), Err(LineError::EmptyName));
        assert_eq!(parse_passwd_line("u:p:x:1::/h"), Err(LineError::BadUid));
        assert_eq!(parse_passwd_line("u:p:1:x::/h"), Err(LineError::BadGid));
        assert_eq!(parse_passwd_line("u:p:1:1::h"), Err(LineError::BadHome));
        assert_eq!(parse_passwd_line("# c"), Ok(None));
        assert_eq!(parse_passwd_line("   "), Ok(None));
    }

    fn write_file(path: &Path, text: &str, mtime: SystemTime) {
        let mut f = File::create(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.set_modified(mtime).unwrap();
    }

    #[test]
    fn lookup_and_reload_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let t0 = SystemTime::now() - Duration::from_secs(100);
        write_file(&path, "bob:{PLAIN}a:10:10::/h/bob\n", t0);
        let db = UserDb::passwd_file(&path);
        assert_eq!(db.path(), Some(path.as_path()));
        assert_eq!(db.lookup("bob").unwrap().unwrap().uid, 10);
        assert_eq!(db.lookup("Bob").unwrap().unwrap().uid, 10);
        assert_eq!(db.lookup("carol").unwrap(), None);

        // Same size, new mtime: edited in place.
        write_file(&path, "bob:{PLAIN}a:11:10::/h/bob\n", t0 + Duration::from_secs(1));
        assert_eq!(db.lookup("bob").unwrap().unwrap().uid, 11);

        // Replaced by rename, same size and mtime: the inode tells.
        let tmp = dir.path().join("users.new");
        write_file(&tmp, "bob:{PLAIN}a:12:10::/h/bob\n", t0 + Duration::from_secs(1));
        fs::rename(&tmp, &path).unwrap();
        assert_eq!(db.lookup("bob").unwrap().unwrap().uid, 12);

        // Unchanged stamp: the cache answers even if the content would
        // differ (proves we do not re-read every time).
        let meta = fs::metadata(&path).unwrap();
        let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(b"bob:{PLAIN}a:13").unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
        drop(f);
        if fs::metadata(&path).unwrap().mtime_nsec() == meta.mtime_nsec() {
            assert_eq!(db.lookup("bob").unwrap().unwrap().uid, 12);
        }
    }

    #[test]
    fn exact_case_wins_over_lower_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        write_file(&path, "Ana:x:1:1::/h/A\nana:x:2:2::/h/a\n", SystemTime::now());
        let db = UserDb::passwd_file(&path);
        assert_eq!(db.lookup("Ana").unwrap().unwrap().uid, 1);
        assert_eq!(db.lookup("ana").unwrap().unwrap().uid, 2);
        assert_eq!(db.lookup("ANA").unwrap().unwrap().uid, 2);
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        let err = UserDb::passwd_file(&path).lookup("x").unwrap_err();
        assert!(matches!(err, Error::Read { .. }));
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn too_large_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let f = File::create(&path).unwrap();
        f.set_len(MAX_FILE_SIZE + 1).unwrap();
        let err = UserDb::passwd_file(&path).lookup("x").unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse_passwd_file(&bytes, Path::new("fuzz"));
        }

        #[test]
        fn never_panics_on_colon_heavy_text(text in "[a-z0-9:/#{}$ \\r\\n.-]{0,300}") {
            for user in parse_passwd_file(text.as_bytes(), Path::new("fuzz")).values() {
                prop_assert!(user.home.is_absolute());
                prop_assert!(!user.name.is_empty());
            }
        }
    }
}
