//! Item 2 of issue 5: the tutorial's message sent by real SMTP clients
//! from Debian, `swaks` and `curl`, arrives in the Maildir with its
//! headers and body bytes intact, and each client sees success (exit 0,
//! our replies in its transcript) or the refusal of an unknown user.
//! Without the tool the test says `skipped: ...` (the test runner
//! installs both as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::{Command, Output};
use tests::{Instance, have_tool, header, is_queue_id, skip, tutorial_message};

/// The body of the tutorial's message: everything after its first blank
/// line (`To:` and `Subject:` are body text there), CRLF as sent.
const TUTORIAL_BODY: &str = "To: Nome do Destinatario <ubuntu@fiap.edu.br>\r\n\
                             Subject: Teste de Comandos SMTP\r\n\
                             E-mail teste - Comandos SMTP\r\n";

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{cmd:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    (out, stdout, stderr)
}

/// The delivered file split at its first blank line, line ends as stored.
fn split_message(text: &str) -> (&str, &str) {
    text.split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or_else(|| panic!("no blank line after the headers:\n{text}"))
}

/// Line ends as the Maildir file has them (`\n` or `\r\n`).
fn stored(text: &str, eol: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', eol)
}

fn eol_of(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// The trace headers local delivery adds, for a message from root.
fn assert_trace_headers(text: &str, id: &str) {
    assert_eq!(header(text, "Return-Path"), vec!["<root@postern.test>".to_string()], "{text}");
    assert_eq!(header(text, "Delivered-To"), vec!["suporte@postern.test".to_string()], "{text}");
    let received = header(text, "Received");
    let ours = received.first().unwrap_or_else(|| panic!("no Received header:\n{text}"));
    assert!(ours.starts_with("from mail.fiap.edu.br (localhost [127.0.0.1])"), "Received: {ours}");
    assert!(ours.contains(id), "Received does not name queue id {id}: {ours}");
}

#[test]
fn swaks_sends_the_tutorial_message() {
    if !have_tool("swaks") {
        skip("swaks not installed (apt-get install swaks)");
        return;
    }
    let inst = Instance::start();
    let (out, transcript, _) = run(Command::new("swaks")
        .args(["--server", &inst.addr("smtp")])
        .args(["--helo", "mail.fiap.edu.br"])
        .args(["--from", "root@postern.test", "--to", "suporte@postern.test"])
        .args(["--header", "Subject: Teste de Comandos SMTP"])
        .args(["--body", "E-mail teste - Comandos SMTP"]));
    assert!(out.status.success(), "swaks exited {:?}", out.status);
    // swaks marks what it received with "<-" and what it sent with "->".
    for want in [
        "<-  220 mail.postern.test ESMTP Postern",
        " -> EHLO mail.fiap.edu.br",
        "<-  250-mail.postern.test",
        " -> MAIL FROM:<root@postern.test>",
        "<-  250 2.1.0 Ok",
        " -> RCPT TO:<suporte@postern.test>",
        "<-  250 2.1.5 Ok",
        "<-  354 End data with <CR><LF>.<CR><LF>",
        "<-  221 2.0.0 Bye",
    ] {
        assert!(transcript.lines().any(|l| l == want), "swaks transcript lacks {want:?}");
    }
    let id = transcript
        .lines()
        .find_map(|l| l.strip_prefix("<-  250 2.0.0 Ok: queued as "))
        .unwrap_or_else(|| panic!("no queue id in the swaks transcript"));
    assert!(is_queue_id(id), "{id:?}");

    // What swaks sent between 354 and the final dot: its headers, a
    // blank line, the body.
    let sent: Vec<&str> = transcript
        .lines()
        .skip_while(|l| !l.starts_with("<-  354 "))
        .skip(1)
        .map_while(|l| l.strip_prefix(" -> ").filter(|l| *l != "."))
        .collect();
    let blank = sent.iter().position(|l| l.is_empty()).expect("blank line in what swaks sent");
    let (sent_head, sent_body) = (&sent[..blank], &sent[blank + 1..]);
    assert!(sent_body.contains(&"E-mail teste - Comandos SMTP"), "{sent_body:?}");

    let text = inst.one_mail("suporte");
    assert_trace_headers(&text, id);
    assert_eq!(header(&text, "Subject"), vec!["Teste de Comandos SMTP".to_string()]);
    assert_eq!(header(&text, "From"), vec!["root@postern.test".to_string()]);
    assert_eq!(header(&text, "To"), vec!["suporte@postern.test".to_string()]);
    // Every header swaks wrote (its own Date and Message-Id too) is kept
    // once, in its order, after the ones local delivery and smtpd add.
    let (head, body) = split_message(&text);
    let eol = eol_of(&text);
    let ours = head.split(eol).skip_while(|l| *l != sent_head[0]).collect::<Vec<_>>();
    assert_eq!(ours, sent_head, "swaks's headers as stored:\n{text}");
    assert_eq!(header(&text, "Message-Id").len(), 1, "{text}");
    assert_eq!(header(&text, "Date").len(), 1, "{text}");
    let want: String = sent_body.iter().map(|l| format!("{l}{eol}")).collect();
    assert_eq!(body, want, "body bytes");
}

#[test]
fn swaks_to_an_unknown_user_is_refused() {
    if !have_tool("swaks") {
        skip("swaks not installed (apt-get install swaks)");
        return;
    }
    let inst = Instance::start();
    let (out, transcript, _) = run(Command::new("swaks")
        .args(["--server", &inst.addr("smtp")])
        .args(["--from", "root@postern.test", "--to", "ninguem@postern.test"]));
    // swaks: exit 24 is "the server rejected every recipient".
    assert_eq!(out.status.code(), Some(24), "swaks exit status");
    assert!(
        transcript.lines().any(|l| l.starts_with("<** 550 5.1.1 ")),
        "no 550 5.1.1 in the swaks transcript"
    );
    assert!(inst.new_mail("suporte").is_empty());
}

/// Uploads the tutorial message with curl to `rcpt`; curl's exit status
/// and its `--verbose` transcript.
fn curl_upload(inst: &Instance, rcpt: &str) -> (std::process::Output, String) {
    let file = inst.dir.join("tutorial.eml");
    std::fs::write(&file, tutorial_message()).unwrap();
    // The URL's path is the name curl says in EHLO.
    let url = format!("smtp://{}/mail.fiap.edu.br", inst.addr("smtp"));
    let (out, _, transcript) = run(Command::new("curl")
        .args(["--silent", "--show-error", "--verbose", &url])
        .args(["--mail-from", "root@postern.test", "--mail-rcpt", rcpt])
        .arg("--upload-file")
        .arg(&file));
    (out, transcript)
}

#[test]
fn curl_uploads_the_tutorial_message() {
    if !have_tool("curl") {
        skip("curl not installed (apt-get install curl)");
        return;
    }
    let inst = Instance::start();
    let (out, transcript) = curl_upload(&inst, "suporte@postern.test");
    assert!(out.status.success(), "curl exited {:?}", out.status);
    // curl -v marks what it received with "<" and what it sent with ">".
    let mail_from = format!("> MAIL FROM:<root@postern.test> SIZE={}", tutorial_message().len());
    let upload = format!("}} [{} bytes data]", tutorial_message().len());
    for want in [
        "< 220 mail.postern.test ESMTP Postern",
        "> EHLO mail.fiap.edu.br",
        "< 250-8BITMIME",
        "< 250 CHUNKING",
        &mail_from,
        "< 250 2.1.0 Ok",
        "> RCPT TO:<suporte@postern.test>",
        "< 250 2.1.5 Ok",
        "< 354 End data with <CR><LF>.<CR><LF>",
        &upload,
    ] {
        assert!(transcript.lines().any(|l| l == want), "curl transcript lacks {want:?}");
    }
    let id = transcript
        .lines()
        .find_map(|l| l.strip_prefix("< 250 2.0.0 Ok: queued as "))
        .unwrap_or_else(|| panic!("no queue id in the curl transcript"));
    assert!(is_queue_id(id), "{id:?}");

    let text = inst.one_mail("suporte");
    assert_trace_headers(&text, id);
    assert_eq!(header(&text, "From"), vec!["Nome do Remetente <root@fiap.edu.br>".to_string()]);
    // To: and Subject: follow the blank line: body text, not headers.
    assert!(header(&text, "Subject").is_empty(), "{text}");
    assert!(header(&text, "To").is_empty(), "{text}");
    let (_, body) = split_message(&text);
    assert_eq!(body, stored(TUTORIAL_BODY, eol_of(&text)), "body bytes");
}

#[test]
fn curl_to_an_unknown_user_fails() {
    if !have_tool("curl") {
        skip("curl not installed (apt-get install curl)");
        return;
    }
    let inst = Instance::start();
    let (out, transcript) = curl_upload(&inst, "ninguem@postern.test");
    // curl: exit 55 is "failed sending network data", its code for a
    // refused RCPT.
    assert_eq!(out.status.code(), Some(55), "curl exit status");
    assert!(
        transcript.lines().any(|l| l.starts_with("< 550 5.1.1 ")),
        "no 550 5.1.1 in the curl transcript"
    );
    assert!(inst.new_mail("suporte").is_empty());
}
