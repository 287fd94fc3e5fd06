//! The IMAP wire below the grammar: splitting the client's bytes into
//! whole messages (a command line with its literals, an AUTHENTICATE
//! response, IDLE's DONE) with imap-codec's `Fragmentizer`, and the
//! bounds it does not keep by itself: the longest line, the largest
//! literal (checked from the announcement, before a byte of it is read),
//! whether a synchronizing literal gets its `+ ` continuation; and the
//! small helpers the responses are written with.
//!
//! Severities: none; what the client did wrong is an [`Event`] for the
//! session to answer.

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::core::LiteralMode;

/// What the next complete piece of input is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole message: decode it (CommandCodec, AuthenticateDataCodec,
    /// IdleDoneCodec as the state asks) from [`Reader::message`].
    Message,
    /// A synchronizing literal within bounds was announced: send the
    /// continuation (`+ OK`) and read on.
    Continue,
    /// A literal larger than allowed was announced. A synchronizing one
    /// is refused with a tagged NO and never read (the client does not
    /// send it without `+ `); a non-synchronizing one is on its way, so
    /// the connection must close ([`Event::Fatal`] follows from the
    /// caller's side).
    LiteralTooBig { tag: Option<String>, length: u32, sync: bool },
    /// A line longer than allowed (or a message beyond the total bound):
    /// the framing cannot be trusted any more; answer BYE and close.
    LineTooLong { tag: Option<String> },
}

/// Frames input for one connection.
#[derive(Debug)]
pub(crate) struct Reader {
    frag: Fragmentizer,
    max_line: usize,
    max_literal: u64,
    /// The largest whole message (lines and literals together).
    total: u64,
    /// Where in the current message the line being read starts.
    line_start: usize,
    /// LITERAL- semantics for non-synchronizing literals: only up to
    /// 4096 octets may skip the continuation (RFC 7888 §4). With LITERAL+
    /// (false) any size within `max_literal` may.
    literal_minus: bool,
    /// The last event was a message, and the next progress starts anew.
    done: bool,
}

impl Reader {
    /// A reader allowing lines of `max_line` octets and literals of
    /// `max_literal` (one message holds at most a few lines and one
    /// literal of that size).
    pub(crate) fn new(max_line: usize, max_literal: u64) -> Reader {
        let total = (max_literal as usize).saturating_add(max_line.saturating_mul(4));
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        Reader {
            frag: Fragmentizer::new(total),
            total: u64::from(total),
            max_line,
            max_literal,
            line_start: 0,
            literal_minus: false,
            done: false,
        }
    }

    /// Adds bytes read from the client.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.frag.enqueue_bytes(bytes);
    }

    /// The current complete message, after [`Event::Message`].
    pub(crate) fn message(&self) -> &[u8] {
        self.frag.message_bytes()
    }

    /// Decodes the current message with `codec`.
    pub(crate) fn decode<'a, C: imap_codec::decode::Decoder>(
        &'a self,
        codec: &C,
    ) -> Option<C::Message<'a>> {
        self.frag.decode_message(codec).ok()
    }

    /// The tag of the current (possibly incomplete or malformed) message.
    pub(crate) fn tag(&self) -> Option<String> {
        self.frag.decode_tag().map(|t| t.inner().to_owned())
    }

    /// The next event, or `None` when more input is needed.
    pub(crate) fn next(&mut self) -> Option<Event> {
        if self.done {
            self.done = false;
            self.line_start = 0;
        }
        loop {
            let Some(info) = self.frag.progress() else {
                let partial = self.frag.message_bytes().len().saturating_sub(self.line_start);
                if partial > self.max_line || self.frag.is_max_message_size_exceeded() {
                    return Some(Event::LineTooLong { tag: self.tag() });
                }
                return None;
            };
            match info {
                FragmentInfo::Line { start, end, announcement, .. } => {
                    if end - start > self.max_line || self.frag.is_max_message_size_exceeded() {
                        return Some(Event::LineTooLong { tag: self.tag() });
                    }
                    self.line_start = end;
                    let Some(LiteralAnnouncement { mode, length }) = announcement else {
                        self.done = true;
                        return Some(Event::Message);
                    };
                    let sync = match mode {
                        LiteralMode::Sync => true,
                        LiteralMode::NonSync => self.literal_minus && length > 4096,
                    };
                    // MULTIAPPEND's literals together are bounded like
                    // one message: refused before they are read.
                    let so_far = self.frag.message_bytes().len() as u64;
                    if u64::from(length) > self.max_literal
                        || so_far.saturating_add(u64::from(length)) > self.total
                    {
                        let tag = self.tag();
                        if sync {
                            // The client waits for "+ " and will not send
                            // the literal: the command is over.
                            self.frag.skip_message();
                            self.line_start = 0;
                        }
                        return Some(Event::LiteralTooBig { tag, length, sync });
                    }
                    if sync {
                        return Some(Event::Continue);
                    }
                }
                FragmentInfo::Literal { end, .. } => {
                    self.line_start = end;
                }
            }
        }
    }

    /// Bytes enqueued and not yet framed (what was pipelined after the
    /// last message), for a handoff; at most `max`, or `None` when more
    /// are waiting than that (the handoff refuses them).
    pub(crate) fn take_pending(&mut self, max: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(info) = self.frag.progress() {
            out.extend_from_slice(self.frag.fragment_bytes(info));
            start = if self.frag.is_message_complete() { 0 } else { info.range().end };
            if out.len() > max {
                return None;
            }
        }
        out.extend_from_slice(self.frag.message_bytes().get(start..)?);
        *self = Reader::new(self.max_line, self.max_literal);
        (out.len() <= max).then_some(out)
    }

    /// Forgets everything read (after STARTTLS: nothing sent in clear may
    /// be read inside TLS).
    pub(crate) fn clear(&mut self) {
        *self = Reader::new(self.max_line, self.max_literal);
    }
}

/// `s` as an IMAP string: quoted when it can be, a literal otherwise.
pub(crate) fn string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable =
        s.len() <= 1024 && s.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0 && b < 0x80);
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// A mailbox name as an IMAP string: UTF-8 names (UTF8=ACCEPT,
/// IMAP4rev2) are quoted as they are (RFC 6855 §3 allows UTF-8 in quoted
/// strings once enabled), others as [`string`] writes them.
pub(crate) fn name_string(out: &mut Vec<u8>, name: &str, utf8: bool) {
    let plain = name.len() <= 1024 && !name.chars().any(char::is_control);
    if utf8 && plain && !name.is_ascii() {
        out.push(b'"');
        for b in name.bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        string(out, name.as_bytes());
    }
}

/// A tag or other client text fit to echo on one line.
pub(crate) fn safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(r: &mut Reader) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = r.next() {
            let stop = !matches!(e, Event::Message | Event::Continue);
            v.push(e);
            if stop {
                break;
            }
        }
        v
    }

    #[test]
    fn literals_of_one_message_are_bounded_together() {
        // 50-octet literals, 100-octet lines: a message of at most 450.
        let mut r = Reader::new(100, 50);
        r.push(b"a APPEND x {40}\r\n");
        assert_eq!(events(&mut r), [Event::Continue]);
        let mut refused = None;
        for i in 0..12 {
            r.push(&[b'x'; 40]);
            r.push(b" {40}\r\n");
            let e = events(&mut r);
            if e != [Event::Continue] {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("refused");
        assert!(i < 10, "{i}");
        assert_eq!(e, [Event::LiteralTooBig { tag: Some("a".into()), length: 40, sync: true }]);
    }

    #[test]
    fn lines_and_pipelining() {
        let mut r = Reader::new(100, 1000);
        r.push(b"a NOOP\r\nb NOOP\r\nc NO");
        assert_eq!(r.next(), Some(Event::Message));
        assert_eq!(r.message(), b"a NOOP\r\n");
        assert_eq!(r.next(), Some(Event::Message));
        assert_eq!(r.message(), b"b NOOP\r\n");
        assert_eq!(r.next(), None);
        r.push(b"OP\r\n");
        assert_eq!(r.next(), Some(Event::Message));
        assert_eq!(r.message(), b"c NOOP\r\n");
    }

    #[test]
    fn synchronizing_literal_gets_a_continuation() {
        let mut r = Reader::new(100, 1000);
        r.push(b"a LOGIN {3}\r\n");
        assert_eq!(r.next(), Some(Event::Continue));
        assert_eq!(r.next(), None);
        r.push(b"bob pw\r\n");
        assert_eq!(r.next(), Some(Event::Message));
        assert_eq!(r.message(), b"a LOGIN {3}\r\nbob pw\r\n");
    }

    #[test]
    fn non_synchronizing_literal_is_read_at_once() {
        let mut r = Reader::new(100, 1000);
        r.push(b"a LOGIN {3+}\r\nbob pw\r\n");
        assert_eq!(events(&mut r), vec![Event::Message]);
    }

    #[test]
    fn a_huge_literal_is_refused_unread() {
        let mut r = Reader::new(100, 1000);
        r.push(b"a APPEND INBOX {104857600}\r\nb NOOP\r\n");
        assert_eq!(
            r.next(),
            Some(Event::LiteralTooBig { tag: Some("a".into()), length: 104_857_600, sync: true })
        );
        // The client did not send the literal; the next line is a command.
        assert_eq!(r.next(), Some(Event::Message));
        assert_eq!(r.message(), b"b NOOP\r\n");
        let mut r = Reader::new(100, 1000);
        r.push(b"a APPEND INBOX {104857600+}\r\n");
        assert_eq!(
            r.next(),
            Some(Event::LiteralTooBig { tag: Some("a".into()), length: 104_857_600, sync: false })
        );
    }

    #[test]
    fn long_lines_are_caught_before_their_end() {
        let mut r = Reader::new(100, 1000);
        r.push(&[b'x'; 101]);
        assert_eq!(r.next(), Some(Event::LineTooLong { tag: None }));
        let mut r = Reader::new(100, 1000);
        r.push(b"t1 ");
        r.push(&[b'x'; 200]);
        r.push(b"\r\n");
        assert_eq!(r.next(), Some(Event::LineTooLong { tag: Some("t1".into()) }));
    }

    #[test]
    fn pending_bytes_survive_a_handoff() {
        let mut r = Reader::new(100, 1000);
        r.push(b"a LOGIN u p\r\nb SELECT INBOX\r\nc FET");
        assert_eq!(r.next(), Some(Event::Message));
        assert_eq!(r.take_pending(1000).as_deref(), Some(&b"b SELECT INBOX\r\nc FET"[..]));
        let mut r = Reader::new(100, 1000);
        r.push(b"a LOGIN u p\r\nb SELECT INBOX\r\n");
        assert_eq!(r.next(), Some(Event::Message));
        assert_eq!(r.take_pending(4), None);
    }

    #[test]
    fn strings() {
        let mut v = Vec::new();
        string(&mut v, b"a \"b\" \\");
        assert_eq!(v, b"\"a \\\"b\\\" \\\\\"");
        v.clear();
        string(&mut v, "é".as_bytes());
        assert_eq!(v, b"{2}\r\n\xc3\xa9");
    }
}

#[cfg(test)]
mod append_tests {
    use super::*;
    use imap_codec::CommandCodec;

    #[test]
    fn append_with_a_literal_decodes() {
        let mut r = Reader::new(65536, 10_000_000);
        r.push(b"p1 APPEND Rascunhos (\\Draft \\Seen) \"14-Nov-2023 22:13:20 +0000\" {22}\r\n");
        assert_eq!(r.next(), Some(Event::Continue));
        assert_eq!(r.next(), None);
        r.push(b"Subject: draft\r\n\r\nhi\r\n\r\n");
        assert_eq!(r.next(), Some(Event::Message));
        assert!(
            r.decode(&CommandCodec::default()).is_some(),
            "{:?}",
            String::from_utf8_lossy(r.message())
        );
    }
}
