//! SUMMARY
//!   anvil - the Postern connection count and rate server
//!
//! DESCRIPTION
//!   anvil counts, for every client address, the connections open now and
//!   the connections made in the current `anvil_rate_time_unit`, across
//!   all smtpd processes (Postfix anvil(8)). master starts several smtpd
//!   processes that share one listening socket, so no single smtpd sees
//!   all of a client's connections; each smtpd asks anvil about every new
//!   connection and applies `smtpd_client_connection_count_limit` and
//!   `smtpd_client_connection_rate_limit` to the answer.
//!
//!   An IPv4 client is counted per address, an IPv6 client per /64. The
//!   rate is Postfix's fixed window: the first connection after a window
//!   ends opens the next one. Each smtpd keeps one connection to anvil;
//!   when it closes (the smtpd exited or crashed), the connections it had
//!   counted end with it.
//!
//!   anvil keeps its counts in memory only. When it is restarted (a crash,
//!   `postern reload`, `postern restart anvil`) they start again from
//!   zero, so for a while clients may get more connections than the
//!   limits allow, as with Postfix. While anvil cannot be reached, smtpd
//!   fails open: it logs a warning and applies the count limit per
//!   process only.
//!
//! TRIGGERS
//!   Started by master as the unix service `private/anvil`, maxproc 1.
//!   Requests are `mail_ipc::anvil` frames. SIGTERM and SIGUSR1 log the
//!   statistics and exit.
//!
//! SECURITY
//!   Runs as mail_owner and opens no files. Its socket is private (mode
//!   0600, mail_owner), so only Postern's own daemons reach it; even so
//!   every request is bounded: frame size, time to finish a frame, number
//!   of connections, length of the service name, and the table holds at
//!   most 100,000 clients (when full, the least recently used is
//!   forgotten; idle ones are removed after one rate window).
//!
//! CONFIGURATION
//!   anvil_rate_time_unit, anvil_status_update_time, queue_directory,
//!   syslog_name, maillog_file.
//!
//! DIAGNOSTICS
//!   Every `anvil_status_update_time` and at exit, Postfix's lines for the
//!   period just ended, when there was any traffic:
//!   `statistics: max connection rate N/60s for (smtp:ADDR) at TIME`,
//!   `statistics: max connection count N for (smtp:ADDR) at TIME`,
//!   `statistics: max cache size N at TIME`. Warnings: a broken or
//!   misbehaving client connection (closed), too many connections,
//!   clients forgotten because the table was full. Start-up failures are
//!   fatal.
//!
//! STANDARDS
//!   None.
#![forbid(unsafe_code)]

mod service;
mod table;

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = (|| {
        let daemon = mail_daemon::init("anvil")?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(service::run(daemon))
    })();
    mail_daemon::exit_on_fatal("anvil", result)
}
