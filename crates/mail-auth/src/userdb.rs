//! The user database: system users or a passwd-file of virtual users.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::passwd_file::PasswdFile;

/// A mail user: who they run as and where their mail lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name as found in the database.
    pub name: String,
    /// Numeric user id that deliveries and mail sessions run as.
    pub uid: u32,
    /// Numeric group id.
    pub gid: u32,
    /// Home directory; the Maildir is found relative to it.
    pub home: PathBuf,
    /// The stored password (`{SCHEME}hash` or a crypt string). Only a
    /// passwd-file has it; system users' passwords are checked by PAM.
    pub password_hash: Option<String>,
}

/// Where users come from.
#[derive(Debug)]
pub enum UserDb {
    /// The system passwd database (`getpwnam_r`, so NSS modules apply).
    System,
    /// A Dovecot-style passwd-file, cached and re-read when it changes.
    PasswdFile(PasswdFile),
}

impl UserDb {
    /// A database backed by a passwd-file at `path` (read on first lookup).
    pub fn passwd_file(path: impl Into<PathBuf>) -> UserDb {
        UserDb::PasswdFile(PasswdFile::new(path))
    }

    /// Looks `name` up: first exactly, then lower-cased if that differs
    /// (mail clients often capitalise the login name, and Unix login names
    /// are lower case). `Ok(None)` means no such user.
    pub fn lookup(&self, name: &str) -> Result<Option<User>, Error> {
        if let Some(user) = self.lookup_exact(name)? {
            return Ok(Some(user));
        }
        let lower = name.to_lowercase();
        if lower != name { self.lookup_exact(&lower) } else { Ok(None) }
    }

    fn lookup_exact(&self, name: &str) -> Result<Option<User>, Error> {
        match self {
            UserDb::System => lookup_system(name),
            UserDb::PasswdFile(file) => file.lookup_exact(name),
        }
    }

    /// The passwd-file path, for log messages; `None` for system users.
    pub fn path(&self) -> Option<&Path> {
        match self {
            UserDb::System => None,
            UserDb::PasswdFile(file) => Some(file.path()),
        }
    }
}

fn lookup_system(name: &str) -> Result<Option<User>, Error> {
    // getpwnam cannot represent these; they name no user.
    if name.is_empty() || name.contains('\0') {
        return Ok(None);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(pw)) => Ok(Some(User {
            name: pw.name,
            uid: pw.uid.as_raw(),
            gid: pw.gid.as_raw(),
            home: pw.dir,
            password_hash: None,
        })),
        Ok(None) => Ok(None),
        Err(source) => Err(Error::System { name: name.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_root_exists() {
        let root = UserDb::System.lookup("root").unwrap().unwrap();
        assert_eq!(root.uid, 0);
        assert_eq!(root.password_hash, None);
        // Lower-case fallback.
        assert_eq!(UserDb::System.lookup("ROOT").unwrap().unwrap().uid, 0);
        assert_eq!(UserDb::System.path(), None);
    }

    #[test]
    fn system_unknown_and_odd_names() {
        assert_eq!(UserDb::System.lookup("no-such-user-postern-test").unwrap(), None);
        assert_eq!(UserDb::System.lookup("").unwrap(), None);
        assert_eq!(UserDb::System.lookup("a\0b").unwrap(), None);
    }
}
