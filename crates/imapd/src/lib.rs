//! SUMMARY
//!   imapd - the Postern IMAP server
//!
//! DESCRIPTION
//!   imapd serves users' Maildirs over IMAP4rev1 (RFC 3501) and
//!   IMAP4rev2 (RFC 9051) as two services of one program, split as
//!   Dovecot splits them
//!   (docs/ARCHITECTURE.md, "imapd"), in the same way as pop3d:
//!
//!   - The login service (`imap` on 143, `imaps` on 993 with
//!     `imap_tls_wrappermode = yes`): type inet, unprivileged
//!     (mail_owner), many connections per process. It speaks the Not
//!     Authenticated state: the greeting with CAPABILITY, CAPABILITY,
//!     NOOP, LOGOUT, ID, STARTTLS (RFC 2595) with smtpd's certificate,
//!     LOGIN and AUTHENTICATE PLAIN with SASL-IR (RFC 4959), whose
//!     passwords authd checks. Once a password is right it hands the
//!     session to the mail service (mail-session, SCM_RIGHTS), answers
//!     the login command and relays bytes between the client's (TLS)
//!     connection and the mail process.
//!   - The mail service (`imap-mail`, `args = ["mail"]`): type unix, not
//!     unprivileged, started on demand by master, one session per
//!     process. It becomes the user (never reads a mailbox as root) and
//!     serves the Authenticated and Selected states on the Maildir and
//!     its Maildir++ folders through mail-maildir's index, so UIDs are
//!     pop3d's (its UIDL is UID and UIDVALIDITY in hex).
//!
//! SECURITY
//!   The login service talks to anyone and runs as mail_owner; it never
//!   opens a mailbox. The mail service talks only to the login service
//!   and changes to the user's uid before it opens anything. Passwords
//!   are refused on a plain connection from a non-loopback address
//!   unless `imap_plaintext_auth = yes` (LOGINDISABLED is announced).
//!   Every input is bounded before it is buffered: command lines
//!   (`imap_max_line_length`, 8 KB before login), literals (1 KB before
//!   login, `message_size_limit` for APPEND, refused from the
//!   announcement without reading them), bad commands per session,
//!   connections per client address and sessions per user, the time
//!   between commands (`imap_idle_timeout`, which IDLE restarts).
//!
//! CONFIGURATION
//!   imap_idle_timeout, imap_client_connection_limit,
//!   imap_user_connection_limit, imap_plaintext_auth,
//!   imap_tls_wrappermode, imap_max_line_length, message_size_limit,
//!   home_mailbox, smtpd_tls_cert_file, smtpd_tls_key_file,
//!   smtpd_tls_chain_files, smtpd_tls_protocols, mail_name, syslog_name.
//!
//! DIAGNOSTICS
//!   Dovecot's words in Postfix's line format: `Login: user=<NAME>,
//!   method=LOGIN, rip=ADDR, TLS`, `warning: [ADDR]: IMAP PLAIN
//!   authentication failed: user=<NAME>`, and from the mail process
//!   `Disconnected: Logged out in=N out=M` (`Connection closed`,
//!   `Inactivity`).
//!
//! STANDARDS
//!   RFC 3501 (IMAP4rev1), RFC 2177 (IDLE), RFC 2971 (ID), RFC 3691
//!   (UNSELECT), RFC 4315 (UIDPLUS), RFC 4959 (SASL-IR), RFC 5161
//!   (ENABLE), RFC 2342 (NAMESPACE), RFC 6851 (MOVE), RFC 7888 (LITERAL+),
//!   RFC 3348 (CHILDREN), RFC 6154 (SPECIAL-USE), RFC 7162 (CONDSTORE,
//!   QRESYNC), RFC 9051 (IMAP4rev2), RFC 4731 (ESEARCH), RFC 5182
//!   (SEARCHRES), RFC 6855 (UTF8=ACCEPT), RFC 5258 (LIST-EXTENDED),
//!   RFC 5819 (LIST-STATUS), RFC 3502 (MULTIAPPEND).
#![forbid(unsafe_code)]

mod caps;
mod fetch;
mod fuzz;
mod list;
mod login;
mod mail;
mod pre;
mod search;
mod session;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

#[doc(hidden)]
pub use fuzz::fuzz_one;

/// How long exit waits for sessions already handed over.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The program: the mail service with `mail` among the extra
/// arguments, else the login service.
pub fn main() -> ExitCode {
    let result = (|| {
        let daemon = mail_daemon::init("imapd")?;
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
    mail_daemon::exit_on_fatal("imapd", result)
}
