//! SUMMARY
//!   pickup - the Postern local mail pickup daemon
//!
//! DESCRIPTION
//!   pickup takes the messages that `sendmail` (and `sendmail -bs`) left
//!   in `maildrop/` and queues them the way smtpd queues network mail
//!   (Postfix pickup(8) plus the cleanup(8) work): it locks each file
//!   with flock so two pickups never take one, reads it within
//!   `message_size_limit`, takes the recipients from the command line and,
//!   for `sendmail -t`, from To/Cc/Bcc (removing Bcc), qualifies addresses
//!   with `myorigin`, rewrites the envelope (canonical maps, virtual
//!   aliases) and the addresses of sender and recipient headers (canonical
//!   maps, as `*_canonical_classes` say), adds the `Received: by HOST
//!   (Postern, from userid UID)` trace and any missing Message-Id, Date
//!   and From (with the `-F` full name), writes the queue file durably
//!   into `incoming/`, removes
//!   the maildrop file and wakes qmgr through `public/qmgr`.
//!
//!   The queue file is committed before the maildrop file is removed: a
//!   crash in between queues the message twice, never loses it.
//!
//! TRIGGERS
//!   Started by master as a unix service on `public/pickup` (maxproc 1,
//!   wakeup 60). Any trigger frame scans `maildrop/`; pickup also scans at
//!   start and every 60 seconds by itself. SIGTERM or SIGUSR1 finish the
//!   file in hand and exit.
//!
//! SECURITY
//!   Runs as mail_owner. Any local user can write into `maildrop/`, so
//!   every maildrop file is untrusted input: symbolic links and non-regular
//!   files are refused, the size is bounded before reading, the decoder
//!   rejects anything but the exact layout, and the submitting uid is
//!   the file owner's, never what the content claims. Header text from
//!   the file is never used to build new header lines without removing
//!   control characters.
//!
//! CONFIGURATION
//!   queue_directory, message_size_limit, header_size_limit, myhostname,
//!   myorigin, append_at_myorigin, mail_name.
//!
//! DIAGNOSTICS
//!   `QUEUEID: uid=UID from=<SENDER>` and `QUEUEID: message-id=<...>` for
//!   each message queued. Warnings: `ID: corrupt maildrop file: REASON;
//!   moved to corrupt/`, `ID: warning: no recipients; ...` (the file is
//!   removed; Postfix would bounce it to the sender), bad addresses
//!   (skipped). Queue write errors leave the file for the next scan.
//!
//! STANDARDS
//!   RFC 5322 (header fields added), RFC 5321 §4.4 (trace header).
#![forbid(unsafe_code)]

mod pickup;
mod service;

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = (|| {
        let daemon = mail_daemon::init("pickup")?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(service::run(daemon))
    })();
    mail_daemon::exit_on_fatal("pickup", result)
}
