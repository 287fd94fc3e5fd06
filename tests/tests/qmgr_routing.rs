//! qmgr's routing (issue 8): `transport_maps` entries `error:`,
//! `discard:` and `local:` answered or routed by qmgr itself, the
//! RFC 3464 report that goes back to the sender (parsed with mail-parser,
//! not with our builder), and the DSN requests of the envelope: RET,
//! ENVID, ORCPT, NOTIFY=NEVER and NOTIFY=SUCCESS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::path::Path;
use std::time::Duration;
use tests::{Instance, Options, log_to_file, wait_until};

fn setup(dir: &Path) {
    log_to_file(dir);
    let table = dir.join("transport");
    std::fs::write(
        &table,
        "bad.example   error:5.1.1 no such domain here\n\
         gone.example  discard:dropped by policy\n\
         alias.example local:\n",
    )
    .unwrap();
    let out = std::process::Command::new(tests::bin("postconf"))
        .arg("-c")
        .arg(dir)
        .arg("-e")
        .arg(format!("transport_maps = hash:{}", table.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn maillog(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

/// Waits for the log to hold `needle`; the log, or a panic with it.
fn wait_log(inst: &Instance, needle: &str) -> String {
    wait_until(Duration::from_secs(20), || {
        let log = maillog(inst);
        log.contains(needle).then_some(log)
    })
    .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{}", maillog(inst)))
}

/// The one-line fields of a message/delivery-status body, per block.
fn dsn_text(msg: &mail_parser::Message<'_>) -> String {
    let part = msg
        .parts
        .iter()
        .find(|p| {
            p.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
            })
        })
        .unwrap_or_else(|| panic!("no message/delivery-status part"));
    String::from_utf8_lossy(part.contents()).into_owned()
}

/// Checks the report's frame: null-sender delivery, multipart/report of
/// type delivery-status with its three parts in order.
fn check_report(raw: &str, third: &str) -> String {
    assert!(raw.starts_with("Return-Path: <>\n"), "a notice comes from <>:\n{raw}");
    let msg = MessageParser::default().parse(raw.as_bytes()).expect("parses");
    let ct = msg.content_type().expect("content type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"), "{raw}");
    let PartType::Multipart(children) = &msg.parts[0].body else { panic!("not multipart: {raw}") };
    let types: Vec<String> = children
        .iter()
        .map(|&i| {
            let ct = msg.parts[i as usize].content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(types, ["text/plain", "message/delivery-status", third], "{raw}");
    assert!(msg.from().unwrap().first().unwrap().address().unwrap().starts_with("MAILER-DAEMON@"));
    dsn_text(&msg)
}

#[test]
fn transport_maps_error_discard_local_and_the_reports() {
    let inst = Instance::start_with(Options { before_start: Some(setup), ..Default::default() });
    let mut c = inst.smtp();
    c.ehlo("client.example");
    c.cmd("MAIL FROM:<suporte@postern.test> RET=HDRS ENVID=env-7", 250);
    c.cmd("RCPT TO:<x@bad.example> ORCPT=rfc822;orig-x@bad.example", 250);
    c.cmd("RCPT TO:<y@gone.example>", 250);
    c.cmd("RCPT TO:<suporte@alias.example>", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: routing one\r\n\r\nthe body of one\r\n.\r\n");
    let id = c.expect_code(250).rsplit(' ').next().unwrap().to_owned();

    // local: delivers mail for a domain that is not ours; error: bounces;
    // discard: is a success, logged by qmgr in the agents' format.
    let mail = inst.wait_for_mail("suporte", 2, Duration::from_secs(20));
    let log = wait_log(&inst, "to=<y@gone.example>");
    let line = |to: &str| {
        log.lines()
            .find(|l| l.contains(&format!("{id}: to=<{to}>")))
            .unwrap_or_else(|| panic!("no line for {to}:\n{log}"))
            .to_owned()
    };
    let y = line("y@gone.example");
    assert!(y.contains("relay=none, ") && y.ends_with("status=sent (dropped by policy)"), "{y}");
    let x = line("x@bad.example");
    assert!(
        x.contains("relay=none, ")
            && x.contains("dsn=5.1.1, ")
            && x.ends_with("status=bounced (no such domain here)"),
        "{x}"
    );
    assert!(line("suporte@alias.example").contains("status=sent"));
    assert!(log.contains(&format!("{id}: sender non-delivery notification: ")), "{log}");

    let texts: Vec<String> = mail.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let (bounces, plain): (Vec<&String>, Vec<&String>) =
        texts.iter().partition(|t| t.contains("MAILER-DAEMON@"));
    assert_eq!((bounces.len(), plain.len()), (1, 1), "{texts:#?}");
    assert!(plain[0].contains("the body of one"));
    let dsn = check_report(bounces[0], "text/rfc822-headers");
    for want in [
        "Original-Envelope-Id: env-7",
        "Final-Recipient: rfc822; x@bad.example",
        "Original-Recipient: rfc822; orig-x@bad.example",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: X-Postern; no such domain here",
    ] {
        assert!(dsn.contains(want), "no {want:?} in\n{dsn}");
    }
    assert!(!dsn.contains("gone.example") && !dsn.contains("alias.example"), "{dsn}");
    // RET=HDRS: the headers come back, the body does not.
    assert!(bounces[0].contains("Subject: routing one") && !bounces[0].contains("the body of one"));

    // NOTIFY=NEVER: no report for that failure; NOTIFY=SUCCESS: a success
    // notice for the delivery.
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    c.cmd("RCPT TO:<x@bad.example> NOTIFY=NEVER", 250);
    c.cmd("RCPT TO:<suporte@postern.test> NOTIFY=SUCCESS", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: routing two\r\n\r\nthe body of two\r\n.\r\n");
    let id2 = c.expect_code(250).rsplit(' ').next().unwrap().to_owned();
    let mail = inst.wait_for_mail("suporte", 4, Duration::from_secs(20));
    let log = wait_log(&inst, &format!("{id2}: removed"));
    assert!(log.contains(&format!("{id2}: sender delivery status notification: ")), "{log}");
    assert!(!log.contains(&format!("{id2}: sender non-delivery notification")), "{log}");
    // Nothing else arrives: no report about the NOTIFY=NEVER recipient.
    std::thread::sleep(Duration::from_secs(2));
    let texts: Vec<String> =
        inst.new_mail("suporte").iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    assert_eq!(texts.len(), 4, "{texts:#?}");
    assert_eq!(mail.len(), 4);
    let notices: Vec<&String> = texts.iter().filter(|t| t.contains("MAILER-DAEMON@")).collect();
    assert_eq!(notices.len(), 2, "{texts:#?}");
    let success = notices
        .iter()
        .find(|t| t.contains("Successful Mail Delivery Report"))
        .unwrap_or_else(|| panic!("no success notice: {notices:#?}"));
    let dsn = check_report(success, "text/rfc822-headers");
    assert!(dsn.contains("Final-Recipient: rfc822; suporte@postern.test"), "{dsn}");
    assert!(dsn.contains("Action: delivered") && dsn.contains("Status: 2.0.0"), "{dsn}");
    assert!(!dsn.contains("bad.example"), "{dsn}");
    c.cmd("QUIT", 221);
}
