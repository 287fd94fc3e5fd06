//! As root: A sends to a user on B by MX across two network namespaces
//! of the test's own making, joined by a veth pair, each instance
//! listening on port 25 of its own address, as real MX hosts do. The
//! DNS server runs inside A's namespace. Skipped (with the reason
//! printed) when not root or without `ip`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tests::dns::Zone;
use tests::{Instance, Options};

const A_ADDR: &str = "10.231.7.1";
const B_ADDR: &str = "10.231.7.2";

/// Two namespaces and the veth pair between them; removed on drop, even
/// when the test fails.
struct Net {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)))
    }
}

impl Net {
    fn make() -> Result<Net, String> {
        let pid = std::process::id();
        let net = Net { a: format!("psmtpc-a-{pid}"), b: format!("psmtpc-b-{pid}") };
        let (va, vb) = (format!("psa{pid}"), format!("psb{pid}"));
        ip(&["netns", "add", &net.a])?;
        ip(&["netns", "add", &net.b])?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &net.a])?;
        ip(&["link", "set", &vb, "netns", &net.b])?;
        for (ns, dev, addr) in [(&net.a, &va, A_ADDR), (&net.b, &vb, B_ADDR)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and so the pair.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// The smtp service of a dev instance also listens on ADDR:25.
fn listen_on_25(dir: &Path, addr: &str) {
    let path = dir.join("master.toml");
    let text = std::fs::read_to_string(&path).expect("read master.toml");
    let text = text.replacen(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"127.0.0.1:0\", \"{addr}:25\"]"),
        1,
    );
    std::fs::write(&path, text).expect("write master.toml");
    tests::log_to_file(dir);
}

#[test]
fn a_reaches_b_by_mx_on_port_25_across_namespaces() {
    if !tests::is_root() {
        return tests::skip("smtp_client_netns: network namespaces need root");
    }
    if !tests::have_tool("ip") {
        return tests::skip("smtp_client_netns: the ip command (iproute2) is missing");
    }
    let net = match Net::make() {
        Ok(n) => n,
        Err(e) => return tests::skip(&format!("smtp_client_netns: cannot make namespaces: {e}")),
    };
    // The DNS server binds inside A's namespace: a thread moves there
    // first, and its sockets stay there.
    let ns_a = format!("/run/netns/{}", net.a);
    let dns = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_a).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        Zone::new().mx("b.example", 10, "mx.b.example").a("mx.b.example", B_ADDR).serve()
    })
    .join()
    .unwrap();
    let b = Instance::start_with(Options {
        netns: Some(net.b.clone()),
        before_start: Some(|d| listen_on_25(d, B_ADDR)),
        postconf: vec!["myhostname = mail.b.example".into(), "mydomain = b.example".into()],
        ..Default::default()
    });
    let a = Instance::start_with(Options {
        netns: Some(net.a.clone()),
        before_start: Some(|d| listen_on_25(d, A_ADDR)),
        postconf: vec![
            "myhostname = mail.a.example".into(),
            "mydomain = a.example".into(),
            "disable_dns_lookups = no".into(),
            format!("dns_resolver_addresses = {}", dns.addr()),
            "dns_resolver_timeout = 1s".into(),
            "smtp_connect_timeout = 2s".into(),
        ],
        ..Default::default()
    });
    a.sendmail(
        &["-f", "suporte@a.example", "suporte@b.example"],
        "From: suporte@a.example\nTo: suporte@b.example\nSubject: across namespaces\n\nover veth\n",
    );
    let got = b.wait_for_mail("suporte", 1, Duration::from_secs(30));
    let text = std::fs::read_to_string(&got[0]).unwrap();
    assert!(text.contains("over veth"), "{text}");
    // B saw A's own address, on port 25 of its own.
    assert!(text.contains(&format!("[{A_ADDR}]")), "{text}");
    let log = std::fs::read_to_string(a.dir.join("maillog")).unwrap();
    let sent = log
        .lines()
        .find(|l| l.contains("postern/smtp[") && l.contains("status=sent"))
        .unwrap_or_else(|| panic!("no sent line: {log}"));
    assert!(sent.contains(&format!("relay=mx.b.example[{B_ADDR}]:25")), "{sent}");
    drop(a);
    drop(b);
    drop(dns);
    drop(net);
}
