//! Mailbox storage on disk: Maildir (with Maildir++ folders) and mbox.
//!
//! What it does:
//! - [`deliver`] writes one message into a Maildir the qmail way
//!   (`tmp/` → `new/`, <https://cr.yp.to/proto/maildir.html>) with names that
//!   Dovecot and Courier read (`,S=size,W=vsize`), creating the Maildir if missing as
//!   Postfix's `local/maildir.c` does, and [`deliver_unsynced`] does all
//!   but the last fsync of `new/`, which a caller delivering a batch then
//!   makes once per directory ([`Unsynced`]);
//! - [`make`] and [`make_folder`] create a Maildir and a Maildir++ folder
//!   (what Courier's `maildirmake` does);
//! - [`list_new_and_cur`] lists the messages of a Maildir with their flags and
//!   sizes taken from the file names;
//! - [`Mailbox`] is one Maildir opened by pop3d (and imapd): messages by
//!   persistent UID with their RFC 822 sizes ([`crlf`]), internal dates and
//!   [`Flags`], from the mailbox index `postern-uidlist` ([`uidlist`],
//!   which also reads Dovecot's and Courier's UID lists for a one-time
//!   import), kept consistent with local delivery and with other sessions;
//!   flag changes by rename, expunge by unlink, and the per-mailbox session
//!   lock behind POP3's `[IN-USE]`;
//! - [`Store`] is a user's Maildir++ store for imapd: folders by
//!   [`FolderName`] (UTF-8, modified UTF-7 on the wire and on disk,
//!   [`mutf7`]), listing with `\Noselect` parents and children,
//!   create/delete/rename (INBOX too), subscriptions (Dovecot's and
//!   Courier's files), and [`SpecialUseMap`] for SPECIAL-USE;
//! - [`Mailbox`] also carries what IMAP needs: [`Keywords`]
//!   (`dovecot-keywords`), a modseq per message and HIGHESTMODSEQ, an
//!   expunge log for QRESYNC ([`Mailbox::vanished_since`]), STORE
//!   ([`Mailbox::store`]), APPEND, COPY and MOVE with the new UIDs, and
//!   `\Recent` ([`Mailbox::take_recent`]);
//! - [`Watcher`] is an inotify descriptor per folder for IDLE;
//! - [`deliver_mbox`] appends one message to an mbox file under a dot-lock and
//!   an fcntl lock, as Postfix's local mailbox delivery does, and
//!   [`deliver_mbox_owned_by`] does so for root writing a user's spool file,
//!   checking the owner on the opened descriptor.
//!
//! What it does not: no privilege handling (the caller has already switched to
//! the recipient's or the mailbox owner's uid), no protocol (POP3 and IMAP
//! semantics such as sequence numbers or deletions kept until QUIT belong to
//! pop3d/imapd), no tokio (everything here is blocking: delivery workers are
//! single-threaded, and the mail services call it from a blocking thread).
//!
//! Used by `local-delivery`, later by `pop3d`/`imapd`, and by the
//! `maildirmake` command in `postern-cli`.
#![forbid(unsafe_code)]

pub mod crlf;
mod error;
mod flags;
mod folder;
pub mod keywords;
mod layout;
mod list;
mod mailbox;
mod maildir;
mod mbox;
pub mod mutf7;
mod special_use;
pub mod uidlist;
mod watch;

pub use error::Error;
pub use flags::Flags;
pub use folder::{
    FolderInfo, FolderName, MAX_FOLDER_DEPTH, MAX_FOLDER_NAME_BYTES, MAX_FOLDERS, Store,
};
pub use keywords::Keywords;
pub use layout::{make, make_folder, validate_folder_name};
pub use list::{Entry, MaildirName, list_new_and_cur, parse_file_name};
pub use mailbox::{
    Changes, DEFAULT_LOCK_WAIT, FlagOp, Mailbox, MailboxLock, MailboxOptions, MessageInfo, Skipped,
    Stored, StoredFlags,
};
pub use maildir::{Delivered, Unsynced, deliver, deliver_unsynced, discard, unique_name};
pub use mbox::{deliver_mbox, deliver_mbox_owned_by};
pub use special_use::{DEFAULT_SPECIAL_USE, SpecialUse, SpecialUseMap};
pub use watch::Watcher;
