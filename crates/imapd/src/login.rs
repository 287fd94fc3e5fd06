//! The login service: the Not Authenticated state on the client's
//! connection (plain, STARTTLS or implicit TLS), the password check
//! through authd, and after a login the handoff to the mail service and
//! the relay between the client and the mail process.
//!
//! Severities: fatal only at start-up (no usable listener); a session's
//! problems are warnings and end only that session.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::{AuthenticateDataCodec, CommandCodec};
use mail_auth::sasl::{Sasl, Step};
use mail_config::settings;
use mail_daemon::{Connection, Daemon, Listener, Service};
use mail_ipc::auth::{self, AuthReply, AuthRequest, AuthUser};
use mail_session::service::{Caps, Held, load_tls, one_line, plaintext_ok, relay, send_session};
use mail_tls::ServerConn;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::caps;
use crate::wire::{Event, Reader, safe};

type Conn = ServerConn<TcpStream>;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the mail service may take to accept a session.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest line before login (an AUTHENTICATE response included).
const MAX_LINE: usize = 8 * 1024;
/// The largest literal before login (a user name or a password).
const MAX_LITERAL: u64 = 1024;
/// Bad commands before the connection is closed.
const MAX_BAD: u32 = 10;
/// Failed logins before the connection is closed (authd delays each).
const MAX_AUTH_FAILURES: u32 = 3;

/// What every session of this process shares.
#[derive(Debug)]
struct Context {
    settings: settings::Imapd,
    tls: Option<mail_tls::ServerTls>,
    authd: Option<PathBuf>,
    mail_service: PathBuf,
    mail_name: String,
    caps: Caps,
}

pub(crate) async fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    if daemon.listeners.iter().any(|l| matches!(l, Listener::Unix(_))) {
        anyhow::bail!(
            "the imap login service serves TCP only (type = \"inet\" in master.toml); \
             the mail service needs args = [\"mail\"]"
        );
    }
    let mail_service = daemon.socket_path("imap-mail")?;
    let authd = daemon.socket_path("authd").ok();
    if authd.is_none() {
        tracing::warn!("master.toml has no authd service: every login fails temporarily");
    }
    let settings = settings::Imapd::new(&daemon.config);
    let tls = load_tls(&daemon.config, "imap_tls_wrappermode", settings.imap_tls_wrappermode);
    let common = settings::Common::new(&daemon.config);
    let ctx = Context {
        mail_name: one_line(&common.mail_name),
        caps: Caps::new(
            daemon.socket_path("anvil").ok(),
            "imap",
            settings.imap_client_connection_limit,
            settings.imap_user_connection_limit,
        ),
        settings,
        tls,
        authd,
        mail_service,
    };
    mail_daemon::run(&mut daemon, Arc::new(Login(Arc::new(ctx)))).await?;
    Ok(())
}

struct Login(Arc<Context>);

impl Service for Login {
    async fn connection(self: Arc<Self>, conn: Connection) {
        let Connection::Tcp { stream, peer } = conn else { return };
        let ctx = &self.0;
        let mut slot = match ctx.caps.client(peer.ip()).await {
            Ok(slot) => slot,
            Err(n) => {
                tracing::warn!(
                    "[{}]: too many connections: {} (imap_client_connection_limit = {})",
                    peer.ip(),
                    n.0,
                    ctx.settings.imap_client_connection_limit
                );
                let _ = stream.try_write(b"* BYE Too many connections from your address.\r\n");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        Session::new(Arc::clone(ctx), peer).run(Conn::Plain(stream), &mut slot).await;
    }
}

struct Session {
    ctx: Arc<Context>,
    peer: SocketAddr,
    authd: Option<auth::Client>,
    reader: Reader,
    tls: bool,
    bad: u32,
    failures: u32,
}

/// What the loop does after a command.
enum Flow {
    Continue,
    Close,
    StartTls,
    LoggedIn { tag: String, user: AuthUser, method: &'static str },
}

/// How a password check came out.
enum Checked {
    Ok(AuthUser),
    Fail,
    TempFail,
}

impl Session {
    fn new(ctx: Arc<Context>, peer: SocketAddr) -> Session {
        Session {
            ctx,
            peer,
            authd: None,
            reader: Reader::new(MAX_LINE, MAX_LITERAL),
            tls: false,
            bad: 0,
            failures: 0,
        }
    }

    fn client(&self) -> String {
        format!("[{}]", self.peer.ip())
    }

    fn may_login(&self) -> bool {
        self.tls || plaintext_ok(self.ctx.settings.imap_plaintext_auth, self.peer.ip())
    }

    fn capabilities(&self) -> String {
        caps::before_login(self.ctx.tls.is_some() && !self.tls, self.may_login())
    }

    async fn run(mut self, mut conn: Conn, slot: &mut Held<'_, IpAddr>) {
        let wrapper = self.ctx.settings.imap_tls_wrappermode;
        if wrapper && !self.start_tls(&mut conn).await {
            return;
        }
        let greeting =
            format!("* OK [CAPABILITY {}] {} ready.\r\n", self.capabilities(), self.ctx.mail_name);
        if write(&mut conn, greeting.as_bytes()).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 4096];
        // An AUTHENTICATE waiting for the client's response: its tag.
        let mut sasl: Option<(String, Sasl)> = None;
        loop {
            while let Some(event) = self.reader.next() {
                let mut out = Vec::new();
                let flow = match event {
                    Event::Continue => {
                        out.extend_from_slice(b"+ OK\r\n");
                        Flow::Continue
                    }
                    Event::LiteralTooBig { tag, sync, .. } => {
                        let tag = tag.map(|t| safe(&t)).unwrap_or_else(|| "*".into());
                        if sync {
                            out.extend_from_slice(
                                format!("{tag} NO [TOOBIG] Literal too large before login.\r\n")
                                    .as_bytes(),
                            );
                            self.bad(&mut out)
                        } else {
                            out.extend_from_slice(b"* BYE Literal too large before login.\r\n");
                            Flow::Close
                        }
                    }
                    Event::LineTooLong { .. } => {
                        out.extend_from_slice(b"* BYE Too long command line.\r\n");
                        Flow::Close
                    }
                    Event::Message => match sasl.take() {
                        Some((tag, mut s)) => self.sasl_response(tag, &mut s, &mut out).await,
                        None => self.command(&mut out, &mut sasl).await,
                    },
                };
                if !out.is_empty() && write(&mut conn, &out).await.is_err() {
                    return;
                }
                match flow {
                    Flow::Continue => {}
                    Flow::Close => return,
                    Flow::StartTls => {
                        // Nothing sent in clear may run inside TLS.
                        self.reader.clear();
                        if !self.start_tls(&mut conn).await {
                            return;
                        }
                        break;
                    }
                    Flow::LoggedIn { tag, user, method } => {
                        self.hand_over(conn, tag, user, method, slot).await;
                        return;
                    }
                }
            }
            let idle = self.ctx.settings.imap_idle_timeout;
            match tokio::time::timeout(idle, conn.read(&mut buf)).await {
                Err(_) => {
                    let _ = write(&mut conn, b"* BYE Disconnected for inactivity.\r\n").await;
                    tracing::info!(
                        "Disconnected: Inactivity (no auth attempts): rip={}",
                        self.peer.ip()
                    );
                    return;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => self.reader.push(&buf[..n]),
            }
        }
    }

    fn bad(&mut self, out: &mut Vec<u8>) -> Flow {
        self.bad += 1;
        if self.bad >= MAX_BAD {
            out.extend_from_slice(b"* BYE Too many invalid IMAP commands.\r\n");
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn command(&mut self, out: &mut Vec<u8>, sasl: &mut Option<(String, Sasl)>) -> Flow {
        let Some(cmd) = self.reader.decode(&CommandCodec::default()) else {
            let tag = self.reader.tag().map(|t| safe(&t)).unwrap_or_else(|| "*".into());
            out.extend_from_slice(format!("{tag} BAD Error in IMAP command.\r\n").as_bytes());
            return self.bad(out);
        };
        let tag = cmd.tag.inner().to_owned();
        let reply = |out: &mut Vec<u8>, text: &str| {
            out.extend_from_slice(format!("{tag} {text}\r\n").as_bytes());
        };
        match cmd.body {
            CommandBody::Capability => {
                out.extend_from_slice(
                    format!("* CAPABILITY {}\r\n", self.capabilities()).as_bytes(),
                );
                reply(out, "OK Pre-login capabilities listed, post-login capabilities have more.");
                Flow::Continue
            }
            CommandBody::Noop => {
                reply(out, "OK NOOP completed.");
                Flow::Continue
            }
            CommandBody::Logout => {
                out.extend_from_slice(b"* BYE Logging out\r\n");
                reply(out, "OK Logout completed.");
                Flow::Close
            }
            CommandBody::StartTLS => {
                if self.tls {
                    reply(out, "BAD TLS is already active.");
                    self.bad(out)
                } else if self.ctx.tls.is_none() {
                    reply(out, "BAD TLS support isn't enabled.");
                    self.bad(out)
                } else {
                    reply(out, "OK Begin TLS negotiation now.");
                    Flow::StartTls
                }
            }
            CommandBody::Id { .. } => {
                out.extend_from_slice(caps::ID_RESPONSE);
                reply(out, "OK ID completed.");
                Flow::Continue
            }
            CommandBody::Login { username, password } => {
                if !self.may_login() {
                    reply(out, caps::PRIVACY_REQUIRED);
                    return Flow::Continue;
                }
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.check(out, tag, user, password, "LOGIN").await
            }
            CommandBody::Authenticate { mechanism, initial_response } => {
                if !matches!(mechanism, AuthMechanism::Plain) {
                    reply(out, "NO Unsupported authentication mechanism.");
                    return Flow::Continue;
                }
                if !self.may_login() {
                    reply(out, caps::PRIVACY_REQUIRED);
                    return Flow::Continue;
                }
                let initial = initial_response.map(|r| {
                    let bytes = r.declassify();
                    if bytes.is_empty() { "=".to_owned() } else { Base64::encode_string(bytes) }
                });
                let mut s = Sasl::new();
                match s.start("PLAIN", initial.as_deref()) {
                    Step::Challenge(c) => {
                        out.extend_from_slice(format!("+ {c}\r\n").as_bytes());
                        *sasl = Some((tag, s));
                        Flow::Continue
                    }
                    Step::Error(_) => self.refused(out, &tag, "PLAIN", None),
                    Step::Done(c) => self.check(out, tag, c.user, c.password, "PLAIN").await,
                }
            }
            CommandBody::Select { .. }
            | CommandBody::Examine { .. }
            | CommandBody::Create { .. }
            | CommandBody::Delete { .. }
            | CommandBody::Rename { .. }
            | CommandBody::Subscribe { .. }
            | CommandBody::Unsubscribe { .. }
            | CommandBody::List { .. }
            | CommandBody::Lsub { .. }
            | CommandBody::Status { .. }
            | CommandBody::Append { .. }
            | CommandBody::Namespace
            | CommandBody::Enable { .. }
            | CommandBody::Idle => {
                reply(out, "BAD Command not allowed before login.");
                self.bad(out)
            }
            _ => {
                reply(out, "BAD Command not allowed in this state.");
                self.bad(out)
            }
        }
    }

    /// The client's line after AUTHENTICATE's `+ `.
    async fn sasl_response(&mut self, tag: String, sasl: &mut Sasl, out: &mut Vec<u8>) -> Flow {
        let step = match self.reader.decode(&AuthenticateDataCodec::default()) {
            Some(AuthenticateData::Cancel) => {
                out.extend_from_slice(
                    format!("{} BAD Authentication aborted by client.\r\n", safe(&tag)).as_bytes(),
                );
                return self.bad(out);
            }
            Some(AuthenticateData::Continue(data)) => {
                sasl.step(&Base64::encode_string(data.declassify()))
            }
            None => {
                out.extend_from_slice(
                    format!("{} BAD Invalid base64 data in continued response.\r\n", safe(&tag))
                        .as_bytes(),
                );
                return self.bad(out);
            }
        };
        match step {
            Step::Done(c) => self.check(out, tag, c.user, c.password, "PLAIN").await,
            Step::Challenge(_) | Step::Error(_) => self.refused(out, &tag, "PLAIN", None),
        }
    }

    async fn check(
        &mut self,
        out: &mut Vec<u8>,
        tag: String,
        user: String,
        password: String,
        method: &'static str,
    ) -> Flow {
        match self.authenticate(&user, password).await {
            Checked::Ok(u) => Flow::LoggedIn { tag, user: u, method },
            Checked::Fail => self.refused(out, &tag, method, Some(&user)),
            Checked::TempFail => {
                out.extend_from_slice(
                    format!(
                        "{} NO [UNAVAILABLE] Temporary authentication failure.\r\n",
                        safe(&tag)
                    )
                    .as_bytes(),
                );
                Flow::Continue
            }
        }
    }

    fn refused(&mut self, out: &mut Vec<u8>, tag: &str, method: &str, user: Option<&str>) -> Flow {
        tracing::warn!(
            "{}: IMAP {method} authentication failed: user=<{}>",
            self.client(),
            user.map(one_line).unwrap_or_default()
        );
        out.extend_from_slice(
            format!("{} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", safe(tag))
                .as_bytes(),
        );
        self.failures += 1;
        if self.failures >= MAX_AUTH_FAILURES {
            out.extend_from_slice(b"* BYE Too many authentication failures.\r\n");
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn authenticate(&mut self, user: &str, password: String) -> Checked {
        let Some(path) = self.ctx.authd.clone() else { return Checked::TempFail };
        let client = self.authd.get_or_insert_with(|| auth::Client::new(path));
        let req = AuthRequest {
            service: auth::Service::Imap,
            user: user.to_owned(),
            password,
            client: self.peer.ip(),
            tls: self.tls,
        };
        match client.authenticate(&req).await {
            Ok(AuthReply::Ok(u)) => Checked::Ok(u),
            Ok(AuthReply::Fail) => Checked::Fail,
            Ok(AuthReply::TempFail(why)) => {
                tracing::warn!("{}: authd: temporary failure: {why}", self.client());
                Checked::TempFail
            }
            Err(e) => {
                tracing::warn!("{}: {e}", self.client());
                Checked::TempFail
            }
        }
    }

    async fn start_tls(&mut self, conn: &mut Conn) -> bool {
        let (Some(tls), Some(plain)) = (self.ctx.tls.as_ref(), conn.take_plain()) else {
            return false;
        };
        match tls.accept(plain, HANDSHAKE_TIMEOUT).await {
            Ok(t) => {
                *conn = Conn::Tls(Box::new(t));
                self.tls = true;
                true
            }
            Err(e) => {
                tracing::warn!("SSL_accept error from {}: {e}", self.client());
                false
            }
        }
    }

    /// Passes the session to a mail-service process, answers the login
    /// command, and relays until either side closes. The mail process
    /// counts the session at anvil from then on, so this process's count
    /// there (`client`'s, and the user's) ends.
    async fn hand_over(
        mut self,
        mut conn: Conn,
        tag: String,
        user: AuthUser,
        method: &'static str,
        client: &mut Held<'_, IpAddr>,
    ) {
        let ctx = Arc::clone(&self.ctx);
        let tag = safe(&tag);
        let mut user_slot = match ctx.caps.user(&user.user).await {
            Ok(slot) => slot,
            Err(n) => {
                tracing::warn!(
                    "{}: user=<{}>: too many sessions: {} (imap_user_connection_limit = {})",
                    self.client(),
                    one_line(&user.user),
                    n.0,
                    ctx.settings.imap_user_connection_limit
                );
                let text = format!(
                    "* BYE [LIMIT] Maximum number of connections from user exceeded \
                 (imap_user_connection_limit={}).\r\n",
                    ctx.settings.imap_user_connection_limit
                );
                let _ = write(&mut conn, text.as_bytes()).await;
                return;
            }
        };
        let Some(pending) = self.reader.take_pending(mail_session::MAX_PENDING) else {
            let _ = write(&mut conn, b"* BYE Too much input pipelined after login.\r\n").await;
            return;
        };
        let handoff = mail_session::Handoff {
            user: user.clone(),
            client: self.peer,
            tls: self.tls,
            method: method.to_owned(),
            pending,
        };
        let path = ctx.mail_service.clone();
        let handed =
            tokio::task::spawn_blocking(move || send_session(&path, &handoff, HANDOFF_TIMEOUT))
                .await;
        let failed = |why: String| {
            tracing::warn!(
                "{}: user=<{}>: cannot hand the session to the mail service at {}: {why}",
                self.client(),
                one_line(&user.user),
                ctx.mail_service.display()
            );
            format!(
                "{tag} NO [UNAVAILABLE] Internal error occurred. Refer to server log for more information.\r\n"
            )
        };
        let mine = match handed {
            Ok(Ok(mine)) => mine,
            Ok(Err(e)) => {
                let _ = write(&mut conn, failed(e).as_bytes()).await;
                return;
            }
            Err(e) => {
                let _ = write(&mut conn, failed(e.to_string()).as_bytes()).await;
                return;
            }
        };
        tracing::info!(
            "Login: user=<{}>, method={method}, rip={}{}",
            one_line(&user.user),
            self.peer.ip(),
            if self.tls { ", TLS" } else { "" }
        );
        // The mail process answers what was pipelined after this; the
        // relay starts only after this line is out, so the order holds.
        let ok = format!("{tag} OK [CAPABILITY {}] Logged in\r\n", caps::after_login());
        if write(&mut conn, ok.as_bytes()).await.is_err() {
            return;
        }
        client.release_anvil().await;
        user_slot.release_anvil().await;
        self.authd = None;
        relay(conn, mine).await;
    }
}

async fn write<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}
