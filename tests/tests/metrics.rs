//! master's Prometheus endpoint (`metrics_listen`), scraped with curl
//! after a known mix of traffic: mail received over SMTP and sendmail,
//! delivered, deferred and bounced, a refused TLS handshake, a failed
//! POP3 login; the counters per service, the delivery delay histogram
//! and the queue sizes must say exactly that. Off by default: without
//! the parameter nothing listens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{Read, Write};
use std::time::Duration;
use tests::{Instance, Options};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scrape(addr: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", &format!("http://{addr}/metrics")])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The value of one sample, `name{labels}`, or 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

#[test]
fn scrape_after_known_traffic() {
    if !tests::have_tool("curl") {
        tests::skip("curl is not installed");
        return;
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let inst = Instance::start_with(Options {
        postconf: vec![format!("metrics_listen = {addr}")],
        ..Options::default()
    });
    let mut c = inst.smtp();
    for n in 0..2 {
        c.send_mail(
            "suporte@postern.test",
            &["suporte@postern.test"],
            &format!("Subject: {n}\r\n\r\nx\r\n"),
        );
    }
    c.send_mail("suporte@postern.test", &["far@example.org"], "Subject: far\r\n\r\nx\r\n");
    c.cmd("QUIT", 221);
    inst.sendmail(&["-f", "suporte@postern.test", "ghost@postern.test"], "Subject: lost\n\nx\n");
    // Not TLS on the implicit-TLS port.
    let mut t = std::net::TcpStream::connect(inst.addr("smtps")).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t.write_all(b"EHLO plain.example\r\n").unwrap();
    let _ = t.read(&mut [0u8; 512]);
    drop(t);
    let mut p = tests::pop3::Client::connect(&inst.addr("pop3"));
    p.line();
    p.send("USER suporte");
    p.line();
    p.send("PASS wrong");
    assert!(p.line().starts_with("-ERR"));
    drop(p);
    // Two deliveries and the bounce notice.
    inst.wait_for_mail("suporte", 3, Duration::from_secs(30));

    let want = [
        ("postern_messages_received_total{service=\"smtp\",program=\"smtpd\"}", 3.0),
        ("postern_messages_received_total{service=\"pickup\",program=\"pickup\"}", 1.0),
        ("postern_messages_delivered_total{service=\"local\",program=\"local\"}", 3.0),
        ("postern_messages_bounced_total{service=\"local\",program=\"local\"}", 1.0),
        ("postern_messages_deferred_total{service=\"smtp\",program=\"smtp\"}", 1.0),
        ("postern_connections_total{service=\"smtp\",program=\"smtpd\"}", 1.0),
        ("postern_tls_failures_total{service=\"smtps\",program=\"smtpd\"}", 1.0),
        ("postern_auth_failures_total{service=\"pop3\",program=\"pop3d\"}", 1.0),
        ("postern_delivery_delay_seconds_count{service=\"local\",program=\"local\"}", 3.0),
        (
            "postern_delivery_delay_seconds_bucket{service=\"local\",program=\"local\",le=\"+Inf\"}",
            3.0,
        ),
        ("postern_queue_messages{state=\"deferred\"}", 1.0),
        ("postern_queue_messages{state=\"active\"}", 0.0),
    ];
    // The daemons report as they log; give the last datagrams a moment.
    let text = tests::wait_until(Duration::from_secs(15), || {
        let t = scrape(&addr);
        want.iter().all(|(s, v)| sample(&t, s) == *v).then_some(t)
    })
    .unwrap_or_else(|| {
        let t = scrape(&addr);
        let wrong: Vec<_> = want
            .iter()
            .filter(|(s, v)| sample(&t, s) != *v)
            .map(|(s, v)| (s, v, sample(&t, s)))
            .collect();
        panic!("wrong samples {wrong:#?} in\n{t}")
    });
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE postern_delivery_delay_seconds histogram\n"), "{text}");
    // Every delivery of a dev instance takes well under a minute.
    assert_eq!(
        sample(
            &text,
            "postern_delivery_delay_seconds_bucket{service=\"local\",program=\"local\",le=\"60\"}"
        ),
        3.0,
        "{text}"
    );
    let sum =
        sample(&text, "postern_delivery_delay_seconds_sum{service=\"local\",program=\"local\"}");
    assert!((0.0..180.0).contains(&sum), "{text}");

    // Only /metrics; a request that never ends is cut off.
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{addr}/secret")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    let mut big = std::net::TcpStream::connect(&addr).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ =
        big.write_all(format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000)).as_bytes());
    let mut reply = String::new();
    let _ = big.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
}

#[test]
fn off_by_default() {
    let inst = Instance::start();
    let pid = inst.master_pid();
    // master listens on nothing but the services' addresses.
    let report = inst.status();
    let ours: Vec<String> = report.services.iter().flat_map(|s| s.listen.clone()).collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inodes = socket_inodes(pid);
    for line in tcp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[3] == "0A" && inodes.contains(&f[9].to_owned()) {
            let port = u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
            assert!(
                ours.iter().any(|a| a.ends_with(&format!(":{port}"))),
                "master listens on {port}: {ours:?}"
            );
        }
    }
    assert!(!inst.queue().join("private/metrics").exists());
}

fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect()
}
