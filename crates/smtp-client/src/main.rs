//! SUMMARY
//!   smtp-client - the Postern SMTP delivery agent (Postfix smtp(8))
//!
//! DESCRIPTION
//!   Sends mail to other servers. qmgr connects to `private/smtp` (the
//!   `smtp` service of type `unix` in master.toml, beside the `inet`
//!   service of the same name, as in master.cf) and sends one
//!   `DeliveryRequest` per connection: a queue id in `active/`, some of its
//!   recipients and their next hop in Postfix's syntax (`domain`,
//!   `host:port`, `[host]`, `[host]:port`, or a list of those tried in
//!   order). The agent reads the envelope and content from `active/ID`,
//!   looks the servers up (MX records sorted by preference, equal
//!   preferences shuffled; the domain's own A/AAAA records when it has no
//!   MX; `inet_protocols` and `smtp_address_preference`), tries them in
//!   order (`smtp_mx_address_limit` addresses), then
//!   `smtp_fallback_relay`, and answers one result per recipient.
//!
//!   The session: EHLO (HELO when EHLO is refused), STARTTLS by
//!   `smtp_tls_security_level`, EHLO again, AUTH PLAIN or LOGIN when
//!   `smtp_sasl_auth_enable` and `smtp_sasl_password_maps` have a
//!   password for the server (only inside TLS), then MAIL FROM with SIZE,
//!   BODY, SMTPUTF8 and the DSN parameters RET and ENVID when the server
//!   offers them, RCPT TO with NOTIFY and ORCPT, DATA, all pipelined when
//!   the server offers PIPELINING. Idle sessions are kept
//!   `smtp_connection_cache_time_limit` for the next message to the same
//!   server and checked with RSET before reuse.
//!
//!   One process serves many requests at once (tokio), each in its own
//!   task; `maxproc` processes share the socket.
//!
//! DIAGNOSTICS
//!   One line per recipient, as Postfix writes it:
//!   `ID: to=<u@example.org>, relay=mx.example.org[192.0.2.1]:25,
//!   delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0
//!   Ok: queued as X)`; deferrals carry the server's reply `(host
//!   mx[addr] said: 451 ... (in reply to RCPT TO command))` or the
//!   connection failure `(connect to mx[addr]:25: Connection refused)`.
//!
//! SECURITY
//!   Runs as mail_owner. Everything a server or a nameserver sends is
//!   bounded (reply lines of 512 octets, 100 lines a reply, every stage
//!   under its `smtp_*_timeout`) and made printable before it is logged.
//!
//! CONFIGURATION
//!   smtp_helo_name, smtp_tcp_port, smtp_tls_security_level,
//!   smtp_tls_CAfile, smtp_sasl_auth_enable, smtp_sasl_password_maps,
//!   smtp_fallback_relay, smtp_mx_address_limit, inet_protocols,
//!   smtp_address_preference, smtp_connect_timeout, smtp_helo_timeout,
//!   smtp_starttls_timeout, smtp_mail_timeout, smtp_rcpt_timeout,
//!   smtp_data_init_timeout, smtp_data_xfer_timeout,
//!   smtp_data_done_timeout, smtp_quit_timeout,
//!   smtp_connection_cache_time_limit, smtp_connection_reuse_count_limit,
//!   disable_dns_lookups and the dns_resolver_* parameters, myhostname.
//!
//! STANDARDS
//!   RFC 5321, RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152
//!   (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3207 (STARTTLS), RFC 4954
//!   (AUTH), RFC 3461 (DSN), RFC 7505 (null MX), RFC 3463.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mail_daemon::{Connection, Service, StopWatch};
use mail_ipc::delivery::DeliveryRequest;
use smtp_client::deliver::Agent;

/// How long qmgr may take to send its request once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let result = (|| {
        let daemon = mail_daemon::init("smtp")?;
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        rt.block_on(run(daemon))
    })();
    mail_daemon::exit_on_fatal("smtp", result)
}

struct Smtp(Arc<Agent>);

async fn run(mut daemon: mail_daemon::Daemon) -> anyhow::Result<()> {
    if !matches!(daemon.listeners.as_slice(), [mail_daemon::Listener::Unix(_)]) {
        anyhow::bail!("smtp-client needs one unix listener (type = \"unix\" in master.toml)");
    }
    let s = smtp_client::settings::Settings::new(&daemon.config, &daemon.master)
        .map_err(|e| anyhow::anyhow!("{}: {e}", daemon.config.file().display()))?;
    let dns = mail_config::settings::Dns::new(&daemon.config);
    let resolver = mail_dns::Resolver::new(&mail_dns::Params::from_config(&dns))
        .map_err(anyhow::Error::msg)?;
    let agent = Arc::new(Agent { s, resolver, cache: Default::default() });
    mail_daemon::run(&mut daemon, Arc::new(Smtp(agent))).await?;
    Ok(())
}

impl Service for Smtp {
    async fn connection(self: Arc<Self>, conn: Connection) {
        let Connection::Unix(mut stream) = conn else { return };
        let read =
            mail_ipc::read_frame_async::<DeliveryRequest>(&mut stream, mail_ipc::frame::MAX_FRAME);
        let req = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
            Ok(Ok(Some(req))) => req,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!("bad delivery request from qmgr: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!(
                    "qmgr sent no delivery request within {}s",
                    REQUEST_TIMEOUT.as_secs()
                );
                return;
            }
        };
        let reply = self.0.deliver(&req).await;
        if let Err(e) = mail_ipc::write_frame_async(&mut stream, &reply).await {
            tracing::warn!("{}: cannot send the delivery reply to qmgr: {e}", req.queue_id);
        }
    }

    /// Closes idle sessions once they outlive the cache time limit.
    async fn work(self: Arc<Self>, mut stop: StopWatch) -> anyhow::Result<()> {
        let limit = self.0.s.p.smtp_connection_cache_time_limit;
        let quit = self.0.s.p.smtp_quit_timeout.min(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stop.stopped() => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            for c in self.0.cache.expired(limit) {
                tokio::spawn(c.quit(quit));
            }
        }
        for c in self.0.cache.drain() {
            c.quit(quit).await;
        }
        Ok(())
    }
}
