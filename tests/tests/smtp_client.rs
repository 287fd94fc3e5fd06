//! Mail between two Postern instances on loopback: A sends to a user on
//! B through the SMTP client, finding B by MX records that a test DNS
//! server (tests/src/dns.rs) serves; `smtp_tcp_port` points A at B's
//! high port. MX preference and fallback (to an MX host that is a CNAME), a 4xx that defers until B is
//! fixed and `postqueue -f`, a 5xx that bounces with a DSN to the sender,
//! a null MX, an MX that is A itself, and no such domain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::time::Duration;

use tests::dns::Zone;
use tests::{Instance, Options};

/// B: mail.b.example, whose access table defers suporte@b.example
/// while `access` says so.
fn start_b() -> Instance {
    fn prepare(dir: &Path) {
        std::fs::write(dir.join("access"), "# nothing deferred\n").unwrap();
        tests::log_to_file(dir);
    }
    Instance::start_with(Options {
        before_start: Some(prepare),
        postconf: vec![
            "myhostname = mail.b.example".into(),
            "mydomain = b.example".into(),
            "smtpd_recipient_restrictions = check_recipient_access hash:access, permit_mynetworks, reject_unauth_destination".into(),
        ],
        ..Default::default()
    })
}

/// A: mail.a.example, asking `dns` and sending to `port`.
fn start_a(dns: std::net::SocketAddr, port: &str) -> Instance {
    Instance::start_with(Options {
        before_start: Some(tests::log_to_file),
        postconf: vec![
            "myhostname = mail.a.example".into(),
            "mydomain = a.example".into(),
            "disable_dns_lookups = no".into(),
            format!("dns_resolver_addresses = {dns}"),
            "dns_resolver_timeout = 1s".into(),
            format!("smtp_tcp_port = {port}"),
            "smtp_connect_timeout = 2s".into(),
            "smtp_helo_timeout = 5s".into(),
            "minimal_backoff_time = 1s".into(),
            "maximal_backoff_time = 2s".into(),
            "queue_run_delay = 1s".into(),
        ],
        ..Default::default()
    })
}

fn port_of(addr: &str) -> String {
    addr.rsplit(':').next().unwrap().to_owned()
}

fn log(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

/// Waits (bounded) for a log line of the smtp agent containing every
/// one of `parts`; returns it.
fn wait_log(inst: &Instance, parts: &[&str], secs: u64) -> String {
    tests::wait_until(Duration::from_secs(secs), || {
        log(inst)
            .lines()
            .find(|l| l.contains("postern/smtp[") && parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no smtp log line with {parts:?} in:\n{}", log(inst)))
}

fn send(a: &Instance, to: &str, subject: &str) -> String {
    let mut c = a.smtp();
    c.send_mail(
        "suporte@a.example",
        &[to],
        &format!("From: suporte@a.example\nTo: {to}\nSubject: {subject}\n\nbody of {subject}\n"),
    )
}

#[test]
fn a_reaches_b_by_mx_preference_with_fallback_when_the_best_mx_is_down() {
    let b = start_b();
    let port = port_of(&b.addr("smtp"));
    // The best MX has nothing listening (127.0.0.2); the second is B,
    // by an alias (an MX host that is a CNAME is followed, as Postfix
    // does, and logged by the MX name).
    let dns = Zone::new()
        .mx("b.example", 10, "mx0.b.example")
        .mx("b.example", 20, "mx1.b.example")
        .a("mx0.b.example", "127.0.0.2")
        .cname("mx1.b.example", "host.b.example")
        .a("host.b.example", "127.0.0.1")
        .serve();
    let a = start_a(dns.addr(), &port);
    let id = send(&a, "suporte@b.example", "by mx");
    let line = wait_log(&a, &[&id, "status=sent"], 20);
    assert!(line.contains(&format!("relay=mx1.b.example[127.0.0.1]:{port}")), "{line}");
    // The best MX was tried first, and its failure logged.
    let text = log(&a);
    let refused = "postern/smtp[".to_string();
    let tried = text
        .lines()
        .position(|l| {
            l.contains(&refused)
                && l.contains(&format!(
                    "connect to mx0.b.example[127.0.0.2]:{port}: Connection refused"
                ))
        })
        .unwrap_or_else(|| panic!("mx0 was not tried: {text}"));
    let sent = text.lines().position(|l| l.contains("status=sent")).unwrap();
    assert!(tried < sent, "{text}");
    assert!(line.contains("to=<suporte@b.example>"), "{line}");
    assert!(line.contains("dsn=2.0.0"), "{line}");
    assert!(line.contains("status=sent (250 2.0.0 Ok: queued as "), "{line}");
    assert!(line.contains(", delays="), "{line}");
    let got = b.wait_for_mail("suporte", 1, Duration::from_secs(10));
    let text = std::fs::read_to_string(&got[0]).unwrap();
    assert!(text.contains("Subject: by mx") && text.contains("body of by mx"), "{text}");
    assert!(text.contains("Return-Path: <suporte@a.example>"), "{text}");
}

#[test]
fn a_4xx_defers_and_postqueue_f_delivers_after_b_is_fixed() {
    let b = start_b();
    std::fs::write(
        b.dir.join("access"),
        "suporte@b.example 450 4.2.1 mailbox busy, come back later\n",
    )
    .unwrap();
    let port = port_of(&b.addr("smtp"));
    let dns =
        Zone::new().mx("b.example", 10, "mx.b.example").a("mx.b.example", "127.0.0.1").serve();
    let a = start_a(dns.addr(), &port);
    let id = send(&a, "suporte@b.example", "deferred");
    let line = wait_log(&a, &[&id, "status=deferred"], 20);
    assert!(line.contains("dsn=4.2.1"), "{line}");
    assert!(
        line.contains("(host mx.b.example[127.0.0.1] said: 450 4.2.1 <suporte@b.example>: Recipient address rejected: mailbox busy, come back later (in reply to RCPT TO command))"),
        "{line}"
    );
    assert!(b.new_mail("suporte").is_empty());
    // B is fixed; the operator flushes A's queue.
    std::fs::write(b.dir.join("access"), "# fixed: nothing is deferred any more\n").unwrap();
    let out = a.command("postqueue").arg("-f").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_log(&a, &[&id, "status=sent"], 20);
    let got = b.wait_for_mail("suporte", 1, Duration::from_secs(10));
    assert!(std::fs::read_to_string(&got[0]).unwrap().contains("body of deferred"));
}

#[test]
fn a_5xx_bounces_to_the_sender_with_a_report() {
    let b = start_b();
    let port = port_of(&b.addr("smtp"));
    let dns = Zone::new()
        .mx("b.example", 10, "mx.b.example")
        .a("mx.b.example", "127.0.0.1")
        .mx("null.example", 0, ".")
        .mx("loop.example", 10, "mail.a.example")
        .a("mail.a.example", "127.0.0.1")
        .serve();
    let a = start_a(dns.addr(), &port);
    let id = send(&a, "nosuchuser@b.example", "unknown user");
    let line = wait_log(&a, &[&id, "status=bounced"], 20);
    assert!(line.contains("dsn=5.1.1"), "{line}");
    assert!(line.contains("(in reply to RCPT TO command)"), "{line}");
    // The sender, a user of A, gets the report.
    let got = a.wait_for_mail("suporte", 1, Duration::from_secs(20));
    let raw = std::fs::read(&got[0]).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).expect("a parsable bounce");
    let all = String::from_utf8_lossy(&raw).into_owned();
    assert!(all.contains("nosuchuser@b.example"), "{all}");
    assert!(all.contains("5.1.1"), "{all}");
    assert!(msg.subject().is_some(), "{all}");

    // A null MX bounces at once (5.1.10), as does an MX that is A itself
    // (5.4.6) and a domain that does not exist (5.4.4).
    let id = send(&a, "someone@null.example", "null mx");
    let line = wait_log(&a, &[&id, "status=bounced"], 20);
    assert!(
        line.contains("dsn=5.1.10") && line.contains("does not accept mail (nullMX)"),
        "{line}"
    );
    let id = send(&a, "someone@loop.example", "loop");
    let line = wait_log(&a, &[&id, "status=bounced"], 20);
    assert!(
        line.contains("dsn=5.4.6") && line.contains("mail for loop.example loops back to myself"),
        "{line}"
    );
    let id = send(&a, "someone@nowhere.example", "nxdomain");
    let line = wait_log(&a, &[&id, "status=bounced"], 20);
    assert!(line.contains("dsn=5.4.4") && line.contains("Host not found"), "{line}");
}

/// The ready workers of the service `smtp` of one type.
fn smtp_pids(inst: &Instance, kind: &str) -> Vec<u32> {
    inst.status()
        .services
        .iter()
        .find(|s| s.name == "smtp" && s.kind == kind)
        .map(|s| s.workers.iter().filter(|w| w.ready && !w.draining).map(|w| w.pid).collect())
        .unwrap_or_default()
}

#[test]
fn smtp_inet_and_smtp_unix_restart_together_by_name_or_alone_by_type() {
    let inst = Instance::start();
    let inet = smtp_pids(&inst, "inet");
    let unix = smtp_pids(&inst, "unix");
    assert!(!inet.is_empty() && unix.len() == 1, "{:?}", inst.status());
    let out = inst.postern(&["restart", "smtp/unix"]);
    assert!(out.contains("smtp/unix"), "{out}");
    let fresh = tests::wait_until(Duration::from_secs(20), || {
        let now = smtp_pids(&inst, "unix");
        (!now.is_empty() && now.iter().all(|p| !unix.contains(p))).then_some(now)
    })
    .expect("the SMTP client was not restarted");
    assert_eq!(smtp_pids(&inst, "inet"), inet, "smtpd was restarted too");
    let out = inst.postern(&["restart", "smtp"]);
    assert!(out.contains("smtp/inet") && out.contains("smtp/unix"), "{out}");
    tests::wait_until(Duration::from_secs(20), || {
        let (i, u) = (smtp_pids(&inst, "inet"), smtp_pids(&inst, "unix"));
        let replaced =
            |now: &[u32], old: &[u32]| !now.is_empty() && now.iter().all(|p| !old.contains(p));
        (replaced(&i, &inet) && replaced(&u, &fresh)).then_some(())
    })
    .expect("postern restart smtp did not restart both services");
}

#[test]
fn relay_domains_leave_through_the_relay_service() {
    let b = start_b();
    let port = port_of(&b.addr("smtp"));
    let dns =
        Zone::new().mx("b.example", 10, "mx.b.example").a("mx.b.example", "127.0.0.1").serve();
    let a = start_a(dns.addr(), &port);
    let out = std::process::Command::new(tests::bin("postconf"))
        .arg("-c")
        .arg(&a.dir)
        .args(["-e", "relay_domains = b.example", "relay_destination_concurrency_limit = 3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    a.reload();
    let id = send(&a, "suporte@b.example", "relayed");
    // Postfix's relay service: the same client under its own name
    // (master.toml's `relay` service, syslog_name postern/relay).
    let line = tests::wait_until(Duration::from_secs(20), || {
        log(&a)
            .lines()
            .find(|l| {
                l.contains("postern/relay/smtp[") && l.contains(&id) && l.contains("status=sent")
            })
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no relay/smtp line for {id}:\n{}", log(&a)));
    assert!(line.contains(&format!("relay=mx.b.example[127.0.0.1]:{port}")), "{line}");
    assert!(
        !log(&a).lines().any(|l| l.contains("postern/smtp[") && l.contains(&id)),
        "the smtp service took relay mail:\n{}",
        log(&a)
    );
    b.wait_for_mail("suporte", 1, Duration::from_secs(10));
}
