//! The process level of smtpd: the shared per-process state and the
//! per-process and per-client connection limits. Accepting, stopping
//! (drain on SIGUSR1, exit on SIGTERM) and catching a session's panic
//! are `mail_daemon::run`'s.
//!
//! Severities: fatal only for start-up problems (no usable listener).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mail_daemon::{Connection, Daemon, Listener, Service};
use mail_queue::Queue;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::anvil_client::{Anvil, Refused};
use crate::enqueue::QmgrWakeup;
use crate::peer::PeerLookup;
use crate::policy::{ConnectionCounts, Policy};
use crate::session::{self, Client};
use crate::settings::Settings;
use mail_tls::ServerConn as Conn;

/// What every session of this process shares. Built once; read only,
/// except for the connection counts and the wake-up flag.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) policy: Policy,
    pub(crate) queue: Queue,
    pub(crate) wakeup: Arc<QmgrWakeup>,
    pub(crate) counts: Arc<ConnectionCounts>,
    pub(crate) anvil: Anvil,
    /// The TLS configuration, when a certificate is configured and loads.
    pub(crate) tls: Option<mail_tls::ServerTls>,
    /// authd's socket, when master.toml has an authd service.
    pub(crate) authd: Option<PathBuf>,
    /// The client name lookup; `None` when it is off.
    pub(crate) peer_lookup: Option<PeerLookup>,
    /// Sessions open in this process, for `smtpd_process_connection_limit`.
    open: AtomicUsize,
}

impl Context {
    /// The state for a process configured by `config`, waking qmgr at
    /// `qmgr_socket` and asking anvil at `anvil_socket`. `Err` is a
    /// configuration error of the policy (an unknown restriction, a
    /// table type Postern cannot read), which names the parameter.
    pub(crate) fn from_config(
        config: &mail_config::Main,
        qmgr_socket: PathBuf,
        anvil_socket: PathBuf,
        authd_socket: Option<PathBuf>,
    ) -> Result<Context, String> {
        let queue_dir = mail_config::settings::Common::new(config).queue_directory;
        let mut settings = Settings::from_config(config);
        let tls = load_tls(&settings);
        if tls.is_none() {
            settings.server.starttls_offered = false;
        }
        if settings.sasl_enabled && authd_socket.is_none() {
            tracing::warn!(
                "smtpd_sasl_auth_enable = yes, but master.toml has no authd service: \
                 AUTH is not offered; add the authd service to master.toml"
            );
        }
        let policy = Policy::from_config(config)?;
        // The header pass of cleanup uses the same tables as MAIL and RCPT.
        settings.cleanup.header_rewrite = policy.header_rewriter();
        Ok(Context {
            settings,
            tls,
            authd: authd_socket,
            policy,
            wakeup: Arc::new(QmgrWakeup::new(qmgr_socket)),
            queue: Queue::new(queue_dir),
            counts: Arc::new(ConnectionCounts::default()),
            anvil: Anvil::from_config(config, anvil_socket),
            peer_lookup: PeerLookup::from_config(config),
            open: AtomicUsize::new(0),
        })
    }
}

/// The certificate, when TLS is asked for. A certificate that does not
/// load is logged and TLS stays off, as Postfix does: STARTTLS is not
/// offered (a level of encrypt then refuses mail with 530) and smtps
/// closes connections, rather than the service not starting at all.
fn load_tls(s: &Settings) -> Option<mail_tls::ServerTls> {
    if s.tls_level == crate::settings::TlsLevel::None && !s.wrappermode {
        return None;
    }
    match mail_tls::ServerTls::load(&s.tls_files) {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::error!("TLS is off: {e}");
            None
        }
    }
}

/// smtpd as a `mail_daemon::Service`: the skeleton accepts, stops,
/// drains and catches panics; this decides per connection.
struct Smtpd(Arc<Context>);

impl Service for Smtpd {
    async fn connection(self: Arc<Self>, conn: Connection) {
        let Connection::Tcp { stream, peer } = conn else { return };
        let ctx = &self.0;
        let client = Client::new(peer.ip());
        let open = ctx.open.fetch_add(1, Ordering::AcqRel);
        let _slot = OpenSlot(ctx);
        if open >= ctx.settings.process_connection_limit {
            refuse(&stream, &client, ctx, open);
            return;
        }
        connection(stream, client, Arc::clone(ctx)).await;
    }
}

/// Gives a session's place back however it ends (a panic included).
struct OpenSlot<'a>(&'a Context);

impl Drop for OpenSlot<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves until stopped. Returns an error only when start-up fails.
pub(crate) async fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    if daemon.listeners.iter().any(|l| matches!(l, Listener::Unix(_))) {
        anyhow::bail!("smtpd serves TCP only (type = \"inet\" in master.toml)");
    }
    let qmgr = daemon.socket_path("qmgr")?;
    // Without an anvil service in master.toml smtpd runs on its own
    // per-process limit; the default path then fails, and says so, once a
    // second at most (fail-open, as with an anvil that is down).
    let anvil = daemon.socket_path_or("anvil", mail_ipc::sockets::ANVIL);
    let authd = daemon.socket_path("authd").ok();
    let ctx = Context::from_config(&daemon.config, qmgr, anvil, authd)
        .map_err(|e| anyhow::anyhow!("{}: {e}", daemon.config.file().display()))?;
    let ctx = Arc::new(ctx);
    mail_daemon::run(&mut daemon, Arc::new(Smtpd(ctx))).await?;
    Ok(())
}

/// A connection over `smtpd_process_connection_limit`: one 421 and
/// close, without a session task or its buffers. The reply is written
/// without waiting: on a fresh connection it fits in the socket buffer,
/// and a client that does not read it learns from the close anyway.
fn refuse(stream: &TcpStream, client: &Client, ctx: &Context, open: usize) {
    tracing::info!("connect from {client}");
    tracing::warn!(
        "too many connections: {open} open in this process \
         (smtpd_process_connection_limit = {}); refusing {client}",
        ctx.settings.process_connection_limit
    );
    let reply =
        format!("421 4.7.0 {} Error: too many connections\r\n", ctx.settings.server.hostname);
    let _ = stream.try_write(reply.as_bytes());
    tracing::info!("disconnect from {client} commands=0");
}

/// One connection: the client limits (asked of anvil), the session, the
/// log lines around it.
async fn connection(mut stream: TcpStream, client: Client, ctx: Arc<Context>) {
    // Before the greeting, as Postfix does, bounded by
    // smtpd_peername_lookup_timeout; other sessions go on meanwhile.
    let client = match &ctx.peer_lookup {
        Some(lookup) => lookup.client(client.addr).await,
        None => client,
    };
    tracing::info!("connect from {client}");
    // Replies are written whole, one batch per write; Nagle would only
    // delay them.
    let _ = stream.set_nodelay(true);
    // Postfix exempts mynetworks from client limits
    // (smtpd_client_event_limit_exceptions = $mynetworks).
    let admitted = if ctx.policy.is_trusted(client.addr) {
        None
    } else {
        match ctx.anvil.admit(&client, &ctx.counts, ctx.settings.connection_limit).await {
            Ok(admitted) => Some(admitted),
            Err(Refused) => {
                let reply = format!(
                    "421 4.7.0 {} Error: too many connections from {}\r\n",
                    ctx.settings.server.hostname, client.addr
                );
                let _ =
                    tokio::time::timeout(ctx.settings.timeout, stream.write_all(reply.as_bytes()))
                        .await;
                tracing::info!("disconnect from {client} commands=0");
                return;
            }
        }
    };
    let mut conn = Conn::Plain(stream);
    if ctx.settings.wrappermode {
        conn = match wrapper_handshake(conn, &client, &ctx).await {
            Some(tls) => tls,
            None => {
                if let Some(admitted) = admitted {
                    admitted.release().await;
                }
                tracing::info!("disconnect from {client} commands=0");
                return;
            }
        };
    }
    let counters = session::run(&mut conn, client.clone(), ctx).await;
    if let Some(admitted) = admitted {
        admitted.release().await;
    }
    let _ = conn.shutdown().await;
    tracing::info!("disconnect from {client} {counters}");
}

/// smtps (`smtpd_tls_wrappermode = yes`): the handshake comes before
/// the greeting. `None` when it fails (logged as Postfix does).
async fn wrapper_handshake(
    mut conn: Conn<TcpStream>,
    client: &Client,
    ctx: &Context,
) -> Option<Conn<TcpStream>> {
    let Some(tls) = ctx.tls.as_ref() else {
        tracing::warn!(
            "smtpd_tls_wrappermode = yes but no usable certificate \
             (smtpd_tls_cert_file); closing the connection from {client}"
        );
        return None;
    };
    let plain = conn.take_plain()?;
    match tls.accept(plain, ctx.settings.starttls_timeout).await {
        Ok(t) => {
            session::log_tls(client, &t, ctx.settings.tls_loglevel);
            Some(Conn::Tls(Box::new(t)))
        }
        Err(e) => {
            tracing::warn!("SSL_accept error from {client}: {e}");
            tracing::info!("lost connection after CONNECT from {client}");
            None
        }
    }
}
