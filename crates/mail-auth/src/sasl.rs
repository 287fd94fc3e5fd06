//! SASL mechanisms, server side, sans I/O: PLAIN (RFC 4616) and LOGIN
//! (the de-facto mechanism of draft-murchison-sasl-login, as Postfix and
//! Cyrus speak it).
//!
//! The protocol-neutral part only: base64 text in, base64 text out. The
//! protocol adds its own framing (`334 ` in SMTP, RFC 4954 §4; `+ ` in
//! IMAP and POP3) and its own cancel (`*`), and checks the credentials
//! through authd. smtpd, pop3d and imapd all use this.
//!
//! ```text
//! let mut sasl = Sasl::new();
//! match sasl.start("PLAIN", initial) {          // AUTH PLAIN [initial]
//!     Step::Challenge(c) => send("334 " + c),   // then sasl.step(line)
//!     Step::Done(creds)  => ask authd,
//!     Step::Error(e)     => 501 / 535 / 504,
//! }
//! ```
//!
//! Every input is bounded: a response of at most [`MAX_RESPONSE`] base64
//! characters, a user name of at most [`MAX_USER`] bytes and a password of
//! at most [`MAX_PASSWORD`] bytes. User names must be UTF-8 without
//! control characters; passwords must be UTF-8 (RFC 4616 §2) and may hold
//! anything but NUL. Nothing here panics on any input. Severities: none;
//! every problem is an [`ErrorKind`] for the protocol to answer.

use base64ct::{Base64, Encoding};
use std::fmt;

/// The longest response, in base64 characters, that a step accepts
/// (enough for the longest user and password: (2 + 256 + 256 + 1024) × 4/3).
pub const MAX_RESPONSE: usize = 4096;
/// The longest user name (authcid or authzid), in bytes.
pub const MAX_USER: usize = 256;
/// The longest password, in bytes.
pub const MAX_PASSWORD: usize = 1024;

/// The LOGIN challenges, base64 of `Username:` and `Password:` as
/// Postfix (through Cyrus SASL) sends them.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// See [`LOGIN_USERNAME_CHALLENGE`].
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// The mechanisms offered, in the order servers list them
/// (`AUTH PLAIN LOGIN`).
pub const MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];

/// A SASL mechanism this module speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// `LOGIN`.
    Login,
}

impl Mechanism {
    /// The mechanism named `name` (case-insensitive, RFC 4422 §3.1), if
    /// supported.
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The upper-case name, as announced and logged.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the client proved to know. The password is never printed:
/// `Debug` shows `password: <hidden>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity (authcid): UTF-8, no control
    /// characters, 1..=[`MAX_USER`] bytes.
    pub user: String,
    /// The password: UTF-8 without NUL, at most [`MAX_PASSWORD`] bytes
    /// (may be empty; authd refuses it then).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The response is not valid base64 (SMTP: `501 5.5.2`).
    #[error("invalid base64 data in the response")]
    InvalidBase64,
    /// The decoded message does not have the mechanism's shape, or a
    /// field is not valid (no NUL separators, an empty or non-UTF-8 user
    /// name, control characters in it, a NUL in the password). SMTP:
    /// `501 5.5.2`.
    #[error("malformed authentication message")]
    Malformed,
    /// The client asked for proxy authentication (an authzid other than
    /// the authcid); refused, as Postern has no proxy users. SMTP: `535 5.7.8`.
    #[error("authorization identity differs from the authentication identity")]
    AuthzidMismatch,
    /// The mechanism is not one of [`MECHANISMS`] (SMTP: `504 5.5.4`).
    #[error("unsupported authentication mechanism")]
    UnsupportedMechanism,
    /// The response, the user name or the password is longer than allowed
    /// (SMTP: `500 5.5.6`).
    #[error("authentication message too long")]
    TooLong,
    /// `step` was called when no exchange was waiting for a response
    /// (a bug in the caller, reported rather than panicking).
    #[error("no authentication exchange in progress")]
    NotInProgress,
}

/// The outcome of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this base64 challenge (possibly empty) and pass the client's
    /// next line to [`Sasl::step`].
    Challenge(String),
    /// The exchange is complete: check these credentials.
    Done(Credentials),
    /// The exchange failed; it is over.
    Error(ErrorKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// PLAIN without an initial response: waiting for it.
    PlainResponse,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password of this user.
    LoginPassword(String),
}

/// One SASL exchange. Reusable: after `Done` or `Error`, `start` begins
/// the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    state: State,
}

impl Default for Sasl {
    fn default() -> Sasl {
        Sasl::new()
    }
}

impl Sasl {
    /// An idle exchange.
    pub fn new() -> Sasl {
        Sasl { state: State::Idle }
    }

    /// Whether a challenge is outstanding (the next client line is a
    /// response, not a command).
    pub fn in_progress(&self) -> bool {
        self.state != State::Idle
    }

    /// Abandons the exchange (the client sent `*`, or the connection
    /// ended).
    pub fn cancel(&mut self) {
        self.state = State::Idle;
    }

    /// Starts `mechanism` (as the client named it) with the optional
    /// initial response (RFC 4954 §4: base64, `=` for an empty one).
    pub fn start(&mut self, mechanism: &str, initial: Option<&str>) -> Step {
        self.state = State::Idle;
        let Some(mech) = Mechanism::parse(mechanism) else {
            return Step::Error(ErrorKind::UnsupportedMechanism);
        };
        match (mech, initial) {
            (Mechanism::Plain, None) => {
                self.state = State::PlainResponse;
                Step::Challenge(String::new())
            }
            (Mechanism::Plain, Some(initial)) => finish(decode_initial(initial).and_then(plain)),
            (Mechanism::Login, None) => {
                self.state = State::LoginUser;
                Step::Challenge(LOGIN_USERNAME_CHALLENGE.to_owned())
            }
            // Some clients send the user name as LOGIN's initial response
            // (RFC 4954 allows one for any mechanism); an empty one means
            // "ask me".
            (Mechanism::Login, Some(initial)) => match decode_initial(initial) {
                Ok(bytes) if bytes.is_empty() => {
                    self.state = State::LoginUser;
                    Step::Challenge(LOGIN_USERNAME_CHALLENGE.to_owned())
                }
                Ok(bytes) => self.login_user(&bytes),
                Err(e) => Step::Error(e),
            },
        }
    }

    /// Feeds the client's response to the last challenge (base64, without
    /// the protocol's framing or line ending).
    pub fn step(&mut self, response: &str) -> Step {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Idle => Step::Error(ErrorKind::NotInProgress),
            State::PlainResponse => finish(decode(response).and_then(plain)),
            State::LoginUser => match decode(response) {
                Ok(bytes) => self.login_user(&bytes),
                Err(e) => Step::Error(e),
            },
            State::LoginPassword(user) => match decode(response).and_then(|b| password(&b)) {
                Ok(password) => Step::Done(Credentials { user, password }),
                Err(e) => Step::Error(e),
            },
        }
    }

    fn login_user(&mut self, bytes: &[u8]) -> Step {
        match user(bytes) {
            Ok(user) => {
                self.state = State::LoginPassword(user);
                Step::Challenge(LOGIN_PASSWORD_CHALLENGE.to_owned())
            }
            Err(e) => Step::Error(e),
        }
    }
}

fn finish(result: Result<Credentials, ErrorKind>) -> Step {
    match result {
        Ok(c) => Step::Done(c),
        Err(e) => Step::Error(e),
    }
}

/// An initial response: `=` is the empty one (RFC 4954 §4).
fn decode_initial(text: &str) -> Result<Vec<u8>, ErrorKind> {
    if text == "=" { Ok(Vec::new()) } else { decode(text) }
}

fn decode(text: &str) -> Result<Vec<u8>, ErrorKind> {
    if text.len() > MAX_RESPONSE {
        return Err(ErrorKind::TooLong);
    }
    // Base64::decode_vec is strict (canonical padding, no whitespace), as
    // RFC 4648 §3.3 asks of a receiver that does not expect anything else.
    Base64::decode_vec(text).map_err(|_| ErrorKind::InvalidBase64)
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`.
fn plain(bytes: Vec<u8>) -> Result<Credentials, ErrorKind> {
    let mut parts = bytes.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ErrorKind::Malformed);
    };
    let user = user(authcid)?;
    let password = password(passwd)?;
    if !authzid.is_empty() {
        let authzid = std::str::from_utf8(authzid).map_err(|_| ErrorKind::Malformed)?;
        if authzid.len() > MAX_USER {
            return Err(ErrorKind::TooLong);
        }
        if authzid != user {
            return Err(ErrorKind::AuthzidMismatch);
        }
    }
    Ok(Credentials { user, password })
}

fn user(bytes: &[u8]) -> Result<String, ErrorKind> {
    if bytes.len() > MAX_USER {
        return Err(ErrorKind::TooLong);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ErrorKind::Malformed)?;
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(ErrorKind::Malformed);
    }
    Ok(text.to_owned())
}

fn password(bytes: &[u8]) -> Result<String, ErrorKind> {
    if bytes.len() > MAX_PASSWORD {
        return Err(ErrorKind::TooLong);
    }
    if bytes.contains(&0) {
        return Err(ErrorKind::Malformed);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| ErrorKind::Malformed)
}

/// Base64 of `bytes`, for tests and clients (an SMTP client's `AUTH PLAIN`).
pub fn encode(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(user: &str, password: &str) -> Step {
        Step::Done(Credentials { user: user.into(), password: password.into() })
    }

    #[test]
    fn plain_with_initial_response() {
        let mut s = Sasl::new();
        assert_eq!(
            s.start("PLAIN", Some(&encode(b"\0suporte\0segredo"))),
            done("suporte", "segredo")
        );
        assert!(!s.in_progress());
        // Lower-case mechanism names are the same mechanism.
        assert_eq!(s.start("plain", Some(&encode(b"\0a\0b"))), done("a", "b"));
        // An authzid equal to the authcid is no proxy.
        assert_eq!(s.start("PLAIN", Some(&encode(b"ana\0ana\0x y"))), done("ana", "x y"));
    }

    #[test]
    fn plain_without_initial_response() {
        let mut s = Sasl::new();
        assert_eq!(s.start("PLAIN", None), Step::Challenge(String::new()));
        assert!(s.in_progress());
        assert_eq!(s.step(&encode(b"\0suporte\0suporte")), done("suporte", "suporte"));
        assert!(!s.in_progress());
        assert_eq!(s.step("AA=="), Step::Error(ErrorKind::NotInProgress));
    }

    #[test]
    fn plain_empty_initial_response_asks() {
        // `=` is an empty initial response: nothing to parse, so malformed
        // for PLAIN, whose message cannot be empty.
        let mut s = Sasl::new();
        assert_eq!(s.start("PLAIN", Some("=")), Step::Error(ErrorKind::Malformed));
        assert_eq!(s.start("PLAIN", Some("")), Step::Error(ErrorKind::Malformed));
    }

    #[test]
    fn plain_authzid_mismatch_is_refused() {
        let mut s = Sasl::new();
        assert_eq!(
            s.start("PLAIN", Some(&encode(b"root\0suporte\0suporte"))),
            Step::Error(ErrorKind::AuthzidMismatch)
        );
    }

    #[test]
    fn plain_malformed() {
        let mut s = Sasl::new();
        for bad in [
            &b"suporte"[..],
            b"\0suporte",
            b"\0\0password",
            b"\0us\x01er\0p",
            b"\0us\ner\0p",
            b"\0\xff\0p",
            b"\0u\0p\0extra",
            b"\xff\0u\0p",
        ] {
            assert_eq!(
                s.start("PLAIN", Some(&encode(bad))),
                Step::Error(ErrorKind::Malformed),
                "{bad:?}"
            );
        }
        // A NUL in the user name cannot happen (it is the separator), but a
        // third NUL lands in the password and is refused.
        assert_eq!(
            s.start("PLAIN", Some(&encode(b"\0a\0b\0c"))),
            Step::Error(ErrorKind::Malformed)
        );
        // An empty password parses; authd refuses it.
        assert_eq!(s.start("PLAIN", Some(&encode(b"\0a\0"))), done("a", ""));
    }

    #[test]
    fn invalid_base64() {
        let mut s = Sasl::new();
        for bad in ["!!!!", "AGE", "AGEAYg= =", "AGEAYg", " AGEAYg==", "AGEAYg==\r\n", "*"] {
            assert_eq!(
                s.start("PLAIN", Some(bad)),
                Step::Error(ErrorKind::InvalidBase64),
                "{bad:?}"
            );
        }
        s.start("PLAIN", None);
        assert_eq!(s.step("%%%"), Step::Error(ErrorKind::InvalidBase64));
        assert!(!s.in_progress());
        s.start("LOGIN", None);
        assert_eq!(s.step("not base64"), Step::Error(ErrorKind::InvalidBase64));
    }

    #[test]
    fn login_both_steps() {
        let mut s = Sasl::new();
        assert_eq!(s.start("LOGIN", None), Step::Challenge("VXNlcm5hbWU6".into()));
        assert_eq!(encode(b"Username:"), LOGIN_USERNAME_CHALLENGE);
        assert_eq!(encode(b"Password:"), LOGIN_PASSWORD_CHALLENGE);
        assert_eq!(s.step(&encode(b"suporte")), Step::Challenge("UGFzc3dvcmQ6".into()));
        assert!(s.in_progress());
        assert_eq!(s.step(&encode(b"suporte")), done("suporte", "suporte"));
        assert!(!s.in_progress());
    }

    #[test]
    fn login_with_initial_user_name() {
        let mut s = Sasl::new();
        assert_eq!(
            s.start("LOGIN", Some(&encode(b"maria"))),
            Step::Challenge(LOGIN_PASSWORD_CHALLENGE.into())
        );
        assert_eq!(s.step(&encode(b"p@ss")), done("maria", "p@ss"));
        assert_eq!(s.start("LOGIN", Some("=")), Step::Challenge(LOGIN_USERNAME_CHALLENGE.into()));
    }

    #[test]
    fn login_bad_fields() {
        let mut s = Sasl::new();
        s.start("LOGIN", None);
        assert_eq!(s.step(&encode(b"a\0b")), Step::Error(ErrorKind::Malformed));
        s.start("LOGIN", None);
        assert_eq!(s.step(""), Step::Error(ErrorKind::Malformed), "empty user name");
        s.start("LOGIN", None);
        s.step(&encode(b"u"));
        assert_eq!(s.step(&encode(b"p\0q")), Step::Error(ErrorKind::Malformed));
        // An empty password parses (authd refuses it).
        s.start("LOGIN", None);
        s.step(&encode(b"u"));
        assert_eq!(s.step(""), done("u", ""));
    }

    #[test]
    fn unsupported_mechanism() {
        let mut s = Sasl::new();
        for m in ["CRAM-MD5", "", "PLAINX", "XOAUTH2"] {
            assert_eq!(s.start(m, None), Step::Error(ErrorKind::UnsupportedMechanism));
        }
        assert!(!s.in_progress());
    }

    #[test]
    fn over_long() {
        let mut s = Sasl::new();
        let long_user = "u".repeat(MAX_USER + 1);
        let ok_user = "u".repeat(MAX_USER);
        assert_eq!(
            s.start("PLAIN", Some(&encode(format!("\0{long_user}\0p").as_bytes()))),
            Step::Error(ErrorKind::TooLong)
        );
        assert_eq!(
            s.start("PLAIN", Some(&encode(format!("{long_user}\0{ok_user}\0p").as_bytes()))),
            Step::Error(ErrorKind::TooLong)
        );
        assert_eq!(
            s.start("PLAIN", Some(&encode(format!("\0{ok_user}\0p").as_bytes()))),
            done(&ok_user, "p")
        );
        let long_pass = "p".repeat(MAX_PASSWORD + 1);
        assert_eq!(
            s.start("PLAIN", Some(&encode(format!("\0u\0{long_pass}").as_bytes()))),
            Step::Error(ErrorKind::TooLong)
        );
        let ok_pass = "p".repeat(MAX_PASSWORD);
        let longest = encode(format!("{ok_user}\0{ok_user}\0{ok_pass}").as_bytes());
        assert!(longest.len() <= MAX_RESPONSE);
        assert_eq!(s.start("PLAIN", Some(&longest)), done(&ok_user, &ok_pass));
        assert_eq!(
            s.start("PLAIN", Some(&"A".repeat(MAX_RESPONSE + 4))),
            Step::Error(ErrorKind::TooLong)
        );
        s.start("LOGIN", None);
        assert_eq!(s.step(&encode(long_user.as_bytes())), Step::Error(ErrorKind::TooLong));
    }

    #[test]
    fn password_is_not_debug_printed() {
        let c = Credentials { user: "suporte".into(), password: "segredo".into() };
        let shown = format!("{c:?} {:?}", Step::Done(c.clone()));
        assert!(!shown.contains("segredo"), "{shown}");
        assert!(shown.contains("suporte"));
    }

    proptest! {
        #[test]
        fn never_panics(mech in "(PLAIN|LOGIN|plain|x)", initial in proptest::option::of(".{0,80}"), steps in proptest::collection::vec(".{0,80}", 0..4)) {
            let mut s = Sasl::new();
            let mut step = s.start(&mech, initial.as_deref());
            for r in &steps {
                step = s.step(r);
            }
            if let Step::Done(c) = step {
                prop_assert!(!c.user.is_empty() && c.user.len() <= MAX_USER);
                prop_assert!(c.password.len() <= MAX_PASSWORD);
            }
        }

        #[test]
        fn any_bytes_plain(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut s = Sasl::new();
            if let Step::Done(c) = s.start("PLAIN", Some(&encode(&bytes))) {
                prop_assert!(!c.user.chars().any(char::is_control));
                prop_assert!(!c.password.contains('\0'));
            }
        }
    }
}
