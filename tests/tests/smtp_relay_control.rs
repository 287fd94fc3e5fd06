//! Item 8 of issue 2: relay control and limits — remote mail from
//! mynetworks stays deferred (never bounced), relay denied outside
//! mynetworks, unknown local users rejected, message_size_limit enforced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, wait_until};

#[test]
fn remote_mail_from_mynetworks_stays_deferred() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    let id = c.send_mail(
        "root@postern.test",
        &["x@remote.example"],
        "Subject: remoto\r\n\r\nremoto\r\n",
    );
    c.cmd("QUIT", 221);
    wait_until(Duration::from_secs(20), || {
        inst.queue_files("deferred").iter().any(|p| p.ends_with(&id)).then_some(())
    })
    .unwrap_or_else(|| panic!("{id} never reached deferred/"));
    let q = inst.mailq();
    assert!(q.lines().any(|l| l.starts_with(&id)), "{q}");
    assert!(q.lines().any(|l| l.trim() == "x@remote.example"), "{q}");
    assert!(q.lines().any(|l| l.trim_start().starts_with('(')), "no reason shown:\n{q}");
    // Never bounced: root (aliased to suporte) got no DSN, the file stays.
    assert!(inst.new_mail("suporte").is_empty(), "a bounce was delivered");
    assert!(inst.queue_files("deferred").iter().any(|p| p.ends_with(&id)));
}

#[test]
fn relay_denied_outside_mynetworks() {
    let inst = Instance::start();
    inst.set_and_reload(&["mynetworks = 10.9.9.0/24"]);
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.send("RCPT TO:<x@remote.example>");
    c.expect("554 5.7.1 <x@remote.example>: Relay access denied");
    // Our own domains are still accepted from anywhere.
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("QUIT", 221);
}

#[test]
fn unknown_local_user_rejected() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.send("RCPT TO:<nobody@postern.test>");
    c.expect(
        "550 5.1.1 <nobody@postern.test>: Recipient address rejected: User unknown in local recipient table",
    );
    // Aliases are local recipients too.
    c.cmd("RCPT TO:<root@postern.test>", 250);
    // VRFY is off by default (Postern's default differs from Postfix's).
    c.send("VRFY suporte");
    c.expect("502 5.5.1 VRFY command is disabled");
    c.cmd("QUIT", 221);
    inst.set_and_reload(&["disable_vrfy_command = no"]);
    let mut c = inst.smtp();
    // Once on, VRFY answers as RCPT decides, as Postfix does.
    c.send("VRFY suporte");
    c.expect("252 2.0.0 suporte");
    c.send("VRFY <nobody@postern.test>");
    c.expect(
        "550 5.1.1 <nobody@postern.test>: Recipient address rejected: User unknown in local recipient table",
    );
    c.cmd("QUIT", 221);
}

#[test]
fn message_over_size_limit_rejected() {
    let inst = Instance::start();
    inst.set_and_reload(&["message_size_limit=1000"]);
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("DATA", 354);
    let mut body = String::from("Subject: grande\r\n\r\n");
    while body.len() < 2000 {
        body.push_str("0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    }
    c.send_raw(body.as_bytes());
    c.send_raw(b".\r\n");
    c.expect("552 5.3.4 Message size exceeds fixed limit");
    // The session goes on, and a small message still passes.
    c.send_mail("root@postern.test", &["suporte@postern.test"], "Subject: pequena\r\n\r\nok\r\n");
    c.cmd("QUIT", 221);
    let text = inst.one_mail("suporte");
    assert!(text.contains("pequena"), "{text}");
}
