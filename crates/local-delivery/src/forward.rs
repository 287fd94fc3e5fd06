//! A user's `.forward` file (Postfix `local/dotforward.c`): where to look
//! (`forward_path`, with its `$home`, `$user`, `$extension`, ... expanded
//! here, as Postfix's `local_expand()` does), and reading the first file
//! that exists, as the user and only if it is safe.
//!
//! Expansion follows Postfix's `mac_expand()`: `$name`, `${name}` and
//! `$(name)` are replaced by the attribute; `${name?text}` is `text` when
//! the attribute is set and not empty, `${name:text}` when it is not; `$$`
//! is a `$`. An entry of `forward_path` that refers plainly to an
//! attribute that is not set (`${extension}` for an address without an
//! extension) is skipped as a whole, as Postfix skips it; so the default
//! `$home/.forward${recipient_delimiter}${extension}, $home/.forward`
//! tries `~/.forward+news` then `~/.forward` for `maria+news`, and only
//! `~/.forward` for `maria`.
//!
//! A `.forward` is used only when it is a regular file (never through a
//! symlink), owned by the user or by root, not writable by group or
//! others, and at most [`MAX_FORWARD_SIZE`] bytes; any other candidate is
//! skipped with a warning. It is opened with the user's effective ids, so
//! it can be no file the user could not read. Its syntax is that of an
//! `:include:` file ([`mail_lookup::aliases::parse_include`]).
//!
//! The envelope of a copy forwarded to another address (from a
//! `.forward` or an alias) is rewritten as cleanup would rewrite a new
//! message ([`rewrite_envelope`]): Postfix's local hands such copies to
//! cleanup, so canonical maps and virtual aliases apply to them too.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use mail_auth::User;
use mail_lookup::aliases::AliasTarget;
use mail_lookup::rewrite::Rewriter;
use mail_types::Address;

use crate::privs::AsUser;

/// Largest `.forward` file we read.
pub(crate) const MAX_FORWARD_SIZE: u64 = 1024 * 1024;

/// Longest expanded `forward_path` entry (`PATH_MAX`).
const MAX_PATH_LENGTH: usize = 4096;

/// Most entries of `forward_path` we try.
const MAX_ENTRIES: usize = 32;

/// The envelope of a forwarded copy after cleanup's rewriting: the
/// sender through `sender_canonical_maps` and `canonical_maps`, the new
/// recipient through `recipient_canonical_maps`, `canonical_maps` and
/// virtual alias expansion (one or more, in order). `Err` is a table that
/// could not be read or an expansion over its limits: the delivery is
/// deferred, never sent on unrewritten.
pub(crate) fn rewrite_envelope(
    r: &Rewriter,
    sender: Option<Address>,
    to: &Address,
) -> Result<(Option<Address>, Vec<Address>), mail_lookup::Error> {
    let sender = sender.map(|a| r.sender(&a)).transpose()?;
    Ok((sender, r.recipient(to)?))
}

/// The attributes `forward_path` may refer to, for one recipient. `None`
/// means "not set".
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars<'a> {
    pub(crate) user: Option<&'a str>,
    pub(crate) home: Option<&'a str>,
    /// The address extension; not set when the address has none.
    pub(crate) extension: Option<&'a str>,
    /// The delimiter that separated the extension; not set without one.
    pub(crate) recipient_delimiter: Option<&'a str>,
    /// `user+ext@domain`.
    pub(crate) recipient: Option<&'a str>,
    pub(crate) local: Option<&'a str>,
    pub(crate) domain: Option<&'a str>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let value = match name {
            "user" => self.user,
            "home" => self.home,
            "extension" => self.extension,
            "recipient_delimiter" => self.recipient_delimiter,
            "recipient" => self.recipient,
            "local" => self.local,
            "domain" => self.domain,
            _ => None,
        };
        value.filter(|v| !v.is_empty())
    }
}

/// Why an entry could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// A plain reference to an attribute that is not set: skip the entry.
    Undefined(String),
    /// Bad syntax, too long, or nested too deep.
    Syntax(String),
}

/// Expands one `forward_path` entry with main.toml's expander
/// (`$name`, `${name}`, `$(name)`, `${name?text}`, `${name:text}`, `$$`),
/// the recipient's attributes as the names.
pub(crate) fn expand(template: &str, vars: &Vars<'_>) -> Result<String, ExpandError> {
    use mail_config::expand::{ExpandError as E, expand_with};
    expand_with(template, MAX_PATH_LENGTH, &mut |name| Ok(vars.get(name).map(str::to_owned)))
        .map_err(|e| match e {
            E::Undefined(name) => ExpandError::Undefined(name),
            other => ExpandError::Syntax(format!("{other} in {template:?}")),
        })
}

/// Splits `forward_path` into entries at commas and white space outside
/// `${...}` (Postfix splits at every comma or space; not splitting inside
/// braces only lets `${name?text}` hold them).
pub(crate) fn entries(forward_path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut level = 0usize;
    let mut start = 0;
    for (i, c) in forward_path.char_indices() {
        match c {
            '{' | '(' => level += 1,
            '}' | ')' => level = level.saturating_sub(1),
            c if level == 0 && (c == ',' || c.is_whitespace()) => {
                if start < i {
                    out.push(&forward_path[start..i]);
                }
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if start < forward_path.len() {
        out.push(&forward_path[start..]);
    }
    out.truncate(MAX_ENTRIES);
    out
}

/// The files to try, in order: each entry expanded; entries that refer to
/// an unset attribute are skipped, bad or relative ones too (with a
/// warning); a path already listed is not tried twice.
pub(crate) fn candidates(forward_path: &str, vars: &Vars<'_>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for entry in entries(forward_path) {
        match expand(entry, vars) {
            Ok(path) if path.starts_with('/') => {
                let path = PathBuf::from(path);
                if !out.contains(&path) {
                    out.push(path);
                }
            }
            Ok(path) => {
                tracing::warn!("forward_path entry {entry:?}: {path:?} is not absolute; skipped");
            }
            Err(ExpandError::Undefined(_)) => {}
            Err(ExpandError::Syntax(e)) => tracing::warn!("forward_path: {e}; entry skipped"),
        }
    }
    out
}

/// Whether a `.forward` with this owner and mode may be used for a user
/// whose uid is `user_uid`; `Err` is the reason for the warning.
pub(crate) fn check_owner_and_mode(
    path: &Path,
    file_uid: u32,
    mode: u32,
    user_uid: u32,
) -> Result<(), String> {
    if file_uid != user_uid && file_uid != 0 {
        return Err(format!("file {} has bad owner uid {file_uid}", path.display()));
    }
    if mode & 0o022 != 0 {
        return Err(format!("file {} is writable by group or others", path.display()));
    }
    Ok(())
}

/// The `.forward` that applies: the first candidate that exists and is
/// safe, with its destinations (empty for an empty or comment-only file)
/// and the parser's warnings. `Ok(None)`: no `.forward`. `Err`: a
/// transient problem (the text for a deferral).
pub(crate) fn find(paths: &[PathBuf], user: &User) -> Result<Option<Found>, String> {
    if paths.is_empty() {
        return Ok(None);
    }
    // Opened as the user: the file must be one the user may read, and a
    // path through a directory the user cannot enter finds nothing.
    let guard = AsUser::switch(user.uid, user.gid)
        .map_err(|e| format!("cannot switch to uid {}: {e}", user.uid))?;
    for path in paths {
        match read_one(path, user.uid) {
            Ok(Some(text)) => {
                let (targets, warnings) = mail_lookup::aliases::parse_include(&text, path);
                return Ok(Some(Found { path: path.clone(), targets, warnings }));
            }
            Ok(None) => {}
            Err(Skip::Warn(w)) => tracing::warn!("{w}; ignored"),
            Err(Skip::Defer(e)) => return Err(e),
        }
    }
    // No .forward: the user's mailbox is next, written as the user, so
    // the identity stays for that switch (see privs::keep).
    crate::privs::keep(user.uid, user.gid, guard);
    Ok(None)
}

/// A `.forward` file that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) targets: Vec<AliasTarget>,
    pub(crate) warnings: Vec<String>,
}

/// Why one candidate is not used.
#[derive(Debug)]
enum Skip {
    /// Unsafe or unreadable: warn, try the next one.
    Warn(String),
    /// Try again later.
    Defer(String),
}

/// Reads one candidate. `Ok(None)`: it does not exist.
fn read_one(path: &Path, user_uid: u32) -> Result<Option<Vec<u8>>, Skip> {
    let opened = std::fs::File::options()
        .read(true)
        // O_NONBLOCK: a FIFO planted as .forward must not hang the agent
        // (it is refused below as not a regular file).
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            return match (e.kind(), e.raw_os_error()) {
                (ErrorKind::NotFound, _) => Ok(None),
                (_, Some(libc::ENOTDIR)) => Ok(None),
                (_, Some(libc::ELOOP)) => {
                    Err(Skip::Warn(format!("file {} is a symbolic link", path.display())))
                }
                (ErrorKind::PermissionDenied, _) => {
                    Err(Skip::Warn(format!("cannot open file {}: {e}", path.display())))
                }
                _ => Err(Skip::Defer(format!("cannot open file {}: {e}", path.display()))),
            };
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| Skip::Defer(format!("cannot stat file {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Skip::Warn(format!("file {} is not a regular file", path.display())));
    }
    check_owner_and_mode(path, meta.uid(), meta.mode(), user_uid).map_err(Skip::Warn)?;
    if meta.len() > MAX_FORWARD_SIZE {
        return Err(Skip::Warn(format!(
            "file {} is larger than {MAX_FORWARD_SIZE} bytes",
            path.display()
        )));
    }
    let mut text = Vec::new();
    // Bounded even if the file grows between fstat and read.
    file.take(MAX_FORWARD_SIZE + 1)
        .read_to_end(&mut text)
        .map_err(|e| Skip::Defer(format!("cannot read file {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_FORWARD_SIZE {
        return Err(Skip::Warn(format!(
            "file {} is larger than {MAX_FORWARD_SIZE} bytes",
            path.display()
        )));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEFAULT: &str = "$home/.forward${recipient_delimiter}${extension}, $home/.forward";

    fn maria<'a>(extension: Option<&'a str>, delimiter: Option<&'a str>) -> Vars<'a> {
        Vars {
            user: Some("maria"),
            home: Some("/home/maria"),
            extension,
            recipient_delimiter: delimiter,
            recipient: Some("maria@example.org"),
            local: Some("maria"),
            domain: Some("example.org"),
        }
    }

    #[test]
    fn default_forward_path() {
        let v = maria(None, None);
        assert_eq!(candidates(DEFAULT, &v), [PathBuf::from("/home/maria/.forward")]);
        let v = maria(Some("news"), Some("+"));
        assert_eq!(
            candidates(DEFAULT, &v),
            [PathBuf::from("/home/maria/.forward+news"), PathBuf::from("/home/maria/.forward")]
        );
        // An empty extension is no extension.
        let v = maria(Some(""), Some("+"));
        assert_eq!(candidates(DEFAULT, &v), [PathBuf::from("/home/maria/.forward")]);
    }

    #[test]
    fn expansion_forms() {
        let v = maria(Some("news"), Some("-"));
        assert_eq!(expand("$home/x", &v).unwrap(), "/home/maria/x");
        assert_eq!(expand("/var/fwd/${user}$(extension)", &v).unwrap(), "/var/fwd/marianews");
        assert_eq!(expand("/a${extension?-$extension}", &v).unwrap(), "/a-news");
        assert_eq!(expand("/a${extension:-none}", &v).unwrap(), "/a");
        assert_eq!(expand("/cost$$", &v).unwrap(), "/cost$");
        let v = maria(None, None);
        assert_eq!(expand("/a${extension?-$extension}", &v).unwrap(), "/a");
        assert_eq!(expand("/a${extension:-none}", &v).unwrap(), "/a-none");
        assert_eq!(
            expand("/a${recipient_delimiter}", &v),
            Err(ExpandError::Undefined("recipient_delimiter".into()))
        );
        assert_eq!(expand("/a$shell", &v), Err(ExpandError::Undefined("shell".into())));
        assert!(matches!(expand("/a${home", &v), Err(ExpandError::Syntax(_))));
        // A lone `$` stays literal, as in main.toml (one expander for both).
        assert_eq!(expand("/a$", &v).unwrap(), "/a$");
        assert!(matches!(expand("/a${}", &v), Err(ExpandError::Syntax(_))));
        // Postfix-style list: commas and spaces; relative paths skipped.
        assert_eq!(
            candidates("/etc/fwd/$user ~/.forward,,$home/.fw", &v),
            [PathBuf::from("/etc/fwd/maria"), PathBuf::from("/home/maria/.fw")]
        );
        assert_eq!(entries("/a${extension?x y} /b"), ["/a${extension?x y}", "/b"]);
    }

    #[test]
    fn deep_or_long_expansion_is_refused() {
        let v = maria(Some("e"), Some("+"));
        let deep = format!("/{}{}", "${user?".repeat(200), "}".repeat(200));
        assert!(matches!(expand(&deep, &v), Err(ExpandError::Syntax(_))));
        let long = format!("/{}", "$home".repeat(1000));
        assert!(matches!(expand(&long, &v), Err(ExpandError::Syntax(_))));
    }

    #[test]
    fn owner_and_mode_rules() {
        let p = Path::new("/home/maria/.forward");
        assert!(check_owner_and_mode(p, 1000, 0o100644, 1000).is_ok());
        assert!(check_owner_and_mode(p, 0, 0o100600, 1000).is_ok());
        let e = check_owner_and_mode(p, 1001, 0o100644, 1000).unwrap_err();
        assert!(e.contains("bad owner uid 1001"), "{e}");
        assert!(check_owner_and_mode(p, 1000, 0o100664, 1000).is_err());
        assert!(check_owner_and_mode(p, 1000, 0o100646, 1000).is_err());
    }

    fn me(home: &Path) -> User {
        User {
            name: "maria".into(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            home: home.to_owned(),
            password_hash: None,
        }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reads_the_first_safe_file() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let user = me(dir.path());
        let first = dir.path().join(".forward+news");
        let second = dir.path().join(".forward");
        let paths = [first.clone(), second.clone()];
        assert_eq!(find(&paths, &user).unwrap(), None);
        write(&second, "# only a comment\n", 0o644);
        let found = find(&paths, &user).unwrap().unwrap();
        assert_eq!((found.path.as_path(), found.targets.len()), (second.as_path(), 0));
        write(&first, "ana, \\maria\n|/bin/true\n", 0o600);
        let found = find(&paths, &user).unwrap().unwrap();
        assert_eq!(found.path, first);
        assert_eq!(
            found.targets,
            [
                AliasTarget::Address("ana".into()),
                AliasTarget::Address("maria".into()),
                AliasTarget::Command("/bin/true".into())
            ]
        );
        // Group-writable: skipped, the next one is used.
        write(&first, "ana\n", 0o664);
        assert_eq!(find(&paths, &user).unwrap().unwrap().path, second);
    }

    #[test]
    fn symlinks_fifos_and_big_files_are_refused() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let user = me(dir.path());
        let target = dir.path().join("real");
        write(&target, "ana\n", 0o644);
        let link = dir.path().join(".forward");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(find(std::slice::from_ref(&link), &user).unwrap(), None);
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(find(&[fifo], &user).unwrap(), None);
        let big = dir.path().join("big");
        write(&big, "", 0o644);
        std::fs::File::options()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(MAX_FORWARD_SIZE + 1)
            .unwrap();
        assert_eq!(find(&[big], &user).unwrap(), None);
        // A missing directory on the way is "no file".
        assert_eq!(find(&[dir.path().join("real/.forward")], &user).unwrap(), None);
    }

    #[test]
    fn foreign_owner_is_refused() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".forward");
        write(&path, "ana\n", 0o644);
        let mut user = me(dir.path());
        if crate::privs::is_root() {
            // Root-owned files are accepted; give the file to someone else.
            nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(4321)), None).unwrap();
        } else {
            // Our file, but the user is someone else (no switch happens
            // when not root, so we still read it).
            user.uid += 1;
        }
        assert_eq!(find(&[path], &user).unwrap(), None);
    }

    proptest! {
        #[test]
        fn expansion_never_panics(s in "[$a-z_{}()?:/, .+-]{0,64}") {
            let v = maria(Some("x"), Some("+"));
            let _ = expand(&s, &v);
            let _ = candidates(&s, &v);
            let _ = candidates(&s, &Vars::default());
        }

        #[test]
        fn expansion_never_panics_on_any_text(s in "\\PC{0,64}") {
            let _ = candidates(&s, &maria(None, None));
        }
    }
}
