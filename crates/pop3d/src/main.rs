//! SUMMARY
//!   pop3d - the Postern POP3 server
//!
//! DESCRIPTION
//!   pop3d serves users' Maildirs over POP3 (RFC 1939) as two services of
//!   one program, split as Dovecot splits them (docs/ARCHITECTURE.md,
//!   "pop3d"):
//!
//!   - The login service (`pop3` on 110, `pop3s` on 995 with
//!     `pop3_tls_wrappermode = yes`): type inet, unprivileged
//!     (mail_owner), many connections per process. It speaks the
//!     AUTHORIZATION state: the greeting, CAPA (RFC 2449), STLS (RFC 2595)
//!     with smtpd's certificate, USER/PASS and AUTH PLAIN (RFC 5034),
//!     whose passwords authd checks (`private/authd`, which also applies
//!     the failure delays). Once a password is right it connects to the
//!     mail service, passes it one end of a socketpair with the user's
//!     identity (mail-session, SCM_RIGHTS) and from then on relays bytes
//!     between the client's (TLS) connection and its end of the pair.
//!   - The mail service (`pop3-mail`, `args = ["mail"]`): type unix, not
//!     unprivileged, started on demand by master, one session per process.
//!     It receives the session, becomes the user (initgroups, setgid,
//!     setuid; never reads a mailbox as root), takes the mailbox's POP3
//!     lock (`-ERR [IN-USE]` when another session holds it), answers
//!     `+OK Logged in.` and serves the TRANSACTION state on the Maildir
//!     through mail-maildir's index: message numbers in UID order, sizes
//!     in CRLF octets, UIDL values `%08X%08X` of UID and UIDVALIDITY (as
//!     Dovecot's default, so imapd's UIDs agree), RETR moving the message
//!     to `cur/` with the Seen flag, and DELE applied only at QUIT.
//!
//! SECURITY
//!   The login service talks to anyone and runs as mail_owner; it never
//!   opens a mailbox. The mail service talks only to the login service
//!   (its socket is private) and changes to the user's uid before it
//!   opens anything in the user's home. Passwords are refused on a plain
//!   connection from a non-loopback address unless `pop3_plaintext_auth
//!   = yes`. Every input is bounded: command lines (2048 bytes), bad
//!   commands per session, connections per client address and logged-in
//!   sessions per user (per login process), the time between commands.
//!
//! CONFIGURATION
//!   pop3_idle_timeout, pop3_client_connection_limit,
//!   pop3_user_connection_limit, pop3_plaintext_auth,
//!   pop3_tls_wrappermode, home_mailbox, smtpd_tls_cert_file,
//!   smtpd_tls_key_file, smtpd_tls_chain_files, smtpd_tls_protocols,
//!   mail_name, syslog_name.
//!
//! DIAGNOSTICS
//!   Dovecot's words in Postfix's line format: `Login: user=<NAME>,
//!   method=USER, rip=ADDR, mpid=PID, TLS`, `warning: [ADDR]: POP3 PLAIN
//!   authentication failed: user=<NAME>`, and from the mail process
//!   `Disconnected: Logged out top=N/B, retr=N/B, del=N/M, size=B`
//!   (`Connection closed`, `Inactivity`), `Mailbox in use`.
//!
//! STANDARDS
//!   RFC 1939 (POP3), RFC 2449 (CAPA, response codes), RFC 2595 (STLS),
//!   RFC 3206 (SYS and AUTH response codes), RFC 5034 (AUTH).
#![forbid(unsafe_code)]

mod login;
mod mail;
mod mailbox;

use std::process::ExitCode;
use std::time::Duration;

/// How long exit waits for sessions already handed over.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let result = (|| {
        let daemon = mail_daemon::init("pop3d")?;
        if daemon.args.extra.iter().any(|a| a == "mail") {
            return mail::run(daemon);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(16)
            .build()?;
        let result = rt.block_on(login::run(daemon));
        rt.shutdown_timeout(SHUTDOWN_GRACE);
        result
    })();
    mail_daemon::exit_on_fatal("pop3d", result)
}
