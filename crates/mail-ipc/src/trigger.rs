//! Wake-up triggers to qmgr and pickup (Postfix's one-letter fifo
//! triggers): the message, the one sender and the one listener.
//!
//! Fire and forget: the receiver rescans on its own timer too, so a lost
//! trigger delays mail, never loses it. That is what lets the listener
//! defend itself: `public/qmgr` and `public/pickup` are open to every
//! local user, so a connection gets one frame and a short deadline, the
//! open connections are capped (separately for unprivileged peers, so
//! they cannot crowd out smtpd, pickup and master), and `Flush` from an
//! unprivileged peer is rate-limited. Peers are told apart by their
//! SO_PEERCRED uid: root and the listener's own uid (mail_owner, or the
//! invoking user in a development instance) are privileged.
//!
//! `Queued` names the files a writer just committed to `incoming/`, so
//! qmgr can take them by name instead of reading the whole directory.
//! Anyone may send it, privileged or not, under the same connection caps:
//! a queue id parses only as a file name, and qmgr merely moves files that
//! already are in `incoming/` a little sooner than its own scan would.

use crate::accept::AcceptBackoff;
use crate::frame::Error;
use mail_types::QueueId;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A wake-up request.
///
/// `Queued` was appended after the other variants, so `Wakeup` and
/// `Flush` keep their bytes and the protocol version stays: a qmgr from
/// before it refuses a `Queued` frame as garbage, and its one-second scan
/// finds the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// New mail may be waiting (incoming/ for qmgr, maildrop/ for pickup).
    Wakeup,
    /// Retry deferred mail now (`postqueue -f`).
    Flush,
    /// These messages were just committed to `incoming/` (for qmgr; pickup
    /// takes it as a `Wakeup`). At most [`MAX_QUEUED_IDS`]: a longer list
    /// fails to decode, and [`send`] sends a `Wakeup` in its place.
    Queued(#[serde(deserialize_with = "bounded_ids")] Vec<QueueId>),
    /// Retry now the deferred mail for one destination (`postqueue -s
    /// SITE`): a domain, as a recipient's domain or a next hop names it.
    FlushSite(#[serde(deserialize_with = "bounded_site")] String),
    /// Retry this one deferred message now (`postqueue -i ID`).
    FlushId(QueueId),
}

/// Longest site name a `FlushSite` may carry (a domain is at most 255).
pub const MAX_SITE: usize = 255;

fn bounded_site<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() > MAX_SITE || s.is_empty() || s.bytes().any(|b| b.is_ascii_control()) {
        return Err(serde::de::Error::custom("a flush site must be 1 to 255 printable bytes"));
    }
    Ok(s)
}

impl Trigger {
    /// Whether this trigger asks for a flush (which unprivileged users may
    /// send only so often).
    pub fn is_flush(&self) -> bool {
        matches!(self, Trigger::Flush | Trigger::FlushSite(_) | Trigger::FlushId(_))
    }

    /// The trigger that announces `ids`: `Queued` when there are between
    /// one and [`MAX_QUEUED_IDS`], else a plain `Wakeup` (the receiver
    /// then scans for them).
    pub fn queued(ids: Vec<QueueId>) -> Trigger {
        if ids.is_empty() || ids.len() > MAX_QUEUED_IDS {
            Trigger::Wakeup
        } else {
            Trigger::Queued(ids)
        }
    }

    /// What is put on the wire for `self`: an over-long `Queued` becomes a
    /// `Wakeup`, which the listener would accept, instead of a frame it
    /// would refuse.
    fn sendable(&self) -> std::borrow::Cow<'_, Trigger> {
        match self {
            Trigger::Queued(ids) if ids.len() > MAX_QUEUED_IDS => {
                std::borrow::Cow::Owned(Trigger::Wakeup)
            }
            t => std::borrow::Cow::Borrowed(t),
        }
    }
}

/// Most queue ids in one `Queued` trigger. A busy smtpd folds the commits
/// of one trigger's round trip into one frame; 512 covers a burst and
/// keeps the frame (and each open connection's buffer) near 20 KiB.
pub const MAX_QUEUED_IDS: usize = 512;

/// Longest queue id text `QueueId::parse` accepts (a test below keeps
/// the two in step).
const LONGEST_ID: u32 = 32;

/// Largest trigger frame a listener reads: the version, the variant tag,
/// the list's length and [`MAX_QUEUED_IDS`] of the longest ids, each a
/// length and its text (fixed-width integers, `stdx::codec`).
pub const MAX_FRAME: u32 = 2 + 4 + 8 + MAX_QUEUED_IDS as u32 * (8 + LONGEST_ID);

/// Decodes a `Queued` list, refusing more than [`MAX_QUEUED_IDS`] as soon
/// as the count says so, before reading (or allocating for) the ids.
fn bounded_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<QueueId>, D::Error> {
    struct Ids;
    impl<'de> serde::de::Visitor<'de> for Ids {
        type Value = Vec<QueueId>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "at most {MAX_QUEUED_IDS} queue ids")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let too_many = |n| serde::de::Error::invalid_length(n, &self);
            if let Some(n) = seq.size_hint().filter(|n| *n > MAX_QUEUED_IDS) {
                return Err(too_many(n));
            }
            let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(id) = seq.next_element::<QueueId>()? {
                if ids.len() == MAX_QUEUED_IDS {
                    return Err(too_many(ids.len() + 1));
                }
                ids.push(id);
            }
            Ok(ids)
        }
    }
    d.deserialize_seq(Ids)
}
/// How long a sender tries (connect while the backlog is full, write).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Connecting to a socket whose backlog is full fails with EAGAIN on a
/// non-blocking socket and blocks without limit on a blocking one; this
/// retries the non-blocking connect until `deadline`.
fn connect_step(path: &Path) -> io::Result<Option<UnixStream>> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let sock = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    sock.set_nonblocking(true)?;
    match sock.connect(&SockAddr::unix(path)?) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(Some(UnixStream::from(std::os::fd::OwnedFd::from(sock))))
}

fn timed_out(path: &Path) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{} did not accept within {}s", path.display(), SEND_TIMEOUT.as_secs()),
    ))
}

/// Sends one trigger to the socket at `path` (from
/// `mail_config::MasterFile::socket_path`), giving up after
/// [`SEND_TIMEOUT`]. For blocking callers (sendmail, postqueue,
/// local-delivery); never call it on an async runtime's thread.
pub fn send(path: &Path, trigger: Trigger) -> Result<(), Error> {
    let deadline = Instant::now() + SEND_TIMEOUT;
    let mut stream = loop {
        if let Some(s) = connect_step(path)? {
            break s;
        }
        if Instant::now() >= deadline {
            return Err(timed_out(path));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(
        deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)),
    ))?;
    crate::write_frame(&mut stream, &*trigger.sendable())
}

/// [`send`] for async callers (smtpd, pickup, master).
pub async fn send_async(path: &Path, trigger: Trigger) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + SEND_TIMEOUT;
    let stream = loop {
        if let Some(s) = connect_step(path)? {
            break s;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out(path));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stream = tokio::net::UnixStream::from_std(stream)?;
    let trigger = trigger.sendable();
    let frame = crate::write_frame_async(&mut stream, &*trigger);
    match tokio::time::timeout_at(deadline, frame).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(path)),
    }
}

/// A listener's bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections from privileged peers (root, our own uid).
    pub privileged_connections: usize,
    /// Open connections from all other local users together.
    pub unprivileged_connections: usize,
    /// The whole frame must arrive within this time of the accept.
    pub read_deadline: Duration,
    /// At most one `Flush` from unprivileged peers per this interval.
    pub unprivileged_flush_interval: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            privileged_connections: 256,
            unprivileged_connections: 32,
            read_deadline: Duration::from_secs(2),
            unprivileged_flush_interval: Duration::from_secs(10),
        }
    }
}

/// A warning that may come in floods: logged at most once per interval,
/// with the count of the ones left out.
#[derive(Debug, Default)]
struct Quiet {
    last: Option<Instant>,
    suppressed: u64,
}

impl Quiet {
    const EVERY: Duration = Duration::from_secs(10);

    fn warn(&mut self, text: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            tracing::warn!("{text} ({} similar warning(s) left out)", self.suppressed);
        } else {
            tracing::warn!("{text}");
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[derive(Debug, Default)]
struct GateState {
    last_unprivileged_flush: Option<Instant>,
    full: Quiet,
    flush: Quiet,
    bad: Quiet,
}

/// The receiving side of one trigger socket: limits and their state,
/// shared by every connection of the listener.
#[derive(Debug)]
pub struct Gate {
    name: String,
    limits: Limits,
    trusted: Vec<u32>,
    open: [AtomicUsize; 2],
    state: Mutex<GateState>,
}

/// Holds a connection slot until dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// A gate for the socket `name` (used in log lines, `public/qmgr`)
    /// that trusts root and the calling process's effective uid.
    pub fn new(name: &str, limits: Limits) -> Arc<Gate> {
        let me = nix::unistd::geteuid().as_raw();
        Gate::with_trusted(name, limits, vec![0, me])
    }

    /// A gate that trusts exactly the uids in `trusted`.
    pub fn with_trusted(name: &str, limits: Limits, trusted: Vec<u32>) -> Arc<Gate> {
        Arc::new(Gate {
            name: name.to_owned(),
            limits,
            trusted,
            open: [AtomicUsize::new(0), AtomicUsize::new(0)],
            state: Mutex::new(GateState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is counters and times only; a panic elsewhere while
        // holding it cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the one trigger of an accepted connection and closes it.
    /// `None` when there is nothing to act on: the peer sent nothing in
    /// time or garbage, the listener is full, or the trigger was a
    /// rate-limited `Flush`. Every refusal is logged (floods in summary).
    pub async fn receive(&self, mut stream: tokio::net::UnixStream) -> Option<Trigger> {
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        let privileged = uid.is_some_and(|u| self.trusted.contains(&u));
        let (counter, cap) = if privileged {
            (&self.open[0], self.limits.privileged_connections)
        } else {
            (&self.open[1], self.limits.unprivileged_connections)
        };
        if counter.fetch_add(1, Ordering::AcqRel) >= cap {
            counter.fetch_sub(1, Ordering::AcqRel);
            let who = if privileged { "privileged" } else { "unprivileged" };
            self.state().full.warn(format_args!(
                "{}: {cap} {who} trigger connections already open: closing one from uid {}",
                self.name,
                uid.map_or("?".to_owned(), |u| u.to_string())
            ));
            return None;
        }
        let _slot = Slot(counter);
        let read = mail_read(&mut stream);
        let trigger = match tokio::time::timeout(self.limits.read_deadline, read).await {
            Ok(Ok(Some(t))) => t,
            // Connected and closed: a liveness probe, nothing to say.
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                self.state().bad.warn(format_args!(
                    "{}: bad trigger from uid {}: {e}",
                    self.name,
                    uid.map_or("?".to_owned(), |u| u.to_string())
                ));
                return None;
            }
            Err(_) => {
                self.state().bad.warn(format_args!(
                    "{}: no trigger from uid {} within {}s: closing",
                    self.name,
                    uid.map_or("?".to_owned(), |u| u.to_string()),
                    self.limits.read_deadline.as_secs_f32()
                ));
                return None;
            }
        };
        if trigger.is_flush() && !privileged {
            let mut st = self.state();
            let now = Instant::now();
            let interval = self.limits.unprivileged_flush_interval;
            if st.last_unprivileged_flush.is_some_and(|t| now.duration_since(t) < interval) {
                st.flush.warn(format_args!(
                    "{}: flush request from uid {} ignored: unprivileged users may flush once per {}s",
                    self.name,
                    uid.map_or("?".to_owned(), |u| u.to_string()),
                    interval.as_secs()
                ));
                return None;
            }
            st.last_unprivileged_flush = Some(now);
        }
        Some(trigger)
    }
}

async fn mail_read(stream: &mut tokio::net::UnixStream) -> Result<Option<Trigger>, Error> {
    crate::read_frame_async::<Trigger>(stream, MAX_FRAME).await
}

/// Accepts trigger connections on `listener` for ever, each in its own
/// task through `gate`, and calls `on_trigger` for every trigger that
/// passes. Accept errors back off ([`AcceptBackoff`]). Stop it by
/// aborting its task.
pub async fn serve(
    listener: tokio::net::UnixListener,
    gate: Arc<Gate>,
    on_trigger: impl Fn(Trigger) + Send + Sync + 'static,
) {
    let on_trigger = Arc::new(on_trigger);
    let mut backoff = AcceptBackoff::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff.succeeded();
                let (gate, on_trigger) = (Arc::clone(&gate), Arc::clone(&on_trigger));
                tokio::spawn(async move {
                    if let Some(t) = gate.receive(stream).await {
                        on_trigger(t);
                    }
                });
            }
            Err(e) => tokio::time::sleep(backoff.failed(&gate.name, &e)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use tokio::sync::mpsc;

    fn limits() -> Limits {
        Limits {
            privileged_connections: 4,
            unprivileged_connections: 2,
            read_deadline: Duration::from_millis(300),
            unprivileged_flush_interval: Duration::from_secs(3600),
        }
    }

    /// A listener in a temporary directory, served by `gate`; triggers
    /// arrive on the returned channel.
    fn start(
        gate: Arc<Gate>,
    ) -> (tempfile::TempDir, std::path::PathBuf, mpsc::UnboundedReceiver<Trigger>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmgr");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        l.set_nonblocking(true).unwrap();
        let l = tokio::net::UnixListener::from_std(l).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(l, gate, move |t| {
            let _ = tx.send(t);
        }));
        (dir, path, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Trigger>) -> Option<Trigger> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.ok().flatten()
    }

    /// Reads until the server closes the connection; how long that took.
    async fn closed_after(s: UnixStream) -> Duration {
        let t = Instant::now();
        tokio::task::spawn_blocking(move || {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 16];
            // Closing with unread bytes resets the connection.
            match s.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                other => panic!("expected the server to close, got {other:?}"),
            }
        })
        .await
        .unwrap();
        t.elapsed()
    }

    #[tokio::test]
    async fn sync_and_async_senders_reach_the_listener() {
        let (_d, path, mut rx) = start(Gate::new("public/qmgr", limits()));
        let p = path.clone();
        tokio::task::spawn_blocking(move || send(&p, Trigger::Wakeup)).await.unwrap().unwrap();
        assert_eq!(next(&mut rx).await, Some(Trigger::Wakeup));
        send_async(&path, Trigger::Flush).await.unwrap();
        assert_eq!(next(&mut rx).await, Some(Trigger::Flush));
        let gone = path.with_file_name("nothing");
        assert!(send_async(&gone, Trigger::Wakeup).await.is_err());
    }

    #[tokio::test]
    async fn one_frame_per_connection_and_a_read_deadline() {
        let (_d, path, mut rx) = start(Gate::new("public/qmgr", limits()));
        // Two frames on one connection: the first counts, then it is closed.
        let mut s = UnixStream::connect(&path).unwrap();
        crate::write_frame(&mut s, &Trigger::Wakeup).unwrap();
        crate::write_frame(&mut s, &Trigger::Flush).unwrap();
        assert!(closed_after(s).await < Duration::from_secs(2));
        assert_eq!(next(&mut rx).await, Some(Trigger::Wakeup));
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err());
        // A connection that sends nothing is closed at the deadline.
        let idle = UnixStream::connect(&path).unwrap();
        let waited = closed_after(idle).await;
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        // Half a frame, then silence: the deadline covers the whole frame.
        let mut half = UnixStream::connect(&path).unwrap();
        std::io::Write::write_all(&mut half, &[0, 0]).unwrap();
        assert!(closed_after(half).await < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn connections_are_capped_and_the_rest_still_served() {
        let (_d, path, mut rx) = start(Gate::new("public/qmgr", limits()));
        // Fill the privileged pool (we are our own uid) with idle peers.
        let idle: Vec<UnixStream> = (0..4).map(|_| UnixStream::connect(&path).unwrap()).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let extra = UnixStream::connect(&path).unwrap();
        assert!(
            closed_after(extra).await < Duration::from_millis(200),
            "over the cap: closed at once"
        );
        // Once the idle ones time out, triggers pass again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        send_async(&path, Trigger::Wakeup).await.unwrap();
        assert_eq!(next(&mut rx).await, Some(Trigger::Wakeup));
        drop(idle);
    }

    #[tokio::test]
    async fn unprivileged_flush_is_rate_limited() {
        // Trust nobody: this process is an unprivileged peer.
        let (_d, path, mut rx) = start(Gate::with_trusted("public/qmgr", limits(), vec![]));
        for _ in 0..5 {
            send_async(&path, Trigger::Flush).await.unwrap();
        }
        send_async(&path, Trigger::Wakeup).await.unwrap();
        let mut got = Vec::new();
        while let Ok(Some(t)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            got.push(t);
        }
        assert_eq!(got.iter().filter(|t| **t == Trigger::Flush).count(), 1, "{got:?}");
        assert!(got.contains(&Trigger::Wakeup), "{got:?}");
        // Privileged peers are not limited.
        let (_d2, path2, mut rx2) = start(Gate::new("public/qmgr", limits()));
        for _ in 0..3 {
            send_async(&path2, Trigger::Flush).await.unwrap();
        }
        for _ in 0..3 {
            assert_eq!(next(&mut rx2).await, Some(Trigger::Flush));
        }
    }

    fn ids(n: usize) -> Vec<QueueId> {
        (0..n).map(|i| QueueId::parse(&format!("{:032}", i)).unwrap()).collect()
    }

    #[test]
    fn queued_round_trips_up_to_the_limit_and_longer_lists_are_refused() {
        // The longest ids QueueId::parse takes, as many as allowed: the
        // frame fits MAX_FRAME exactly.
        assert!(QueueId::parse(&"A".repeat(LONGEST_ID as usize)).is_ok());
        assert!(QueueId::parse(&"A".repeat(LONGEST_ID as usize + 1)).is_err());
        let full = Trigger::Queued(ids(MAX_QUEUED_IDS));
        let mut buf = Vec::new();
        crate::write_frame(&mut buf, &full).unwrap();
        assert_eq!(buf.len() as u32, 4 + MAX_FRAME);
        assert_eq!(crate::frame::decode_frame::<Trigger>(&buf, MAX_FRAME).unwrap(), Some(full));

        // One id more: refused at decode, even with room in the frame.
        let mut over = Vec::new();
        crate::write_frame(&mut over, &Trigger::Queued(ids(MAX_QUEUED_IDS + 1))).unwrap();
        match crate::frame::decode_frame::<Trigger>(&over, 1 << 20) {
            Err(Error::Decode(e)) => assert!(e.contains("at most 512 queue ids"), "{e}"),
            other => panic!("an over-long list decoded: {other:?}"),
        }
        // A count that claims more than the limit is refused before any id
        // is read: tag 2 (Queued), then a u64 count of 513 and no ids.
        let mut claim = vec![0, 0, 0, 0];
        claim.extend_from_slice(&crate::frame::PROTOCOL_VERSION.to_be_bytes());
        claim.extend_from_slice(&[2, 0, 0, 0]);
        claim.extend_from_slice(&513u64.to_le_bytes());
        claim[3] = (claim.len() - 4) as u8;
        assert!(matches!(
            crate::frame::decode_frame::<Trigger>(&claim, MAX_FRAME),
            Err(Error::Decode(_))
        ));
        // An id that is not a queue id (it could name another file) fails too.
        let mut bad = Vec::new();
        crate::write_frame(&mut bad, &Trigger::Queued(ids(1))).unwrap();
        let n = bad.len();
        bad[n - 1] = b'/';
        assert!(matches!(
            crate::frame::decode_frame::<Trigger>(&bad, MAX_FRAME),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn queued_constructor_falls_back_to_wakeup() {
        assert_eq!(Trigger::queued(vec![]), Trigger::Wakeup);
        assert_eq!(Trigger::queued(ids(3)), Trigger::Queued(ids(3)));
        assert_eq!(Trigger::queued(ids(MAX_QUEUED_IDS + 1)), Trigger::Wakeup);
    }

    #[tokio::test]
    async fn queued_reaches_the_listener_and_over_long_is_sent_as_wakeup() {
        // Unprivileged peers may announce ids too.
        let (_d, path, mut rx) = start(Gate::with_trusted("public/qmgr", limits(), vec![]));
        send_async(&path, Trigger::Queued(ids(MAX_QUEUED_IDS))).await.unwrap();
        assert_eq!(next(&mut rx).await, Some(Trigger::Queued(ids(MAX_QUEUED_IDS))));
        let p = path.clone();
        tokio::task::spawn_blocking(move || send(&p, Trigger::Queued(ids(2))))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next(&mut rx).await, Some(Trigger::Queued(ids(2))));
        // A sender with too many ids asks for a scan instead.
        send_async(&path, Trigger::Queued(ids(MAX_QUEUED_IDS + 7))).await.unwrap();
        assert_eq!(next(&mut rx).await, Some(Trigger::Wakeup));
    }

    #[tokio::test]
    async fn a_refused_queued_frame_is_logged_and_the_listener_goes_on() {
        let (_d, path, mut rx) = start(Gate::new("public/qmgr", limits()));
        let mut over = Vec::new();
        crate::write_frame(&mut over, &Trigger::Queued(ids(MAX_QUEUED_IDS + 1))).unwrap();
        let mut s = UnixStream::connect(&path).unwrap();
        // Longer than MAX_FRAME: closed without a trigger.
        let _ = std::io::Write::write_all(&mut s, &over);
        closed_after(s).await;
        assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err());
        send_async(&path, Trigger::Wakeup).await.unwrap();
        assert_eq!(next(&mut rx).await, Some(Trigger::Wakeup));
    }

    #[test]
    fn flush_sites_are_bounded_and_printable() {
        let ok = Trigger::FlushSite("example.org".into());
        let mut buf = Vec::new();
        crate::write_frame(&mut buf, &ok).unwrap();
        assert_eq!(crate::frame::decode_frame::<Trigger>(&buf, MAX_FRAME).unwrap(), Some(ok));
        for bad in [String::new(), "a\nb".to_owned(), "x".repeat(MAX_SITE + 1)] {
            let mut buf = Vec::new();
            crate::write_frame(&mut buf, &Trigger::FlushSite(bad.clone())).unwrap();
            assert!(
                crate::frame::decode_frame::<Trigger>(&buf, 1 << 20).is_err(),
                "{bad:?} decoded"
            );
        }
        assert!(Trigger::FlushId(QueueId::generate()).is_flush());
        assert!(!Trigger::Wakeup.is_flush());
    }
}
