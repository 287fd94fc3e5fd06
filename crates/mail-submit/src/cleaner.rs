//! cleanup(8)'s header work on a message that arrives in pieces, holding
//! only the header block in memory.
//!
//! `mail_cleanup::cleanup` works on the whole message: it adds headers in
//! front of and among the original header fields and leaves the body
//! alone. So it is enough to buffer until the header block has ended, run
//! `cleanup` on what is buffered, and pass everything after it through.
//! [`Cleaner`] decides where the header block ends with exactly the rules
//! of `cleanup`'s parser (a blank line; a line that is neither a field
//! nor a continuation), so the output is byte for byte what `cleanup`
//! gives for the whole message; a proptest checks that for arbitrary
//! messages cut at arbitrary places.
//!
//! Memory: the buffer holds at most `header_size_limit` plus one piece.
//! Past the limit the answer is known without more input, with one case
//! that needs care: an unfinished line that could still become a field
//! name (`xxxxxxxx` with no colon yet). If it became a field the header
//! would exceed the limit (refused anyway); if not, it starts the body.
//! So the header before it is cleaned and written, the line is streamed
//! as body, and only its remaining bytes are watched for the colon that
//! would turn it into an over-long header after all.

use mail_cleanup::{CleanupParams, Trace};
use mail_types::Address;

/// Why the cleaner refuses a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The header block is larger than `header_size_limit` (552 5.3.4).
    HeaderTooLarge,
    /// A canonical table for the header addresses could not be read
    /// (temporary: 451 4.3.0).
    Lookup(String),
}

#[derive(Debug)]
enum Stage {
    /// Buffering the header block.
    Head,
    /// The header is written; the first body line, still unfinished,
    /// could yet turn out to be an over-long field name. `ws`: it has
    /// whitespace after its last name character.
    Watch { ws: bool },
    /// Passing content through.
    Body,
}

/// One message's cleanup, fed in pieces.
#[derive(Debug)]
pub(crate) struct Cleaner {
    params: CleanupParams,
    trace: Trace,
    sender: Option<Address>,
    /// The header limit enforced here; `header_size_limit`, or
    /// [`HEADER_CAP`] when that is 0.
    limit: usize,
    stage: Stage,
    head: Vec<u8>,
    /// Where the first line not yet classified starts in `head`.
    line: usize,
    /// A header field was seen (a continuation line needs one).
    have_field: bool,
    /// The Message-Id of the cleaned header, for the log.
    message_id: Option<String>,
}

/// The header buffer bound when `header_size_limit = 0` ("no limit"):
/// a session's memory must stay bounded whatever the configuration.
pub const HEADER_CAP: usize = 1 << 20;

/// What the start of an unfinished line says about the header block.
enum Partial {
    /// It may still become a field name (no colon yet; `ws` as in
    /// [`Stage::Watch`]).
    Undecided { ws: bool },
    /// It is part of the header (a field, or a continuation).
    Header,
    /// It starts the body.
    Body,
    /// A lone CR: the next byte decides whether it is the CRLF that
    /// ends the header block (not counted against the limit, as in
    /// `cleanup`) or the start of the body. One byte more is buffered.
    Cr,
}

/// `cleanup`'s field-name rule: `name *WSP ":"`, the name printable
/// US-ASCII without colon.
fn is_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
    let name = &line[..colon];
    let len = name.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    len > 0 && name[..len].iter().all(|&b| (33..=126).contains(&b))
}

impl Cleaner {
    pub(crate) fn new(params: CleanupParams, trace: Trace, sender: Option<Address>) -> Cleaner {
        let limit = match params.header_size_limit {
            0 => HEADER_CAP,
            n => n,
        };
        let params = CleanupParams { header_size_limit: limit, ..params };
        Cleaner {
            params,
            trace,
            sender,
            limit,
            stage: Stage::Head,
            head: Vec::new(),
            line: 0,
            have_field: false,
            message_id: None,
        }
    }

    /// The queue id the message is cleaned for.
    #[cfg(test)]
    pub(crate) fn queue_id(&self) -> &mail_types::QueueId {
        &self.trace.queue_id
    }

    /// The message's Message-Id once the header has been written.
    pub(crate) fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// Takes the next piece of content; appends what is ready to `out`.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
        match self.stage {
            Stage::Body => {
                out.extend_from_slice(bytes);
                Ok(())
            }
            Stage::Watch { ws } => {
                out.extend_from_slice(bytes);
                self.watch(ws, bytes)
            }
            Stage::Head => {
                self.head.extend_from_slice(bytes);
                self.scan(out)
            }
        }
    }

    /// The end of the content: whatever is buffered is the header.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        if matches!(self.stage, Stage::Head) {
            let head = std::mem::take(&mut self.head);
            self.emit(&head, out)?;
        }
        Ok(())
    }

    fn emit(&mut self, head: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
        let cleaned = mail_cleanup::cleanup(&self.params, &self.trace, self.sender.as_ref(), head)
            .map_err(|e| match e {
                mail_cleanup::Error::HeaderTooLarge { .. } => Refused::HeaderTooLarge,
                mail_cleanup::Error::Lookup(why) => Refused::Lookup(why),
            })?;
        self.message_id = mail_cleanup::header_value(&cleaned, "Message-ID");
        out.extend_from_slice(&cleaned);
        self.stage = Stage::Body;
        Ok(())
    }

    /// Classifies the complete lines buffered so far.
    fn scan(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        while let Some(n) = self.head[self.line..].iter().position(|&b| b == b'\n') {
            let line = &self.head[self.line..self.line + n + 1];
            let header = if line == b"\n" || line == b"\r\n" {
                false
            } else if matches!(line[0], b' ' | b'\t') {
                self.have_field
            } else {
                is_field(line)
            };
            if !header {
                // The header block ended before this line.
                if self.line > self.limit {
                    return Err(Refused::HeaderTooLarge);
                }
                let head = std::mem::take(&mut self.head);
                return self.emit(&head, out);
            }
            self.have_field = true;
            self.line += n + 1;
        }
        if self.head.len() <= self.limit {
            return Ok(());
        }
        if self.line > self.limit {
            return Err(Refused::HeaderTooLarge);
        }
        match self.partial() {
            Partial::Cr => Ok(()),
            Partial::Header => Err(Refused::HeaderTooLarge),
            Partial::Body => {
                let head = std::mem::take(&mut self.head);
                self.emit(&head, out)
            }
            Partial::Undecided { ws } => {
                let mut head = std::mem::take(&mut self.head);
                let rest = head.split_off(self.line);
                self.emit(&head, out)?;
                out.extend_from_slice(&rest);
                self.stage = Stage::Watch { ws };
                Ok(())
            }
        }
    }

    fn partial(&self) -> Partial {
        let p = &self.head[self.line..];
        if p == b"\r" {
            return Partial::Cr;
        }
        if matches!(p.first(), Some(b' ' | b'\t')) {
            return if self.have_field { Partial::Header } else { Partial::Body };
        }
        if p.contains(&b':') {
            return if is_field(p) { Partial::Header } else { Partial::Body };
        }
        let len = p.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
        if len == 0 || !p[..len].iter().all(|&b| (33..=126).contains(&b)) {
            return Partial::Body;
        }
        Partial::Undecided { ws: len < p.len() }
    }

    /// The rest of an undecided first body line (see [`Stage::Watch`]).
    fn watch(&mut self, mut ws: bool, bytes: &[u8]) -> Result<(), Refused> {
        for &b in bytes {
            match b {
                b':' => return Err(Refused::HeaderTooLarge),
                b' ' | b'\t' => ws = true,
                33..=126 if !ws => {}
                _ => {
                    self.stage = Stage::Body;
                    return Ok(());
                }
            }
        }
        self.stage = Stage::Watch { ws };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(limit: usize) -> CleanupParams {
        CleanupParams {
            myhostname: "mail.fiap.edu.br".into(),
            myorigin: "fiap.edu.br".into(),
            append_at_myorigin: true,
            header_size_limit: limit,
            mail_name: "Postern".into(),
            header_rewrite: None,
        }
    }

    fn trace() -> Trace {
        Trace {
            tls: None,
            helo: Some("c.example".into()),
            client_name: "localhost".into(),
            client_addr: "127.0.0.1".into(),
            protocol: "ESMTP".into(),
            local_uid: None,
            queue_id: mail_types::QueueId::generate(),
            single_recipient: Some("suporte@fiap.edu.br".into()),
            time: chrono::Local::now(),
        }
    }

    /// The streamed result, with the content cut every `step` bytes.
    fn streamed(limit: usize, t: &Trace, content: &[u8], step: usize) -> Option<Vec<u8>> {
        let sender = Address::parse("root@fiap.edu.br").ok();
        let mut c = Cleaner::new(params(limit), t.clone(), sender);
        let mut out = Vec::new();
        for piece in content.chunks(step.max(1)) {
            c.push(piece, &mut out).ok()?;
        }
        c.finish(&mut out).ok()?;
        Some(out)
    }

    fn whole(limit: usize, t: &Trace, content: &[u8]) -> Option<Vec<u8>> {
        let sender = Address::parse("root@fiap.edu.br").ok();
        mail_cleanup::cleanup(&params(limit), t, sender.as_ref(), content).ok()
    }

    #[test]
    fn same_as_whole_message_cleanup() {
        let t = trace();
        let cases: &[&[u8]] = &[
            b"Subject: oi\n\nbody\n",
            b"Subject: oi\n",
            b"",
            b"hello world\nSubject: no\n",
            b" leading space\n",
            b"Subject: a\n  folded\nFrom: x\n\n\nbody",
            b"Subject: a\r\n\r\nbody",
            b"Subject: a\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
            b"Subject: a\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: y\n",
            b"Subject: a\nxxxxxxxxxxxxxxxxxxxx   xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: y\n",
            b"Subject: a\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx    : y\n",
        ];
        for limit in [0, 20, 40, 1000] {
            for content in cases {
                for step in [1, 2, 7, 1000] {
                    assert_eq!(
                        streamed(limit, &t, content, step),
                        whole(limit, &t, content),
                        "limit {limit} step {step} {:?}",
                        String::from_utf8_lossy(content)
                    );
                }
            }
        }
    }

    #[test]
    fn memory_stays_at_the_header_limit() {
        let t = trace();
        let mut c = Cleaner::new(params(100), t, None);
        let mut out = Vec::new();
        c.push(b"Subject: x\n", &mut out).unwrap();
        for _ in 0..1000 {
            c.push(&[b'y'; 1000], &mut out).unwrap();
            assert!(c.head.len() <= 100 + 1000);
            out.clear();
        }
        // No colon came: the long line was body.
        c.push(b"\n", &mut out).unwrap();
        c.finish(&mut out).unwrap();
        let id = c.queue_id().to_string();
        assert!(c.message_id().is_some_and(|m| m.contains(&id)));
        // A header block over the limit is refused even while unfinished.
        let mut c = Cleaner::new(params(100), trace(), None);
        assert_eq!(
            c.push(&format!("Subject: {}", "z".repeat(200)).into_bytes(), &mut out),
            Err(Refused::HeaderTooLarge)
        );
    }

    #[test]
    fn crlf_separator_at_the_limit_is_the_separator() {
        // Found by streaming_equals_whole: the CR of the separating CRLF
        // arrived alone just past the limit and was taken for body.
        let t = trace();
        let content = b"Subject:  aaaaa\nA\t:Aa \n \n\r\n";
        for step in 1..4 {
            assert_eq!(streamed(25, &t, content, step), whole(25, &t, content), "step {step}");
        }
    }

    proptest! {
        #[test]
        fn streaming_equals_whole(
            lines in proptest::collection::vec(
                "(Subject: [a-z ]{0,8}|[ \t][a-z]{0,5}|[A-Za-z-]{1,12}[ \t]{0,2}:[ -~]{0,6}|[!-~]{0,30}|[ -~]{0,30}|\r?)",
                0..12,
            ),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
            limit in 0usize..120,
            step in 1usize..50,
        ) {
            let t = trace();
            let mut content: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            content.extend_from_slice(&tail);
            prop_assert_eq!(streamed(limit, &t, &content, step), whole(limit, &t, &content));
        }
    }
}
