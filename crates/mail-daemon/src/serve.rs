//! The async skeleton (Postfix's `multi_server.c`): accept loops over the
//! sockets master handed us, one task per connection with its panic
//! caught, an optional connection cap, accept back-off, and the two ways
//! of stopping. A daemon supplies a [`Service`] and calls [`run`].
//!
//! Stopping: SIGTERM/SIGINT ([`Stop::Now`]) end the accept loops and the
//! open connections at once and wait for [`Service::work`] to return;
//! SIGUSR1 ([`Stop::Drain`]) reports `Draining` to master, closes the
//! listeners (new connections go to the next generation), and waits for
//! the open connections and `work` to finish.

use crate::{Daemon, Listener, Stop};
use anyhow::Context as _;
use mail_ipc::accept::AcceptBackoff;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// An accepted connection.
#[derive(Debug)]
pub enum Connection {
    /// On an inet listener.
    Tcp {
        /// The stream.
        stream: tokio::net::TcpStream,
        /// The client's address.
        peer: SocketAddr,
    },
    /// On a unix listener.
    Unix(tokio::net::UnixStream),
}

impl Connection {
    /// Who is on the other end, for log lines: `[addr]:port` or `uid=N pid=M`.
    pub fn peer_label(&self) -> String {
        match self {
            Connection::Tcp { peer, .. } => peer.to_string(),
            Connection::Unix(s) => match s.peer_cred() {
                Ok(c) => format!("uid={} pid={}", c.uid(), c.pid().unwrap_or(0)),
                Err(_) => "unix peer".to_owned(),
            },
        }
    }
}

/// Tells [`Service::work`] about stop requests.
#[derive(Debug, Clone)]
pub struct StopWatch(watch::Receiver<Option<Stop>>);

impl StopWatch {
    /// The request so far, if any.
    pub fn requested(&self) -> Option<Stop> {
        *self.0.borrow()
    }

    /// Resolves once a stop has been requested (at once if one came
    /// already), saying how.
    pub async fn stopped(&mut self) -> Stop {
        loop {
            if let Some(s) = *self.0.borrow_and_update() {
                return s;
            }
            if self.0.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// What a daemon does; [`run`] does the rest.
pub trait Service: Send + Sync + 'static {
    /// Serves one accepted connection. A panic here is logged as a
    /// `panic:` line and costs only this connection.
    fn connection(self: Arc<Self>, conn: Connection) -> impl Future<Output = ()> + Send;

    /// Connections served at once; when reached, the skeleton stops
    /// accepting (new clients wait in the kernel's backlog) until one
    /// ends. `None`: no cap.
    fn max_connections(&self) -> Option<usize> {
        None
    }

    /// The daemon's own work beside its connections (pickup's scanner).
    /// It must return soon after `stop` reports a request; its return
    /// ends the daemon once the connections are done (an error is fatal).
    /// The default waits for a stop request.
    fn work(self: Arc<Self>, stop: StopWatch) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move {
            let mut stop = stop;
            stop.stopped().await;
            Ok(())
        }
    }
}

pub(crate) enum Listening {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
    /// Fails every accept as on EMFILE, counting the attempts.
    #[cfg(test)]
    Failing(Arc<std::sync::atomic::AtomicUsize>),
}

impl Listening {
    async fn accept(&self) -> std::io::Result<Connection> {
        match self {
            Listening::Tcp(l) => {
                l.accept().await.map(|(stream, peer)| Connection::Tcp { stream, peer })
            }
            Listening::Unix(l) => l.accept().await.map(|(s, _)| Connection::Unix(s)),
            #[cfg(test)]
            Listening::Failing(n) => {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(std::io::Error::from_raw_os_error(libc::EMFILE))
            }
        }
    }

    fn name(&self) -> String {
        let name = match self {
            Listening::Tcp(l) => l.local_addr().map(|a| a.to_string()).ok(),
            Listening::Unix(l) => {
                l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            }
            #[cfg(test)]
            Listening::Failing(_) => None,
        };
        name.unwrap_or_else(|| "listener".to_owned())
    }
}

fn adopt(listeners: Vec<Listener>) -> anyhow::Result<Vec<Listening>> {
    listeners
        .into_iter()
        .map(|l| {
            Ok(match l {
                Listener::Tcp(l) => {
                    l.set_nonblocking(true).context("cannot make the listener non-blocking")?;
                    Listening::Tcp(
                        tokio::net::TcpListener::from_std(l)
                            .context("cannot adopt the listener")?,
                    )
                }
                Listener::Unix(l) => {
                    l.set_nonblocking(true).context("cannot make the listener non-blocking")?;
                    Listening::Unix(
                        tokio::net::UnixListener::from_std(l)
                            .context("cannot adopt the listener")?,
                    )
                }
            })
        })
        .collect()
}

/// Runs `service` on the listeners master handed `daemon` until stopped,
/// reporting `Ready` and `Draining` to master. Returns how it was
/// stopped; an error only for a start-up problem or a failed `work`.
pub async fn run<S: Service>(daemon: &mut Daemon, service: Arc<S>) -> anyhow::Result<Stop> {
    let listeners = adopt(std::mem::take(&mut daemon.listeners))?;
    if listeners.is_empty() {
        anyhow::bail!("no listening socket was handed over (start this program through master)");
    }
    let (stop_tx, stop_rx) = watch::channel(None);
    // Registered here, before Ready is reported, so a stop right after
    // start-up never meets the default action.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?;
    let signals = tokio::spawn(async move {
        loop {
            let how = tokio::select! {
                _ = term.recv() => Stop::Now,
                _ = int.recv() => Stop::Now,
                _ = usr1.recv() => Stop::Drain,
            };
            // A drain after a stop-now does not weaken it.
            stop_tx.send_if_modified(|cur| {
                let new = if *cur == Some(Stop::Now) { Stop::Now } else { how };
                let changed = *cur != Some(new);
                *cur = Some(new);
                changed
            });
            if stop_tx.is_closed() {
                return;
            }
        }
    });
    let result = serve(listeners, service, stop_rx, || daemon.ready(), || daemon.draining()).await;
    signals.abort();
    result
}

/// [`run`] without the process-wide parts (signals, status pipe), so it
/// can be tested.
pub(crate) async fn serve<S: Service>(
    listeners: Vec<Listening>,
    service: Arc<S>,
    mut stop: watch::Receiver<Option<Stop>>,
    ready: impl FnOnce(),
    draining: impl FnOnce(),
) -> anyhow::Result<Stop> {
    let cap = service.max_connections().map(|n| Arc::new(Semaphore::new(n.max(1))));
    let (conn_tx, mut conn_rx) = mpsc::channel::<Accepted>(64);
    let mut acceptors = JoinSet::new();
    for l in listeners {
        acceptors.spawn(accept_loop(l, cap.clone(), conn_tx.clone()));
    }
    drop(conn_tx);
    let mut work = tokio::spawn(Arc::clone(&service).work(StopWatch(stop.clone())));
    ready();
    let mut draining = Some(draining);

    let mut sessions: JoinSet<()> = JoinSet::new();
    let mut labels = std::collections::HashMap::new();
    let mut how: Option<Stop> = None;
    let mut work_done: Option<anyhow::Result<()>> = None;
    let mut signals_alive = true;
    loop {
        tokio::select! {
            changed = stop.changed(), if signals_alive => {
                if changed.is_err() {
                    signals_alive = false;
                    continue;
                }
                let asked = *stop.borrow_and_update();
                if let Some(asked) = asked {
                    begin_stop(asked, &mut how, &mut draining, &mut acceptors, &mut sessions, &mut conn_rx);
                }
            }
            Some((conn, permit)) = conn_rx.recv(), if how.is_none() => {
                let label = conn.peer_label();
                let svc = Arc::clone(&service);
                let handle = sessions.spawn(async move {
                    svc.connection(conn).await;
                    drop(permit);
                });
                labels.insert(handle.id(), label);
            }
            Some(done) = sessions.join_next_with_id(), if !sessions.is_empty() => match done {
                Ok((id, ())) => { labels.remove(&id); }
                Err(e) => {
                    let label = labels.remove(&e.id()).unwrap_or_default();
                    log_join_error(&label, e);
                }
            },
            w = &mut work, if work_done.is_none() => {
                work_done = Some(match w {
                    Ok(r) => r,
                    Err(e) if e.is_panic() => Err(anyhow::anyhow!("panic: {}", panic_text(e.into_panic()))),
                    Err(_) => Ok(()),
                });
                // A stop request the loop has not seen yet, else the work
                // ended by itself: stop as for a drain.
                let asked = (*stop.borrow()).unwrap_or(Stop::Drain);
                begin_stop(asked, &mut how, &mut draining, &mut acceptors, &mut sessions, &mut conn_rx);
            }
        }
        if how.is_some() && sessions.is_empty() && work_done.is_some() {
            break;
        }
    }
    work_done.unwrap_or(Ok(()))?;
    Ok(how.unwrap_or(Stop::Now))
}

type Accepted = (Connection, Option<OwnedSemaphorePermit>);

/// Acts on a stop request: `Now` ends everything, the first `Drain`
/// reports draining and stops accepting.
fn begin_stop(
    asked: Stop,
    how: &mut Option<Stop>,
    draining: &mut Option<impl FnOnce()>,
    acceptors: &mut JoinSet<()>,
    sessions: &mut JoinSet<()>,
    conn_rx: &mut mpsc::Receiver<Accepted>,
) {
    match asked {
        Stop::Now => {
            *how = Some(Stop::Now);
            acceptors.abort_all();
            sessions.abort_all();
            conn_rx.close();
        }
        Stop::Drain if how.is_none() => {
            *how = Some(Stop::Drain);
            if let Some(f) = draining.take() {
                f();
            }
            // Closing our copies of the listeners: new connections go to
            // the next generation.
            acceptors.abort_all();
            conn_rx.close();
            tracing::info!("draining: {} connection(s) open", sessions.len());
        }
        Stop::Drain => {}
    }
}

async fn accept_loop(listener: Listening, cap: Option<Arc<Semaphore>>, tx: mpsc::Sender<Accepted>) {
    let name = listener.name();
    let mut backoff = AcceptBackoff::new();
    loop {
        // Taking the slot before accepting leaves the connection over the
        // cap in the backlog, where it waits rather than being refused.
        let permit = match &cap {
            Some(c) => match Arc::clone(c).acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return,
            },
            None => None,
        };
        match listener.accept().await {
            Ok(conn) => {
                backoff.succeeded();
                if tx.send((conn, permit)).await.is_err() {
                    return;
                }
            }
            Err(e) => tokio::time::sleep(backoff.failed(&name, &e)).await,
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

fn log_join_error(peer: &str, e: tokio::task::JoinError) {
    if e.is_panic() {
        tracing::error!("panic: connection from {peer} aborted: {}", panic_text(e.into_panic()));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Captures the log lines of the current thread.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct V(String);
            impl tracing::field::Visit for V {
                fn record_debug(&mut self, _: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!("{v:?}"));
                }
            }
            let mut v = V(String::new());
            event.record(&mut v);
            self.0.lock().unwrap().push(v.0);
        }
    }

    impl Captured {
        pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
            use tracing_subscriber::layer::SubscriberExt;
            tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
        }
        pub(crate) fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Echoes one line after `delay`; panics on the line "boom".
    struct Echo {
        delay: Duration,
        max: Option<usize>,
    }

    impl Service for Echo {
        async fn connection(self: Arc<Self>, conn: Connection) {
            let Connection::Unix(mut s) = conn else { return };
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap_or(0);
            if &buf[..n] == b"boom" {
                panic!("handler exploded");
            }
            tokio::time::sleep(self.delay).await;
            let _ = s.write_all(&buf[..n]).await;
        }
        fn max_connections(&self) -> Option<usize> {
            self.max
        }
    }

    fn listener(dir: &std::path::Path) -> (std::path::PathBuf, Vec<Listening>) {
        let path = dir.join("sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        (path.clone(), adopt(vec![Listener::Unix(l)]).unwrap())
    }

    async fn ask(path: &std::path::Path, what: &[u8]) -> Vec<u8> {
        let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
        s.write_all(what).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        out
    }

    #[tokio::test]
    async fn a_panic_is_logged_and_serving_goes_on() {
        let log = Captured::default();
        let _g = log.install();
        let dir = tempfile::tempdir().unwrap();
        let (path, ls) = listener(dir.path());
        let (tx, rx) = watch::channel(None);
        let server = tokio::spawn(serve(
            ls,
            Arc::new(Echo { delay: Duration::ZERO, max: None }),
            rx,
            || {},
            || {},
        ));
        assert_eq!(ask(&path, b"boom").await, b"");
        assert_eq!(ask(&path, b"hello").await, b"hello");
        tx.send(Some(Stop::Now)).unwrap();
        assert_eq!(server.await.unwrap().unwrap(), Stop::Now);
        let lines = log.lines();
        assert!(
            lines.iter().any(|l| l.starts_with("panic: connection from uid=")
                && l.ends_with("aborted: handler exploded")),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn drain_finishes_the_open_connection_then_returns() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ls) = listener(dir.path());
        let (tx, rx) = watch::channel(None);
        let drained = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = Arc::clone(&drained);
        let server = tokio::spawn(serve(
            ls,
            Arc::new(Echo { delay: Duration::from_millis(300), max: None }),
            rx,
            || {},
            move || d.store(true, std::sync::atomic::Ordering::SeqCst),
        ));
        let p = path.clone();
        let slow = tokio::spawn(async move { ask(&p, b"slow").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(Some(Stop::Drain)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!server.is_finished(), "returned while a connection was open");
        assert_eq!(slow.await.unwrap(), b"slow", "the open connection was finished");
        assert_eq!(server.await.unwrap().unwrap(), Stop::Drain);
        assert!(drained.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_cap_holds_new_connections_in_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ls) = listener(dir.path());
        let (tx, rx) = watch::channel(None);
        let server = tokio::spawn(serve(
            ls,
            Arc::new(Echo { delay: Duration::from_millis(300), max: Some(1) }),
            rx,
            || {},
            || {},
        ));
        let t = std::time::Instant::now();
        let (a, b) = tokio::join!(ask(&path, b"a"), ask(&path, b"b"));
        assert_eq!((a, b), (b"a".to_vec(), b"b".to_vec()));
        assert!(
            t.elapsed() >= Duration::from_millis(550),
            "served one at a time: {:?}",
            t.elapsed()
        );
        tx.send(Some(Stop::Now)).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off() {
        let log = Captured::default();
        let _g = log.install();
        let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, _rx) = mpsc::channel(1);
        let l = tokio::spawn(accept_loop(Listening::Failing(Arc::clone(&tries)), None, tx));
        tokio::time::sleep(Duration::from_secs(10)).await;
        l.abort();
        let n = tries.load(std::sync::atomic::Ordering::SeqCst);
        // 10 ms doubling to 1 s: about 14 attempts in 10 s, not millions.
        assert!((5..=20).contains(&n), "{n} accept attempts in 10 s of EMFILE");
        let warnings = log.lines();
        assert!(warnings.len() <= 2, "{warnings:?}");
        assert!(warnings[0].starts_with("accept on listener: "), "{warnings:?}");
    }
}
