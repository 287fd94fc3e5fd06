//! The server side of an SMTP session as a sans-I/O state machine.
//!
//! The driver (smtpd's tokio loop, or `sendmail -bs` on stdin/stdout) feeds
//! the bytes it reads with [`Server::feed`] and then drains
//! [`Server::next_event`] until it returns `None`, writing every
//! [`Event::Reply`] to the client. `Mail`, `Rcpt`, `Message`, `StartTls` and
//! `Auth` events are decisions: the machine stops producing events until the
//! driver answers with [`Server::accept`], [`Server::reject`],
//! [`Server::message_queued`] or [`Server::auth_challenge`]. This keeps
//! pipelined commands (RFC 2920) answered strictly in order.
//!
//! Message content comes either after DATA (dot-stuffed, ended by
//! `CRLF . CRLF`) or in BDAT chunks (RFC 3030: exactly the announced
//! octets, no stuffing, no end marker, LAST ends the message). Both end
//! in the same [`Event::Message`], and both are normalized the same
//! way: CRLF and bare LF become LF, a bare CR is kept.

use std::collections::VecDeque;

use mail_types::{Address, EnhancedStatus};

use crate::command::{
    Command, MailParams, RcptParams, bad_syntax, bdat_syntax, line_limit, line_too_long,
    parse_command, split_verb,
};
use crate::reply::Reply;
use crate::verb::{Answered, Verb};

/// What the server advertises and enforces. Built by the driver from
/// main.toml (the field comments name the Postfix parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerParams {
    /// `myhostname`: in the HELO/EHLO reply, 221 and 421 replies.
    pub hostname: String,
    /// Expanded `smtpd_banner`, sent as `220 {banner}`.
    pub banner: String,
    /// `message_size_limit`; advertised as SIZE; 0 means no limit.
    pub max_message_size: u64,
    /// `smtpd_recipient_limit`; 0 means no limit.
    pub max_recipients: usize,
    /// `smtpd_hard_error_limit`: after this many error replies the
    /// session ends with 421; 0 means no limit.
    pub hard_error_limit: u32,
    /// `smtpd_helo_required`.
    pub helo_required: bool,
    /// The inverse of `disable_vrfy_command`.
    pub vrfy_enabled: bool,
    /// Whether STARTTLS is advertised (before TLS is active).
    pub starttls_offered: bool,
    /// SASL mechanisms advertised with AUTH; empty means AUTH is off.
    pub auth_mechanisms: Vec<String>,
    /// Whether a "." line ended by a bare LF (or following one) ends DATA.
    ///
    /// `false` for smtpd: RFC 5321 §4.1.1.4 ends the data only at
    /// `CRLF . CRLF`, and accepting anything looser lets text after a
    /// bare-LF dot run as new commands (SMTP smuggling, CVE-2023-51764).
    /// Bare LFs still end lines inside the message, as Postfix's
    /// `smtpd_forbid_bare_newline = normalize` does. `true` only for
    /// `sendmail -bs`, whose local input often comes from a pipe with bare
    /// LFs and which has no upstream MTA to disagree with.
    pub bare_lf_ends_data: bool,
}

/// The most octets of message content ever buffered, whatever
/// `max_message_size` says (0, "no limit", included); past it DATA is
/// answered `552 5.3.4`. 1 GiB stays well under the queue file's own
/// content limit (`mail_queue::format::MAX_CONTENT`, 2 GiB), leaving room
/// for the headers added on the way in; this crate does not depend on
/// mail-queue, so the value is kept here.
pub const HARD_MAX_MESSAGE_SIZE: u64 = 1 << 30;

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write this reply to the client (encode with [`Reply::to_bytes`]).
    Reply(Reply),
    /// MAIL FROM passed syntax and size checks; `from` is `None` for `<>`.
    /// Answer with `accept()` (250 2.1.0 Ok) or `reject(reply)`.
    Mail { from: Option<Address>, params: MailParams },
    /// RCPT TO passed syntax and recipient-count checks.
    /// Answer with `accept()` (250 2.1.5 Ok) or `reject(reply)`.
    Rcpt { to: Address, params: RcptParams },
    /// VRFY of a syntactically valid address (RFC 5321 §3.5.1), when
    /// enabled. Answer with `accept()` (252 2.0.0 ADDRESS: we will try) or
    /// `reject(reply)` (550 5.1.1 for an unknown local user, as Postfix).
    Vrfy { address: Address },
    /// A complete message (after DATA or the BDAT LAST chunk):
    /// dot-unstuffed (DATA), every line ending normalized to LF.
    /// A driver that took parts of it with [`Server::take_data`] gets only
    /// the rest here.
    /// Answer with `message_queued(id)` once it is on stable storage, or `reject(reply)`.
    Message { content: Vec<u8> },
    /// The client asked for STARTTLS. `accept()` sends `220 2.0.0 Ready to
    /// start TLS`; after the handshake call [`Server::tls_started`].
    StartTls,
    /// AUTH with a mechanism we advertise. Answer with `accept()`
    /// (235 2.7.0), `auth_challenge()` (334) or `reject(reply)`.
    Auth { mechanism: String, initial: Option<String> },
    /// The client's answer to a 334 challenge (RFC 4954 §4), still base64.
    AuthResponse { response: String },
    /// Close the connection (after 221 or any 421).
    Close,
}

/// The decision the driver owes us.
#[derive(Debug)]
enum Pending {
    Mail(Option<Address>, bool),
    Rcpt,
    Vrfy(String),
    Message,
    StartTls,
    Auth,
}

/// How incoming bytes are read.
#[derive(Debug)]
enum Mode {
    /// Command lines.
    Command,
    /// The DATA stream (RFC 5321 §4.1.1.4).
    Data(DataState),
    /// One SASL response line after a 334.
    AuthResponse,
    /// The octets of one BDAT chunk (RFC 3030 §2).
    Bdat(ChunkState),
}

#[derive(Debug)]
struct ChunkState {
    /// Octets of the chunk not read yet.
    remaining: u64,
    /// The announced size, for `250 2.0.0 Ok: N bytes`.
    size: u64,
    /// BDAT ... LAST.
    last: bool,
    /// The chunk is read only to be dropped, then answered with this.
    refusal: Option<Reply>,
}

/// A message arriving in BDAT chunks, from the first chunk to LAST.
#[derive(Debug, Default)]
struct BdatMessage {
    /// Octets of normalized content seen, buffered or not.
    size: u64,
    /// The content passed the size limit; `content` is no longer filled.
    too_big: bool,
    /// The last octet seen was a CR, held back: it may be half a CRLF
    /// split across chunks.
    held_cr: bool,
    content: Vec<u8>,
}

#[derive(Debug)]
struct DataState {
    /// The next byte starts a line (where "." and dot-stuffing matter).
    at_line_start: bool,
    /// The previous line ended with CRLF (or this is the first line), so a
    /// "." line here may be the first half of `CRLF . CRLF`.
    after_crlf: bool,
    /// Octets of normalized content seen, buffered or not.
    size: u64,
    /// The content passed the size limit; `content` is no longer filled.
    too_big: bool,
    content: Vec<u8>,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Server {
    params: ServerParams,
    input: Vec<u8>,
    /// Bytes of `input` already consumed; compacted on the next `feed`.
    pos: usize,
    /// Events, each with what it answers (replies only).
    out: VecDeque<(Event, Option<Answered>)>,
    mode: Mode,
    pending: Option<Pending>,
    /// The command the next reply answers.
    answering: Option<Answered>,
    /// What the reply last returned by `next_event` answered.
    answered: Option<Answered>,
    /// The last command line read, for `lost connection after CMD`.
    last_command: &'static str,
    /// Junk commands so far, and `smtpd_junk_command_limit` (None: not counted).
    junk: u32,
    junk_limit: Option<u32>,
    /// STARTTLS was accepted: nothing more is read until `tls_started`.
    awaiting_tls: bool,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    authenticated: bool,
    /// `Some(sender)` while a mail transaction is open (`Some(None)` for `<>`).
    sender: Option<Option<Address>>,
    /// The open transaction declared SMTPUTF8 (or MAIL pending says so).
    smtputf8: bool,
    /// The BDAT message of the open transaction, once its first chunk came.
    bdat: Option<BdatMessage>,
    rcpt_count: usize,
    errors: u32,
    /// Discarding the rest of an over-long command line.
    skipping: bool,
    closed: bool,
}

fn ok(code: u16, e: (u8, u16, u16), text: impl Into<String>) -> Reply {
    Reply::with_status(code, EnhancedStatus(e.0, e.1, e.2), text)
}

impl Server {
    /// A new session, before the greeting.
    pub fn new(params: ServerParams) -> Server {
        Server {
            params,
            input: Vec::new(),
            pos: 0,
            out: VecDeque::new(),
            mode: Mode::Command,
            pending: None,
            answering: None,
            answered: None,
            last_command: "CONNECT",
            junk: 0,
            junk_limit: None,
            awaiting_tls: false,
            helo: None,
            esmtp: false,
            tls: false,
            authenticated: false,
            sender: None,
            smtputf8: false,
            bdat: None,
            rcpt_count: 0,
            errors: 0,
            skipping: false,
            closed: false,
        }
    }

    /// `220 {banner}`: the first thing to write.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, None, self.params.banner.clone())
    }

    /// The reply to send when the driver's read timer fires; then close.
    pub fn timeout_reply(&self) -> Reply {
        ok(421, (4, 4, 2), format!("{} Error: timeout exceeded", self.params.hostname))
    }

    /// Appends bytes read from the client.
    pub fn feed(&mut self, input: &[u8]) {
        if self.closed {
            return;
        }
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(input);
    }

    /// Bytes fed but not yet consumed. A driver should stop reading while
    /// a decision is pending and this is large.
    pub fn buffered(&self) -> usize {
        self.input.len() - self.pos
    }

    /// The next event, or `None` when more input is needed, a decision is
    /// pending, or the session is closed.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some((e, answered)) = self.out.pop_front() {
                if matches!(e, Event::Reply(_)) {
                    self.answered = answered;
                }
                return Some(e);
            }
            if self.closed || self.pending.is_some() || self.awaiting_tls {
                return None;
            }
            let progressed = match self.mode {
                Mode::Data(_) => self.step_data(),
                Mode::Bdat(_) => self.step_chunk(),
                Mode::Command | Mode::AuthResponse => self.step_line(),
            };
            if !progressed {
                return None;
            }
        }
    }

    /// What the reply last returned by [`Server::next_event`] answers:
    /// `None` for the greeting-like replies that answer no command (the
    /// 421 after too many errors, a driver's own 421, SASL exchanges).
    pub fn answered(&self) -> Option<Answered> {
        self.answered
    }

    /// The last command read, upper case (`CONNECT` before any;
    /// `END-OF-MESSAGE` once DATA has ended), for Postfix's `lost
    /// connection after CMD` and `timeout after CMD` log lines.
    pub fn last_command(&self) -> &'static str {
        self.last_command
    }

    /// Octets of message content received so far while in DATA, or in a
    /// BDAT message (between its chunks too).
    pub fn data_size(&self) -> Option<u64> {
        match (&self.mode, &self.bdat) {
            (Mode::Data(ds), _) => Some(ds.size),
            (_, Some(b)) => Some(b.size),
            _ => None,
        }
    }

    /// Takes the message content collected so far in DATA (normalized as
    /// [`Event::Message`] describes), so a driver can stream it to disk
    /// while it arrives; the final [`Event::Message`] then carries only
    /// the rest. Empty outside a message, and once the message is over the
    /// size limit (it will be refused with 552 at its end). A BDAT
    /// message's content can be taken between its chunks too.
    pub fn take_data(&mut self) -> Vec<u8> {
        match (&mut self.mode, &mut self.bdat) {
            (Mode::Data(ds), _) => std::mem::take(&mut ds.content),
            (_, Some(b)) => std::mem::take(&mut b.content),
            _ => Vec::new(),
        }
    }

    /// Counts HELO, EHLO, RSET, NOOP, VRFY and ETRN as Postfix's
    /// `smtpd_junk_command_limit` does: once more than `limit` of them
    /// came before, each one also counts as an error (towards
    /// `hard_error_limit`, so a client looping on NOOP is cut off). Not
    /// counted unless set.
    pub fn set_junk_command_limit(&mut self, limit: u32) {
        self.junk_limit = Some(limit);
    }

    /// Whether STARTTLS was accepted and the driver owes the handshake
    /// (then [`Server::tls_started`]); nothing more is read until then.
    pub fn awaiting_tls(&self) -> bool {
        self.awaiting_tls
    }

    /// Whether TLS is active (after [`Server::tls_started`]).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether a decision (accept/reject/...) is owed.
    pub fn awaiting_decision(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the session is receiving a message: in a DATA stream, or
    /// from the first accepted BDAT chunk until the reply to LAST (also
    /// while it waits for the next BDAT command).
    pub fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_)) || self.bdat.is_some()
    }

    /// Whether the open transaction declared SMTPUTF8 (RFC 6531).
    pub fn is_smtputf8(&self) -> bool {
        self.smtputf8
    }

    /// Whether the session is over (after 221 or 421).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The last HELO/EHLO argument.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// Whether AUTH succeeded in this session.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The protocol name for Received headers (RFC 3848): `SMTP`,
    /// `ESMTP`, `ESMTPS`, `ESMTPA` or `ESMTPSA`.
    pub fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls, self.authenticated) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }

    /// Error replies sent so far.
    pub fn error_count(&self) -> u32 {
        self.errors
    }

    /// Changes the mechanisms advertised from now on (for example, only
    /// after TLS when `smtpd_tls_auth_only = yes`).
    pub fn set_auth_mechanisms(&mut self, mechanisms: Vec<String>) {
        self.params.auth_mechanisms = mechanisms;
    }

    /// Accepts the pending decision. Does nothing when none is pending.
    pub fn accept(&mut self) {
        match self.pending.take() {
            Some(Pending::Mail(from, smtputf8)) => {
                self.sender = Some(from);
                self.smtputf8 = smtputf8;
                self.rcpt_count = 0;
                self.reply(ok(250, (2, 1, 0), "Ok"));
            }
            Some(Pending::Rcpt) => {
                self.rcpt_count += 1;
                self.reply(ok(250, (2, 1, 5), "Ok"));
            }
            // RFC 5321 §3.5.3: 252 = cannot verify, but will accept.
            Some(Pending::Vrfy(arg)) => self.reply(ok(252, (2, 0, 0), &arg)),
            Some(Pending::Message) => {
                self.reset_transaction();
                self.reply(ok(250, (2, 0, 0), "Ok"));
            }
            Some(Pending::StartTls) => {
                self.awaiting_tls = true;
                self.reply(ok(220, (2, 0, 0), "Ready to start TLS"));
            }
            Some(Pending::Auth) => {
                self.authenticated = true;
                self.mode = Mode::Command;
                self.reply(ok(235, (2, 7, 0), "Authentication successful"));
            }
            None => {}
        }
    }

    /// Answers the pending decision with `reply`. A rejected message ends
    /// the transaction. With nothing pending the reply is still sent, which
    /// lets a driver say `421` before closing (a 421 always ends the session).
    pub fn reject(&mut self, reply: Reply) {
        match self.pending.take() {
            Some(Pending::Message) => self.reset_transaction(),
            Some(Pending::Auth) => self.mode = Mode::Command,
            _ => {}
        }
        self.reply(reply);
    }

    /// Answers [`Event::Message`]: `250 2.0.0 Ok: queued as {id}`, and
    /// resets the transaction. Does nothing unless a message is pending.
    pub fn message_queued(&mut self, queue_id: &str) {
        if let Some(Pending::Message) = self.pending {
            self.pending = None;
            self.reset_transaction();
            self.reply(ok(250, (2, 0, 0), format!("Ok: queued as {queue_id}")));
        }
    }

    /// Answers a pending [`Event::Auth`] or [`Event::AuthResponse`] with
    /// `334 {challenge}` (base64, possibly empty); the client's next line
    /// comes back as [`Event::AuthResponse`].
    pub fn auth_challenge(&mut self, challenge: &str) {
        if let Some(Pending::Auth) = self.pending {
            self.pending = None;
            self.mode = Mode::AuthResponse;
            self.reply(Reply::new(334, None, challenge));
        }
    }

    /// Call after the TLS handshake that followed STARTTLS.
    ///
    /// RFC 3207 §4.2: the session goes back to its initial state, so the
    /// client must say EHLO again. Any plaintext bytes that arrived after
    /// the STARTTLS line are discarded, so they cannot be injected into the
    /// protected session (the CVE-2011-0411 class of bugs).
    pub fn tls_started(&mut self) {
        self.awaiting_tls = false;
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.reset_transaction();
        self.input.clear();
        self.pos = 0;
        self.skipping = false;
        self.mode = Mode::Command;
    }

    fn reset_transaction(&mut self) {
        self.sender = None;
        self.smtputf8 = false;
        self.bdat = None;
        self.rcpt_count = 0;
    }

    /// Queues a reply, counting errors and ending the session on 421 or
    /// at the hard error limit.
    fn reply(&mut self, reply: Reply) {
        if self.closed {
            return;
        }
        let code = reply.code;
        let answered = self.answering.take();
        let mut counted = reply.is_error();
        if reply.is_error() {
            self.errors = self.errors.saturating_add(1);
        }
        if let (Some(Answered::Command(verb)), Some(limit)) = (answered, self.junk_limit)
            && verb.is_junk()
        {
            // Postfix: `if (state->junk_cmds++ > var_smtpd_junk_cmd_limit)
            // state->error_count++`, after the command's own reply.
            if self.junk > limit {
                self.errors = self.errors.saturating_add(1);
                counted = true;
            }
            self.junk = self.junk.saturating_add(1);
        }
        self.out.push_back((Event::Reply(reply), answered));
        if code == 421 {
            // RFC 5321 §3.8: after 421 the server closes the channel.
            self.close();
        } else if counted
            && self.params.hard_error_limit > 0
            && self.errors >= self.params.hard_error_limit
        {
            let text = format!("{} Error: too many errors", self.params.hostname);
            self.out.push_back((Event::Reply(ok(421, (4, 7, 0), text)), None));
            self.close();
        }
    }

    fn close(&mut self) {
        self.out.push_back((Event::Close, None));
        self.closed = true;
        self.pending = None;
        self.input.clear();
        self.pos = 0;
    }

    fn line_limit(&self, line: &[u8]) -> usize {
        if matches!(self.mode, Mode::AuthResponse) {
            return line_limit("AUTH");
        }
        // Only a verb followed by a space gets its longer limit.
        match line.get(..5) {
            Some([a, b, c, d, b' ' | b'\t']) => {
                line_limit(std::str::from_utf8(&[*a, *b, *c, *d]).unwrap_or(""))
            }
            _ => line_limit(""),
        }
    }

    /// Reads one line in command or SASL-response mode. Returns false when
    /// more input is needed.
    fn step_line(&mut self) -> bool {
        let buf = &self.input[self.pos..];
        let newline = buf.iter().position(|&b| b == b'\n');
        if self.skipping {
            // RFC 5321 §4.5.3.1.4 limits lines; we drop the rest of an
            // over-long line and complain once it ends.
            return match newline {
                Some(i) => {
                    self.pos += i + 1;
                    self.skipping = false;
                    self.reply(line_too_long());
                    true
                }
                None => {
                    self.pos = self.input.len();
                    false
                }
            };
        }
        let Some(i) = newline else {
            if buf.len() > self.line_limit(buf) {
                if matches!(self.mode, Mode::Command) {
                    self.begin_command(Verb::of_line(buf));
                }
                self.skipping = true;
                self.pos = self.input.len();
            }
            return false;
        };
        let start = self.pos;
        self.pos += i + 1;
        let line = self.input[start..start + i + 1].to_vec();
        let content =
            line.strip_suffix(b"\n").map_or(&line[..], |l| l.strip_suffix(b"\r").unwrap_or(l));
        if matches!(self.mode, Mode::Command) {
            self.begin_command(Verb::of_line(&line));
        }
        if content.len() + 2 > self.line_limit(&line) {
            self.reply(line_too_long());
        } else if matches!(self.mode, Mode::AuthResponse) {
            self.auth_response(content);
        } else {
            self.command(&line);
        }
        true
    }

    fn begin_command(&mut self, verb: Verb) {
        self.answering = Some(Answered::Command(verb));
        self.last_command = verb.label();
    }

    fn auth_response(&mut self, content: &[u8]) {
        self.mode = Mode::Command;
        match std::str::from_utf8(content) {
            // RFC 4954 §4: "*" cancels the exchange.
            Ok("*") => self.reply(ok(501, (5, 7, 0), "Authentication aborted")),
            Ok(s)
                if s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) =>
            {
                self.pending = Some(Pending::Auth);
                self.mode = Mode::AuthResponse;
                self.out.push_back((Event::AuthResponse { response: s.to_owned() }, None));
            }
            _ => self.reply(ok(501, (5, 5, 2), "Cannot decode response")),
        }
    }

    /// Checks that depend on session state and come before argument syntax,
    /// in the order Postfix's smtpd makes them.
    fn precheck(&self, verb: &str) -> Option<Reply> {
        let e = |code, st, text: &str| Some(ok(code, st, text));
        let bdat = self.bdat.is_some();
        if verb.eq_ignore_ascii_case("MAIL") {
            if self.params.helo_required && self.helo.is_none() {
                return e(503, (5, 5, 1), "Error: send HELO/EHLO first");
            }
            if bdat {
                return e(503, (5, 5, 1), "Error: MAIL after BDAT");
            }
            if self.sender.is_some() {
                return e(503, (5, 5, 1), "Error: nested MAIL command");
            }
        } else if verb.eq_ignore_ascii_case("RCPT") {
            if self.sender.is_none() {
                return e(503, (5, 5, 1), "Error: need MAIL command");
            }
            if bdat {
                return e(503, (5, 5, 1), "Error: RCPT after BDAT");
            }
        } else if verb.eq_ignore_ascii_case("DATA") && bdat {
            // RFC 3030 §3: DATA and BDAT do not mix in one transaction.
            return e(503, (5, 5, 1), "Error: DATA after BDAT");
        } else if verb.eq_ignore_ascii_case("DATA") && self.rcpt_count == 0 {
            return if self.sender.is_none() {
                e(503, (5, 5, 1), "Error: need RCPT command")
            } else {
                e(554, (5, 5, 1), "Error: no valid recipients")
            };
        }
        None
    }

    fn command(&mut self, line: &[u8]) {
        let Some((verb, _)) = split_verb(line) else {
            self.reply(bad_syntax());
            return;
        };
        if verb.eq_ignore_ascii_case("BDAT") {
            // The size comes first: whatever the answer, the chunk after
            // the line must be read (RFC 3030 §2), and without a size
            // there is no telling where it ends.
            match parse_command(line) {
                Ok(Command::Bdat { size, last }) => self.bdat_command(size, last),
                _ => {
                    self.reply(bdat_syntax());
                    self.close();
                }
            }
            return;
        }
        if let Some(r) = self.precheck(verb) {
            self.reply(r);
            return;
        }
        match parse_command(line) {
            Err(r) => self.reply(r),
            Ok(cmd) => self.execute(cmd),
        }
    }

    fn execute(&mut self, cmd: Command) {
        match cmd {
            Command::Helo(name) => {
                self.reset_transaction();
                self.helo = Some(name);
                self.esmtp = false;
                self.reply(Reply::new(250, None, self.params.hostname.clone()));
            }
            Command::Ehlo(name) => {
                self.reset_transaction();
                self.helo = Some(name);
                self.esmtp = true;
                let reply = self.ehlo_reply();
                self.reply(reply);
            }
            Command::Mail { from, params } => {
                let max = effective_limit(self.params.max_message_size);
                if params.size.is_some_and(|s| s > max) {
                    // RFC 1870 §6.1.
                    self.reply(ok(552, (5, 3, 4), "Message size exceeds fixed limit"));
                } else if from.as_ref().is_some_and(Address::is_utf8) && !params.smtputf8 {
                    self.reply(need_smtputf8());
                } else {
                    self.pending = Some(Pending::Mail(from.clone(), params.smtputf8));
                    self.out.push_back((Event::Mail { from, params }, None));
                }
            }
            Command::Rcpt { to, params } => {
                let max = self.params.max_recipients;
                if to.is_utf8() && !self.smtputf8 {
                    // RFC 6531 §3.4: only after MAIL ... SMTPUTF8.
                    self.reply(need_smtputf8());
                } else if max > 0 && self.rcpt_count >= max {
                    // RFC 5321 §4.5.3.1.10: 452 for too many recipients.
                    self.reply(ok(452, (4, 5, 3), "Error: too many recipients"));
                } else {
                    self.pending = Some(Pending::Rcpt);
                    self.out.push_back((Event::Rcpt { to, params }, None));
                }
            }
            Command::Data => {
                self.mode = Mode::Data(DataState {
                    at_line_start: true,
                    after_crlf: true,
                    size: 0,
                    too_big: false,
                    content: Vec::new(),
                });
                self.reply(Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"));
            }
            Command::Rset => {
                self.reset_transaction();
                self.reply(ok(250, (2, 0, 0), "Ok"));
            }
            Command::Noop => self.reply(ok(250, (2, 0, 0), "Ok")),
            Command::Quit => {
                self.reply(ok(221, (2, 0, 0), "Bye"));
                self.close();
            }
            Command::Vrfy(arg) => {
                if !self.params.vrfy_enabled {
                    self.reply(ok(502, (5, 5, 1), "VRFY command is disabled"));
                } else {
                    match Address::parse(&arg) {
                        Ok(address) => {
                            self.pending = Some(Pending::Vrfy(arg));
                            self.out.push_back((Event::Vrfy { address }, None));
                        }
                        Err(_) => self.reply(ok(501, (5, 1, 3), "Bad recipient address syntax")),
                    }
                }
            }
            // Postfix answers HELP with 502; RFC 5321 §4.1.1.8 asks for
            // help text, and a list of the commands is what a person
            // typing at the server needs.
            Command::Help => self.reply(ok(
                214,
                (2, 0, 0),
                "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH",
            )),
            Command::Unknown(_) => self.reply(ok(502, (5, 5, 2), "Error: command not recognized")),
            // Handled before parsing (see `command`).
            Command::Bdat { .. } => self.reply(bdat_syntax()),
            Command::StartTls => {
                if self.tls {
                    self.reply(ok(554, (5, 5, 1), "Error: TLS already active"));
                } else if !self.params.starttls_offered {
                    self.reply(ok(502, (5, 5, 1), "Error: command not implemented"));
                } else {
                    self.pending = Some(Pending::StartTls);
                    self.out.push_back((Event::StartTls, None));
                }
            }
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
        }
    }

    fn auth(&mut self, mechanism: String, initial: Option<String>) {
        let e = |st, text: &str| ok(503, st, text);
        if self.params.auth_mechanisms.is_empty() {
            self.reply(e((5, 5, 1), "Error: authentication not enabled"));
        } else if !self.esmtp {
            self.reply(e((5, 5, 1), "Error: send EHLO first"));
        } else if self.authenticated {
            // RFC 4954 §4: AUTH is not permitted once authenticated.
            self.reply(e((5, 5, 1), "Error: already authenticated"));
        } else if self.sender.is_some() {
            // RFC 4954 §4: nor during a mail transaction.
            self.reply(e((5, 5, 1), "Error: MAIL transaction in progress"));
        } else if !self.params.auth_mechanisms.iter().any(|m| m.eq_ignore_ascii_case(&mechanism)) {
            self.reply(ok(504, (5, 5, 4), "Unrecognized authentication type"));
        } else {
            self.pending = Some(Pending::Auth);
            self.out.push_back((Event::Auth { mechanism, initial }, None));
        }
    }

    fn ehlo_reply(&self) -> Reply {
        let p = &self.params;
        let mut lines = vec![p.hostname.clone(), "PIPELINING".to_owned()];
        // RFC 1870 §4: SIZE with no number means "no fixed limit".
        lines.push(if p.max_message_size > 0 {
            format!("SIZE {}", p.max_message_size)
        } else {
            "SIZE".to_owned()
        });
        if p.vrfy_enabled {
            lines.push("VRFY".to_owned());
        }
        if p.starttls_offered && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        if !p.auth_mechanisms.is_empty() {
            lines.push(format!("AUTH {}", p.auth_mechanisms.join(" ")));
        }
        // Postfix's order.
        for ext in ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"] {
            lines.push(ext.to_owned());
        }
        Reply { code: 250, enhanced: None, lines }
    }

    /// A BDAT command line with a valid size: decides what its chunk
    /// is for and starts reading it. The reply comes once the chunk has
    /// been read, so pipelined chunks are answered in order.
    fn bdat_command(&mut self, size: u64, last: bool) {
        let e = |code, st, text: &str| Some(ok(code, st, text));
        let refusal = if self.rcpt_count == 0 {
            // Postfix's DATA answers: a chunk needs a transaction with recipients.
            if self.sender.is_none() {
                e(503, (5, 5, 1), "Error: need RCPT command")
            } else {
                e(554, (5, 5, 1), "Error: no valid recipients")
            }
        } else if size == 0 && !last {
            // Postfix's text for an empty chunk that does not end the message.
            e(551, (5, 7, 1), "Null BDAT request")
        } else {
            self.bdat.get_or_insert_with(BdatMessage::default);
            None
        };
        self.mode = Mode::Bdat(ChunkState { remaining: size, size, last, refusal });
    }

    /// Reads BDAT chunk octets. Returns false when more input is needed.
    fn step_chunk(&mut self) -> bool {
        let max = effective_limit(self.params.max_message_size);
        let Mode::Bdat(chunk) = &mut self.mode else { return false };
        let buf = &self.input[self.pos..];
        let n = usize::try_from(chunk.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        if chunk.refusal.is_none()
            && let Some(msg) = &mut self.bdat
        {
            append_chunk(msg, max, &buf[..n]);
        }
        self.pos += n;
        chunk.remaining -= n as u64;
        if chunk.remaining > 0 {
            return false;
        }
        let Mode::Bdat(chunk) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return true;
        };
        if let Some(r) = chunk.refusal {
            self.reply(r);
            return true;
        }
        let too_big = self.bdat.as_ref().is_some_and(|m| m.too_big);
        if too_big {
            // Every chunk of a message past the limit is refused; the
            // transaction ends with the last one.
            if chunk.last {
                self.reset_transaction();
            }
            self.reply(ok(552, (5, 3, 4), "Chunk exceeds message size limit"));
        } else if chunk.last {
            let mut msg = self.bdat.take().unwrap_or_default();
            if msg.held_cr {
                msg.content.push(b'\r');
            }
            self.pending = Some(Pending::Message);
            self.out.push_back((Event::Message { content: msg.content }, None));
        } else {
            self.reply(ok(250, (2, 0, 0), format!("Ok: {} bytes", chunk.size)));
        }
        true
    }

    /// Consumes DATA bytes. Returns true when the terminating line was seen.
    ///
    /// RFC 5321 §4.1.1.4: the data ends with `CRLF . CRLF`, the first CRLF
    /// being the end of the previous line (or of the DATA command);
    /// §4.5.2: a leading "." on any other line is removed. Both CRLF and a
    /// bare LF end a line inside the message, and each line ending becomes
    /// a single LF; a bare CR inside a line is kept. Unless
    /// `bare_lf_ends_data` is set, a "." line touching a bare LF (ended by
    /// one, or following a line ended by one) does not end the data: it is
    /// kept as a "." line of content, so whatever follows it is message
    /// text and never commands (SMTP smuggling).
    fn step_data(&mut self) -> bool {
        let max = effective_limit(self.params.max_message_size);
        let bare_lf_ends = self.params.bare_lf_ends_data;
        let Mode::Data(ds) = &mut self.mode else { return false };
        let mut finished = false;
        loop {
            let buf = &self.input[self.pos..];
            if buf.is_empty() {
                break;
            }
            if ds.at_line_start {
                if buf[0] == b'.' {
                    match dot_line(&buf[1..], ds.after_crlf, bare_lf_ends) {
                        DotLine::NeedMore => break,
                        DotLine::End(n) => {
                            self.pos += n;
                            finished = true;
                            break;
                        }
                        // Kept whole; the line is read below.
                        DotLine::Content => {}
                        // Dot-stuffed line: drop the dot, keep the rest.
                        DotLine::Stuffed => self.pos += 1,
                    }
                }
                ds.at_line_start = false;
                continue;
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let crlf = buf[..i].ends_with(b"\r");
                    let text = if crlf { &buf[..i - 1] } else { &buf[..i] };
                    append(ds, max, text);
                    append(ds, max, b"\n");
                    ds.at_line_start = true;
                    ds.after_crlf = crlf;
                    self.pos += i + 1;
                }
                None => {
                    // Keep a trailing CR: it may be the first half of CRLF.
                    let take = if buf.ends_with(b"\r") { buf.len() - 1 } else { buf.len() };
                    append(ds, max, &buf[..take]);
                    self.pos += take;
                    break;
                }
            }
        }
        if !finished {
            return false;
        }
        let Mode::Data(ds) = std::mem::replace(&mut self.mode, Mode::Command) else { return true };
        self.answering = Some(Answered::Message);
        self.last_command = "END-OF-MESSAGE";
        if ds.too_big {
            self.reset_transaction();
            self.reply(ok(552, (5, 3, 4), "Message size exceeds fixed limit"));
        } else {
            self.pending = Some(Pending::Message);
            self.out.push_back((Event::Message { content: ds.content }, None));
        }
        true
    }
}

/// What a line starting with "." in DATA is (see [`dot_line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DotLine {
    /// Too few bytes to tell.
    NeedMore,
    /// The end of the data; the terminator line is this many bytes.
    End(usize),
    /// A lone "." line that does not end the data (it touches a bare LF):
    /// message content, dot included.
    Content,
    /// A dot-stuffed line (RFC 5321 §4.5.2): the dot is dropped.
    Stuffed,
}

/// Classifies a DATA line that starts with "."; `rest` is what follows
/// the dot, `after_crlf` says whether the previous line ended with CRLF.
/// The one place the end-of-data rule lives: drivers feed whatever they
/// read and learn where commands begin from [`Server::answered`].
pub(crate) fn dot_line(rest: &[u8], after_crlf: bool, bare_lf_ends_data: bool) -> DotLine {
    match (rest.first(), rest.get(1)) {
        (None, _) | (Some(b'\r'), None) => DotLine::NeedMore,
        (Some(b'\n'), _) if bare_lf_ends_data => DotLine::End(2),
        (Some(b'\r'), Some(b'\n')) if after_crlf || bare_lf_ends_data => DotLine::End(3),
        (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => DotLine::Content,
        _ => DotLine::Stuffed,
    }
}

/// Postfix's reply to a UTF-8 address in a transaction without SMTPUTF8.
fn need_smtputf8() -> Reply {
    ok(553, (5, 6, 7), "Must declare SMTPUTF8 to send unicode address")
}

/// Adds BDAT chunk octets to the message, normalizing line endings as
/// DATA does (CRLF to LF, bare LF kept, bare CR kept), with a CR at the
/// end of a chunk held until the next octet shows what it is.
fn append_chunk(msg: &mut BdatMessage, max: u64, mut bytes: &[u8]) {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    if msg.held_cr && !bytes.is_empty() {
        msg.held_cr = false;
        if bytes[0] != b'\n' {
            out.push(b'\r');
        }
    }
    while let Some(i) = bytes.iter().position(|&b| b == b'\r') {
        out.extend_from_slice(&bytes[..i]);
        match bytes.get(i + 1) {
            // CRLF: the LF is copied with the next run.
            Some(b'\n') => {}
            Some(_) => out.push(b'\r'),
            None => msg.held_cr = true,
        }
        bytes = &bytes[i + 1..];
    }
    out.extend_from_slice(bytes);
    msg.size = msg.size.saturating_add(out.len() as u64);
    if msg.too_big {
        return;
    }
    if msg.size > max {
        msg.too_big = true;
        msg.content = Vec::new();
    } else {
        msg.content.extend_from_slice(&out);
    }
}

/// The size limit actually enforced: `max_message_size`, with 0 ("no
/// limit") and anything larger capped at [`HARD_MAX_MESSAGE_SIZE`].
fn effective_limit(max: u64) -> u64 {
    if max == 0 { HARD_MAX_MESSAGE_SIZE } else { max.min(HARD_MAX_MESSAGE_SIZE) }
}

/// Adds message bytes, counting past the limit without buffering
/// (so memory stays bounded by the limit, never above
/// [`HARD_MAX_MESSAGE_SIZE`]).
fn append(ds: &mut DataState, max: u64, bytes: &[u8]) {
    ds.size = ds.size.saturating_add(bytes.len() as u64);
    if ds.too_big {
        return;
    }
    if ds.size > max {
        ds.too_big = true;
        ds.content = Vec::new();
    } else {
        ds.content.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::MAX_COMMAND_LINE;
    use proptest::prelude::*;

    fn params() -> ServerParams {
        ServerParams {
            hostname: "mail.fiap.edu.br".into(),
            banner: "Bem Vindo - fiap.edu.br".into(),
            max_message_size: 10_240_000,
            max_recipients: 1000,
            hard_error_limit: 20,
            helo_required: false,
            vrfy_enabled: true,
            starttls_offered: false,
            auth_mechanisms: vec![],
            bare_lf_ends_data: false,
        }
    }

    /// `sendmail -bs` parameters: a bare-LF "." line ends the data.
    fn bs_params() -> ServerParams {
        ServerParams { bare_lf_ends_data: true, ..params() }
    }

    /// Drains every event, accepting each decision, and returns the
    /// transcript of what the server wrote (`<close>` marks Event::Close).
    fn drain(s: &mut Server) -> String {
        let mut out = String::new();
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Reply(r) => out.push_str(&String::from_utf8(r.to_bytes()).unwrap()),
                Event::Message { .. } => s.message_queued("53E923E957"),
                Event::Close => out.push_str("<close>"),
                Event::Mail { .. }
                | Event::Rcpt { .. }
                | Event::Vrfy { .. }
                | Event::StartTls
                | Event::Auth { .. }
                | Event::AuthResponse { .. } => s.accept(),
            }
        }
        out
    }

    fn run_with(p: ServerParams, input: &str) -> String {
        let mut s = Server::new(p);
        s.feed(input.as_bytes());
        drain(&mut s)
    }

    fn run(input: &str) -> String {
        run_with(params(), input)
    }

    /// The tutorial's telnet dialog, byte for byte.
    #[test]
    fn tutorial_dialog() {
        let mut s = Server::new(params());
        assert_eq!(s.greeting().to_bytes(), b"220 Bem Vindo - fiap.edu.br\r\n");
        let steps = [
            ("HELO mail.fiap.edu.br\r\n", "250 mail.fiap.edu.br\r\n"),
            ("MAIL FROM: <root@fiap.edu.br>\r\n", "250 2.1.0 Ok\r\n"),
            ("RCPT TO: <suporte@fiap.edu.br>\r\n", "250 2.1.5 Ok\r\n"),
            ("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n"),
            ("From: Nome do Remetente <root@fiap.edu.br>\r\n", ""),
            ("\r\n", ""),
            ("To: Nome do Destinatario <ubuntu@fiap.edu.br>\r\n", ""),
            ("Subject: Teste de Comandos SMTP\r\n", ""),
            ("E-mail teste - Comandos SMTP\r\n", ""),
            (".\r\n", "250 2.0.0 Ok: queued as 53E923E957\r\n"),
            ("QUIT\r\n", "221 2.0.0 Bye\r\n<close>"),
        ];
        let mut message = None;
        for (input, want) in steps {
            s.feed(input.as_bytes());
            let mut got = String::new();
            while let Some(ev) = s.next_event() {
                match ev {
                    Event::Reply(r) => got.push_str(&String::from_utf8(r.to_bytes()).unwrap()),
                    Event::Mail { from, .. } => {
                        assert_eq!(from.unwrap().to_string(), "root@fiap.edu.br");
                        s.accept();
                    }
                    Event::Rcpt { to, .. } => {
                        assert_eq!(to.to_string(), "suporte@fiap.edu.br");
                        s.accept();
                    }
                    Event::Message { content } => {
                        message = Some(content);
                        s.message_queued("53E923E957");
                    }
                    Event::Close => got.push_str("<close>"),
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(got, want, "after {input:?}");
        }
        assert_eq!(
            message.unwrap(),
            b"From: Nome do Remetente <root@fiap.edu.br>\n\nTo: Nome do Destinatario <ubuntu@fiap.edu.br>\n\
              Subject: Teste de Comandos SMTP\nE-mail teste - Comandos SMTP\n"
        );
        assert!(s.is_closed());
        assert_eq!(s.protocol(), "SMTP");
        assert_eq!(s.helo_name(), Some("mail.fiap.edu.br"));
    }

    #[test]
    fn ehlo_advertises_configured_extensions() {
        assert_eq!(
            run("EHLO c.example\r\n"),
            "250-mail.fiap.edu.br\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
        );
        let p = ServerParams {
            vrfy_enabled: false,
            starttls_offered: true,
            auth_mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
            max_message_size: 0,
            ..params()
        };
        assert_eq!(
            run_with(p, "ehlo c.example\r\n"),
            "250-mail.fiap.edu.br\r\n250-PIPELINING\r\n250-SIZE\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
        );
    }

    /// One command after HELO, and the exact reply.
    #[test]
    fn single_command_replies() {
        let table = [
            ("RSET", "250 2.0.0 Ok\r\n"),
            ("NOOP", "250 2.0.0 Ok\r\n"),
            ("QUIT", "221 2.0.0 Bye\r\n<close>"),
            (
                "HELP",
                "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH\r\n",
            ),
            ("FOO bar", "502 5.5.2 Error: command not recognized\r\n"),
            ("", "500 5.5.2 Error: bad syntax\r\n"),
            ("VRFY <root>", "252 2.0.0 root\r\n"),
            ("VRFY a b@c", "501 5.1.3 Bad recipient address syntax\r\n"),
            ("HELO", "501 Syntax: HELO hostname\r\n"),
            ("EHLO", "501 Syntax: EHLO hostname\r\n"),
            ("RCPT TO:<a@b.org>", "503 5.5.1 Error: need MAIL command\r\n"),
            ("DATA", "503 5.5.1 Error: need RCPT command\r\n"),
            ("MAIL FROM:<a b@x.org>", "501 5.1.7 Bad sender address syntax\r\n"),
            ("MAIL FROM:<a@x.org> SIZE=10240001", "552 5.3.4 Message size exceeds fixed limit\r\n"),
            ("MAIL FROM:<a@x.org> SIZE=10240000", "250 2.1.0 Ok\r\n"),
            ("MAIL FROM:<a@x.org> XYZ", "555 5.5.4 Unsupported option: XYZ\r\n"),
            ("STARTTLS", "502 5.5.1 Error: command not implemented\r\n"),
            ("AUTH PLAIN", "503 5.5.1 Error: authentication not enabled\r\n"),
            ("N\0OP", "500 5.5.2 Error: bad syntax\r\n"),
        ];
        for (cmd, want) in table {
            let got = run(&format!("HELO x\r\n{cmd}\r\n"));
            assert_eq!(got, format!("250 mail.fiap.edu.br\r\n{want}"), "{cmd:?}");
        }
        assert_eq!(
            run_with(ServerParams { vrfy_enabled: false, ..params() }, "VRFY root\r\n"),
            "502 5.5.1 VRFY command is disabled\r\n"
        );
    }

    #[test]
    fn transaction_state_errors() {
        let base = "HELO x\r\nMAIL FROM:<a@x.org>\r\n";
        let head = "250 mail.fiap.edu.br\r\n250 2.1.0 Ok\r\n";
        let table = [
            ("MAIL FROM:<b@x.org>", "503 5.5.1 Error: nested MAIL command\r\n"),
            ("DATA", "554 5.5.1 Error: no valid recipients\r\n"),
            ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax\r\n"),
            ("RCPT TO:<postmaster>", "250 2.1.5 Ok\r\n"),
            ("RSET\r\nRCPT TO:<c@x.org>", "250 2.0.0 Ok\r\n503 5.5.1 Error: need MAIL command\r\n"),
            (
                "HELO y\r\nRCPT TO:<c@x.org>",
                "250 mail.fiap.edu.br\r\n503 5.5.1 Error: need MAIL command\r\n",
            ),
        ];
        for (cmd, want) in table {
            assert_eq!(run(&format!("{base}{cmd}\r\n")), format!("{head}{want}"), "{cmd:?}");
        }
        let strict = ServerParams { helo_required: true, ..params() };
        assert_eq!(
            run_with(strict, "MAIL FROM:<a@x.org>\r\n"),
            "503 5.5.1 Error: send HELO/EHLO first\r\n"
        );
        assert_eq!(run("MAIL FROM:<>\r\n"), "250 2.1.0 Ok\r\n");
    }

    #[test]
    fn recipient_limit() {
        let p = ServerParams { max_recipients: 2, ..params() };
        let got = run_with(
            p,
            "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\nRCPT TO:<d@x.org>\r\n",
        );
        assert_eq!(
            got,
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n"
        );
    }

    #[test]
    fn pipelined_commands_wait_for_each_decision() {
        let mut s = Server::new(params());
        s.feed(b"EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<bad@x.org>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n");
        assert!(
            matches!(s.next_event(), Some(Event::Reply(r)) if r.code == 250 && r.lines.len() == 9)
        );
        assert!(matches!(s.next_event(), Some(Event::Mail { .. })));
        assert_eq!(s.next_event(), None);
        assert!(s.awaiting_decision());
        s.accept();
        assert_eq!(s.next_event(), Some(Event::Reply(ok(250, (2, 1, 0), "Ok"))));
        assert!(matches!(s.next_event(), Some(Event::Rcpt { to, .. }) if to.local() == "b"));
        assert_eq!(s.next_event(), None);
        s.accept();
        assert_eq!(s.next_event(), Some(Event::Reply(ok(250, (2, 1, 5), "Ok"))));
        assert!(matches!(s.next_event(), Some(Event::Rcpt { to, .. }) if to.local() == "bad"));
        s.reject(ok(550, (5, 1, 1), "<bad@x.org>: Recipient address rejected: User unknown"));
        assert_eq!(s.error_count(), 1);
        assert!(matches!(s.next_event(), Some(Event::Reply(r)) if r.code == 550));
        assert!(matches!(s.next_event(), Some(Event::Reply(r)) if r.code == 354));
        assert!(s.in_data());
        assert_eq!(s.next_event(), Some(Event::Message { content: b"hi\n".to_vec() }));
        assert_eq!(s.next_event(), None);
        s.message_queued("ABCDEF0123");
        assert_eq!(
            s.next_event(),
            Some(Event::Reply(ok(250, (2, 0, 0), "Ok: queued as ABCDEF0123")))
        );
        assert_eq!(s.next_event(), Some(Event::Reply(ok(221, (2, 0, 0), "Bye"))));
        assert_eq!(s.next_event(), Some(Event::Close));
        assert_eq!(s.next_event(), None);
        assert_eq!(s.protocol(), "ESMTP");
    }

    fn message_of(body: &[u8], chunk: usize) -> Option<Vec<u8>> {
        message_with(params(), body, chunk)
    }

    /// The message `body` (after DATA) gives, fed `chunk` bytes at a time.
    fn message_with(p: ServerParams, body: &[u8], chunk: usize) -> Option<Vec<u8>> {
        let mut s = Server::new(p);
        s.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
        let mut content = None;
        for piece in body.chunks(chunk.max(1)) {
            s.feed(piece);
            while let Some(ev) = s.next_event() {
                match ev {
                    Event::Message { content: c } => {
                        content = Some(c);
                        s.message_queued("X");
                    }
                    Event::Mail { .. } | Event::Rcpt { .. } => s.accept(),
                    _ => {}
                }
            }
        }
        content
    }

    #[test]
    fn dot_unstuffing_and_line_endings() {
        let table: &[(&[u8], &[u8])] = &[
            (b".\r\n", b""),
            (b"a\r\n.\r\n", b"a\n"),
            (b"..\r\n.\r\n", b".\n"),
            (b"...x\r\n..\r\n.\r\n", b"..x\n.\n"),
            (b".x\r\n.\r\n", b"x\n"),
            (b"a\rb\r\n.\r\n", b"a\rb\n"),
            (b".\rx\r\n.\r\n", b"\rx\n"),
            (b"a.\r\n .\r\n.\r\n", b"a.\n .\n"),
            (b"mixed\nends\r\n\r\n.\r\n", b"mixed\nends\n\n"),
            (b"bare\n..x\r\n.\r\n", b"bare\n.x\n"),
        ];
        for (body, want) in table {
            for chunk in [1, 2, 3, 1000] {
                for p in [params(), bs_params()] {
                    assert_eq!(
                        message_with(p, body, chunk).as_deref(),
                        Some(*want),
                        "{body:?} chunk {chunk}"
                    );
                }
            }
        }
        // Not terminated yet: ". " and "x." are not the end.
        assert_eq!(message_of(b". \r\nx.\r\n", 1), None);
    }

    /// RFC 5321 §4.1.1.4: only `CRLF . CRLF` ends the data in smtpd; a
    /// "." line touching a bare LF is content. `sendmail -bs` also takes
    /// the bare-LF forms.
    #[test]
    fn only_crlf_dot_crlf_ends_data_in_smtpd() {
        let loose: &[(&[u8], &[u8])] = &[
            // body, then what smtpd keeps once a real CRLF.CRLF follows.
            (b"a\n.\n", b"a\n.\n"),
            (b"a\r\n.\n", b"a\n.\n"),
            (b"a\n.\r\n", b"a\n.\n"),
            (b".\n", b".\n"),
        ];
        for (body, kept) in loose {
            for chunk in [1, 2, 3, 1000] {
                assert_eq!(message_with(params(), body, chunk), None, "{body:?} chunk {chunk}");
                let mut full = body.to_vec();
                full.extend_from_slice(b"\r\n.\r\n");
                let mut want = kept.to_vec();
                want.push(b'\n');
                assert_eq!(
                    message_with(params(), &full, chunk).as_deref(),
                    Some(&want[..]),
                    "{full:?} chunk {chunk}"
                );
                // -bs: the bare-LF forms end the data (the text before the
                // "." line is the message).
                let end = body.len() - if body.ends_with(b".\r\n") { 3 } else { 2 };
                let want_bs: Vec<u8> =
                    body[..end].iter().copied().filter(|&b| b != b'\r').collect();
                assert_eq!(
                    message_with(bs_params(), body, chunk).as_deref(),
                    Some(&want_bs[..]),
                    "-bs {body:?} chunk {chunk}"
                );
            }
        }
        // CRLF.CRLF ends the data in both modes.
        for p in [params(), bs_params()] {
            assert_eq!(message_with(p, b"a\r\n.\r\n", 1).as_deref(), Some(&b"a\n"[..]));
        }
    }

    /// The review's smuggling payload: one message, with the would-be
    /// commands as its text, and nothing run as a command.
    #[test]
    fn smuggling_payload_is_one_message() {
        let mut s = Server::new(params());
        s.feed(
            b"EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n\
              Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@example.com>\r\n\
              RCPT TO:<suporte@postern.test>\r\nDATA\r\nFrom: evil@example.com\r\n\
              \r\nsmuggled\r\n.\r\nQUIT\r\n",
        );
        let mut messages = Vec::new();
        let mut replies = Vec::new();
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Message { content } => {
                    messages.push(content);
                    s.message_queued("Q");
                }
                Event::Mail { from, .. } => {
                    assert_eq!(from.unwrap().to_string(), "a@x.org");
                    s.accept();
                }
                Event::Rcpt { .. } => s.accept(),
                Event::Reply(r) => replies.push(r.code),
                Event::Close => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(messages.len(), 1);
        assert_eq!(
            String::from_utf8(messages.remove(0)).unwrap(),
            "Subject: a\n\nbody\n.\nMAIL FROM:<evil@example.com>\n\
             RCPT TO:<suporte@postern.test>\nDATA\nFrom: evil@example.com\n\nsmuggled\n"
        );
        assert_eq!(replies, [250, 250, 250, 354, 250, 221]);
    }

    #[test]
    fn dot_line_rule() {
        for bare in [false, true] {
            assert_eq!(dot_line(b"", true, bare), DotLine::NeedMore);
            assert_eq!(dot_line(b"\r", false, bare), DotLine::NeedMore);
            assert_eq!(dot_line(b"\r\n", true, bare), DotLine::End(3));
            assert_eq!(dot_line(b"x", true, bare), DotLine::Stuffed);
            assert_eq!(dot_line(b"\rx", true, bare), DotLine::Stuffed);
        }
        assert_eq!(dot_line(b"\n", true, false), DotLine::Content);
        assert_eq!(dot_line(b"\r\n", false, false), DotLine::Content);
        assert_eq!(dot_line(b"\n", false, true), DotLine::End(2));
        assert_eq!(dot_line(b"\r\n", false, true), DotLine::End(3));
    }

    /// With `message_size_limit = 0` the buffer still stops at the hard
    /// ceiling.
    #[test]
    fn no_limit_still_has_a_ceiling() {
        assert_eq!(effective_limit(0), HARD_MAX_MESSAGE_SIZE);
        assert_eq!(effective_limit(u64::MAX), HARD_MAX_MESSAGE_SIZE);
        assert_eq!(effective_limit(100), 100);
        let mut ds = DataState {
            at_line_start: false,
            after_crlf: true,
            size: HARD_MAX_MESSAGE_SIZE - 2,
            too_big: false,
            content: Vec::new(),
        };
        append(&mut ds, effective_limit(0), b"ab");
        assert!(!ds.too_big);
        append(&mut ds, effective_limit(0), b"c");
        assert!(ds.too_big && ds.content.is_empty());
        // The session answers 552 at the end of such a message, and MAIL
        // with a SIZE past the ceiling is refused up front.
        let mut s = Server::new(ServerParams { max_message_size: 0, ..params() });
        s.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nx\r\n");
        drain(&mut s);
        if let Mode::Data(ds) = &mut s.mode {
            ds.size = HARD_MAX_MESSAGE_SIZE;
        }
        s.feed(b"y\r\n.\r\n");
        assert_eq!(drain(&mut s), "552 5.3.4 Message size exceeds fixed limit\r\n");
        let big = format!("MAIL FROM:<a@x.org> SIZE={}\r\n", HARD_MAX_MESSAGE_SIZE + 1);
        assert_eq!(
            run_with(ServerParams { max_message_size: 0, ..params() }, &big),
            "552 5.3.4 Message size exceeds fixed limit\r\n"
        );
    }

    #[test]
    fn long_data_lines_are_fine() {
        let mut body = vec![b'x'; 100_000];
        body.extend_from_slice(b"\r\n.\r\n");
        let got = message_of(&body, 4096).unwrap();
        assert_eq!(got.len(), 100_001);
    }

    #[test]
    fn oversized_message_is_counted_not_buffered() {
        let p = ServerParams { max_message_size: 100, ..params() };
        let mut s = Server::new(p);
        s.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
        let mut out = drain(&mut s);
        for _ in 0..100 {
            s.feed(&[b'y'; 1000]);
            out.push_str(&drain(&mut s));
            if let Mode::Data(ds) = &s.mode {
                assert!(ds.content.len() <= 100);
            }
            assert!(s.buffered() <= 1);
        }
        s.feed(b"\r\n.\r\nNOOP\r\n");
        out.push_str(&drain(&mut s));
        assert_eq!(
            out,
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
             552 5.3.4 Message size exceeds fixed limit\r\n250 2.0.0 Ok\r\n"
        );
        // The transaction is over.
        s.feed(b"RCPT TO:<b@x.org>\r\n");
        assert_eq!(drain(&mut s), "503 5.5.1 Error: need MAIL command\r\n");
    }

    #[test]
    fn too_long_command_lines() {
        let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(600));
        assert_eq!(run(&long), "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
        // Arriving in pieces, the buffer never holds more than a line's worth.
        let mut s = Server::new(params());
        for _ in 0..1000 {
            s.feed(&[b'z'; 100]);
            assert_eq!(drain(&mut s), "");
            assert!(s.buffered() <= MAX_COMMAND_LINE + 100);
        }
        s.feed(b"\nNOOP\n");
        assert_eq!(drain(&mut s), "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
        // Exactly 512 octets with CRLF is fine.
        let max = format!("NOOP {}\r\n", "x".repeat(MAX_COMMAND_LINE - 7));
        assert_eq!(run(&max), "250 2.0.0 Ok\r\n");
    }

    #[test]
    fn binary_garbage_gets_bad_syntax_and_session_survives() {
        let mut s = Server::new(params());
        s.feed(b"\x00\x01\x02\xff\xfe\r\n\x80abc\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\nNOOP\r\n");
        assert_eq!(
            drain(&mut s),
            "500 5.5.2 Error: bad syntax\r\n500 5.5.2 Error: bad syntax\r\n500 5.5.2 Error: bad syntax\r\n250 2.0.0 Ok\r\n"
        );
    }

    #[test]
    fn hard_error_limit_closes_with_421() {
        let p = ServerParams { hard_error_limit: 3, ..params() };
        let got = run_with(p, "FOO\r\nBAR\r\nNOOP\r\nBAZ\r\nNOOP\r\n");
        assert_eq!(
            got,
            "502 5.5.2 Error: command not recognized\r\n502 5.5.2 Error: command not recognized\r\n\
             250 2.0.0 Ok\r\n502 5.5.2 Error: command not recognized\r\n\
             421 4.7.0 mail.fiap.edu.br Error: too many errors\r\n<close>"
        );
    }

    /// Every reply says which command it answers, however many commands
    /// came in one feed; DATA counts at its final reply.
    #[test]
    fn replies_are_tagged_with_their_command() {
        let p = ServerParams { hard_error_limit: 100, ..params() };
        let mut s = Server::new(p);
        s.feed(b"EHLO x\r\nFOO\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n");
        let mut tags = Vec::new();
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Reply(r) => tags.push((r.code, s.answered())),
                Event::Message { .. } => {
                    assert_eq!(s.last_command(), "END-OF-MESSAGE");
                    s.message_queued("Q")
                }
                Event::Close => {}
                _ => s.accept(),
            }
        }
        use Answered::*;
        assert_eq!(
            tags,
            [
                (250, Some(Command(Verb::Ehlo))),
                (502, Some(Command(Verb::Unknown))),
                (250, Some(Command(Verb::Mail))),
                (250, Some(Command(Verb::Rcpt))),
                (354, Some(Command(Verb::Data))),
                (250, Some(Message)),
                (221, Some(Command(Verb::Quit))),
            ]
        );
        assert_eq!(s.last_command(), "QUIT");
        // An over-long line is answered as the command it started with.
        let mut s = Server::new(params());
        s.feed(format!("NOOP {}\r\n", "x".repeat(2000)).as_bytes());
        assert!(matches!(s.next_event(), Some(Event::Reply(r)) if r.code == 500));
        assert_eq!(s.answered(), Some(Command(Verb::Noop)));
    }

    /// Postfix's rule: the first limit + 1 junk commands are free, each
    /// later one is an error, and the hard error limit ends the session.
    #[test]
    fn junk_commands_count_as_errors_past_the_limit() {
        let mut s = Server::new(ServerParams { hard_error_limit: 3, ..params() });
        s.set_junk_command_limit(2);
        s.feed(b"NOOP\r\nRSET\r\nHELO x\r\nMAIL FROM:<a@x.org>\r\nNOOP\r\nVRFY <b@x.org>\r\nNOOP\r\nNOOP\r\n");
        let out = drain(&mut s);
        assert_eq!(
            out,
            "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 mail.fiap.edu.br\r\n250 2.1.0 Ok\r\n\
             250 2.0.0 Ok\r\n252 2.0.0 b@x.org\r\n250 2.0.0 Ok\r\n\
             421 4.7.0 mail.fiap.edu.br Error: too many errors\r\n<close>"
        );
        assert_eq!(s.error_count(), 3);
        // Without the setting (sendmail -bs), junk is not counted.
        let mut s = Server::new(ServerParams { hard_error_limit: 3, ..params() });
        s.feed("NOOP\r\n".repeat(50).as_bytes());
        assert_eq!(drain(&mut s), "250 2.0.0 Ok\r\n".repeat(50));
    }

    /// Content taken while it arrives plus the final event's content is
    /// the whole message, and the size limit still applies to the total.
    #[test]
    fn take_data_streams_the_content() {
        let mut s = Server::new(ServerParams { max_message_size: 20, ..params() });
        s.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
        drain(&mut s);
        assert_eq!(s.take_data(), b"");
        s.feed(b"line one\r\n..two");
        assert_eq!(s.next_event(), None);
        assert_eq!(s.take_data(), b"line one\n.two");
        assert_eq!(s.data_size(), Some(13));
        s.feed(b"\r\n.\r\n");
        assert_eq!(s.next_event(), Some(Event::Message { content: b"\n".to_vec() }));
        s.message_queued("Q");
        let _ = drain(&mut s);
        s.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n0123456789\r\n");
        drain(&mut s);
        assert_eq!(s.take_data(), b"0123456789\n");
        s.feed(b"0123456789\r\n.\r\n");
        assert_eq!(drain(&mut s), "552 5.3.4 Message size exceeds fixed limit\r\n");
        assert_eq!(s.data_size(), None);
    }

    #[test]
    fn driver_421_closes() {
        let mut s = Server::new(params());
        s.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n");
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Message { .. } => {
                    s.reject(ok(421, (4, 3, 0), "mail.fiap.edu.br Error: queue file write error"))
                }
                Event::Mail { .. } | Event::Rcpt { .. } => s.accept(),
                _ => {}
            }
        }
        assert!(s.is_closed());
        assert_eq!(
            s.timeout_reply().to_bytes(),
            b"421 4.4.2 mail.fiap.edu.br Error: timeout exceeded\r\n"
        );
    }

    #[test]
    fn starttls_discards_plaintext_injection() {
        let p = ServerParams { starttls_offered: true, ..params() };
        let mut s = Server::new(p);
        s.feed(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x.org>\r\n");
        assert!(matches!(s.next_event(), Some(Event::Reply(_))));
        assert_eq!(s.next_event(), Some(Event::StartTls));
        s.accept();
        assert_eq!(s.next_event(), Some(Event::Reply(ok(220, (2, 0, 0), "Ready to start TLS"))));
        assert_eq!(s.next_event(), None);
        s.tls_started();
        assert_eq!(s.next_event(), None);
        s.feed(b"EHLO c\r\nSTARTTLS\r\n");
        let out = drain(&mut s);
        assert!(!out.contains("STARTTLS"), "{out}");
        assert!(out.ends_with("554 5.5.1 Error: TLS already active\r\n"), "{out}");
        assert_eq!(s.protocol(), "ESMTPS");
    }

    #[test]
    fn auth_exchange() {
        let p = ServerParams { auth_mechanisms: vec!["PLAIN".into(), "LOGIN".into()], ..params() };
        let mut s = Server::new(p.clone());
        s.feed(b"AUTH PLAIN\r\nEHLO c\r\nAUTH CRAM-MD5\r\nAUTH login\r\ndXNlcg==\r\n*\r\nAUTH PLAIN AHUAcA==\r\nAUTH PLAIN\r\n");
        let mut log = Vec::new();
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Reply(r) => log.push(format!("{r}")),
                Event::Auth { mechanism, initial: None } if mechanism == "LOGIN" => {
                    log.push("auth LOGIN".into());
                    s.auth_challenge("VXNlcm5hbWU6");
                }
                Event::AuthResponse { response } => {
                    log.push(format!("response {response}"));
                    s.auth_challenge("UGFzc3dvcmQ6");
                }
                Event::Auth { mechanism, initial } => {
                    log.push(format!("auth {mechanism} {initial:?}"));
                    s.accept();
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            log,
            [
                "503 5.5.1 Error: send EHLO first",
                "250 mail.fiap.edu.br; PIPELINING; SIZE 10240000; VRFY; AUTH PLAIN LOGIN; ENHANCEDSTATUSCODES; 8BITMIME; DSN; SMTPUTF8; CHUNKING",
                "504 5.5.4 Unrecognized authentication type",
                "auth LOGIN",
                "334 VXNlcm5hbWU6",
                "response dXNlcg==",
                "334 UGFzc3dvcmQ6",
                "501 5.7.0 Authentication aborted",
                "auth PLAIN Some(\"AHUAcA==\")",
                "235 2.7.0 Authentication successful",
                "503 5.5.1 Error: already authenticated",
            ]
        );
        assert_eq!(s.protocol(), "ESMTPA");
        // A rejected AUTH leaves the session usable.
        let mut s = Server::new(p);
        s.feed(b"EHLO c\r\nAUTH PLAIN AHUAcA==\r\nNOOP\r\n");
        let _ = s.next_event();
        assert!(matches!(s.next_event(), Some(Event::Auth { .. })));
        s.reject(ok(535, (5, 7, 8), "Error: authentication failed: authentication failure"));
        assert_eq!(
            drain(&mut s),
            "535 5.7.8 Error: authentication failed: authentication failure\r\n250 2.0.0 Ok\r\n"
        );
    }

    #[test]
    fn decisions_without_pending_are_harmless() {
        let mut s = Server::new(params());
        s.accept();
        s.message_queued("X");
        s.auth_challenge("x");
        assert_eq!(s.next_event(), None);
        s.feed(b"QUIT\r\n");
        assert_eq!(drain(&mut s), "221 2.0.0 Bye\r\n<close>");
        s.feed(b"NOOP\r\n");
        s.reject(ok(421, (4, 3, 2), "bye"));
        assert_eq!(s.next_event(), None);
    }

    const TXN: &str = "EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\n";
    const TXN_REPLIES: &str = "250-mail.fiap.edu.br\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
        250-VRFY\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n\
        250 CHUNKING\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n";

    /// Feeds `input` in pieces of `step` octets, accepting every decision;
    /// returns the transcript after the TXN replies and every message.
    fn bdat_run(p: ServerParams, input: &[u8], step: usize) -> (String, Vec<Vec<u8>>) {
        let mut s = Server::new(p);
        let mut out = String::new();
        let mut messages = Vec::new();
        let mut taken = Vec::new();
        for piece in input.chunks(step.max(1)) {
            s.feed(piece);
            while let Some(ev) = s.next_event() {
                match ev {
                    Event::Reply(r) => out.push_str(&String::from_utf8(r.to_bytes()).unwrap()),
                    Event::Message { content } => {
                        taken.extend_from_slice(&content);
                        messages.push(std::mem::take(&mut taken));
                        s.message_queued("Q1");
                    }
                    Event::Close => out.push_str("<close>"),
                    _ => s.accept(),
                }
            }
            // A driver streaming to disk takes what has arrived.
            taken.extend_from_slice(&s.take_data());
        }
        let out = out.strip_prefix(TXN_REPLIES).map(str::to_owned).unwrap_or(out);
        (out, messages)
    }

    #[test]
    fn bdat_chunks_make_one_message() {
        let input = format!(
            "{TXN}BDAT 12\r\nSubject: x\r\nBDAT 9\r\n\r\nbody\r\r\nBDAT 6 LAST\r\n\nend\r\nQUIT\r\n"
        );
        let want_out = "250 2.0.0 Ok: 12 bytes\r\n250 2.0.0 Ok: 9 bytes\r\n\
                        250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n<close>";
        // The same however the bytes are split: in one write (pipelined
        // chunks), or octet by octet (a chunk split across many feeds).
        for step in [input.len(), 1, 2, 3, 7, 13] {
            let (out, messages) = bdat_run(params(), input.as_bytes(), step);
            assert_eq!(out, want_out, "step {step}");
            // No dot-stuffing, no terminator; CRLF → LF, a bare CR kept, a
            // CRLF split between chunks still one line end.
            assert_eq!(messages, [b"Subject: x\n\nbody\r\n\nend\n".to_vec()], "step {step}");
        }
    }

    #[test]
    fn bdat_content_is_not_dot_unstuffed_nor_ended_by_dot() {
        let body = "..x\r\n.\r\nQUIT\r\n";
        let input = format!("{TXN}BDAT {} LAST\r\n{body}NOOP\r\n", body.len());
        let (out, messages) = bdat_run(params(), input.as_bytes(), 5);
        assert_eq!(out, "250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n");
        assert_eq!(messages, [b"..x\n.\nQUIT\n".to_vec()]);
    }

    #[test]
    fn bdat_zero_last_ends_the_message() {
        let (out, messages) = bdat_run(params(), format!("{TXN}BDAT 0 LAST\r\n").as_bytes(), 100);
        assert_eq!(out, "250 2.0.0 Ok: queued as Q1\r\n");
        assert_eq!(messages, [Vec::<u8>::new()]);
        let (out, messages) =
            bdat_run(params(), format!("{TXN}BDAT 3\r\nab\rBDAT 0 LAST\r\n").as_bytes(), 100);
        assert_eq!(out, "250 2.0.0 Ok: 3 bytes\r\n250 2.0.0 Ok: queued as Q1\r\n");
        assert_eq!(messages, [b"ab\r".to_vec()]);
        // An empty chunk that does not end the message is refused, its
        // transaction goes on.
        let (out, messages) =
            bdat_run(params(), format!("{TXN}BDAT 0\r\nBDAT 1 LAST\r\nx").as_bytes(), 100);
        assert_eq!(out, "551 5.7.1 Null BDAT request\r\n250 2.0.0 Ok: queued as Q1\r\n");
        assert_eq!(messages, [b"x".to_vec()]);
    }

    #[test]
    fn bdat_without_transaction_is_refused_and_its_chunk_consumed() {
        // The chunk's octets look like commands; they must not run.
        let out = run("BDAT 6\r\nQUIT\r\nBDAT 6 LAST\r\nRSET\r\nNOOP\r\n");
        assert_eq!(
            out,
            "503 5.5.1 Error: need RCPT command\r\n503 5.5.1 Error: need RCPT command\r\n\
             250 2.0.0 Ok\r\n"
        );
        let out = run("MAIL FROM:<a@x.org>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
        assert_eq!(out, "250 2.1.0 Ok\r\n554 5.5.1 Error: no valid recipients\r\n250 2.0.0 Ok\r\n");
        // A large refused chunk is counted, never buffered.
        let mut s = Server::new(params());
        s.feed(b"BDAT 100000000\r\n");
        for _ in 0..999 {
            s.feed(&[b'x'; 100_000]);
            assert_eq!(drain(&mut s), "");
            assert_eq!(s.buffered(), 0);
        }
        s.feed(&[b'x'; 100_000]);
        s.feed(b"NOOP\r\n");
        assert_eq!(drain(&mut s), "503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n");
    }

    #[test]
    fn bdat_and_data_do_not_mix() {
        let (out, _) = bdat_run(
            params(),
            format!("{TXN}BDAT 2\r\nabDATA\r\nMAIL FROM:<c@x.org>\r\nRCPT TO:<d@x.org>\r\nBDAT 1 LAST\r\nc")
                .as_bytes(),
            1000,
        );
        assert_eq!(
            out,
            "250 2.0.0 Ok: 2 bytes\r\n503 5.5.1 Error: DATA after BDAT\r\n\
             503 5.5.1 Error: MAIL after BDAT\r\n503 5.5.1 Error: RCPT after BDAT\r\n\
             250 2.0.0 Ok: queued as Q1\r\n"
        );
        // RSET drops the chunks received so far.
        let (out, messages) = bdat_run(
            params(),
            format!("{TXN}BDAT 2\r\nabRSET\r\nMAIL FROM:<c@x.org>\r\nRCPT TO:<d@x.org>\r\nBDAT 1 LAST\r\nc")
                .as_bytes(),
            1000,
        );
        assert_eq!(
            out,
            "250 2.0.0 Ok: 2 bytes\r\n250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
             250 2.0.0 Ok: queued as Q1\r\n"
        );
        assert_eq!(messages, [b"c".to_vec()]);
        // After DATA the transaction is over: BDAT needs a new one.
        let (out, _) =
            bdat_run(params(), format!("{TXN}DATA\r\nx\r\n.\r\nBDAT 1 LAST\r\ny").as_bytes(), 1000);
        assert_eq!(
            out,
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as Q1\r\n\
             503 5.5.1 Error: need RCPT command\r\n"
        );
    }

    #[test]
    fn bad_bdat_size_closes_the_session() {
        for cmd in ["BDAT x", "BDAT 99999999999999999999 LAST", "BDAT", "BDAT 5 NOW"] {
            let (out, messages) =
                bdat_run(params(), format!("{TXN}{cmd}\r\nNOOP\r\n").as_bytes(), 1000);
            assert_eq!(out, "521 5.5.4 Syntax: BDAT count [LAST]\r\n<close>", "{cmd}");
            assert!(messages.is_empty());
        }
    }

    #[test]
    fn bdat_over_the_size_limit_is_552_and_consumed() {
        let p = ServerParams { max_message_size: 10, ..params() };
        let input = format!("{TXN}BDAT 8\r\n01234567BDAT 8\r\n89abcdefBDAT 4 LAST\r\nwxyzNOOP\r\n");
        for step in [input.len(), 3] {
            let (out, messages) = bdat_run(p.clone(), input.as_bytes(), step);
            let out = out.replace("250-SIZE 10\r\n", "");
            assert!(
                out.ends_with(
                    "250 2.0.0 Ok: 8 bytes\r\n552 5.3.4 Chunk exceeds message size limit\r\n\
                     552 5.3.4 Chunk exceeds message size limit\r\n250 2.0.0 Ok\r\n"
                ),
                "{out}"
            );
            assert!(messages.is_empty());
        }
        // The transaction is over after LAST.
        let mut s = Server::new(p);
        s.feed(format!("{TXN}BDAT 11 LAST\r\n0123456789aRCPT TO:<b@x.org>\r\n").as_bytes());
        assert!(drain(&mut s).ends_with(
            "552 5.3.4 Chunk exceeds message size limit\r\n503 5.5.1 Error: need MAIL command\r\n"
        ));
        // Memory stays bounded by the limit, not by the chunk.
        let mut s = Server::new(ServerParams { max_message_size: 1000, ..params() });
        s.feed(format!("{TXN}BDAT 10000000 LAST\r\n").as_bytes());
        drain(&mut s);
        for _ in 0..99 {
            s.feed(&[b'y'; 100_000]);
            assert_eq!(drain(&mut s), "");
            assert!(s.take_data().len() <= 1000);
        }
        s.feed(&[b'y'; 100_000]);
        assert_eq!(drain(&mut s), "552 5.3.4 Chunk exceeds message size limit\r\n");
    }

    #[test]
    fn bdat_replies_are_tagged_bdat() {
        let mut s = Server::new(params());
        s.feed(format!("{TXN}BDAT 1\r\naBDAT 1 LAST\r\nb").as_bytes());
        let mut tags = Vec::new();
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Reply(r) => tags.push((r.code, s.answered())),
                Event::Message { .. } => s.message_queued("Q"),
                _ => s.accept(),
            }
        }
        use Answered::*;
        assert_eq!(tags[3..], [(250, Some(Command(Verb::Bdat))), (250, Some(Command(Verb::Bdat)))]);
        assert_eq!(s.last_command(), "BDAT");
    }

    #[test]
    fn utf8_addresses_need_smtputf8() {
        let refused = "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n";
        let out = run(
            "MAIL FROM:<üser@exämple.org>\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<bé@x.org>\r\nRCPT TO:<b@exämple.org>\r\nRCPT TO:<b@x.org>\r\n",
        );
        assert_eq!(out, format!("{refused}250 2.1.0 Ok\r\n{refused}{refused}250 2.1.5 Ok\r\n"));
        let mut s = Server::new(params());
        s.feed("MAIL FROM:<üser@exämple.org> SMTPUTF8\r\nRCPT TO:<bé@x.org>\r\n".as_bytes());
        let mut seen = Vec::new();
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Mail { from, params } => {
                    assert!(params.smtputf8);
                    seen.push(from.unwrap().to_string());
                    s.accept();
                    assert!(s.is_smtputf8());
                }
                Event::Rcpt { to, .. } => {
                    seen.push(to.to_string());
                    s.accept();
                }
                _ => {}
            }
        }
        assert_eq!(seen, ["üser@exämple.org", "bé@x.org"]);
        // The flag belongs to the transaction.
        s.feed("RSET\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<bé@x.org>\r\n".as_bytes());
        assert_eq!(drain(&mut s), format!("250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n{refused}"));
        assert!(!s.is_smtputf8());
    }

    #[test]
    fn dsn_parameters_reach_the_driver() {
        let mut s = Server::new(params());
        s.feed(b"MAIL FROM:<a@x.org> RET=HDRS ENVID=abc+2Bd\r\nRCPT TO:<b@x.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B@x.org\r\nRCPT TO:<c@x.org> NOTIFY=FOO\r\n");
        let Some(Event::Mail { params, .. }) = s.next_event() else { panic!() };
        assert_eq!(
            (params.ret, params.envid.as_deref()),
            (Some(mail_types::esmtp::Ret::Hdrs), Some("abc+d"))
        );
        s.accept();
        let _ = s.next_event();
        let Some(Event::Rcpt { params, .. }) = s.next_event() else { panic!() };
        assert_eq!(params.notify.unwrap().to_string(), "SUCCESS,FAILURE");
        assert_eq!(params.orcpt.unwrap().to_string(), "rfc822;B@x.org");
        s.accept();
        assert_eq!(
            drain(&mut s),
            "250 2.1.5 Ok\r\n501 5.5.4 Error: Bad NOTIFY parameter syntax\r\n"
        );
    }

    /// 10,000 recipients in one write: 250 up to the limit, then 452
    /// for each of the rest, and the session goes on.
    #[test]
    fn ten_thousand_pipelined_recipients() {
        let mut input = String::from("MAIL FROM:<a@x.org>\r\n");
        for i in 0..10_000 {
            input.push_str(&format!("RCPT TO:<u{i}@x.org>\r\n"));
        }
        input.push_str("NOOP\r\n");
        let p = ServerParams { hard_error_limit: 0, ..params() };
        let out = run_with(p, &input);
        let lines: Vec<&str> = out.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 10_002);
        assert!(lines[1..=1000].iter().all(|l| *l == "250 2.1.5 Ok"));
        assert!(lines[1001..10_001].iter().all(|l| *l == "452 4.5.3 Error: too many recipients"));
        assert_eq!(lines[10_001], "250 2.0.0 Ok");
    }

    /// NUL octets in DATA are content like any other: kept, as Postfix
    /// keeps them (its message_reject_characters is empty by default).
    #[test]
    fn nul_bytes_in_data_are_kept() {
        let got = message_of(b"a\0b\r\n\0\r\n.\r\n", 4096).unwrap();
        assert_eq!(got, b"a\0b\n\0\n");
    }

    /// The fuzz target `smtp_session`: feed the bytes, drain, accept every decision.
    fn fuzz_session(data: &[u8]) {
        let mut s = Server::new(ServerParams {
            max_message_size: 4096,
            hard_error_limit: 1000,
            ..params()
        });
        for chunk in data.chunks(61) {
            s.feed(chunk);
            let _ = drain(&mut s);
        }
    }

    #[test]
    fn replays_fuzz_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/smtp_session");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            fuzz_session(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "empty corpus in {}", dir.display());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            fuzz_session(&bytes);
        }

        #[test]
        fn never_panics_on_smtp_like_streams(
            lines in proptest::collection::vec(
                "(EHLO x|MAIL FROM:<a@b.c>|RCPT TO:<d@e.f>|DATA|\\.|\\.\\.x|RSET|AUTH PLAIN|STARTTLS|[ -~]{0,20})",
                0..40,
            ),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let text: String = lines.iter().map(|l| format!("{l}{eol}")).collect();
            fuzz_session(text.as_bytes());
        }
    }
}
