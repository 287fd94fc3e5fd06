//! Mailbox storage on disk: Maildir (with Maildir++ folders) and mbox.
//!
//! What it does:
//! - [`deliver`] writes one message into a Maildir the qmail way
//!   (`tmp/` → `new/`, <https://cr.yp.to/proto/maildir.html>) with names that
//!   Dovecot and Courier read (`,S=size`), creating the Maildir if missing as
//!   Postfix's `local/maildir.c` does, and [`deliver_unsynced`] does all
//!   but the last fsync of `new/`, which a caller delivering a batch then
//!   makes once per directory ([`Unsynced`]);
//! - [`make`] and [`make_folder`] create a Maildir and a Maildir++ folder
//!   (what Courier's `maildirmake` does);
//! - [`list_new_and_cur`] lists the messages of a Maildir with their flags and
//!   sizes taken from the file names;
//! - [`deliver_mbox`] appends one message to an mbox file under a dot-lock and
//!   an fcntl lock, as Postfix's local mailbox delivery does, and
//!   [`deliver_mbox_owned_by`] does so for root writing a user's spool file,
//!   checking the owner on the opened descriptor.
//!
//! What it does not: no privilege handling (the caller has already switched to
//! the recipient's uid), no mailbox index, UIDs or IMAP flags bookkeeping (that
//! belongs to pop3d/imapd), no tokio (everything here is blocking and meant for
//! single-threaded delivery workers).
//!
//! Used by `local-delivery`, later by `pop3d`/`imapd`, and by the
//! `maildirmake` command in `postern-cli`.
#![forbid(unsafe_code)]

pub mod crlf;
mod error;
mod flags;
mod layout;
mod list;
mod mailbox;
mod maildir;
mod mbox;
pub mod uidlist;

pub use error::Error;
pub use flags::Flags;
pub use layout::{make, make_folder, validate_folder_name};
pub use list::{Entry, MaildirName, list_new_and_cur, parse_file_name};
pub use mailbox::{
    Changes, DEFAULT_LOCK_WAIT, Mailbox, MailboxLock, MailboxOptions, MessageInfo, Skipped,
};
pub use maildir::{Delivered, Unsynced, deliver, deliver_unsynced, discard, unique_name};
pub use mbox::{deliver_mbox, deliver_mbox_owned_by};
