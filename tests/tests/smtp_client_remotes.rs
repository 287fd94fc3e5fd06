//! The SMTP client against servers that misbehave, written here as small
//! TCP servers, and against a real Postern submission service as a
//! relayhost (STARTTLS and AUTH required, a relay list that fails over).
//! The agent is the smtp-client library (`Agent::deliver`, what the
//! daemon runs for each request from qmgr) reading a real queue file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mail_ipc::delivery::{DeliveryRecipient, DeliveryRequest};
use mail_queue::{Envelope, Queue, Recipient, State};
use mail_types::{Address, DeliveryStatus, QueueId};
use smtp_client::deliver::Agent;

/// A queue directory with one message in active/, and an agent on it.
struct Setup {
    _dir: tempfile::TempDir,
    agent: Arc<Agent>,
    id: QueueId,
}

fn setup(extra: &str, dns: Option<SocketAddr>, content: &[u8]) -> Setup {
    setup_with(extra, dns, content, |_| {})
}

fn setup_with(
    extra: &str,
    dns: Option<SocketAddr>,
    content: &[u8],
    edit: impl FnOnce(&mut Envelope),
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("queue");
    let text = format!(
        "queue_directory = \"{}\"\nmyhostname = \"client.example\"\n\
         smtp_connect_timeout = 2\nsmtp_helo_timeout = 2\nsmtp_mail_timeout = 2\n\
         smtp_rcpt_timeout = 2\nsmtp_data_init_timeout = 2\nsmtp_data_done_timeout = 2\n\
         smtp_starttls_timeout = 2\nsmtp_quit_timeout = 1\n{extra}",
        q.display()
    );
    std::fs::write(dir.path().join("main.toml"), &text).unwrap();
    let main = mail_config::Main::load_with_overrides(dir.path(), &[]).unwrap();
    let master = mail_config::MasterFile::from_str(Path::new("master.toml"), "").unwrap();
    let s = smtp_client::settings::Settings::new(&main, &master).unwrap();
    let resolver = match dns {
        Some(ns) => {
            let mut p = mail_dns::Params::with_nameservers(vec![ns]);
            p.timeout = Duration::from_secs(1);
            mail_dns::Resolver::new(&p).unwrap()
        }
        None => mail_dns::Resolver::disabled(),
    };
    let queue = Queue::new(&q);
    queue.create_layout().unwrap();
    let id = QueueId::generate();
    let envelope = Envelope {
        sender: Some(Address::parse("suporte@postern.test").unwrap()),
        recipients: vec![Recipient::new(Address::parse("suporte@postern.test").unwrap(), "")],
        arrival: 1,
        client: String::new(),
        origin: String::new(),
        attrs: Vec::new(),
        esmtp: Default::default(),
    };
    let mut envelope = envelope;
    edit(&mut envelope);
    let bytes = mail_queue::format::encode(&envelope, content).unwrap();
    std::fs::write(queue.path(State::Active, &id), bytes).unwrap();
    let agent = Arc::new(Agent { s, resolver, cache: Default::default() });
    Setup { _dir: dir, agent, id }
}

const MESSAGE: &[u8] = b"From: suporte@postern.test\nTo: suporte@postern.test\nSubject: relay test\n\nhello through the relay\n";

fn deliver(s: &Setup, nexthop: &str) -> DeliveryStatus {
    deliver_n(s, nexthop, 1).remove(0)
}

/// `n` deliveries of the message one after the other in one runtime (so
/// idle sessions survive between them, as in the daemon).
fn deliver_n(s: &Setup, nexthop: &str, n: usize) -> Vec<DeliveryStatus> {
    let req = DeliveryRequest {
        queue_id: s.id.clone(),
        sender: Some(Address::parse("suporte@postern.test").unwrap()),
        arrival: 1,
        nexthop: nexthop.into(),
        recipients: vec![DeliveryRecipient {
            index: 0,
            address: Address::parse("suporte@postern.test").unwrap(),
            original: String::new(),
        }],
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let agent = s.agent.clone();
    rt.block_on(async move {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut reply = agent.deliver(&req).await;
            assert_eq!(reply.results.len(), 1);
            out.push(reply.results.remove(0).status);
        }
        out
    })
}

/// A one-thread TCP server running `script` for each connection, counting
/// them; stops when dropped (its port closes with the listener).
struct Remote {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Remote {
    fn start(script: fn(&mut BufReader<TcpStream>, &mut TcpStream, usize)) -> Remote {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, flag) = (connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let k = n.fetch_add(1, Ordering::SeqCst);
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut w = s.try_clone().unwrap();
                        let mut r = BufReader::new(s);
                        script(&mut r, &mut w, k);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Remote { addr, connections, stop, thread: Some(thread) }
    }

    fn nexthop(&self) -> String {
        format!("[127.0.0.1]:{}", self.addr.port())
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    let _ = r.read_line(&mut l);
    l
}

/// A plain SMTP server that takes one message (offering STARTTLS when
/// `starttls`), then QUIT.
fn serve_one(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
    starttls: bool,
    close_after_data: bool,
) {
    let _ = w.write_all(b"220 remote.example ESMTP\r\n");
    loop {
        let l = line(r);
        let cmd = l.to_ascii_uppercase();
        if l.is_empty() {
            return;
        } else if cmd.starts_with("EHLO") {
            let tls = if starttls { "250-STARTTLS\r\n" } else { "" };
            let _ = w.write_all(format!("250-remote.example\r\n{tls}250 8BITMIME\r\n").as_bytes());
        } else if cmd.starts_with("STARTTLS") {
            // Not TLS at all: the client's handshake fails.
            let _ = w.write_all(b"220 go ahead\r\nthis is not a TLS server hello\r\n");
            return;
        } else if cmd.starts_with("DATA") {
            let _ = w.write_all(b"354 go\r\n");
            while line(r).trim_end() != "." {}
            if close_after_data {
                return;
            }
            let _ = w.write_all(b"250 2.0.0 Ok: queued as REMOTE1\r\n");
        } else if cmd.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        } else {
            let _ = w.write_all(b"250 ok\r\n");
        }
    }
}

fn assert_deferred(st: &DeliveryStatus, dsn: &str, text: &str) {
    assert_eq!(st.log_word(), "deferred", "{st:?}");
    assert_eq!(st.dsn().to_string(), dsn, "{st:?}");
    assert!(st.text().contains(text), "{text:?} not in {:?}", st.text());
}

#[test]
fn a_reply_that_never_ends_times_out_and_defers() {
    let remote = Remote::start(|_, w, _| {
        for _ in 0..100 {
            if w.write_all(b"220-still talking\r\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let s = setup("", None, MESSAGE);
    let st = deliver(&s, &remote.nexthop());
    assert_deferred(&st, "4.4.2", "timed out while receiving the initial server greeting");
}

#[test]
fn reply_lines_over_512_octets_and_garbage_defer() {
    let long = Remote::start(|_, w, _| {
        let _ = w.write_all(format!("220 {}\r\n", "x".repeat(600)).as_bytes());
        std::thread::sleep(Duration::from_millis(500));
    });
    let s = setup("", None, MESSAGE);
    let st = deliver(&s, &long.nexthop());
    assert_deferred(&st, "4.4.2", "reply line longer than 512 octets");
    // No end of line at all: the bound holds as well.
    let endless = Remote::start(|_, w, _| {
        let _ = w.write_all(&[b'2'; 4000]);
        std::thread::sleep(Duration::from_millis(500));
    });
    let st = deliver(&s, &endless.nexthop());
    assert_deferred(&st, "4.4.2", "longer than 512");
    let garbage = Remote::start(|_, w, _| {
        let _ = w.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        std::thread::sleep(Duration::from_millis(500));
    });
    let st = deliver(&s, &garbage.nexthop());
    assert_deferred(
        &st,
        "4.4.2",
        "malformed reply from 127.0.0.1[127.0.0.1] while receiving the initial server greeting: malformed reply: SSH-2.0",
    );
}

#[test]
fn a_close_after_data_defers_and_is_not_sent_again_elsewhere() {
    let remote = Remote::start(|r, w, _| serve_one(r, w, false, true));
    let s = setup("", None, MESSAGE);
    // The same server twice in the list: once the dot is sent, the
    // message may have arrived, so the second entry is not tried.
    let hop = remote.nexthop();
    let st = deliver(&s, &format!("{hop},{hop}"));
    assert_deferred(
        &st,
        "4.4.2",
        "while sending end of data -- message may be sent more than once",
    );
    assert_eq!(remote.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn tls_handshake_failure_falls_back_to_plain_under_may_and_defers_under_encrypt() {
    let remote = Remote::start(|r, w, k| serve_one(r, w, k == 0, false));
    let s = setup("smtp_tls_security_level = \"may\"\n", None, MESSAGE);
    let st = deliver(&s, &remote.nexthop());
    assert_eq!(st.log_word(), "sent", "{st:?}");
    assert_eq!(st.text(), "250 2.0.0 Ok: queued as REMOTE1");
    assert_eq!(remote.connections.load(Ordering::SeqCst), 2, "one TLS try, one plain");

    let remote = Remote::start(|r, w, _| serve_one(r, w, true, false));
    let s = setup("smtp_tls_security_level = \"encrypt\"\n", None, MESSAGE);
    let st = deliver(&s, &remote.nexthop());
    assert_deferred(&st, "4.7.5", "Cannot start TLS: handshake failure");
    // A server without STARTTLS at all.
    let plain = Remote::start(|r, w, _| serve_one(r, w, false, false));
    let st = deliver(&s, &plain.nexthop());
    assert_deferred(
        &st,
        "4.7.4",
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]",
    );
}

#[test]
fn dns_servfail_and_timeouts_defer_never_bounce() {
    let servfail = tests::dns::ServfailDns::start();
    let s = setup("", Some(servfail.addr()), MESSAGE);
    let st = deliver(&s, "b.example");
    assert_deferred(&st, "4.4.3", "Name service error for name=b.example type=MX");
    let silent = tests::dns::SilentDns::start();
    let s = setup("", Some(silent.addr()), MESSAGE);
    let st = deliver(&s, "b.example");
    assert_deferred(&st, "4.4.3", "try again");
    // With DNS off, an MX lookup is not attempted.
    let s = setup("", None, MESSAGE);
    let st = deliver(&s, "b.example");
    assert_deferred(&st, "4.4.3", "DNS lookups disabled");
}

#[test]
fn relayhost_with_starttls_and_auth_and_a_failing_first_relay() {
    let b = tests::Instance::start();
    let submission = b.addr("submission");
    let port = submission.rsplit(':').next().unwrap().to_owned();
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("sasl_passwd");
    std::fs::write(&map, format!("[127.0.0.1]:{port} suporte:suporte\n")).unwrap();
    let s = setup(
        &format!(
            "smtp_tls_security_level = \"encrypt\"\nsmtp_sasl_auth_enable = true\n\
             smtp_sasl_password_maps = \"hash:{}\"\n",
            map.display()
        ),
        None,
        MESSAGE,
    );
    let st = deliver(&s, &format!("[127.0.0.1]:{dead_port}, [127.0.0.1]:{port}"));
    assert_eq!(st.log_word(), "sent", "{st:?}");
    assert!(st.text().starts_with("250 2.0.0 Ok: queued as "), "{st:?}");
    let mail = b.wait_for_mail("suporte", 1, Duration::from_secs(10));
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("hello through the relay"), "{text}");
    // The relay saw TLS and the login (its Received header says so).
    assert!(text.contains("ESMTPSA") || text.contains("TLS"), "{text}");

    // Without the password the submission service refuses the mail.
    let s = setup("smtp_tls_security_level = \"encrypt\"\n", None, MESSAGE);
    let st = deliver(&s, &format!("[127.0.0.1]:{port}"));
    assert_ne!(st.log_word(), "sent", "{st:?}");
    assert!(st.text().contains("(in reply to"), "{st:?}");
}

/// What the recording servers below were sent, one list per test.
static SEEN_REUSE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static SEEN_DSN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A server offering `ehlo` (extension lines) that records every command
/// and takes any number of messages per session.
fn recording(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
    ehlo: &str,
    seen: &std::sync::Mutex<Vec<String>>,
) {
    let _ = w.write_all(b"220 remote.example ESMTP\r\n");
    loop {
        let l = line(r);
        if l.is_empty() {
            return;
        }
        seen.lock().unwrap().push(l.trim_end().to_owned());
        let cmd = l.to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            let _ = w.write_all(format!("250-remote.example\r\n{ehlo}250 HELP\r\n").as_bytes());
        } else if cmd.starts_with("DATA") {
            let _ = w.write_all(b"354 go\r\n");
            let mut body = String::new();
            loop {
                let l = line(r);
                if l.is_empty() || l.trim_end() == "." {
                    break;
                }
                body.push_str(&l);
            }
            seen.lock().unwrap().push(format!("BODY {body:?}"));
            let _ = w.write_all(b"250 2.0.0 Ok: queued as R\r\n");
        } else if cmd.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        } else {
            let _ = w.write_all(b"250 2.0.0 ok\r\n");
        }
    }
}

#[test]
fn sessions_are_reused_with_rset_within_the_cache_time() {
    let remote = Remote::start(|r, w, _| recording(r, w, "250-PIPELINING\r\n", &SEEN_REUSE));
    let s = setup("", None, MESSAGE);
    let st = deliver_n(&s, &remote.nexthop(), 3);
    assert!(st.iter().all(|s| s.log_word() == "sent"), "{st:?}");
    assert_eq!(remote.connections.load(Ordering::SeqCst), 1, "one session for three messages");
    let seen = SEEN_REUSE.lock().unwrap().clone();
    let rsets = seen.iter().filter(|l| *l == "RSET").count();
    assert_eq!(rsets, 2, "{seen:?}");
    // With a reuse limit of 1 every message has its own session.
    let remote = Remote::start(|r, w, _| recording(r, w, "", &SEEN_REUSE));
    let s = setup("smtp_connection_reuse_count_limit = 1\n", None, MESSAGE);
    let st = deliver_n(&s, &remote.nexthop(), 2);
    assert!(st.iter().all(|s| s.log_word() == "sent"), "{st:?}");
    assert_eq!(remote.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn dsn_size_and_body_parameters_go_to_a_server_that_offers_them() {
    let remote = Remote::start(|r, w, _| {
        recording(r, w, "250-DSN\r\n250-SIZE 100000\r\n250-8BITMIME\r\n", &SEEN_DSN)
    });
    let content = "Subject: caf\u{e9}\n\n.dot line\nna\u{ef}ve\n".as_bytes();
    let s = setup_with("", None, content, |e| {
        e.esmtp.ret = Some(mail_types::esmtp::Ret::Hdrs);
        e.esmtp.envid = Some("id+1=x".into());
        e.esmtp.body = Some(mail_types::esmtp::Body::EightBitMime);
        e.recipients[0].esmtp.notify =
            Some(mail_types::esmtp::Notify { success: true, failure: true, delay: false });
        e.recipients[0].esmtp.orcpt = Some(mail_types::esmtp::Orcpt {
            addr_type: "rfc822".into(),
            address: "old@postern.test".into(),
        });
    });
    let st = deliver(&s, &remote.nexthop());
    assert_eq!(st.log_word(), "sent", "{st:?}");
    let seen = SEEN_DSN.lock().unwrap().clone();
    let size = content.len() + content.iter().filter(|b| **b == b'\n').count();
    assert!(
        seen.contains(&format!(
            "MAIL FROM:<suporte@postern.test> SIZE={size} BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx"
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(
            &"RCPT TO:<suporte@postern.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;old@postern.test"
                .to_owned()
        ),
        "{seen:?}"
    );
    // Dot-stuffed, CRLF, the 8-bit octets as they were.
    assert!(
        seen.contains(&format!(
            "BODY {:?}",
            "Subject: caf\u{e9}\r\n\r\n..dot line\r\nna\u{ef}ve\r\n"
        )),
        "{seen:?}"
    );
}

#[test]
fn over_the_servers_size_or_without_smtputf8_bounces_before_mail_from() {
    let small = Remote::start(|r, w, _| serve_small(r, w));
    let s = setup("", None, MESSAGE);
    let st = deliver(&s, &small.nexthop());
    assert_eq!(st.log_word(), "bounced", "{st:?}");
    assert_eq!(st.dsn().to_string(), "5.3.4");
    assert!(st.text().contains("exceeds size limit 10 of server 127.0.0.1[127.0.0.1]"), "{st:?}");

    let plain = Remote::start(|r, w, _| serve_one(r, w, false, false));
    let s = setup_with("", None, "Subject: ol\u{e1}\n\nx\n".as_bytes(), |e| {
        e.esmtp.smtputf8 = true;
    });
    let st = deliver(&s, &plain.nexthop());
    assert_eq!(st.log_word(), "bounced", "{st:?}");
    assert_eq!(st.dsn().to_string(), "5.6.7");
    assert!(st.text().contains("SMTPUTF8 is required, but was not offered"), "{st:?}");
}

fn serve_small(r: &mut BufReader<TcpStream>, w: &mut TcpStream) {
    let _ = w.write_all(b"220 tiny.example ESMTP\r\n");
    loop {
        let l = line(r);
        if l.is_empty() {
            return;
        }
        if l.to_ascii_uppercase().starts_with("EHLO") {
            let _ = w.write_all(b"250-tiny.example\r\n250 SIZE 10\r\n");
        } else if l.to_ascii_uppercase().starts_with("MAIL") {
            panic!("MAIL FROM sent to a server whose SIZE is too small: {l}");
        } else {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        }
    }
}
