//! Issue 7, header rewriting: `canonical_maps` rewrites the addresses in
//! sender and recipient headers as well as the envelope, for mail from
//! smtpd and from sendmail (pickup), keeping display names, comments and
//! groups, and leaving other headers and the body alone; with
//! `canonical_classes` naming only the envelope, the headers keep their
//! addresses while the envelope is still rewritten.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::time::Duration;

use tests::{Instance, Options, header};

fn write_canonical(dir: &Path) {
    std::fs::write(
        dir.join("canonical"),
        "root@postern.test        Administrador@postern.test\n\
         ana.silva@postern.test   ana@postern.test\n",
    )
    .unwrap();
}

const MESSAGE: &str = "From: Root (o chefe) <root@postern.test>\r\n\
     To: Ana Silva <ana.silva@postern.test>, equipe: ana.silva@postern.test;\r\n\
     Cc: outro@example.org\r\n\
     Reply-To: root@postern.test\r\n\
     Subject: root@postern.test escreve\r\n\
     \r\n\
     assinado, root@postern.test\r\n";

fn start() -> Instance {
    Instance::start_with(Options {
        before_start: Some(write_canonical),
        users: vec!["ana:ana".into()],
        postconf: vec!["canonical_maps = hash:canonical".into()],
        ..Options::default()
    })
}

/// What the rewritten headers say, whichever way the mail came in.
fn assert_rewritten(text: &str) {
    assert!(text.starts_with("Return-Path: <Administrador@postern.test>"), "{text}");
    assert_eq!(header(text, "Delivered-To"), ["ana@postern.test"], "{text}");
    assert_eq!(header(text, "From"), ["Root (o chefe) <Administrador@postern.test>"], "{text}");
    assert_eq!(
        header(text, "To"),
        ["Ana Silva <ana@postern.test>, equipe: ana@postern.test;"],
        "{text}"
    );
    assert_eq!(header(text, "Cc"), ["outro@example.org"], "{text}");
    assert_eq!(header(text, "Reply-To"), ["Administrador@postern.test"], "{text}");
    assert_eq!(header(text, "Subject"), ["root@postern.test escreve"], "{text}");
    assert!(text.contains("\nassinado, root@postern.test\n"), "{text}");
}

#[test]
fn canonical_maps_rewrite_headers_via_smtpd_and_sendmail() {
    let inst = start();
    // smtpd: the envelope recipient is known through the canonical table.
    let mut c = inst.smtp();
    c.send_mail("root@postern.test", &["ana.silva@postern.test"], MESSAGE);
    c.cmd("QUIT", 221);
    assert_rewritten(&inst.one_mail("ana"));

    // sendmail -t: the recipients come from the headers, then both the
    // envelope and the headers are rewritten.
    inst.sendmail(&["-t", "-f", "root@postern.test"], &MESSAGE.replace("\r\n", "\n"));
    let files = inst.wait_for_mail("ana", 2, Duration::from_secs(20));
    assert_eq!(files.len(), 2, "{files:?}");
    let texts = inst.new_mail_texts("ana");
    let picked = texts.iter().find(|t| t.contains("(Postern, from userid")).unwrap_or_else(|| {
        panic!("no message from pickup: {texts:?}");
    });
    assert_rewritten(picked);
}

#[test]
fn canonical_classes_can_leave_headers_alone() {
    let inst = start();
    inst.set_and_reload(&["canonical_classes = envelope_sender, envelope_recipient"]);
    let mut c = inst.smtp();
    c.send_mail("root@postern.test", &["ana.silva@postern.test"], MESSAGE);
    c.cmd("QUIT", 221);
    let text = inst.one_mail("ana");
    // The envelope is rewritten...
    assert!(text.starts_with("Return-Path: <Administrador@postern.test>"), "{text}");
    assert_eq!(header(&text, "Delivered-To"), ["ana@postern.test"], "{text}");
    // ...the headers are as the client wrote them.
    assert_eq!(header(&text, "From"), ["Root (o chefe) <root@postern.test>"], "{text}");
    assert_eq!(
        header(&text, "To"),
        ["Ana Silva <ana.silva@postern.test>, equipe: ana.silva@postern.test;"],
        "{text}"
    );
}
