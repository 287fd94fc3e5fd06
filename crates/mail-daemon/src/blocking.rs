//! The blocking skeleton (Postfix's `single_server.c`) for agents that
//! must stay single-threaded, as local-delivery does: it switches its
//! effective uid per recipient, and glibc makes every set*id call a
//! broadcast to all threads, so a worker with no other thread is both
//! simpler and cheaper. One connection at a time, no runtime, no thread:
//! the stop signals are caught by a handler that writes to a pipe the
//! accept loop polls (see `sys::install_stop_handlers`).
//!
//! [`run_blocking_batch`] hands over every connection already waiting
//! (up to a maximum) at once, so that an agent can share work among them
//! (local-delivery's one fsync per Maildir `new/` for a whole batch).
//!
//! Both stop requests mean the same here: finish the connection (or
//! batch) in hand, then return. A drain is reported to master as
//! `Draining`.

use crate::{Daemon, Listener, Stop};
use anyhow::Context as _;
use mail_ipc::accept::AcceptBackoff;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// A connection accepted by the blocking skeleton, in blocking mode.
#[derive(Debug)]
pub enum BlockingConnection {
    /// On an inet listener.
    Tcp(std::net::TcpStream, std::net::SocketAddr),
    /// On a unix listener.
    Unix(std::os::unix::net::UnixStream),
}

/// Serves the listeners master handed `daemon`, one connection at a
/// time, calling `handler` for each, until a stop signal; reports `Ready`
/// and, on SIGUSR1, `Draining`. A panic in `handler` is logged as a
/// `panic:` line and the loop goes on.
pub fn run_blocking(
    daemon: &mut Daemon,
    mut handler: impl FnMut(BlockingConnection),
) -> anyhow::Result<Stop> {
    run_blocking_batch(daemon, 1, |batch| batch.into_iter().for_each(&mut handler))
}

/// [`run_blocking`], but each time a listener is readable every
/// connection waiting on it is accepted, without blocking, up to `max`,
/// and `handler` gets them together (at least one, in the order they
/// were accepted). A panic in `handler` is logged with the first peer
/// and the loop goes on; a stop finishes the batch in hand.
pub fn run_blocking_batch(
    daemon: &mut Daemon,
    max: usize,
    handler: impl FnMut(Vec<BlockingConnection>),
) -> anyhow::Result<Stop> {
    let listeners = std::mem::take(&mut daemon.listeners);
    if listeners.is_empty() {
        anyhow::bail!("no listening socket was handed over (start this program through master)");
    }
    let (wake_rx, wake_tx) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .context("cannot create the stop pipe")?;
    crate::sys::install_stop_handlers(&wake_tx).context("cannot install the stop handlers")?;
    // The handler writes to wake_tx for the whole life of the process.
    std::mem::forget(wake_tx);
    daemon.ready();
    let how = serve_blocking(&listeners, &wake_rx, crate::sys::stop_seen, max, handler)?;
    if how == Stop::Drain {
        daemon.draining();
    }
    Ok(how)
}

/// How often the loop looks at the stop flag even without a wake-up.
const POLL_MS: u16 = 1000;

/// The loop of [`run_blocking_batch`] with the stop source given, for
/// tests.
pub(crate) fn serve_blocking(
    listeners: &[Listener],
    wake: &OwnedFd,
    stop: impl Fn() -> Option<Stop>,
    max: usize,
    mut handler: impl FnMut(Vec<BlockingConnection>),
) -> anyhow::Result<Stop> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let max = max.max(1);
    for l in listeners {
        // Several workers share a socket: the one that loses the race for
        // a connection must not block in accept().
        match l {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l) => l.set_nonblocking(true),
        }
        .context("cannot make the listener non-blocking")?;
    }
    let mut backoff = AcceptBackoff::new();
    loop {
        if let Some(how) = stop() {
            return Ok(how);
        }
        let mut fds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|l| match l {
                Listener::Tcp(l) => PollFd::new(l.as_fd(), PollFlags::POLLIN),
                Listener::Unix(l) => PollFd::new(l.as_fd(), PollFlags::POLLIN),
            })
            .collect();
        fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
        match poll(&mut fds, PollTimeout::from(POLL_MS)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let readable: Vec<bool> =
            fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        if readable.last().copied().unwrap_or(false) {
            drain_pipe(wake);
            continue;
        }
        for (l, _) in listeners.iter().zip(&readable).filter(|(_, r)| **r) {
            let batch = accept_batch(l, max, &mut backoff);
            let Some(first) = batch.first() else { continue };
            let peer = peer_label(first);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(batch)));
            if let Err(p) = result {
                tracing::error!(
                    "panic: connection from {peer} aborted: {}",
                    crate::serve::panic_text(p)
                );
            }
            if stop().is_some() {
                break;
            }
        }
    }
}

/// Accepts what is waiting on `l`, up to `max` connections, each put in
/// blocking mode; stops at the first `WouldBlock` (nothing more, or
/// another worker took it) or error (backed off as before).
fn accept_batch(l: &Listener, max: usize, backoff: &mut AcceptBackoff) -> Vec<BlockingConnection> {
    let mut batch = Vec::new();
    while batch.len() < max {
        let accepted = match l {
            Listener::Tcp(l) => l.accept().map(|(s, a)| BlockingConnection::Tcp(s, a)),
            Listener::Unix(l) => l.accept().map(|(s, _)| BlockingConnection::Unix(s)),
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                std::thread::sleep(backoff.failed(&listener_name(l), &e));
                break;
            }
        };
        backoff.succeeded();
        match blocking_mode(conn) {
            Ok(c) => batch.push(c),
            Err(e) => tracing::warn!("cannot set up a connection: {e}"),
        }
    }
    batch
}

fn blocking_mode(c: BlockingConnection) -> std::io::Result<BlockingConnection> {
    match &c {
        BlockingConnection::Tcp(s, _) => s.set_nonblocking(false)?,
        BlockingConnection::Unix(s) => s.set_nonblocking(false)?,
    }
    Ok(c)
}

fn peer_label(c: &BlockingConnection) -> String {
    match c {
        BlockingConnection::Tcp(_, a) => a.to_string(),
        BlockingConnection::Unix(s) => {
            match nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials) {
                Ok(c) => format!("uid={} pid={}", c.uid(), c.pid()),
                Err(_) => "unix peer".to_owned(),
            }
        }
    }
}

fn listener_name(l: &Listener) -> String {
    match l {
        Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        Listener::Unix(l) => l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_default(),
    }
}

fn drain_pipe(fd: &OwnedFd) {
    let mut buf = [0u8; 64];
    use std::os::fd::AsRawFd;
    while matches!(nix::unistd::read(fd.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::tests::Captured;
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    #[test]
    fn panics_are_caught_and_a_stop_finishes_the_connection_in_hand() {
        let log = Captured::default();
        let _g = log.install();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (wake_rx, wake_tx) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .unwrap();
        let flag = Arc::new(AtomicU8::new(0));
        let f = Arc::clone(&flag);
        let client = std::thread::spawn(move || {
            let talk = |what: &[u8]| {
                let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
                s.write_all(what).unwrap();
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                out
            };
            assert_eq!(talk(b"boom"), b"");
            assert_eq!(talk(b"one"), b"one");
            // A stop while the next connection is being served: it is
            // finished, then the loop returns.
            let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
            s.write_all(b"slow").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            f.store(1, Ordering::SeqCst);
            nix::unistd::write(&wake_tx, b"x").unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            out
        });
        let stop = || (flag.load(Ordering::SeqCst) == 1).then_some(Stop::Drain);
        let how = serve_blocking(&[Listener::Unix(l)], &wake_rx, stop, 1, |batch| {
            let [BlockingConnection::Unix(mut s)] = <[_; 1]>::try_from(batch).unwrap() else {
                return;
            };
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).unwrap();
            if &buf[..n] == b"boom" {
                panic!("agent exploded");
            }
            if &buf[..n] == b"slow" {
                std::thread::sleep(Duration::from_millis(300));
            }
            s.write_all(&buf[..n]).unwrap();
        })
        .unwrap();
        assert_eq!(how, Stop::Drain);
        assert_eq!(client.join().unwrap(), b"slow");
        let lines = log.lines();
        assert!(
            lines.iter().any(|l| l.starts_with("panic: connection from uid=")
                && l.ends_with("aborted: agent exploded")),
            "{lines:?}"
        );
    }

    #[test]
    fn waiting_connections_come_as_one_batch_each_answered_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (wake_rx, wake_tx) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .unwrap();
        // Five clients wait in the backlog before the loop starts; with a
        // maximum of 3 they come as a batch of 3, then one of 2. A sixth
        // arrives alone later.
        let mut clients: Vec<_> = (0..5u8)
            .map(|i| {
                let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
                s.write_all(&[b'a' + i]).unwrap();
                s
            })
            .collect();
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let flag = Arc::new(AtomicU8::new(0));
        let (f, p) = (Arc::clone(&flag), path.clone());
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            s.write_all(b"z").unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            f.store(1, Ordering::SeqCst);
            nix::unistd::write(&wake_tx, b"x").unwrap();
            out
        });
        let stop = || (flag.load(Ordering::SeqCst) == 1).then_some(Stop::Drain);
        let seen = Arc::clone(&sizes);
        let how = serve_blocking(&[Listener::Unix(l)], &wake_rx, stop, 3, |batch| {
            seen.lock().unwrap().push(batch.len());
            // Read every request first, then answer each: the replies
            // must reach their own clients.
            let mut streams: Vec<_> = batch
                .into_iter()
                .map(|c| {
                    let BlockingConnection::Unix(mut s) = c else { panic!("not unix") };
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).unwrap();
                    (s, b[0])
                })
                .collect();
            for (s, b) in &mut streams {
                s.write_all(&[b.to_ascii_uppercase()]).unwrap();
            }
        })
        .unwrap();
        assert_eq!(how, Stop::Drain);
        assert_eq!(late.join().unwrap(), b"Z");
        for (i, c) in clients.iter_mut().enumerate() {
            let mut out = Vec::new();
            c.read_to_end(&mut out).unwrap();
            assert_eq!(out, [b'A' + i as u8]);
        }
        assert_eq!(*sizes.lock().unwrap(), [3, 2, 1]);
    }
}
