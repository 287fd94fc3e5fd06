//! POP3 without I/O (RFC 1939, RFC 2449 CAPA and response codes, RFC 2595
//! STLS, RFC 5034 AUTH): bytes in, values and reply bytes out. pop3d owns
//! the sockets, the timers, authd and the Maildir; this crate owns what a
//! client sees.
//!
//! - [`line::LineReader`] splits the client's bytes into command lines,
//!   bounded by [`MAX_LINE`]; an overlong line is reported once and
//!   skipped to its end.
//! - [`command::parse`] turns one line into a [`command::Command`].
//! - [`authorization::Authorization`] is the AUTHORIZATION state of the
//!   login service: CAPA, STLS, USER/PASS and AUTH up to the moment a
//!   password must be checked.
//! - [`transaction::Transaction`] is the TRANSACTION and UPDATE states of
//!   the mail service over a fixed list of messages (sizes, UIDL values):
//!   deletions are marks until QUIT, and RETR/TOP name the message for the
//!   caller to stream through [`dot::DotStuffer`], which writes exactly the
//!   CRLF octets LIST announced.
//!
//! Severities: none; every malformed input is an `-ERR` reply.
#![forbid(unsafe_code)]

pub mod authorization;
pub mod command;
pub mod dot;
pub mod line;
pub mod transaction;

/// The longest command line accepted, CRLF included. RFC 2449 bounds
/// commands at 255 octets; an AUTH response carries a base64 PLAIN
/// message of a 256-byte user and a 1024-byte password (about 1.8 KB),
/// so the bound is that, not 255.
pub const MAX_LINE: usize = 2048;

/// The capabilities line by line, for CAPA (RFC 2449). `user` says
/// whether USER/PASS (and SASL PLAIN) may be used now; `stls` whether
/// STLS is offered (a TLS certificate is loaded and the session is not
/// yet encrypted). `IMPLEMENTATION` is not sent: it tells an attacker the
/// version and helps nobody else.
pub fn capabilities(user: bool, stls: bool, authenticated: bool) -> Vec<u8> {
    let mut out = b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n".to_vec();
    if !authenticated {
        if user {
            out.extend_from_slice(b"USER\r\nSASL PLAIN\r\n");
        }
        if stls {
            out.extend_from_slice(b"STLS\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Replies both services send, as fixed text.
pub mod reply {
    /// The response to a line longer than [`crate::MAX_LINE`].
    pub const LINE_TOO_LONG: &[u8] = b"-ERR Line too long.\r\n";
    /// The response to an unknown or malformed command.
    pub const UNKNOWN: &[u8] = b"-ERR Unknown command.\r\n";
    /// Wrong user or password (the same text for both).
    pub const AUTH_FAILED: &[u8] = b"-ERR [AUTH] Authentication failed.\r\n";
    /// USER/PASS or AUTH PLAIN on a plain connection from the network
    /// while `pop3_plaintext_auth = no` (Dovecot's words).
    pub const PLAINTEXT_DISALLOWED: &[u8] =
        b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n";
    /// authd or the mail service could not be reached or answered a
    /// temporary failure.
    pub const TEMP_FAIL: &[u8] =
        b"-ERR [SYS/TEMP] Temporary authentication failure, try again later.\r\n";
    /// After a successful login.
    pub const LOGGED_IN: &[u8] = b"+OK Logged in.\r\n";
    /// Another session holds the mailbox.
    pub const IN_USE: &[u8] = b"-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n";
    /// The mailbox cannot be opened.
    pub const MAILBOX_FAILED: &[u8] =
        b"-ERR [SYS/TEMP] Cannot open the mailbox, try again later.\r\n";
    /// The idle timer ran out.
    pub const IDLE_TIMEOUT: &[u8] = b"-ERR Disconnected for inactivity.\r\n";
    /// The greeting's error form when the client has too many sessions.
    pub const TOO_MANY_CLIENT: &[u8] =
        b"-ERR [SYS/TEMP] Too many connections from your address.\r\n";
    /// PASS or AUTH when the user already has too many sessions.
    pub const TOO_MANY_USER: &[u8] = b"-ERR [IN-USE] Too many sessions for this user.\r\n";
    /// Too many bad commands in one session.
    pub const TOO_MANY_ERRORS: &[u8] = b"-ERR Too many bad commands, closing.\r\n";
}

/// Drives every parser and both state machines with `bytes` as the
/// client's input: the fuzz target `pop3_command`, also replayed on the
/// committed corpus by the unit tests.
#[doc(hidden)]
pub fn fuzz_one(bytes: &[u8]) {
    use line::{Line, LineReader};
    let _ = command::parse(bytes);
    let mut reader = LineReader::new(MAX_LINE);
    reader.push(bytes);
    let mut auth = authorization::Authorization::new(authorization::Policy {
        tls_available: true,
        tls_active: false,
        plaintext_ok: true,
    });
    let entries =
        (0..3).map(|i| transaction::Entry { size: 10 * i, uidl: format!("{i:016X}") }).collect();
    let mut tx = transaction::Transaction::new(entries);
    while let Some(line) = reader.next_line() {
        let l = match &line {
            Line::Complete(l) => Some(l.as_slice()),
            Line::TooLong => None,
        };
        let _ = auth.line(l);
        if let transaction::Action::Send { top, .. } = tx.line(l) {
            let mut d = match top {
                Some(n) => dot::DotStuffer::top(n),
                None => dot::DotStuffer::retr(),
            };
            let mut out = Vec::new();
            d.feed(bytes, &mut out);
            let octets = d.octets();
            d.finish(&mut out);
            assert!(top.is_some() || octets == dot::crlf_size(bytes));
        }
    }
}
