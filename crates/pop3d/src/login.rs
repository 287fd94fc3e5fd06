//! The login service: the AUTHORIZATION state on the client's
//! connection (plain, STLS or implicit TLS), the password check through
//! authd, the caps per client address and per user (counted by anvil,
//! with this process's own counts besides), and after a login the
//! handoff to the mail service: a plain connection is passed on whole, a
//! TLS one is relayed between the client and the mail process.
//!
//! Severities: fatal only at start-up (no usable listener); a session's
//! problems are warnings and end only that session.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::sasl::{Sasl, Step};
use mail_config::settings;
use mail_daemon::{Connection, Daemon, Listener, Service};
use mail_ipc::auth::{self, AuthReply, AuthRequest, AuthUser};
use mail_session::service::{
    Caps, Held, load_tls, one_line, pass_session, plaintext_ok, relay, send_session,
};
use mail_tls::ServerConn;
use pop3_proto::authorization::{self, Action, Authorization, Policy};
use pop3_proto::line::{Line, LineReader};
use pop3_proto::reply;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

type Conn = ServerConn<TcpStream>;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the mail service may take to accept a session.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// What every session of this process shares.
#[derive(Debug)]
struct Context {
    settings: settings::Pop3d,
    tls: Option<mail_tls::ServerTls>,
    authd: Option<PathBuf>,
    mail_service: PathBuf,
    greeting: Vec<u8>,
    caps: Caps,
}

pub(crate) async fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    if daemon.listeners.iter().any(|l| matches!(l, Listener::Unix(_))) {
        anyhow::bail!(
            "the pop3 login service serves TCP only (type = \"inet\" in master.toml); \
             the mail service needs args = [\"mail\"]"
        );
    }
    let mail_service = daemon.socket_path("pop3-mail")?;
    let authd = daemon.socket_path("authd").ok();
    if authd.is_none() {
        tracing::warn!("master.toml has no authd service: every login fails temporarily");
    }
    let settings = settings::Pop3d::new(&daemon.config);
    let tls = load_tls(&daemon.config, "pop3_tls_wrappermode", settings.pop3_tls_wrappermode);
    let common = settings::Common::new(&daemon.config);
    let ctx = Context {
        greeting: format!("+OK {} ready.\r\n", one_line(&common.mail_name)).into_bytes(),
        caps: Caps::new(
            daemon.socket_path("anvil").ok(),
            "pop3",
            settings.pop3_client_connection_limit,
            settings.pop3_user_connection_limit,
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
                    "[{}]: too many connections: {} (pop3_client_connection_limit = {})",
                    peer.ip(),
                    n.0,
                    ctx.settings.pop3_client_connection_limit
                );
                let _ = stream.try_write(reply::TOO_MANY_CLIENT);
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
    reader: LineReader,
}

/// How a password check came out.
enum Checked {
    Ok(AuthUser),
    Fail,
    TempFail,
}

impl Session {
    fn new(ctx: Arc<Context>, peer: SocketAddr) -> Session {
        Session { ctx, peer, authd: None, reader: LineReader::new(pop3_proto::MAX_LINE) }
    }

    fn client(&self) -> String {
        format!("[{}]", self.peer.ip())
    }

    async fn run(mut self, mut conn: Conn, slot: &mut Held<'_, IpAddr>) {
        let wrapper = self.ctx.settings.pop3_tls_wrappermode;
        if wrapper && !self.start_tls(&mut conn).await {
            return;
        }
        let policy = Policy {
            tls_available: self.ctx.tls.is_some(),
            tls_active: wrapper,
            plaintext_ok: plaintext_ok(self.ctx.settings.pop3_plaintext_auth, self.peer.ip()),
        };
        let mut state = Authorization::new(policy);
        let mut sasl = Sasl::new();
        if write(&mut conn, &self.ctx.greeting).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 4096];
        loop {
            while let Some(line) = self.reader.next_line() {
                let line = match line {
                    Line::Complete(l) => Some(l),
                    Line::TooLong => None,
                };
                let flow = if sasl.in_progress() {
                    let step = self.sasl_step(&mut sasl, line.as_deref());
                    self.sasl_outcome(&mut state, step).await
                } else {
                    match state.line(line.as_deref()) {
                        Action::CheckPassword { user, password } => {
                            self.check(&mut state, user, password, "USER").await
                        }
                        Action::Sasl { mechanism, initial } => {
                            let step = sasl.start(&mechanism, initial.as_deref());
                            self.sasl_outcome(&mut state, step).await
                        }
                        other => Flow::from(other),
                    }
                };
                let (user, method) = match flow {
                    Flow::Reply(bytes) => {
                        if write(&mut conn, &bytes).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Flow::Close(bytes) => {
                        let _ = write(&mut conn, &bytes).await;
                        return;
                    }
                    Flow::StartTls => {
                        if write(&mut conn, authorization::BEGIN_TLS).await.is_err() {
                            return;
                        }
                        // Nothing sent in clear may run inside TLS.
                        self.reader.clear();
                        if !self.start_tls(&mut conn).await {
                            return;
                        }
                        state.tls_started();
                        break;
                    }
                    Flow::LoggedIn(user, method) => (user, method),
                };
                let tls = conn.tls().is_some();
                self.hand_over(conn, user, method, tls, slot).await;
                return;
            }
            let idle = self.ctx.settings.pop3_idle_timeout;
            match tokio::time::timeout(idle, conn.read(&mut buf)).await {
                Err(_) => {
                    let _ = write(&mut conn, reply::IDLE_TIMEOUT).await;
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

    /// A continuation line of an AUTH exchange: `*` cancels (RFC 5034).
    fn sasl_step(&mut self, sasl: &mut Sasl, line: Option<&[u8]>) -> Step {
        let Some(line) = line else {
            sasl.cancel();
            return Step::Error(mail_auth::sasl::ErrorKind::TooLong);
        };
        if line == b"*" {
            sasl.cancel();
            return Step::Error(mail_auth::sasl::ErrorKind::Malformed);
        }
        let text = String::from_utf8_lossy(line);
        sasl.step(&text)
    }

    /// Turns a SASL step, or a USER/PASS command, into what to do.
    async fn sasl_outcome(&mut self, state: &mut Authorization, step: Step) -> Flow {
        match step {
            Step::Challenge(c) => Flow::Reply(format!("+ {c}\r\n").into_bytes()),
            Step::Error(_) => self.refused(state, "PLAIN", None),
            Step::Done(creds) => self.check(state, creds.user, creds.password, "PLAIN").await,
        }
    }

    async fn check(
        &mut self,
        state: &mut Authorization,
        user: String,
        password: String,
        method: &'static str,
    ) -> Flow {
        let tls = state.policy().tls_active;
        match self.authenticate(&user, password, tls).await {
            Checked::Ok(u) => Flow::LoggedIn(u, method),
            Checked::Fail => self.refused(state, method, Some(&user)),
            Checked::TempFail => Flow::Reply(reply::TEMP_FAIL.to_vec()),
        }
    }

    fn refused(&mut self, state: &mut Authorization, method: &str, user: Option<&str>) -> Flow {
        tracing::warn!(
            "{}: POP3 {method} authentication failed: user=<{}>",
            self.client(),
            user.map(one_line).unwrap_or_default()
        );
        match state.failed() {
            Some(bytes) => Flow::Close(bytes),
            None => Flow::Reply(reply::AUTH_FAILED.to_vec()),
        }
    }

    async fn authenticate(&mut self, user: &str, password: String, tls: bool) -> Checked {
        let Some(path) = self.ctx.authd.clone() else { return Checked::TempFail };
        let client = self.authd.get_or_insert_with(|| auth::Client::new(path));
        let req = AuthRequest {
            service: auth::Service::Pop3,
            user: user.to_owned(),
            password,
            client: self.peer.ip(),
            tls,
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
                true
            }
            Err(e) => {
                tracing::warn!("SSL_accept error from {}: {e}", self.client());
                false
            }
        }
    }

    /// Passes the session to a mail-service process: a plain connection
    /// whole, a TLS one through a socketpair, relayed until either side
    /// closes. The mail process counts the session at anvil from then on,
    /// so this process's count there (`client`'s, and the user's) ends.
    async fn hand_over(
        mut self,
        mut conn: Conn,
        user: AuthUser,
        method: &'static str,
        tls: bool,
        client: &mut Held<'_, IpAddr>,
    ) {
        let ctx = Arc::clone(&self.ctx);
        let mut user_slot = match ctx.caps.user(&user.user).await {
            Ok(slot) => slot,
            Err(n) => {
                tracing::warn!(
                    "{}: user=<{}>: too many sessions: {} (pop3_user_connection_limit = {})",
                    self.client(),
                    one_line(&user.user),
                    n.0,
                    ctx.settings.pop3_user_connection_limit
                );
                let _ = write(&mut conn, reply::TOO_MANY_USER).await;
                return;
            }
        };
        let mut pending = self.reader.take_pending();
        pending.truncate(mail_session::MAX_PENDING);
        let handoff = mail_session::Handoff {
            user: user.clone(),
            client: self.peer,
            tls,
            method: method.to_owned(),
            pending,
        };
        let path = ctx.mail_service.clone();
        let handed = match conn {
            Conn::Plain(tcp) => {
                // Handed over whole: this process is out of the session's
                // path (the mail process reads and writes the socket).
                let tcp = match tcp.into_std() {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!("{}: the client connection: {e}", self.client());
                        return;
                    }
                };
                let passed = tokio::task::spawn_blocking(move || {
                    use std::os::fd::AsFd;
                    let r = pass_session(&path, tcp.as_fd(), &handoff, HANDOFF_TIMEOUT);
                    (r, tcp)
                })
                .await;
                match passed {
                    Ok((Ok(()), tcp)) => {
                        drop(tcp);
                        conn = Conn::Gone;
                        Ok(None)
                    }
                    Ok((Err(e), tcp)) => {
                        match tcp.set_nonblocking(true).and_then(|()| TcpStream::from_std(tcp)) {
                            Ok(t) => conn = Conn::Plain(t),
                            Err(_) => return,
                        }
                        Err(e)
                    }
                    Err(e) => {
                        tracing::warn!("{}: handoff task failed: {e}", self.client());
                        return;
                    }
                }
            }
            Conn::Gone => return,
            Conn::Tls(_) => {
                let sent = tokio::task::spawn_blocking(move || {
                    send_session(&path, &handoff, HANDOFF_TIMEOUT)
                })
                .await;
                match sent {
                    Ok(Ok(mine)) => Ok(Some(mine)),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(format!("handoff task failed: {e}")),
                }
            }
        };
        let relayed = match handed {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "{}: user=<{}>: cannot hand the session to the mail service at {}: {e}",
                    self.client(),
                    one_line(&user.user),
                    ctx.mail_service.display()
                );
                let _ = write(&mut conn, reply::TEMP_FAIL).await;
                return;
            }
        };
        tracing::info!(
            "Login: user=<{}>, method={method}, rip={}{}",
            one_line(&user.user),
            self.peer.ip(),
            if tls { ", TLS" } else { "" }
        );
        client.release_anvil().await;
        user_slot.release_anvil().await;
        self.authd = None;
        if let Some(mine) = relayed {
            relay(conn, mine).await;
        }
    }
}

/// What the AUTHORIZATION loop does next.
enum Flow {
    Reply(Vec<u8>),
    Close(Vec<u8>),
    StartTls,
    LoggedIn(AuthUser, &'static str),
}

/// The pop3-proto action as the loop's [`Flow`]; a password check and a
/// SASL start are handled in [`Session::run`] before this.
impl From<Action> for Flow {
    fn from(a: Action) -> Flow {
        match a {
            Action::Reply(b) => Flow::Reply(b),
            Action::Close(b) => Flow::Close(b),
            Action::Quit => Flow::Close(authorization::LOGGING_OUT.to_vec()),
            Action::StartTls => Flow::StartTls,
            Action::Sasl { .. } | Action::CheckPassword { .. } => {
                unreachable!("handled before conversion")
            }
        }
    }
}

async fn write<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}
