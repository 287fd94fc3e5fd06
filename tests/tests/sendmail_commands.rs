//! Item 4 of issue 2: the local submission path sendmail → maildrop →
//! pickup → queue: Debian's `mail -s` (bsd-mailx) pointed at our
//! sendmail, `sendmail -t -i` (Bcc removed), `-f`, `-bs`, and the output
//! shape of `mailq` / `postqueue -p`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use tests::{ChildGuard, Instance, Options, bin, header, wait_until};

#[test]
fn mail_s_with_bsd_mailx() {
    let Some(mailx) = ["/usr/bin/bsd-mailx", "/usr/bin/mail"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        tests::skip("bsd-mailx not installed (apt-get install bsd-mailx)");
        return;
    };
    let inst = Instance::start();
    let rc = inst.dir.join("mailrc");
    std::fs::write(&rc, format!("set sendmail={}\n", bin("sendmail").display())).unwrap();
    let mut child = Command::new(mailx)
        .args(["-s", "Teste", "suporte@postern.test"])
        .env("MAILRC", &rc)
        .env("HOME", &inst.dir)
        .env("POSTERN_CONFIG_DIR", &inst.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Teste de envio\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "mail -s: {out:?}");
    let text = inst.one_mail("suporte");
    assert_eq!(header(&text, "Subject"), vec!["Teste".to_string()], "{text}");
    assert!(text.contains("Teste de envio"), "{text}");
    assert_eq!(header(&text, "Delivered-To"), vec!["suporte@postern.test".to_string()]);
    assert_eq!(header(&text, "Message-Id").len(), 1, "{text}");
}

#[test]
fn sendmail_t_i_reads_recipients_and_drops_bcc() {
    let inst = Instance::start_with(Options {
        users: vec!["suporte:suporte".into(), "maria:m".into(), "joao:j".into()],
        ..Options::default()
    });
    inst.sendmail(
        &["-t", "-i"],
        "To: suporte@postern.test\nCc: maria@postern.test\nBcc: joao@postern.test\n\
         Subject: -t\n\nlinha\n.\nmais uma linha depois do ponto\n",
    );
    for user in ["suporte", "maria", "joao"] {
        let files = inst.wait_for_mail(user, 1, Duration::from_secs(20));
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(header(&text, "Bcc").is_empty(), "Bcc header delivered to {user}:\n{text}");
        // -i: a lone "." is data, not the end of the message.
        assert!(text.contains("mais uma linha depois do ponto"), "{text}");
    }
}

#[test]
fn sendmail_f_sets_envelope_sender() {
    let inst = Instance::start();
    inst.sendmail(&["-f", "boss@fiap.edu.br", "suporte@postern.test"], "Subject: -f\n\ncorpo\n");
    let text = inst.one_mail("suporte");
    assert!(text.starts_with("Return-Path: <boss@fiap.edu.br>"), "{text}");
}

#[test]
fn sendmail_bs_speaks_smtp_on_stdio() {
    let inst = Instance::start();
    let mut child = ChildGuard(
        inst.command("sendmail")
            .arg("-bs")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut reply = || {
        let lines =
            tests::smtp::read_reply(&mut out).unwrap_or_else(|e| panic!("sendmail -bs reply: {e}"));
        lines.last().cloned().unwrap_or_default()
    };
    assert!(reply().starts_with("220 "));
    let mut say = |line: &str, code: &str| {
        stdin.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let r = reply();
        assert!(r.starts_with(code), "{line} -> {r}");
        r
    };
    say("EHLO localhost", "250");
    say("MAIL FROM:<root@postern.test>", "250");
    say("RCPT TO:<suporte@postern.test>", "250");
    say("DATA", "354");
    let r = say("Subject: -bs\r\n\r\nvia -bs\r\n.", "250");
    assert!(r.contains("queued as"), "{r}");
    say("QUIT", "221");
    drop(stdin);
    let status = wait_until(Duration::from_secs(10), || child.0.try_wait().ok().flatten());
    assert!(status.is_some_and(|s| s.success()), "sendmail -bs did not exit 0 after QUIT");
    let text = inst.one_mail("suporte");
    assert!(text.contains("via -bs"), "{text}");
}

#[test]
fn mailq_and_postqueue_p_show_deferred_mail() {
    let inst = Instance::start();
    let empty = inst.mailq();
    assert_eq!(empty.trim(), "Mail queue is empty", "{empty}");
    let mut c = inst.smtp();
    let id =
        c.send_mail("root@postern.test", &["x@remote.example"], "Subject: fica\r\n\r\nfica\r\n");
    c.cmd("QUIT", 221);
    wait_until(Duration::from_secs(20), || {
        inst.queue_files("deferred").iter().any(|p| p.ends_with(&id)).then_some(())
    })
    .unwrap_or_else(|| panic!("{id} not in deferred/: {:?}", inst.queue_files("active")));
    let check = |out: &str, what: &str| {
        let lines: Vec<&str> = out.lines().collect();
        for col in ["Queue ID", "Size", "Arrival Time", "Sender/Recipient"] {
            assert!(lines[0].starts_with('-') && lines[0].contains(col), "{what} header: {out}");
        }
        let first = lines
            .iter()
            .find(|l| l.starts_with(&id))
            .unwrap_or_else(|| panic!("{what} has no line for {id}:\n{out}"));
        assert!(first.trim_end().ends_with("root@postern.test"), "{what}: {first}");
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with('(') && l.trim_end().ends_with(')')),
            "{what} shows no reason:\n{out}"
        );
        assert!(
            lines.iter().any(|l| l.trim() == "x@remote.example"),
            "{what}: no recipient line:\n{out}"
        );
        let last = lines.last().unwrap();
        assert!(
            last.starts_with("-- ") && last.ends_with(" Kbytes in 1 Request."),
            "{what} summary: {last}"
        );
    };
    check(&inst.mailq(), "postqueue -p");
    // sendmail answers to `mailq` by argv[0].
    let mailq = if bin("mailq").exists() {
        bin("mailq")
    } else {
        let link = inst.dir.join("mailq");
        std::os::unix::fs::symlink(bin("sendmail"), &link).unwrap();
        link
    };
    let out = Command::new(mailq).env("POSTERN_CONFIG_DIR", &inst.dir).output().unwrap();
    assert!(out.status.success(), "mailq: {out:?}");
    check(&String::from_utf8_lossy(&out.stdout), "mailq");
}
