//! Item 6 of issue 2: `postern status` (text and --json), kill -9 of a
//! worker is repaired by master and mail still flows, `postern restart
//! smtpd` restarts only smtpd and serves a client connected across it,
//! and `postern stop` stops everything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::{Instance, alive, children_of, kill9, service_pids, wait_until};

const SERVICES: [&str; 8] =
    ["smtp", "submission", "smtps", "pickup", "qmgr", "local", "anvil", "authd"];

fn mail_flows(inst: &Instance, n: usize) {
    let mut c = inst.smtp();
    c.send_mail(
        "root@postern.test",
        &["suporte@postern.test"],
        &format!("Subject: flow {n}\r\n\r\nflow {n}\r\n"),
    );
    c.cmd("QUIT", 221);
    inst.wait_for_mail("suporte", n, Duration::from_secs(30));
}

#[test]
fn status_lists_every_service() {
    let inst = Instance::start();
    let r = inst.status();
    assert_eq!(r.master_pid, inst.master_pid());
    for name in SERVICES {
        let s = r
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name}: {r:?}"));
        assert!(!s.workers.is_empty(), "{name} has no workers: {s:?}");
        assert!(!s.listen.is_empty(), "{name} lists no address: {s:?}");
        assert_eq!(s.restarts, 0, "{s:?}");
    }
    // The three SMTP services each on their own loopback port.
    let mut ports = Vec::new();
    for name in ["smtp", "submission", "smtps"] {
        let s = r.services.iter().find(|s| s.name == name).unwrap();
        assert!(s.listen[0].starts_with("127.0.0.1:") && !s.listen[0].ends_with(":0"), "{s:?}");
        ports.push(s.listen[0].clone());
    }
    ports.dedup();
    assert_eq!(ports.len(), 3, "{ports:?}");
    let text = inst.postern(&["status"]);
    for name in SERVICES {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        let s = r.services.iter().find(|s| s.name == name).unwrap();
        assert!(line.contains(&s.listen[0]), "{line}");
        for w in &s.workers {
            assert!(line.contains(&w.pid.to_string()), "{name} pid {} missing: {line}", w.pid);
        }
    }
}

fn kill9_worker_is_replaced(service: &str) {
    let inst = Instance::start();
    mail_flows(&inst, 1);
    let before = inst.status();
    let old = service_pids(&before, service);
    let restarts = before.services.iter().find(|s| s.name == service).unwrap().restarts;
    assert!(!old.is_empty());
    kill9(old[0]);
    let new = inst.wait_service_ready(service, &old[..1]);
    assert!(!new.contains(&old[0]), "{new:?}");
    let after = inst.status();
    let s = after.services.iter().find(|s| s.name == service).unwrap();
    assert_eq!(s.restarts, restarts + 1, "{s:?}");
    mail_flows(&inst, 2);
}

#[test]
fn kill9_smtpd_worker_is_replaced() {
    kill9_worker_is_replaced("smtp");
}

#[test]
fn kill9_qmgr_is_replaced() {
    kill9_worker_is_replaced("qmgr");
}

#[test]
fn kill9_local_delivery_worker_is_replaced() {
    kill9_worker_is_replaced("local");
}

#[test]
fn restart_smtpd_restarts_only_smtpd_and_serves_open_client() {
    let inst = Instance::start();
    let before = inst.status();
    let mut open = inst.smtp();
    open.cmd("MAIL FROM:<root@postern.test>", 250);
    inst.postern(&["restart", "smtp"]);
    inst.wait_workers_replaced(&before, &["smtp"]);
    let after = inst.status();
    for name in ["pickup", "qmgr", "local"] {
        assert_eq!(service_pids(&before, name), service_pids(&after, name), "{name} was restarted");
    }
    open.cmd("RCPT TO:<suporte@postern.test>", 250);
    open.cmd("DATA", 354);
    open.send_raw(b"Subject: durante o restart\r\n\r\nrestart\r\n.\r\n");
    open.expect_code(250);
    open.cmd("QUIT", 221);
    inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
    mail_flows(&inst, 2);
}

#[test]
fn postern_stop_stops_everything() {
    let inst = Instance::start();
    let master = inst.master_pid();
    let children = children_of(master);
    assert!(children.len() >= 4, "{children:?}");
    inst.postern(&["stop"]);
    let gone = wait_until(Duration::from_secs(10), || {
        (!alive(master) && children.iter().all(|p| !alive(*p))).then_some(())
    });
    assert!(gone.is_some(), "still running after stop: master {master}, workers {children:?}");
    assert!(!inst.queue().join("pid/master.pid").exists(), "pid file left behind");
}
