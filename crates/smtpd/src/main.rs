//! SUMMARY
//!   smtpd - the Postern SMTP server
//!
//! DESCRIPTION
//!   smtpd receives mail over SMTP and ESMTP (RFC 5321) on the TCP sockets
//!   master hands it (fd 4 and up). master starts `maxproc` smtpd
//!   processes per service; each is a single-threaded tokio server that
//!   serves many connections at once.
//!
//!   The protocol itself (command syntax and order, PIPELINING, DATA
//!   framing, size and line limits, reply texts) is the sans-I/O machine
//!   in `smtp-proto`; smtpd owns the sockets, the time limits and the
//!   decisions:
//!
//!   - MAIL FROM: any sender, qualified with `@$myorigin` when it has no
//!     domain; refused with 452 4.3.1 when the queue file system has less
//!     than `queue_minfree` (plus the announced SIZE) free.
//!   - RCPT TO: for a local domain (`mydestination` or `$myhostname`) the
//!     address must be listed in `local_recipient_maps` (by default a user
//!     of passwd_file or the system, or an alias of alias_maps), with
//!     `recipient_delimiter` extensions; else 550 5.1.1 (an empty
//!     local_recipient_maps accepts every local name). Any other domain is relayed only for clients in
//!     `mynetworks`; else 554 5.7.1 Relay access denied.
//!   - DATA: the message is written to its queue file in `tmp/` while it
//!     arrives, after the work of Postfix's cleanup(8) on its header
//!     block (Received:, Message-Id:, Date:, From:, header_size_limit,
//!     canonical mapping of the addresses in sender and recipient headers);
//!     only the header block and one write's worth of body are held in
//!     memory. At the end of DATA the file is made durable and moved to
//!     `incoming/` (fsync, rename, fsync of the directory) before the 250
//!     reply with the queue id; then qmgr is woken through `public/qmgr`.
//!     A message refused on the way (552 over message_size_limit or
//!     header_size_limit, 452/451 on a queue write error) or abandoned by
//!     the client leaves no file behind.
//!   - STARTTLS (RFC 3207) with `smtpd_tls_security_level = may` or
//!     `encrypt` and a certificate that loads (`smtpd_tls_cert_file`,
//!     `smtpd_tls_key_file` or `smtpd_tls_chain_files`, through
//!     mail-tls); at `encrypt` MAIL FROM before it gets `530 5.7.0 Must
//!     issue a STARTTLS command first`. Whatever the client pipelined
//!     after STARTTLS is discarded, never run inside TLS. With
//!     `smtpd_tls_wrappermode = yes` (the smtps service, port 465) the
//!     handshake comes before the greeting. Every handshake is bounded by
//!     `smtpd_starttls_timeout`; a failed one is logged as Postfix logs
//!     it (`SSL_accept error from NAME[ADDR]: ...`), a completed one from
//!     `smtpd_tls_loglevel = 1` (`Anonymous TLS connection established
//!     from ...`), and the Received header gets Postfix's `(using ...)`.
//!     A certificate that does not load is logged and TLS stays off.
//!   - AUTH PLAIN and LOGIN (RFC 4954) with `smtpd_sasl_auth_enable =
//!     yes` (the submission and smtps services), offered only inside TLS
//!     unless `smtpd_tls_auth_only = no`. smtpd parses the SASL exchange
//!     (`mail_auth::sasl`) and asks authd (`private/authd`) whether the
//!     password is right; authd applies the failure delays. A failure is
//!     logged in the line fail2ban's postfix-sasl filter matches
//!     (`warning: NAME[ADDR]: SASL PLAIN authentication failed:
//!     authentication failure`) and answered 535 5.7.8; a success adds
//!     `sasl_method=..., sasl_username=...` to the message's `client=`
//!     line and makes the protocol ESMTPA/ESMTPSA. `permit_sasl_authenticated`
//!     in the restriction lists then lets the user relay.
//!   - Before the greeting: a client outside `mynetworks` with more than
//!     `smtpd_client_connection_count_limit` connections open, or more
//!     than `smtpd_client_connection_rate_limit` in `anvil_rate_time_unit`,
//!     counted across every smtpd process by anvil (`private/anvil`), gets
//!     `421 4.7.0 HOST Error: too many connections from ADDR`. Without
//!     anvil smtpd fails open and applies the count limit per process.
//!
//!   - Before the greeting, with `smtpd_peername_lookup = yes` and
//!     `disable_dns_lookups = no`: the client's name, as Postfix finds it
//!     (PTR, then the name's addresses, which must include the client's;
//!     else `unknown`), within `smtpd_peername_lookup_timeout`, from the
//!     nameservers of `dns_resolver_addresses` (or /etc/resolv.conf). It
//!     names the client in the log lines and the Received header. With
//!     lookups off a client is `localhost` on loopback, else `unknown`.
//!
//!   On SIGUSR1 (reload, restart) smtpd stops accepting, lets the open
//!   sessions finish and exits; on SIGTERM it exits at once. A message is
//!   acknowledged only once it is on disk, so neither loses mail.
//!
//! SECURITY
//!   smtpd talks to anyone on the network and runs as mail_owner, never as
//!   root (master starts it unprivileged, or mail-daemon drops to
//!   mail_owner). Its only DNS lookups are of the client's name (below).
//!   Every input is bounded: command
//!   lines, message size, recipients per message, errors (junk commands
//!   included) per session, time per read or write, per DATA and per
//!   session, connections per process and per client (an IPv4 address
//!   or an IPv6 /64). Memory per session is bounded by header_size_limit
//!   plus a few buffers, whatever the message size. A panic in one session
//!   ends only that session.
//!
//! CONFIGURATION
//!   myhostname, mydomain, myorigin, mydestination, mynetworks,
//!   append_at_myorigin, recipient_delimiter, alias_maps, passwd_file,
//!   local_recipient_maps, canonical_maps, sender_canonical_maps,
//!   recipient_canonical_maps and their *_classes,
//!   smtpd_banner, smtpd_timeout, smtpd_session_deadline,
//!   smtpd_data_deadline, smtpd_recipient_limit, smtpd_hard_error_limit,
//!   smtpd_soft_error_limit, smtpd_junk_command_limit,
//!   smtpd_process_connection_limit, smtpd_client_connection_count_limit,
//!   smtpd_client_connection_rate_limit, smtpd_helo_required,
//!   disable_vrfy_command, message_size_limit, header_size_limit,
//!   queue_minfree, queue_directory, mail_name, syslog_name, maillog_file,
//!   smtpd_peername_lookup, smtpd_peername_lookup_timeout,
//!   disable_dns_lookups, dns_resolver_addresses, dns_resolver_timeout,
//!   dns_resolver_attempts.
//!
//! DIAGNOSTICS
//!   Postfix's log lines: `connect from NAME[ADDR]`,
//!   `QUEUEID: client=NAME[ADDR]`, `QUEUEID: message-id=<...>`,
//!   `NOQUEUE: reject: RCPT from NAME[ADDR]: 554 5.7.1 <x@y>: Relay
//!   access denied; from=<s> to=<x@y> proto=ESMTP helo=<h>`,
//!   `lost connection after CMD from`, `timeout after CMD from` (in DATA
//!   `timeout after DATA (N bytes) from NAME[ADDR]`, also when
//!   smtpd_data_deadline or smtpd_session_deadline ends the session with
//!   `421 4.4.2 HOST Error: timeout exceeded`), `too many errors after
//!   CMD from` (421 4.7.0 HOST Error: too many errors, junk commands past
//!   smtpd_junk_command_limit included), `warning: too many connections:
//!   N open in this process (smtpd_process_connection_limit = N);
//!   refusing NAME[ADDR]` (421 4.7.0 HOST Error: too many connections),
//!   `disconnect from NAME[ADDR] ehlo=1 mail=1 rcpt=1 data=1 quit=1
//!   commands=5`, `warning: Connection concurrency limit exceeded: N from
//!   NAME[ADDR] for service smtp` (and `Connection rate limit exceeded`),
//!   `warning: cannot connect to anvil at PATH: ...`, `warning: hostname
//!   NAME does not resolve to address ADDR` (the client is `unknown`),
//!   `warning: ADDR: client name lookup timed out after Ns`. Queue write errors are warnings naming the queue id and
//!   path; a session panic is logged as `panic:`. Start-up failures are
//!   fatal: one line, exit status 1, and master restarts the process.
//!
//! STANDARDS
//!   RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 2920 (PIPELINING), RFC 3463
//!   (enhanced status codes), RFC 6152 (8BITMIME).
#![forbid(unsafe_code)]

mod anvil_client;
mod counters;
mod enqueue;
mod peer;
mod policy;
mod restrictions;
mod serve;
mod session;
mod settings;

use std::process::ExitCode;
use std::time::Duration;

/// How long exit waits for a queue write already under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let result = (|| {
        let daemon = mail_daemon::init("smtpd")?;
        // One thread per process keeps RSS small; master runs several
        // processes for parallelism. Queue writes and user lookups block,
        // so they go to the blocking pool.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(64)
            .build()?;
        let result = rt.block_on(serve::run(daemon));
        rt.shutdown_timeout(SHUTDOWN_GRACE);
        result
    })();
    mail_daemon::exit_on_fatal("smtpd", result)
}
