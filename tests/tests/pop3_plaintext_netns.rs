//! As root: a client in a network namespace of the test's own making
//! reaches the pop3 and imap services of an instance in another one, on a
//! non-loopback address across a veth pair, where passwords in clear are
//! refused by default (`pop3_plaintext_auth = no`, `imap_plaintext_auth =
//! no`): CAPA offers neither USER nor SASL before STLS, USER and AUTH
//! PLAIN get Dovecot's `-ERR [AUTH]` text, IMAP announces LOGINDISABLED
//! and answers LOGIN with `NO [PRIVACYREQUIRED]`; after STLS/STARTTLS the
//! same logins succeed, and with the parameters set to yes they succeed in
//! clear. Skipped (with the reason printed) when not root or without `ip`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use tests::{Instance, Options, imap, pop3};

const CLIENT_ADDR: &str = "10.231.9.1";
const SERVER_ADDR: &str = "10.231.9.2";
const POP3_PORT: u16 = 110;
const IMAP_PORT: u16 = 143;

/// The two namespaces and the veth pair; removed on drop, even when the
/// test fails.
struct Net {
    client: String,
    server: String,
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
        let net = Net { client: format!("ppop-c-{pid}"), server: format!("ppop-s-{pid}") };
        let (vc, vs) = (format!("ppc{pid}"), format!("pps{pid}"));
        ip(&["netns", "add", &net.client])?;
        ip(&["netns", "add", &net.server])?;
        ip(&["link", "add", &vc, "type", "veth", "peer", "name", &vs])?;
        ip(&["link", "set", &vc, "netns", &net.client])?;
        ip(&["link", "set", &vs, "netns", &net.server])?;
        for (ns, dev, addr) in [(&net.client, &vc, CLIENT_ADDR), (&net.server, &vs, SERVER_ADDR)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// A connection to the server's `port`, made from inside the client
    /// namespace (a thread moves there first; its socket stays there).
    fn connect(&self, port: u16) -> TcpStream {
        let ns = format!("/run/netns/{}", self.client);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&ns).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            TcpStream::connect((SERVER_ADDR, port)).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.client]);
        let _ = ip(&["netns", "del", &self.server]);
    }
}

/// The pop3 and imap services also listen on the server's address.
fn listen_outside(dir: &Path) {
    let path = dir.join("master.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (name, port) in [("pop3", POP3_PORT), ("imap", IMAP_PORT)] {
        let old = format!("name = \"{name}\"\ntype = \"inet\"\nlisten = [\"127.0.0.1:0\"]");
        assert!(text.contains(&old), "no {name} service as expected in {text}");
        let new = format!(
            "name = \"{name}\"\ntype = \"inet\"\nlisten = [\"127.0.0.1:0\", \"{SERVER_ADDR}:{port}\"]"
        );
        text = text.replacen(&old, &new, 1);
    }
    std::fs::write(&path, text).unwrap();
}

fn cert(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("tls/cert.pem")).unwrap()
}

/// `AUTH PLAIN` with the initial response for suporte:suporte.
const AUTH_PLAIN: &str = "AUTH PLAIN AHN1cG9ydGUAc3Vwb3J0ZQ==";
const REFUSED: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

fn capa(c: &mut pop3::Client) -> Vec<String> {
    c.ok("CAPA");
    c.lines()
}

fn pop3_refused_in_clear_then_allowed_after_stls(net: &Net, inst: &Instance) {
    let mut c = pop3::Client::over(net.connect(POP3_PORT));
    c.greeting();
    let before = capa(&mut c);
    assert!(before.contains(&"STLS".to_owned()), "{before:?}");
    assert!(!before.iter().any(|l| l == "USER" || l.starts_with("SASL")), "{before:?}");
    assert_eq!(c.err("USER suporte"), REFUSED);
    assert_eq!(c.err(AUTH_PLAIN), REFUSED);
    c.stls(&cert(inst), "localhost").unwrap();
    let after = capa(&mut c);
    assert!(after.contains(&"USER".to_owned()), "{after:?}");
    assert!(after.contains(&"SASL PLAIN".to_owned()), "{after:?}");
    assert!(!after.contains(&"STLS".to_owned()), "{after:?}");
    c.login("suporte", "suporte");
    c.ok("STAT");
    c.ok("QUIT");
}

fn imap_logindisabled_then_allowed_after_starttls(net: &Net, inst: &Instance) {
    let mut c = imap::Client::over(net.connect(IMAP_PORT));
    let greeting = c.line();
    assert!(greeting.contains(" LOGINDISABLED"), "{greeting}");
    assert!(greeting.contains(" STARTTLS"), "{greeting}");
    assert!(!greeting.contains("AUTH=PLAIN"), "{greeting}");
    let r = c.run("a", "LOGIN suporte suporte");
    assert_eq!(
        r,
        "a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
    );
    c.ok("b", "STARTTLS");
    c.start_tls(&cert(inst), "localhost").unwrap();
    let caps = c.ok("c", "CAPABILITY");
    assert!(caps.contains(" AUTH=PLAIN") && !caps.contains("LOGINDISABLED"), "{caps}");
    let r = c.run("d", "LOGIN suporte suporte");
    assert!(r.starts_with("d OK"), "{r}");
    c.ok("e", "LOGOUT");
}

#[test]
fn passwords_in_clear_from_outside_loopback_are_refused_unless_allowed() {
    if !tests::is_root() {
        return tests::skip("pop3_plaintext_netns: network namespaces need root");
    }
    if !tests::have_tool("ip") {
        return tests::skip("pop3_plaintext_netns: the ip command (iproute2) is missing");
    }
    let net = match Net::make() {
        Ok(n) => n,
        Err(e) => {
            return tests::skip(&format!("pop3_plaintext_netns: cannot make namespaces: {e}"));
        }
    };
    let inst = Instance::start_with(Options {
        netns: Some(net.server.clone()),
        before_start: Some(listen_outside),
        ..Options::default()
    });
    pop3_refused_in_clear_then_allowed_after_stls(&net, &inst);
    imap_logindisabled_then_allowed_after_starttls(&net, &inst);

    let before = inst.status();
    for s in ["pop3_plaintext_auth = yes", "imap_plaintext_auth = yes"] {
        inst.postconf(&["-e", s]);
    }
    inst.postern(&["reload"]);
    inst.wait_workers_replaced(&before, &["pop3", "imap"]);
    let mut c = pop3::Client::over(net.connect(POP3_PORT));
    c.greeting();
    let offered = capa(&mut c);
    assert!(offered.contains(&"USER".to_owned()), "{offered:?}");
    c.login("suporte", "suporte");
    c.ok("STAT");
    c.ok("QUIT");
    let mut i = imap::Client::over(net.connect(IMAP_PORT));
    let greeting = i.line();
    assert!(greeting.contains("AUTH=PLAIN") && !greeting.contains("LOGINDISABLED"), "{greeting}");
    let r = i.run("a", "LOGIN suporte suporte");
    assert!(r.starts_with("a OK"), "{r}");
    i.ok("b", "LOGOUT");
    drop(inst);
    drop(net);
}
