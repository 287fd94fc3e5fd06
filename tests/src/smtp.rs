//! A plain SMTP client for tests: sends lines, reads replies, and lets a
//! test assert on the exact bytes a user would see in telnet.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One SMTP connection.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and returns the client with the greeting unread.
    pub fn connect(addr: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { reader: BufReader::new(s.try_clone().unwrap()), writer: s }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends one line with CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one whole (possibly multi-line) reply, as the text lines
    /// received without CRLF.
    pub fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self.reader.read_until(b'\n', &mut buf).expect("read reply");
            assert!(n > 0, "server closed the connection; got so far {lines:?}");
            let (_, last, _) = smtp_proto::parse_reply_line(&buf)
                .unwrap_or_else(|_| panic!("bad reply line {buf:?}"));
            assert!(buf.ends_with(b"\r\n"), "reply line not ended by CRLF: {buf:?}");
            lines.push(String::from_utf8_lossy(&buf[..buf.len() - 2]).into_owned());
            if last {
                return lines;
            }
        }
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
        self.writer.set_read_timeout(Some(t)).unwrap();
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
        let mut last = String::new();
        loop {
            let mut buf = Vec::new();
            let n = self.reader.read_until(b'\n', &mut buf).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("closed by server after {last:?}"));
            }
            let (_, is_last, _) =
                smtp_proto::parse_reply_line(&buf).map_err(|_| format!("bad reply {buf:?}"))?;
            last = String::from_utf8_lossy(&buf).trim_end().to_string();
            if is_last {
                return Ok(last);
            }
        }
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
        self.step(Some(format!("MAIL FROM:<{from}>\r\n").as_bytes()), "250")?;
        for t in to {
            self.step(Some(format!("RCPT TO:<{t}>\r\n").as_bytes()), "250")?;
        }
        self.step(Some(b"DATA\r\n"), "354")?;
        let mut data = body.replace("\r\n", "\n").replace('\n', "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        let last = self.step(Some(data.as_bytes()), "250")?;
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

/// Connect, EHLO, one transaction, QUIT, without panicking.
pub fn try_send(addr: &str, from: &str, to: &[&str], body: &str) -> Result<String, TryError> {
    let mut c = Conn::open(addr)?;
    let id = c.transaction(from, to, body)?;
    // The message is ours once 250 arrived; QUIT errors do not matter.
    let _ = c.quit();
    Ok(id)
}
