//! The on-disk mail queue: directory layout, the versioned queue-file
//! format, durable enqueue, per-recipient status logs, scanning and
//! quarantine.
//!
//! Writers are smtpd and pickup (via [`Queue::reserve`] and
//! [`Pending::commit`]), `sendmail` (maildrop files), qmgr (moves between
//! states, status logs, removal) and the operator tools (read only, plus
//! `postsuper`). Delivery agents only read files in `active/`.
//! No networking, no scheduling policy: that is qmgr's.
//!
//! Invariants: a file in `incoming/` is always complete, because it gets
//! its name there only once written (and is fsynced, with the directory,
//! before the commit returns); unreadable files are moved to `corrupt/`,
//! never deleted.
#![forbid(unsafe_code)]

mod error;
pub mod format;
mod layout;
pub mod maildrop;
pub mod spool;
pub mod status;

pub use error::Error;
pub use format::{Envelope, QueueFile, Recipient};
pub use layout::{CHASE_ROUNDS, PID, PRIVATE, PUBLIC, Pending, Queue, State};
pub use maildrop::Maildrop;
pub use status::StatusRecord;
