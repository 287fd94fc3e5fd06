//! A plain IMAP client for tests: sends commands, reads responses up to
//! the tagged line, and lets a test assert on the exact bytes a telnet
//! user would see.
//!
//! Responses are framed here, not with imap-codec, so the server's own
//! parser does not check itself: every line must end in CRLF, a line
//! ending in `{N}` is followed by N octets of literal, and lines are
//! bounded.

use std::io::{BufRead, Read};
use std::net::TcpStream;
use std::time::Duration;

use crate::line_stream::LineStream;

/// The longest line accepted from the server.
const MAX_LINE: usize = 1024 * 1024;

/// One IMAP connection, plain or TLS.
pub struct Client {
    s: LineStream,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("s", &self.s).finish()
    }
}

impl Client {
    /// Connects; the greeting is unread.
    pub fn connect(addr: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Client::over(s)
    }

    /// A client on a connected socket; the greeting is unread.
    pub fn over(s: TcpStream) -> Client {
        Client { s: LineStream::new(s) }
    }

    /// Connects and logs in as `user`, checking the greeting and the OK.
    pub fn login(addr: &str, user: &str, pass: &str) -> Client {
        let mut c = Client::connect(addr);
        let g = c.line();
        assert!(g.starts_with("* OK [CAPABILITY "), "greeting {g:?}");
        let r = c.run("L", &format!("LOGIN {user} {pass}"));
        assert!(r.starts_with("L OK [CAPABILITY "), "login: {r:?}");
        c
    }

    /// Implicit TLS (imaps), the certificate checked against `cert_pem`.
    pub fn connect_tls(addr: &str, cert_pem: &str, name: &str) -> Result<Client, String> {
        let mut c = Client::connect(addr);
        c.start_tls(cert_pem, name)?;
        Ok(c)
    }

    /// The TLS handshake now (after STARTTLS's OK, or on imaps).
    pub fn start_tls(&mut self, cert_pem: &str, name: &str) -> Result<(), String> {
        self.s.start_tls(cert_pem, name)
    }

    /// How long a read may wait.
    pub fn set_timeout(&self, d: Duration) {
        self.s.set_timeout(d);
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.s.send_raw(bytes);
    }

    /// Sends one line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// One line with its CRLF removed; panics on a bare LF ending, on
    /// end of file and on an over-long line.
    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = (&mut self.s.reader).take(MAX_LINE as u64).read_until(b'\n', &mut buf).unwrap();
        assert!(n > 0, "the server closed the connection");
        assert!(buf.ends_with(b"\r\n"), "line without CRLF: {:?}", String::from_utf8_lossy(&buf));
        buf.truncate(buf.len() - 2);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// One line, or `None` if nothing comes within `wait` (or the
    /// connection closed).
    pub fn line_within(&mut self, wait: Duration) -> Option<String> {
        self.set_timeout(wait);
        let mut buf = Vec::new();
        let r = (&mut self.s.reader).take(MAX_LINE as u64).read_until(b'\n', &mut buf);
        self.set_timeout(Duration::from_secs(20));
        match r {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(String::from_utf8_lossy(&buf).trim_end_matches("\r\n").to_owned()),
        }
    }

    /// Whether the server closed the connection (end of file within 5 s).
    pub fn closed(&mut self) -> bool {
        self.set_timeout(Duration::from_secs(5));
        let mut b = [0u8; 1];
        matches!(self.s.reader.read(&mut b), Ok(0))
    }

    /// Reads a response up to and including the line tagged `tag`,
    /// literals included, CRLFs kept (`\r\n` between lines, none after
    /// the last).
    pub fn until(&mut self, tag: &str) -> String {
        let mut out = String::new();
        loop {
            let l = self.line();
            out.push_str(&l);
            let mut last = l.clone();
            // A line ending in a literal: its octets, then the rest.
            while let Some(n) = literal_len(&last) {
                let mut data = vec![0u8; n];
                self.s.reader.read_exact(&mut data).unwrap();
                out.push_str("\r\n");
                out.push_str(&String::from_utf8_lossy(&data));
                last = self.line();
                out.push_str(&last);
            }
            if l.starts_with(&format!("{tag} ")) {
                return out;
            }
            out.push_str("\r\n");
        }
    }

    /// Sends `TAG COMMAND` and reads the response.
    pub fn run(&mut self, tag: &str, command: &str) -> String {
        self.send(&format!("{tag} {command}"));
        self.until(tag)
    }

    /// Like [`Client::run`], asserting the tagged line is OK.
    pub fn ok(&mut self, tag: &str, command: &str) -> String {
        let r = self.run(tag, command);
        let last = r.rsplit("\r\n").next().unwrap_or_default();
        assert!(last.starts_with(&format!("{tag} OK")), "{command}: {r:?}");
        r
    }
}

/// `{N}` (or `{N+}`) at the end of a line.
fn literal_len(line: &str) -> Option<usize> {
    let rest = line.strip_suffix('}')?;
    let open = rest.rfind('{')?;
    rest[open + 1..].trim_end_matches('+').parse().ok()
}
