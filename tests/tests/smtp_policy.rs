//! Issue 7, policy: the open-relay battery from a client outside
//! mynetworks, each restriction list with a reject and a permit case, a
//! table edited while the instance runs, and cleanup's rewriting
//! (canonical_maps, virtual_alias_maps, virtual_alias_domains) seen in the
//! delivered Maildir files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use mail_queue::{Queue, State};
use mail_types::QueueId;
use tests::{Instance, Options, header, wait_until};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The domains the dev instance delivers locally.
fn is_local(addr: &str) -> bool {
    let domain = addr.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    ["postern.test", "localhost", "localhost.postern.test"].contains(&domain.as_str())
        || domain.ends_with(".postern.test")
}

/// The envelope recipients of queue file `id`, looked for in the order a
/// file moves through the queue (incoming, active, deferred) so a move
/// meanwhile is not missed in both; `None` once it is delivered and gone.
fn recipients_of(inst: &Instance, id: &str) -> Option<Vec<String>> {
    let q = Queue::new(inst.queue());
    let id = QueueId::parse(id).unwrap();
    for state in [State::Incoming, State::Active, State::Deferred] {
        if let Ok(f) = q.read(state, &id) {
            return Some(f.envelope.recipients.iter().map(|r| r.address.to_string()).collect());
        }
    }
    None
}

fn queue_is_empty(inst: &Instance) -> bool {
    ["incoming", "active", "deferred"].iter().all(|s| inst.queue_files(s).is_empty())
}

/// Sets a file's modification time ahead, so a rewrite within the same
/// clock tick is still seen as a change.
fn touch_ahead(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5)).unwrap();
}

#[test]
fn relay_battery_from_outside_mynetworks() {
    let inst = Instance::start_with(Options {
        postconf: vec!["mynetworks = 127.0.0.1/32".into()],
        ..Options::default()
    });
    let mut c = inst.smtp_from(ip("127.0.0.2"), "client.example.com");
    c.cmd("MAIL FROM:<someone@remote.example>", 250);
    for (to, shown) in [
        ("user%remote.example@postern.test", "user%remote.example@postern.test"),
        // The source route is dropped (RFC 5321 §4.1.2): what is left is remote.
        ("@postern.test:user@remote.example", "user@remote.example"),
        ("remote.example!user@postern.test", "remote.example!user@postern.test"),
        ("\"user@remote.example\"@postern.test", "\"user@remote.example\"@postern.test"),
        ("\"user%remote.example\"@postern.test", "\"user%remote.example\"@postern.test"),
        ("user@remote.example", "user@remote.example"),
        ("USER@REMOTE.EXAMPLE.", "USER@remote.example"),
        ("user@[192.0.2.1]", "user@[192.0.2.1]"),
        ("user@[127.0.0.1]", "user@[127.0.0.1]"),
    ] {
        c.send(&format!("RCPT TO:<{to}>"));
        c.expect(&format!("554 5.7.1 <{shown}>: Relay access denied"));
    }
    // Unknown users behind routing to our own domain: 550, not relayed.
    c.send("RCPT TO:<ghost%localhost@postern.test>");
    c.expect(
        "550 5.1.1 <ghost%localhost@postern.test>: Recipient address rejected: User unknown in local recipient table",
    );
    // Accepted only as local recipients: case, a trailing dot, routing
    // that ends here, a quoted local part that names a user.
    for to in [
        "SUPORTE@POSTERN.TEST",
        "suporte@postern.test.",
        "suporte%localhost@postern.test",
        "\"suporte\"@postern.test",
    ] {
        c.cmd(&format!("RCPT TO:<{to}>"), 250);
    }
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: battery\r\n\r\nrelay battery\r\n.\r\n");
    let id = c.expect_code(250).rsplit(' ').next().unwrap().to_owned();
    c.cmd("QUIT", 221);
    if let Some(rcpts) = recipients_of(&inst, &id) {
        assert!(rcpts.iter().all(|r| is_local(r)), "non-local recipient queued: {rcpts:?}");
    }
    inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
    // Nothing is left behind: a remote recipient would wait in deferred/
    // (the instance has no SMTP client).
    let empty = wait_until(Duration::from_secs(20), || queue_is_empty(&inst).then_some(()));
    assert!(
        empty.is_some(),
        "queue not empty: {:?} {:?}",
        inst.queue_files("deferred"),
        inst.mailq()
    );
    // From mynetworks the same server relays (the message waits in deferred/).
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    c.cmd("RCPT TO:<user@remote.example>", 250);
    c.cmd("QUIT", 221);
}

/// The tables of [`restriction_lists_and_a_table_edited_while_running`].
fn write_access(dir: &Path) {
    std::fs::write(
        dir.join("access"),
        "# check_*_access table\n\
         127.0.0.3               REJECT no clients from here\n\
         spam@remote.example     REJECT\n\
         blocked@postern.test    REJECT mailbox closed\n",
    )
    .unwrap();
}

#[test]
fn restriction_lists_and_a_table_edited_while_running() {
    let inst = Instance::start_with(Options {
        before_start: Some(write_access),
        postconf: vec![
            "mynetworks = 127.0.0.1/32".into(),
            "smtpd_client_restrictions = check_client_access hash:access".into(),
            "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname".into(),
            "smtpd_sender_restrictions = check_sender_access texthash:access".into(),
            "smtpd_recipient_restrictions = check_recipient_access lmdb:access".into(),
        ],
        ..Options::default()
    });
    let rcpt = |c: &mut tests::smtp::Client, to: &str, want: &str| {
        c.send(&format!("RCPT TO:<{to}>"));
        c.expect(want);
    };
    // Client: listed address rejected, another one accepted.
    let mut c = inst.smtp_from(ip("127.0.0.3"), "client.example.com");
    c.cmd("MAIL FROM:<a@remote.example>", 250);
    rcpt(
        &mut c,
        "suporte@postern.test",
        "554 5.7.1 <localhost[127.0.0.3]>: Client host rejected: no clients from here",
    );
    c.cmd("QUIT", 221);
    let mut c = inst.smtp_from(ip("127.0.0.2"), "client.example.com");
    c.cmd("MAIL FROM:<a@remote.example>", 250);
    rcpt(&mut c, "suporte@postern.test", "250 2.1.5 Ok");
    // Relay: refused outside mynetworks.
    rcpt(&mut c, "x@remote.example", "554 5.7.1 <x@remote.example>: Relay access denied");
    // Recipient: the listed address rejected with the table's text.
    rcpt(
        &mut c,
        "blocked@postern.test",
        "554 5.7.1 <blocked@postern.test>: Recipient address rejected: mailbox closed",
    );
    c.cmd("RSET", 250);
    // Sender: the listed sender rejected at RCPT (smtpd_delay_reject).
    c.cmd("MAIL FROM:<spam@remote.example>", 250);
    rcpt(
        &mut c,
        "suporte@postern.test",
        "554 5.7.1 <spam@remote.example>: Sender address rejected: Access denied",
    );
    c.cmd("QUIT", 221);
    // Helo: a bare name rejected; the same client with an FQDN passed above.
    let mut c = inst.smtp_from(ip("127.0.0.2"), "localhost");
    c.cmd("MAIL FROM:<a@remote.example>", 250);
    rcpt(
        &mut c,
        "suporte@postern.test",
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
    );
    c.cmd("QUIT", 221);
    // Relay: permitted from mynetworks.
    let mut c = inst.smtp_from(ip("127.0.0.1"), "client.example.com");
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    rcpt(&mut c, "x@remote.example", "250 2.1.5 Ok");
    c.cmd("QUIT", 221);

    // The table changes while the instance runs: no reload, no postmap.
    let access = inst.dir.join("access");
    let mut text = std::fs::read_to_string(&access).unwrap();
    text.push_str("suporte@postern.test    REJECT changed while running\n");
    std::fs::write(&access, text).unwrap();
    touch_ahead(&access);
    let mut c = inst.smtp_from(ip("127.0.0.2"), "client.example.com");
    c.cmd("MAIL FROM:<a@remote.example>", 250);
    rcpt(
        &mut c,
        "suporte@postern.test",
        "554 5.7.1 <suporte@postern.test>: Recipient address rejected: changed while running",
    );
    c.cmd("QUIT", 221);
}

/// The tables of [`canonical_and_virtual_aliases_in_delivered_mail`].
fn write_rewriting(dir: &Path) {
    std::fs::write(dir.join("canonical"), "root@postern.test   Administrador@postern.test\n")
        .unwrap();
    std::fs::write(
        dir.join("virtual"),
        "vdomain.test          anything\n\
         info@vdomain.test     suporte\n\
         equipe@postern.test   suporte,\n\
         \tana@postern.test\n",
    )
    .unwrap();
}

#[test]
fn canonical_and_virtual_aliases_in_delivered_mail() {
    let inst = Instance::start_with(Options {
        before_start: Some(write_rewriting),
        users: vec!["ana:ana".into()],
        postconf: vec![
            "canonical_maps = hash:canonical".into(),
            "virtual_alias_maps = hash:virtual".into(),
        ],
        ..Options::default()
    });
    let mut c = inst.smtp();
    c.cmd("MAIL FROM:<root@postern.test>", 250);
    // No user "equipe": the virtual alias lists it.
    c.cmd("RCPT TO:<equipe@postern.test>", 250);
    // A virtual alias domain: only its listed addresses exist.
    c.send("RCPT TO:<ninguem@vdomain.test>");
    c.expect(
        "550 5.1.1 <ninguem@vdomain.test>: Recipient address rejected: User unknown in virtual alias table",
    );
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: para a equipe\r\n\r\nola equipe\r\n.\r\n");
    c.expect_code(250);
    c.cmd("QUIT", 221);
    for user in ["suporte", "ana"] {
        let text = inst.one_mail(user);
        assert!(
            text.starts_with("Return-Path: <Administrador@postern.test>"),
            "{user}: sender not rewritten:\n{text}"
        );
        assert_eq!(header(&text, "Delivered-To"), [format!("{user}@postern.test")], "{text}");
        assert!(text.contains("ola equipe"), "{text}");
    }
    // The same tables for mail from sendmail (pickup).
    inst.sendmail(&["info@vdomain.test"], "Subject: via sendmail\n\nx\n");
    let files = inst.wait_for_mail("suporte", 2, Duration::from_secs(20));
    assert_eq!(files.len(), 2, "{files:?}");
    let texts = inst.new_mail_texts("suporte");
    assert!(texts.iter().any(|t| t.contains("via sendmail")), "{texts:?}");
}
