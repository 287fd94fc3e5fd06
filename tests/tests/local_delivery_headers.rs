//! Item 3 of issue 2: what local delivery writes — Maildir headers
//! (Return-Path, Delivered-To, Received with the queue id, Message-Id and
//! Date added only when absent), mbox when home_mailbox is empty, and
//! mailbox_command (a shell script, and procmail) run as the user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use tests::{Instance, Options, header, tutorial_message, wait_until};

#[test]
fn maildir_message_has_trace_headers() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("HELO mail.fiap.edu.br", 250);
    let id = c.send_mail("root@postern.test", &["suporte@postern.test"], tutorial_message());
    c.cmd("QUIT", 221);
    let text = inst.one_mail("suporte");
    assert!(
        text.starts_with("Return-Path: <root@postern.test>\n")
            || text.starts_with("Return-Path: <root@postern.test>\r\n"),
        "delivered file does not start with Return-Path:\n{text}"
    );
    assert_eq!(header(&text, "Delivered-To"), vec!["suporte@postern.test".to_string()]);
    let received = header(&text, "Received");
    let ours = received.first().unwrap_or_else(|| panic!("no Received header:\n{text}"));
    assert!(ours.starts_with("from mail.fiap.edu.br (localhost [127.0.0.1])"), "Received: {ours}");
    assert!(ours.contains(&id), "Received does not name queue id {id}: {ours}");
    assert_eq!(header(&text, "Message-Id").len(), 1, "Message-Id added once:\n{text}");
    assert_eq!(header(&text, "Date").len(), 1, "Date added once:\n{text}");
    assert!(text.contains("E-mail teste - Comandos SMTP"));
}

#[test]
fn message_id_and_date_kept_when_present() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Message-ID: <keep.1@fiap.edu.br>\r\nDate: Mon, 1 Jan 2024 10:00:00 -0300\r\n\
         Subject: kept\r\n\r\ncorpo\r\n",
    );
    let text = inst.one_mail("suporte");
    assert_eq!(header(&text, "Message-ID"), vec!["<keep.1@fiap.edu.br>".to_string()]);
    assert_eq!(header(&text, "Date"), vec!["Mon, 1 Jan 2024 10:00:00 -0300".to_string()]);
}

#[test]
fn empty_home_mailbox_delivers_to_mbox() {
    let inst = Instance::start();
    inst.set_and_reload(&["home_mailbox ="]);
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Subject: mbox\r\n\r\nFrom here on\r\nno maildir\r\n",
    );
    c.cmd("QUIT", 221);
    let mbox = inst.dir.join("mail/suporte");
    let text = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&mbox).ok().filter(|t| t.contains("no maildir"))
    })
    .unwrap_or_else(|| panic!("nothing delivered to {}", mbox.display()));
    assert!(
        text.starts_with("From root@postern.test "),
        "mbox does not start with a From line:\n{text}"
    );
    // mboxrd/o quoting of a body line starting with "From ".
    assert!(text.contains("\n>From here on"), "body From line not quoted:\n{text}");
    assert!(inst.new_mail("suporte").is_empty(), "also delivered to Maildir");
}

#[test]
fn mailbox_command_runs_as_user_with_env() {
    // The script lives outside the instance dir so it can be configured
    // before start (the reload path is covered by the mbox test).
    let scripts = tempfile::tempdir().unwrap();
    let out = scripts.path().join("cmd-out");
    let script = scripts.path().join("deliver.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"uid=$(id -u)\"; echo \"RECIPIENT=$RECIPIENT\"; \
             echo \"SENDER=$SENDER\"; echo \"HOME=$HOME\"; cat; }} > {o}.tmp && mv {o}.tmp {o}\n",
            o = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let inst = Instance::start_with(Options {
        postconf: vec![format!("mailbox_command = {}", script.display())],
        ..Options::default()
    });
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Subject: cmd\r\n\r\nvia comando\r\n",
    );
    c.cmd("QUIT", 221);
    let text = wait_until(Duration::from_secs(20), || std::fs::read_to_string(&out).ok())
        .unwrap_or_else(|| panic!("mailbox_command did not write {}", out.display()));
    let passwd = std::fs::read_to_string(inst.dir.join("passwd")).unwrap();
    let uid =
        passwd.lines().find(|l| l.starts_with("suporte:")).unwrap().split(':').nth(2).unwrap();
    assert!(text.contains(&format!("uid={uid}\n")), "{text}");
    assert!(text.contains("RECIPIENT=suporte@postern.test\n"), "{text}");
    assert!(text.contains("SENDER=root@postern.test\n"), "{text}");
    assert!(
        text.contains(&format!("HOME={}\n", inst.dir.join("home/suporte").display())),
        "{text}"
    );
    assert!(text.contains("via comando"), "{text}");
    assert!(inst.new_mail("suporte").is_empty(), "mailbox_command must win over home_mailbox");
}

#[test]
fn procmail_as_mailbox_command() {
    if !std::path::Path::new("/usr/bin/procmail").exists() {
        tests::skip("procmail not installed (apt-get install procmail)");
        return;
    }
    // The instance's virtual users share the uid of whoever runs the test
    // (root in CI), and procmail in delivery mode takes HOME and the
    // system mailbox from the passwd entry of its uid, not from the
    // environment (it would touch /var/mail/root). So procmail runs as a
    // filter (-m) on an rcfile named through $HOME, which the shell
    // expands from the environment local delivery sets; the rcfile holds
    // the tutorial's MAILDIR/DEFAULT lines with absolute paths.
    let inst = Instance::start_with(Options {
        postconf: vec![
            "mailbox_command = /usr/bin/procmail -a \"$EXTENSION\" -m $HOME/.procmailrc".into(),
        ],
        ..Options::default()
    });
    let home = inst.dir.join("home/suporte");
    let log = home.join("procmail.log");
    let rc = home.join(".procmailrc");
    // LOGFILE proves procmail itself did the delivery.
    let md = home.join("Maildir");
    std::fs::write(
        &rc,
        format!(
            "LOGFILE={log}\nMAILDIR={md}/\nDEFAULT={md}/\n:0\n{md}/\n",
            log = log.display(),
            md = md.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        "Subject: procmail\r\n\r\nvia procmail\r\n",
    );
    c.cmd("QUIT", 221);
    let text = inst.one_mail("suporte");
    assert!(text.contains("via procmail"), "{text}");
    let log = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("procmail did not run (no {}: {e})", log.display()));
    assert!(log.contains("Subject: procmail") && log.contains("Folder:"), "{log}");
}
