//! Key-value lookup tables in Postfix's source format (what `postmap`
//! reads to build `hash:`, `lmdb:` and `texthash:` tables), read from the
//! file itself: Postern never builds a `.db` file, so `postmap` is not
//! needed, and a changed file is picked up at the next lookup.
//!
//! Format (postmap(1), access(5), canonical(5), virtual(5)):
//!
//! ```text
//! # comment
//! key   value text
//! other value that goes on
//!    on the next line     # a line starting with whitespace continues the previous one
//! ```
//!
//! Keys are case-insensitive (stored lower-cased, as postmap does without
//! `-f`); the value is the rest of the logical line with the white space
//! around it removed. A key defined twice keeps its first value and the
//! second is reported, as postmap does.
//!
//! Bounds, each an [`Error`] naming the file (and line) and what to do: a
//! file larger than [`MAX_FILE_SIZE`], a logical line longer than
//! [`MAX_LINE_LENGTH`], more than [`MAX_ENTRIES`] entries. A line without
//! a value is a warning and is skipped, as postmap warns and goes on. A
//! missing file is an error (Postfix: "open database ...: No such file"),
//! so a mistyped table name shows up as a temporary failure, never as an
//! empty table that silently lets everything through.
//!
//! The lookup orders of the Postfix tables built on these files are
//! here too: [`access_address`], [`access_domain`], [`access_client`]
//! (access(5)) and [`address_lookup`] (canonical(5), virtual(5)).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use stdx::stamp::Stamp;

use crate::Error;
use crate::extension::split_extension;

/// Largest table file read.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Longest logical line (a key, its value and its continuation lines).
pub const MAX_LINE_LENGTH: usize = 64 * 1024;

/// Most entries one table file may have.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The Postfix table types whose source file Postern reads directly.
pub const FILE_MAP_TYPES: &[&str] = &["hash", "texthash", "lmdb", "btree", "cdb", "dbm"];

/// A `type:name` table reference from a restriction list
/// (`check_sender_access hash:/etc/postern/access`) as the file to read:
/// the type must be one of [`FILE_MAP_TYPES`] (or absent: a plain file),
/// and a relative name is relative to `config_dir`. `Err` is the reason,
/// for a configuration error.
pub fn map_file(spec: &str, config_dir: &Path) -> Result<PathBuf, String> {
    let path = match spec.split_once(':') {
        Some((ty, rest))
            if !ty.is_empty() && ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            if !FILE_MAP_TYPES.contains(&ty.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "unsupported lookup table type \"{ty}:\" in \"{spec}\"; use one of {} \
                     (Postern reads the source file) or a plain file name",
                    FILE_MAP_TYPES.join(", ")
                ));
            }
            rest
        }
        _ => spec,
    };
    if path.is_empty() {
        return Err(format!("empty table name in \"{spec}\""));
    }
    Ok(config_dir.join(path))
}

/// Parses a table file. Returns the entries (keys lower-cased) and the
/// warnings (`path:line: reason`) for lines that were skipped. Never
/// panics; the bounds above are errors.
pub fn parse_map(
    text: &[u8],
    path: &Path,
) -> Result<(HashMap<String, String>, Vec<String>), Error> {
    let mut entries = HashMap::new();
    let mut warnings = Vec::new();
    let mut logical: Option<(usize, Vec<u8>)> = None;
    let finish = |line: Option<(usize, Vec<u8>)>,
                  entries: &mut HashMap<String, String>,
                  warnings: &mut Vec<String>|
     -> Result<(), Error> {
        let Some((number, bytes)) = line else { return Ok(()) };
        let here = format!("{}:{number}", path.display());
        let Ok(text) = String::from_utf8(bytes) else {
            warnings.push(format!("{here}: line is not valid UTF-8, ignored"));
            return Ok(());
        };
        if text.contains('\0') {
            warnings.push(format!("{here}: line contains a NUL byte, ignored"));
            return Ok(());
        }
        let text = text.trim();
        let Some((key, value)) = text.split_once(|c: char| c.is_ascii_whitespace()) else {
            warnings.push(format!("{here}: expected format: key whitespace value, line ignored"));
            return Ok(());
        };
        let value = value.trim();
        if value.is_empty() {
            warnings.push(format!("{here}: expected format: key whitespace value, line ignored"));
            return Ok(());
        }
        let key = key.to_lowercase();
        if entries.contains_key(&key) {
            warnings.push(format!("{here}: duplicate entry \"{key}\", ignored"));
            return Ok(());
        }
        if entries.len() >= MAX_ENTRIES {
            return Err(Error::MapLimit {
                at: here,
                what: format!(
                    "more than {MAX_ENTRIES} entries; split the table into several files \
                     and list them all in the parameter"
                ),
            });
        }
        entries.insert(key, value.to_owned());
        Ok(())
    };
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let start = raw.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(raw.len());
        let trimmed = &raw[start..];
        // Blank and comment lines neither start an entry nor end one
        // (Postfix's readlline skips them inside a continuation too).
        if trimmed.is_empty() || trimmed[0] == b'#' {
            continue;
        }
        let here = || format!("{}:{}", path.display(), index + 1);
        if start > 0
            && let Some((number, line)) = logical.as_mut()
        {
            if line.len() + 1 + trimmed.len() > MAX_LINE_LENGTH {
                return Err(line_too_long(&format!("{}:{number}", path.display())));
            }
            line.push(b' ');
            line.extend_from_slice(trimmed);
            continue;
        }
        if trimmed.len() > MAX_LINE_LENGTH {
            return Err(line_too_long(&here()));
        }
        finish(logical.take(), &mut entries, &mut warnings)?;
        logical = Some((index + 1, trimmed.to_vec()));
    }
    finish(logical.take(), &mut entries, &mut warnings)?;
    Ok((entries, warnings))
}

fn line_too_long(at: &str) -> Error {
    Error::MapLimit {
        at: at.to_owned(),
        what: format!(
            "logical line longer than {MAX_LINE_LENGTH} bytes; shorten the entry \
             (a long list of addresses can be split over several keys or files)"
        ),
    }
}

/// Reads `path` with [`stdx::fs::read_regular_bounded`], bounded by
/// [`MAX_FILE_SIZE`].
fn read_bounded(path: &Path) -> Result<(Vec<u8>, Stamp), Error> {
    use stdx::fs::BoundedReadError;
    match stdx::fs::read_regular_bounded(path, MAX_FILE_SIZE) {
        Ok((text, meta)) => Ok((text, Stamp::of(&meta))),
        Err(BoundedReadError::Io(source)) => Err(Error::MapRead { path: path.to_owned(), source }),
        Err(BoundedReadError::TooLarge(size)) => Err(Error::MapLimit {
            at: path.display().to_string(),
            what: format!(
                "file is {size} bytes, more than the limit of {MAX_FILE_SIZE}; split it into \
                 several files and list them all in the parameter"
            ),
        }),
    }
}

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    entries: HashMap<String, String>,
}

/// One table file, cached and re-read when its device, inode, size or
/// modification time changes.
#[derive(Debug)]
pub struct MapFile {
    path: PathBuf,
    cache: Mutex<Option<Loaded>>,
}

impl MapFile {
    /// The table in the file at `path`; nothing is read yet.
    pub fn new(path: PathBuf) -> MapFile {
        MapFile { path, cache: Mutex::new(None) }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value of `key` (case-insensitive), reading the file first if
    /// it changed since the last lookup.
    pub fn get(&self, key: &str) -> Result<Option<String>, Error> {
        let key = key.to_lowercase();
        // Each update replaces the whole entry, so a lock poisoned by a
        // panic elsewhere still guards a consistent value.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let meta = std::fs::symlink_metadata(&self.path)
            .map_err(|source| Error::MapRead { path: self.path.clone(), source })?;
        let fresh = cache.as_ref().is_some_and(|l| l.stamp == Stamp::of(&meta));
        if !fresh {
            let (text, stamp) = read_bounded(&self.path)?;
            let (entries, warnings) = parse_map(&text, &self.path)?;
            for w in &warnings {
                tracing::warn!("{w}");
            }
            // The stamp is the open file's: a change racing with the read
            // is seen at the next lookup.
            *cache = Some(Loaded { stamp, entries });
        }
        Ok(cache.as_ref().and_then(|l| l.entries.get(&key).cloned()))
    }
}

/// A list of tables searched in order, first match wins (a Postfix
/// parameter such as `virtual_alias_maps = hash:/a, hash:/b`).
#[derive(Debug, Default)]
pub struct Maps {
    files: Vec<MapFile>,
}

impl Maps {
    /// The tables in the files at `paths`.
    pub fn new(paths: Vec<PathBuf>) -> Maps {
        Maps { files: paths.into_iter().map(MapFile::new).collect() }
    }

    /// No table at all (the parameter is empty).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The files, in search order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(MapFile::path)
    }

    /// The first value of `key` in the tables.
    pub fn get(&self, key: &str) -> Result<Option<String>, Error> {
        for f in &self.files {
            if let Some(v) = f.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// access(5) lookups of a domain name (a HELO name, a client host name,
/// the domain of an address): the name itself, then each parent domain
/// in the `.parent` form. That is Postfix's default for `smtpd_access_maps`
/// (not in `parent_domain_matches_subdomains`): `example.com` matches
/// only example.com, `.example.com` matches its subdomains. A trailing
/// dot is ignored.
pub fn access_domain(maps: &Maps, domain: &str) -> Result<Option<String>, Error> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Ok(None);
    }
    if let Some(v) = maps.get(domain)? {
        return Ok(Some(v));
    }
    let mut rest = domain;
    while let Some(i) = rest.find('.') {
        let parent = &rest[i..];
        if parent.len() > 1
            && let Some(v) = maps.get(parent)?
        {
            return Ok(Some(v));
        }
        rest = &rest[i + 1..];
    }
    Ok(None)
}

/// access(5) lookups of an envelope address `local@domain` (the null
/// sender is looked up as the empty key, which a table cannot hold, so it
/// never matches: Postfix uses `smtpd_null_access_lookup_key` for that):
/// `user+ext@domain`, `user@domain` (the extension removed with
/// `delimiter`), the domain and its parents ([`access_domain`]),
/// `user+ext@`, `user@`.
pub fn access_address(
    maps: &Maps,
    local: &str,
    domain: Option<&str>,
    delimiter: &str,
) -> Result<Option<String>, Error> {
    let (base, ext) = split_extension(local, delimiter);
    if let Some(domain) = domain {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if let Some(v) = maps.get(&format!("{local}@{domain}"))? {
            return Ok(Some(v));
        }
        if ext.is_some()
            && let Some(v) = maps.get(&format!("{base}@{domain}"))?
        {
            return Ok(Some(v));
        }
        if let Some(v) = access_domain(maps, domain)? {
            return Ok(Some(v));
        }
    }
    if local.is_empty() {
        return Ok(None);
    }
    if let Some(v) = maps.get(&format!("{local}@"))? {
        return Ok(Some(v));
    }
    if ext.is_some()
        && let Some(v) = maps.get(&format!("{base}@"))?
    {
        return Ok(Some(v));
    }
    Ok(None)
}

/// access(5) lookups of a client: its host name and parents (skipped for
/// `unknown`), then its address: for IPv4 `1.2.3.4`, `1.2.3`, `1.2`, `1`;
/// for IPv6 the address as usually written (`2001:db8::1`), then its
/// eight groups without leading zeros with the last group dropped, one at
/// a time (`2001:db8:0:0:0:0:0`, ..., `2001`).
pub fn access_client(maps: &Maps, name: &str, addr: IpAddr) -> Result<Option<String>, Error> {
    if name != "unknown"
        && let Some(v) = access_domain(maps, name)?
    {
        return Ok(Some(v));
    }
    match addr.to_canonical() {
        IpAddr::V4(a) => {
            let o = a.octets();
            let parts = [o[0].to_string(), o[1].to_string(), o[2].to_string(), o[3].to_string()];
            for n in (1..=4).rev() {
                if let Some(v) = maps.get(&parts[..n].join("."))? {
                    return Ok(Some(v));
                }
            }
        }
        IpAddr::V6(a) => {
            if let Some(v) = maps.get(&a.to_string())? {
                return Ok(Some(v));
            }
            let groups: Vec<String> = a.segments().iter().map(|g| format!("{g:x}")).collect();
            for n in (1..8).rev() {
                if let Some(v) = maps.get(&groups[..n].join(":"))? {
                    return Ok(Some(v));
                }
            }
        }
    }
    Ok(None)
}

/// How a canonical(5) or virtual(5) lookup matched: the value, and the
/// extension the key did not include (so the caller can propagate it,
/// Postfix's `propagate_unmatched_extensions = canonical, virtual`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressMatch {
    /// The table's value.
    pub value: String,
    /// The extension that was removed to find the key, if one was.
    pub unmatched_extension: Option<String>,
    /// The key was `@domain`: the local part was not matched.
    pub domain_only: bool,
}

/// canonical(5) and virtual(5) lookups of `local@domain`, in their
/// order: `user+ext@domain`, `user@domain`; then, only when `local_domain`
/// (the domain is `$myorigin` or in `$mydestination`), `user+ext` and
/// `user`; then `@domain`.
pub fn address_lookup(
    maps: &Maps,
    local: &str,
    domain: &str,
    local_domain: bool,
    delimiter: &str,
) -> Result<Option<AddressMatch>, Error> {
    let (base, ext) = split_extension(local, delimiter);
    let hit = |value, stripped: bool| {
        Some(AddressMatch {
            value,
            unmatched_extension: if stripped { ext.map(str::to_owned) } else { None },
            domain_only: false,
        })
    };
    if let Some(v) = maps.get(&format!("{local}@{domain}"))? {
        return Ok(hit(v, false));
    }
    if ext.is_some()
        && let Some(v) = maps.get(&format!("{base}@{domain}"))?
    {
        return Ok(hit(v, true));
    }
    if local_domain {
        if let Some(v) = maps.get(local)? {
            return Ok(hit(v, false));
        }
        if ext.is_some()
            && let Some(v) = maps.get(base)?
        {
            return Ok(hit(v, true));
        }
    }
    if let Some(v) = maps.get(&format!("@{domain}"))? {
        return Ok(Some(AddressMatch { value: v, unmatched_extension: None, domain_only: true }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn table(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn source_format() {
        let text = b"# access table\n\
            Example.COM   REJECT go away\n\
            \n\
            user@x.org\tOK\n\
            list@x.org a@x.org,\n\
            \t# a comment inside a continuation\n\
            \x20 b@x.org\n\
            novalue\n\
            dup@x.org first\n\
            dup@x.org second\r\n";
        let (m, w) = parse_map(text, Path::new("/t")).unwrap();
        assert_eq!(m["example.com"], "REJECT go away");
        assert_eq!(m["user@x.org"], "OK");
        assert_eq!(m["list@x.org"], "a@x.org, b@x.org");
        assert_eq!(m["dup@x.org"], "first");
        assert_eq!(m.len(), 4);
        assert_eq!(
            w,
            [
                "/t:8: expected format: key whitespace value, line ignored",
                "/t:10: duplicate entry \"dup@x.org\", ignored"
            ]
        );
        // A continuation before any entry starts one.
        let (m, _) = parse_map(b"  k v\n", Path::new("/t")).unwrap();
        assert_eq!(m["k"], "v");
        let (m, w) = parse_map(b"\xff\xfe v\nok v\nn\0ul v\n", Path::new("/t")).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn bounds_are_errors_naming_file_and_line() {
        let long = format!("a b\nkey {}\n", "v".repeat(MAX_LINE_LENGTH));
        let e = parse_map(long.as_bytes(), Path::new("/etc/postern/virtual")).unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("/etc/postern/virtual:2: logical line longer than 65536"), "{e}");
        assert!(e.contains("shorten"), "{e}");
        let cont = format!("key v\n {}\n {}\n", "x".repeat(40_000), "y".repeat(40_000));
        let e = parse_map(cont.as_bytes(), Path::new("/t")).unwrap_err().to_string();
        assert!(e.starts_with("/t:1: logical line longer"), "{e}");
    }

    #[test]
    fn entry_cap() {
        let mut text = String::new();
        for i in 0..=MAX_ENTRIES {
            text.push_str(&format!("k{i} v\n"));
        }
        let e = parse_map(text.as_bytes(), Path::new("/t")).unwrap_err().to_string();
        assert!(e.starts_with(&format!("/t:{}: more than", MAX_ENTRIES + 1)), "{e}");
    }

    #[test]
    fn file_is_reread_when_it_changes_and_missing_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = table(d.path(), "canonical", "a x@y\n");
        let f = MapFile::new(p.clone());
        assert_eq!(f.get("A").unwrap().as_deref(), Some("x@y"));
        std::fs::write(&p, "a z@y\nb w\n").unwrap();
        // Same size and second are possible on a fast machine: force a
        // different mtime so the test does not depend on the clock.
        let t = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        assert_eq!(f.get("a").unwrap().as_deref(), Some("z@y"));
        assert_eq!(f.get("b").unwrap().as_deref(), Some("w"));
        assert_eq!(f.get("c").unwrap(), None);
        std::fs::remove_file(&p).unwrap();
        let e = f.get("a").unwrap_err().to_string();
        assert!(e.contains("canonical"), "{e}");
        let m = Maps::new(vec![d.path().join("nope")]);
        assert!(m.get("a").is_err());
    }

    #[test]
    fn map_file_names() {
        let dir = Path::new("/etc/postern");
        assert_eq!(map_file("hash:/etc/a", dir).unwrap(), Path::new("/etc/a"));
        assert_eq!(map_file("texthash:access", dir).unwrap(), Path::new("/etc/postern/access"));
        assert_eq!(map_file("lmdb:/x", dir).unwrap(), Path::new("/x"));
        assert_eq!(map_file("/plain", dir).unwrap(), Path::new("/plain"));
        let e = map_file("regexp:/etc/postern/re", dir).unwrap_err();
        assert!(e.contains("unsupported lookup table type \"regexp:\""), "{e}");
        assert!(map_file("hash:", dir).is_err());
    }

    #[test]
    fn access_lookup_order() {
        let d = tempfile::tempdir().unwrap();
        let p = table(
            d.path(),
            "access",
            "ana+x@a.org 1\nana@a.org 2\nb.org 3\n.c.org 4\nbia+y@ 5\nbia@ 6\n\
             192.0.2.7 7\n198.51 8\n2001:db8::1 9\n2001:db8:0:0:0:0:0 10\n",
        );
        let m = Maps::new(vec![p]);
        let a = |l: &str, d: Option<&str>| access_address(&m, l, d, "+").unwrap();
        assert_eq!(a("ana+x", Some("a.org")).as_deref(), Some("1"));
        assert_eq!(a("ana+z", Some("a.org")).as_deref(), Some("2"));
        assert_eq!(a("ANA", Some("a.org")).as_deref(), Some("2"));
        assert_eq!(a("zz", Some("b.org")).as_deref(), Some("3"));
        // b.org does not match its subdomains; .c.org matches only them.
        assert_eq!(a("zz", Some("x.b.org")), None);
        assert_eq!(a("zz", Some("c.org")), None);
        assert_eq!(a("zz", Some("x.y.c.org")).as_deref(), Some("4"));
        assert_eq!(a("zz", Some("b.org.")).as_deref(), Some("3"));
        assert_eq!(a("bia+y", Some("q.net")).as_deref(), Some("5"));
        assert_eq!(a("bia+q", Some("q.net")).as_deref(), Some("6"));
        assert_eq!(a("bia", None).as_deref(), Some("6"));
        assert_eq!(a("", None), None);
        let c = |n: &str, ip: &str| access_client(&m, n, ip.parse().unwrap()).unwrap();
        assert_eq!(c("unknown", "192.0.2.7").as_deref(), Some("7"));
        assert_eq!(c("unknown", "::ffff:192.0.2.7").as_deref(), Some("7"));
        assert_eq!(c("unknown", "192.0.2.8"), None);
        assert_eq!(c("unknown", "198.51.100.1").as_deref(), Some("8"));
        assert_eq!(c("mx.b.org", "10.0.0.1"), None);
        assert_eq!(c("b.org", "10.0.0.1").as_deref(), Some("3"));
        assert_eq!(c("unknown", "2001:db8::1").as_deref(), Some("9"));
        assert_eq!(c("unknown", "2001:db8::2").as_deref(), Some("10"));
        assert_eq!(access_domain(&m, "q.c.org").unwrap().as_deref(), Some("4"));
    }

    #[test]
    fn canonical_lookup_order() {
        let d = tempfile::tempdir().unwrap();
        let p =
            table(d.path(), "virtual", "ana+x@a.org 1\nana@a.org 2\nbia 3\nbia+y 4\n@a.org 5\n");
        let m = Maps::new(vec![p]);
        let l = |lp: &str, dom: &str, local: bool| {
            address_lookup(&m, lp, dom, local, "+")
                .unwrap()
                .map(|x| (x.value, x.unmatched_extension, x.domain_only))
        };
        assert_eq!(l("ana+x", "a.org", false), Some(("1".into(), None, false)));
        assert_eq!(l("ana+q", "a.org", false), Some(("2".into(), Some("q".into()), false)));
        // `user` keys only for local domains.
        assert_eq!(l("bia", "b.org", false), None);
        assert_eq!(l("bia", "b.org", true), Some(("3".into(), None, false)));
        assert_eq!(l("bia+y", "b.org", true), Some(("4".into(), None, false)));
        assert_eq!(l("bia+z", "b.org", true), Some(("3".into(), Some("z".into()), false)));
        assert_eq!(l("caio", "a.org", false), Some(("5".into(), None, true)));
        assert_eq!(l("bia", "a.org", true), Some(("3".into(), None, false)));
    }
}
