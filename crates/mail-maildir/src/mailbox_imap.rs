//! What imapd needs of a [`Mailbox`] beyond what pop3d does: keywords,
//! modseqs (CONDSTORE/QRESYNC), STORE, APPEND, COPY and MOVE, and
//! `\Recent`.
//!
//! Every change here is made under the folder's index lock and recorded
//! in the index before the lock is released, with a new modseq, so that
//! another handle's [`Mailbox::refresh`] reports it. Changes leave this
//! handle's snapshot alone except for the messages they touch (the
//! session's sequence numbers move only at a refresh): an appended or
//! copied message appears in the destination at its next refresh.
//!
//! Writers of a folder and what they do:
//! - local delivery writes `new/` files (`,S=`/`,W=` in the name) without
//!   any lock; a new file gets its UID, and a modseq, at the next load by
//!   anyone (open or refresh, under the lock);
//! - pop3d renames to `:2,S` on RETR and unlinks at QUIT; the flag change
//!   gets its modseq at the next load, the expunge in [`Mailbox::expunge`];
//! - imapd uses the methods below, which record at once;
//! - another program (a Dovecot or Courier still running, `rm`) is seen at
//!   the next load: files gone are logged as expunged, renames as flag
//!   changes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

use super::{
    Loaded, Mailbox, flags_of, locate, open_regular, read_index, read_keywords, rename_noreplace,
    write_index,
};
use crate::keywords::{KEYWORDS_FILE, Keywords, is_keyword};
use crate::uidlist::{Index, Record, key_of};
use crate::{Error, Flags, crlf};

/// How STORE changes flags (RFC 3501 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    /// `+FLAGS`: add these.
    Add,
    /// `-FLAGS`: remove these.
    Remove,
    /// `FLAGS`: exactly these, as far as IMAP can see (letters IMAP has no
    /// name for, such as `P` or a keyword letter without a name, stay).
    Replace,
}

/// One message after a STORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFlags {
    /// Its UID.
    pub uid: u32,
    /// Its flags now.
    pub flags: Flags,
    /// Its modseq now.
    pub modseq: u64,
    /// Whether this STORE changed its flags (`.SILENT` still reports
    /// changes made by others, RFC 7162 §3.2).
    pub changed: bool,
}

/// What [`Mailbox::store`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The messages it applied to, in the order given.
    pub updated: Vec<StoredFlags>,
    /// UIDs left alone because they changed after UNCHANGEDSINCE
    /// (RFC 7162 §3.1.3: the MODIFIED response code).
    pub modified: Vec<u32>,
    /// UIDs not in the snapshot, or whose file another process removed.
    pub gone: Vec<u32>,
}

/// A file to give a name in `cur/` and a UID ([`Mailbox::link_new`]).
struct Placement {
    /// The file: in `tmp/` for an append, another folder's for a copy.
    source: PathBuf,
    /// Its size in bytes, 0 to read it from the file.
    raw_size: u64,
    /// Its RFC 822 size.
    size: u64,
    flags: Flags,
    /// Seconds since the epoch; `None`: the file's mtime.
    internal_date: Option<i64>,
    how: Place,
}

/// How a [`Placement`] gets into `cur/`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Renamed (an append's `tmp/` file).
    Rename,
    /// Hard-linked, or copied where links cannot be made (a copy).
    Link,
}

/// One source message of a copy: where it is and what it carries.
struct Source {
    uid: u32,
    path: PathBuf,
    flags: Flags,
    keywords: Vec<String>,
    size: u64,
    internal_date: i64,
}

impl Mailbox {
    /// The highest modseq of the snapshot (HIGHESTMODSEQ).
    pub fn highest_modseq(&self) -> u64 {
        self.highest_modseq
    }

    /// The modseq from which [`Mailbox::vanished_since`] is exact.
    pub fn expunge_floor(&self) -> u64 {
        self.expunge_floor
    }

    /// The folder's keywords (letter ↔ name).
    pub fn keywords(&self) -> &Keywords {
        &self.keywords
    }

    /// UIDs expunged after `modseq`, as ascending inclusive ranges, for
    /// QRESYNC's `VANISHED (EARLIER)`. Exact when `modseq` is at least
    /// [`Mailbox::expunge_floor`]; below it, every UID under UIDNEXT that
    /// is not in the snapshot (RFC 7162 §3.2.5.1 lets the server name UIDs
    /// the client never had).
    pub fn vanished_since(&self, modseq: u64) -> Vec<(u32, u32)> {
        if modseq >= self.expunge_floor {
            let mut ranges: Vec<(u32, u32)> = self
                .expunged
                .iter()
                .filter(|e| e.modseq > modseq)
                .flat_map(|e| e.uids.iter().copied())
                .collect();
            ranges.sort_unstable();
            let mut out: Vec<(u32, u32)> = Vec::new();
            for (lo, hi) in ranges {
                match out.last_mut() {
                    Some((_, h)) if lo <= h.saturating_add(1) => *h = (*h).max(hi),
                    _ => out.push((lo, hi)),
                }
            }
            // A UID in the snapshot was not expunged (a refresh has not
            // caught up with the log): leave it out.
            return out
                .into_iter()
                .flat_map(|(lo, hi)| self.split_around_present(lo, hi))
                .collect();
        }
        let last = self.uid_next.saturating_sub(1);
        if last == 0 { Vec::new() } else { self.split_around_present(1, last) }
    }

    /// The parts of `lo..=hi` that hold no UID of the snapshot.
    fn split_around_present(&self, lo: u32, hi: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let start = self.messages.partition_point(|m| m.uid < lo);
        let mut next = lo;
        for m in self.messages[start..].iter().take_while(|m| m.uid <= hi) {
            if m.uid > next {
                out.push((next, m.uid - 1));
            }
            next = m.uid.saturating_add(1);
        }
        if next <= hi {
            out.push((next, hi));
        }
        out
    }

    /// The flags of these keywords in this folder, giving letters to the
    /// ones it does not have yet (written to `dovecot-keywords` under the
    /// index lock). [`Error::Keyword`] for a name that is no IMAP atom and
    /// when the folder's 26 letters are taken. The session then sends FLAGS
    /// again: its table grew.
    pub fn keyword_flags(&mut self, names: &[&str]) -> Result<Flags, Error> {
        for name in names {
            if !is_keyword(name) {
                return Err(Error::Keyword {
                    name: (*name).to_owned(),
                    reason: "not an IMAP atom",
                });
            }
        }
        let known: Option<Vec<Flags>> = names.iter().map(|n| self.keywords.flag(n)).collect();
        if let Some(known) = known {
            return Ok(known.into_iter().fold(Flags::EMPTY, |a, f| a | f));
        }
        let _lock = self.lock_index()?;
        let mut table = read_keywords(&self.dir);
        let mut flags = Flags::EMPTY;
        for name in names {
            flags |= table.add(name).ok_or_else(|| Error::Keyword {
                name: (*name).to_owned(),
                reason: "no keyword letter left in this folder (Maildir has 26)",
            })?;
        }
        let path = self.dir.join(KEYWORDS_FILE);
        stdx::fs::atomic_write(&path, table.render().as_bytes(), 0o600)
            .map_err(|source| Error::Write { path, source })?;
        self.keywords = table;
        Ok(flags)
    }

    /// STORE: changes the flags of these messages by renaming their files
    /// (`KEY:2,FLAGS` in `cur/`) and gives each changed one a new modseq in
    /// the index. With `unchanged_since` (CONDSTORE's UNCHANGEDSINCE), a
    /// message changed after that modseq is left alone and listed in
    /// [`Stored::modified`]. Keyword letters come from
    /// [`Mailbox::keyword_flags`].
    pub fn store(
        &mut self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<Stored, Error> {
        let mut lock = self.lock_index()?;
        let mut index = match read_index(&self.dir)? {
            Loaded::Present(index) => index,
            _ => self.load_locked(&mut lock)?.index,
        };
        let mut out = Stored::default();
        if index.uid_validity != self.uid_validity {
            out.gone = uids.to_vec();
            return Ok(out);
        }
        let visible = Flags::IMAP_SYSTEM | self.keywords.mask();
        let mut dirty = false;
        for &uid in uids {
            let (Some(i), Ok(r)) =
                (self.position(uid), index.records.binary_search_by_key(&uid, |r| r.uid))
            else {
                out.gone.push(uid);
                continue;
            };
            let key = self.messages[i].key.clone();
            let record = &index.records[r];
            let hints = [
                (record.in_new, record.file_name.clone()),
                (self.messages[i].in_new, self.names[i].clone()),
            ];
            let Some((mut in_new, mut name)) = find(&self.dir, &hints, &key)? else {
                out.gone.push(uid);
                continue;
            };
            let recorded = flags_of(&record.file_name);
            if let Some(since) = unchanged_since {
                // Renamed by someone who did not record it: changed at an
                // unknown modseq, so after any the client could name.
                let modseq = if flags_of(&name) == recorded { record.modseq } else { u64::MAX };
                if modseq > since {
                    out.modified.push(uid);
                    continue;
                }
            }
            let mut changed = false;
            let mut done = false;
            for _ in 0..3 {
                let now = flags_of(&name);
                let new = match op {
                    FlagOp::Add => now | flags,
                    FlagOp::Remove => now.without(flags),
                    FlagOp::Replace => now.without(visible) | flags,
                };
                let target = format!("{key}:2,{}", new.to_maildir());
                if new == now && (!in_new || now.is_empty()) {
                    done = true;
                    break;
                }
                let from = self.dir.join(if in_new { "new" } else { "cur" }).join(&name);
                let to = self.dir.join("cur").join(&target);
                match rename_noreplace(&from, &to) {
                    Ok(()) | Err(Errno::EEXIST) => {
                        changed = new != now;
                        (in_new, name) = (false, target);
                        done = true;
                        break;
                    }
                    Err(Errno::ENOENT) => match locate(&self.dir, &key)? {
                        Some(found) if found != (in_new, name.clone()) => (in_new, name) = found,
                        Some(_) => {
                            let source = io::Error::from_raw_os_error(libc::ENOENT);
                            return Err(Error::Link { from, to, source });
                        }
                        None => break,
                    },
                    Err(e) => return Err(Error::Link { from, to, source: e.into() }),
                }
            }
            if !done {
                out.gone.push(uid);
                continue;
            }
            let record = &mut index.records[r];
            if flags_of(&name) != recorded {
                record.modseq = index.highest_modseq.saturating_add(1);
                index.highest_modseq = record.modseq;
            }
            if record.file_name != name || record.in_new != in_new {
                dirty = true;
            }
            record.in_new = in_new;
            record.file_name.clone_from(&name);
            let m = &mut self.messages[i];
            m.flags = flags_of(&name);
            m.modseq = record.modseq;
            m.in_new = in_new;
            self.names[i] = name;
            self.highest_modseq = self.highest_modseq.max(record.modseq);
            out.updated.push(StoredFlags { uid, flags: m.flags, modseq: m.modseq, changed });
        }
        if dirty {
            write_index(&self.dir, &index)?;
        }
        Ok(out)
    }

    /// APPEND: writes a message into this folder and returns its UID
    /// (UIDPLUS's APPENDUID with [`Mailbox::uid_validity`]); see
    /// [`Mailbox::append_from`].
    pub fn append(
        &mut self,
        content: &[u8],
        flags: Flags,
        internal_date: Option<i64>,
    ) -> Result<u32, Error> {
        self.append_from(&mut &content[..], flags, internal_date)
    }

    /// APPEND from a reader (a literal as it arrives): the bytes go to a
    /// file in `tmp/`, which is fsynced, given `internal_date` (seconds
    /// since the epoch; now when `None`) as its mtime and renamed into
    /// `cur/` as `KEY,S=size,W=vsize:2,FLAGS`; `cur/` is fsynced and the
    /// index records the UID. Any failure (the reader's too: a client that
    /// vanishes mid-literal) removes what was written: nothing is left
    /// half-written in the folder. The message shows in this handle's
    /// snapshot at its next refresh.
    pub fn append_from(
        &mut self,
        reader: &mut dyn Read,
        flags: Flags,
        internal_date: Option<i64>,
    ) -> Result<u32, Error> {
        let (tmp, size, vsize) = self.write_tmp(reader, internal_date)?;
        let placement = Placement {
            source: tmp.clone(),
            raw_size: size,
            size: vsize,
            flags,
            internal_date,
            how: Place::Rename,
        };
        let result = self.link_new(&[placement]);
        let _ = fs::remove_file(&tmp);
        result.map(|uids| uids.first().copied().unwrap_or(0))
    }

    /// COPY: copies the messages into `dest` (another handle, possibly on
    /// the same folder) with their flags, keywords (by name: the folders'
    /// letters may differ) and internal dates, as hard links where the
    /// file system allows (else byte copies), and returns (source UID,
    /// destination UID) pairs in the order given, for UIDPLUS's COPYUID.
    /// UIDs not in the snapshot or gone meanwhile are left out. On an error
    /// nothing is left in `dest` (RFC 3501 §6.4.7).
    pub fn copy(&self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>, Error> {
        let mut sources = Vec::new();
        for &uid in uids {
            let Some(i) = self.position(uid) else { continue };
            let m = &self.messages[i];
            let hints = [(m.in_new, self.names[i].clone())];
            let Some((in_new, name)) = find(&self.dir, &hints, &m.key)? else { continue };
            let flags = flags_of(&name);
            sources.push(Source {
                uid,
                path: self.dir.join(if in_new { "new" } else { "cur" }).join(&name),
                flags,
                keywords: self.keywords.names(flags).map(str::to_owned).collect(),
                size: m.size,
                internal_date: m.internal_date,
            });
        }
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> =
            sources.iter().flat_map(|s| s.keywords.iter().map(String::as_str)).collect();
        // Too many keywords for the destination: copy without the extra
        // ones rather than fail the whole copy.
        let _ = dest.keyword_flags(&names);
        let plan: Vec<_> = sources
            .iter()
            .map(|s| {
                let kw = s
                    .keywords
                    .iter()
                    .filter_map(|k| dest.keywords.flag(k))
                    .fold(Flags::EMPTY, |a, f| a | f);
                Placement {
                    source: s.path.clone(),
                    raw_size: 0,
                    size: s.size,
                    flags: s.flags.without(Flags::KEYWORDS) | kw,
                    internal_date: Some(s.internal_date),
                    how: Place::Link,
                }
            })
            .collect();
        let dest_uids = dest.link_new(&plan)?;
        Ok(sources.iter().map(|s| s.uid).zip(dest_uids).collect())
    }

    /// MOVE (RFC 6851): [`Mailbox::copy`], then [`Mailbox::expunge`] of
    /// what was copied. A crash between the two leaves the message in both
    /// folders, never in neither.
    pub fn move_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>, Error> {
        let pairs = self.copy(uids, dest)?;
        let sources: Vec<u32> = pairs.iter().map(|&(s, _)| s).collect();
        self.expunge(&sources)?;
        Ok(pairs)
    }

    /// Claims the messages still in `new/` (IMAP `\Recent`, Courier's
    /// rule): moves them to `cur/` and returns their UIDs. Only one session
    /// can claim a message; EXAMINE does not call this.
    pub fn take_recent(&mut self) -> Result<Vec<u32>, Error> {
        let mut claimed = Vec::new();
        for i in 0..self.messages.len() {
            if !self.messages[i].in_new {
                continue;
            }
            let key = self.messages[i].key.clone();
            let target = format!("{key}:2,{}", self.messages[i].flags.to_maildir());
            let from = self.dir.join("new").join(&self.names[i]);
            let to = self.dir.join("cur").join(&target);
            match rename_noreplace(&from, &to) {
                Ok(()) => {
                    claimed.push(self.messages[i].uid);
                    self.messages[i].in_new = false;
                    self.names[i] = target;
                }
                // Another session (or a flag change) took it first.
                Err(Errno::ENOENT | Errno::EEXIST) => {}
                Err(e) => return Err(Error::Link { from, to, source: e.into() }),
            }
        }
        Ok(claimed)
    }

    /// Writes a reader's bytes to a new file in `tmp/`: (path, size,
    /// size with CRLF line ends).
    fn write_tmp(
        &self,
        reader: &mut dyn Read,
        internal_date: Option<i64>,
    ) -> Result<(PathBuf, u64, u64), Error> {
        let tmp = self.dir.join("tmp").join(crate::unique_name(&hostname(), 0));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|source| Error::Create { path: tmp.clone(), source })?;
        let written = copy_counting(reader, &mut file).and_then(|(size, vsize)| {
            if let Some(date) = internal_date {
                file.set_modified(system_time(date))?;
            }
            file.sync_all()?;
            Ok((size, vsize))
        });
        match written {
            Ok((size, vsize)) => Ok((tmp, size, vsize)),
            Err(source) => {
                let _ = fs::remove_file(&tmp);
                Err(Error::Write { path: tmp, source })
            }
        }
    }

    /// Gives each file of `plan` a name in `cur/` and a UID, under the
    /// index lock, all or nothing: on an error every name made is removed
    /// and the index is left as it was.
    fn link_new(&mut self, plan: &[Placement]) -> Result<Vec<u32>, Error> {
        let mut lock = self.lock_index()?;
        let mut index: Index = match read_index(&self.dir)? {
            Loaded::Present(index) => index,
            _ => self.load_locked(&mut lock)?.index,
        };
        let cur = self.dir.join("cur");
        let host = hostname();
        let mut made: Vec<PathBuf> = Vec::new();
        let undo = |made: &[PathBuf]| {
            for p in made {
                let _ = fs::remove_file(p);
            }
        };
        let mut uids = Vec::new();
        for p in plan {
            let (source, vsize, flags) = (&p.source, &p.size, &p.flags);
            let Some(uid_after) = index.uid_next.checked_add(1).filter(|&n| n < u32::MAX) else {
                undo(&made);
                return Err(Error::TooMany { path: self.dir.clone(), limit: u32::MAX as usize });
            };
            let raw = if p.raw_size == 0 {
                fs::symlink_metadata(source).map(|m| m.len()).unwrap_or(*vsize)
            } else {
                p.raw_size
            };
            let key = crate::maildir::unique_name_sized(&host, raw, *vsize);
            let name = format!("{key}:2,{}", flags.to_maildir());
            let to = cur.join(&name);
            let placed = if p.how == Place::Link {
                hard_link_or_copy(source, &to, &self.dir)
            } else {
                rename_noreplace(source, &to).map_err(|e| Error::Link {
                    from: source.clone(),
                    to: to.clone(),
                    source: e.into(),
                })
            };
            if let Err(e) = placed {
                undo(&made);
                return Err(e);
            }
            made.push(to.clone());
            let internal_date = match p.internal_date {
                Some(d) => d,
                None => fs::symlink_metadata(&to).map(|m| m.mtime()).unwrap_or_else(|_| now()),
            };
            let modseq = index.bump_modseq();
            index.records.push(Record {
                uid: index.uid_next,
                size: *vsize,
                internal_date,
                modseq,
                in_new: false,
                file_name: name,
            });
            uids.push(index.uid_next);
            index.uid_next = uid_after;
        }
        if let Err(e) = crate::maildir::sync_dir(&cur)
            .map_err(|source| Error::Sync { path: cur.clone(), source })
            .and_then(|()| write_index(&self.dir, &index))
        {
            undo(&made);
            return Err(e);
        }
        drop(lock);
        Ok(uids)
    }
}

/// Where the message with unique name `key` is: one of the `hints` if its
/// file is there, else wherever a listing finds it; `None` when gone.
fn find(dir: &Path, hints: &[(bool, String)], key: &str) -> Result<Option<(bool, String)>, Error> {
    for (in_new, name) in hints {
        let path = dir.join(if *in_new { "new" } else { "cur" }).join(name);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) && key_of(name) == key {
            return Ok(Some((*in_new, name.clone())));
        }
    }
    locate(dir, key)
}

/// A hard link of `from` at `to`; a byte copy (through `tmp/` of
/// `dest_dir`, keeping the mtime) where hard links cannot be made.
fn hard_link_or_copy(from: &Path, to: &Path, dest_dir: &Path) -> Result<(), Error> {
    match fs::hard_link(from, to) {
        Ok(()) => return Ok(()),
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::EPERM | libc::EMLINK | libc::ENOTSUP)
            ) =>
        {
            return Err(Error::Link { from: from.to_owned(), to: to.to_owned(), source: e });
        }
        Err(_) => {}
    }
    let mut src = open_regular(from)?;
    let meta = src.metadata().map_err(|source| Error::Read { path: from.to_owned(), source })?;
    let tmp = dest_dir.join("tmp").join(crate::unique_name(&hostname(), meta.len()));
    let mut write = || -> io::Result<()> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        io::copy(&mut src, &mut out)?;
        out.set_modified(meta.modified()?)?;
        out.sync_all()?;
        fs::hard_link(&tmp, to).or_else(|_| fs::rename(&tmp, to))
    };
    let result = write().map_err(|source| Error::Write { path: to.to_owned(), source });
    let _ = fs::remove_file(&tmp);
    result
}

/// Copies everything, counting bytes and bytes with CRLF line ends.
fn copy_counting(reader: &mut dyn Read, out: &mut File) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    let mut vsize = crlf::CrlfSize::default();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        vsize.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, vsize.size()))
}

fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// This host's name for unique file names.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
#[path = "mailbox_imap_tests.rs"]
mod tests;
