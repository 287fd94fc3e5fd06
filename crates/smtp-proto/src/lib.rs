//! Sans-I/O SMTP: the server side of RFC 5321 as a state machine, the
//! command-line parser it uses, and a reply-line parser for clients.
//!
//! Bytes go in ([`Server::feed`]), values come out ([`Server::next_event`]).
//! The state machine owns the protocol: command syntax, the order of
//! commands, PIPELINING (RFC 2920), DATA framing and dot-unstuffing
//! (RFC 5321 §4.1.1.4, §4.5.2; strict `CRLF . CRLF` against SMTP
//! smuggling unless the driver opts out), line and size limits (RFC 5321 §4.5.3, RFC 1870),
//! error counting (with Postfix's junk-command rule), which command each
//! reply answers (for the driver's counters and logs), and Postfix's reply
//! texts. DATA content can be taken while it arrives
//! ([`Server::take_data`]), so a driver need not hold a whole message.
//!
//! It does not do I/O, TLS, SASL decoding, queueing or policy: the driver
//! owns the socket and answers each MAIL, RCPT, DATA, STARTTLS and AUTH
//! decision. Used by `smtpd` (async tokio driver), by `sendmail -bs`
//! (synchronous stdin/stdout driver), and by the SMTP client and test
//! harness through [`parse_reply_line`].
#![forbid(unsafe_code)]

mod command;
mod reply;
mod server;
mod verb;

pub use command::{
    Body, Command, MAX_AUTH_LINE, MAX_COMMAND_LINE, MailParams, RcptParams, parse_command,
};
pub use reply::{MAX_REPLY_LINE, Reply, ReplyError, parse_reply_line};
pub use server::{Event, HARD_MAX_MESSAGE_SIZE, Server, ServerParams};
pub use verb::{Answered, Verb};
