//! `smtp-load`, the load generator of bench/tls.sh and bench/idle.sh.
//!
//! Postfix's `smtp-source` cannot speak STARTTLS, so the TLS benchmarks
//! need their own client. This one is deliberately plain: no PIPELINING,
//! one command, then its reply, every reply code checked, the same client
//! for every server it is pointed at. Three workloads:
//!
//! - mail (default): `--messages` messages of `--size` bytes over
//!   `--sessions` parallel sessions, `--per-conn` messages per connection
//!   (0: each session keeps one connection for as long as there is work);
//! - `--no-mail`: `--messages` sessions of greeting, EHLO, [STARTTLS, EHLO,]
//!   QUIT and nothing else (the cost of a session and its handshake);
//! - `--idle N`: N connections opened to the greeting and one EHLO, held
//!   `--hold` seconds, then a NOOP on each (all must answer 250) and QUIT.
//!
//! TLS is STARTTLS (`--starttls`) or implicit (`--implicit-tls`). The server
//! certificate is NOT verified ([`BenchOnlyAcceptAnyCert`]): both servers
//! of a benchmark run present the same throwaway self-signed certificate.
//! The handshake signature is still checked, so the client does the work a
//! real one does. Key exchange offers classical groups only (X25519 first)
//! and resumption is off unless `--resume`: every handshake is a full one,
//! and the same one whichever server answers (Debian's OpenSSL 3.0 has no
//! ML-KEM, which rustls would otherwise prefer with a server of its own).
//!
//! The result is one JSON line on stdout; the exit status is 0 only if
//! nothing failed. `--probe` prints the server's EHLO keywords instead.

use anyhow::{Context as _, bail};
use clap::Parser;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest reply line accepted (RFC 5321 says 512 with the CRLF).
const MAX_LINE: u64 = 4096;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 200;

#[derive(Parser, Debug, Clone)]
#[command(about = "SMTP load generator for bench/ (plain, STARTTLS, implicit TLS)")]
struct Opts {
    /// Server address, host:port.
    server: String,
    /// Parallel sessions (for --idle: how many connections are opened at once).
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Messages in total (with --no-mail: sessions in total).
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// Messages per connection; 0 keeps one connection per session for all its work.
    #[arg(long, default_value_t = 1)]
    per_conn: u64,
    /// Message size in bytes (headers and body, without the final dot).
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// STARTTLS after the first EHLO, then EHLO again.
    #[arg(long)]
    starttls: bool,
    /// TLS from the first byte (port 465 style).
    #[arg(long, conflicts_with = "starttls")]
    implicit_tls: bool,
    /// Sessions without mail: greeting, EHLO, [STARTTLS, EHLO,] QUIT.
    #[arg(long)]
    no_mail: bool,
    /// Open this many idle connections instead (greeting and EHLO), hold them, NOOP each.
    #[arg(long, conflicts_with = "no_mail")]
    idle: Option<usize>,
    /// Seconds the idle connections are held before the NOOPs.
    #[arg(long, default_value_t = 10)]
    hold: u64,
    /// After the hold, keep holding until this file exists (the caller's
    /// measurement is done), then send the NOOPs.
    #[arg(long)]
    release_file: Option<std::path::PathBuf>,
    /// Print the EHLO keywords (and whether STARTTLS is offered) and exit.
    #[arg(long)]
    probe: bool,
    /// Let rustls resume TLS sessions (default: every handshake is a full one).
    #[arg(long)]
    resume: bool,
    /// Envelope sender.
    #[arg(long, default_value = "sender@bench.test")]
    from: String,
    /// Envelope recipient.
    #[arg(long, default_value = "bench@bench.test")]
    to: String,
    /// EHLO name.
    #[arg(long, default_value = "load.bench.test")]
    helo: String,
    /// TLS server name (SNI) sent to the server.
    #[arg(long, default_value = "mail.bench.test")]
    sni: String,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds to wait for any one reply (or connect).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

fn tls_config(resume: bool) -> anyhow::Result<Arc<ClientConfig>> {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        // Bench only: throwaway certificates are not checked, the
        // handshake's signatures are (a verifying client's work minus the chain).
        .with_custom_certificate_verifier(mail_tls::unchecked_verifier(provider))
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// A connection before or after TLS.
type Stream = mail_tls::ClientConn<TcpStream>;

/// A reply: its code and its lines without the code.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

/// What every session shares.
struct Shared {
    opts: Opts,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    message: Vec<u8>,
    timeout: Duration,
    /// Work units not yet claimed (messages, or sessions with --no-mail).
    left: AtomicU64,
    ok: AtomicU64,
    failures: AtomicU64,
    connections: AtomicU64,
    handshakes: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn claim(&self) -> bool {
        self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    fn fail(&self, units: u64, e: &anyhow::Error) {
        self.failures.fetch_add(units, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(format!("{e:#}"));
        }
    }
}

struct Session {
    io: BufReader<Stream>,
    keywords: Vec<String>,
}

impl Session {
    async fn reply(&mut self, timeout: Duration) -> anyhow::Result<Reply> {
        tokio::time::timeout(timeout, self.read_reply())
            .await
            .context("timed out waiting for a reply")?
    }

    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            (&mut self.io).take(MAX_LINE).read_until(b'\n', &mut line).await?;
            if line.is_empty() {
                bail!("connection closed by the server");
            }
            if line.last() != Some(&b'\n') {
                bail!("reply line longer than {MAX_LINE} bytes or cut off");
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let b = text.as_bytes();
            if b.len() < 3
                || !b[..3].iter().all(u8::is_ascii_digit)
                || (b.len() > 3 && b[3] != b' ' && b[3] != b'-')
            {
                bail!("malformed reply line {text:?}");
            }
            let code: u16 = text[..3].parse().context("reply code")?;
            lines.push(text.get(4..).unwrap_or("").to_string());
            if b.len() == 3 || b[3] == b' ' {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                bail!("reply of more than {MAX_REPLY_LINES} lines");
            }
        }
    }

    async fn send(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.io.write_all(data).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Sends `cmd` and checks the reply code is one of `want`.
    async fn command(
        &mut self,
        cmd: &str,
        want: &[u16],
        timeout: Duration,
    ) -> anyhow::Result<Reply> {
        self.send(format!("{cmd}\r\n").as_bytes()).await?;
        let r = self.reply(timeout).await?;
        if !want.contains(&r.code) {
            let shown = cmd.split_whitespace().next().unwrap_or(cmd);
            bail!("{shown}: {}", r.text());
        }
        Ok(r)
    }

    async fn ehlo(&mut self, helo: &str, timeout: Duration) -> anyhow::Result<()> {
        let r = self.command(&format!("EHLO {helo}"), &[250], timeout).await?;
        self.keywords = r
            .lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_ascii_uppercase)
            .collect();
        Ok(())
    }

    fn offers(&self, keyword: &str) -> bool {
        self.keywords.iter().any(|k| k == keyword)
    }
}

/// Connects and gets as far as the first EHLO after TLS (if any).
async fn open(sh: &Shared) -> anyhow::Result<Session> {
    let t = sh.timeout;
    let tcp = tokio::time::timeout(t, TcpStream::connect(&sh.opts.server))
        .await
        .context("connect timed out")?
        .with_context(|| format!("connect {}", sh.opts.server))?;
    tcp.set_nodelay(true)?;
    sh.connections.fetch_add(1, Ordering::Relaxed);
    let stream = match (&sh.tls, sh.opts.implicit_tls) {
        (Some((connector, name)), true) => {
            let tls = tokio::time::timeout(t, connector.connect(name.clone(), tcp))
                .await
                .context("TLS handshake timed out")?
                .context("TLS handshake")?;
            sh.handshakes.fetch_add(1, Ordering::Relaxed);
            Stream::Tls(Box::new(tls))
        }
        _ => Stream::Plain(tcp),
    };
    let mut s = Session { io: BufReader::new(stream), keywords: Vec::new() };
    let greeting = s.reply(t).await?;
    if greeting.code != 220 {
        bail!("greeting: {}", greeting.text());
    }
    s.ehlo(&sh.opts.helo, t).await?;
    if sh.opts.starttls {
        if !s.offers("STARTTLS") {
            bail!("the server does not offer STARTTLS");
        }
        s.command("STARTTLS", &[220], t).await?;
        if !s.io.buffer().is_empty() {
            bail!("the server sent data after its STARTTLS reply, before the handshake");
        }
        let Stream::Plain(tcp) = s.io.into_inner() else { bail!("STARTTLS on a TLS connection") };
        let Some((connector, name)) = &sh.tls else { bail!("no TLS configuration") };
        let tls = tokio::time::timeout(t, connector.connect(name.clone(), tcp))
            .await
            .context("TLS handshake timed out")?
            .context("TLS handshake")?;
        sh.handshakes.fetch_add(1, Ordering::Relaxed);
        s = Session { io: BufReader::new(Stream::Tls(Box::new(tls))), keywords: Vec::new() };
        s.ehlo(&sh.opts.helo, t).await?;
    }
    Ok(s)
}

async fn send_message(s: &mut Session, sh: &Shared) -> anyhow::Result<()> {
    let t = sh.timeout;
    s.command(&format!("MAIL FROM:<{}>", sh.opts.from), &[250], t).await?;
    s.command(&format!("RCPT TO:<{}>", sh.opts.to), &[250, 251], t).await?;
    s.command("DATA", &[354], t).await?;
    s.send(&sh.message).await?;
    let r = s.reply(t).await?;
    if r.code != 250 {
        bail!("end of DATA: {}", r.text());
    }
    Ok(())
}

async fn quit(mut s: Session, t: Duration) -> anyhow::Result<()> {
    s.command("QUIT", &[221], t).await?;
    Ok(())
}

/// One session's loop for the mail and --no-mail workloads.
async fn worker(sh: Arc<Shared>) {
    let per_conn = if sh.opts.per_conn == 0 { u64::MAX } else { sh.opts.per_conn };
    while sh.claim() {
        let mut s = match open(&sh).await {
            Ok(s) => s,
            Err(e) => {
                sh.fail(1, &e);
                continue;
            }
        };
        if sh.opts.no_mail {
            match quit(s, sh.timeout).await {
                Ok(()) => sh.ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    sh.fail(1, &e);
                    0
                }
            };
            continue;
        }
        let mut sent = 0u64;
        let mut broken = false;
        loop {
            match send_message(&mut s, &sh).await {
                Ok(()) => {
                    sh.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    sh.fail(1, &e);
                    broken = true;
                    break;
                }
            }
            sent += 1;
            if sent >= per_conn || !sh.claim() {
                break;
            }
        }
        if !broken && let Err(e) = quit(s, sh.timeout).await {
            // Every message was accepted; a failed QUIT is still a failure
            // of the run, but not a lost message.
            sh.fail(0, &e);
        }
    }
}

/// Builds a message of about `size` bytes: a few headers and 78-column
/// lines of 'x' (never a leading dot), ending with the final dot.
fn build_message(opts: &Opts) -> Vec<u8> {
    let mut m = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: smtp-load\r\nMessage-ID: <smtp-load@bench.test>\r\n\r\n",
        opts.from, opts.to
    )
    .into_bytes();
    while m.len() + 80 <= opts.size {
        m.extend_from_slice(&[b'x'; 78]);
        m.extend_from_slice(b"\r\n");
    }
    if m.len() + 2 < opts.size {
        m.resize(opts.size - 2, b'x');
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; fails if even that is
/// below `needed`.
fn raise_nofile(needed: u64) -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    if hard < needed {
        bail!(
            "RLIMIT_NOFILE hard limit {hard} is below the {needed} descriptors needed (raise it: ulimit -Hn)"
        );
    }
    Ok(hard)
}

fn shared(opts: &Opts) -> anyhow::Result<Arc<Shared>> {
    let tls = if opts.starttls || opts.implicit_tls {
        let name = ServerName::try_from(opts.sni.clone()).context("--sni")?;
        Some((TlsConnector::from(tls_config(opts.resume)?), name))
    } else {
        None
    };
    Ok(Arc::new(Shared {
        opts: opts.clone(),
        tls,
        message: build_message(opts),
        timeout: Duration::from_secs(opts.timeout),
        left: AtomicU64::new(opts.messages),
        ok: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        handshakes: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    }))
}

fn tls_mode(opts: &Opts) -> &'static str {
    if opts.starttls {
        "starttls"
    } else if opts.implicit_tls {
        "implicit"
    } else {
        "none"
    }
}

fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { (n as f64 / secs * 10.0).round() / 10.0 } else { 0.0 }
}

async fn run_load(opts: &Opts) -> anyhow::Result<(serde_json::Value, bool)> {
    raise_nofile(opts.sessions as u64 + 64)?;
    let sh = shared(opts)?;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..opts.sessions.max(1) {
        set.spawn(worker(sh.clone()));
    }
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            sh.fail(0, &anyhow::anyhow!("session task: {e}"));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = sh.ok.load(Ordering::Relaxed);
    let failures = sh.failures.load(Ordering::Relaxed);
    let handshakes = sh.handshakes.load(Ordering::Relaxed);
    let connections = sh.connections.load(Ordering::Relaxed);
    let first_error = sh.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let clean = failures == 0 && first_error.is_none();
    let v = serde_json::json!({
        "mode": if opts.no_mail { "sessions" } else { "mail" },
        "server": opts.server,
        "tls": tls_mode(opts),
        "sessions": opts.sessions,
        "per_conn": opts.per_conn,
        "size": if opts.no_mail { serde_json::Value::Null } else { opts.size.into() },
        "units": opts.messages,
        "ok": ok,
        "failures": failures,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "msgs_per_s": if opts.no_mail { serde_json::Value::Null } else { per_s(ok, elapsed).into() },
        "sessions_per_s": per_s(if opts.no_mail { ok } else { connections }, elapsed),
        "connections": connections,
        "tls_handshakes": handshakes,
        "tls_handshakes_per_s": per_s(handshakes, elapsed),
        "first_error": first_error,
    });
    Ok((v, clean))
}

async fn run_idle(opts: &Opts, n: usize) -> anyhow::Result<(serde_json::Value, bool)> {
    let limit = raise_nofile(n as u64 + 64)?;
    let sh = shared(opts)?;
    let start = Instant::now();
    // Open at most --sessions at a time, as a crowd of clients arriving
    // would, rather than 5,000 SYNs in one burst into the listen backlog.
    let gate = Arc::new(tokio::sync::Semaphore::new(opts.sessions.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (sh, gate) = (sh.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            open(&sh).await
        });
    }
    let mut sessions = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => sessions.push(s),
            Ok(Err(e)) => sh.fail(1, &e),
            Err(e) => sh.fail(1, &anyhow::anyhow!("open task: {e}")),
        }
    }
    let open_s = start.elapsed().as_secs_f64();
    let opened = sessions.len();
    // The bench script measures the server while this line's hold lasts.
    println!(
        "{}",
        serde_json::json!({ "event": "holding", "connections": opened, "failures": sh.failures.load(Ordering::Relaxed), "hold_s": opts.hold })
    );
    let held = Instant::now();
    tokio::time::sleep(Duration::from_secs(opts.hold)).await;
    if let Some(f) = &opts.release_file {
        while !f.exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let held_s = held.elapsed().as_secs_f64();
    let mut set = tokio::task::JoinSet::new();
    let t = sh.timeout;
    for mut s in sessions {
        set.spawn(async move {
            s.command("NOOP", &[250], t).await?;
            quit(s, t).await
        });
    }
    let mut noop_ok = 0u64;
    let mut noop_failed = 0u64;
    let mut first_noop_error = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => noop_ok += 1,
            Ok(Err(e)) => {
                noop_failed += 1;
                first_noop_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                noop_failed += 1;
                first_noop_error.get_or_insert_with(|| format!("task: {e}"));
            }
        }
    }
    let open_failures = sh.failures.load(Ordering::Relaxed);
    let first_error = sh.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let clean = open_failures == 0 && noop_failed == 0 && noop_ok == n as u64;
    let v = serde_json::json!({
        "mode": "idle",
        "server": opts.server,
        "tls": tls_mode(opts),
        "requested": n,
        "opened": opened,
        "open_failures": open_failures,
        "open_s": (open_s * 1000.0).round() / 1000.0,
        "hold_s": opts.hold,
        "held_s": (held_s * 10.0).round() / 10.0,
        "noop_ok": noop_ok,
        "noop_failed": noop_failed,
        "tls_handshakes": sh.handshakes.load(Ordering::Relaxed),
        "nofile_limit": limit,
        "first_error": first_error.or(first_noop_error),
    });
    Ok((v, clean))
}

async fn run_probe(opts: &Opts) -> anyhow::Result<(serde_json::Value, bool)> {
    let mut probe_opts = opts.clone();
    probe_opts.starttls = false;
    let sh = shared(&probe_opts)?;
    let s = open(&sh).await?;
    let keywords = s.keywords.clone();
    let starttls = s.offers("STARTTLS");
    quit(s, sh.timeout).await?;
    Ok((
        serde_json::json!({ "mode": "probe", "server": opts.server, "keywords": keywords, "starttls": starttls }),
        true,
    ))
}

fn main() -> std::process::ExitCode {
    let opts = Opts::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smtp-load: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        if opts.probe {
            run_probe(&opts).await
        } else if let Some(n) = opts.idle {
            run_idle(&opts, n).await
        } else {
            run_load(&opts).await
        }
    });
    match result {
        Ok((v, clean)) => {
            println!("{v}");
            if clean { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("smtp-load: {e:#}");
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(size: usize) -> Opts {
        Opts::parse_from(["smtp-load", "127.0.0.1:25", "--size", &size.to_string()])
    }

    #[test]
    fn message_has_the_requested_size_and_ends_with_the_dot() {
        for size in [200, 1000, 4096, 65536] {
            let m = build_message(&opts(size));
            assert_eq!(m.len(), size + 3, "size {size}");
            assert!(m.ends_with(b"\r\n.\r\n"));
            // No line starts with a dot (no dot-stuffing needed) and no bare LF.
            for line in m[..m.len() - 3].split(|b| *b == b'\n') {
                assert!(!line.starts_with(b"."));
            }
            assert_eq!(
                m.iter().filter(|b| **b == b'\n').count(),
                m.windows(2).filter(|w| w == b"\r\n").count()
            );
        }
    }

    /// A scripted server on loopback: sends the greeting, then for each
    /// line it reads the next canned reply.
    async fn scripted(replies: &'static [&'static str]) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let Ok((c, _)) = l.accept().await else { return };
            let mut c = BufReader::new(c);
            let _ = c.write_all(b"220 test ESMTP\r\n").await;
            for r in replies {
                let mut line = String::new();
                if c.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = c.write_all(r.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn open_reads_the_ehlo_keywords_and_commands_check_codes() {
        let addr = scripted(&[
            "250-test\r\n250-STARTTLS\r\n250 SIZE 1000\r\n",
            "452 full\r\n",
            "5x0 bad\r\n",
        ])
        .await;
        let sh = shared(&Opts::parse_from(["smtp-load", &addr])).expect("shared");
        let mut s = open(&sh).await.expect("open");
        assert!(s.offers("STARTTLS") && s.offers("SIZE") && !s.offers("AUTH"));
        let e = s.command("MAIL FROM:<a@b>", &[250], sh.timeout).await.expect_err("452 is refused");
        assert_eq!(format!("{e}"), "MAIL: 452 full");
        let e = s.command("NOOP", &[250], sh.timeout).await.expect_err("garbage is refused");
        assert!(format!("{e}").contains("malformed reply line"), "{e}");
    }

    #[tokio::test]
    async fn starttls_that_is_not_offered_is_an_error() {
        let addr = scripted(&["250-test\r\n250 SIZE 1000\r\n"]).await;
        let sh = shared(&Opts::parse_from(["smtp-load", &addr, "--starttls"])).expect("shared");
        let e = open(&sh).await.err().expect("no STARTTLS offered");
        assert_eq!(format!("{e}"), "the server does not offer STARTTLS");
    }
}
