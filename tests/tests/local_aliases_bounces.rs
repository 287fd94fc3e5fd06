//! Local delivery beyond a plain user: the aliases file (`root: suporte`,
//! an alias added while running, `newaliases`), `recipient_delimiter`,
//! forwarding-loop detection through Delivered-To, and non-delivery
//! reports to the sender for recipients that fail at delivery time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, Options, header};

const WAIT: Duration = Duration::from_secs(30);

fn users() -> Options {
    Options { users: vec!["maria:segredo".into()], ..Options::default() }
}

#[test]
fn root_alias_and_alias_added_while_running() {
    let inst = Instance::start_with(users());
    let mut c = inst.smtp();
    // init --dev writes `root: suporte`, as the tutorial's readers expect.
    c.send_mail(
        "maria@postern.test",
        &["root@postern.test"],
        "Subject: to root\r\n\r\nhello root\r\n",
    );
    let msgs = inst.wait_for_mail("suporte", 1, WAIT);
    let text = std::fs::read_to_string(&msgs[0]).unwrap();
    assert!(text.contains("hello root"), "{text}");

    // An alias added to the file takes effect without a restart;
    // newaliases checks the file and is silent when it is fine.
    let aliases = inst.dir.join("aliases");
    let mut a = std::fs::read_to_string(&aliases).unwrap();
    a.push_str("vendas: suporte, maria\n");
    std::fs::write(&aliases, a).unwrap();
    let out = inst.command("newaliases").output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "newaliases: {out:?}");
    c.send_mail(
        "root@postern.test",
        &["vendas@postern.test"],
        "Subject: vendas\r\n\r\nfor the team\r\n",
    );
    inst.wait_for_mail("suporte", 2, WAIT);
    inst.wait_for_mail("maria", 1, WAIT);
    c.cmd("QUIT", 221);

    // A broken line is reported by newaliases with file and line.
    let mut a = std::fs::read_to_string(&aliases).unwrap();
    a.push_str("this line has no colon\n");
    std::fs::write(&aliases, a).unwrap();
    let out = inst.command("newaliases").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newaliases: warning:") && err.contains("aliases:"), "{err}");
}

#[test]
fn recipient_delimiter_delivers_extension_to_the_user() {
    let inst = Instance::start_with(Options {
        postconf: vec!["recipient_delimiter = +".into()],
        ..Options::default()
    });
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte+news@postern.test"],
        "Subject: ext\r\n\r\nwith extension\r\n",
    );
    let msgs = inst.wait_for_mail("suporte", 1, WAIT);
    let text = std::fs::read_to_string(&msgs[0]).unwrap();
    assert!(text.contains("with extension"));
    assert_eq!(
        header(&text, "Delivered-To"),
        vec!["suporte+news@postern.test".to_string()],
        "{text}"
    );
    c.cmd("QUIT", 221);
}

#[test]
fn forwarding_loop_and_unknown_user_bounce_to_sender() {
    let inst = Instance::start_with(users());
    let aliases = inst.dir.join("aliases");
    let mut a = std::fs::read_to_string(&aliases).unwrap();
    a.push_str("ghost: nosuchuser\n");
    std::fs::write(&aliases, a).unwrap();

    let mut c = inst.smtp();
    // The message says it was already delivered to suporte: a loop.
    c.send_mail(
        "maria@postern.test",
        &["suporte@postern.test"],
        "Delivered-To: suporte@postern.test\r\nSubject: looping\r\n\r\nround and round\r\n",
    );
    // smtpd accepts the alias; local delivery finds no such user.
    c.send_mail("maria@postern.test", &["ghost@postern.test"], "Subject: to ghost\r\n\r\nboo\r\n");
    c.cmd("QUIT", 221);

    let bounces = inst.wait_for_mail("maria", 2, WAIT);
    let texts: Vec<String> = bounces.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    for t in &texts {
        assert!(t.contains("Subject: Undelivered Mail Returned to Sender"), "{t}");
        assert!(t.contains("Return-Path: <>"), "a bounce has the null sender: {t}");
        assert!(t.contains("Content-Type: message/delivery-status"), "{t}");
    }
    let all = texts.join("\n");
    assert!(
        all.contains("Status: 5.4.6")
            && all.contains("mail forwarding loop for suporte@postern.test"),
        "{all}"
    );
    assert!(all.contains("Status: 5.1.1") && all.contains("unknown user: \"nosuchuser\""), "{all}");
    assert!(
        all.contains("Subject: looping") && all.contains("Subject: to ghost"),
        "original headers attached: {all}"
    );
    assert!(!all.contains("round and round"), "bodies are not returned: {all}");
    // Nothing reached suporte, and the queue is empty again.
    assert!(inst.new_mail("suporte").is_empty());
    let empty = tests::wait_until(WAIT, || {
        ["incoming", "active", "deferred"]
            .iter()
            .all(|s| inst.queue_files(s).is_empty())
            .then_some(())
    });
    assert!(empty.is_some(), "queue not empty: {:?}", inst.mailq());
}

#[test]
fn alias_to_remote_address_is_forwarded_and_waits_for_the_smtp_client() {
    let inst = Instance::start();
    let aliases = inst.dir.join("aliases");
    let mut a = std::fs::read_to_string(&aliases).unwrap();
    a.push_str("fora: someone@remote.example\n");
    std::fs::write(&aliases, a).unwrap();
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["fora@postern.test"],
        "Subject: forward me\r\n\r\nout you go\r\n",
    );
    c.cmd("QUIT", 221);
    // The forwarded copy is a new message for the remote address; the dev
    // instance does no DNS lookups, so the SMTP client defers it (never a
    // bounce) until an operator configures DNS or a relayhost.
    let q = tests::wait_until(WAIT, || {
        // The directories first (a listing taken before them could still
        // show the original, removed just after), in the order a file
        // moves, so one moving meanwhile is not missed in both.
        let idle = inst.queue_files("incoming").is_empty() && inst.queue_files("active").is_empty();
        let q = inst.mailq();
        let settled =
            idle && q.contains("someone@remote.example") && q.contains("DNS lookups disabled");
        settled.then_some(q)
    })
    .unwrap_or_else(|| panic!("forwarded copy not in the queue: {}", inst.mailq()));
    assert!(!q.contains("fora@postern.test"), "the original was delivered by forwarding: {q}");
    let deferred = inst.queue_files("deferred");
    assert_eq!(deferred.len(), 1, "{q}");
    let text = String::from_utf8_lossy(&std::fs::read(&deferred[0]).unwrap()).into_owned();
    assert!(
        text.contains("Delivered-To: fora@postern.test"),
        "forwarded copy marks the alias: {text}"
    );
}
