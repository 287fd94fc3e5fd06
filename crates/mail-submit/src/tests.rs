//! Tests of the submission paths against a real queue directory.

use super::*;
use mail_ipc::trigger::MAX_FRAME;
use mail_queue::State;

fn params() -> CleanupParams {
    CleanupParams {
        myhostname: "mail.fiap.edu.br".into(),
        myorigin: "fiap.edu.br".into(),
        append_at_myorigin: true,
        header_size_limit: 1000,
        mail_name: "Postern".into(),
        header_rewrite: None,
    }
}

fn setup() -> (tempfile::TempDir, Queue) {
    let d = tempfile::tempdir().unwrap();
    let q = Queue::new(d.path());
    q.create_layout().unwrap();
    (d, q)
}

fn rcpt(address: &str, original: &str) -> Recipient {
    Recipient {
        address: address.parse().unwrap(),
        original: original.into(),
        esmtp: Default::default(),
    }
}

fn smtp() -> Submission {
    Submission {
        esmtp: Default::default(),
        sender: Some(Address::parse("root@fiap.edu.br").unwrap()),
        recipients: vec![rcpt("suporte@fiap.edu.br", "suporte")],
        origin: Origin::Smtp {
            helo: Some("client.example".into()),
            client_name: "localhost".into(),
            client_addr: "127.0.0.1".parse().unwrap(),
            protocol: "ESMTP",
            tls: None,
            sasl: None,
            cleanup: params(),
        },
    }
}

fn tmp_is_empty(q: &Queue) -> bool {
    std::fs::read_dir(q.root().join("tmp")).unwrap().count() == 0
}

/// Streams `content` in small pieces, writing as smtpd does.
fn stream(q: &Queue, sub: &Submission, content: &[u8]) -> Result<Queued, Error> {
    let mut s = Stream::start(q, sub);
    for piece in content.chunks(5) {
        s.push(piece);
        s.write();
    }
    s.commit(b"")
}

#[test]
fn streamed_smtp_message_lands_complete_and_cleaned() {
    let (_d, q) = setup();
    let queued = stream(&q, &smtp(), b"Subject: oi\n\nbody\n").unwrap();
    let id = queued.id;
    assert_eq!(q.scan(State::Incoming).unwrap(), vec![id.clone()]);
    let f = q.read(State::Incoming, &id).unwrap();
    assert_eq!(f.envelope.sender.unwrap().to_string(), "root@fiap.edu.br");
    assert_eq!(f.envelope.recipients, vec![rcpt("suporte@fiap.edu.br", "suporte")]);
    assert_eq!(f.envelope.client, "localhost[127.0.0.1]");
    assert_eq!(f.envelope.origin, "smtpd");
    assert_eq!(
        f.envelope.attrs,
        vec![
            ("helo".to_owned(), "client.example".to_owned()),
            ("protocol".to_owned(), "ESMTP".to_owned())
        ]
    );
    let text = String::from_utf8(f.content).unwrap();
    assert!(
        text.starts_with(&format!(
            "Received: from client.example (localhost [127.0.0.1])\n\tby mail.fiap.edu.br (Postern) with ESMTP id {id}\n\tfor <suporte@fiap.edu.br>;"
        )),
        "{text}"
    );
    let mid = queued.message_id.unwrap();
    assert!(text.contains(&format!("\nMessage-Id: {mid}\n")), "{text}");
    assert!(text.contains("\nFrom: root@fiap.edu.br\n"), "{text}");
    assert!(text.ends_with("\n\nbody\n"), "{text}");
    assert!(tmp_is_empty(&q));
}

#[test]
fn whole_and_streamed_cleanup_agree_apart_from_ids_and_dates() {
    let (_d, q) = setup();
    let content =
        b"Subject: same\nMessage-Id: <m@x>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nbody\n";
    let a = stream(&q, &smtp(), content).unwrap();
    let b = submit(&q, &smtp(), content).unwrap();
    assert_eq!(a.message_id.as_deref(), Some("<m@x>"));
    assert_eq!(b.message_id.as_deref(), Some("<m@x>"));
    let body = |id: &QueueId| {
        let text = String::from_utf8(q.read(State::Incoming, id).unwrap().content).unwrap();
        // Received: names the id and the time; the rest must be identical.
        text.split_once("\nSubject:").unwrap().1.to_owned()
    };
    assert_eq!(body(&a.id), body(&b.id));
}

#[test]
fn pickup_origin_is_cleaned_with_the_uid() {
    let (_d, q) = setup();
    let sub = Submission {
        esmtp: Default::default(),
        sender: Some(Address::parse("ana@fiap.edu.br").unwrap()),
        recipients: vec![rcpt("suporte@fiap.edu.br", "suporte"), rcpt("b@x.org", "b@x.org")],
        origin: Origin::Pickup { uid: 1234, cleanup: params() },
    };
    let queued = submit(&q, &sub, b"hello\n").unwrap();
    let f = q.read(State::Incoming, &queued.id).unwrap();
    assert_eq!(f.envelope.client, "local");
    assert_eq!(f.envelope.origin, "pickup");
    assert_eq!(f.envelope.attrs, vec![("uid".to_owned(), "1234".to_owned())]);
    let text = String::from_utf8(f.content).unwrap();
    assert!(
        text.starts_with("Received: by mail.fiap.edu.br (Postern, from userid 1234)"),
        "{text}"
    );
    // Two recipients: no FOR clause.
    assert!(!text.contains("\tfor <"), "{text}");
    assert!(text.ends_with("\n\nhello\n"), "{text}");
}

#[test]
fn forwarded_and_bounce_content_is_stored_as_given() {
    let (_d, q) = setup();
    let content = b"Delivered-To: root@fiap.edu.br\nSubject: hi\n\nbody\n";
    let sub = Submission {
        esmtp: Default::default(),
        sender: Some(Address::parse("ana@example.com").unwrap()),
        recipients: vec![rcpt("friend@remote.example", "friend@remote.example")],
        origin: Origin::Forward,
    };
    let queued = submit(&q, &sub, content).unwrap();
    assert_eq!(queued.message_id, None);
    let f = q.read(State::Incoming, &queued.id).unwrap();
    assert_eq!(f.content, content);
    assert_eq!((f.envelope.client.as_str(), f.envelope.origin.as_str()), ("local", "local"));
    assert!(f.envelope.attrs.is_empty());

    let sub = Submission {
        esmtp: Default::default(),
        sender: None,
        recipients: vec![rcpt("ana@example.com", "ana@example.com")],
        origin: Origin::Bounce,
    };
    let queued = submit_built(&q, &sub, |id| format!("X-Id: {id}\n\nx\n").into_bytes()).unwrap();
    let f = q.read(State::Incoming, &queued.id).unwrap();
    assert_eq!(f.envelope.sender, None);
    assert_eq!(f.envelope.origin, "bounce");
    assert_eq!(f.content, format!("X-Id: {}\n\nx\n", queued.id).into_bytes());
}

#[test]
fn refused_messages_leave_nothing_in_tmp_or_incoming() {
    let (_d, q) = setup();
    let big = format!("Subject: {}\n\nbody\n", "x".repeat(2000));
    // Whole: cleanup's own error, with the size.
    let e = submit(&q, &smtp(), big.as_bytes()).unwrap_err();
    assert!(matches!(e, Error::Cleanup(_)), "{e}");
    assert!(e.is_permanent() && !e.is_disk_full());
    assert_eq!(
        e.to_string(),
        "message header block of 2010 bytes exceeds header_size_limit = 1000"
    );
    // Streamed: known before the whole header is read.
    let e = stream(&q, &smtp(), big.as_bytes()).unwrap_err();
    assert_eq!(e.to_string(), "message header block exceeds header_size_limit = 1000");
    assert!(q.scan(State::Incoming).unwrap().is_empty());
    assert!(tmp_is_empty(&q));
}

/// An SMTP submission whose headers are rewritten with `canonical`
/// (a canonical(5) file, read by mail-lookup's rewriter).
fn smtp_rewriting(canonical: std::path::PathBuf) -> Submission {
    let r = mail_lookup::rewrite::Rewriter::new(mail_lookup::rewrite::RewriteParams {
        canonical_maps: vec![canonical],
        myorigin: "fiap.edu.br".into(),
        mydestination: vec!["fiap.edu.br".into()],
        ..Default::default()
    })
    .unwrap();
    let mut sub = smtp();
    if let Origin::Smtp { cleanup, .. } = &mut sub.origin {
        cleanup.header_rewrite = Some(mail_cleanup::HeaderRewriter(Arc::new(r)));
    }
    sub
}

#[test]
fn streamed_headers_are_rewritten_and_a_table_failure_is_temporary() {
    let (d, q) = setup();
    let canonical = d.path().join("canonical");
    std::fs::write(&canonical, "root@fiap.edu.br  Administrador@fiap.edu.br\n").unwrap();
    let content = b"From: Root <root@fiap.edu.br>\nTo: root@fiap.edu.br, x@y.org\nSubject: root@fiap.edu.br\n\nroot@fiap.edu.br\n";
    let id = stream(&q, &smtp_rewriting(canonical.clone()), content).unwrap().id;
    let text = String::from_utf8(q.read(State::Incoming, &id).unwrap().content).unwrap();
    assert!(text.contains("\nFrom: Root <Administrador@fiap.edu.br>\n"), "{text}");
    assert!(text.contains("\nTo: Administrador@fiap.edu.br, x@y.org\n"), "{text}");
    assert!(text.contains("\nSubject: root@fiap.edu.br\n"), "{text}");
    assert!(text.ends_with("\n\nroot@fiap.edu.br\n"), "{text}");
    // The table gone: the message is refused for now, and nothing stays.
    std::fs::remove_file(&canonical).unwrap();
    for e in [
        stream(&q, &smtp_rewriting(canonical.clone()), content).unwrap_err(),
        submit(&q, &smtp_rewriting(canonical.clone()), content).unwrap_err(),
    ] {
        assert!(matches!(e, Error::Cleanup(mail_cleanup::Error::Lookup(_))), "{e}");
        assert!(!e.is_permanent() && !e.is_disk_full(), "{e}");
        assert!(e.to_string().contains("canonical"), "{e}");
    }
    assert_eq!(q.scan(State::Incoming).unwrap(), vec![id]);
    assert!(tmp_is_empty(&q));
}

#[test]
fn a_queue_failure_is_a_queue_error_and_leaves_nothing() {
    let (d, q) = setup();
    // incoming/ replaced by a file: the rename fails after the tmp file
    // was written and synced.
    std::fs::remove_dir(q.dir(State::Incoming)).unwrap();
    std::fs::write(q.dir(State::Incoming), b"").unwrap();
    let e = submit(&q, &smtp(), b"x\n").unwrap_err();
    assert!(matches!(e, Error::Queue(_)) && !e.is_permanent() && !e.is_disk_full(), "{e}");
    let e = stream(&q, &smtp(), b"x\n").unwrap_err();
    assert!(matches!(e, Error::Queue(_)), "{e}");
    assert!(tmp_is_empty(&q));

    // No queue at all: the stream's start fails and its commit says so.
    let q = Queue::new(d.path().join("nowhere"));
    let e = stream(&q, &smtp(), b"x\n").unwrap_err();
    assert!(matches!(e, Error::Queue(_)), "{e}");
}

#[test]
fn ipv6_clients_and_the_null_sender() {
    let (_d, q) = setup();
    let mut sub = smtp();
    sub.sender = None;
    sub.origin = Origin::Smtp {
        helo: None,
        client_name: "unknown".into(),
        client_addr: "::1".parse().unwrap(),
        protocol: "SMTP",
        tls: None,
        sasl: None,
        cleanup: params(),
    };
    sub.recipients.push(rcpt("b@x.org", "b@x.org"));
    let queued = stream(&q, &sub, b"x\n").unwrap();
    let f = q.read(State::Incoming, &queued.id).unwrap();
    assert_eq!(f.envelope.sender, None);
    assert_eq!(f.envelope.client, "unknown[::1]");
    assert_eq!(f.envelope.attrs, vec![("protocol".to_owned(), "SMTP".to_owned())]);
    let text = String::from_utf8(f.content).unwrap();
    assert!(text.contains("(unknown [IPv6:::1])"), "{text}");
    // Two recipients: no FOR clause.
    assert!(!text.contains("\tfor <"), "{text}");
    assert!(text.contains("\nFrom: MAILER-DAEMON\n"), "{text}");
}

#[test]
fn blocking_wake_reaches_a_listener() {
    let (d, q) = setup();
    let path = d.path().join("qmgr.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let sub = Submission { origin: Origin::Forward, ..smtp() };
    let queued = submit_and_wake(&q, &sub, b"x\n\nbody\n", &path).unwrap();
    assert_eq!(q.scan(State::Incoming).unwrap(), vec![queued.id.clone()]);
    let (mut s, _) = listener.accept().unwrap();
    let t: Option<Trigger> = mail_ipc::read_frame(&mut s, MAX_FRAME).unwrap();
    assert_eq!(t, Some(Trigger::Queued(vec![queued.id])));
    wake(&path);
    let (mut s, _) = listener.accept().unwrap();
    let t: Option<Trigger> = mail_ipc::read_frame(&mut s, MAX_FRAME).unwrap();
    assert_eq!(t, Some(Trigger::Wakeup));
    // Without a listener, waking is harmless and bounded.
    let started = std::time::Instant::now();
    wake(&d.path().join("none"));
    assert!(started.elapsed() <= mail_ipc::trigger::SEND_TIMEOUT * 2);
}

/// The next trigger frame on `listener`.
async fn next_trigger(listener: &tokio::net::UnixListener) -> Trigger {
    let accept = tokio::time::timeout(std::time::Duration::from_secs(5), listener.accept());
    let (mut s, _) = accept.await.expect("no trigger within 5 s").unwrap();
    mail_ipc::read_frame_async(&mut s, MAX_FRAME).await.unwrap().unwrap()
}

fn some_ids(n: usize) -> Vec<QueueId> {
    (0..n).map(|_| QueueId::generate()).collect()
}

#[tokio::test]
async fn async_wakeup_names_the_queued_ids() {
    let d = tempfile::tempdir().unwrap();
    let listener = tokio::net::UnixListener::bind(d.path().join("qmgr")).unwrap();
    let w = Arc::new(QmgrWakeup::new(d.path().join("qmgr")));
    let id = QueueId::generate();
    w.wake(id.clone());
    assert_eq!(next_trigger(&listener).await, Trigger::Queued(vec![id]));
    wake_async(&d.path().join("qmgr")).await;
    assert_eq!(next_trigger(&listener).await, Trigger::Wakeup);
    let two = some_ids(2);
    wake_queued_async(&d.path().join("qmgr"), &two).await;
    assert_eq!(next_trigger(&listener).await, Trigger::Queued(two));
    // Without a listener, waking is harmless.
    let w = Arc::new(QmgrWakeup::new(d.path().join("none")));
    w.wake(QueueId::generate());
    tokio::task::yield_now().await;
}

#[tokio::test]
async fn ids_committed_during_a_send_go_in_the_next_frame() {
    // The test runtime has one thread: the sending task runs only when
    // this one yields, so everything woken before that is "in flight".
    let d = tempfile::tempdir().unwrap();
    let listener = tokio::net::UnixListener::bind(d.path().join("qmgr")).unwrap();
    let w = Arc::new(QmgrWakeup::new(d.path().join("qmgr")));
    let first = some_ids(100);
    for id in &first {
        w.wake(id.clone());
    }
    assert_eq!(next_trigger(&listener).await, Trigger::Queued(first));
    // Woken while the task is between its send and its next look: sent by
    // that same task, or by a new one, but sent.
    let mut all = Vec::new();
    for round in 0..20 {
        let ids = some_ids(round % 5 + 1);
        for id in &ids {
            w.wake(id.clone());
        }
        all.extend(ids);
        tokio::task::yield_now().await;
    }
    let mut got = Vec::new();
    while got.len() < all.len() {
        match next_trigger(&listener).await {
            Trigger::Queued(ids) => got.extend(ids),
            other => panic!("expected ids, got {other:?}"),
        }
    }
    assert_eq!(got, all);
}

#[tokio::test]
async fn too_many_pending_ids_become_one_plain_wakeup() {
    let d = tempfile::tempdir().unwrap();
    let listener = tokio::net::UnixListener::bind(d.path().join("qmgr")).unwrap();
    let w = Arc::new(QmgrWakeup::new(d.path().join("qmgr")));
    for id in some_ids(mail_ipc::trigger::MAX_QUEUED_IDS + 1) {
        w.wake(id);
    }
    assert_eq!(next_trigger(&listener).await, Trigger::Wakeup);
    // Then back to ids.
    let id = QueueId::generate();
    w.wake(id.clone());
    assert_eq!(next_trigger(&listener).await, Trigger::Queued(vec![id]));
    let extra = tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept());
    assert!(extra.await.is_err(), "one trigger per batch");
}
