//! Retries, delay warnings and expiry with small values (issue 8): mail
//! that cannot leave is retried between minimal_backoff_time and
//! maximal_backoff_time, its sender gets one delay warning once it is
//! delay_warning_time old (unless NOTIFY leaves out DELAY), and after
//! maximal_queue_lifetime it comes back as a well-formed RFC 3464 report
//! (parsed with mail-parser; the whole message for RET=FULL, the headers
//! otherwise) and leaves the queue.
//!
//! Remote mail cannot leave this instance: it has no SMTP client service
//! (taken out of master.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use mail_parser::{MessageParser, MimeHeaders};
use std::time::Duration;
use tests::{Instance, Options, wait_until};

fn maillog(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

fn delivery_status(raw: &str) -> String {
    let msg = MessageParser::default().parse(raw.as_bytes()).expect("parses");
    let ct = msg.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")), "{raw}");
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let part = msg
        .parts
        .iter()
        .find(|p| p.content_type().is_some_and(|c| c.subtype() == Some("delivery-status")))
        .unwrap_or_else(|| panic!("no delivery-status part:\n{raw}"));
    String::from_utf8_lossy(part.contents()).into_owned()
}

#[test]
fn delay_warning_once_then_expiry_returns_the_mail() {
    let inst = Instance::start_with(Options {
        before_start: Some(tests::log_to_file_without_smtp_client),
        postconf: vec![
            "queue_run_delay = 1s".into(),
            "minimal_backoff_time = 1s".into(),
            "maximal_backoff_time = 2s".into(),
            "delay_warning_time = 3s".into(),
            "maximal_queue_lifetime = 9s".into(),
        ],
        ..Default::default()
    });
    let mut c = inst.smtp();
    c.ehlo("client.example");
    c.cmd("MAIL FROM:<suporte@postern.test> RET=FULL", 250);
    c.cmd("RCPT TO:<u@remote.example>", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: a\r\n\r\nbody a\r\n.\r\n");
    let warned = c.expect_code(250).rsplit(' ').next().unwrap().to_owned();
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    c.cmd("RCPT TO:<v@remote.example> NOTIFY=FAILURE", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: b\r\n\r\nbody b\r\n.\r\n");
    let quiet = c.expect_code(250).rsplit(' ').next().unwrap().to_owned();
    c.cmd("QUIT", 221);

    // Two failure reports (both asked for them) and one delay warning
    // (only the first asked for delays) arrive, and the queue empties.
    let mail = inst.wait_for_mail("suporte", 3, Duration::from_secs(30));
    let log = maillog(&inst);
    wait_until(Duration::from_secs(10), || {
        (inst.queue_files("deferred").is_empty() && inst.queue_files("active").is_empty())
            .then_some(())
    })
    .unwrap_or_else(|| panic!("mail left in the queue:\n{log}"));
    // Retried several times before it expired, by the clock alone.
    let tries = log.lines().filter(|l| l.contains("to=<u@remote.example>")).count();
    assert!(tries >= 3, "only {tries} attempt(s):\n{log}");
    // Nothing more comes: one warning per message.
    std::thread::sleep(Duration::from_secs(3));
    let texts: Vec<String> =
        inst.new_mail("suporte").iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert_eq!(mail.len(), 3);
    for t in &texts {
        assert!(t.starts_with("Return-Path: <>\n"), "{t}");
    }
    let delays: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("Subject: Delayed Mail (still being retried)"))
        .collect();
    assert_eq!(delays.len(), 1, "{texts:#?}");
    let dsn = delivery_status(delays[0]);
    assert!(dsn.contains("Final-Recipient: rfc822; u@remote.example"), "{dsn}");
    assert!(dsn.contains("Action: delayed") && dsn.contains("Will-Retry-Until: "), "{dsn}");
    assert!(!dsn.contains("v@remote.example"), "NOTIFY=FAILURE asked for no delay notice: {dsn}");
    let log = maillog(&inst);
    assert_eq!(log.matches(&format!("{warned}: sender delay notification: ")).count(), 1, "{log}");
    assert!(!log.contains(&format!("{quiet}: sender delay notification")), "{log}");

    let bounces: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("Subject: Undelivered Mail Returned to Sender"))
        .collect();
    assert_eq!(bounces.len(), 2, "{texts:#?}");
    for (rcpt, body, full) in
        [("u@remote.example", "body a", true), ("v@remote.example", "body b", false)]
    {
        let b = bounces
            .iter()
            .find(|t| t.contains(&format!("Final-Recipient: rfc822; {rcpt}")))
            .unwrap_or_else(|| panic!("no report for {rcpt}: {bounces:#?}"));
        let dsn = delivery_status(b);
        assert!(dsn.contains("Action: failed") && dsn.contains("Status: 4.4.7"), "{dsn}");
        assert!(dsn.contains("message expired after"), "{dsn}");
        assert!(dsn.contains("delivery temporarily suspended"), "the last error is kept: {dsn}");
        // RET=FULL: the whole message comes back; without RET, its headers.
        if full {
            assert!(b.contains("Content-Type: message/rfc822") && b.contains(body), "{b}");
        } else {
            assert!(b.contains("Content-Type: text/rfc822-headers") && !b.contains(body), "{b}");
        }
    }
    for id in [&warned, &quiet] {
        assert!(log.contains(&format!("{id}: sender non-delivery notification: ")), "{log}");
        assert!(log.contains(&format!("{id}: removed")), "{log}");
    }
}
