//! Every message that crosses a process boundary in Postern, and the
//! framing that carries them over Unix sockets and pipes.
//!
//! Conversations (the only allowed edges, as OpenSMTPD's `setup_peers`):
//! - child → master, status pipe on fd [`status::STATUS_FD`]: [`status::ChildStatus`].
//! - operator tools → master, `pid/master.ctl`: [`control::ControlRequest`] / [`control::ControlReply`].
//! - smtpd, pickup, sendmail, postqueue → qmgr (`public/qmgr`), sendmail → pickup
//!   (`public/pickup`): [`trigger::Trigger`], no reply.
//! - qmgr → delivery agents (`private/local`, later `private/smtp`):
//!   [`delivery::DeliveryRequest`], answered by one [`delivery::DeliveryReply`].
//! - smtpd → anvil (`private/anvil`), one persistent link per smtpd process:
//!   [`anvil::AnvilRequest`], a `Connect` answered by one [`anvil::ConnectReply`].
//! - smtpd, pop3d, imapd → authd (`private/authd`), connections kept for
//!   many requests, one at a time: [`auth::AuthRequest`] answered by one
//!   [`auth::AuthReply`] ([`auth::Client`] is the client side).
//! - pop3d's login service → its mail service (`private/pop3-mail`): an
//!   fd by SCM_RIGHTS, then one [`session::Handoff`], answered by one byte.
//!
//! Each frame carries [`frame::PROTOCOL_VERSION`]; a peer speaking another
//! version is refused at its first frame. Types here are the wire types;
//! `mail-types` values are converted at the edges. No policy lives here.
#![forbid(unsafe_code)]

pub mod accept;
pub mod anvil;
pub mod auth;
pub mod control;
pub mod delivery;
pub mod frame;
pub mod session;
pub mod status;
pub mod trigger;

pub use frame::{
    Error, read_frame, read_frame_async, read_request_async, write_frame, write_frame_async,
};

/// Socket names, relative to the queue directory (Postfix `mail_proto.h`).
/// `QMGR`, `PICKUP`, `LOCAL` and `SMTP` are only the defaults of
/// master.toml: senders take the path from
/// `mail_config::MasterFile::socket_path` (or `Daemon::socket_path`), so
/// a service moved or renamed there is found or reported by name.
pub mod sockets {
    /// qmgr's trigger socket.
    pub const QMGR: &str = "public/qmgr";
    /// pickup's trigger socket.
    pub const PICKUP: &str = "public/pickup";
    /// The local delivery agent.
    pub const LOCAL: &str = "private/local";
    /// anvil, the per-client connection counter smtpd asks.
    pub const ANVIL: &str = "private/anvil";
    /// authd, the one process that checks passwords.
    pub const AUTHD: &str = "private/authd";
    /// The SMTP client delivery agent.
    pub const SMTP: &str = "private/smtp";
    /// master's control socket.
    pub const MASTER_CONTROL: &str = "pid/master.ctl";
    /// master's pid file.
    pub const MASTER_PID: &str = "pid/master.pid";
    /// The lock master holds, and every worker inherits, while an instance runs.
    pub const MASTER_LOCK: &str = "pid/master.lock";
}
