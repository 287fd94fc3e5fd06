//! A message as RETR and TOP send it: every line end CRLF (a bare LF in
//! the file gains its CR; an existing CRLF stays), a `.` that starts a
//! line doubled (RFC 1939 byte-stuffing), and the multi-line response
//! closed by `.` CRLF. The octets a client counts after undoing the
//! stuffing are the message's CRLF size, which is what LIST and STAT
//! report, so the two always agree.

/// Streams one message through the transformation, chunk by chunk, so a
/// large message is never held whole.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    prev_cr: bool,
    /// The current line has a byte other than CR.
    line_has_text: bool,
    in_body: bool,
    body_lines: u32,
    /// TOP's body line limit; `None` for RETR.
    limit: Option<u32>,
    done: bool,
    /// Message octets written (CRLF form, stuffing dots not counted).
    octets: u64,
}

impl DotStuffer {
    /// For RETR: the whole message.
    pub fn retr() -> DotStuffer {
        DotStuffer::new(None)
    }

    /// For TOP: the header, the blank line and `lines` body lines.
    pub fn top(lines: u32) -> DotStuffer {
        DotStuffer::new(Some(lines))
    }

    fn new(limit: Option<u32>) -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            prev_cr: false,
            line_has_text: false,
            in_body: false,
            body_lines: 0,
            limit,
            done: false,
            octets: 0,
        }
    }

    /// Whether TOP has written all it will: the caller may stop reading.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The message octets written so far, in CRLF form without the
    /// stuffing dots (what the client receives as the message).
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// Appends the transformed form of `chunk` to `out`.
    ///
    /// Works a line segment at a time (the bytes up to the next LF are
    /// copied whole) rather than byte by byte: RETR spent about half its
    /// CPU here when every byte was pushed on its own.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 16 + 4);
        let mut rest = chunk;
        while !self.done && !rest.is_empty() {
            let lf = rest.iter().position(|&b| b == b'\n');
            let seg = &rest[..lf.unwrap_or(rest.len())];
            if let (Some(&first), Some(&last)) = (seg.first(), seg.last()) {
                if self.at_line_start && first == b'.' {
                    out.push(b'.');
                }
                self.at_line_start = false;
                out.extend_from_slice(seg);
                self.octets += seg.len() as u64;
                self.prev_cr = last == b'\r';
                if !self.line_has_text {
                    self.line_has_text = seg.iter().any(|&b| b != b'\r');
                }
            }
            let Some(at) = lf else { break };
            if !self.prev_cr {
                out.push(b'\r');
                self.octets += 1;
            }
            out.push(b'\n');
            self.octets += 1;
            self.end_line();
            rest = &rest[at + 1..];
        }
    }

    fn end_line(&mut self) {
        let empty = !self.line_has_text;
        self.at_line_start = true;
        self.prev_cr = false;
        self.line_has_text = false;
        if !self.in_body {
            if empty {
                self.in_body = true;
                if self.limit == Some(0) {
                    self.done = true;
                }
            }
        } else {
            self.body_lines += 1;
            if self.limit.is_some_and(|l| self.body_lines >= l) {
                self.done = true;
            }
        }
    }

    /// Closes the response: a line end if the message did not end with
    /// one (a file cut short), then `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            if !self.prev_cr {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The size LIST reports for message bytes: each LF without a CR before
/// it counts two. Must agree with the mailbox index's sizes and with
/// [`DotStuffer`].
pub fn crlf_size(bytes: &[u8]) -> u64 {
    let mut n = bytes.len() as u64;
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut d: DotStuffer, msg: &[u8], chunk: usize) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        for c in msg.chunks(chunk.max(1)) {
            d.feed(c, &mut out);
        }
        let n = d.octets();
        d.finish(&mut out);
        (out, n)
    }

    #[test]
    fn crlf_and_stuffing() {
        let msg = b"Subject: x\n\n.hidden\r\n..two\nend\n";
        for chunk in [1, 2, 3, 100] {
            let (out, n) = run(DotStuffer::retr(), msg, chunk);
            assert_eq!(out, b"Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n");
            assert_eq!(n, crlf_size(msg));
        }
    }

    #[test]
    fn unterminated_last_line() {
        let (out, n) = run(DotStuffer::retr(), b"a\nb", 1);
        assert_eq!(out, b"a\r\nb\r\n.\r\n");
        assert_eq!(n, crlf_size(b"a\nb"));
    }

    #[test]
    fn top_lines() {
        let msg = b"A: 1\nB: 2\n\nl1\nl2\nl3\n";
        assert_eq!(run(DotStuffer::top(0), msg, 1).0, b"A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(run(DotStuffer::top(2), msg, 1).0, b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n");
        assert_eq!(run(DotStuffer::top(9), msg, 4).0, run(DotStuffer::retr(), msg, 4).0);
        // No body at all: TOP sends the header.
        assert_eq!(run(DotStuffer::top(1), b"A: 1\n", 1).0, b"A: 1\r\n.\r\n");
    }

    /// The byte-at-a-time transformation `feed` replaced, kept as the
    /// reference the segment-wise one must match exactly.
    fn reference(limit: Option<u32>, msg: &[u8], chunk: usize) -> (Vec<u8>, u64) {
        let mut d = DotStuffer::new(limit);
        let mut out = Vec::new();
        for c in msg.chunks(chunk.max(1)) {
            for &b in c {
                if d.done {
                    break;
                }
                if d.at_line_start && b == b'.' {
                    out.push(b'.');
                }
                d.at_line_start = false;
                if b == b'\n' {
                    if !d.prev_cr {
                        out.push(b'\r');
                        d.octets += 1;
                    }
                    out.push(b'\n');
                    d.octets += 1;
                    d.end_line();
                    continue;
                }
                out.push(b);
                d.octets += 1;
                d.prev_cr = b == b'\r';
                if b != b'\r' {
                    d.line_has_text = true;
                }
            }
        }
        let n = d.octets();
        d.finish(&mut out);
        (out, n)
    }

    #[test]
    fn segments_match_the_bytewise_reference_on_a_realistic_message() {
        let mut msg = Vec::new();
        for i in 0..400u32 {
            let line = match i % 7 {
                0 => format!(".dot line {i}\n"),
                1 => format!("crlf line {i}\r\n"),
                2 => "\n".to_owned(),
                3 => format!("cr inside\r{i}\n"),
                _ => format!("Header-{i}: some words of text {i}\n"),
            };
            msg.extend_from_slice(line.as_bytes());
        }
        for chunk in [1, 2, 3, 7, 64, 4096, 1 << 16] {
            for limit in [None, Some(0), Some(1), Some(5), Some(1000)] {
                assert_eq!(run(DotStuffer::new(limit), &msg, chunk), reference(limit, &msg, chunk));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn segments_match_the_bytewise_reference(msg in proptest::collection::vec(proptest::sample::select(vec![b'a', b'.', b'\r', b'\n', b' ']), 0..300), chunk in 1usize..12, limit in proptest::option::of(0u32..6)) {
            proptest::prop_assert_eq!(run(DotStuffer::new(limit), &msg, chunk), reference(limit, &msg, chunk));
        }

        #[test]
        fn octets_match_crlf_size_and_unstuffing_restores(msg in proptest::collection::vec(proptest::sample::select(vec![b'a', b'.', b'\r', b'\n']), 0..200), chunk in 1usize..8) {
            let (out, n) = run(DotStuffer::retr(), &msg, chunk);
            proptest::prop_assert_eq!(n, crlf_size(&msg));
            proptest::prop_assert!(out.ends_with(b".\r\n"));
        }
    }
}
