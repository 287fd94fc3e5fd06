//! SUMMARY
//!   qmgr - the Postern queue manager
//!
//! DESCRIPTION
//!   qmgr is the only process that moves queue files between states. It
//!   takes complete files from `incoming/` (woken by a trigger on
//!   `public/qmgr`, by master's wakeup, or by its own short timer), moves
//!   them to `active/`, sends each recipient to a delivery agent over
//!   `mail-ipc` (`private/local` for our domains, `private/smtp` for the
//!   rest), records every result durably in the message's status log, and
//!   then removes the file, bounces to the sender, or moves it to
//!   `deferred/` with its modification time set to the next attempt.
//!
//! MAIL QUEUES
//!   incoming → active → (removed | deferred → active ...). At start-up
//!   qmgr deletes files abandoned in `tmp/` (untouched for 10 minutes,
//!   never acknowledged; it repeats this at every deferred-queue run) and
//!   reschedules whatever is in `active/`. Unreadable files go to
//!   `corrupt/`, never away.
//!
//! TRIGGERS
//!   `Queued(ids)` (from smtpd, pickup and local-delivery after each
//!   commit) takes those files from incoming/ by name, without reading the
//!   directory; while active/ is full they wait in a bounded list.
//!   `Wakeup` scans incoming/; `Flush` (postqueue -f) also retries every
//!   deferred message now. A one-second timer scans for mail whose
//!   trigger was lost, skipping the read while incoming/ was empty at the
//!   last scan and its mtime has not moved (a real scan every 10 s).
//!
//! SECURITY
//!   Runs as mail_owner. Reads only queue files, which only Postern
//!   processes write.
//!
//! CONFIGURATION
//!   queue_directory, mydestination, queue_run_delay, minimal_backoff_time,
//!   maximal_backoff_time, maximal_queue_lifetime, bounce_queue_lifetime,
//!   qmgr_message_active_limit, default_destination_concurrency_limit,
//!   default_destination_recipient_limit, local_destination_recipient_limit
//!   (a message's recipients go out in requests of at most that many),
//!   myhostname, mail_name.
//!
//! DIAGNOSTICS
//!   `QUEUEID: from=<...>, size=N, nrcpt=N (queue active)`,
//!   `QUEUEID: removed`, warnings for corrupt files and unreachable
//!   delivery agents. Delivery results are logged by the agents.

mod bounce;
mod dest;
mod ledger;
mod policy;
mod resolve;
mod schedule;

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = (|| {
        let daemon = mail_daemon::init("qmgr")?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(schedule::run(daemon))
    })();
    mail_daemon::exit_on_fatal("qmgr", result)
}
