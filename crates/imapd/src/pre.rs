//! The few command forms the pinned imap-codec pre-release cannot parse,
//! read here before the codec sees the message: `SEARCH RETURN (...)`
//! (ESEARCH, RFC 4731, and SAVE, RFC 5182), the saved result `$` as a
//! sequence set (SEARCHRES), LIST-EXTENDED (`list.rs` parses it) and
//! MULTIAPPEND (RFC 3502), split into one APPEND per message. A form the codec knows is left to it; one
//! of these is rewritten into the codec's grammar (the RETURN clause
//! taken out and handed over as [`SearchReturn`], `$` replaced by the
//! saved messages) so the rest of the command keeps the codec's
//! checking.
//!
//! Bounded: only the message's first line is scanned (the reader already
//! bounds its length), option lists are at most [`MAX_OPTIONS`] words,
//! and nothing here allocates more than the message's size plus the
//! saved set.
//!
//! Severities: none; a bad option list is a tagged BAD.

/// The most options a RETURN list may hold.
pub(crate) const MAX_OPTIONS: usize = 16;
/// The most messages one MULTIAPPEND may carry (their bytes together
/// are bounded by the framing: one message's worth).
pub(crate) const MAX_MESSAGES: usize = 1000;

/// SEARCH's RETURN options (RFC 4731, RFC 5182).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SearchReturn {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) all: bool,
    pub(crate) count: bool,
    pub(crate) save: bool,
}

/// What the pre-parser made of one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pre {
    /// Not one of these forms: the codec decodes the message as it is.
    Codec,
    /// The codec decodes these bytes instead.
    Rewritten { bytes: Vec<u8>, search_return: Option<SearchReturn> },
    /// Answered without running anything (an empty saved result): the
    /// tagged text.
    Done(String),
    /// A tagged BAD with this text.
    Bad(String),
    /// A LIST in RFC 5258's form.
    List(crate::list::Extended),
    /// An APPEND of several messages (MULTIAPPEND, RFC 3502), as one
    /// single-message APPEND per message for the codec to decode.
    MultiAppend(Vec<Vec<u8>>),
}

/// The saved search result, as the pre-parser needs it.
pub(crate) trait Saved {
    /// The saved messages as a set of UIDs (`uid`) or message numbers,
    /// `None` when there are none.
    fn saved(&self, uid: bool) -> Option<String>;
}

/// Reads one message (tag, command and arguments, literals included).
pub(crate) fn prepare(msg: &[u8], saved: &dyn Saved) -> Pre {
    let line_end = msg.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(msg.len());
    let line = &msg[..line_end];
    let mut words = Words { s: line, at: 0 };
    let Some(_tag) = words.next() else { return Pre::Codec };
    let Some(mut verb) = words.next() else { return Pre::Codec };
    let uid = verb.1.eq_ignore_ascii_case(b"UID");
    if uid {
        let Some(v) = words.next() else { return Pre::Codec };
        verb = v;
    }
    let name = verb.1.to_ascii_uppercase();
    match name.as_slice() {
        b"SEARCH" | b"SORT" | b"THREAD" => search(msg, line, verb.0 + verb.1.len(), &name, saved),
        b"APPEND" if !uid => multiappend(msg, verb.0, verb.0 + verb.1.len()),
        b"LIST" if !uid => match crate::list::parse_extended(&msg[verb.0 + verb.1.len()..]) {
            Ok(Some(l)) if l.extended => Pre::List(l),
            Ok(_) => Pre::Codec,
            Err(text) => Pre::Bad(text.into()),
        },
        b"FETCH" | b"STORE" | b"COPY" | b"MOVE" | b"EXPUNGE" => {
            let Some((at, set)) = words.next() else { return Pre::Codec };
            if set != b"$" {
                return Pre::Codec;
            }
            match saved.saved(uid) {
                Some(s) => Pre::Rewritten {
                    bytes: [&msg[..at], s.as_bytes(), &msg[at + 1..]].concat(),
                    search_return: None,
                },
                // RFC 5182 §2.1: `$` with nothing saved is an empty set,
                // which the command completes on at once.
                None => Pre::Done(format!("OK {} completed.", title(&name))),
            }
        }
        _ => Pre::Codec,
    }
}

/// SEARCH (and SORT, THREAD): `RETURN (...)` after the verb (SEARCH
/// only), and `$` as a search key anywhere, which becomes `UID set`.
fn search(msg: &[u8], line: &[u8], verb_end: usize, name: &[u8], saved: &dyn Saved) -> Pre {
    let mut out = Vec::with_capacity(msg.len());
    let mut search_return = None;
    let mut rest = verb_end;
    if name == b"SEARCH" {
        let mut words = Words { s: line, at: verb_end + 1 };
        if let Some((_, w)) = words.next()
            && w.eq_ignore_ascii_case(b"RETURN")
        {
            let Some((ret, after)) = return_options(line, words.at) else {
                return Pre::Bad(
                    "BAD Error in IMAP command SEARCH: Unknown SEARCH return option".into(),
                );
            };
            search_return = Some(ret);
            rest = after;
        }
    }
    out.extend_from_slice(&msg[..verb_end]);
    if search_return.is_some() {
        out.push(b' ');
    }
    // `$` as a whole token outside quoted strings.
    let mut quoted = false;
    let mut escaped = false;
    let mut replaced = false;
    let mut i = rest;
    while i < line.len() {
        let b = line[i];
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b'$'
            && matches!(line.get(i.wrapping_sub(1)), Some(b' ' | b'('))
            && matches!(line.get(i + 1), None | Some(b' ' | b')'))
        {
            // UID 4294967295 matches nothing: an empty saved result.
            let set = saved.saved(true).unwrap_or_else(|| u32::MAX.to_string());
            out.extend_from_slice(format!("UID {set}").as_bytes());
            replaced = true;
            i += 1;
            continue;
        }
        out.push(b);
        i += 1;
    }
    if search_return.is_none() && !replaced {
        return Pre::Codec;
    }
    out.extend_from_slice(&msg[line.len()..]);
    Pre::Rewritten { bytes: out, search_return }
}

/// `(opt opt ...)` at `at` (after `RETURN `), then a space: the options
/// and where the rest of the command starts.
fn return_options(line: &[u8], at: usize) -> Option<(SearchReturn, usize)> {
    let open = at;
    if line.get(open) != Some(&b'(') {
        return None;
    }
    let close = open + line[open..].iter().position(|&b| b == b')')?;
    if line.get(close + 1) != Some(&b' ') {
        return None;
    }
    let inner = &line[open + 1..close];
    let mut ret = SearchReturn::default();
    let mut n = 0;
    for word in inner.split(|&b| b == b' ') {
        if word.is_empty() && inner.is_empty() {
            break;
        }
        n += 1;
        if n > MAX_OPTIONS {
            return None;
        }
        match word.to_ascii_uppercase().as_slice() {
            b"MIN" => ret.min = true,
            b"MAX" => ret.max = true,
            b"ALL" => ret.all = true,
            b"COUNT" => ret.count = true,
            b"SAVE" => ret.save = true,
            _ => return None,
        }
    }
    // RFC 4731 §3.1: an empty list means ALL.
    if ret == SearchReturn::default() {
        ret.all = true;
    }
    Some((ret, close + 2))
}

/// `APPEND mailbox 1*(SP [flag-list SP] [date-time SP] literal)`: with
/// two or more messages, one APPEND command per message (the tag and
/// mailbox bytes repeated as sent), so the codec checks each; with one,
/// the codec reads it as it is. At most [`MAX_MESSAGES`] messages.
fn multiappend(msg: &[u8], verb_start: usize, verb_end: usize) -> Pre {
    let mut c = crate::list::Cur { s: msg, at: verb_end };
    if !c.eat(b' ') {
        return Pre::Codec;
    }
    let mailbox_start = c.at;
    if c.string(false).is_none() {
        return Pre::Codec;
    }
    let mailbox = &msg[mailbox_start..c.at];
    let mut parts = Vec::new();
    while c.eat(b' ') {
        let start = c.at;
        if c.peek() == Some(b'(') {
            let Some(close) = msg[c.at..].iter().position(|&b| b == b')') else {
                return Pre::Codec;
            };
            c.at += close + 1;
            if !c.eat(b' ') {
                return Pre::Codec;
            }
        }
        if c.peek() == Some(b'"') && (c.string(false).is_none() || !c.eat(b' ')) {
            return Pre::Codec;
        }
        // `~{n}` is BINARY's literal8.
        c.eat(b'~');
        if c.peek() != Some(b'{') || c.string(false).is_none() {
            return Pre::Codec;
        }
        parts.push(&msg[start..c.at]);
        if parts.len() > MAX_MESSAGES {
            return Pre::Bad("BAD Too many messages in one APPEND.".into());
        }
    }
    if parts.len() < 2 || !(c.eat(b'\r') && c.eat(b'\n') || c.eat(b'\n')) || c.at != msg.len() {
        return Pre::Codec;
    }
    let head = &msg[..verb_start];
    Pre::MultiAppend(
        parts.into_iter().map(|p| [head, b"APPEND ", mailbox, b" ", p, b"\r\n"].concat()).collect(),
    )
}

fn title(verb: &[u8]) -> &'static str {
    match verb {
        b"FETCH" => "Fetch",
        b"STORE" => "Store",
        b"COPY" => "Copy",
        b"MOVE" => "Move",
        _ => "Expunge",
    }
}

/// Space-separated words of a line, with their offsets.
struct Words<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        if self.at >= self.s.len() {
            return None;
        }
        let start = self.at;
        let len = self.s[start..].iter().position(|&b| b == b' ').unwrap_or(self.s.len() - start);
        self.at = start + len + 1;
        (len > 0).then(|| (start, &self.s[start..start + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(Option<&'static str>);
    impl Saved for S {
        fn saved(&self, uid: bool) -> Option<String> {
            self.0.map(|s| if uid { format!("u{s}") } else { s.to_owned() })
        }
    }

    fn rewritten(p: Pre) -> (String, Option<SearchReturn>) {
        match p {
            Pre::Rewritten { bytes, search_return } => {
                (String::from_utf8(bytes).unwrap(), search_return)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn search_return_and_saved_results() {
        let none = S(None);
        assert_eq!(prepare(b"a SEARCH ALL\r\n", &none), Pre::Codec);
        assert_eq!(prepare(b"a FETCH 1 FLAGS\r\n", &none), Pre::Codec);
        let (b, r) = rewritten(prepare(b"a UID SEARCH RETURN (MIN count) ALL\r\n", &none));
        assert_eq!(b, "a UID SEARCH ALL\r\n");
        assert_eq!(r, Some(SearchReturn { min: true, count: true, ..SearchReturn::default() }));
        let (b, r) = rewritten(prepare(b"a search return () SUBJECT {3}\r\nabc\r\n", &none));
        assert_eq!(b, "a search SUBJECT {3}\r\nabc\r\n");
        assert_eq!(r, Some(SearchReturn { all: true, ..SearchReturn::default() }));
        for bad in [
            &b"a SEARCH RETURN (BOGUS) ALL\r\n"[..],
            b"a SEARCH RETURN (MIN\r\n",
            b"a SEARCH RETURN MIN ALL\r\n",
            b"a SEARCH RETURN (MIN)ALL\r\n",
        ] {
            assert!(matches!(prepare(bad, &none), Pre::Bad(_)), "{bad:?}");
        }
        let saved = S(Some("2:3"));
        let (b, _) = rewritten(prepare(b"a SEARCH $ SUBJECT \"$\" (OR $ 1)\r\n", &saved));
        assert_eq!(b, "a SEARCH UID u2:3 SUBJECT \"$\" (OR UID u2:3 1)\r\n");
        let (b, _) = rewritten(prepare(b"a SEARCH $\r\n", &none));
        assert_eq!(b, "a SEARCH UID 4294967295\r\n");
        let (b, _) = rewritten(prepare(b"a FETCH $ (UID)\r\n", &saved));
        assert_eq!(b, "a FETCH 2:3 (UID)\r\n");
        let (b, _) = rewritten(prepare(b"a UID COPY $ x\r\n", &saved));
        assert_eq!(b, "a UID COPY u2:3 x\r\n");
        assert_eq!(
            prepare(b"a STORE $ +FLAGS x\r\n", &none),
            Pre::Done("OK Store completed.".into())
        );
        assert_eq!(prepare(b"a SEARCH $x\r\n", &saved), Pre::Codec);
        assert_eq!(prepare(b"a APPEND x {1}\r\nA\r\n", &none), Pre::Codec);
        assert_eq!(
            prepare(b"a APPEND \"x y\" (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {1}\r\nA ~{2+}\r\nBC\r\n", &none),
            Pre::MultiAppend(vec![
                b"a APPEND \"x y\" (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {1}\r\nA\r\n".to_vec(),
                b"a APPEND \"x y\" ~{2+}\r\nBC\r\n".to_vec(),
            ])
        );
        assert_eq!(prepare(b"a APPEND x {1}\r\nA {1}\r\nB", &none), Pre::Codec);
    }
}
