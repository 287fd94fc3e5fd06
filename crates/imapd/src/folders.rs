//! IMAP mailbox names on a Maildir++ tree: `INBOX` is the Maildir
//! itself, every other name `N` the folder directory `.N` in it, with `.`
//! as the hierarchy separator (Dovecot's and Courier's layout, no
//! namespace prefix, as Dovecot's default). Names travel in modified
//! UTF-7 and are stored so on disk, as Courier and Dovecot store them.
//!
//! A name is checked before it becomes a path: printable ASCII only (so
//! no `/`, no control characters, no NUL), no empty hierarchy level, no
//! leading `.` (no `..`): it can never leave the user's Maildir.
//!
//! Severities: none; errors are the text of the tagged NO.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The hierarchy separator.
pub(crate) const SEP: char = '.';

/// The subscriptions file, Courier's and Dovecot's name for it.
const SUBSCRIPTIONS: &str = "subscriptions";

/// A name the client gave, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    Inbox,
    Folder(String),
}

impl Name {
    /// Parses a wire name (`INBOX` in any case is INBOX).
    pub(crate) fn parse(raw: &[u8]) -> Result<Name, &'static str> {
        let s = std::str::from_utf8(raw).map_err(|_| "Invalid mailbox name")?;
        if s.eq_ignore_ascii_case("INBOX") {
            return Ok(Name::Inbox);
        }
        if s.is_empty() || s.len() > 200 {
            return Err("Invalid mailbox name");
        }
        if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) || s.contains('/') || s.contains('\\') {
            return Err("Invalid mailbox name");
        }
        if s.starts_with(SEP) || s.ends_with(SEP) || s.contains("..") {
            return Err("Invalid mailbox name");
        }
        if s.contains('*') || s.contains('%') {
            return Err("Invalid mailbox name");
        }
        if mail_maildir::validate_folder_name(s).is_err() {
            return Err("Invalid mailbox name");
        }
        Ok(Name::Folder(s.to_owned()))
    }

    /// The name as the client sees it.
    pub(crate) fn display(&self) -> &str {
        match self {
            Name::Inbox => "INBOX",
            Name::Folder(s) => s,
        }
    }

    /// Its directory.
    pub(crate) fn dir(&self, root: &Path) -> PathBuf {
        match self {
            Name::Inbox => root.to_owned(),
            Name::Folder(s) => root.join(format!(".{s}")),
        }
    }
}

/// Whether `dir` is a Maildir (has `cur/`).
pub(crate) fn exists(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join("cur")).is_ok_and(|m| m.is_dir())
}

/// The folders on disk (INBOX not included), sorted.
pub(crate) fn folders(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else { return out };
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else { continue };
        let Some(folder) = name.strip_prefix('.') else { continue };
        if folder.is_empty() || folder == "." || Name::parse(folder.as_bytes()).is_err() {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) && exists(&e.path()) {
            out.push(folder.to_owned());
        }
    }
    out.sort();
    out
}

/// The SPECIAL-USE attribute (RFC 6154) `imap_special_use` gives a
/// folder name.
fn special_use(map: &mail_maildir::SpecialUseMap, name: &str) -> Option<&'static str> {
    let name = mail_maildir::FolderName::from_imap(name, false).ok()?;
    map.get(&name).map(mail_maildir::SpecialUse::as_imap)
}

/// One LIST answer line's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) attributes: Vec<&'static str>,
}

/// Every mailbox (INBOX, folders, and the parents a folder implies
/// without existing) with its attributes.
pub(crate) fn all(root: &Path, specials: &mail_maildir::SpecialUseMap) -> Vec<Listed> {
    let existing = folders(root);
    let mut map: BTreeMap<String, bool> = BTreeMap::new();
    for f in &existing {
        map.insert(f.clone(), true);
        let mut at = 0;
        while let Some(i) = f[at..].find(SEP) {
            map.entry(f[..at + i].to_owned()).or_insert(false);
            at += i + 1;
        }
    }
    let has_children = |name: &str| {
        let prefix = format!("{name}{SEP}");
        map.keys().any(|k| k.starts_with(&prefix))
    };
    let mut out = vec![Listed {
        name: "INBOX".into(),
        attributes: vec![if has_children("INBOX") { "\\HasChildren" } else { "\\HasNoChildren" }],
    }];
    for (name, real) in &map {
        if name.eq_ignore_ascii_case("INBOX") {
            continue;
        }
        let mut attributes = Vec::new();
        if !real {
            attributes.push("\\NonExistent");
            attributes.push("\\Noselect");
        }
        attributes.push(if has_children(name) { "\\HasChildren" } else { "\\HasNoChildren" });
        if *real && let Some(u) = special_use(specials, name) {
            attributes.push(u);
        }
        out.push(Listed { name: name.clone(), attributes });
    }
    out
}

/// RFC 3501 §6.3.8 matching: `*` matches anything, `%` anything but the
/// separator. INBOX matches case-insensitively.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((b'%', rest)) => {
                let stop = n.iter().position(|&b| b == SEP as u8).unwrap_or(n.len());
                (0..=stop).any(|i| go(rest, &n[i..]))
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    if name == "INBOX" {
        return go(pattern.to_ascii_uppercase().as_bytes(), name.as_bytes());
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// The subscribed names, from the `subscriptions` file.
pub(crate) fn subscriptions(root: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(root.join(SUBSCRIPTIONS)) else { return Vec::new() };
    let mut v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && Name::parse(l.as_bytes()).is_ok())
        .map(str::to_owned)
        .take(10_000)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Rewrites the subscriptions file (atomically) with `name` added or
/// removed.
pub(crate) fn subscribe(root: &Path, name: &str, on: bool) -> Result<(), String> {
    let mut v = subscriptions(root);
    v.retain(|n| n != name);
    if on {
        v.push(name.to_owned());
        v.sort();
    }
    let mut text = v.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let path = root.join(SUBSCRIPTIONS);
    let tmp = root.join(format!("{SUBSCRIPTIONS}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_leave_the_maildir() {
        for bad in [
            &b".."[..],
            b"../x",
            b"/etc",
            b"a/b",
            b"a..b",
            b".hidden",
            b"a.",
            b"tab\there",
            b"nul\0",
            b"",
            b"\xff",
            b"a*",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Name::parse(b"inbox"), Ok(Name::Inbox));
        assert_eq!(Name::parse(b"Lists.rust"), Ok(Name::Folder("Lists.rust".into())));
        assert_eq!(
            Name::parse(b"Lists.rust").unwrap().dir(Path::new("/m")),
            Path::new("/m/.Lists.rust")
        );
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "a.b"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a.b"));
        assert!(matches("a.%", "a.b"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("In%", "INBOX"));
        assert!(!matches("b*", "a"));
    }

    #[test]
    fn parents_without_a_directory_are_listed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("Maildir");
        mail_maildir::make(&root).unwrap();
        mail_maildir::make_folder(&root, "Lists.rust").unwrap();
        mail_maildir::make_folder(&root, "Enviados").unwrap();
        let map = mail_maildir::SpecialUseMap::parse(mail_maildir::DEFAULT_SPECIAL_USE).unwrap();
        let all = all(&root, &map);
        let names: Vec<_> = all.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["INBOX", "Enviados", "Lists", "Lists.rust"]);
        assert_eq!(all[1].attributes, ["\\HasNoChildren", "\\Sent"]);
        assert_eq!(all[2].attributes, ["\\NonExistent", "\\Noselect", "\\HasChildren"]);
    }
}
