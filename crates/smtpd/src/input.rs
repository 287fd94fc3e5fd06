//! How smtpd hands client bytes to the SMTP state machine, and the
//! per-session command counters of the `disconnect from` log line.
//!
//! `smtp_proto::Server` would take any amount of input at once, but then
//! smtpd could not tell which command produced which reply, and Postfix's
//! `disconnect from host[addr] ehlo=1 mail=1 rcpt=0/1 ... commands=4/5`
//! line needs exactly that. So the session feeds the machine at most one
//! command line at a time, and in DATA everything up to and including the
//! terminating `.` line (RFC 5321 §4.1.1.4), never beyond. [`Splitter`]
//! decides where those cuts fall; it mirrors the machine's own rules (a
//! line ends at LF, with or without CR; the data ends at `CRLF . CRLF`
//! only, as decided by the machine's own [`smtp_proto::dot_line`]), so
//! both always agree on where a command begins. A bare-LF "." line is
//! message text, never an end of data after which commands run (SMTP
//! smuggling, CVE-2023-51764).
//!
//! Everything here is pure and never panics on any input.

use std::fmt;

/// The most bytes of an unfinished command line held back; more than any
/// command line the machine accepts (`MAX_COMMAND_LINE`).
pub(crate) const HOLD_COMMAND: usize = 2 * smtp_proto::MAX_COMMAND_LINE;

/// A piece of buffered input to feed next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// How many bytes from the start of the buffer.
    pub(crate) len: usize,
    /// The piece begins a new command line (its verb is at the start).
    pub(crate) starts_command: bool,
    /// The piece ends with the line that terminates the DATA stream.
    pub(crate) ends_data: bool,
}

/// Remembers whether the next byte starts a line, and in DATA how the
/// previous line ended.
#[derive(Debug)]
pub(crate) struct Splitter {
    at_line_start: bool,
    /// In DATA: the previous line ended with CRLF (or the data just began).
    after_crlf: bool,
    /// In DATA: the last piece ended mid-line with a CR.
    last_cr: bool,
    /// `ServerParams::bare_lf_ends_data` of the machine being fed.
    bare_lf_ends_data: bool,
}

impl Splitter {
    /// A splitter at the start of a session; `bare_lf_ends_data` must be
    /// the machine's `ServerParams::bare_lf_ends_data`.
    pub(crate) fn new(bare_lf_ends_data: bool) -> Splitter {
        Splitter { at_line_start: true, after_crlf: true, last_cr: false, bare_lf_ends_data }
    }

    /// The next piece of `buf` to feed, or `None` when nothing can be fed
    /// until more bytes arrive. `in_data` is `Server::in_data()`.
    pub(crate) fn next(&mut self, buf: &[u8], in_data: bool) -> Option<Piece> {
        if buf.is_empty() {
            return None;
        }
        if !in_data {
            let starts_command = self.at_line_start;
            let (len, ends_line) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                // A short partial line waits for its end, so the verb is
                // seen whole (telnet users type slowly). A long one goes on
                // to the machine, which discards over-long lines itself.
                None if buf.len() <= HOLD_COMMAND => return None,
                None => (buf.len(), false),
            };
            self.at_line_start = ends_line;
            // The data that may follow starts clean (RFC 5321 §4.1.1.4:
            // the DATA line's CRLF is the first of `CRLF . CRLF`).
            self.after_crlf = true;
            self.last_cr = false;
            return Some(Piece { len, starts_command, ends_data: false });
        }
        let mut i = 0;
        let mut line_start = self.at_line_start;
        let mut after_crlf = self.after_crlf;
        let mut last_cr = self.last_cr;
        while i < buf.len() {
            let rest = &buf[i..];
            if line_start && rest[0] == b'.' {
                match smtp_proto::dot_line(&rest[1..], after_crlf, self.bare_lf_ends_data) {
                    smtp_proto::DotLine::End(n) => {
                        self.at_line_start = true;
                        self.after_crlf = true;
                        self.last_cr = false;
                        return Some(Piece { len: i + n, starts_command: false, ends_data: true });
                    }
                    // Maybe the terminator: wait for the rest of the line.
                    smtp_proto::DotLine::NeedMore => break,
                    smtp_proto::DotLine::Content | smtp_proto::DotLine::Stuffed => {}
                }
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    after_crlf = if n == 0 { last_cr } else { rest[n - 1] == b'\r' };
                    last_cr = false;
                    i += n + 1;
                    line_start = true;
                }
                None => {
                    last_cr = rest.ends_with(b"\r");
                    i = buf.len();
                    line_start = false;
                }
            }
        }
        if i == 0 {
            return None;
        }
        self.at_line_start = line_start;
        self.after_crlf = after_crlf;
        self.last_cr = last_cr;
        Some(Piece { len: i, starts_command: false, ends_data: false })
    }
}

/// The commands counted in the disconnect line, in Postfix's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Helo,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Vrfy,
    Etrn,
    Quit,
    Unknown,
}

const VERBS: [Verb; 14] = [
    Verb::Helo,
    Verb::Ehlo,
    Verb::StartTls,
    Verb::Auth,
    Verb::Mail,
    Verb::Rcpt,
    Verb::Data,
    Verb::Bdat,
    Verb::Rset,
    Verb::Noop,
    Verb::Vrfy,
    Verb::Etrn,
    Verb::Quit,
    Verb::Unknown,
];

impl Verb {
    /// The verb at the start of a command line (case-insensitive).
    pub(crate) fn of_line(line: &[u8]) -> Verb {
        let end = line
            .iter()
            .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(line.len());
        let word = &line[..end];
        VERBS
            .into_iter()
            .find(|v| *v != Verb::Unknown && word.eq_ignore_ascii_case(v.name().as_bytes()))
            .unwrap_or(Verb::Unknown)
    }

    /// Lower-case name, as in the disconnect line.
    fn name(self) -> &'static str {
        match self {
            Verb::Helo => "helo",
            Verb::Ehlo => "ehlo",
            Verb::StartTls => "starttls",
            Verb::Auth => "auth",
            Verb::Mail => "mail",
            Verb::Rcpt => "rcpt",
            Verb::Data => "data",
            Verb::Bdat => "bdat",
            Verb::Rset => "rset",
            Verb::Noop => "noop",
            Verb::Vrfy => "vrfy",
            Verb::Etrn => "etrn",
            Verb::Quit => "quit",
            Verb::Unknown => "unknown",
        }
    }
}

/// Per-session command counts: `(succeeded, total)` per verb.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: [(u32, u32); VERBS.len()],
}

impl Counters {
    /// Counts one command and whether its reply was a success (< 400).
    pub(crate) fn record(&mut self, verb: Verb, ok: bool) {
        let Some(i) = VERBS.iter().position(|v| *v == verb) else { return };
        let c = &mut self.counts[i];
        c.1 = c.1.saturating_add(1);
        if ok {
            c.0 = c.0.saturating_add(1);
        }
    }
}

impl fmt::Display for Counters {
    /// Postfix's shape: `ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`, a
    /// count alone when every command of that kind succeeded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut total = (0u32, 0u32);
        for (verb, (ok, all)) in VERBS.iter().zip(self.counts) {
            if all == 0 {
                continue;
            }
            total = (total.0.saturating_add(ok), total.1.saturating_add(all));
            write_count(f, verb.name(), ok, all)?;
            f.write_str(" ")?;
        }
        write_count(f, "commands", total.0, total.1)
    }
}

fn write_count(f: &mut fmt::Formatter<'_>, name: &str, ok: u32, all: u32) -> fmt::Result {
    if ok == all { write!(f, "{name}={all}") } else { write!(f, "{name}={ok}/{all}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use smtp_proto::{Event, Server, ServerParams};

    /// Splits `input` the way a session does, given a model of DATA mode.
    fn pieces(input: &[u8], data_after: &[usize]) -> Vec<Piece> {
        let mut s = Splitter::new(false);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut in_data = false;
        while let Some(p) = s.next(&input[pos..], in_data) {
            pos += p.len;
            out.push(p);
            if p.ends_data {
                in_data = false;
            } else if data_after.contains(&out.len()) {
                in_data = true;
            }
        }
        out
    }

    #[test]
    fn one_command_line_at_a_time() {
        let p = pieces(b"EHLO x\r\nMAIL FROM:<a@b>\nNOO", &[]);
        assert_eq!(
            p,
            [
                Piece { len: 8, starts_command: true, ends_data: false },
                Piece { len: 16, starts_command: true, ends_data: false },
            ]
        );
        // A short partial line waits; a long one is fed, and its rest is
        // not a new command.
        let mut s = Splitter::new(false);
        assert_eq!(s.next(b"NOO", false), None);
        let long = vec![b'x'; HOLD_COMMAND + 1];
        assert!(s.next(&long, false).unwrap().starts_command);
        assert_eq!(
            s.next(b"P\r\nQUIT\r\n", false).unwrap(),
            Piece { len: 3, starts_command: false, ends_data: false }
        );
        assert!(s.next(b"QUIT\r\n", false).unwrap().starts_command);
    }

    #[test]
    fn data_runs_to_the_terminator_and_no_further() {
        let input = b"DATA\r\nSubject: x\r\n..dot\r\n.x\r\n.\r\nQUIT\r\n";
        let p = pieces(input, &[1]);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], Piece { len: 26, starts_command: false, ends_data: true });
        assert_eq!(&input[6 + 26..], b"QUIT\r\n");
        assert!(p[2].starts_command);
        // A bare-LF "." line is data: nothing after it is a command.
        let p = pieces(b"DATA\n.\nQUIT\n", &[1]);
        assert_eq!(p[1..], [Piece { len: 7, starts_command: false, ends_data: false }]);
        let p = pieces(b"DATA\r\nx\r\n.\nQUIT\r\nx\n.\r\nQUIT\r\n.\r\nQUIT\r\n", &[1]);
        assert_eq!(p[1], Piece { len: 25, starts_command: false, ends_data: true });
        assert!(p[2].starts_command);
        assert_eq!(p.len(), 3);
        // A CR split from its LF still counts as CRLF.
        let mut s = Splitter::new(false);
        assert_eq!(s.next(b"x\r", true).unwrap().len, 2);
        assert_eq!(s.next(b"\n", true).unwrap().len, 1);
        assert!(s.next(b".\r\n", true).unwrap().ends_data);
        let mut s = Splitter::new(false);
        assert_eq!(s.next(b"x", true).unwrap().len, 1);
        assert_eq!(s.next(b"\n", true).unwrap().len, 1);
        assert!(!s.next(b".\r\n", true).unwrap().ends_data);
    }

    #[test]
    fn bare_lf_ends_data_for_sendmail_bs() {
        let mut s = Splitter::new(true);
        assert!(s.next(b"DATA\n", false).unwrap().starts_command);
        assert_eq!(
            s.next(b"x\n.\nQUIT\n", true).unwrap(),
            Piece { len: 4, starts_command: false, ends_data: true }
        );
    }

    #[test]
    fn a_possible_terminator_waits_for_its_line_end() {
        let mut s = Splitter::new(false);
        assert_eq!(s.next(b"abc\r\n.", true).unwrap().len, 5);
        assert_eq!(s.next(b".", true), None);
        assert_eq!(s.next(b".\r", true), None);
        assert_eq!(
            s.next(b".\r\n", true).unwrap(),
            Piece { len: 3, starts_command: false, ends_data: true }
        );
        // A dot in the middle of a line is just data.
        let mut s = Splitter::new(false);
        assert_eq!(s.next(b"ab", true).unwrap().len, 2);
        assert_eq!(
            s.next(b".\r\n", true).unwrap(),
            Piece { len: 3, starts_command: false, ends_data: false }
        );
        // A bare-LF "." line is data, and so is a CRLF one right after it.
        assert!(!s.next(b".\n", true).unwrap().ends_data);
        assert!(!s.next(b".\r\n", true).unwrap().ends_data);
        assert!(s.next(b".\r\n", true).unwrap().ends_data);
    }

    #[test]
    fn verbs() {
        assert_eq!(Verb::of_line(b"ehlo x\r\n"), Verb::Ehlo);
        assert_eq!(Verb::of_line(b"QUIT\r\n"), Verb::Quit);
        assert_eq!(Verb::of_line(b"RCPT TO:<a>\n"), Verb::Rcpt);
        assert_eq!(Verb::of_line(b"STARTTLS"), Verb::StartTls);
        assert_eq!(Verb::of_line(b"unknown"), Verb::Unknown);
        assert_eq!(Verb::of_line(b"\x00\xff"), Verb::Unknown);
        assert_eq!(Verb::of_line(b""), Verb::Unknown);
    }

    #[test]
    fn counters_look_like_postfix() {
        let mut c = Counters::default();
        assert_eq!(c.to_string(), "commands=0");
        c.record(Verb::Ehlo, true);
        c.record(Verb::Mail, true);
        c.record(Verb::Rcpt, false);
        c.record(Verb::Rcpt, true);
        c.record(Verb::Data, true);
        c.record(Verb::Quit, true);
        assert_eq!(c.to_string(), "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6");
    }

    /// Feeding pieces leaves the state machine exactly where feeding the
    /// whole input at once does.
    fn same_transcript(input: &[u8]) {
        same_transcript_with(input, false);
        same_transcript_with(input, true);
    }

    fn same_transcript_with(input: &[u8], bare_lf_ends_data: bool) {
        let params = ServerParams {
            hostname: "h".into(),
            banner: "h".into(),
            max_message_size: 1000,
            max_recipients: 10,
            hard_error_limit: 1000,
            helo_required: false,
            vrfy_enabled: true,
            starttls_offered: false,
            auth_mechanisms: vec![],
            bare_lf_ends_data,
        };
        let drain = |s: &mut Server, out: &mut Vec<u8>| {
            while let Some(ev) = s.next_event() {
                match ev {
                    Event::Reply(r) => out.extend(r.to_bytes()),
                    Event::Message { .. } => s.message_queued("Q"),
                    _ => s.accept(),
                }
            }
        };
        let mut whole = Server::new(params.clone());
        let mut want = Vec::new();
        whole.feed(input);
        drain(&mut whole, &mut want);

        let mut s = Server::new(params);
        let mut got = Vec::new();
        let mut split = Splitter::new(bare_lf_ends_data);
        let mut pos = 0;
        while !s.is_closed() {
            let Some(p) = split.next(&input[pos..], s.in_data()) else { break };
            assert!(p.len > 0 && pos + p.len <= input.len());
            s.feed(&input[pos..pos + p.len]);
            pos += p.len;
            drain(&mut s, &mut got);
        }
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    }

    #[test]
    fn pieces_give_the_same_transcript() {
        same_transcript(
            b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nS: x\r\n..\r\n.\r\nNOOP\r\nQUIT\r\n",
        );
        same_transcript(b"HELO x\nMAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA\n.\n.\nNOOP\n");
        // The smuggling payload.
        same_transcript(
            b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nSubject: a\r\n\r\n\
              body\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n\
              smuggled\r\n.\r\nQUIT\r\n",
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_always_progresses(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            data in any::<bool>(),
            bare in any::<bool>(),
        ) {
            let mut s = Splitter::new(bare);
            let mut pos = 0;
            while let Some(p) = s.next(&bytes[pos..], data) {
                prop_assert!(p.len > 0 && pos + p.len <= bytes.len());
                pos += p.len;
            }
            // Only a possible terminator or a short partial command is held back.
            let held = if data { 2 } else { HOLD_COMMAND };
            prop_assert!(bytes.len() - pos <= held);
            let _ = Verb::of_line(&bytes);
        }

        #[test]
        fn pieces_match_whole_feeding(
            lines in proptest::collection::vec(
                "(EHLO x|MAIL FROM:<a@b.c>|RCPT TO:<d@e.f>|DATA|\\.|\\.\\.x|\\.x|RSET|QUIT|[ -~]{0,12})",
                0..30,
            ),
            eols in proptest::collection::vec(0u8..3, 30),
        ) {
            // CRLF, bare LF, or (the smuggling shape) a mix of the two.
            let text: String = lines
                .iter()
                .zip(&eols)
                .map(|(l, e)| format!("{l}{}", if *e == 0 { "\n" } else { "\r\n" }))
                .collect();
            same_transcript(text.as_bytes());
            let lf: String = lines.iter().map(|l| format!("{l}\n")).collect();
            same_transcript(lf.as_bytes());
        }
    }
}
