//! pop3d's (later imapd's) login service → its mail service
//! (`private/pop3-mail`): one authenticated session per connection. The
//! login process sends the client's end of a socketpair as SCM_RIGHTS
//! (`mail-session` does the fd passing), then one [`Handoff`] frame;
//! the mail process answers one byte, [`ACCEPTED`], once it holds both,
//! and from then on speaks the protocol to the client over the
//! socketpair while the login process relays the (TLS) stream.

use crate::auth::AuthUser;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The largest handoff frame: an [`AuthUser`] (a few hundred bytes) and
/// the bytes the client pipelined after its login command, at most
/// [`MAX_PENDING`].
pub const MAX_FRAME: u32 = 16 * 1024;

/// The most pipelined bytes handed over with a session.
pub const MAX_PENDING: usize = 8 * 1024;

/// The mail process's answer once it holds the session.
pub const ACCEPTED: u8 = b'K';

/// Who logged in, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The user, as authd answered.
    pub user: AuthUser,
    /// The client's address and port (for log lines).
    pub client: SocketAddr,
    /// The client's connection is encrypted.
    pub tls: bool,
    /// The login mechanism (`USER`, `PLAIN`), for the log.
    pub method: String,
    /// What the client sent after the login command, not yet answered.
    pub pending: Vec<u8>,
}
