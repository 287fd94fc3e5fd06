//! Issue 5, defect 5, the status log's side: a message whose status log
//! grew past the size the reader used to accept (64 MiB, reached by a
//! message deferred round after round) made qmgr forget who already had
//! the message, and it delivered to them again. The log is now read up
//! to a larger bound and compacted when it grows, so the recipient who
//! has it does not get it again and the other one gets it once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use mail_queue::{Envelope, Recipient, StatusRecord};
use mail_types::{DeliveryStatus, EnhancedStatus};
use std::io::Write;
use std::time::Duration;
use tests::{Instance, Options, fake_queue_id, header, v1_queue_file, wait_until};

#[test]
fn a_huge_status_log_redelivers_nobody() {
    let inst = Instance::start_with(Options {
        postconf: vec!["recipient_delimiter = +".into()],
        ..Options::default()
    });
    let id = fake_queue_id();
    let rcpt = |a: &str| Recipient {
        address: a.parse().unwrap(),
        original: a.into(),
        esmtp: Default::default(),
    };
    let envelope = Envelope {
        sender: Some("root@postern.test".parse().unwrap()),
        recipients: vec![rcpt("suporte+done@postern.test"), rcpt("suporte+new@postern.test")],
        arrival: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        client: "local".into(),
        origin: "pickup".into(),
        attrs: vec![],
        esmtp: Default::default(),
    };
    // The status log: recipient 0 delivered in the first round, then
    // 70 MB of deferrals of recipient 1, as years of retries leave.
    let frame = |r: &StatusRecord| {
        let b = stdx::codec::encode(r).unwrap();
        let mut f = (b.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&b);
        f
    };
    let mut log = std::io::BufWriter::new(
        std::fs::File::create(inst.queue().join("status").join(&id)).unwrap(),
    );
    log.write_all(&frame(&StatusRecord {
        recipient: 0,
        outcome: DeliveryStatus::sent("delivered to maildir"),
        time: 1,
    }))
    .unwrap();
    let deferred = frame(&StatusRecord {
        recipient: 1,
        outcome: DeliveryStatus::defer(EnhancedStatus(4, 3, 0), "x".repeat(1000)),
        time: 2,
    });
    let mut written = 0;
    while written < 70 << 20 {
        log.write_all(&deferred).unwrap();
        written += deferred.len();
    }
    log.into_inner().unwrap().sync_all().unwrap();

    // Format version 1, which the code before and after the fix reads
    // (a message that has been deferred that long predates version 2).
    let bytes = v1_queue_file(&envelope, b"Subject: retried\n\nonce only\n");
    let tmp = inst.queue().join("tmp").join(format!("{id}.test"));
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, inst.queue().join("incoming").join(&id)).unwrap();
    let out = inst.command("postqueue").arg("-f").output().unwrap();
    assert!(out.status.success(), "postqueue -f: {out:?}");

    let gone = wait_until(Duration::from_secs(60), || {
        let empty =
            ["incoming", "active", "deferred"].iter().all(|s| inst.queue_files(s).is_empty());
        (empty && !inst.new_mail("suporte").is_empty()).then_some(())
    });
    assert!(
        gone.is_some(),
        "message not finished: incoming {:?} active {:?} deferred {:?} mail {}",
        inst.queue_files("incoming"),
        inst.queue_files("active"),
        inst.queue_files("deferred"),
        inst.new_mail("suporte").len()
    );
    std::thread::sleep(Duration::from_millis(500));
    let to: Vec<String> =
        inst.new_mail_texts("suporte").iter().flat_map(|t| header(t, "Delivered-To")).collect();
    assert_eq!(to, ["suporte+new@postern.test"], "deliveries");
    assert!(!inst.queue().join("status").join(&id).exists(), "status log left behind");
}
