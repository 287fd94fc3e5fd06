//! Replays the committed `smtp_reply` fuzz corpus on stable Rust, with
//! what each file must give: the good replies parse, each bad one is the
//! error the session turns into a deferral.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use smtp_client::reply::{Reply, ReplyError, ReplyParser};
use std::path::PathBuf;

fn replies(data: &[u8]) -> Result<Vec<Reply>, ReplyError> {
    let mut p = ReplyParser::new();
    let mut out = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        if let Some(r) = p.feed(line)? {
            out.push(r);
        }
    }
    Ok(out)
}

#[test]
fn smtp_reply_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/smtp_reply");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        let got = replies(&data);
        let name = e.file_name().to_string_lossy().into_owned();
        match name.as_str() {
            "sent" => {
                assert_eq!(got.unwrap()[0].text(), "250 2.0.0 Ok: queued as 19BCA3F2E1C0A7D2B01")
            }
            "ehlo" => {
                let e = smtp_client::reply::Extensions::from_ehlo(&got.unwrap()[0]);
                assert!(e.pipelining && e.starttls && e.dsn && e.smtputf8 && e.eight_bit_mime);
                assert_eq!(e.size, Some(10_240_000));
            }
            "tempfail" => assert!(got.unwrap()[0].is_transient()),
            "code_changed" => assert_eq!(got, Err(ReplyError::CodeChanged)),
            "garbage" => assert!(matches!(got, Err(ReplyError::Malformed(_)))),
            "long_line" => assert_eq!(got, Err(ReplyError::LineTooLong)),
            "unfinished" => assert_eq!(got, Ok(Vec::new())),
            "control_chars" => assert_eq!(got.unwrap()[0].text(), "550 5.1.1 bad?[31m?"),
            "bare_code" => assert_eq!(got.unwrap()[0].code, 354),
            "nexthop" => {
                let hops =
                    smtp_client::nexthop::parse(std::str::from_utf8(&data).unwrap()).unwrap();
                assert_eq!(hops.len(), 3);
            }
            // Files the fuzzer added: only that nothing panics.
            _ => {}
        }
        seen += 1;
    }
    assert!(seen >= 10, "corpus has {seen} files");
}
