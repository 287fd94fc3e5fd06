//! The AUTHORIZATION state (RFC 1939 §4, RFC 2449, RFC 2595, RFC 5034)
//! as the login service runs it: the commands allowed before login, and
//! the points where the caller must act (start TLS, check a password,
//! run a SASL exchange). A SASL exchange in progress is the caller's: it
//! passes the client's continuation lines to its SASL machine, not here.

use crate::command::{self, Command};

/// What the session may offer, fixed by the caller per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A certificate is loaded, so STLS can be offered.
    pub tls_available: bool,
    /// The connection is encrypted already (pop3s, or after STLS).
    pub tls_active: bool,
    /// Passwords may be sent without TLS on this connection
    /// (`pop3_plaintext_auth = yes`, or the client is on loopback).
    pub plaintext_ok: bool,
}

impl Policy {
    fn passwords_allowed(&self) -> bool {
        self.tls_active || self.plaintext_ok
    }
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes.
    Reply(Vec<u8>),
    /// Send `+OK Begin TLS negotiation.`, discard anything the client
    /// pipelined, run the handshake, then call
    /// [`Authorization::tls_started`].
    StartTls,
    /// Check this user's password (USER/PASS); on success the session
    /// leaves this state, on failure send [`crate::reply::AUTH_FAILED`].
    CheckPassword {
        /// The name from USER.
        user: String,
        /// The password from PASS.
        password: String,
    },
    /// Start a SASL exchange with this mechanism (upper case) and initial
    /// response.
    Sasl {
        /// The mechanism name.
        mechanism: String,
        /// The initial response, if sent with the command.
        initial: Option<String>,
    },
    /// Send `+OK Logging out.` and close.
    Quit,
    /// Send these bytes and close (too many errors).
    Close(Vec<u8>),
}

/// Bad commands and failed logins before the connection is closed.
pub const MAX_ERRORS: u32 = 10;

/// One connection's AUTHORIZATION state.
#[derive(Debug, Clone)]
pub struct Authorization {
    policy: Policy,
    user: Option<String>,
    errors: u32,
}

/// The text of STLS's go-ahead.
pub const BEGIN_TLS: &[u8] = b"+OK Begin TLS negotiation.\r\n";
/// The text of QUIT before login.
pub const LOGGING_OUT: &[u8] = b"+OK Logging out.\r\n";

impl Authorization {
    /// A new connection.
    pub fn new(policy: Policy) -> Authorization {
        Authorization { policy, user: None, errors: 0 }
    }

    /// The policy now.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// After a completed STLS handshake: forget what came before (RFC
    /// 2595: the client must issue CAPA again; a USER sent in clear is
    /// dropped).
    pub fn tls_started(&mut self) {
        self.policy.tls_active = true;
        self.user = None;
    }

    /// A login failed (wrong password, SASL error): counts as an error.
    /// `Some` when the connection must close now.
    pub fn failed(&mut self) -> Option<Vec<u8>> {
        self.user = None;
        self.errors += 1;
        (self.errors >= MAX_ERRORS).then(|| crate::reply::TOO_MANY_ERRORS.to_vec())
    }

    fn err(&mut self, text: Vec<u8>) -> Action {
        self.errors += 1;
        if self.errors > MAX_ERRORS {
            return Action::Close(crate::reply::TOO_MANY_ERRORS.to_vec());
        }
        Action::Reply(text)
    }

    /// Handles one complete line. `None` for an overlong line.
    pub fn line(&mut self, line: Option<&[u8]>) -> Action {
        let Some(line) = line else { return self.err(crate::reply::LINE_TOO_LONG.to_vec()) };
        match command::parse(line) {
            Ok(c) => self.command(c),
            Err(e) => self.err(e.reply()),
        }
    }

    /// Handles one command.
    pub fn command(&mut self, cmd: Command) -> Action {
        let p = self.policy;
        match cmd {
            Command::Capa => Action::Reply(crate::capabilities(
                p.passwords_allowed(),
                p.tls_available && !p.tls_active,
                false,
            )),
            Command::Stls if p.tls_active => self.err(b"-ERR TLS is already active.\r\n".to_vec()),
            Command::Stls if !p.tls_available => {
                self.err(b"-ERR TLS is not available.\r\n".to_vec())
            }
            Command::Stls => Action::StartTls,
            Command::User(_) | Command::Pass(_) | Command::Auth { mechanism: Some(_), .. }
                if !p.passwords_allowed() =>
            {
                self.user = None;
                self.err(crate::reply::PLAINTEXT_DISALLOWED.to_vec())
            }
            Command::User(u) => {
                self.user = Some(u);
                Action::Reply(b"+OK\r\n".to_vec())
            }
            Command::Pass(password) => match self.user.take() {
                Some(user) => Action::CheckPassword { user, password },
                None => self.err(b"-ERR No username given.\r\n".to_vec()),
            },
            Command::Apop => self.err(b"-ERR APOP is not enabled.\r\n".to_vec()),
            Command::Auth { mechanism: None, .. } => {
                // RFC 5034 leaves a bare AUTH undefined; clients that
                // predate CAPA (Outlook) expect the list, as Dovecot sends it.
                let list: &[u8] = if p.passwords_allowed() { b"PLAIN\r\n" } else { b"" };
                let mut out = b"+OK\r\n".to_vec();
                out.extend_from_slice(list);
                out.extend_from_slice(b".\r\n");
                Action::Reply(out)
            }
            Command::Auth { mechanism: Some(m), initial } => {
                self.user = None;
                if m != "PLAIN" {
                    return self.err(b"-ERR Unsupported authentication mechanism.\r\n".to_vec());
                }
                Action::Sasl { mechanism: m, initial }
            }
            Command::Quit => Action::Quit,
            Command::Noop => Action::Reply(b"+OK\r\n".to_vec()),
            Command::Stat
            | Command::List(_)
            | Command::Retr(_)
            | Command::Dele(_)
            | Command::Rset
            | Command::Top(..)
            | Command::Uidl(_) => {
                self.err(b"-ERR Unknown command in AUTHORIZATION state: log in first.\r\n".to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Policy {
        Policy { tls_available: true, tls_active: false, plaintext_ok: false }
    }

    #[test]
    fn plaintext_refused_then_allowed_after_stls() {
        let mut a = Authorization::new(plain());
        assert_eq!(
            a.line(Some(b"USER suporte")),
            Action::Reply(crate::reply::PLAINTEXT_DISALLOWED.to_vec())
        );
        let Action::Reply(capa) = a.line(Some(b"CAPA")) else { panic!() };
        let capa = String::from_utf8(capa).unwrap_or_default();
        assert!(capa.contains("STLS\r\n") && !capa.contains("USER\r\n"), "{capa}");
        assert_eq!(a.line(Some(b"STLS")), Action::StartTls);
        a.tls_started();
        let Action::Reply(capa) = a.line(Some(b"CAPA")) else { panic!() };
        let capa = String::from_utf8(capa).unwrap_or_default();
        assert!(!capa.contains("STLS") && capa.contains("USER\r\nSASL PLAIN\r\n"), "{capa}");
        assert_eq!(a.line(Some(b"user suporte")), Action::Reply(b"+OK\r\n".to_vec()));
        assert_eq!(
            a.line(Some(b"pass suporte")),
            Action::CheckPassword { user: "suporte".into(), password: "suporte".into() }
        );
    }

    #[test]
    fn mailbox_commands_need_login() {
        let mut a = Authorization::new(Policy { plaintext_ok: true, ..plain() });
        for c in ["STAT", "LIST", "RETR 1", "DELE 1", "RSET", "TOP 1 1", "UIDL"] {
            assert!(
                matches!(a.line(Some(c.as_bytes())), Action::Reply(r) if r.starts_with(b"-ERR")),
                "{c}"
            );
        }
        assert_eq!(a.line(Some(b"PASS x")), Action::Reply(b"-ERR No username given.\r\n".to_vec()));
    }
}
