//! A plain SMTP client for tests: sends lines, reads replies, and lets a
//! test assert on the exact bytes a user would see in telnet.

use std::io::{BufRead, BufReader, Write};
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

    /// Reads until the server closes the connection; true if it did.
    pub fn closed(&mut self) -> bool {
        let mut buf = Vec::new();
        matches!(self.reader.read_until(b'\n', &mut buf), Ok(0))
    }
}
