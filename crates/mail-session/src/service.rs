//! The parts of a login/mail split that do not depend on the protocol,
//! shared by pop3d and imapd: the login service's connection caps per
//! client address and per user ([`Caps`], counted by anvil across every
//! login and mail process, and in the process itself), the handoff from
//! the login side ([`send_session`] with a relay, [`pass_session`] with
//! the client's own socket), the byte relay the login process runs for a
//! relayed session ([`relay`]), the login side's certificate
//! ([`load_tls`]), and the mail side's bounded wait for its one session
//! and its taking over ([`receive_session`]).
//!
//! Severities: none; failures are returned (or end the relay), except
//! that [`load_tls`] logs a certificate that does not load and
//! [`receive_session`] logs a handoff that fails.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{ACCEPTED, Handoff};

/// Open sessions per key, with a cap; a slot is given back when its
/// [`Slot`] drops, however the session ends.
#[derive(Debug)]
pub struct Counter<K> {
    limit: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// One taken place of a [`Counter`].
#[derive(Debug)]
pub struct Slot<'a, K: std::hash::Hash + Eq + Clone> {
    counter: &'a Counter<K>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> Counter<K> {
    /// A counter allowing `limit` open slots per key (0: no limit).
    pub fn new(limit: usize) -> Counter<K> {
        Counter { limit, open: Mutex::new(HashMap::new()) }
    }

    /// A slot, or `None` at the limit.
    pub fn take(&self, key: K) -> Option<Slot<'_, K>> {
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

/// A login service's caps: connections per client address and sessions
/// per user. anvil counts them across every process of the service (the
/// login processes, and the mail processes that hold the sessions after
/// the handoff); this process's own counts apply too, and are all that
/// applies while anvil cannot be reached (warned about, as smtpd does).
#[derive(Debug)]
pub struct Caps {
    anvil: Option<crate::anvil::AnvilLink>,
    client_limit: usize,
    user_limit: usize,
    per_client: Counter<IpAddr>,
    per_user: Counter<String>,
}

/// A connection counted by [`Caps`]: in this process until dropped, at
/// anvil until dropped or [`Held::release_anvil`].
#[derive(Debug)]
pub struct Held<'a, K: std::hash::Hash + Eq + Clone> {
    _local: Slot<'a, K>,
    anvil: Option<crate::anvil::AnvilSlot>,
}

impl<K: std::hash::Hash + Eq + Clone> Held<'_, K> {
    /// Ends the count at anvil (waiting until anvil was told), once a mail
    /// process counts the session itself.
    pub async fn release_anvil(&mut self) {
        if let Some(slot) = self.anvil.take() {
            slot.release().await;
        }
    }
}

/// A cap that a connection would exceed: the count it would make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded(pub u32);

impl Caps {
    /// Caps of `client_limit` connections per address and `user_limit`
    /// sessions per user (0: none), counted at the anvil at `anvil` as
    /// `service` (`pop3`, `imap`).
    pub fn new(
        anvil: Option<std::path::PathBuf>,
        service: &'static str,
        client_limit: usize,
        user_limit: usize,
    ) -> Caps {
        Caps {
            anvil: anvil.map(|p| crate::anvil::AnvilLink::new(p, service)),
            client_limit,
            user_limit,
            per_client: Counter::new(client_limit),
            per_user: Counter::new(user_limit),
        }
    }

    /// Counts a new connection from `client`.
    pub async fn client(&self, client: IpAddr) -> Result<Held<'_, IpAddr>, Exceeded> {
        let subject = mail_ipc::anvil::Subject::Client(client);
        let anvil = self.ask(subject, self.client_limit).await?;
        let local = self.per_client.take(client).ok_or(Exceeded(self.local_count(true)))?;
        Ok(Held { _local: local, anvil })
    }

    /// Counts a new session of `user`.
    pub async fn user(&self, user: &str) -> Result<Held<'_, String>, Exceeded> {
        let subject = mail_ipc::anvil::Subject::User(user.to_owned());
        let anvil = self.ask(subject, self.user_limit).await?;
        let local = self.per_user.take(user.to_owned()).ok_or(Exceeded(self.local_count(false)))?;
        Ok(Held { _local: local, anvil })
    }

    /// What a refused local take would have made: the limit plus this one.
    fn local_count(&self, client: bool) -> u32 {
        let limit = if client { self.client_limit } else { self.user_limit };
        u32::try_from(limit).unwrap_or(u32::MAX).saturating_add(1)
    }

    async fn ask(
        &self,
        subject: mail_ipc::anvil::Subject,
        limit: usize,
    ) -> Result<Option<crate::anvil::AnvilSlot>, Exceeded> {
        // Without a limit there is nothing to ask.
        let Some(link) = self.anvil.as_ref().filter(|_| limit != 0) else { return Ok(None) };
        match link.connect(subject).await {
            Some((reply, _slot)) if usize::try_from(reply.count).is_ok_and(|n| n > limit) => {
                Err(Exceeded(reply.count))
            }
            Some((_, slot)) => Ok(Some(slot)),
            None => Ok(None),
        }
    }
}

/// Whether a password may cross this connection without TLS: always
/// when the service's `*_plaintext_auth = yes`, else only from loopback
/// (an IPv4-mapped IPv6 loopback address included), where nothing
/// crosses a network.
pub fn plaintext_ok(plaintext_auth: bool, client: IpAddr) -> bool {
    plaintext_auth || client.to_canonical().is_loopback()
}

/// Connects to the mail service at `path`, sends the session and waits
/// (at most `timeout` per step) for its acceptance. Returns the login
/// side's end of the socketpair, for [`relay`] (a TLS session, which only
/// the login process can decrypt). Blocking: run it off the async runtime.
pub fn send_session(
    path: &std::path::Path,
    handoff: &Handoff,
    timeout: Duration,
) -> Result<tokio::net::UnixStream, String> {
    let (mine, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    hand(path, theirs.as_fd(), handoff, timeout)?;
    drop(theirs);
    // Only this end goes non-blocking: the mail process's end is another
    // open file and stays blocking for its blocking I/O.
    mine.set_nonblocking(true).map_err(|e| format!("socketpair: {e}"))?;
    tokio::net::UnixStream::from_std(mine).map_err(|e| format!("socketpair: {e}"))
}

/// Like [`send_session`], but passes the client's own connection (a plain
/// one), so the login process is out of the session's path: once this
/// returns `Ok` the caller closes its descriptor and never uses it again
/// (the mail process makes it blocking). Blocking.
pub fn pass_session(
    path: &std::path::Path,
    client: BorrowedFd<'_>,
    handoff: &Handoff,
    timeout: Duration,
) -> Result<(), String> {
    hand(path, client, handoff, timeout)
}

fn hand(
    path: &std::path::Path,
    session: BorrowedFd<'_>,
    handoff: &Handoff,
    timeout: Duration,
) -> Result<(), String> {
    let control = UnixStream::connect(path).map_err(|e| format!("cannot connect: {e}"))?;
    let _ = control.set_read_timeout(Some(timeout));
    let _ = control.set_write_timeout(Some(timeout));
    crate::send(&control, session, handoff).map_err(|e| e.to_string())?;
    let mut ack = [0u8; 1];
    (&control).read_exact(&mut ack).map_err(|e| format!("no answer: {e}"))?;
    if ack[0] != ACCEPTED {
        return Err("the mail service refused the session".into());
    }
    Ok(())
}

/// Copies bytes both ways until one side closes. When the mail process
/// closes (logout, its idle timer), the client's connection is closed at
/// once (with TLS's close_notify), without waiting for the client; when
/// the client goes, the mail process sees end of file.
pub async fn relay<C: AsyncRead + AsyncWrite + Unpin>(
    mut client: C,
    mut mail: tokio::net::UnixStream,
) {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            r = client.read(&mut up) => match r {
                Ok(0) | Err(_) => {
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

/// How often [`accept_one`] looks at its clock.
const ACCEPT_TICK: Duration = Duration::from_secs(1);

/// An idle mail process exits after this long without a session (master
/// starts a new one on demand).
const MAX_IDLE: Duration = Duration::from_secs(60);
/// How long the login process may take to send the session.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// One session a mail-service process took over from a login process.
#[derive(Debug)]
pub struct Received {
    /// The session, blocking: the client's own TCP connection (a plain
    /// session), or the mail process's end of the login process's relay
    /// (TLS).
    pub stream: socket2::Socket,
    /// The session's count at anvil (client address and user), held for
    /// as long as this lives; `None` when anvil could not be reached.
    pub anvil: Option<UnixStream>,
    /// Who logged in, and the bytes already read.
    pub handoff: crate::Handoff,
    /// A development instance started by root runs everything as root,
    /// its users included; anywhere else a root mailbox is refused.
    pub allow_root: bool,
}

/// The mail side of a POP3 or IMAP service (`protocol` names it in
/// errors): waits for one session from a login process, telling master
/// it is ready and then draining, so master starts another process for
/// the next one; `None` when none came within a minute or the
/// handoff failed (logged). A reload (SIGUSR1) no longer reaches the
/// process once it serves a session; SIGTERM (stop) still ends it.
pub fn receive_session(
    daemon: &mut mail_daemon::Daemon,
    protocol: &str,
) -> anyhow::Result<Option<Received>> {
    use std::io::Write as _;
    let listener = match daemon.listeners.pop() {
        Some(mail_daemon::Listener::Unix(l)) if daemon.listeners.is_empty() => l,
        _ => anyhow::bail!(
            "the {protocol} mail service needs exactly one unix listener (type = \"unix\" in master.toml)"
        ),
    };
    let common = mail_config::settings::Common::new(&daemon.config);
    let allow_root = nix::unistd::User::from_name(&common.mail_owner)
        .ok()
        .flatten()
        .is_some_and(|u| u.uid.is_root());
    daemon.ready();
    let Some(conn) = accept_one(&listener, MAX_IDLE)? else {
        daemon.draining();
        return Ok(None);
    };
    let mut usr1 = nix::sys::signal::SigSet::empty();
    usr1.add(nix::sys::signal::Signal::SIGUSR1);
    let _ = usr1.thread_block();
    daemon.draining();
    drop(listener);
    let _ = conn.set_read_timeout(Some(RECV_TIMEOUT));
    let (fd, handoff) = match crate::recv(&conn) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("receiving a session: {e}");
            return Ok(None);
        }
    };
    // Counted before the login process, seeing the acceptance, lets its
    // own count go.
    let anvil_path = daemon.socket_path("anvil").ok();
    let anvil = crate::anvil::hold_for_session(anvil_path.as_deref(), protocol, &handoff);
    if (&conn).write_all(&[crate::ACCEPTED]).is_err() {
        tracing::warn!("the login process went away during the handoff");
        return Ok(None);
    }
    // Only now is the login process done with a passed connection, whose
    // non-blocking flag it shares; this process does blocking I/O.
    let stream = socket2::Socket::from(fd);
    if let Err(e) = stream.set_nonblocking(false) {
        tracing::warn!("the session's connection: {e}");
        return Ok(None);
    }
    Ok(Some(Received { stream, anvil, handoff, allow_root }))
}

/// Waits for one connection from a login process on the service's
/// listener; `None` after `max_idle` without one.
fn accept_one(listener: &UnixListener, max_idle: Duration) -> std::io::Result<Option<UnixStream>> {
    // On Linux SO_RCVTIMEO bounds accept(2) too. The listener is shared
    // only by this service's processes, which all want the same bound.
    socket2::SockRef::from(listener).set_read_timeout(Some(ACCEPT_TICK))?;
    let since = Instant::now();
    loop {
        match listener.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false)?;
                return Ok(Some(c));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if since.elapsed() >= max_idle {
            return Ok(None);
        }
    }
}

/// A name or text from a user or the configuration made fit for one log
/// or protocol line: control characters dropped, at most 100 characters.
pub fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// smtpd's certificate for a login service, when one is configured. One
/// that does not load is logged and TLS stays off (STLS/STARTTLS not
/// offered; the wrapper-mode service closes connections), as smtpd does.
/// `wrapper_param` names the service's `*_tls_wrappermode` parameter for
/// the error when it is on without a certificate.
pub fn load_tls(
    config: &mail_config::Main,
    wrapper_param: &str,
    wrapper: bool,
) -> Option<mail_tls::ServerTls> {
    let t = mail_config::settings::SmtpdTls::new(config);
    if t.smtpd_tls_cert_file.is_none() && t.smtpd_tls_chain_files.is_empty() {
        if wrapper {
            tracing::error!("{wrapper_param} = yes but no certificate: set smtpd_tls_cert_file");
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
