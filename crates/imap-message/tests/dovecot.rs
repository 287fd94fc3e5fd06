//! Our FETCH answers against Dovecot's on the same messages.
//!
//! `dovecot-2.3.19.json` holds what Dovecot 2.3.19.1 (Debian 12's
//! dovecot-imapd) answered to each item of `dovecot-items.txt` for each
//! message of `messages/` (captured with `dovecot_capture.py`). Both
//! answers are compared after one normalisation: literals become quoted
//! strings and ASCII case is folded (Dovecot keeps the header's case in
//! BODYSTRUCTURE, imap-codec writes "TEXT" for text parts; quoted versus
//! literal is the encoder's choice). The differences we keep on purpose
//! are listed in `KNOWN_DIFFERENCES`, each with its reason.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::{CommandCodec, ResponseCodec};
use imap_message::Message;

/// (message, item, reason): answers that differ from Dovecot's by design.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    // RFC 2231: Dovecot joins the continuations but sends the extended
    // value as it is ("name*" "UTF-8''R%C3%A9sum%C3%A9.pdf"); mail-parser
    // decodes it and we send ("name" "Résumé.pdf").
    ("04-mixed-attachment.eml", "BODYSTRUCTURE", "RFC 2231 parameters decoded"),
    ("04-mixed-attachment.eml", "BODY", "RFC 2231 parameters decoded"),
    // BINARY of a composite part or a whole message: Dovecot decodes every
    // part inside and rewrites their Content-Transfer-Encoding headers to
    // "binary"; RFC 3516 asks decoding only of the part named, so we send a
    // composite part's bytes unchanged (they are never encoded).
    ("03-alternative.eml", "BINARY.PEEK[]", "composite parts are not rewritten"),
    ("04-mixed-attachment.eml", "BINARY.PEEK[]", "composite parts are not rewritten"),
    ("04-mixed-attachment.eml", "BINARY.PEEK[1]", "composite parts are not rewritten"),
    ("05-rfc822.eml", "BINARY.PEEK[]", "composite parts are not rewritten"),
    ("05-rfc822.eml", "BINARY.PEEK[2]", "composite parts are not rewritten"),
    ("04-mixed-attachment.eml", "BINARY.SIZE[1]", "composite parts are not rewritten"),
    ("05-rfc822.eml", "BINARY.SIZE[2]", "composite parts are not rewritten"),
    // Dovecot refuses the whole message because a part inside has an
    // unknown encoding; we send the message, whose bytes need no decoding.
    ("07-no-close.eml", "BINARY.PEEK[]", "composite parts are not rewritten"),
    // Dovecot answers NO for a 7bit part's size because another part of
    // the message has an unknown encoding; BINARY[1] itself it answers.
    ("07-no-close.eml", "BINARY.SIZE[1]", "only the part named is decoded"),
];

#[derive(Debug)]
struct Answer {
    status: String,
    data: Vec<u8>,
}

/// Reads the fixture: a JSON object of message → item → {status, data}.
/// A hand-written reader, as the file only uses this one shape.
fn fixture() -> BTreeMap<String, BTreeMap<String, Answer>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dovecot-2.3.19.json");
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (msg, items) in v.as_object().unwrap() {
        let mut m = BTreeMap::new();
        for (item, ans) in items.as_object().unwrap() {
            // The capture stored bytes as Latin-1 code points.
            let data = ans["data"]
                .as_str()
                .unwrap()
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap())
                .collect();
            m.insert(
                item.clone(),
                Answer { status: ans["status"].as_str().unwrap().to_owned(), data },
            );
        }
        out.insert(msg.clone(), m);
    }
    out
}

/// Literals to quoted strings, ASCII case folded, and only the FETCH
/// lines (Dovecot adds "* 1 FETCH (UID 1)" before a NO).
fn normalise(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let lit = if data[i] == b'{' {
            Some(i + 1)
        } else if data[i] == b'~' && data.get(i + 1) == Some(&b'{') {
            Some(i + 2)
        } else {
            None
        };
        if let Some(start) = lit
            && let Some(close) = data[start..].iter().position(|&b| b == b'}')
            && let Ok(n) =
                std::str::from_utf8(&data[start..start + close]).unwrap_or("x").parse::<usize>()
            && data[start + close + 1..].starts_with(b"\r\n")
        {
            let body = start + close + 3;
            out.push(b'"');
            for &b in &data[body..body + n] {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b.to_ascii_lowercase());
            }
            out.push(b'"');
            i = body + n;
            continue;
        }
        out.push(data[i].to_ascii_lowercase());
        i += 1;
    }
    out
}

fn ours(msg: &Message<'_>, item: &str) -> (String, Vec<u8>) {
    let cmd = format!("t FETCH 1 ({item})\r\n");
    let (_, cmd) = CommandCodec::default().decode(cmd.as_bytes()).unwrap();
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = cmd.body
    else {
        panic!("not a fetch: {item}")
    };
    let mut items: Vec<MessageDataItem<'_>> = Vec::new();
    for n in &names {
        match msg.fetch(n) {
            Some(Ok(i)) => items.push(i),
            Some(Err(_)) => return ("NO".into(), Vec::new()),
            None => panic!("not a content item: {item}"),
        }
    }
    let resp = Response::Data(Data::Fetch {
        seq: 1.try_into().unwrap(),
        items: Vec1::try_from(items).unwrap(),
    });
    ("OK".into(), ResponseCodec::default().encode(&resp).dump())
}

#[test]
fn fetch_answers_match_dovecot() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/messages");
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, items) in fixture() {
        let raw = std::fs::read(dir.join(&name)).unwrap();
        let msg = Message::parse(&raw);
        for (item, theirs) in items {
            let known = KNOWN_DIFFERENCES.iter().any(|(m, i, _)| *m == name && *i == item);
            let (status, data) = ours(&msg, &item);
            let theirs_data: Vec<u8> = theirs
                .data
                .split(|&b| b == b'\n')
                .filter(|l| !l.starts_with(b"* 1 FETCH (UID ") || theirs.status == "OK")
                .collect::<Vec<_>>()
                .join(&b'\n');
            let same = status == theirs.status && normalise(&data) == normalise(&theirs_data);
            compared += 1;
            if same == known {
                failures.push(format!(
                    "{name} {item} ({}):\n  ours:    {status} {}\n  dovecot: {} {}",
                    if known { "listed as a known difference but equal" } else { "differs" },
                    String::from_utf8_lossy(&data).escape_debug(),
                    theirs.status,
                    String::from_utf8_lossy(&theirs_data).escape_debug()
                ));
            }
        }
    }
    assert!(compared > 250, "only {compared} answers compared");
    assert!(
        failures.is_empty(),
        "{} of {compared} answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
