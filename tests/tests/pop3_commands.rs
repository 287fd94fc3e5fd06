//! Issue 9: every POP3 command on a real instance (RFC 1939, CAPA, AUTH
//! PLAIN), the octet counts against the bytes RETR sends, dot-stuffing,
//! deletions applied only at QUIT, UIDL stable across sessions, pipelining,
//! and the IN-USE lock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::Instance;
use tests::pop3::Client;

/// Delivers `n` numbered messages to suporte through smtpd, in order.
fn deliver(inst: &Instance, bodies: &[&str]) {
    let before = inst.new_mail("suporte").len();
    for (i, body) in bodies.iter().enumerate() {
        let mut c = inst.smtp();
        c.cmd("HELO test", 250);
        c.send_mail(
            "root@postern.test",
            &["suporte@postern.test"],
            &format!("Subject: message {}\r\n\r\n{body}", i + 1),
        );
        c.cmd("QUIT", 221);
        inst.wait_for_mail("suporte", before + i + 1, Duration::from_secs(20));
    }
}

fn pop3(inst: &Instance) -> Client {
    Client::logged_in(&inst.addr("pop3"), "suporte", "suporte")
}

#[test]
fn every_command() {
    let inst = Instance::start();
    // Stuffed for SMTP's DATA: stored as ".leading dot", "..two", ".".
    deliver(&inst, &["first\r\n", "..leading dot\r\n...two\r\nline\r\n..\r\nend\r\n", "third\r\n"]);
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    c.ok("CAPA");
    assert_eq!(
        c.lines(),
        ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN", "STLS"]
    );
    c.ok("NOOP");
    c.err("APOP suporte 0123456789abcdef0123456789abcdef");
    c.login("suporte", "suporte");
    c.ok("CAPA");
    let capa = c.lines();
    assert!(!capa.contains(&"USER".to_string()) && !capa.contains(&"STLS".to_string()), "{capa:?}");

    let stat = c.ok("STAT");
    let parts: Vec<&str> = stat.split(' ').collect();
    assert_eq!(parts[1], "3", "{stat}");
    let total: u64 = parts[2].parse().unwrap();
    assert!(c.ok("LIST").starts_with("+OK 3 messages"));
    let list = c.lines();
    assert_eq!(list.len(), 3);
    let sizes: Vec<u64> =
        list.iter().map(|l| l.split(' ').nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(sizes.iter().sum::<u64>(), total);
    assert_eq!(c.ok("LIST 2"), format!("+OK 2 {}", sizes[1]));
    // RETR sends exactly the octets LIST announced, unstuffed.
    for (i, size) in sizes.iter().enumerate() {
        assert_eq!(c.ok(&format!("RETR {}", i + 1)), format!("+OK {size} octets"));
        let body = c.body();
        assert_eq!(body.len() as u64, *size, "message {}", i + 1);
    }
    c.ok("RETR 2");
    let body = String::from_utf8(c.body()).unwrap();
    assert!(body.ends_with("\r\n\r\n.leading dot\r\n..two\r\nline\r\n.\r\nend\r\n"), "{body:?}");
    // TOP: the header, the blank line, n body lines.
    c.ok("TOP 2 0");
    let top = String::from_utf8(c.body()).unwrap();
    assert!(top.contains("Subject: message 2\r\n") && top.ends_with("\r\n\r\n"), "{top:?}");
    c.ok("TOP 2 2");
    let top = String::from_utf8(c.body()).unwrap();
    assert!(top.ends_with("\r\n\r\n.leading dot\r\n..two\r\n"), "{top:?}");

    c.ok("UIDL");
    let uidl = c.lines();
    assert_eq!(uidl.len(), 3);
    for (i, l) in uidl.iter().enumerate() {
        let (n, id) = l.split_once(' ').unwrap();
        assert_eq!(n, (i + 1).to_string());
        // Dovecot's %08Xu%08Xv: UID then UIDVALIDITY in hex.
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()), "{id}");
        assert_eq!(&id[..8], format!("{:08X}", i + 1));
    }
    assert_eq!(c.ok("UIDL 3"), format!("+OK 3 {}", uidl[2].split(' ').nth(1).unwrap()));

    assert_eq!(c.ok("DELE 1"), "+OK Marked to be deleted.");
    assert_eq!(c.err("DELE 1"), "-ERR Message is deleted.");
    assert_eq!(c.err("RETR 1"), "-ERR Message is deleted.");
    assert_eq!(c.err("LIST 1"), "-ERR Message is deleted.");
    assert_eq!(c.ok("STAT"), format!("+OK 2 {}", total - sizes[0]));
    assert_eq!(c.ok("RSET"), format!("+OK 3 messages ({total} octets)"));
    c.ok("RETR 1");
    c.body();
    c.ok("DELE 1");
    c.ok("DELE 3");
    // Deletions are marks until QUIT: the files are still there.
    let on_disk = || {
        let md = inst.maildir("suporte");
        std::fs::read_dir(md.join("cur")).unwrap().count()
            + std::fs::read_dir(md.join("new")).unwrap().count()
    };
    assert_eq!(on_disk(), 3);
    assert_eq!(c.ok("QUIT"), "+OK Logging out, messages deleted.");
    assert!(c.closed());
    assert_eq!(on_disk(), 1);

    let mut c = pop3(&inst);
    assert_eq!(c.ok("STAT"), format!("+OK 1 {}", sizes[1]));
    c.ok("UIDL");
    assert_eq!(c.lines(), [format!("1 {}", uidl[1].split(' ').nth(1).unwrap())]);
    assert_eq!(c.ok("QUIT"), "+OK Logging out.");
}

#[test]
fn uidl_is_stable_and_new_mail_shows_in_the_next_session() {
    let inst = Instance::start();
    deliver(&inst, &["a\r\n", "b\r\n"]);
    let mut c = pop3(&inst);
    c.ok("UIDL");
    let first = c.lines();
    // Mail arriving during a session shows in the next one.
    deliver(&inst, &["c\r\n"]);
    assert!(c.ok("STAT").starts_with("+OK 2 "));
    c.ok("QUIT");
    let mut c = pop3(&inst);
    c.ok("UIDL");
    let second = c.lines();
    assert_eq!(second.len(), 3);
    assert_eq!(second[..2], first[..]);
    c.ok("QUIT");
    // Retrieving (new/ -> cur/) does not change the ids either.
    let mut c = pop3(&inst);
    for i in 1..=3 {
        c.ok(&format!("RETR {i}"));
        c.body();
    }
    c.ok("QUIT");
    let mut c = pop3(&inst);
    c.ok("UIDL");
    assert_eq!(c.lines(), second);
    c.ok("QUIT");
}

#[test]
fn auth_plain_and_wrong_passwords() {
    let inst = Instance::start();
    deliver(&inst, &["x\r\n"]);
    // suporte\0suporte with an initial response (RFC 5034).
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    c.send("AUTH PLAIN AHN1cG9ydGUAc3Vwb3J0ZQ==");
    assert_eq!(c.line(), "+OK Logged in.");
    assert!(c.ok("STAT").starts_with("+OK 1 "));
    c.ok("QUIT");
    // Without one: an empty challenge, then the response.
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    c.send("AUTH PLAIN");
    assert_eq!(c.line(), "+ ");
    c.send("AHN1cG9ydGUAc3Vwb3J0ZQ==");
    assert_eq!(c.line(), "+OK Logged in.");
    c.ok("QUIT");
    // Cancelled, unknown mechanism, wrong password: [AUTH], and the
    // session goes on.
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    c.send("AUTH PLAIN");
    assert_eq!(c.line(), "+ ");
    c.send("*");
    assert!(c.line().starts_with("-ERR"));
    c.err("AUTH CRAM-MD5");
    c.ok("USER suporte");
    assert_eq!(c.err("PASS wrong"), "-ERR [AUTH] Authentication failed.");
    c.ok("USER nobody-here");
    assert_eq!(c.err("PASS suporte"), "-ERR [AUTH] Authentication failed.");
    c.login("suporte", "suporte");
    c.ok("QUIT");
}

#[test]
fn pipelined_commands_in_one_write() {
    let inst = Instance::start();
    deliver(&inst, &["one\r\n", "two\r\n"]);
    let mut c = Client::connect(&inst.addr("pop3"));
    c.send_raw(b"USER suporte\r\nPASS suporte\r\nSTAT\r\nLIST 2\r\nDELE 1\r\nQUIT\r\n");
    c.greeting();
    c.expect("+OK");
    c.expect("+OK Logged in.");
    assert!(c.line().starts_with("+OK 2 "));
    assert!(c.line().starts_with("+OK 2 "));
    c.expect("+OK Marked to be deleted.");
    c.expect("+OK Logging out, messages deleted.");
    assert!(c.closed());
}

#[test]
fn one_session_per_mailbox() {
    let inst = Instance::start();
    deliver(&inst, &["x\r\n"]);
    let mut first = pop3(&inst);
    let mut second = Client::connect(&inst.addr("pop3"));
    second.greeting();
    second.ok("USER suporte");
    assert_eq!(
        second.err("PASS suporte"),
        "-ERR [IN-USE] Mailbox is locked by another POP3 session."
    );
    assert!(second.closed());
    // The first session is unaffected, and once it ends the next one works.
    first.ok("DELE 1");
    first.ok("QUIT");
    let mut third = pop3(&inst);
    assert_eq!(third.ok("STAT"), "+OK 0 0");
    third.ok("QUIT");
}
