//! Listing the messages of a Maildir and reading what their names say.
//!
//! A Maildir file name is `unique[:info]`; `info` `2,FLAGS` carries the
//! message flags (<https://cr.yp.to/proto/maildir.html>), and Dovecot and
//! Courier put `,S=size` (and Dovecot `,W=vsize`) inside the unique part.
//! Names come from disk and may be anything, so parsing is total.

use std::fs;
use std::path::{Path, PathBuf};

use crate::Error;

/// One message file found in `new/` or `cur/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Full path of the file.
    pub path: PathBuf,
    /// The unique name: the file name without the `:2,...` info part. It
    /// stays the same when the flags change (the POP3 UIDL basis).
    pub name: String,
    /// The flags after `:2,` (empty for messages in `new/` and names
    /// without info).
    pub flags: String,
    /// The size from `,S=` in the name, if present.
    pub size: Option<u64>,
    /// Whether the file is in `new/` (not yet seen by any client).
    pub is_new: bool,
}

/// What a Maildir file name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaildirName<'a> {
    /// The unique part, before the info separator `:`.
    pub unique: &'a str,
    /// The flags of a `:2,FLAGS` info, empty otherwise.
    pub flags: &'a str,
    /// The `,S=` size, if present and a valid number.
    pub size: Option<u64>,
}

/// Splits a Maildir file name into unique part, flags and size. Never fails:
/// a name without info has no flags, a name without a valid `,S=` no size.
pub fn parse_file_name(file_name: &str) -> MaildirName<'_> {
    let (unique, info) = match file_name.rfind(':') {
        Some(colon) => (&file_name[..colon], Some(&file_name[colon + 1..])),
        None => (file_name, None),
    };
    let flags = info.and_then(|info| info.strip_prefix("2,")).unwrap_or("");
    MaildirName { unique, flags, size: size_field(unique) }
}

/// Finds `,S=digits` in the unique part. The field ends at the next `,` or
/// at the end of the name.
fn size_field(unique: &str) -> Option<u64> {
    unique.split(',').skip(1).find_map(|field| field.strip_prefix("S=")).and_then(|digits| {
        // At most 20 digits fit a u64; `parse` checks the rest (including
        // overflow and a leading '+', which we refuse first).
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            digits.parse().ok()
        }
    })
}

/// Lists the messages in `maildir/new` and `maildir/cur`, sorted by unique
/// name (which sorts by delivery time for names we make).
///
/// Dot files and directories are skipped; file types come from the
/// directory entries, so on common file systems nothing is `stat`ed.
/// Names that are not UTF-8 are listed with a lossy `name` (the `path` is
/// exact).
pub fn list_new_and_cur(maildir: &Path) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    for (sub, is_new) in [("new", true), ("cur", false)] {
        let dir = maildir.join(sub);
        let read_error = |source| Error::Read { path: dir.clone(), source };
        for item in fs::read_dir(&dir).map_err(read_error)? {
            let item = item.map_err(read_error)?;
            let file_name = item.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.starts_with('.') {
                continue;
            }
            let file_type = item.file_type().map_err(read_error)?;
            if file_type.is_dir() {
                continue;
            }
            let parsed = parse_file_name(&file_name);
            entries.push(Entry {
                path: item.path(),
                name: parsed.unique.to_owned(),
                flags: if is_new { String::new() } else { parsed.flags.to_owned() },
                size: parsed.size,
                is_new,
            });
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name).then(b.is_new.cmp(&a.is_new)));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_names() {
        let n = parse_file_name("1700000000.M1P2Q3.host,S=1234,W=1260:2,RS");
        assert_eq!(n.unique, "1700000000.M1P2Q3.host,S=1234,W=1260");
        assert_eq!(n.flags, "RS");
        assert_eq!(n.size, Some(1234));

        let n = parse_file_name("1700000000.M1P2Q3.host");
        assert_eq!((n.unique, n.flags, n.size), ("1700000000.M1P2Q3.host", "", None));

        let n = parse_file_name("x,S=12:1,experimental");
        assert_eq!((n.unique, n.flags, n.size), ("x,S=12", "", Some(12)));

        for bad in ["x,S=", "x,S=abc", "x,S=+1", "x,S=99999999999999999999999", "S=5"] {
            assert_eq!(parse_file_name(bad).size, None, "{bad}");
        }
        assert_eq!(parse_file_name("").unique, "");
        assert_eq!(parse_file_name(":2,").flags, "");
    }

    #[test]
    fn lists_delivered_messages() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        let a = crate::deliver(&md, b"", b"one\n", "h").unwrap();
        let b = crate::deliver(&md, b"", b"two!\n", "h").unwrap();
        // A message a client has seen moves to cur/ with flags.
        let seen = md.join("cur").join(format!("{}:2,S", b.name));
        fs::rename(&b.path, &seen).unwrap();
        fs::write(md.join("new/.hidden"), b"").unwrap();
        fs::create_dir(md.join("cur/subdir")).unwrap();

        let list = list_new_and_cur(&md).unwrap();
        assert_eq!(list.len(), 2);
        let first = list.iter().find(|e| e.name == a.name).unwrap();
        assert!(first.is_new);
        assert_eq!(first.flags, "");
        assert_eq!(first.size, Some(4));
        let second = list.iter().find(|e| e.name == b.name).unwrap();
        assert!(!second.is_new);
        assert_eq!(second.flags, "S");
        assert_eq!(second.size, Some(5));
        assert_eq!(second.path, seen);
    }

    #[test]
    fn missing_maildir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(list_new_and_cur(&dir.path().join("nope")), Err(Error::Read { .. })));
    }

    proptest! {
        #[test]
        fn parse_never_panics(name in any::<String>()) {
            let n = parse_file_name(&name);
            prop_assert!(name.starts_with(n.unique));
        }

        #[test]
        fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let name = String::from_utf8_lossy(&bytes);
            let _ = parse_file_name(&name);
        }
    }
}
