//! A plain POP3 client for tests: sends lines, reads responses, and lets
//! a test assert on the exact bytes a telnet user would see.
//!
//! Responses are parsed here, not with `pop3-proto`, so that the server's
//! own code does not check itself: a status line must be `+OK` or `-ERR`
//! and end in CRLF; a multi-line body ends at `.` CRLF, with the leading
//! dot of stuffed lines removed (RFC 1939 section 3); every line is
//! bounded.

use std::io::{BufRead, Read};
use std::net::TcpStream;
use std::time::Duration;

use crate::line_stream::LineStream;

/// The longest line accepted from the server (message lines included).
const MAX_LINE: usize = 64 * 1024;

/// One POP3 connection, plain or TLS.
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

    /// A client on a connected socket.
    pub fn over(s: TcpStream) -> Client {
        Client { s: LineStream::new(s) }
    }

    /// Connects from another loopback address (127.0.0.2: not loopback's
    /// 127.0.0.1, but still a loopback address).
    pub fn connect_from(addr: &str, source: std::net::IpAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        let target: std::net::SocketAddr = addr.parse().unwrap();
        let sock = Socket::new(Domain::for_address(target), Type::STREAM, None).unwrap();
        sock.bind(&std::net::SocketAddr::new(source, 0).into()).unwrap();
        sock.connect(&target.into()).unwrap();
        Client::over(sock.into())
    }

    /// Implicit TLS (pop3s), the certificate checked against `cert_pem`
    /// for `name`; the greeting comes next.
    pub fn connect_tls(addr: &str, cert_pem: &str, name: &str) -> Result<Client, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        let mut c = Client::over(s);
        c.start_tls(cert_pem, name)?;
        Ok(c)
    }

    /// STLS, `+OK`, then the handshake.
    pub fn stls(&mut self, cert_pem: &str, name: &str) -> Result<(), String> {
        self.send("STLS");
        let l = self.line();
        if !l.starts_with("+OK") {
            return Err(format!("STLS answered {l:?}"));
        }
        self.start_tls(cert_pem, name)
    }

    fn start_tls(&mut self, cert_pem: &str, name: &str) -> Result<(), String> {
        self.s.start_tls(cert_pem, name)
    }

    /// Sets the read timeout.
    pub fn set_timeout(&self, d: Duration) {
        self.s.set_timeout(d);
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.s.send_raw(bytes);
    }

    /// Sends one line with CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// One raw line with its CRLF; panics on a bare LF, an overlong line
    /// or end of file.
    pub fn raw_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let n = (&mut self.s.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("reading a line: {e}"));
        assert!(n > 0, "server closed the connection");
        assert!(line.ends_with(b"\r\n"), "line without CRLF: {:?}", String::from_utf8_lossy(&line));
        line
    }

    /// One status line, without CRLF; must be `+OK` or `-ERR`.
    pub fn line(&mut self) -> String {
        let l = self.raw_line();
        let s = String::from_utf8(l[..l.len() - 2].to_vec()).expect("status line is UTF-8");
        assert!(
            s == "+OK"
                || s.starts_with("+OK ")
                || s == "-ERR"
                || s.starts_with("-ERR ")
                || s.starts_with("+ "),
            "not a POP3 status line: {s:?}"
        );
        s
    }

    /// The next status line if one comes within `wait`, else `None`
    /// (the read timeout is restored to 20 s).
    pub fn line_within(&mut self, wait: Duration) -> Option<String> {
        self.set_timeout(wait);
        let mut line = Vec::new();
        let got = (&mut self.s.reader).take(MAX_LINE as u64).read_until(b'\n', &mut line);
        self.set_timeout(Duration::from_secs(20));
        match got {
            Ok(n) if n > 0 => {
                assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
                Some(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned())
            }
            Ok(_) => panic!("server closed the connection"),
            Err(_) => {
                assert!(line.is_empty(), "half a line: {line:?}");
                None
            }
        }
    }

    /// Asserts the next status line is exactly `expected`.
    pub fn expect(&mut self, expected: &str) {
        assert_eq!(self.line(), expected);
    }

    /// Sends `cmd` and returns its status line, asserting `+OK`.
    pub fn ok(&mut self, cmd: &str) -> String {
        self.send(cmd);
        let l = self.line();
        assert!(l.starts_with("+OK"), "{cmd}: {l}");
        l
    }

    /// Sends `cmd` and returns its status line, asserting `-ERR`.
    pub fn err(&mut self, cmd: &str) -> String {
        self.send(cmd);
        let l = self.line();
        assert!(l.starts_with("-ERR"), "{cmd}: {l}");
        l
    }

    /// The body of a multi-line response, unstuffed, CRLF kept on every
    /// line; the terminating `.` line is consumed.
    pub fn body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let l = self.raw_line();
            if l == b".\r\n" {
                return out;
            }
            let l = if l.starts_with(b".") { &l[1..] } else { &l[..] };
            out.extend_from_slice(l);
        }
    }

    /// The body as text lines without CRLF.
    pub fn lines(&mut self) -> Vec<String> {
        let b = self.body();
        String::from_utf8_lossy(&b)
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// USER and PASS, asserting success.
    pub fn login(&mut self, user: &str, pass: &str) {
        self.ok(&format!("USER {user}"));
        self.send(&format!("PASS {pass}"));
        assert_eq!(self.line(), "+OK Logged in.");
    }

    /// Connects, reads the greeting and logs in.
    pub fn logged_in(addr: &str, user: &str, pass: &str) -> Client {
        let mut c = Client::connect(addr);
        c.greeting();
        c.login(user, pass);
        c
    }

    /// Reads the greeting.
    pub fn greeting(&mut self) {
        assert_eq!(self.line(), "+OK Postern ready.");
    }

    /// Whether the server closed the connection (reads EOF within the
    /// timeout).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.reader.read(&mut b), Ok(0) | Err(_))
    }

    /// Closes the connection without QUIT.
    pub fn drop_connection(self) {
        let _ = self.s.tcp.shutdown(std::net::Shutdown::Both);
    }
}
