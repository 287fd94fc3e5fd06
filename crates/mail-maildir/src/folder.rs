//! A user's Maildir++ store: the root Maildir (INBOX) and its `.Name`
//! folders, with IMAP names, listing, create/delete/rename and
//! subscriptions.
//!
//! Layout (Courier's and Dovecot's Maildir++): the folder `Lists.rust` is
//! the directory `.Lists.rust` in the root; `.` separates hierarchy levels,
//! so a level can never hold a `.`. Directory names are the folder name in
//! IMAP's modified UTF-7 ([`crate::mutf7`]), as both servers write them, so
//! `.Itens Exclu&AO0-dos` lists as `Itens Excluídos`. A parent that has no
//! directory of its own (`.a.b` without `.a`) exists only by its children:
//! it lists with `\Noselect` and cannot be opened, as Dovecot shows it.
//!
//! Names come from clients and from disk, so [`FolderName`] is the only way
//! to name a folder here, and it cannot hold anything that would leave the
//! root: no `/`, no empty level (so no `..` and no leading or trailing
//! `.`), no control character, bounded length and depth.
//!
//! Deleting renames the directory to a hidden `..postern-deleted.*` name
//! first and removes that (never following a symlink), so a deletion cut
//! short leaves nothing that lists as a folder. Subscriptions are
//! Dovecot's `subscriptions` file (one name per line in modified UTF-7;
//! Dovecot's version 2 form, tab-separated levels after a `V\t2` header,
//! is read too), merged with Courier's `courierimapsubscribed`
//! (`INBOX.`-prefixed names) when that exists, and updated under an
//! `flock` so that two sessions subscribing at once both count.
//!
//! Diagnostics: every failure is an [`Error`]; nothing here panics on what
//! it finds on disk, and entries it cannot read as folders are left out of
//! the listing.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::mailbox::{MailboxOptions, lock_file_at};
use crate::{Error, Mailbox, layout, mutf7};

/// The most levels a folder name may have.
pub const MAX_FOLDER_DEPTH: usize = 32;
/// The longest folder name in UTF-8 bytes (the directory name, in
/// modified UTF-7 and with its dot, must also fit in 255 bytes).
pub const MAX_FOLDER_NAME_BYTES: usize = 200;
/// The most folders a store lists; beyond it listing is an
/// [`Error::TooMany`].
pub const MAX_FOLDERS: usize = 10_000;
/// The largest subscriptions file read.
const MAX_SUBSCRIPTIONS_BYTES: u64 = 1024 * 1024;
/// Dovecot's subscriptions file.
const SUBSCRIPTIONS: &str = "subscriptions";
/// Courier-IMAP's subscriptions file.
const COURIER_SUBSCRIPTIONS: &str = "courierimapsubscribed";
/// Serialises subscription updates.
const SUBSCRIPTIONS_LOCK: &str = "postern-subscriptions.lock";
/// Prefix of a folder being deleted (never a valid folder directory: its
/// name would start with a dot).
const DELETED_PREFIX: &str = "..postern-deleted.";

/// A valid folder name, in UTF-8 with `.` between levels; `INBOX` (any
/// case on input) is the root Maildir.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderName(String);

impl FolderName {
    /// The name of the root Maildir.
    pub fn inbox() -> FolderName {
        FolderName("INBOX".to_owned())
    }

    /// Checks a UTF-8 name (see the module documentation for the rules).
    /// A first level spelt `inbox` in any case becomes `INBOX`.
    pub fn new(name: &str) -> Result<FolderName, Error> {
        let bad = |reason| Err(Error::FolderName { name: name.to_owned(), reason });
        if name.is_empty() {
            return bad("empty name");
        }
        if name.len() > MAX_FOLDER_NAME_BYTES {
            return bad("name too long");
        }
        if name.chars().any(char::is_control) {
            return bad("contains a control character");
        }
        if name.contains('/') {
            return bad("contains '/'");
        }
        if name.contains(['%', '*']) {
            return bad("contains an IMAP wildcard");
        }
        let mut levels: Vec<&str> = name.split('.').collect();
        if levels.iter().any(|l| l.is_empty()) {
            return bad("empty hierarchy level");
        }
        if levels.len() > MAX_FOLDER_DEPTH {
            return bad("too many hierarchy levels");
        }
        if levels[0].eq_ignore_ascii_case("INBOX") {
            levels[0] = "INBOX";
        }
        let canonical = FolderName(levels.join("."));
        if let Some(dir) = canonical.dir_name()
            && dir.len() > 255
        {
            return bad("name too long");
        }
        Ok(canonical)
    }

    /// A name as an IMAP client sent it: modified UTF-7 unless the session
    /// has UTF-8 names (IMAP4rev2, or `ENABLE UTF8=ACCEPT`).
    pub fn from_imap(wire: &str, utf8: bool) -> Result<FolderName, Error> {
        if utf8 {
            return FolderName::new(wire);
        }
        match mutf7::decode(wire) {
            Some(text) => FolderName::new(&text),
            None => Err(Error::FolderName { name: wire.to_owned(), reason: "bad modified UTF-7" }),
        }
    }

    /// The name for an IMAP client: modified UTF-7 unless `utf8`.
    pub fn to_imap(&self, utf8: bool) -> String {
        if utf8 { self.0.clone() } else { mutf7::encode(&self.0) }
    }

    /// The name in UTF-8.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is INBOX itself.
    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The levels, outermost first.
    pub fn levels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// The name one level up, if any (`a.b` → `a`).
    pub fn parent(&self) -> Option<FolderName> {
        self.0.rsplit_once('.').map(|(p, _)| FolderName(p.to_owned()))
    }

    /// Whether `self` is below `other` (`a.b.c` is below `a` and `a.b`).
    pub fn is_below(&self, other: &FolderName) -> bool {
        self.0.len() > other.0.len()
            && self.0.starts_with(&other.0)
            && self.0.as_bytes()[other.0.len()] == b'.'
    }

    /// The directory name in the root (`.` and the modified UTF-7 name);
    /// `None` for INBOX, which is the root itself.
    pub fn dir_name(&self) -> Option<String> {
        (!self.is_inbox()).then(|| format!(".{}", mutf7::encode(&self.0)))
    }

    /// The folder a directory name in the root stands for, if it is one
    /// written the way [`FolderName::dir_name`] writes it.
    fn from_dir_name(dir: &str) -> Option<FolderName> {
        let wire = dir.strip_prefix('.')?;
        let name = FolderName::new(&mutf7::decode(wire)?).ok()?;
        (name.dir_name().as_deref() == Some(dir)).then_some(name)
    }
}

impl std::fmt::Debug for FolderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FolderName({:?})", self.0)
    }
}

impl std::fmt::Display for FolderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One folder of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    /// Its name.
    pub name: FolderName,
    /// Whether it has a directory of its own and can be opened; `false`
    /// for a parent that exists only by its children (IMAP `\Noselect`,
    /// and `\NonExistent` for LIST-EXTENDED).
    pub selectable: bool,
    /// Whether some folder is below it (`\HasChildren`, else
    /// `\HasNoChildren`).
    pub has_children: bool,
}

/// A user's Maildir++ store, rooted at their Maildir (INBOX). Opening one
/// touches nothing; each method reads the disk afresh, so two sessions
/// see each other's creations at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    options: MailboxOptions,
}

impl Store {
    /// The store whose INBOX is the Maildir `root`, with mailboxes opened
    /// with [`MailboxOptions::default`].
    pub fn new(root: &Path) -> Store {
        Store::with_options(root, MailboxOptions::default())
    }

    /// [`Store::new`] with the options [`Store::open`] passes to
    /// [`Mailbox::open_with`].
    pub fn with_options(root: &Path, options: MailboxOptions) -> Store {
        Store { root: layout::normalize(root), options }
    }

    /// The root Maildir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a folder (whether or not it exists).
    pub fn path_of(&self, name: &FolderName) -> PathBuf {
        match name.dir_name() {
            Some(dir) => self.root.join(dir),
            None => self.root.clone(),
        }
    }

    /// Whether the folder can be opened: INBOX always can (it is created
    /// when missing); another folder when its directory exists.
    pub fn exists(&self, name: &FolderName) -> Result<bool, Error> {
        if name.is_inbox() {
            return Ok(true);
        }
        let path = self.path_of(name);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// Opens a folder's mailbox; [`Error::NoFolder`] when it does not
    /// exist (INBOX is created when missing).
    pub fn open(&self, name: &FolderName) -> Result<Mailbox, Error> {
        if !self.exists(name)? {
            return Err(Error::NoFolder { name: name.to_string() });
        }
        Mailbox::open_with(&self.path_of(name), self.options.clone())
    }

    /// Every folder, INBOX first and the rest by name, with the parents
    /// that exist only by their children.
    pub fn list(&self) -> Result<Vec<FolderInfo>, Error> {
        let mut real = BTreeSet::new();
        let listing = match fs::read_dir(&self.root) {
            Ok(l) => Some(l),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(Error::Read { path: self.root.clone(), source }),
        };
        for item in listing.into_iter().flatten() {
            let item = item.map_err(|source| Error::Read { path: self.root.clone(), source })?;
            let os = item.file_name();
            let Some(dir) = os.to_str() else { continue };
            if !dir.starts_with('.') || dir == "." || dir == ".." {
                continue;
            }
            // Directories only, and never through a symlink.
            match item.file_type() {
                Ok(t) if t.is_dir() => {}
                _ => continue,
            }
            if let Some(name) = FolderName::from_dir_name(dir) {
                if real.len() >= MAX_FOLDERS {
                    return Err(Error::TooMany { path: self.root.clone(), limit: MAX_FOLDERS });
                }
                real.insert(name);
            }
        }
        let mut all: BTreeSet<FolderName> = real.clone();
        for name in &real {
            let mut at = name.parent();
            while let Some(p) = at {
                at = p.parent();
                all.insert(p);
            }
        }
        let mut out = vec![FolderInfo {
            name: FolderName::inbox(),
            selectable: true,
            has_children: all.iter().any(|n| n.is_below(&FolderName::inbox())),
        }];
        for name in &all {
            if name.is_inbox() {
                continue;
            }
            let has_children = all
                .range(name.clone()..)
                .skip(1)
                .take_while(|n| n.0.starts_with(&name.0))
                .any(|n| n.is_below(name));
            out.push(FolderInfo {
                name: name.clone(),
                selectable: real.contains(name),
                has_children,
            });
        }
        Ok(out)
    }

    /// Creates a folder: its `tmp/`, `new/`, `cur/` and `maildirfolder`,
    /// mode 0700. Parents are not created (they exist by their children).
    /// [`Error::FolderExists`] if it exists, INBOX included. A trailing
    /// separator in an IMAP CREATE is the caller's to strip.
    pub fn create(&self, name: &FolderName) -> Result<(), Error> {
        if name.is_inbox() || self.exists(name)? {
            return Err(Error::FolderExists { name: name.to_string() });
        }
        layout::prepare(&self.root)?;
        let wire = mutf7::encode(name.as_str());
        match layout::make_folder(&self.root, &wire) {
            Ok(_) => Ok(()),
            Err(Error::Create { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Err(Error::FolderExists { name: name.to_string() })
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes a folder and its messages, not the folders below it (which
    /// stay, the deleted one then listing as `\Noselect`, as in Dovecot).
    /// INBOX cannot be deleted ([`Error::NotPermitted`]); a folder without
    /// a directory of its own is [`Error::NoFolder`].
    pub fn delete(&self, name: &FolderName) -> Result<(), Error> {
        if name.is_inbox() {
            return Err(Error::NotPermitted {
                name: name.to_string(),
                reason: "INBOX cannot be deleted",
            });
        }
        if !self.exists(name)? {
            return Err(Error::NoFolder { name: name.to_string() });
        }
        let from = self.path_of(name);
        let hidden = self.root.join(format!("{DELETED_PREFIX}{}", unique_suffix()));
        fs::rename(&from, &hidden).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                Error::NoFolder { name: name.to_string() }
            } else {
                Error::Link { from: from.clone(), to: hidden.clone(), source }
            }
        })?;
        let _ = stdx::fs::fsync_dir(&self.root);
        // The folder is gone for every reader now; what remains is hidden
        // and removed again by the next deletion if this one fails.
        remove_hidden(&self.root);
        Ok(())
    }

    /// Renames a folder and every folder below it. Renaming INBOX moves
    /// its messages (with their UIDs and index) into the new folder and
    /// leaves INBOX empty with a new UIDVALIDITY (RFC 3501 §6.3.5).
    /// [`Error::FolderExists`] when the new name, or a name one of the
    /// children would get, exists; [`Error::NotPermitted`] for a rename
    /// into its own child; [`Error::NoFolder`] when nothing has the old
    /// name.
    pub fn rename(&self, from: &FolderName, to: &FolderName) -> Result<(), Error> {
        if to.is_inbox() || self.exists(to)? {
            return Err(Error::FolderExists { name: to.to_string() });
        }
        if from.is_inbox() {
            return self.rename_inbox(to);
        }
        if to == from || to.is_below(from) {
            return Err(Error::NotPermitted {
                name: from.to_string(),
                reason: "cannot rename a folder into itself",
            });
        }
        let list = self.list()?;
        let moving: Vec<&FolderName> = list
            .iter()
            .filter(|f| f.selectable && (&f.name == from || f.name.is_below(from)))
            .map(|f| &f.name)
            .collect();
        if moving.is_empty() {
            return Err(Error::NoFolder { name: from.to_string() });
        }
        let mut plan = Vec::new();
        for old in moving {
            let new =
                FolderName::new(&format!("{}{}", to.as_str(), &old.as_str()[from.0.len()..]))?;
            if self.exists(&new)? {
                return Err(Error::FolderExists { name: new.to_string() });
            }
            plan.push((self.path_of(old), self.path_of(&new)));
        }
        for (old, new) in plan {
            // RENAME_NOREPLACE: a folder created meanwhile is not replaced.
            crate::mailbox::rename_noreplace(&old, &new).map_err(|e| {
                if e == nix::errno::Errno::EEXIST {
                    Error::FolderExists { name: to.to_string() }
                } else {
                    Error::Link { from: old.clone(), to: new.clone(), source: e.into() }
                }
            })?;
        }
        let _ = stdx::fs::fsync_dir(&self.root);
        Ok(())
    }

    fn rename_inbox(&self, to: &FolderName) -> Result<(), Error> {
        layout::prepare(&self.root)?;
        self.create(to)?;
        let dest = self.path_of(to);
        let _lock = crate::mailbox::lock_index_at(&self.root, self.options.lock_wait)?;
        for sub in ["new", "cur"] {
            let dir = self.root.join(sub);
            let listing =
                fs::read_dir(&dir).map_err(|source| Error::Read { path: dir.clone(), source })?;
            for item in listing {
                let item = item.map_err(|source| Error::Read { path: dir.clone(), source })?;
                match item.file_type() {
                    Ok(t) if t.is_file() => {}
                    _ => continue,
                }
                let target = dest.join(sub).join(item.file_name());
                match crate::mailbox::rename_noreplace(&item.path(), &target) {
                    // Moved meanwhile (flag change, expunge): it is where
                    // another process put it, still in INBOX or gone.
                    Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                    Err(e) => {
                        return Err(Error::Link {
                            from: item.path(),
                            to: target,
                            source: e.into(),
                        });
                    }
                }
            }
            let _ = stdx::fs::fsync_dir(&dest.join(sub));
            let _ = stdx::fs::fsync_dir(&dir);
        }
        // The index and keywords go along, so the messages keep their UIDs
        // and keywords; INBOX then starts again under a new UIDVALIDITY
        // (its lock file remembers that an index existed).
        for file in [crate::uidlist::INDEX_FILE, crate::keywords::KEYWORDS_FILE] {
            let (a, b) = (self.root.join(file), dest.join(file));
            match fs::rename(&a, &b) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Link { from: a, to: b, source }),
            }
        }
        let _ = stdx::fs::fsync_dir(&dest);
        let _ = stdx::fs::fsync_dir(&self.root);
        Ok(())
    }

    /// The subscribed names, sorted: Dovecot's file and Courier's merged.
    /// Names that are not valid folder names are left out.
    pub fn subscriptions(&self) -> Result<Vec<FolderName>, Error> {
        let mut names = BTreeSet::new();
        if let Some(bytes) = self.read_small(SUBSCRIPTIONS)? {
            names.extend(parse_dovecot_subscriptions(&bytes));
        }
        if let Some(bytes) = self.read_small(COURIER_SUBSCRIPTIONS)? {
            names.extend(parse_courier_subscriptions(&bytes));
        }
        Ok(names.into_iter().collect())
    }

    /// Subscribes to a name (which need not exist, RFC 3501 §6.3.6).
    pub fn subscribe(&self, name: &FolderName) -> Result<(), Error> {
        self.update_subscriptions(|set| {
            set.insert(name.clone());
        })
    }

    /// Unsubscribes from a name; not being subscribed is no error.
    pub fn unsubscribe(&self, name: &FolderName) -> Result<(), Error> {
        self.update_subscriptions(|set| {
            set.remove(name);
        })
    }

    fn update_subscriptions(
        &self,
        change: impl FnOnce(&mut BTreeSet<FolderName>),
    ) -> Result<(), Error> {
        layout::prepare(&self.root)?;
        let _lock = lock_file_at(&self.root.join(SUBSCRIPTIONS_LOCK), self.options.lock_wait)?;
        let mut set: BTreeSet<FolderName> = self.subscriptions()?.into_iter().collect();
        change(&mut set);
        let mut text = String::new();
        for name in &set {
            text.push_str(&mutf7::encode(name.as_str()));
            text.push('\n');
        }
        let path = self.root.join(SUBSCRIPTIONS);
        stdx::fs::atomic_write(&path, text.as_bytes(), 0o600)
            .map_err(|source| Error::Write { path, source })?;
        // Courier's file holds names too; one we dropped must not come
        // back from it.
        if let Some(bytes) = self.read_small(COURIER_SUBSCRIPTIONS)? {
            let courier = parse_courier_subscriptions(&bytes);
            if courier.iter().any(|n| !set.contains(n)) {
                let kept: String = String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| courier_name(l).is_none_or(|n| set.contains(&n)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let path = self.root.join(COURIER_SUBSCRIPTIONS);
                stdx::fs::atomic_write(&path, kept.as_bytes(), 0o600)
                    .map_err(|source| Error::Write { path, source })?;
            }
        }
        Ok(())
    }

    fn read_small(&self, file: &str) -> Result<Option<Vec<u8>>, Error> {
        use stdx::fs::BoundedReadError;
        let path = self.root.join(file);
        match stdx::fs::read_regular_bounded(&path, MAX_SUBSCRIPTIONS_BYTES) {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(BoundedReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // A symlink, a directory or an oversized file is not ours to
            // read: as if there were none.
            Err(BoundedReadError::Io(e))
                if matches!(e.raw_os_error(), Some(libc::ELOOP))
                    || e.kind() == io::ErrorKind::InvalidInput =>
            {
                Ok(None)
            }
            Err(BoundedReadError::TooLarge(_)) => Ok(None),
            Err(BoundedReadError::Io(source)) => Err(Error::Read { path, source }),
        }
    }
}

/// Dovecot's `subscriptions`: version 1 is one name per line; version 2
/// starts `V\t2`, then a blank line, then names with tab-separated levels.
fn parse_dovecot_subscriptions(bytes: &[u8]) -> Vec<FolderName> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines().peekable();
    let v2 = lines.peek().is_some_and(|l| l.starts_with("V\t"));
    if v2 {
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
        }
    }
    lines
        .take(MAX_FOLDERS)
        .filter_map(|l| {
            if v2 {
                FolderName::new(&l.replace('\t', ".")).ok()
            } else {
                mutf7::decode(l).and_then(|t| FolderName::new(&t).ok())
            }
        })
        .collect()
}

/// Courier's `courierimapsubscribed`: `INBOX` and `INBOX.`-prefixed names.
fn parse_courier_subscriptions(bytes: &[u8]) -> Vec<FolderName> {
    String::from_utf8_lossy(bytes).lines().take(MAX_FOLDERS).filter_map(courier_name).collect()
}

fn courier_name(line: &str) -> Option<FolderName> {
    let text = mutf7::decode(line.trim_end_matches('\r'))?;
    if text.eq_ignore_ascii_case("INBOX") {
        return Some(FolderName::inbox());
    }
    let rest = text.get(..6).filter(|p| p.eq_ignore_ascii_case("INBOX.")).map(|_| &text[6..])?;
    FolderName::new(rest).ok()
}

/// A name no other process makes: pid, time and a counter.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{}.{}.{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes every `..postern-deleted.*` directory in `root` (this
/// deletion's and any a crash left), without following symlinks. Failures
/// leave them hidden for next time.
fn remove_hidden(root: &Path) {
    let Ok(listing) = fs::read_dir(root) else { return };
    for item in listing.flatten() {
        let name = item.file_name();
        let is_ours = name.to_str().is_some_and(|n| n.starts_with(DELETED_PREFIX));
        let is_dir = fs::symlink_metadata(item.path()).is_ok_and(|m| m.is_dir());
        if is_ours && is_dir {
            // remove_dir_all does not follow symlinks inside the tree.
            let _ = fs::remove_dir_all(item.path());
        }
    }
}

#[cfg(test)]
#[path = "folder_tests.rs"]
mod tests;
