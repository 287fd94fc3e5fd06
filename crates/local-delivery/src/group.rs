//! Group commit of Maildir deliveries: the `new/` directories written in
//! one batch of requests are fsynced once each, after the last delivery
//! and before any reply, instead of once per message.
//!
//! A delivery into a Maildir leaves its message named in `new/` but not
//! yet durable ([`mail_maildir::deliver_unsynced`]) and registers it
//! here; its status stays [`Outcome::Waiting`] until [`NewDirs::sync`]
//! has run. A directory whose fsync fails defers (4.3.0) every message
//! that waited on it, never reports it sent, and takes those messages
//! back out of `new/` (as their owners), since qmgr will have them
//! delivered again.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use mail_types::{DeliveryStatus, EnhancedStatus};

use crate::privs::AsUser;
use crate::resolve::Owner;

/// Most `new/` directories held open while they wait: past this (an
/// alias list of 1,500 users is 1,500 Maildirs) the waiting ones are
/// synced at once and their descriptors closed, so a batch never runs
/// the process out of file descriptors.
const MAX_OPEN: usize = 64;

/// What a delivery to one destination gave.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Final (mbox, command, forward, any failure).
    Done(DeliveryStatus),
    /// `status` once `new/` number `dir` of the batch is on disk.
    Waiting { status: DeliveryStatus, dir: usize },
}

/// The `new/` directories of one batch, each once.
#[derive(Debug, Default)]
pub(crate) struct NewDirs {
    dirs: Vec<Dir>,
}

#[derive(Debug)]
struct Dir {
    /// (st_dev, st_ino): the same directory reached by two paths is one.
    id: (u64, u64),
    /// Open while its fsync is due; closed once it is done.
    file: Option<File>,
    path: PathBuf,
    /// The messages waiting on it, with who wrote them.
    messages: Vec<(Owner, String)>,
    /// After the sync: `Err(text)` when it failed.
    result: Option<Result<(), String>>,
}

impl NewDirs {
    /// Registers a message written as `owner` whose `new/` is not yet
    /// fsynced; `status` is what it reports once it is.
    pub(crate) fn add(
        &mut self,
        u: mail_maildir::Unsynced,
        owner: Owner,
        status: DeliveryStatus,
    ) -> Outcome {
        let id = match u.dir_id() {
            Ok(id) => id,
            // Cannot tell it apart from the others: it gets its own fsync.
            Err(_) => {
                return Outcome::Done(match u.sync() {
                    Ok(_) => status,
                    Err(e) => defer_4_3_0(e.to_string()),
                });
            }
        };
        let name = u.delivered.name;
        let dir = match self.dirs.iter().position(|d| d.id == id) {
            Some(i) => {
                if self.dirs[i].file.is_none() {
                    self.dirs[i].file = Some(u.new_dir);
                }
                i
            }
            None => {
                if self.dirs.iter().filter(|d| d.file.is_some()).count() >= MAX_OPEN {
                    self.sync();
                }
                let path = u.delivered.path.parent().map(PathBuf::from).unwrap_or_default();
                self.dirs.push(Dir {
                    id,
                    file: Some(u.new_dir),
                    path,
                    messages: Vec::new(),
                    result: None,
                });
                self.dirs.len() - 1
            }
        };
        self.dirs[dir].messages.push((owner, name));
        // A directory already synced (a caller that syncs more than once)
        // must be synced again for this message.
        self.dirs[dir].result = None;
        Outcome::Waiting { status, dir }
    }

    /// How many distinct directories wait for an fsync.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.dirs.iter().filter(|d| d.result.is_none()).count()
    }

    /// fsyncs each directory that waits, once. Blocks.
    pub(crate) fn sync(&mut self) {
        self.sync_with(File::sync_all);
    }

    /// [`NewDirs::sync`] with the fsync given (tests make it fail).
    pub(crate) fn sync_with(&mut self, mut fsync: impl FnMut(&File) -> io::Result<()>) {
        // The deliveries are over: no user's identity stays for what
        // follows (the replies, the next batch).
        crate::privs::root();
        for d in self.dirs.iter_mut().filter(|d| d.result.is_none()) {
            let Some(file) = d.file.take() else {
                d.result = Some(Err(format!("{} is no longer open", d.path.display())));
                continue;
            };
            let result = fsync(&file);
            d.result = Some(match result {
                Ok(()) => Ok(()),
                Err(e) => {
                    let text = format!("cannot fsync {}: {e}", d.path.display());
                    tracing::warn!("{text}");
                    discard_all(d, &file);
                    Err(text)
                }
            });
        }
    }

    /// The final status of `o`: a waiting one is sent only if its
    /// directory's fsync succeeded.
    pub(crate) fn resolve(&self, o: Outcome) -> DeliveryStatus {
        match o {
            Outcome::Done(status) => status,
            Outcome::Waiting { status, dir } => match self.dirs.get(dir).map(|d| &d.result) {
                Some(Some(Ok(()))) => status,
                Some(Some(Err(text))) => defer_4_3_0(text.clone()),
                // Never synced: not known to be on disk, so not sent.
                _ => defer_4_3_0("mailbox directory not yet on stable storage".to_owned()),
            },
        }
    }
}

/// The status of a delivery whose `new/` fsync failed.
pub(crate) fn defer_4_3_0(text: String) -> DeliveryStatus {
    DeliveryStatus::defer(EnhancedStatus(4, 3, 0), text)
}

/// Takes the messages of a directory whose fsync failed back out, each
/// as the user who wrote it (nothing is written into a user's directory
/// as root); a failure leaves a possible duplicate, never a loss.
fn discard_all(d: &Dir, dir: &File) {
    for (owner, name) in &d.messages {
        let removed = AsUser::switch(owner.uid, owner.gid)
            .map_err(io::Error::from)
            .and_then(|_guard| mail_maildir::discard(dir, name));
        if let Err(e) = removed {
            tracing::warn!("cannot remove {}/{name}: {e}", d.path.display());
        }
    }
}
