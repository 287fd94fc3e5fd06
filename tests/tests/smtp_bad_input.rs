//! "Bad input" of issue 2 for the SMTP server: each gets a clear protocol
//! error and the server stays up with nothing lost or half-written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};
use tests::{Instance, smtp::Client, wait_until};

#[test]
fn protocol_errors_keep_the_session() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    // RFC 5321 4.5.3.1.4: a command line is at most 512 octets.
    c.send(&format!("NOOP {}", "x".repeat(595)));
    let r = c.expect_code(500);
    assert!(r.starts_with("500 5.5.2"), "{r}");
    c.cmd("NOOP", 250);
    c.send_raw(b"\x00\x01\xff\xfe garbage \x00\x7f\r\n");
    c.expect_code(500);
    c.cmd("NOOP", 250);
    c.send("RCPT TO:<suporte@postern.test>");
    assert!(c.expect_code(503).starts_with("503 5.5.1"));
    c.send("DATA");
    assert!(c.expect_code(503).starts_with("503 5.5.1"));
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    // Inside a transaction with no recipient Postfix answers
    // "554 5.5.1 Error: no valid recipients" (smtpd.c data_cmd).
    c.send("DATA");
    c.expect("554 5.5.1 Error: no valid recipients");
    c.cmd("RSET", 250);
    c.send("MAIL FROM:<a b@c>");
    assert!(c.expect_code(501).starts_with("501 5.1.7"));
    c.send_mail("root@postern.test", &["suporte@postern.test"], "Subject: depois\r\n\r\nok\r\n");
    c.cmd("QUIT", 221);
    assert!(inst.one_mail("suporte").contains("depois"));
}

#[test]
fn binary_garbage_session_then_server_still_up() {
    let inst = Instance::start();
    let mut c = Client::connect(&inst.addr("smtp"));
    c.expect_code(220);
    let junk: Vec<u8> = (0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    c.send_raw(&junk);
    c.send_raw(b"\r\n");
    drop(c);
    let mut c = inst.smtp();
    c.cmd("NOOP", 250);
    c.cmd("QUIT", 221);
}

#[test]
fn disconnect_in_data_queues_nothing() {
    let inst = Instance::start();
    {
        let mut c = inst.smtp();
        c.cmd("MAIL FROM:<root@postern.test>", 250);
        c.cmd("RCPT TO:<suporte@postern.test>", 250);
        c.cmd("DATA", 354);
        c.send_raw(b"Subject: cortada\r\n\r\nmetade de uma mensa");
    }
    // The server still answers, and leaves nothing behind.
    let mut c = inst.smtp();
    c.cmd("NOOP", 250);
    let clean = wait_until(Duration::from_secs(10), || {
        ["incoming", "active", "deferred", "tmp"]
            .iter()
            .all(|s| inst.queue_files(s).is_empty())
            .then_some(())
    });
    assert!(
        clean.is_some(),
        "queue not empty: incoming {:?} active {:?} deferred {:?} tmp {:?}",
        inst.queue_files("incoming"),
        inst.queue_files("active"),
        inst.queue_files("deferred"),
        inst.queue_files("tmp")
    );
    c.cmd("QUIT", 221);
    assert!(inst.new_mail("suporte").is_empty(), "a cut message was delivered");
}

#[test]
fn recipient_limit() {
    let inst = Instance::start();
    inst.set_and_reload(&["smtpd_recipient_limit = 3"]);
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    for _ in 0..3 {
        c.cmd("RCPT TO:<suporte@postern.test>", 250);
    }
    c.send("RCPT TO:<suporte@postern.test>");
    assert!(c.expect_code(452).starts_with("452 4.5.3"));
    c.cmd("QUIT", 221);
}

#[test]
fn idle_client_times_out() {
    let inst = Instance::start();
    inst.set_and_reload(&["smtpd_timeout=2s"]);
    let mut c = Client::connect(&inst.addr("smtp"));
    c.set_timeout(Duration::from_secs(15));
    c.expect_code(220);
    let t = Instant::now();
    c.expect("421 4.4.2 mail.postern.test Error: timeout exceeded");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(c.closed(), "not closed after 421");
}
