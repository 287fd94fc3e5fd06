//! Splitting the client's bytes into lines. A line ends at LF (a CR
//! before it is dropped; RFC 1939 asks for CRLF, but telnet users and
//! some clients send bare LF). Bytes are kept as they came, so a command
//! in another encoding is an error reply, not a panic.

/// One item out of the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its line end.
    Complete(Vec<u8>),
    /// A line longer than the bound: its bytes were dropped up to its end
    /// (reported when the end arrives, once per overlong line).
    TooLong,
}

/// Accumulates bytes and hands out complete lines.
#[derive(Debug, Clone)]
pub struct LineReader {
    buf: Vec<u8>,
    max: usize,
    /// Inside an overlong line: dropping bytes until its LF.
    skipping: bool,
}

impl LineReader {
    /// A reader whose lines may be `max` bytes long, line end included.
    pub fn new(max: usize) -> LineReader {
        LineReader { buf: Vec::new(), max, skipping: false }
    }

    /// Adds bytes read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next line, if one is complete.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    if self.skipping {
                        self.skipping = false;
                        return Some(Line::TooLong);
                    }
                    if line.len() > self.max {
                        return Some(Line::TooLong);
                    }
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Some(Line::Complete(line));
                }
                None if self.buf.len() > self.max => {
                    // Keep memory bounded: drop what we have, remember to
                    // drop the rest of the line too.
                    self.buf.clear();
                    self.skipping = true;
                    continue;
                }
                None => return None,
            }
        }
    }

    /// Bytes received but not yet returned as lines (handed to the mail
    /// service with the session, so pipelined commands are not lost).
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Whether bytes are waiting (after STLS they must be discarded:
    /// nothing sent in clear may run inside TLS).
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Drops every buffered byte.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_crlf_and_lf() {
        let mut r = LineReader::new(16);
        r.push(b"USER a\r\nPASS b\nST");
        assert_eq!(r.next_line(), Some(Line::Complete(b"USER a".to_vec())));
        assert_eq!(r.next_line(), Some(Line::Complete(b"PASS b".to_vec())));
        assert_eq!(r.next_line(), None);
        r.push(b"AT\r\n");
        assert_eq!(r.next_line(), Some(Line::Complete(b"STAT".to_vec())));
    }

    #[test]
    fn overlong_lines_are_reported_once_and_memory_stays_bounded() {
        let mut r = LineReader::new(8);
        for _ in 0..100 {
            r.push(&[b'x'; 100]);
            assert_eq!(r.next_line(), None);
            assert!(r.buf.len() <= 108);
        }
        r.push(b"xx\r\nNOOP\r\n");
        assert_eq!(r.next_line(), Some(Line::TooLong));
        assert_eq!(r.next_line(), Some(Line::Complete(b"NOOP".to_vec())));
        r.push(b"123456789\r\n");
        assert_eq!(r.next_line(), Some(Line::TooLong));
    }
}
