//! master's Prometheus endpoint (`metrics_listen`): the daemons' totals
//! arrive as datagrams on `private/metrics` (`mail_daemon::metrics`),
//! the queue is counted at each scrape, and a small HTTP/1.1 responder
//! serves `GET /metrics` in the text exposition format 0.0.4.
//!
//! Bounded: at most [`MAX_CLIENTS`] scrapes at once (more wait in the
//! backlog), a request head of at most [`MAX_REQUEST`] bytes read within
//! [`REQUEST_TIME`], the answer written within the same time, one request
//! per connection (`Connection: close`); at most [`MAX_PROCESSES`]
//! processes' totals kept, those of exited processes folded into their
//! service's.

use anyhow::Context as _;
use mail_daemon::metrics::{COUNTERS, Counts, DELAY_BUCKETS, MAX_DATAGRAM, Sender};
use mail_queue::{Queue, State};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Scrapes served at once.
const MAX_CLIENTS: usize = 4;
/// The longest request head.
const MAX_REQUEST: usize = 8192;
/// How long a client has to send its request, and to take the answer.
const REQUEST_TIME: Duration = Duration::from_secs(5);
/// Live processes whose totals are kept; more than master ever starts.
const MAX_PROCESSES: usize = 4096;

/// Every process's last totals, and the folded totals of those gone.
#[derive(Default)]
struct Totals {
    live: HashMap<(u32, u64), (Sender, Counts)>,
    gone: BTreeMap<(String, String), Counts>,
    refused: bool,
}

impl Totals {
    fn record(&mut self, sender: Sender, counts: Counts) {
        let key = (sender.pid, sender.start);
        if !self.live.contains_key(&key) && self.live.len() >= MAX_PROCESSES {
            self.sweep();
            if self.live.len() >= MAX_PROCESSES {
                if !self.refused {
                    tracing::warn!(
                        "metrics: more than {MAX_PROCESSES} processes report counts; ignoring new ones"
                    );
                    self.refused = true;
                }
                return;
            }
        }
        self.live.insert(key, (sender, counts));
    }

    /// Folds the totals of processes that no longer run into their
    /// service's: a pid now used by another process has another start time.
    fn sweep(&mut self) {
        let dead: Vec<(u32, u64)> = self
            .live
            .keys()
            .filter(|(pid, start)| mail_daemon::metrics::start_time(*pid) != Some(*start))
            .copied()
            .collect();
        for key in dead {
            if let Some((s, c)) = self.live.remove(&key) {
                self.gone.entry((s.service, s.program)).or_default().add(&c);
            }
        }
    }

    /// The totals per (service, program).
    fn by_service(&mut self) -> BTreeMap<(String, String), Counts> {
        self.sweep();
        let mut out = self.gone.clone();
        for (s, c) in self.live.values() {
            out.entry((s.service.clone(), s.program.clone())).or_default().add(c);
        }
        out
    }
}

/// Binds the daemons' socket and the HTTP listener when `metrics_listen`
/// is set, before any worker starts (they connect once, at start-up).
pub(crate) async fn start(
    listen: Option<SocketAddr>,
    queue: &Queue,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<()> {
    let Some(addr) = listen else { return Ok(()) };
    let path = queue.root().join(mail_daemon::metrics::SOCKET);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove stale socket {}", path.display()));
        }
        _ => {}
    }
    let socket = tokio::net::UnixDatagram::bind(&path)
        .with_context(|| format!("bind {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // Only master's children (root, or mail_owner) may report.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", path.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
        }
    }
    let http = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind metrics_listen {addr}"))?;
    let totals = Arc::new(Mutex::new(Totals::default()));
    tokio::spawn(receive(socket, Arc::clone(&totals)));
    tokio::spawn(serve(http, totals, queue.clone()));
    tracing::info!("metrics: serving http://{addr}/metrics");
    Ok(())
}

async fn receive(socket: tokio::net::UnixDatagram, totals: Arc<Mutex<Totals>>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => {
                if let Some((s, c)) = mail_daemon::metrics::decode(&buf[..n])
                    && let Ok(mut t) = totals.lock()
                {
                    t.record(s, c);
                }
            }
            Err(e) => {
                tracing::warn!("metrics: receive: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, totals: Arc<Mutex<Totals>>, queue: Queue) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        // At the cap, clients wait in the backlog.
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { return };
        let (conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (totals, queue) = (Arc::clone(&totals), queue.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(2 * REQUEST_TIME, answer(conn, totals, queue)).await;
            drop(permit);
        });
    }
}

/// What the request asks for, from its head.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    Bad,
}

fn parse_request(head: &[u8]) -> Request {
    let Some(line) = head.split(|b| *b == b'\n').next() else { return Request::Bad };
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Bad;
    }
    let path = target.split('?').next().unwrap_or(target);
    match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => Request::Metrics { head_only: method == "HEAD" },
        ("GET" | "HEAD", _) => Request::NotFound,
        _ => Request::BadMethod,
    }
}

async fn answer(mut conn: tokio::net::TcpStream, totals: Arc<Mutex<Totals>>, queue: Queue) {
    let mut head = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIME, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            if head.len() >= MAX_REQUEST {
                return false;
            }
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n.min(MAX_REQUEST - head.len())]),
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    let (status, body, head_only) = if !read {
        ("400 Bad Request", "bad request\n".to_owned(), false)
    } else {
        match parse_request(&head) {
            Request::Metrics { head_only } => {
                let by_service = match totals.lock() {
                    Ok(mut t) => t.by_service(),
                    Err(_) => BTreeMap::new(),
                };
                // Counting a large queue is file system work, off the event loop.
                let queue_sizes = tokio::task::spawn_blocking(move || queue_sizes(&queue))
                    .await
                    .unwrap_or_default();
                ("200 OK", render(&by_service, &queue_sizes), head_only)
            }
            Request::NotFound => ("404 Not Found", "not found; try /metrics\n".to_owned(), false),
            Request::BadMethod => ("405 Method Not Allowed", "GET only\n".to_owned(), false),
            Request::Bad => ("400 Bad Request", "bad request\n".to_owned(), false),
        }
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(&body);
    }
    let _ = tokio::time::timeout(REQUEST_TIME, async {
        let _ = conn.write_all(out.as_bytes()).await;
        let _ = conn.shutdown().await;
    })
    .await;
}

fn queue_sizes(queue: &Queue) -> Vec<(&'static str, usize)> {
    State::ALL
        .iter()
        .map(|s| (s.dir_name(), queue.scan(*s).map(|ids| ids.len()).unwrap_or(0)))
        .collect()
}

fn render(by_service: &BTreeMap<(String, String), Counts>, queue: &[(&str, usize)]) -> String {
    let mut s = String::new();
    for (i, (_, metric, help)) in COUNTERS.iter().enumerate() {
        let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for ((service, program), c) in by_service {
            let _ = writeln!(
                s,
                "{metric}{{service=\"{service}\",program=\"{program}\"}} {}",
                c.counters[i]
            );
        }
    }
    let metric = "postern_delivery_delay_seconds";
    let _ = writeln!(
        s,
        "# HELP {metric} Time from arrival to delivery of each recipient delivered (the delay= of status=sent lines).\n# TYPE {metric} histogram"
    );
    for ((service, program), c) in by_service {
        let count: u64 = c.buckets.iter().sum();
        if count == 0 {
            continue;
        }
        let labels = format!("service=\"{service}\",program=\"{program}\"");
        let mut cumulative = 0u64;
        for (bound, n) in DELAY_BUCKETS.iter().zip(c.buckets) {
            cumulative += n;
            let _ = writeln!(s, "{metric}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(s, "{metric}_bucket{{{labels},le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)]
        let sum = c.delay_ms as f64 / 1000.0;
        let _ = writeln!(s, "{metric}_sum{{{labels}}} {sum}");
        let _ = writeln!(s, "{metric}_count{{{labels}}} {count}");
    }
    let metric = "postern_queue_messages";
    let _ =
        writeln!(s, "# HELP {metric} Messages in each queue directory now.\n# TYPE {metric} gauge");
    for (state, n) in queue {
        let _ = writeln!(s, "{metric}{{state=\"{state}\"}} {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            parse_request(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(parse_request(b"GET /other HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"), Request::BadMethod);
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET / SMTP/1.0\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"",
        ] {
            assert_eq!(parse_request(bad), Request::Bad, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn exited_processes_are_folded_into_their_service() {
        let mut t = Totals::default();
        let mut c = Counts::default();
        c.counters[0] = 2;
        let me = std::process::id();
        let start = mail_daemon::metrics::start_time(me).unwrap();
        let alive = Sender { pid: me, start, service: "smtp".into(), program: "smtpd".into() };
        // Our pid with another start time: a process that exited.
        let gone =
            Sender { pid: me, start: start + 1, service: "smtp".into(), program: "smtpd".into() };
        t.record(alive.clone(), c.clone());
        t.record(gone, c.clone());
        c.counters[0] = 3;
        t.record(alive, c);
        let by = t.by_service();
        assert_eq!(by[&("smtp".to_owned(), "smtpd".to_owned())].counters[0], 5);
        assert_eq!((t.live.len(), t.gone.len()), (1, 1));
        assert_eq!(
            t.by_service()[&("smtp".to_owned(), "smtpd".to_owned())].counters[0],
            5,
            "folded once"
        );
    }
}
