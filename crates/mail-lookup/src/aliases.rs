//! The aliases database: `/etc/aliases` in the format of aliases(5), read
//! directly (no `.db` file) and re-read whenever it changes.
//!
//! Format (Postfix aliases(5)):
//!
//! ```text
//! # comment
//! name: value1, value2,
//!     value3            # a line starting with whitespace continues the previous one
//! "quoted name": value
//! ```
//!
//! A value is one of
//! - an address (`user`, `user@example.com`, `<user@example.com>`; a leading
//!   `\` as in `\user` is accepted and dropped: Postfix needs no such escape,
//!   because local delivery treats an alias that names itself as the user);
//! - `/file/name`: mail is appended to the file (a trailing `/` means a
//!   Maildir);
//! - `|command`: the message is piped to the command; write
//!   `"|command with, commas"` to keep commas inside;
//! - `:include:/file/name`: the destinations are read from that file.
//!
//! Alias names are case-insensitive and stored lower-cased. When a name is
//! defined twice, the first definition wins and the second is reported, as
//! `postalias` does. A bad line is reported (`path:line: reason`) and
//! skipped: one typo must not take every other alias away.
//!
//! Bounds: a file larger than [`MAX_FILE_SIZE`] is refused, a logical line
//! (with its continuations) longer than [`MAX_LINE_LENGTH`] is skipped. The
//! parser never panics, whatever the bytes.
//!
//! Diagnostics: parse problems are warnings (returned, and logged with
//! `tracing::warn!` when a file is loaded for lookups); an unreadable or
//! oversized file is an [`Error`]; a missing file means "no aliases" and is
//! logged once.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use stdx::stamp::Stamp;

use crate::Error;

/// Largest aliases or `:include:` file we load.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Longest logical line (an entry with its continuation lines).
pub const MAX_LINE_LENGTH: usize = 64 * 1024;

/// One destination on the right-hand side of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AliasTarget {
    /// A local user name or a full address (`user` or `user@domain`), to be
    /// resolved again (aliases apply to local names).
    Address(String),
    /// `/file/name`: append the message to this file (a Maildir when the
    /// path ends in `/`).
    File(PathBuf),
    /// `|command`: pipe the message to this shell command (without the `|`).
    Command(String),
    /// `:include:/file/name`: read more destinations from this file.
    Include(PathBuf),
}

/// One alias as found in a file: its destinations and where it came from.
/// Local delivery needs the file's owner: commands and files named in an
/// alias run with the privileges of the aliases file's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The destinations, in file order.
    pub targets: Vec<AliasTarget>,
    /// The aliases file that defined the name.
    pub source: PathBuf,
    /// Owner uid of that file when it was read.
    pub owner_uid: u32,
    /// Owner gid of that file when it was read.
    pub owner_gid: u32,
}

/// The logical lines of `text` that can be parsed, each with its
/// `path:line` for messages; the others become warnings.
fn usable_lines(
    text: &[u8],
    continuation: bool,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for logical in logical_lines(text, continuation) {
        let here = format!("{}:{}", path.display(), logical.number);
        if logical.too_long {
            warnings.push(format!("{here}: line longer than {MAX_LINE_LENGTH} bytes, ignored"));
            continue;
        }
        let Ok(line) = String::from_utf8(logical.text) else {
            warnings.push(format!("{here}: line is not valid UTF-8, ignored"));
            continue;
        };
        if line.contains('\0') {
            warnings.push(format!("{here}: line contains a NUL byte, ignored"));
            continue;
        }
        out.push((here, line));
    }
    out
}

/// Parses an aliases file. Returns the entries (names lower-cased) and the
/// warnings, each prefixed with `path:line: `. Never panics.
pub fn parse_aliases(text: &[u8], path: &Path) -> (HashMap<String, Vec<AliasTarget>>, Vec<String>) {
    let mut entries: HashMap<String, Vec<AliasTarget>> = HashMap::new();
    let mut warnings = Vec::new();
    for (here, line) in usable_lines(text, true, path, &mut warnings) {
        let line = line.as_str();
        let Some((name, value)) = split_name(line) else {
            warnings.push(format!("{here}: need name:value pair, line ignored"));
            continue;
        };
        if name.is_empty() {
            warnings.push(format!("{here}: empty alias name, line ignored"));
            continue;
        }
        let (targets, bad) = parse_values(value);
        for reason in bad {
            warnings.push(format!("{here}: alias {name:?}: {reason}"));
        }
        if targets.is_empty() {
            warnings.push(format!("{here}: alias {name:?} has no valid destination, ignored"));
            continue;
        }
        if entries.contains_key(&name) {
            warnings.push(format!("{here}: duplicate entry {name:?}, ignored"));
            continue;
        }
        entries.insert(name, targets);
    }
    (entries, warnings)
}

/// Parses an `:include:` file: destinations separated by commas or line
/// breaks, `#` comments, the same value syntax as the right-hand side of an
/// alias. Returns the destinations and the warnings (`path:line: reason`).
pub fn parse_include(text: &[u8], path: &Path) -> (Vec<AliasTarget>, Vec<String>) {
    let mut targets = Vec::new();
    let mut warnings = Vec::new();
    for (here, line) in usable_lines(text, false, path, &mut warnings) {
        let line = line.as_str();
        let (found, bad) = parse_values(line);
        warnings.extend(bad.into_iter().map(|reason| format!("{here}: {reason}")));
        targets.extend(found);
    }
    (targets, warnings)
}

/// Reads and parses an `:include:` file (bounded by [`MAX_FILE_SIZE`]).
/// Follows no symlink in the last component.
pub fn read_include(path: &Path) -> Result<(Vec<AliasTarget>, Vec<String>), Error> {
    let (text, _meta) = read_bounded(path)?;
    Ok(parse_include(&text, path))
}

/// A logical line: a physical line plus its continuation lines, comments
/// and blank lines already removed.
struct Logical {
    /// 1-based number of the first physical line.
    number: usize,
    text: Vec<u8>,
    too_long: bool,
}

/// Drops blank lines and `#` comment lines and, with `join`, joins
/// continuation lines (those starting with space or tab) onto the line
/// before (a comment line inside a continuation does not end it, as in
/// Postfix's readlline). Include files have no continuations: each line is
/// a destination list of its own.
fn logical_lines(text: &[u8], join: bool) -> Vec<Logical> {
    let mut out: Vec<Logical> = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = trim_ascii_start(raw);
        if trimmed.is_empty() || trimmed.first() == Some(&b'#') {
            continue;
        }
        let continues = join && matches!(raw.first(), Some(b' ' | b'\t'));
        match out.last_mut() {
            Some(last) if continues => {
                if last.too_long || last.text.len() + 1 + raw.len() > MAX_LINE_LENGTH {
                    last.too_long = true;
                    last.text.clear();
                } else {
                    last.text.push(b' ');
                    last.text.extend_from_slice(trimmed);
                }
            }
            _ => {
                let too_long = trimmed.len() > MAX_LINE_LENGTH;
                out.push(Logical {
                    number: index + 1,
                    text: if too_long { Vec::new() } else { trimmed.to_vec() },
                    too_long,
                });
            }
        }
    }
    out
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Byte offsets of `sep` outside double quotes (a backslash escapes the
/// next character inside quotes), the one quoting rule of aliases(5).
/// After the last offset, `in_quotes` says whether a quote was left open.
struct Unquoted<'a> {
    chars: std::str::CharIndices<'a>,
    sep: char,
    in_quotes: bool,
    escaped: bool,
}

fn unquoted(line: &str, sep: char) -> Unquoted<'_> {
    Unquoted { chars: line.char_indices(), sep, in_quotes: false, escaped: false }
}

impl Iterator for Unquoted<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        for (i, c) in self.chars.by_ref() {
            if self.escaped {
                self.escaped = false;
                continue;
            }
            match c {
                '\\' if self.in_quotes => self.escaped = true,
                '"' => self.in_quotes = !self.in_quotes,
                c if c == self.sep && !self.in_quotes => return Some(i),
                _ => {}
            }
        }
        None
    }
}

/// Splits `name: value` at the first colon outside double quotes. The name
/// is unquoted and lower-cased.
fn split_name(line: &str) -> Option<(String, &str)> {
    let i = unquoted(line, ':').next()?;
    let name = line[..i].trim();
    let name = unquote(name).unwrap_or_else(|| name.to_owned());
    Some((name.to_lowercase(), &line[i + 1..]))
}

/// `"text"` to `text` (with `\x` to `x`); `None` if `s` is not one whole
/// quoted string.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            // An unescaped quote inside means this was not one quoted string
            // (`"a" x "b"`).
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Splits a value list at commas outside double quotes and classifies each
/// element. Returns the destinations and the reasons for rejected ones.
fn parse_values(value: &str) -> (Vec<AliasTarget>, Vec<String>) {
    let mut targets = Vec::new();
    let mut bad = Vec::new();
    let mut start = 0;
    let mut pieces = Vec::new();
    let mut commas = unquoted(value, ',');
    for i in commas.by_ref() {
        pieces.push(&value[start..i]);
        start = i + 1;
    }
    pieces.push(&value[start..]);
    if commas.in_quotes {
        bad.push("unbalanced double quote".to_owned());
        return (targets, bad);
    }
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        match classify(piece) {
            Ok(target) => {
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            Err(reason) => bad.push(format!("{reason}: {piece:?} ignored")),
        }
    }
    (targets, bad)
}

/// What one value means (Postfix local/token.c: `:include:`, `|`, `/`, else
/// an address).
fn classify(piece: &str) -> Result<AliasTarget, &'static str> {
    // A wholly quoted value is unquoted first, so `"|cmd, arg"` and
    // `"/path with space"` work; `"joe smith"@example.com` stays an address.
    let text = match unquote(piece) {
        Some(inner) => inner,
        None => piece.to_owned(),
    };
    let text = text.trim();
    if text.len() >= 9 && text.as_bytes()[..9].eq_ignore_ascii_case(b":include:") {
        let file = text[9..].trim();
        if !file.starts_with('/') {
            return Err(":include: needs an absolute path");
        }
        return Ok(AliasTarget::Include(PathBuf::from(file)));
    }
    if let Some(command) = text.strip_prefix('|') {
        let command = command.trim();
        if command.is_empty() {
            return Err("empty command");
        }
        return Ok(AliasTarget::Command(command.to_owned()));
    }
    if text.starts_with('/') {
        return Ok(AliasTarget::File(PathBuf::from(text)));
    }
    let address = text.strip_prefix('\\').unwrap_or(text);
    let address = match address.strip_prefix('<') {
        Some(rest) => rest.strip_suffix('>').ok_or("unbalanced angle bracket")?,
        None => address,
    };
    if address.is_empty() {
        return Err("empty address");
    }
    // A quoted local part may hold spaces; anything else may not.
    if !piece.starts_with('"') && address.chars().any(char::is_whitespace) {
        return Err("address contains white space");
    }
    if address.chars().any(char::is_control) {
        return Err("address contains a control character");
    }
    if address.starts_with('@') || address.ends_with('@') {
        return Err("malformed address");
    }
    Ok(AliasTarget::Address(address.to_owned()))
}

/// Reads `path` with [`stdx::fs::read_regular_bounded`], bounded by
/// [`MAX_FILE_SIZE`].
fn read_bounded(path: &Path) -> Result<(Vec<u8>, Metadata), Error> {
    use stdx::fs::BoundedReadError;
    stdx::fs::read_regular_bounded(path, MAX_FILE_SIZE).map_err(|e| match e {
        BoundedReadError::Io(source) => Error::AliasesRead { path: path.to_owned(), source },
        BoundedReadError::TooLarge(size) => {
            Error::AliasesTooLarge { path: path.to_owned(), size, limit: MAX_FILE_SIZE }
        }
    })
}

/// What we know about one file of the list.
#[derive(Debug)]
enum Cached {
    /// Not looked at yet.
    Unknown,
    /// The file does not exist (already logged).
    Missing,
    /// Parsed contents of one version of the file.
    Loaded(Box<Loaded>),
}

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    uid: u32,
    gid: u32,
    entries: HashMap<String, Vec<AliasTarget>>,
    warnings: Vec<String>,
}

/// The aliases files named by `alias_maps`, searched in order, each cached
/// and re-read when its device, inode, size or modification time changes
/// (so `newaliases` is not needed, though harmless).
#[derive(Debug)]
pub struct Aliases {
    paths: Vec<PathBuf>,
    cache: Mutex<Vec<Cached>>,
}

impl Aliases {
    /// The files at `paths`, first match wins; nothing is read yet.
    pub fn new(paths: Vec<PathBuf>) -> Aliases {
        let cache = paths.iter().map(|_| Cached::Unknown).collect();
        Aliases { paths, cache: Mutex::new(cache) }
    }

    /// The files searched, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The destinations of alias `name` (case-insensitive), from the first
    /// file that defines it; `Ok(None)` if no file does.
    pub fn lookup(&self, name: &str) -> Result<Option<Vec<AliasTarget>>, Error> {
        Ok(self.lookup_entry(name)?.map(|alias| alias.targets))
    }

    /// Like [`Aliases::lookup`], also telling which file defined the alias
    /// and who owns it.
    pub fn lookup_entry(&self, name: &str) -> Result<Option<Alias>, Error> {
        let key = name.to_lowercase();
        // A panic while holding the lock cannot leave an entry half
        // updated (each is replaced whole), so a poisoned lock is usable.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        for (path, slot) in self.paths.iter().zip(cache.iter_mut()) {
            refresh(path, slot, true)?;
            if let Cached::Loaded(loaded) = slot
                && let Some(targets) = loaded.entries.get(&key)
            {
                return Ok(Some(Alias {
                    targets: targets.clone(),
                    source: path.clone(),
                    owner_uid: loaded.uid,
                    owner_gid: loaded.gid,
                }));
            }
        }
        Ok(None)
    }

    /// Reads every file now (for `newaliases`) and returns the number of
    /// entries and all warnings. A missing file is an error here: the
    /// operator asked to check it.
    pub fn check(&self) -> Result<(usize, Vec<String>), Error> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut count = 0;
        let mut warnings = Vec::new();
        for (path, slot) in self.paths.iter().zip(cache.iter_mut()) {
            // Always read afresh: a check must see the file as it is.
            *slot = Cached::Unknown;
            refresh(path, slot, false)?;
            if let Cached::Loaded(loaded) = slot {
                count += loaded.entries.len();
                warnings.extend(loaded.warnings.iter().cloned());
            }
        }
        Ok((count, warnings))
    }
}

/// Brings one cache slot up to date with the file at `path`. With
/// `missing_ok`, a file that does not exist means no aliases (logged once
/// until it appears again); otherwise it is an error.
fn refresh(path: &Path, slot: &mut Cached, missing_ok: bool) -> Result<(), Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound && missing_ok => {
            if !matches!(slot, Cached::Missing) {
                tracing::warn!(file = %path.display(), "aliases file not found, no aliases from it");
                *slot = Cached::Missing;
            }
            return Ok(());
        }
        Err(source) => return Err(Error::AliasesRead { path: path.to_owned(), source }),
    };
    if let Cached::Loaded(loaded) = slot
        && loaded.stamp == Stamp::of(&meta)
    {
        return Ok(());
    }
    let (text, meta) = read_bounded(path)?;
    let (entries, warnings) = parse_aliases(&text, path);
    if missing_ok {
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
    }
    // The stamp comes from the open file, so a change racing with this read
    // is seen at the next lookup.
    *slot = Cached::Loaded(Box::new(Loaded {
        stamp: Stamp::of(&meta),
        uid: meta.uid(),
        gid: meta.gid(),
        entries,
        warnings,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::time::{Duration, SystemTime};

    fn addr(s: &str) -> AliasTarget {
        AliasTarget::Address(s.to_owned())
    }

    #[test]
    fn parses_the_usual_forms() {
        let text = b"\
# /etc/aliases
postmaster: root
MAILER-DAEMON:\tpostmaster
root: suporte, \\suporte, <admin@example.org>
lista: ana@example.com,
  bia@example.com
\t# comment inside a continuation
  , caio
log: /var/log/mail-copy, /home/x/Maildir/
prog: |/usr/bin/vacation suporte
quoted: \"|/usr/bin/procmail -a x, y\", \"/path with space\"
inc: :include:/etc/mail/team
\"Odd Name\": suporte
";
        let (map, warnings) = parse_aliases(text, Path::new("/etc/aliases"));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(map["postmaster"], [addr("root")]);
        assert_eq!(map["mailer-daemon"], [addr("postmaster")]);
        // `\suporte` is the same destination as `suporte`: kept once.
        assert_eq!(map["root"], [addr("suporte"), addr("admin@example.org")]);
        assert_eq!(map["lista"], [addr("ana@example.com"), addr("bia@example.com"), addr("caio")]);
        assert_eq!(
            map["log"],
            [
                AliasTarget::File("/var/log/mail-copy".into()),
                AliasTarget::File("/home/x/Maildir/".into())
            ]
        );
        assert_eq!(map["prog"], [AliasTarget::Command("/usr/bin/vacation suporte".into())]);
        assert_eq!(
            map["quoted"],
            [
                AliasTarget::Command("/usr/bin/procmail -a x, y".into()),
                AliasTarget::File("/path with space".into())
            ]
        );
        assert_eq!(map["inc"], [AliasTarget::Include("/etc/mail/team".into())]);
        assert_eq!(map["odd name"], [addr("suporte")]);
        assert_eq!(map.len(), 9);
    }

    #[test]
    fn bad_lines_are_reported_with_path_and_line() {
        let text = b"\
ok: a
no colon here
: nobody
dup: a
DUP: b
empty:
bad: two words, \"unbalanced
inc: :include:relative
mixed: x y, good
latin: \xe9
";
        let (map, warnings) = parse_aliases(text, Path::new("al"));
        assert_eq!(map.len(), 3, "{map:?}");
        assert_eq!(map["dup"], [addr("a")]);
        assert_eq!(map["mixed"], [addr("good")]);
        let all = warnings.join("\n");
        for needle in [
            "al:2: need name:value",
            "al:3: empty alias name",
            "al:5: duplicate entry \"dup\"",
            "al:6: alias \"empty\" has no valid destination",
            "al:7: alias \"bad\": unbalanced double quote",
            "al:8: alias \"inc\": :include: needs an absolute path",
            "al:9: alias \"mixed\": address contains white space",
            "al:10: line is not valid UTF-8",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn long_lines_are_bounded() {
        let mut text = format!("big: {}\n", "a".repeat(MAX_LINE_LENGTH)).into_bytes();
        text.extend_from_slice(b"cont: a\n");
        for _ in 0..(MAX_LINE_LENGTH / 1000 + 2) {
            text.extend_from_slice(format!(" ,{}\n", "b".repeat(998)).as_bytes());
        }
        text.extend_from_slice(b"after: c\n");
        let (map, warnings) = parse_aliases(&text, Path::new("al"));
        assert_eq!(map.len(), 1);
        assert_eq!(map["after"], [addr("c")]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn include_files() {
        let (targets, warnings) = parse_include(
            b"# team\nana, bia\n\ncaio@example.com\n|/bin/true\n  /tmp/f\n",
            Path::new("t"),
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            targets,
            [
                addr("ana"),
                addr("bia"),
                addr("caio@example.com"),
                AliasTarget::Command("/bin/true".into()),
                AliasTarget::File("/tmp/f".into())
            ]
        );
    }

    fn write_file(path: &Path, text: &str, mtime: SystemTime) {
        let mut f = std::fs::File::create(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.set_modified(mtime).unwrap();
    }

    #[test]
    fn lookup_searches_files_in_order_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("aliases");
        let second = dir.path().join("more");
        let missing = dir.path().join("missing");
        let t0 = SystemTime::now() - Duration::from_secs(100);
        write_file(&first, "root: suporte\n", t0);
        write_file(&second, "root: other\nwww: ana\n", t0);
        let aliases = Aliases::new(vec![missing.clone(), first.clone(), second.clone()]);
        assert_eq!(aliases.paths().len(), 3);
        assert_eq!(aliases.lookup("ROOT").unwrap(), Some(vec![addr("suporte")]));
        assert_eq!(aliases.lookup("www").unwrap(), Some(vec![addr("ana")]));
        assert_eq!(aliases.lookup("nobody-here").unwrap(), None);
        let entry = aliases.lookup_entry("www").unwrap().unwrap();
        assert_eq!(entry.source, second);
        assert_eq!(entry.owner_uid, nix::unistd::geteuid().as_raw());

        // Edited in place, same size: mtime tells.
        write_file(&first, "root: suport2\n", t0 + Duration::from_secs(1));
        assert_eq!(aliases.lookup("root").unwrap(), Some(vec![addr("suport2")]));
        // The missing file appears.
        write_file(&missing, "root: first\n", t0);
        assert_eq!(aliases.lookup("root").unwrap(), Some(vec![addr("first")]));

        // check() counts every file and fails on a missing one.
        assert_eq!(aliases.check().unwrap(), (4, vec![]));
        std::fs::remove_file(&missing).unwrap();
        let err = aliases.check().unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        // ... while lookups go on without it.
        assert_eq!(aliases.lookup("root").unwrap(), Some(vec![addr("suport2")]));
    }

    #[test]
    fn check_reports_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        write_file(&path, "a: b\nbroken\n", SystemTime::now());
        let (count, warnings) = Aliases::new(vec![path]).check().unwrap();
        assert_eq!(count, 1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("aliases:2:"), "{warnings:?}");
    }

    #[test]
    fn symlinks_and_oversize_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        write_file(&real, "a: b\n", SystemTime::now());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(Aliases::new(vec![link]).lookup("a"), Err(Error::AliasesRead { .. })));
        let big = dir.path().join("big");
        std::fs::File::create(&big).unwrap().set_len(MAX_FILE_SIZE + 1).unwrap();
        assert!(matches!(
            Aliases::new(vec![big.clone()]).lookup("a"),
            Err(Error::AliasesTooLarge { .. })
        ));
        assert!(matches!(read_include(&big), Err(Error::AliasesTooLarge { .. })));
        // "a: b" is no destination in an include file.
        let (targets, warnings) = read_include(&real).unwrap();
        assert!(targets.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse_aliases(&bytes, Path::new("fuzz"));
            let _ = parse_include(&bytes, Path::new("fuzz"));
        }

        #[test]
        fn structured_text_gives_sane_entries(text in "[a-zA-Z0-9:|/\"\\\\,<>@ \\t\\r\\n#.-]{0,400}") {
            let (map, _) = parse_aliases(text.as_bytes(), Path::new("fuzz"));
            for (name, targets) in &map {
                prop_assert_eq!(name, &name.to_lowercase());
                prop_assert!(!targets.is_empty());
            }
        }
    }
}
