//! Issue 7, reverse DNS of clients: smtpd names a client as Postfix does
//! (`connect from NAME[ADDR]`, `client=NAME[ADDR]`, the Received header),
//! using the name of its PTR record only when that name's address
//! records include the client's address; a nameserver that does not
//! answer costs at most `smtpd_peername_lookup_timeout` and the session
//! goes on as `unknown`. The dev instance looks nothing up.
//!
//! The instance's resolver is pointed at a test DNS server on 127.0.0.1
//! (`tests::dns`); clients connect from other loopback addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tests::dns::{SilentDns, Zone};
use tests::smtp::Client;
use tests::{Instance, Options, header, wait_until};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An instance whose smtpd looks client names up at `nameserver`.
fn instance(nameserver: SocketAddr, extra: &[&str]) -> Instance {
    let mut postconf = vec![
        "disable_dns_lookups = no".to_string(),
        format!("dns_resolver_addresses = {nameserver}"),
    ];
    postconf.extend(extra.iter().map(|s| s.to_string()));
    Instance::start_with(Options {
        postconf,
        before_start: Some(tests::log_to_file),
        ..Options::default()
    })
}

fn log(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

/// Waits (bounded) for a log line containing `needle`.
fn wait_log(inst: &Instance, needle: &str) -> String {
    wait_until(Duration::from_secs(20), || {
        log(inst).lines().find(|l| l.contains(needle)).map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no log line with {needle:?}; log:\n{}", log(inst)))
}

/// One message from `source`; returns the delivered text.
fn deliver_from(inst: &Instance, source: &str, subject: &str) -> String {
    let mut c = Client::connect_from(&inst.addr("smtp"), ip(source));
    c.expect_code(220);
    c.ehlo("helo.example.test");
    let body = format!("From: <root@localhost>\nSubject: {subject}\n\nhello\n");
    c.send_mail("root@localhost", &["suporte@localhost"], &body);
    c.cmd("QUIT", 221);
    wait_until(Duration::from_secs(30), || {
        inst.new_mail_texts("suporte")
            .into_iter()
            .find(|m| m.contains(&format!("Subject: {subject}")))
    })
    .unwrap_or_else(|| panic!("message {subject:?} not delivered"))
}

#[test]
fn confirmed_names_are_used_and_forged_ones_are_unknown() {
    let dns = Zone::new()
        .ptr("127.0.0.2", "client.example.test")
        .a("client.example.test", "127.0.0.2")
        .ptr("127.0.0.3", "liar.example.test")
        .a("liar.example.test", "192.0.2.77")
        // Hostile: a name that would forge a log line and a header.
        .ptr("127.0.0.4", "evil.example.test[10.0.0.1]: x")
        .a("evil.example.test", "127.0.0.4")
        .serve();
    let inst = instance(dns.addr(), &[]);

    let msg = deliver_from(&inst, "127.0.0.2", "confirmed");
    wait_log(&inst, "connect from client.example.test[127.0.0.2]");
    wait_log(&inst, "client=client.example.test[127.0.0.2]");
    let received = header(&msg, "Received");
    assert!(
        received[0].starts_with("from helo.example.test (client.example.test [127.0.0.2])"),
        "{received:?}"
    );

    let msg = deliver_from(&inst, "127.0.0.3", "forged");
    wait_log(&inst, "connect from unknown[127.0.0.3]");
    wait_log(&inst, "warning: hostname liar.example.test does not resolve to address 127.0.0.3");
    let received = header(&msg, "Received");
    assert!(
        received[0].starts_with("from helo.example.test (unknown [127.0.0.3])"),
        "{received:?}"
    );

    let msg = deliver_from(&inst, "127.0.0.4", "hostile");
    wait_log(&inst, "connect from unknown[127.0.0.4]");
    let received = header(&msg, "Received");
    assert!(
        received[0].starts_with("from helo.example.test (unknown [127.0.0.4])"),
        "{received:?}"
    );
    assert!(!log(&inst).contains("evil.example.test[10.0.0.1]"), "{}", log(&inst));
}

#[test]
fn a_silent_nameserver_costs_at_most_the_lookup_timeout() {
    let silent = SilentDns::start();
    let inst = instance(
        silent.addr(),
        &["smtpd_peername_lookup_timeout = 2s", "dns_resolver_timeout = 30s"],
    );
    let start = Instant::now();
    let mut c = Client::connect_from(&inst.addr("smtp"), ip("127.0.0.5"));
    c.expect_code(220);
    let waited = start.elapsed();
    // The greeting waits for the lookup, as in Postfix, but no longer
    // than the limit (generous slack: the machine is shared).
    assert!(waited >= Duration::from_millis(1800), "greeting after {waited:?}");
    assert!(waited < Duration::from_secs(10), "greeting after {waited:?}");
    c.ehlo("helo.example.test");
    c.send_mail(
        "root@localhost",
        &["suporte@localhost"],
        "From: <root@localhost>\nSubject: silent\n\nhello\n",
    );
    c.cmd("QUIT", 221);
    wait_log(&inst, "connect from unknown[127.0.0.5]");
    wait_log(&inst, "warning: 127.0.0.5: client name lookup timed out after 2s");
    let msg = wait_until(Duration::from_secs(30), || {
        inst.new_mail_texts("suporte").into_iter().find(|m| m.contains("Subject: silent"))
    })
    .expect("message delivered");
    let received = header(&msg, "Received");
    assert!(
        received[0].starts_with("from helo.example.test (unknown [127.0.0.5])"),
        "{received:?}"
    );
}

#[test]
fn the_dev_instance_looks_nothing_up() {
    // Even with a nameserver given, the dev instance must not ask it.
    let silent = SilentDns::start();
    let inst = Instance::start_with(Options {
        postconf: vec![format!("dns_resolver_addresses = {}", silent.addr())],
        before_start: Some(tests::log_to_file),
        ..Options::default()
    });
    assert_eq!(inst.postconf(&["disable_dns_lookups"]).trim(), "disable_dns_lookups = yes");
    let msg = deliver_from(&inst, "127.0.0.2", "dev");
    wait_log(&inst, "connect from localhost[127.0.0.2]");
    let received = header(&msg, "Received");
    assert!(
        received[0].starts_with("from helo.example.test (localhost [127.0.0.2])"),
        "{received:?}"
    );
    assert_eq!(silent.take_queries(), 0, "the dev instance sent DNS queries");
}

#[test]
fn the_silent_server_sees_queries() {
    // The check above can fail: with lookups on, the queries arrive.
    let silent = SilentDns::start();
    let inst = instance(silent.addr(), &["smtpd_peername_lookup_timeout = 1s"]);
    let mut c = Client::connect_from(&inst.addr("smtp"), ip("127.0.0.2"));
    c.expect_code(220);
    c.cmd("QUIT", 221);
    assert!(silent.take_queries() > 0, "no query reached the server");
}
