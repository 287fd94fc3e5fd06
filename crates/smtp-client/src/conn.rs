//! One TCP connection to a server, plain or TLS, with every read and
//! write under a deadline and replies read through the bounded
//! [`ReplyParser`]: a server that sends a reply that never ends, lines
//! without end, or nothing at all costs at most the stage's timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_tls::rustls::ClientConfig;
use mail_tls::rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::reply::{Extensions, MAX_LINE, Reply, ReplyError, ReplyParser};

/// Why a conversation ended early.
#[derive(Debug)]
pub enum ConnError {
    /// The connection broke or closed.
    Lost(String),
    /// The stage's time ran out.
    Timeout,
    /// The server's reply could not be parsed.
    Protocol(ReplyError),
}

/// A connected session.
#[derive(Debug)]
pub struct Conn {
    io: mail_tls::ClientConn<TcpStream>,
    /// Bytes read but not yet parsed.
    buf: Vec<u8>,
    parser: ReplyParser,
    /// The server's address.
    pub peer: SocketAddr,
    /// The server's name as we found it (MX host, relay host, or the
    /// address), for `relay=NAME[ADDR]:PORT`.
    pub host: String,
    /// What the last EHLO offered (empty after HELO).
    pub ext: Extensions,
    /// Messages sent on this connection.
    pub uses: u64,
    /// The TLS summary, once TLS is on.
    pub tls: Option<String>,
}

impl Conn {
    /// Connects within `limit`.
    pub async fn connect(host: &str, peer: SocketAddr, limit: Duration) -> Result<Conn, String> {
        match tokio::time::timeout(limit, TcpStream::connect(peer)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(Conn {
                    io: mail_tls::MaybeTls::Plain(s),
                    buf: Vec::with_capacity(1024),
                    parser: ReplyParser::new(),
                    peer,
                    host: host.to_owned(),
                    ext: Extensions::default(),
                    uses: 0,
                    tls: None,
                })
            }
            Ok(Err(e)) => Err(format!("connect to {}: {}", self_name(host, peer), io_text(&e))),
            Err(_) => Err(format!("connect to {}: Connection timed out", self_name(host, peer))),
        }
    }

    /// `host[addr]:port`.
    pub fn relay(&self) -> String {
        self_name(&self.host, self.peer)
    }

    /// `host[addr]`, as Postfix names the server in "host X said".
    pub fn name(&self) -> String {
        format!("{}[{}]", self.host, self.peer.ip())
    }

    /// Writes `bytes` within `limit`.
    pub async fn send(&mut self, bytes: &[u8], limit: Duration) -> Result<(), ConnError> {
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ConnError::Lost(io_text(&e))),
            Err(_) => Err(ConnError::Timeout),
        }
    }

    /// Reads one whole reply, all its lines within `limit`.
    pub async fn reply(&mut self, limit: Duration) -> Result<Reply, ConnError> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                match self.parser.feed(&line) {
                    Ok(Some(r)) => return Ok(r),
                    Ok(None) => {}
                    Err(e) => return Err(ConnError::Protocol(e)),
                }
            }
            if self.buf.len() > MAX_LINE {
                return Err(ConnError::Protocol(ReplyError::LineTooLong));
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err(ConnError::Lost("connection closed".into())),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(ConnError::Lost(io_text(&e))),
                Err(_) => return Err(ConnError::Timeout),
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A command and its reply.
    pub async fn command(&mut self, line: &str, limit: Duration) -> Result<Reply, ConnError> {
        self.send(format!("{line}\r\n").as_bytes(), limit).await?;
        self.reply(limit).await
    }

    /// The TLS handshake after `220` to STARTTLS. Bytes the server sent
    /// after its 220 would be read as if they came through TLS (a
    /// command-injection trick), so they end the session.
    pub async fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: &str,
        limit: Duration,
    ) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err("the server sent data after its reply to STARTTLS".into());
        }
        let server_name = match self.peer.ip().to_string() == name {
            true => ServerName::IpAddress(self.peer.ip().into()),
            false => ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?,
        };
        let Some(plain) = self.io.take_plain() else {
            return Err("TLS is already on".into());
        };
        let connector = mail_tls::TlsConnector::from(config);
        match tokio::time::timeout(limit, connector.connect(server_name, plain)).await {
            Ok(Ok(tls)) => {
                let (_, session) = tls.get_ref();
                self.tls = mail_tls::summary(session).map(|s| s.to_string());
                self.io = mail_tls::MaybeTls::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Says QUIT and waits briefly for the answer; errors do not matter.
    pub async fn quit(mut self, limit: Duration) {
        let _ = self.command("QUIT", limit).await;
        let _ = self.io.shutdown().await;
    }
}

fn self_name(host: &str, peer: SocketAddr) -> String {
    format!("{host}[{}]:{}", peer.ip(), peer.port())
}

/// An I/O error as Postfix words it (`Connection refused`), without
/// Rust's `(os error N)`.
pub fn io_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.find(" (os error") {
        Some(i) => t[..i].to_owned(),
        None => t,
    }
}
