//! Exact answers of the public API on small messages, including the RFC
//! 3501 examples and the hostile inputs the limits exist for.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::borrow::Cow;
use std::num::NonZeroU32;

use chrono::{DateTime, FixedOffset, TimeZone};
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::thread::{Thread, ThreadingAlgorithm};
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem};
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::{CommandCodec, ResponseCodec};
use imap_message::search::{SearchContext, matches, needs_content, too_deep};
use imap_message::sort::{SortFacts, SortItem, base_subject};
use imap_message::thread::{MAX_THREAD_DEPTH, references};
use imap_message::{BinaryError, MAX_DEPTH, Message, partial};

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// `* 1 FETCH (...)` as imap-codec encodes our answer to `items`.
fn fetch(raw: &[u8], items: &str) -> String {
    let msg = Message::parse(raw);
    let cmd = format!("t FETCH 1 ({items})\r\n");
    let (_, cmd) = CommandCodec::default().decode(cmd.as_bytes()).unwrap();
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = cmd.body
    else {
        panic!("not a fetch")
    };
    let out: Vec<MessageDataItem<'_>> =
        names.iter().map(|n| msg.fetch(n).unwrap().unwrap()).collect();
    let resp = Response::Data(Data::Fetch {
        seq: NonZeroU32::new(1).unwrap(),
        items: Vec1::try_from(out).unwrap(),
    });
    String::from_utf8_lossy(&ResponseCodec::default().encode(&resp).dump()).into_owned()
}

const SIMPLE: &str = "From: a@example.test\nSubject: s\n\nline one\nline two\n";

#[test]
fn defaults_for_a_message_without_mime_headers() {
    assert_eq!(
        fetch(&crlf(SIMPLE), "BODYSTRUCTURE"),
        "* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2 NIL NIL NIL NIL))\r\n"
    );
    assert_eq!(
        fetch(&crlf(SIMPLE), "BODY"),
        "* 1 FETCH (BODY (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2))\r\n"
    );
}

#[test]
fn envelope_defaults_sender_and_reply_to_and_keeps_encoded_words() {
    let raw =
        crlf("From: =?utf-8?q?=C3=A9?= <e@x.test>\nSender:\nSubject: =?utf-8?b?w6k=?=\n\nb\n");
    assert_eq!(
        fetch(&raw, "ENVELOPE"),
        "* 1 FETCH (ENVELOPE (NIL \"=?utf-8?b?w6k=?=\" ((\"=?utf-8?q?=C3=A9?=\" NIL \"e\" \"x.test\")) \
         ((\"=?utf-8?q?=C3=A9?=\" NIL \"e\" \"x.test\")) ((\"=?utf-8?q?=C3=A9?=\" NIL \"e\" \"x.test\")) \
         NIL NIL NIL NIL NIL))\r\n"
    );
}

#[test]
fn eight_bit_and_nul_in_headers_become_literals_not_errors() {
    let mut raw = crlf("Subject: caf\u{e9}\nFrom: x@y.test\n\nb\n");
    raw.extend_from_slice(b"");
    let out = fetch(&raw, "ENVELOPE");
    assert!(out.contains("{5}\r\ncaf\u{e9}"), "{out}");
    let raw = b"Subject: a\0b\r\n\r\nbody\0\r\n".to_vec();
    let out = fetch(&raw, "ENVELOPE BODY[TEXT]");
    assert!(out.contains("{3}\r\na\u{fffd}") || out.contains("{3}\r\na"), "{out}");
    assert!(!out.as_bytes().contains(&0), "NUL reached the wire: {out:?}");
}

#[test]
fn header_fields_keep_their_folding_and_end_with_the_blank_line() {
    let raw = crlf("From: a@x.test\nX-Long: one\n two\nSubject: s\nx-long: again\n\nbody\n");
    assert_eq!(
        fetch(&raw, "BODY.PEEK[HEADER.FIELDS (X-LONG)]"),
        "* 1 FETCH (BODY[HEADER.FIELDS (X-LONG)] {36}\r\nX-Long: one\r\n two\r\nx-long: again\r\n\r\n)\r\n"
    );
    assert_eq!(
        fetch(&raw, "BODY.PEEK[HEADER.FIELDS.NOT (X-Long From)]"),
        "* 1 FETCH (BODY[HEADER.FIELDS.NOT (X-Long From)] {14}\r\nSubject: s\r\n\r\n)\r\n"
    );
    assert_eq!(
        fetch(&raw, "BODY.PEEK[HEADER.FIELDS (Nothing)]"),
        "* 1 FETCH (BODY[HEADER.FIELDS (Nothing)] {2}\r\n\r\n)\r\n"
    );
}

#[test]
fn partial_fetches() {
    let raw = crlf(SIMPLE);
    assert_eq!(fetch(&raw, "BODY.PEEK[TEXT]<5.3>"), "* 1 FETCH (BODY[TEXT]<5> {3}\r\none)\r\n");
    assert_eq!(fetch(&raw, "BODY.PEEK[TEXT]<500.3>"), "* 1 FETCH (BODY[TEXT]<500> {0}\r\n)\r\n");
    assert_eq!(partial(b"abcdef", 4, NonZeroU32::new(10).unwrap()), b"ef");
    assert_eq!(partial(b"abcdef", u32::MAX, NonZeroU32::new(u32::MAX).unwrap()), b"");
}

#[test]
fn rfc822_items() {
    let raw = crlf(SIMPLE);
    assert_eq!(
        fetch(&raw, "RFC822.HEADER RFC822.SIZE"),
        "* 1 FETCH (RFC822.HEADER {36}\r\nFrom: a@example.test\r\nSubject: s\r\n\r\n RFC822.SIZE 56)\r\n"
    );
    assert_eq!(
        fetch(&raw, "RFC822.TEXT"),
        "* 1 FETCH (RFC822.TEXT {20}\r\nline one\r\nline two\r\n)\r\n"
    );
}

const MULTI: &str = "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8A\n--b\nContent-Transfer-Encoding: quoted-printable\n\na=3Db=\nc\n--b\nContent-Transfer-Encoding: base64\n\n!!!not base64\n--b\nContent-Transfer-Encoding: x-gzip\n\nzz\n--b--\n";

#[test]
fn binary_decodes_or_refuses() {
    let raw = crlf(MULTI);
    let msg = Message::parse(&raw);
    let one = NonZeroU32::new(1).unwrap();
    let n = |v: u32| NonZeroU32::new(v).unwrap();
    assert_eq!(msg.binary(&[one]).unwrap(), Cow::Borrowed(&b"hello\0"[..]));
    assert_eq!(msg.binary_size(&[one]), Ok(6));
    assert_eq!(msg.binary(&[n(2)]).unwrap().as_ref(), b"a=bc");
    assert_eq!(msg.binary(&[n(3)]), Err(BinaryError::Corrupt));
    assert_eq!(msg.binary(&[n(4)]), Err(BinaryError::UnknownEncoding("x-gzip".into())));
    assert_eq!(msg.binary(&[n(5)]), Err(BinaryError::NoSuchPart));
    // A NUL in decoded data goes out as a literal8 (RFC 3516 §4.3).
    assert_eq!(fetch(&raw, "BINARY.PEEK[1]"), "* 1 FETCH (BINARY[1] ~{6}\r\nhello\0)\r\n");
    assert_eq!(fetch(&raw, "BINARY.SIZE[2]"), "* 1 FETCH (BINARY.SIZE[2] 4)\r\n");
}

#[test]
fn nesting_beyond_the_limit_is_one_opaque_part() {
    let mut raw = Vec::new();
    for i in 0..(MAX_DEPTH + 50) {
        raw.extend_from_slice(
            format!("Content-Type: message/rfc822\r\n\r\nSubject: level {i}\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"\r\nbottom\r\n");
    let msg = Message::parse(&raw);
    let s = msg.body_structure(true);
    let mut depth = 0;
    let mut cur = &s;
    while let imap_codec::imap_types::body::BodyStructure::Single { body, .. } = cur {
        match &body.specific {
            imap_codec::imap_types::body::SpecificFields::Message { body_structure, .. } => {
                depth += 1;
                cur = body_structure;
            }
            _ => break,
        }
    }
    // MAX_DEPTH levels are split; the next message/rfc822 is opaque (an
    // empty envelope and body), its bytes still there.
    assert_eq!(depth, MAX_DEPTH + 1);
    // The deepest parts are still reachable as bytes.
    let path: Vec<NonZeroU32> = vec![NonZeroU32::new(1).unwrap(); 3];
    assert!(
        msg.section(Some(&imap_codec::imap_types::fetch::Section::Part(
            imap_codec::imap_types::fetch::Part(Vec1::try_from(path).unwrap())
        )))
        .is_some()
    );
    let _ = fetch(&raw, "BODYSTRUCTURE ENVELOPE BODY.PEEK[1.1.1.1.HEADER]");
}

#[test]
fn many_parts_and_fields_stay_bounded() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=x\r\n".to_vec();
    for i in 0..5000 {
        raw.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    for _ in 0..20_000 {
        raw.extend_from_slice(b"--x\r\n\r\np\r\n");
    }
    let msg = Message::parse(&raw);
    let imap_codec::imap_types::body::BodyStructure::Multi { bodies, .. } =
        msg.body_structure(false)
    else {
        panic!("not multipart")
    };
    assert_eq!(bodies.as_ref().len(), imap_message::MAX_PARTS - 1);
}

struct Ctx {
    seq: u32,
    uid: u32,
    flags: Vec<Flag<'static>>,
    recent: bool,
    date: DateTime<FixedOffset>,
    raw: Option<Vec<u8>>,
    modseq: u64,
}

impl SearchContext for Ctx {
    fn seq(&self) -> NonZeroU32 {
        NonZeroU32::new(self.seq).unwrap()
    }
    fn uid(&self) -> NonZeroU32 {
        NonZeroU32::new(self.uid).unwrap()
    }
    fn last_seq(&self) -> u32 {
        10
    }
    fn last_uid(&self) -> u32 {
        500
    }
    fn has_flag(&self, flag: &Flag<'_>) -> bool {
        self.flags.iter().any(|f| match (f, flag) {
            (Flag::Keyword(a), Flag::Keyword(b)) => a.as_ref().eq_ignore_ascii_case(b.as_ref()),
            (a, b) => a == b,
        })
    }
    fn is_recent(&self) -> bool {
        self.recent
    }
    fn internal_date(&self) -> DateTime<FixedOffset> {
        self.date
    }
    fn size(&self) -> u32 {
        self.raw.as_ref().map_or(0, |r| r.len() as u32)
    }
    fn modseq(&self) -> u64 {
        self.modseq
    }
    fn now(&self) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }
    fn raw(&self) -> Option<Cow<'_, [u8]>> {
        self.raw.as_deref().map(Cow::Borrowed)
    }
}

fn ctx() -> Ctx {
    Ctx {
        seq: 3,
        uid: 300,
        flags: vec![Flag::Seen, Flag::Keyword("$Forwarded".try_into().unwrap())],
        recent: true,
        date: FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(2026, 6, 1, 11, 30, 0).unwrap(),
        raw: Some(crlf(
            "From: =?utf-8?q?J=C3=B6rg?= <j@x.test>\nSubject: Hello\nDate: Sun, 31 May 2026 23:00:00 -0700\n\nBody TEXT\n",
        )),
        modseq: 42,
    }
}

fn key(program: &str) -> SearchKey<'static> {
    let cmd = format!("t SEARCH {program}\r\n");
    let (_, cmd) = CommandCodec::default().decode_static(cmd.as_bytes()).unwrap();
    let CommandBody::Search { criteria, .. } = cmd.body else { panic!("not a search") };
    let mut keys = criteria.into_inner();
    if keys.len() == 1 { keys.remove(0) } else { SearchKey::And(Vec1::try_from(keys).unwrap()) }
}

#[test]
fn search_keys_on_flags_numbers_and_dates() {
    let c = ctx();
    for (program, want) in [
        ("RECENT", true),
        ("NEW", false),
        ("OLD", false),
        ("SEEN UNANSWERED", true),
        ("KEYWORD $forwarded", true),
        ("UNKEYWORD $Forwarded", false),
        ("KEYWORD $Junk", false),
        ("MODSEQ 42", true),
        ("MODSEQ 43", false),
        ("3", true),
        ("1:2", false),
        ("*:3", true),
        ("4:*", false),
        ("UID 300", true),
        ("UID 299:*", true),
        ("UID 301:*", false),
        ("UID *", false),
        // The internal date is 1 June 2026 in its own zone (+0100).
        ("ON 1-Jun-2026", true),
        ("BEFORE 1-Jun-2026", false),
        ("SINCE 1-Jun-2026", true),
        // Date: is 31 May in its own zone (-0700), 1 June in UTC.
        ("SENTON 31-May-2026", true),
        ("SENTSINCE 1-Jun-2026", false),
        ("LARGER 50", true),
        ("SMALLER 50", false),
        ("OLDER 3600", true),
        ("YOUNGER 3600", false),
        ("YOUNGER 7200", true),
        ("OR ANSWERED NOT DELETED", true),
        ("NOT (SEEN RECENT)", false),
    ] {
        assert_eq!(matches(&key(program), &c), want, "{program}");
    }
}

#[test]
fn search_keys_on_content() {
    let c = ctx();
    for (program, want) in [
        ("FROM j\u{f6}rg", false),
        ("FROM \"j@x\"", true),
        ("SUBJECT hello", true),
        ("HEADER subject ELL", true),
        ("HEADER X-Missing \"\"", false),
        ("HEADER Subject \"\"", true),
        ("BODY text", true),
        ("BODY hello", false),
        ("TEXT hello", true),
        ("TEXT \"body text\"", true),
    ] {
        if program.is_ascii() {
            assert_eq!(matches(&key(program), &c), want, "{program}");
        }
    }
    // Encoded words are decoded before matching (a UTF-8 literal).
    let cmd = "t SEARCH CHARSET UTF-8 FROM {5+}\r\nJ\u{d6}RG\r\n";
    let (_, cmd) = CommandCodec::default().decode_static(cmd.as_bytes()).unwrap();
    let CommandBody::Search { criteria, .. } = cmd.body else { panic!() };
    assert!(matches(&criteria.into_inner().remove(0), &c));
    // Unreadable bytes: content keys do not match, the others still do.
    let gone = Ctx { raw: None, ..ctx() };
    assert!(!matches(&key("BODY text"), &gone));
    assert!(matches(&key("NOT BODY text"), &gone));
    assert!(matches(&key("SEEN"), &gone));
    assert!(needs_content(&key("OR SEEN (NOT SENTON 1-Jun-2026)")));
    assert!(!needs_content(&key("OR SEEN (NOT ON 1-Jun-2026)")));
}

#[test]
fn deep_search_programs_do_not_overflow() {
    for n in [100_000, 100_001] {
        let mut k = SearchKey::All;
        for _ in 0..n {
            k = SearchKey::Not(Box::new(k));
        }
        // Whatever the parity of the NOTs: too deep matches nothing.
        let (m, deep, content) = (matches(&k, &ctx()), too_deep(&k), needs_content(&k));
        // Dropping a deep Box chain recurses in std; unwind it by hand
        // before asserting, so a failure does not overflow the stack.
        while let SearchKey::Not(inner) = k {
            k = *inner;
        }
        assert!(!m && deep && !content, "{n}");
    }
    let ok = key("NOT NOT NOT SEEN");
    assert!(!too_deep(&ok));
}

#[test]
fn base_subjects_per_rfc_5256() {
    for (subject, base, reply) in [
        ("Hello", "Hello", false),
        ("Re: Hello", "Hello", true),
        ("RE: re: Fwd: Hello", "Hello", true),
        ("Re[2]: Hello", "Hello", true),
        ("Re [2]: Hello", "Hello", true),
        ("[list] Re: Hello", "Hello", true),
        ("[list] Hello", "Hello", false),
        ("[list]", "[list]", false),
        ("Hello (fwd)", "Hello", true),
        ("Hello (FWD) (fwd)  ", "Hello", true),
        ("[Fwd: Re: Hello]", "Hello", true),
        ("  Fw:   Hello\t world  ", "Hello world", true),
        ("Re:", "", true),
        ("", "", false),
    ] {
        assert_eq!(base_subject(subject), (base.to_owned(), reply), "{subject:?}");
    }
}

fn item(seq: u32, facts: &SortFacts) -> SortItem<'_> {
    SortItem {
        seq: NonZeroU32::new(seq).unwrap(),
        id: NonZeroU32::new(seq * 10).unwrap(),
        arrival: 0,
        size: 0,
        facts,
    }
}

#[test]
fn thread_answers_use_ids_and_the_rfc_example_shape() {
    // 1 <- 2 <- 3, 1 <- 4 (a branch), 5 alone: (1 (2 3)(4))(5) with ids x10.
    let f = |id: &str, refs: &[&str], sent: i64| SortFacts {
        message_id: Some(id.into()),
        references: refs.iter().map(|s| (*s).to_owned()).collect(),
        sent: Some(sent),
        base_subject: format!("S{id}"),
        ..SortFacts::default()
    };
    let facts = [
        f("a", &[], 1),
        f("b", &["a"], 2),
        f("c", &["a", "b"], 3),
        f("d", &["a"], 4),
        f("e", &[], 5),
    ];
    let items: Vec<SortItem<'_>> =
        facts.iter().enumerate().map(|(i, f)| item(i as u32 + 1, f)).collect();
    let t = imap_message::thread::thread(&items, &ThreadingAlgorithm::References).unwrap();
    let enc = ResponseCodec::default().encode(&Response::Data(Data::Thread(t))).dump();
    assert_eq!(String::from_utf8(enc).unwrap(), "* THREAD (10 (20 30)(40))(50)\r\n");
}

#[test]
fn very_long_and_very_branchy_threads_stay_bounded() {
    // 20,000 messages each replying to the previous one: one flat chain.
    let n = 20_000u32;
    let facts: Vec<SortFacts> = (0..n)
        .map(|i| SortFacts {
            message_id: Some(format!("m{i}")),
            references: if i == 0 { vec![] } else { vec![format!("m{}", i - 1)] },
            sent: Some(i64::from(i)),
            ..SortFacts::default()
        })
        .collect();
    let items: Vec<SortItem<'_>> =
        facts.iter().enumerate().map(|(i, f)| item(i as u32 + 1, f)).collect();
    let t = references(&items);
    assert_eq!(t.len(), 1);
    let Thread::Members { prefix, answers: None } = &t[0] else { panic!("not a chain") };
    assert_eq!(prefix.as_ref().len(), n as usize);

    // Every message has two replies, one of which branches again: the
    // answer nests at most MAX_THREAD_DEPTH levels and keeps every message.
    let mut facts = Vec::new();
    for i in 0..1000u32 {
        let parent = if i == 0 { vec![] } else { vec![format!("b{}", i - 1)] };
        facts.push(SortFacts {
            message_id: Some(format!("b{i}")),
            references: parent.clone(),
            sent: Some(i64::from(i) * 2),
            ..SortFacts::default()
        });
        facts.push(SortFacts {
            message_id: Some(format!("leaf{i}")),
            references: parent,
            sent: Some(i64::from(i) * 2 + 1),
            ..SortFacts::default()
        });
    }
    let items: Vec<SortItem<'_>> =
        facts.iter().enumerate().map(|(i, f)| item(i as u32 + 1, f)).collect();
    let t = references(&items);
    let enc =
        String::from_utf8(ResponseCodec::default().encode(&Response::Data(Data::Thread(t))).dump())
            .unwrap();
    let depth = enc.chars().scan(0i32, |d, c| {
        match c {
            '(' => *d += 1,
            ')' => *d -= 1,
            _ => {}
        }
        Some(*d)
    });
    assert!(depth.max().unwrap() <= MAX_THREAD_DEPTH as i32 + 2, "too deep");
    let ids = enc.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).count();
    assert_eq!(ids, 2000);
}
