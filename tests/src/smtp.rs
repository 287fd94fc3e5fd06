//! A plain SMTP client for tests: sends lines, reads replies, and lets a
//! test assert on the exact bytes a user would see in telnet.
//!
//! Replies are parsed here, not with `smtp-proto`: a test that read the
//! server's replies with the server's own parser would accept whatever
//! mistake the two share. This parser is strict where RFC 5321 is
//! (section 4.2: `code SP text CRLF`, `code - text CRLF` for all but the
//! last line, the same code on every line; section 4.5.3.1.5: at most 512
//! octets a line) and bounded in the number of lines it collects.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What a [`Client`] talks over: the socket, or TLS on it.
trait Transport: Read + Write + Send {}
impl<T: Read + Write + Send> Transport for T {}

/// One SMTP connection, plain or (after [`Client::starttls`], or from
/// [`Client::connect_tls`]) inside TLS.
pub struct Client {
    reader: BufReader<Box<dyn Transport>>,
    /// The socket itself, for timeouts and for starting TLS on it.
    tcp: TcpStream,
    /// The protocol version and cipher suite, once TLS is up.
    tls: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("tcp", &self.tcp).field("tls", &self.tls).finish()
    }
}

impl Client {
    /// Connects and returns the client with the greeting unread.
    pub fn connect(addr: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Client::over(s)
    }

    /// A client on a connected socket, the greeting unread.
    pub fn over(s: TcpStream) -> Client {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let tcp = s.try_clone().unwrap();
        Client { reader: BufReader::new(Box::new(s)), tcp, tls: None }
    }

    /// Connects with implicit TLS (smtps), verifying the server's
    /// certificate for `name` against exactly `cert_pem`; the greeting
    /// comes next.
    pub fn connect_tls(addr: &str, cert_pem: &str, name: &str) -> Result<Client, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        let mut c = Client::over(s);
        c.start_tls(cert_pem, name)?;
        Ok(c)
    }

    /// Sends STARTTLS, expects 220, and runs the handshake, verifying the
    /// certificate as [`Client::connect_tls`] does.
    pub fn starttls(&mut self, cert_pem: &str, name: &str) -> Result<(), String> {
        self.send("STARTTLS");
        let r = self.reply();
        if r != ["220 2.0.0 Ready to start TLS"] {
            return Err(format!("STARTTLS answered {r:?}"));
        }
        self.start_tls(cert_pem, name)
    }

    fn start_tls(&mut self, cert_pem: &str, name: &str) -> Result<(), String> {
        // Bytes the server sent after its 220 and before the handshake
        // would be a server bug (and would be lost here).
        assert!(self.reader.buffer().is_empty(), "data after the 220: {:?}", self.reader.buffer());
        let tls = crate::tls_handshake(&self.tcp, cert_pem, name)?;
        self.tls = mail_tls::summary(&tls.conn).map(|s| s.to_string());
        self.reader = BufReader::new(Box::new(tls));
        Ok(())
    }

    /// The TLS summary (`TLSv1.3 with cipher ...`), once TLS is up.
    pub fn tls(&self) -> Option<&str> {
        self.tls.as_deref()
    }

    /// Connects from the local address `source` (a loopback address other
    /// than 127.0.0.1 makes a client outside `mynetworks = 127.0.0.1/32`)
    /// and returns the client with the greeting unread.
    pub fn connect_from(addr: &str, source: std::net::IpAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        let target: std::net::SocketAddr =
            addr.parse().unwrap_or_else(|e| panic!("address {addr}: {e}"));
        let sock = Socket::new(Domain::for_address(target), Type::STREAM, None).unwrap();
        sock.bind(&std::net::SocketAddr::new(source, 0).into())
            .unwrap_or_else(|e| panic!("bind {source}: {e}"));
        sock.connect(&target.into())
            .unwrap_or_else(|e| panic!("connect {addr} from {source}: {e}"));
        Client::over(sock.into())
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.reader.get_mut();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    /// Sends one line with CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one whole (possibly multi-line) reply, as the text lines
    /// received without CRLF. Panics on anything [`read_reply`] refuses.
    pub fn reply(&mut self) -> Vec<String> {
        read_reply(&mut self.reader).unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads a reply and asserts it is exactly `expected` (one line).
    pub fn expect(&mut self, expected: &str) {
        let r = self.reply();
        assert_eq!(r, vec![expected.to_string()], "unexpected reply");
    }

    /// Reads a reply and asserts its code; returns the last line.
    pub fn expect_code(&mut self, code: u16) -> String {
        let r = self.reply();
        let last = r.last().cloned().unwrap_or_default();
        assert!(last.starts_with(&code.to_string()), "expected {code}, got {r:?}");
        last
    }

    /// Sends a line and checks the reply code.
    pub fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        self.expect_code(code)
    }

    /// A whole transaction on an open session after EHLO/HELO; returns
    /// the queue id from the 250 reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250);
        for t in to {
            self.cmd(&format!("RCPT TO:<{t}>"), 250);
        }
        self.cmd("DATA", 354);
        let mut data = body.replace("\r\n", "\n").replace('\n', "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        self.send_raw(data.as_bytes());
        self.send_raw(b".\r\n");
        let last = self.expect_code(250);
        last.rsplit(' ').next().unwrap_or_default().to_string()
    }

    /// Sends `EHLO name`, asserts 250, returns the reply lines.
    pub fn ehlo(&mut self, name: &str) -> Vec<String> {
        self.send(&format!("EHLO {name}"));
        let r = self.reply();
        assert!(r.iter().all(|l| l.starts_with("250")), "EHLO {name}: {r:?}");
        r
    }

    /// Changes the read timeout (how long `reply` waits).
    pub fn set_timeout(&mut self, t: Duration) {
        self.tcp.set_read_timeout(Some(t)).unwrap();
    }

    /// Reads until the server closes the connection; true if it did.
    pub fn closed(&mut self) -> bool {
        let mut buf = Vec::new();
        matches!(self.reader.read_until(b'\n', &mut buf), Ok(0))
    }
}

/// Why a non-panicking SMTP operation failed.
pub type TryError = String;

/// A connection whose operations never panic: any I/O error, early close
/// or unexpected reply code is an `Err`. Used by load and crash tests,
/// where the server may die under the client.
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects, reads the 220 greeting and says EHLO.
    pub fn open(addr: &str) -> Result<Conn, TryError> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let writer = s.try_clone().map_err(|e| e.to_string())?;
        let mut c = Conn { reader: BufReader::new(s), writer };
        c.step(None, "220")?;
        c.step(Some(b"EHLO load.postern.test\r\n"), "250")?;
        Ok(c)
    }

    fn reply(&mut self) -> Result<String, TryError> {
        let lines = read_reply(&mut self.reader).map_err(|e| e.to_string())?;
        Ok(lines.last().cloned().unwrap_or_default())
    }

    fn step(&mut self, line: Option<&[u8]>, code: &str) -> Result<String, TryError> {
        if let Some(l) = line {
            self.writer.write_all(l).map_err(|e| format!("write: {e}"))?;
        }
        let got = self.reply()?;
        if got.starts_with(code) { Ok(got) } else { Err(format!("expected {code}, got {got:?}")) }
    }

    /// One transaction; `Ok` carries the queue id from the 250 after DATA,
    /// the moment the server took responsibility for the message.
    pub fn transaction(&mut self, from: &str, to: &[&str], body: &str) -> Result<String, TryError> {
        self.transaction_outcome(from, to, body).map_err(|e| e.to_string())
    }

    /// [`Conn::transaction`], telling a failure the server may have
    /// committed (the end of data went out, no reply came back) from one
    /// it cannot have (the end of data never went out, or the server
    /// answered it with something other than 250). A crash test needs the
    /// difference: only the first kind may show up delivered.
    pub fn transaction_outcome(
        &mut self,
        from: &str,
        to: &[&str],
        body: &str,
    ) -> Result<String, TxFailure> {
        let before = TxFailure::BeforeEnd;
        self.step(Some(format!("MAIL FROM:<{from}>\r\n").as_bytes()), "250").map_err(before)?;
        for t in to {
            self.step(Some(format!("RCPT TO:<{t}>\r\n").as_bytes()), "250").map_err(before)?;
        }
        self.step(Some(b"DATA\r\n"), "354").map_err(before)?;
        let mut data = body.replace("\r\n", "\n").replace('\n', "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        // The dot is the last byte written: if write_all fails, some
        // suffix of the data (the dot with it) never reached the socket.
        self.writer
            .write_all(data.as_bytes())
            .map_err(|e| TxFailure::BeforeEnd(format!("writing the message: {e}")))?;
        let last = self.reply().map_err(TxFailure::Unanswered)?;
        if !last.starts_with("250") {
            return Err(TxFailure::Refused(format!("expected 250, got {last:?}")));
        }
        Ok(last.rsplit(' ').next().unwrap_or_default().to_string())
    }

    /// QUIT; waits for 221 and the close.
    pub fn quit(mut self) -> Result<(), TryError> {
        self.step(Some(b"QUIT\r\n"), "221")?;
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        Ok(())
    }
}

/// How a transaction failed, by what the server can have done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxFailure {
    /// The connection failed (or a command was refused) before the end of
    /// data was written: the server cannot have a complete message.
    BeforeEnd(TryError),
    /// The end of data was written and the server answered with a code
    /// other than 250: it says the message is not queued.
    Refused(TryError),
    /// The end of data was written and no reply came (the connection
    /// dropped or timed out): the server may have queued the message.
    Unanswered(TryError),
}

impl fmt::Display for TxFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxFailure::BeforeEnd(e) => write!(f, "before the end of data: {e}"),
            TxFailure::Refused(e) => write!(f, "end of data refused: {e}"),
            TxFailure::Unanswered(e) => write!(f, "end of data unanswered: {e}"),
        }
    }
}

/// Connect, EHLO, one transaction, QUIT, without panicking.
pub fn try_send(addr: &str, from: &str, to: &[&str], body: &str) -> Result<String, TryError> {
    let mut c = Conn::open(addr)?;
    let id = c.transaction(from, to, body)?;
    // The message is ours once 250 arrived; QUIT errors do not matter.
    let _ = c.quit();
    Ok(id)
}

/// Longest reply line RFC 5321 (4.5.3.1.5) allows, CRLF included.
pub const MAX_REPLY_LINE: usize = 512;

/// Most lines one reply may have. RFC 5321 sets no limit; our longest
/// reply (EHLO) has about a dozen, so more means a runaway server.
pub const MAX_REPLY_LINES: usize = 100;

/// Why a reply was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The connection ended before the reply's last line was complete.
    Closed {
        /// The lines received so far, and the unterminated tail if any.
        partial: Vec<String>,
    },
    /// Reading failed (a timeout, a reset).
    Io(String),
    /// A line longer than [`MAX_REPLY_LINE`].
    TooLong,
    /// A line ended by LF without the CR before it, or with a CR inside.
    NoCrlf(Vec<u8>),
    /// The line does not start with a reply code `[2-5][0-5][0-9]`.
    BadCode(Vec<u8>),
    /// After the code comes something other than SP, `-` or CRLF.
    BadSeparator(Vec<u8>),
    /// The text has a byte outside RFC 5321's textstring (HT, SP to `~`).
    BadText(Vec<u8>),
    /// A continuation line carries a different code than the first line.
    CodeChanged {
        /// The first line's code.
        first: u16,
        /// The code on the offending line.
        got: u16,
    },
    /// More than [`MAX_REPLY_LINES`] lines.
    TooManyLines,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Closed { partial } => {
                write!(f, "server closed the connection; got so far {partial:?}")
            }
            ReplyError::Io(e) => write!(f, "read: {e}"),
            ReplyError::TooLong => write!(f, "reply line longer than {MAX_REPLY_LINE} octets"),
            ReplyError::NoCrlf(l) => write!(f, "reply line not ended by CRLF: {:?}", lossy(l)),
            ReplyError::BadCode(l) => write!(f, "reply line without a valid code: {:?}", lossy(l)),
            ReplyError::BadSeparator(l) => {
                write!(f, "reply code not followed by SP, '-' or CRLF: {:?}", lossy(l))
            }
            ReplyError::BadText(l) => write!(f, "reply text not printable ASCII: {:?}", lossy(l)),
            ReplyError::CodeChanged { first, got } => {
                write!(f, "multi-line reply changed its code from {first} to {got}")
            }
            ReplyError::TooManyLines => write!(f, "reply longer than {MAX_REPLY_LINES} lines"),
        }
    }
}

impl std::error::Error for ReplyError {}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One parsed reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine<'a> {
    /// The three-digit code.
    pub code: u16,
    /// True for `code SP text` (or a bare code): the reply's last line.
    pub last: bool,
    /// The text after the separator, without CRLF.
    pub text: &'a str,
}

/// Parses one reply line, which must end in CRLF.
pub fn parse_reply_line(line: &[u8]) -> Result<ReplyLine<'_>, ReplyError> {
    if line.len() > MAX_REPLY_LINE {
        return Err(ReplyError::TooLong);
    }
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err(ReplyError::NoCrlf(line.to_vec()));
    };
    if body.contains(&b'\r') || body.contains(&b'\n') {
        return Err(ReplyError::NoCrlf(line.to_vec()));
    }
    let code = match body.get(..3) {
        Some(&[a @ b'2'..=b'5', b @ b'0'..=b'5', c @ b'0'..=b'9']) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(ReplyError::BadCode(line.to_vec())),
    };
    let (last, text) = match body.get(3) {
        None => (true, &body[3..]),
        Some(b' ') => (true, &body[4..]),
        Some(b'-') => (false, &body[4..]),
        Some(_) => return Err(ReplyError::BadSeparator(line.to_vec())),
    };
    if !text.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(ReplyError::BadText(line.to_vec()));
    }
    // Only ASCII is left, so this cannot fail.
    let text = std::str::from_utf8(text).map_err(|_| ReplyError::BadText(line.to_vec()))?;
    Ok(ReplyLine { code, last, text })
}

/// Reads one whole reply from `r`: every line up to and including the
/// one without `-` after the code. Returns the lines without CRLF. Never
/// reads more than [`MAX_REPLY_LINE`] bytes for one line, nor more than
/// [`MAX_REPLY_LINES`] lines.
pub fn read_reply(r: &mut impl BufRead) -> Result<Vec<String>, ReplyError> {
    let mut lines: Vec<String> = Vec::new();
    let mut first = None;
    loop {
        if lines.len() == MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let mut buf = Vec::new();
        // One byte beyond the limit tells a line that is too long from
        // one that is exactly as long as allowed.
        let n = r
            .by_ref()
            .take(MAX_REPLY_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ReplyError::Io(e.to_string()))?;
        if n > MAX_REPLY_LINE {
            return Err(ReplyError::TooLong);
        }
        if !buf.ends_with(b"\n") {
            if !buf.is_empty() {
                lines.push(lossy(&buf));
            }
            return Err(ReplyError::Closed { partial: lines });
        }
        let line = parse_reply_line(&buf)?;
        let first = *first.get_or_insert(line.code);
        if line.code != first {
            return Err(ReplyError::CodeChanged { first, got: line.code });
        }
        lines.push(lossy(&buf[..buf.len() - 2]));
        if line.last {
            return Ok(lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Vec<String>, ReplyError> {
        read_reply(&mut &bytes[..])
    }

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(read(b"250 2.0.0 Ok\r\n"), Ok(vec!["250 2.0.0 Ok".to_string()]));
        assert_eq!(
            read(b"250-mail.postern.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
            Ok(vec![
                "250-mail.postern.test".to_string(),
                "250-PIPELINING".to_string(),
                "250 8BITMIME".to_string()
            ])
        );
        // A bare code is a complete last line (RFC 5321 4.2: the text is optional).
        assert_eq!(read(b"354\r\n"), Ok(vec!["354".to_string()]));
        let l = parse_reply_line(b"221 2.0.0 Bye\r\n").unwrap();
        assert_eq!(l, ReplyLine { code: 221, last: true, text: "2.0.0 Bye" });
        let l = parse_reply_line(b"250-\r\n").unwrap();
        assert_eq!(l, ReplyLine { code: 250, last: false, text: "" });
    }

    #[test]
    fn reads_one_reply_and_leaves_the_next() {
        let mut r = &b"220 hi\r\n250 ok\r\n"[..];
        assert_eq!(read_reply(&mut r), Ok(vec!["220 hi".to_string()]));
        assert_eq!(read_reply(&mut r), Ok(vec!["250 ok".to_string()]));
        assert_eq!(read_reply(&mut r), Err(ReplyError::Closed { partial: vec![] }));
    }

    #[test]
    fn crlf_is_required() {
        assert!(matches!(read(b"250 Ok\n"), Err(ReplyError::NoCrlf(_))));
        assert!(matches!(read(b"250 O\rk\r\n"), Err(ReplyError::NoCrlf(_))));
        assert!(matches!(read(b"250 Ok\r\r\n"), Err(ReplyError::NoCrlf(_))));
        assert!(matches!(parse_reply_line(b"250 Ok"), Err(ReplyError::NoCrlf(_))));
    }

    #[test]
    fn codes_must_be_valid_and_agree() {
        for bad in [&b"25 Ok\r\n"[..], b"abc Ok\r\n", b"150 Ok\r\n", b"650 Ok\r\n", b"260 Ok\r\n"] {
            assert!(matches!(read(bad), Err(ReplyError::BadCode(_))), "{bad:?}");
        }
        assert!(matches!(read(b"250xOk\r\n"), Err(ReplyError::BadSeparator(_))));
        assert!(matches!(read(b"2500 Ok\r\n"), Err(ReplyError::BadSeparator(_))));
        assert_eq!(
            read(b"250-first\r\n251 second\r\n"),
            Err(ReplyError::CodeChanged { first: 250, got: 251 })
        );
    }

    #[test]
    fn text_is_printable_ascii() {
        assert!(read(b"250 tab\there ~\r\n").is_ok());
        assert!(matches!(read(b"250 nul\0\r\n"), Err(ReplyError::BadText(_))));
        assert!(matches!(read("250 não\r\n".as_bytes()), Err(ReplyError::BadText(_))));
    }

    #[test]
    fn bounded_in_line_length_and_count() {
        let ok = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE - 6));
        assert_eq!(ok.len(), MAX_REPLY_LINE);
        assert!(read(ok.as_bytes()).is_ok());
        let long = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE - 5));
        assert_eq!(read(long.as_bytes()), Err(ReplyError::TooLong));
        // An endless line stops at the limit instead of filling memory.
        let endless = vec![b'x'; 10 * MAX_REPLY_LINE];
        assert_eq!(read(&endless), Err(ReplyError::TooLong));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES) + "250 x\r\n";
        assert_eq!(read(many.as_bytes()), Err(ReplyError::TooManyLines));
        let most = "250-x\r\n".repeat(MAX_REPLY_LINES - 1) + "250 x\r\n";
        assert_eq!(read(most.as_bytes()).map(|l| l.len()), Ok(MAX_REPLY_LINES));
    }

    #[test]
    fn early_close_keeps_what_arrived() {
        assert_eq!(
            read(b"250-first\r\n250 sec"),
            Err(ReplyError::Closed {
                partial: vec!["250-first".to_string(), "250 sec".to_string()]
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = read(&bytes);
        }

        #[test]
        fn accepts_what_a_server_would_send(
            code in 200u16..=559,
            texts in proptest::collection::vec("[ -~]{0,40}", 1..5),
        ) {
            proptest::prop_assume!(code % 100 < 60);
            let mut wire = String::new();
            for (i, t) in texts.iter().enumerate() {
                let sep = if i + 1 == texts.len() { ' ' } else { '-' };
                wire.push_str(&format!("{code}{sep}{t}\r\n"));
            }
            let lines = read(wire.as_bytes()).unwrap();
            proptest::prop_assert_eq!(lines.len(), texts.len());
        }
    }
}
