//! SUMMARY
//!   qmgr - the Postern queue manager
//!
//! DESCRIPTION
//!   qmgr is the only process that moves queue files between states. It
//!   takes complete files from `incoming/` (woken by a trigger on
//!   `public/qmgr`, by master's wakeup, or by its own short timer), moves
//!   them to `active/`, routes each recipient (mydestination to
//!   local_transport, relay_domains to relay_transport, others to
//!   default_transport, via relayhost or the domain, transport_maps
//!   first), answers `error:` and `discard:` itself,
//!   and sends the rest to the transports' unix services over `mail-ipc`,
//!   one request per destination (transport, nexthop) as its concurrency
//!   window allows. It records every result durably in the message's
//!   status log, queues RFC 3464 notices to the sender (failures, one delay
//!   warning, successes asked for with NOTIFY=SUCCESS), and then removes
//!   the file or moves it to `deferred/` with its modification time set to
//!   the next attempt.
//!
//! SCHEDULING
//!   Each destination starts at initial_destination_concurrency parallel
//!   deliveries and grows by one per window of successes up to
//!   its transport's concurrency limit; failures shrink it. After
//!   default_destination_concurrency_failed_cohort_limit windows of failed
//!   connections a destination is dead for minimal_backoff_time: its mail
//!   is deferred without an attempt ("delivery temporarily suspended").
//!   Local delivery keeps a fixed window and is never suspended.
//!
//! MAIL QUEUES
//!   incoming → active → (removed | deferred → active ...). At start-up
//!   qmgr deletes files abandoned in `tmp/` (untouched for 10 minutes,
//!   never acknowledged; it repeats this at every deferred-queue run) and
//!   reschedules whatever is in `active/`. Unreadable files go to
//!   `corrupt/`, never away. A file deleted from `active/` or moved to
//!   `hold/` while out for delivery is left alone when its answers come.
//!
//! TRIGGERS
//!   `Queued(ids)` (from smtpd, pickup and local-delivery after each
//!   commit) takes those files from incoming/ by name, without reading the
//!   directory; while active/ is full they wait in a bounded list.
//!   `Wakeup` scans incoming/; `Flush` (postqueue -f) also retries every
//!   deferred message now; `FlushSite` (postqueue -s) the deferred mail
//!   for one site, `FlushId` (postqueue -i) one message, each reviving the
//!   dead destinations concerned. A one-second timer scans for mail whose
//!   trigger was lost, skipping the read while incoming/ was empty at the
//!   last scan and its mtime has not moved (a real scan every 10 s).
//!
//! SECURITY
//!   Runs as mail_owner. Reads only queue files, which only Postern
//!   processes write, and the transport_maps tables.
//!
//! CONFIGURATION
//!   queue_directory, mydestination, relayhost, transport_maps,
//!   default_transport, local_transport, relay_domains, relay_transport,
//!   recipient_delimiter,
//!   queue_run_delay, minimal_backoff_time, maximal_backoff_time,
//!   maximal_queue_lifetime, bounce_queue_lifetime, delay_warning_time,
//!   qmgr_message_active_limit, default_destination_concurrency_limit,
//!   initial_destination_concurrency,
//!   default_destination_concurrency_failed_cohort_limit,
//!   default_destination_recipient_limit, and the smtp_, relay_ and
//!   local_destination_concurrency_limit and _recipient_limit (a
//!   message's recipients go out in requests of at most that many),
//!   myhostname, mail_name.
//!
//! DIAGNOSTICS
//!   `QUEUEID: from=<...>, size=N, nrcpt=N (queue active)`,
//!   `QUEUEID: removed`, `QUEUEID: sender non-delivery notification: ID`
//!   (and `delay`, `delivery status`), `TRANSPORT/NEXTHOP: destination
//!   dead for Ns: REASON`, warnings for corrupt files and unreachable
//!   delivery agents. Delivery results are logged by the agents; those
//!   qmgr decides itself (error:, discard:, suspended, expired) in the
//!   same format with `relay=none`.

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
