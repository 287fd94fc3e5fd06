//! Replays the committed fuzz corpora of the queue's parsers (queue files,
//! maildrop files, status logs) on stable Rust, and checks that the valid
//! seeds decode to what they were made from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_queue::{format, maildrop, status};
use mail_types::DeliveryStatus;
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(name);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "empty corpus {}", dir.display());
    v
}

#[test]
fn queue_file_corpus() {
    for (name, bytes) in corpus("queue_file") {
        let r = format::decode(Path::new(&name), &bytes);
        match name.as_str() {
            "tutorial" | "tutorial_v2" => {
                assert_eq!(r.unwrap().envelope.recipients[0].address, "suporte@fiap.edu.br")
            }
            // Checksums right, layout right, but a recipient that is no
            // address: refused at decode, so the file is quarantined.
            "v2_bad_recipient_address" => match r {
                Err(mail_queue::Error::Corrupt { reason, .. }) => {
                    assert!(reason.contains("malformed local part"), "{reason}")
                }
                other => panic!("{other:?}"),
            },
            "null_sender_two_rcpts" => assert_eq!(r.unwrap().envelope.sender, None),
            // Version 3: the ESMTP facts and UTF-8 addresses.
            "tutorial_v3_esmtp" => {
                let e = r.unwrap().envelope;
                assert_eq!(e.sender.unwrap(), "üser@exämple.org");
                assert!(e.esmtp.smtputf8);
                assert_eq!(e.esmtp.envid.as_deref(), Some("QQ314"));
                let orcpt = e.recipients[0].esmtp.orcpt.clone().unwrap();
                assert_eq!(orcpt.to_string(), "utf-8;josé@fiap.edu.br");
            }
            _ => assert!(r.is_err(), "{name} should be corrupt"),
        }
    }
}

#[test]
fn maildrop_corpus() {
    for (name, bytes) in corpus("maildrop") {
        let r = maildrop::decode(Path::new(&name), &bytes);
        match name.as_str() {
            "mail_s" => assert_eq!(r.unwrap().recipients, vec!["suporte".to_string()]),
            "sendmail_t" => assert!(r.unwrap().extract_recipients),
            _ => assert!(r.is_err(), "{name} should be refused"),
        }
    }
}

#[test]
fn status_log_corpus() {
    for (name, bytes) in corpus("status_log") {
        let records = status::parse_log(&bytes);
        match name.as_str() {
            "delivered_deferred" => {
                assert_eq!(records.len(), 2);
                assert!(matches!(records[1].outcome, DeliveryStatus::Deferred { .. }));
            }
            "torn" => assert_eq!(records.len(), 1),
            "unparsable_dsn_then_final" => {
                // A code older qmgr wrote unchecked does not end the log:
                // the final result after it is still read.
                assert_eq!(records.len(), 2);
                assert_eq!(records[0].outcome.dsn(), mail_types::EnhancedStatus(4, 0, 0));
                assert_eq!(records[1].outcome, DeliveryStatus::sent("ok"));
            }
            _ => {}
        }
    }
}

/// Queue ids as operators type them (`postsuper -d -`, `postcat -q`):
/// only the well-formed one parses, and nothing with a path in it.
#[test]
fn queue_id_corpus() {
    for (name, bytes) in corpus("queue_id") {
        let text = String::from_utf8_lossy(&bytes);
        let parsed: Vec<_> =
            text.split('\n').filter_map(|l| mail_types::QueueId::parse(l).ok()).collect();
        match name.as_str() {
            "valid" => assert_eq!(parsed.len(), 1, "{name}"),
            _ => assert!(parsed.is_empty(), "{name}: {parsed:?}"),
        }
    }
}
