//! Creating Maildirs and Maildir++ folders, and checking their layout before
//! a delivery.
//!
//! A Maildir is a directory with `tmp/`, `new/` and `cur/`
//! (<https://cr.yp.to/proto/maildir.html>). A Maildir++ folder is a Maildir
//! named `.Name` inside the top Maildir that also holds an empty
//! `maildirfolder` file (Courier's `maildirmake -f`, read by Courier and
//! Dovecot); `.` separates hierarchy levels (`.Lists.rust`).
//!
//! Every directory we create is fsynced, and so is the directory that holds
//! its entry, before we return: otherwise a crash right after the first
//! delivery into a new Maildir (reported done) could lose `new/`, or the
//! Maildir itself, with the message in it.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// The three subdirectories of every Maildir, in the order Courier creates
/// them.
pub(crate) const SUBDIRS: [&str; 3] = ["tmp", "new", "cur"];

/// Mode of every directory we create: mail is private to its owner.
const DIR_MODE: u32 = 0o700;

/// Longest folder name: the directory name `.{name}` must fit in NAME_MAX.
const MAX_FOLDER_NAME: usize = 254;

/// Creates a new Maildir: `maildir/` itself and its `tmp/`, `new/` and
/// `cur/` subdirectories, all mode 0700, each fsynced with the directory
/// that holds it.
///
/// As Courier's `maildirmake`, this fails with `Error::Create` whose source
/// is `AlreadyExists` when `maildir` already exists, and it does not create
/// missing parent directories.
pub fn make(maildir: &Path) -> Result<(), Error> {
    let created = make_unsynced(&normalize(maildir))?;
    sync_created(&created)
}

/// The directories of a new Maildir, created but not yet fsynced.
fn make_unsynced(maildir: &Path) -> Result<Vec<PathBuf>, Error> {
    mkdir(maildir)?;
    let mut created = vec![maildir.to_owned()];
    for sub in SUBDIRS {
        let dir = maildir.join(sub);
        mkdir(&dir)?;
        created.push(dir);
    }
    Ok(created)
}

/// Creates the Maildir++ folder `.{name}` inside the existing Maildir
/// `maildir`: the folder's `tmp/`, `new/`, `cur/` and an empty
/// `maildirfolder` file.
///
/// Directory names are IMAP's modified UTF-7 (as Courier and Dovecot, and
/// our IMAP server, read them), so a `name` that is not already valid
/// modified UTF-7 (`Itens Excluídos`, `R&D`) is encoded
/// (`.Itens Exclu&AO0-dos`, `.R&-D`); one that is, ASCII names included,
/// is used as given. The result is checked with [`validate_folder_name`].
/// An existing folder is an `Error::Create` with source `AlreadyExists`,
/// as in `maildirmake -f`.
pub fn make_folder(maildir: &Path, name: &str) -> Result<PathBuf, Error> {
    let wire = match crate::mutf7::decode(name) {
        Some(_) => name.to_owned(),
        None => crate::mutf7::encode(name),
    };
    make_folder_dir(maildir, &wire)
}

/// [`make_folder`] with the directory name (after its dot) as given.
pub(crate) fn make_folder_dir(maildir: &Path, name: &str) -> Result<PathBuf, Error> {
    validate_folder_name(name)?;
    let folder = normalize(maildir).join(format!(".{name}"));
    let created = make_unsynced(&folder)?;
    let marker = folder.join("maildirfolder");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&marker)
        .map_err(|source| Error::Create { path: marker, source })?;
    // The folder is synced after the marker, so its entry is durable too.
    sync_created(&created)?;
    Ok(folder)
}

/// Checks a Maildir++ folder name (without its leading dot).
///
/// The name becomes one directory entry inside the user's Maildir, so it
/// must not contain `/` or NUL, must not start with `.` (which would make
/// `..`, or a name Maildir++ readers skip), and must not have empty
/// hierarchy levels (`a..b`, `a.`), which Courier and Dovecot reject too.
pub fn validate_folder_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("empty name")
    } else if name.len() > MAX_FOLDER_NAME {
        Some("name too long")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if name.ends_with('.') || name.contains("..") {
        Some("empty hierarchy level")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::FolderName { name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

/// Makes sure `maildir` and its three subdirectories exist and none of them
/// is a symbolic link, creating whatever is missing (mode 0700, parents
/// included), as Postfix's `local/maildir.c` does with `make_dirs()`.
pub(crate) fn prepare(maildir: &Path) -> Result<(), Error> {
    prepare_with(maildir, &mut crate::maildir::sync_dir)
}

/// [`prepare`] with the directory fsync given (tests record the calls).
fn prepare_with(
    maildir: &Path,
    sync: &mut dyn FnMut(&Path) -> io::Result<()>,
) -> Result<(), Error> {
    let mut created = Vec::new();
    ensure_dir(maildir, true, &mut created)?;
    for sub in SUBDIRS {
        ensure_dir(&maildir.join(sub), false, &mut created)?;
    }
    // Nothing to do (and no cost) for an existing Maildir.
    sync_created_with(&created, sync)
}

/// fsyncs each directory of `created` and then the one holding its entry,
/// deepest first, each once.
pub(crate) fn sync_created(created: &[PathBuf]) -> Result<(), Error> {
    sync_created_with(created, &mut crate::maildir::sync_dir)
}

fn sync_created_with(
    created: &[PathBuf],
    sync: &mut dyn FnMut(&Path) -> io::Result<()>,
) -> Result<(), Error> {
    let mut done: Vec<PathBuf> = Vec::new();
    for dir in created.iter().rev() {
        let parent = match dir.parent() {
            Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
            Some(p) => p.to_owned(),
            None => continue,
        };
        for d in [dir.clone(), parent] {
            if done.contains(&d) {
                continue;
            }
            sync(&d).map_err(|source| Error::Sync { path: d.clone(), source })?;
            done.push(d);
        }
    }
    Ok(())
}

/// Removes trailing slashes (and `.` components) so that `symlink_metadata`
/// looks at the link itself: `Maildir/` would resolve a link named
/// `Maildir`.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let normalized: PathBuf = path.components().collect();
    if normalized.as_os_str().is_empty() { PathBuf::from(".") } else { normalized }
}

/// Makes sure `dir` is a directory and no symlink, creating it (with
/// `parents`, its missing ancestors too, which may be symlinks, as a home
/// under a linked `/home` is) and adding what it created to `created`.
fn ensure_dir(dir: &Path, parents: bool, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Symlink { path: dir.to_owned() }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if parents {
                create_ancestors(dir, created)?;
            }
            match DirBuilder::new().mode(DIR_MODE).create(dir) {
                Ok(()) => {
                    created.push(dir.to_owned());
                    Ok(())
                }
                // Somebody else (a concurrent delivery) made it meanwhile:
                // check again what it is. We sync it as well: we may report
                // our delivery before the other one has synced.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match fs::symlink_metadata(dir) {
                        Ok(meta) if meta.file_type().is_symlink() => {
                            Err(Error::Symlink { path: dir.to_owned() })
                        }
                        Ok(_) => {
                            created.push(dir.to_owned());
                            Ok(())
                        }
                        Err(source) => Err(Error::Read { path: dir.to_owned(), source }),
                    }
                }
                Err(source) => Err(Error::Create { path: dir.to_owned(), source }),
            }
        }
        Err(source) => Err(Error::Read { path: dir.to_owned(), source }),
    }
}

/// Creates the missing ancestors of `dir`, top down (what
/// `DirBuilder::recursive` does, but telling which it made).
fn create_ancestors(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut at = dir.parent();
    while let Some(p) = at {
        if p.as_os_str().is_empty() {
            break;
        }
        match fs::symlink_metadata(p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p.to_owned()),
            // Exists (whatever it is: a file here makes the mkdir below
            // fail with a clear error), or cannot be looked at, which the
            // mkdir reports too.
            _ => break,
        }
        at = p.parent();
    }
    for p in missing.into_iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(&p) {
            Ok(()) => created.push(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => created.push(p),
            Err(source) => return Err(Error::Create { path: p, source }),
        }
    }
    Ok(())
}

fn mkdir(dir: &Path) -> Result<(), Error> {
    DirBuilder::new()
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| Error::Create { path: dir.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn make_creates_layout() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        make(&md).unwrap();
        for sub in SUBDIRS {
            let p = md.join(sub);
            assert!(p.is_dir(), "{p:?}");
            assert_eq!(mode(&p) & 0o077, 0);
        }
        assert_eq!(mode(&md) & 0o077, 0);
    }

    #[test]
    fn make_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        make(&md).unwrap();
        match make(&md) {
            Err(Error::Create { path, source }) => {
                assert_eq!(path, md);
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn make_does_not_create_parents() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("missing/Maildir");
        assert!(matches!(make(&md), Err(Error::Create { .. })));
    }

    #[test]
    fn make_folder_layout() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        make(&md).unwrap();
        let folder = make_folder(&md, "Enviados").unwrap();
        assert_eq!(folder, md.join(".Enviados"));
        for sub in SUBDIRS {
            assert!(folder.join(sub).is_dir());
        }
        let marker = fs::metadata(folder.join("maildirfolder")).unwrap();
        assert!(marker.is_file());
        assert_eq!(marker.len(), 0);
        assert!(matches!(make_folder(&md, "Enviados"), Err(Error::Create { .. })));
        make_folder(&md, "Lists.rust").unwrap();
        assert!(md.join(".Lists.rust/cur").is_dir());
        // Names on disk are modified UTF-7, so IMAP lists them.
        make_folder(&md, "Itens Excluídos").unwrap();
        assert!(md.join(".Itens Exclu&AO0-dos/cur").is_dir());
        make_folder(&md, "Itens Exclu&AO0-dos.Velhos").unwrap();
        assert!(md.join(".Itens Exclu&AO0-dos.Velhos/cur").is_dir());
        make_folder(&md, "R&D").unwrap();
        assert!(md.join(".R&-D/cur").is_dir());
        let listed: Vec<String> = crate::Store::new(&md)
            .list()
            .unwrap()
            .into_iter()
            .map(|f| f.name.to_string())
            .collect();
        assert_eq!(
            listed,
            [
                "INBOX",
                "Enviados",
                "Itens Excluídos",
                "Itens Excluídos.Velhos",
                "Lists",
                "Lists.rust",
                "R&D"
            ]
        );
    }

    #[test]
    fn folder_names() {
        for bad in ["", ".", "..", ".x", "a/b", "../x", "a\0b", "a.", "a..b"] {
            assert!(
                matches!(validate_folder_name(bad), Err(Error::FolderName { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(validate_folder_name(&"x".repeat(255)).is_err());
        for good in ["Enviados", "Rascunhos", "Lixeira", "Spam", "Lists.rust", "a b", "x"] {
            validate_folder_name(good).unwrap();
        }
    }

    #[test]
    fn prepare_creates_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("home/u/Maildir");
        prepare(&md).unwrap();
        for sub in SUBDIRS {
            assert!(md.join(sub).is_dir());
        }
        // Idempotent.
        prepare(&md).unwrap();
    }

    #[test]
    fn prepare_syncs_what_it_created_and_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        let md = dir.path().join("home/u/Maildir");
        let mut synced = Vec::new();
        prepare_with(&md, &mut |p| {
            synced.push(p.to_owned());
            Ok(())
        })
        .unwrap();
        let home = dir.path().join("home");
        let expected = [
            md.join("cur"),
            md.clone(),
            md.join("new"),
            md.join("tmp"),
            home.join("u"),
            home.clone(),
        ];
        assert_eq!(synced, expected);
        // An existing Maildir costs no fsync; a missing new/ costs two.
        synced.clear();
        fs::remove_dir(md.join("new")).unwrap();
        prepare_with(&md, &mut |p| {
            synced.push(p.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(synced, [md.join("new"), md.clone()]);
        synced.clear();
        prepare_with(&md, &mut |p| {
            synced.push(p.to_owned());
            Ok(())
        })
        .unwrap();
        assert!(synced.is_empty());
        // A failing fsync fails the preparation (the delivery is deferred).
        fs::remove_dir(md.join("tmp")).unwrap();
        let err =
            prepare_with(&md, &mut |_| Err(io::Error::from_raw_os_error(libc::EIO))).unwrap_err();
        assert!(matches!(err, Error::Sync { .. }) && err.is_transient(), "{err:?}");
    }

    #[test]
    fn prepare_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        make(&real).unwrap();
        let link = dir.path().join("Maildir");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(prepare(&link), Err(Error::Symlink { .. })));
        // A trailing slash must not make us follow the link.
        let with_slash = PathBuf::from(format!("{}/", link.display()));
        assert!(matches!(prepare(&normalize(&with_slash)), Err(Error::Symlink { .. })));

        let md = dir.path().join("Maildir2");
        fs::create_dir(&md).unwrap();
        std::os::unix::fs::symlink(&real, md.join("new")).unwrap();
        match prepare(&md) {
            Err(Error::Symlink { path }) => assert_eq!(path, md.join("new")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn normalize_strips_trailing_slash() {
        assert_eq!(normalize(Path::new("/a/b/")), PathBuf::from("/a/b"));
        assert_eq!(normalize(Path::new("a/./b")), PathBuf::from("a/b"));
        assert_eq!(normalize(Path::new("")), PathBuf::from("."));
    }
}
