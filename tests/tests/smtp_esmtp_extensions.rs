//! Issue 7, the ESMTP extensions end to end: DSN parameters stored in
//! the queue file (RFC 3461), BDAT/CHUNKING (RFC 3030) delivering the
//! chunks' bytes to a Maildir, SMTPUTF8 (RFC 6531) addresses through
//! the queue to local delivery and refused without it, and the limits a
//! client can push: a header block that never ends, NUL octets, 10,000
//! pipelined recipients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use mail_types::esmtp::{Body, Notify, Orcpt, Ret};
use tests::{Instance, smtp, wait_until};

/// The message body after the headers local delivery and cleanup add.
fn body_of(text: &str) -> &str {
    text.split_once("\n\n").map_or("", |(_, b)| b)
}

/// Waits for message `id` in `deferred/` and reads its queue file.
fn deferred_file(inst: &Instance, id: &str) -> mail_queue::QueueFile {
    let path = wait_until(Duration::from_secs(20), || {
        inst.queue_files("deferred").into_iter().find(|p| p.ends_with(id))
    })
    .unwrap_or_else(|| panic!("{id} never reached deferred/"));
    mail_queue::format::read(&path).unwrap()
}

#[test]
fn ehlo_lists_the_extensions_in_postfix_order() {
    let inst = Instance::start();
    let mut c = smtp::Client::connect(&inst.addr("smtp"));
    c.expect_code(220);
    let lines = c.ehlo("client.postern.test");
    let names: Vec<&str> = lines.iter().skip(1).map(|l| &l[4..]).collect();
    assert_eq!(
        names,
        [
            "PIPELINING",
            "SIZE 10240000",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING"
        ],
        "{lines:?}"
    );
    c.send("HELP");
    assert!(c.expect_code(214).starts_with("214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT"));
    c.cmd("QUIT", 221);
}

#[test]
fn dsn_parameters_are_stored_in_the_queue_file() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test> RET=HDRS ENVID=QQ+2B314 BODY=8BITMIME", 250);
    c.cmd(
        "RCPT TO:<x@remote.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Orig+2Bx@remote.example",
        250,
    );
    c.cmd("RCPT TO:<y@remote.example> NOTIFY=NEVER", 250);
    c.cmd("RCPT TO:<z@remote.example>", 250);
    c.send("RCPT TO:<w@remote.example> NOTIFY=NEVER,SUCCESS");
    c.expect("501 5.5.4 Error: Bad NOTIFY parameter syntax");
    c.send("RCPT TO:<w@remote.example> ORCPT=rfc822");
    c.expect("501 5.5.4 Error: Bad ORCPT parameter syntax");
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: dsn\r\n\r\ncorpo\r\n.\r\n");
    let id = c.expect_code(250).rsplit(' ').next().unwrap().to_owned();
    c.send("MAIL FROM:<root@postern.test> RET=SOME");
    c.expect("501 5.5.4 Bad RET parameter syntax");
    c.send(&format!("MAIL FROM:<root@postern.test> ENVID={}", "e".repeat(101)));
    c.expect("501 5.5.4 Bad ENVID parameter syntax");
    c.send("MAIL FROM:<root@postern.test> BODY=BINARYMIME");
    c.expect("555 5.5.4 Unsupported option: BODY=BINARYMIME");
    c.cmd("QUIT", 221);

    // Remote mail stays deferred here, so its file can be read at leisure.
    let f = deferred_file(&inst, &id);
    let e = &f.envelope;
    assert_eq!(e.esmtp.ret, Some(Ret::Hdrs));
    assert_eq!(e.esmtp.envid.as_deref(), Some("QQ+314"));
    assert_eq!(e.esmtp.body, Some(Body::EightBitMime));
    assert!(!e.esmtp.smtputf8);
    let r: Vec<_> = e.recipients.iter().map(|r| (r.address.to_string(), r.esmtp.clone())).collect();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].0, "x@remote.example");
    assert_eq!(r[0].1.notify, Some(Notify { success: true, failure: false, delay: true }));
    assert_eq!(
        r[0].1.orcpt,
        Some(Orcpt { addr_type: "rfc822".into(), address: "Orig+x@remote.example".into() })
    );
    assert_eq!(r[1].1.notify, Some(Notify::NEVER));
    assert_eq!(r[1].1.orcpt, None);
    assert_eq!(r[2].1, Default::default());
    // qmgr's bounce and defer paths read such files without trouble.
    assert!(inst.mailq().contains(&id));
}

#[test]
fn bdat_chunks_reach_the_maildir_byte_for_byte() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    // Three chunks pipelined in one write, the CRLF after "b" split
    // between the first two; a "." line and ".." that DATA would unstuff.
    let chunks: [&[u8]; 3] =
        [b"Subject: bdat\r\n\r\nline a\r\n..b\r", b"\n.\r\nbare\nlf\r\n", b"last line\r\n"];
    let mut wire = b"MAIL FROM:<root@postern.test>\r\nRCPT TO:<suporte@postern.test>\r\n".to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i == chunks.len() - 1 { " LAST" } else { "" };
        wire.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
    }
    wire.extend_from_slice(b"NOOP\r\n");
    c.send_raw(&wire);
    c.expect("250 2.1.0 Ok");
    c.expect("250 2.1.5 Ok");
    c.expect(&format!("250 2.0.0 Ok: {} bytes", chunks[0].len()));
    c.expect(&format!("250 2.0.0 Ok: {} bytes", chunks[1].len()));
    let queued = c.expect_code(250);
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    c.expect("250 2.0.0 Ok");
    // BDAT with DATA in one transaction, and BDAT without one.
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.send_raw(b"BDAT 3\r\nabcDATA\r\n");
    c.expect("250 2.0.0 Ok: 3 bytes");
    c.expect("503 5.5.1 Error: DATA after BDAT");
    // RSET drops the chunks so far: a new transaction pipelined behind
    // it starts its own message.
    let second = b"Subject: second\r\n\r\nsecond\r\n";
    let mut wire =
        b"RSET\r\nMAIL FROM:<root@postern.test>\r\nRCPT TO:<suporte@postern.test>\r\n".to_vec();
    wire.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    wire.extend_from_slice(second);
    c.send_raw(&wire);
    c.expect("250 2.0.0 Ok");
    c.expect("250 2.1.0 Ok");
    c.expect("250 2.1.5 Ok");
    assert!(c.expect_code(250).starts_with("250 2.0.0 Ok: queued as "));
    c.send_raw(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
    c.expect("503 5.5.1 Error: need RCPT command");
    c.expect("250 2.0.0 Ok");
    // A size nobody can skip ends the session, as Postfix does.
    c.send_raw(b"BDAT ten\r\n");
    c.expect("521 5.5.4 Syntax: BDAT count [LAST]");
    assert!(c.closed());

    let files = inst.wait_for_mail("suporte", 2, Duration::from_secs(20));
    let texts: Vec<String> =
        files.iter().map(|f| String::from_utf8(std::fs::read(f).unwrap()).unwrap()).collect();
    let (first, second): (Vec<&String>, Vec<&String>) =
        texts.iter().partition(|t| t.contains("\nSubject: bdat\n"));
    assert_eq!((first.len(), second.len()), (1, 1), "{texts:?}");
    assert_eq!(body_of(second[0]), "second\n", "{}", second[0]);
    assert!(!second[0].contains("abc"), "{}", second[0]);
    let text = first[0];
    let sent: Vec<u8> = chunks.concat();
    let want = String::from_utf8(sent).unwrap().replace("\r\n", "\n");
    let (_, want_body) = want.split_once("\n\n").unwrap();
    assert_eq!(body_of(text), want_body, "{text}");
    // The abandoned BDAT message went nowhere.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inst.new_mail("suporte").len(), 2);
}

#[test]
fn utf8_sender_and_alias_reach_the_maildir() {
    let inst = Instance::start();
    let aliases = inst.dir.join("aliases");
    let mut a = std::fs::read_to_string(&aliases).unwrap();
    a.push_str("josé: suporte\n");
    std::fs::write(&aliases, a).unwrap();
    let out = inst.command("newaliases").output().unwrap();
    assert!(out.status.success(), "newaliases: {out:?}");
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<üser@exämple.org> SMTPUTF8", 250);
    c.cmd("RCPT TO:<josé@postern.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw("Subject: utf8\r\nFrom: Üser <üser@exämple.org>\r\n\r\nolá\r\n.\r\n".as_bytes());
    let id = c.expect_code(250).rsplit(' ').next().unwrap().to_owned();
    c.cmd("QUIT", 221);
    let text = inst.one_mail("suporte");
    assert!(text.starts_with("Return-Path: <üser@exämple.org>\n"), "{text}");
    assert!(text.contains("\nFrom: Üser <üser@exämple.org>\n"), "{text}");
    assert!(text.ends_with("\n\nolá\n"), "{text}");
    assert!(text.contains(&id));
}

#[test]
fn utf8_address_without_smtputf8_is_refused() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.send("MAIL FROM:<üser@exämple.org>");
    c.expect("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.send("RCPT TO:<josé@postern.test>");
    c.expect("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
    c.send("RCPT TO:<suporte@pöstern.test>");
    c.expect("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
    c.cmd("QUIT", 221);
    assert!(inst.queue_files("incoming").is_empty());
}

#[test]
fn header_block_that_never_ends_is_552() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("DATA", 354);
    // 200 KB of header lines and never the empty line that ends them
    // (header_size_limit is 100 KiB by default).
    let mut data = String::new();
    for i in 0..5000 {
        data.push_str(&format!("X-Header-{i}: {}\r\n", "h".repeat(24)));
    }
    data.push_str(".\r\n");
    c.send_raw(data.as_bytes());
    c.expect("552 5.3.4 Message header size exceeds limit");
    // The session goes on; nothing was queued or delivered.
    c.cmd("NOOP", 250);
    c.cmd("QUIT", 221);
    std::thread::sleep(Duration::from_millis(500));
    assert!(inst.queue_files("incoming").is_empty());
    assert!(inst.new_mail("suporte").is_empty());
}

/// NUL octets are message content: kept, as Postfix keeps them (its
/// message_reject_characters and message_strip_characters are empty by
/// default).
#[test]
fn nul_bytes_in_data_are_delivered() {
    let inst = Instance::start();
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    c.cmd("RCPT TO:<suporte@postern.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: nul\r\n\r\na\0b\r\n\0\r\n.\r\n");
    c.expect_code(250);
    c.cmd("QUIT", 221);
    let files = inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
    let bytes = std::fs::read(&files[0]).unwrap();
    assert!(bytes.ends_with(b"\n\na\0b\n\0\n"), "{:?}", String::from_utf8_lossy(&bytes));
}

/// 10,000 RCPT commands in one write: 250 up to smtpd_recipient_limit,
/// 452 for the rest, in order; the session and the message survive and
/// the smtpd process stays small.
#[test]
fn ten_thousand_pipelined_recipients() {
    let inst = Instance::start_with(tests::Options {
        postconf: vec![
            "smtpd_hard_error_limit = 100000".into(),
            "smtpd_soft_error_limit = 100000".into(),
        ],
        ..tests::Options::default()
    });
    let s = TcpStream::connect(inst.addr("smtp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut wire = String::from("EHLO c.postern.test\r\nMAIL FROM:<root@postern.test>\r\n");
        // Remote recipients: the message stays deferred, nothing is delivered.
        for i in 0..10_000 {
            wire.push_str(&format!("RCPT TO:<r{i}@remote.example>\r\n"));
        }
        wire.push_str("DATA\r\nSubject: many\r\n\r\nmany\r\n.\r\nQUIT\r\n");
        w.write_all(wire.as_bytes()).unwrap();
    });
    let mut lines = Vec::new();
    for line in BufReader::new(s).lines() {
        lines.push(line.unwrap());
    }
    writer.join().unwrap();
    // Greeting, EHLO, MAIL, 10,000 RCPT, 354, 250, 221.
    let mail = lines.iter().position(|l| l == "250 2.1.0 Ok").expect("MAIL reply");
    let (rcpts, rest) = lines[mail + 1..].split_at(10_000);
    assert!(rcpts[..1000].iter().all(|l| l == "250 2.1.5 Ok"), "{:?}", &rcpts[..3]);
    assert!(rcpts[1000..].iter().all(|l| l == "452 4.5.3 Error: too many recipients"));
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert!(rest[0].starts_with("354 "), "{rest:?}");
    assert!(rest[1].starts_with("250 2.0.0 Ok: queued as "), "{rest:?}");
    assert_eq!(rest[2], "221 2.0.0 Bye");
    let id = rest[1].rsplit(' ').next().unwrap();
    assert_eq!(deferred_file(&inst, id).envelope.recipients.len(), 1000);
    for pid in inst.worker_pids("smtp") {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert!(rss_kb < 100 * 1024, "smtpd {pid} RSS {rss_kb} kB");
    }
}
