//! The login service: the AUTHORIZATION state on the client's
//! connection (plain, STLS or implicit TLS), the password check through
//! authd, and after a login the handoff to the mail service and the relay
//! between the client and the mail process.
//!
//! Severities: fatal only at start-up (no usable listener); a session's
//! problems are warnings and end only that session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_auth::sasl::{Sasl, Step};
use mail_config::settings;
use mail_daemon::{Connection, Daemon, Listener, Service};
use mail_ipc::auth::{self, AuthReply, AuthRequest, AuthUser};
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
    per_client: Counter<IpAddr>,
    per_user: Counter<String>,
}

/// Open sessions per key, with a cap; a slot is given back when its
/// [`Slot`] drops, however the session ends.
#[derive(Debug)]
struct Counter<K> {
    limit: usize,
    open: Mutex<HashMap<K, usize>>,
}

struct Slot<'a, K: std::hash::Hash + Eq + Clone> {
    counter: &'a Counter<K>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> Counter<K> {
    fn new(limit: usize) -> Counter<K> {
        Counter { limit, open: Mutex::new(HashMap::new()) }
    }

    /// A slot, or `None` at the limit (0: no limit).
    fn take(&self, key: K) -> Option<Slot<'_, K>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if self.limit != 0 && *n >= self.limit {
            if *n == 0 {
                open.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Slot { counter: self, key })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for Slot<'_, K> {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
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
    let tls = load_tls(&daemon.config, settings.pop3_tls_wrappermode);
    let common = settings::Common::new(&daemon.config);
    let ctx = Context {
        greeting: format!("+OK {} ready.\r\n", one_line(&common.mail_name)).into_bytes(),
        per_client: Counter::new(settings.pop3_client_connection_limit),
        per_user: Counter::new(settings.pop3_user_connection_limit),
        settings,
        tls,
        authd,
        mail_service,
    };
    mail_daemon::run(&mut daemon, Arc::new(Login(Arc::new(ctx)))).await?;
    Ok(())
}

fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// smtpd's certificate, when one is configured. One that does not load
/// is logged and TLS stays off (STLS not offered; pop3s closes
/// connections), as smtpd does.
fn load_tls(config: &mail_config::Main, wrapper: bool) -> Option<mail_tls::ServerTls> {
    let t = settings::SmtpdTls::new(config);
    if t.smtpd_tls_cert_file.is_none() && t.smtpd_tls_chain_files.is_empty() {
        if wrapper {
            tracing::error!(
                "pop3_tls_wrappermode = yes but no certificate: set smtpd_tls_cert_file"
            );
        }
        return None;
    }
    let s = mail_tls::ServerSettings {
        cert_file: t.smtpd_tls_cert_file.clone(),
        key_file: t.smtpd_tls_key_file.clone(),
        chain_files: t.smtpd_tls_chain_files.clone(),
        protocols: t.smtpd_tls_protocols,
    };
    match mail_tls::ServerTls::load(&s) {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::error!("TLS is off: {e}");
            None
        }
    }
}

struct Login(Arc<Context>);

impl Service for Login {
    async fn connection(self: Arc<Self>, conn: Connection) {
        let Connection::Tcp { stream, peer } = conn else { return };
        let ctx = &self.0;
        let Some(_slot) = ctx.per_client.take(peer.ip()) else {
            tracing::warn!(
                "[{}]: too many connections (pop3_client_connection_limit = {})",
                peer.ip(),
                ctx.settings.pop3_client_connection_limit
            );
            let _ = stream.try_write(reply::TOO_MANY_CLIENT);
            return;
        };
        let _ = stream.set_nodelay(true);
        Session::new(Arc::clone(ctx), peer).run(Conn::Plain(stream)).await;
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

    async fn run(mut self, mut conn: Conn) {
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
                self.hand_over(conn, user, method, tls).await;
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

    /// Passes the session to a mail-service process and relays until
    /// either side closes.
    async fn hand_over(mut self, mut conn: Conn, user: AuthUser, method: &'static str, tls: bool) {
        let ctx = Arc::clone(&self.ctx);
        let Some(_slot) = ctx.per_user.take(user.user.clone()) else {
            tracing::warn!(
                "{}: user=<{}>: too many sessions (pop3_user_connection_limit = {})",
                self.client(),
                one_line(&user.user),
                ctx.settings.pop3_user_connection_limit
            );
            let _ = write(&mut conn, reply::TOO_MANY_USER).await;
            return;
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
        let handed = tokio::task::spawn_blocking(move || send_session(&path, &handoff)).await;
        let mine = match handed {
            Ok(Ok(mine)) => mine,
            Ok(Err(e)) => {
                tracing::warn!(
                    "{}: user=<{}>: cannot hand the session to the mail service at {}: {e}",
                    self.client(),
                    one_line(&user.user),
                    ctx.mail_service.display()
                );
                let _ = write(&mut conn, reply::TEMP_FAIL).await;
                return;
            }
            Err(e) => {
                tracing::warn!("{}: handoff task failed: {e}", self.client());
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
        self.authd = None;
        relay(conn, mine).await;
    }
}

/// Whether a password may cross this connection without TLS: always
/// with `pop3_plaintext_auth = yes`, else only from loopback (an
/// IPv4-mapped IPv6 loopback address included), where nothing crosses a
/// network.
fn plaintext_ok(pop3_plaintext_auth: bool, client: IpAddr) -> bool {
    pop3_plaintext_auth || client.to_canonical().is_loopback()
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

/// Connects to the mail service, sends the session and waits for its
/// acceptance. Returns the login side's end of the socketpair.
fn send_session(
    path: &std::path::Path,
    handoff: &mail_session::Handoff,
) -> Result<tokio::net::UnixStream, String> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let (mine, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let control = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = control.set_read_timeout(Some(HANDOFF_TIMEOUT));
    let _ = control.set_write_timeout(Some(HANDOFF_TIMEOUT));
    mail_session::send(&control, theirs.as_fd(), handoff).map_err(|e| e.to_string())?;
    drop(theirs);
    let mut ack = [0u8; 1];
    (&control).read_exact(&mut ack).map_err(|e| format!("no answer: {e}"))?;
    if ack[0] != mail_session::ACCEPTED {
        return Err("the mail service refused the session".into());
    }
    // Only this end goes non-blocking: the mail process's end is another
    // open file and stays blocking for its blocking I/O.
    mine.set_nonblocking(true).map_err(|e| format!("socketpair: {e}"))?;
    tokio::net::UnixStream::from_std(mine).map_err(|e| format!("socketpair: {e}"))
}

/// Copies bytes both ways until one side closes. When the mail process
/// closes (QUIT, its idle timer), the client's connection is closed at
/// once (with TLS's close_notify), without waiting for the client.
async fn relay(mut client: Conn, mut mail: tokio::net::UnixStream) {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            r = client.read(&mut up) => match r {
                Ok(0) | Err(_) => {
                    // The mail process sees end of file and applies no
                    // deletions (RFC 1939: no QUIT, no UPDATE).
                    let _ = mail.shutdown().await;
                    return;
                }
                Ok(n) => {
                    if mail.write_all(&up[..n]).await.is_err() {
                        let _ = client.shutdown().await;
                        return;
                    }
                }
            },
            r = mail.read(&mut down) => match r {
                Ok(0) | Err(_) => {
                    let _ = client.shutdown().await;
                    return;
                }
                Ok(n) => {
                    if client.write_all(&down[..n]).await.is_err() || client.flush().await.is_err() {
                        let _ = mail.shutdown().await;
                        return;
                    }
                }
            },
        }
    }
}

async fn write<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_passwords_only_from_loopback_by_default() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        assert!(plaintext_ok(false, ip("127.0.0.1")));
        assert!(plaintext_ok(false, ip("127.0.0.2")));
        assert!(plaintext_ok(false, ip("::1")));
        assert!(plaintext_ok(false, ip("::ffff:127.0.0.1")));
        assert!(!plaintext_ok(false, ip("192.0.2.1")));
        assert!(!plaintext_ok(false, ip("2001:db8::1")));
        assert!(!plaintext_ok(false, ip("::ffff:192.0.2.1")));
        assert!(plaintext_ok(true, ip("192.0.2.1")));
    }

    #[test]
    fn counters_cap_and_give_back() {
        let c: Counter<&str> = Counter::new(2);
        let a = c.take("x");
        let b = c.take("x");
        assert!(a.is_some() && b.is_some());
        assert!(c.take("x").is_none());
        assert!(c.take("y").is_some());
        drop(a);
        assert!(c.take("x").is_some());
        let unlimited: Counter<&str> = Counter::new(0);
        let slots: Vec<_> = (0..100).map(|_| unlimited.take("x")).collect();
        assert!(slots.iter().all(Option::is_some));
    }
}
