//! Fuzz target: bytes from a remote SMTP server, cut into lines as the
//! SMTP client's connection does, fed to its bounded reply parser. A
//! parsed reply must keep the bounds and be printable (it goes into log
//! lines and bounces); the first bytes also go through the next-hop
//! parser, which reads qmgr's and the operator's text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_client::reply::{Extensions, MAX_LINE, MAX_LINES, ReplyParser};

fuzz_target!(|data: &[u8]| {
    let mut parser = ReplyParser::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        match parser.feed(line) {
            Ok(Some(reply)) => {
                assert!((200..=599).contains(&reply.code));
                assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_LINES);
                for l in &reply.lines {
                    assert!(l.len() <= MAX_LINE);
                    assert!(l.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{l:?}");
                }
                let text = reply.text();
                assert!(text.len() <= 1000);
                let _ = reply.enhanced();
                let _ = Extensions::from_ehlo(&reply);
            }
            Ok(None) => {}
            // An error ends the session; start over as a new one would.
            Err(_) => parser = ReplyParser::new(),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(hops) = smtp_client::nexthop::parse(text) {
            for h in hops {
                assert!(!h.host.is_empty());
                assert_eq!(smtp_client::nexthop::parse(&h.spelled()).ok(), Some(vec![h]));
            }
        }
    }
});
