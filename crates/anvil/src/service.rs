//! The daemon loop: accepts links on `private/anvil`, answers each link's
//! requests from the shared [`Table`], sweeps idle clients once per rate
//! window, logs the statistics every `anvil_status_update_time` and at
//! exit, and stops on SIGTERM or SIGUSR1.
//!
//! Every link is bounded: at most [`MAX_LINKS`] at once (one more is
//! closed at once, and its smtpd fails open), frames of at most
//! `mail_ipc::anvil::MAX_FRAME` bytes, [`FRAME_TIMEOUT`] to finish a frame
//! once it has started and to write a reply. Between frames a link may be
//! idle for as long as its smtpd lives: it carries that process's counts.
//! Severities: fatal only at start-up (no listener); a broken link is a
//! warning and costs only that link.

use crate::table::{Key, LinkId, Now, Table};
use mail_daemon::{Daemon, Listener, Stop};
use mail_ipc::anvil::{AnvilRequest, MAX_FRAME, MAX_SERVICE, MAX_USER, Subject};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

/// The most links at once: far more than smtpd processes in any master.toml.
pub(crate) const MAX_LINKS: usize = 1000;
/// The most clients in the table (about 100 bytes each).
pub(crate) const MAX_CLIENTS: usize = 100_000;
/// How long a started frame, or the write of a reply, may take.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Shared(Arc<Mutex<Table>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table has no invariant a panic elsewhere could break halfway.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) async fn run(daemon: Daemon) -> anyhow::Result<()> {
    let Some(Listener::Unix(listener)) = daemon.listeners.first() else {
        anyhow::bail!("anvil needs one unix listener (type = \"unix\" in master.toml)");
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener.try_clone()?)?;
    let settings = mail_config::settings::Anvil::new(&daemon.config);
    let unit = settings.anvil_rate_time_unit;
    let table = Shared(Arc::new(Mutex::new(Table::new(unit, MAX_CLIENTS))));
    let unit = table.lock().unit();
    // Zero turns the periodic report off; the one at exit stays.
    let status_every = settings.anvil_status_update_time;
    let mut status_tick = (!status_every.is_zero()).then(|| {
        tokio::time::interval_at(tokio::time::Instant::now() + status_every, status_every)
    });
    let mut sweep_tick = tokio::time::interval_at(tokio::time::Instant::now() + unit, unit);
    let links = Arc::new(Semaphore::new(MAX_LINKS));
    let mut next_link = 0u64;
    let stop = mail_daemon::stop_signal();
    tokio::pin!(stop);
    daemon.ready();

    loop {
        tokio::select! {
            how = &mut stop => {
                if how == Stop::Drain {
                    daemon.draining();
                }
                // Counts are not handed on: the next anvil starts from
                // zero, as Postfix's does after a restart.
                log_status(&table);
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match Arc::clone(&links).try_acquire_owned() {
                    Ok(permit) => {
                        next_link += 1;
                        let (id, table) = (LinkId(next_link), table.clone());
                        tokio::spawn(async move {
                            serve_link(stream, id, &table).await;
                            table.lock().close_link(id);
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::warn!("too many connections ({MAX_LINKS}); closing a new one");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = sweep_tick.tick() => table.lock().sweep(Now::get().mono),
            _ = async { status_tick.as_mut()?.tick().await; Some(()) }, if status_tick.is_some() => {
                log_status(&table);
            }
        }
    }
}

/// Logs the statistics since the last report (Postfix anvil's
/// `anvil_status_dump`) and the evictions, if any.
fn log_status(table: &Shared) {
    let (stats, unit) = {
        let mut t = table.lock();
        (t.take_stats(), t.unit())
    };
    for line in stats.lines(unit, format_time) {
        tracing::info!("{line}");
    }
    if stats.evicted > 0 {
        tracing::warn!(
            "client table full ({MAX_CLIENTS} clients): forgot {} least recently used",
            stats.evicted
        );
    }
}

/// The `at` of a statistics line, as Postfix prints it (`Dec  1 09:41:03`).
fn format_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t).format("%b %e %H:%M:%S").to_string()
}

/// Answers one link until it closes or breaks.
async fn serve_link(stream: UnixStream, id: LinkId, table: &Shared) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(MAX_FRAME as usize, r);
    loop {
        // Wait, without a limit, for the first byte of the next frame.
        match r.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(req) =
            mail_ipc::read_request_async::<AnvilRequest>(&mut r, MAX_FRAME, FRAME_TIMEOUT).await
        else {
            return;
        };
        match req {
            AnvilRequest::Connect { service, subject } => {
                if !valid_service(&service) {
                    tracing::warn!("closing a client connection: bad service name");
                    return;
                }
                if !valid_subject(&subject) {
                    tracing::warn!("closing a client connection: bad user name");
                    return;
                }
                let reply = table.lock().connect(id, Key::of(&service, subject), Now::get());
                let sent = tokio::time::timeout(
                    FRAME_TIMEOUT,
                    mail_ipc::write_frame_async(&mut w, &reply),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    tracing::warn!("closing a client connection: cannot send a reply");
                    return;
                }
            }
            AnvilRequest::Disconnect { service, subject } => {
                table.lock().disconnect(id, &Key::of(&service, subject), Now::get());
            }
        }
    }
}

/// A service name as master.toml and smtpd spell them.
fn valid_service(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SERVICE && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A user name as authd gives it: bounded, one line (it shows in the
/// statistics lines).
fn valid_subject(s: &Subject) -> bool {
    match s {
        Subject::Client(_) => true,
        Subject::User(u) => {
            !u.is_empty() && u.len() <= MAX_USER && !u.chars().any(char::is_control)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_ipc::anvil::{AnvilClient, ConnectReply};

    /// A real socket, the real link loop, the real client.
    #[tokio::test]
    async fn links_count_together_and_a_closed_link_gives_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anvil");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let table = Shared(Arc::new(Mutex::new(Table::new(Duration::from_secs(60), 10))));
        let t2 = table.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (s, _) = listener.accept().await.unwrap();
                n += 1;
                let t = t2.clone();
                tokio::spawn(async move {
                    serve_link(s, LinkId(n), &t).await;
                    t.lock().close_link(LinkId(n));
                });
            }
        });
        let t = Duration::from_secs(5);
        let ip = &Subject::Client("192.0.2.1".parse().unwrap());
        let mut a = AnvilClient::open(&path, t).await.unwrap();
        let mut b = AnvilClient::open(&path, t).await.unwrap();
        assert_eq!(a.connect("smtp", ip, t).await.unwrap(), ConnectReply { count: 1, rate: 1 });
        assert_eq!(b.connect("smtp", ip, t).await.unwrap(), ConnectReply { count: 2, rate: 2 });
        // One link's requests are handled in order, so a's next answer
        // comes after its disconnect.
        a.disconnect("smtp", ip, t).await.unwrap();
        assert_eq!(a.connect("smtp", ip, t).await.unwrap(), ConnectReply { count: 2, rate: 3 });
        assert_eq!(b.connect("smtp", ip, t).await.unwrap(), ConnectReply { count: 3, rate: 4 });
        drop(b);
        let mut c = AnvilClient::open(&path, t).await.unwrap();
        // b's close is handled by another task than c's requests: ask
        // until it has landed (a still holds one connection).
        let mut last = ConnectReply { count: 0, rate: 0 };
        for _ in 0..100 {
            last = c.connect("smtp", ip, t).await.unwrap();
            c.disconnect("smtp", ip, t).await.unwrap();
            if last.count == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(last.count, 2, "{last:?}");
        // A bad service name or an oversized frame closes only that link.
        let mut bad = AnvilClient::open(&path, t).await.unwrap();
        assert!(bad.connect("no spaces", ip, t).await.is_err());
        let mut raw = UnixStream::connect(&path).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, &[0, 1, 0, 0, 0, 1]).await.unwrap();
        let mut buf = Vec::new();
        let n = tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut buf).await.unwrap();
        assert_eq!(n, 0);
        assert!(c.connect("smtp", ip, t).await.is_ok());

        // Users count apart from addresses and per service, across links,
        // and a held link (a mail process) gives back when it closes.
        let user = &Subject::User("suporte".into());
        assert_eq!(a.connect("pop3", user, t).await.unwrap().count, 1);
        let held = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                mail_ipc::anvil::hold(&path, "pop3", &[Subject::User("suporte".into())], t)
            })
            .await
            .unwrap()
            .unwrap()
        };
        assert_eq!(c.connect("pop3", user, t).await.unwrap().count, 3);
        assert_eq!(c.connect("imap", user, t).await.unwrap().count, 1);
        drop(held);
        let mut last = 0;
        for _ in 0..100 {
            last = c.connect("pop3", user, t).await.unwrap().count;
            c.disconnect("pop3", user, t).await.unwrap();
            if last == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(last, 3, "a and c hold one each");
        let mut bad = AnvilClient::open(&path, t).await.unwrap();
        assert!(bad.connect("pop3", &Subject::User("a\nb".into()), t).await.is_err());
    }

    #[test]
    fn service_names() {
        assert!(valid_service("smtp"));
        assert!(valid_service("submission"));
        assert!(!valid_service(""));
        assert!(!valid_service("a b"));
        assert!(!valid_service(&"x".repeat(MAX_SERVICE + 1)));
    }
}
