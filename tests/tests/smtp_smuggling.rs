//! SMTP smuggling (the CVE-2023-51764 class): a "." line ended by a bare
//! LF must not end DATA, or text after it runs as new commands (a second
//! message from a forged sender). RFC 5321 §4.1.1.4 ends the data only at
//! `CRLF . CRLF`; the bare-LF dot is kept as message text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, wait_until};

#[test]
fn bare_lf_dot_does_not_end_data() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(
        b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@example.com>\r\n\
          RCPT TO:<suporte@postern.test>\r\nDATA\r\nFrom: evil@example.com\r\n\r\n\
          smuggled\r\n.\r\n",
    );
    // Exactly one reply for the whole payload: the message is queued once,
    // and nothing in it was answered as a command.
    let r = c.reply();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("250 2.0.0 Ok: queued as "), "{r:?}");
    // The next reply belongs to the next command, not to a smuggled one.
    c.send("QUIT");
    let r = c.reply();
    assert!(r.len() == 1 && r[0].starts_with("221"), "{r:?}");
    assert!(c.closed());

    let text = inst.one_mail("suporte");
    assert!(text.contains("Subject: a"), "{text}");
    assert!(text.contains("MAIL FROM:<evil@example.com>"), "{text}");
    assert!(text.contains("smuggled"), "{text}");

    // Let the queue drain, then check no second message slipped through.
    let drained = wait_until(Duration::from_secs(10), || {
        ["incoming", "active", "deferred"]
            .iter()
            .all(|s| inst.queue_files(s).is_empty())
            .then_some(())
    });
    assert!(drained.is_some(), "queue did not drain");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inst.new_mail("suporte").len(), 1, "a smuggled message was delivered");
}

#[test]
fn crlf_dot_after_bare_lf_lines_still_ends_data() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("DATA", 354);
    // Bare LFs end lines inside the message; a "." right after one is text.
    c.send_raw(b"Subject: lf\n\nline one\n.\r\nline two\r\n.\r\n");
    let r = c.expect_code(250);
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("NOOP", 250);
    c.cmd("QUIT", 221);
    let text = inst.one_mail("suporte");
    assert!(text.contains("line one\n.\nline two\n"), "{text}");
}
