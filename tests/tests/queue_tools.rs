//! The queue operator's tools on a real instance with real queue
//! contents (issue 8): `mailq`/`postqueue -p` and `-j` byte for byte,
//! `postqueue -i`/`-s` flushing, `postcat -q`, `postern qshape`, and
//! `postsuper -h`/`-H`/`-r`/`-d` moving and removing files and logging
//! each action; bad ids rejected with Postfix's messages, and anyone but
//! root or the queue's owner refused.
//!
//! Mail sits in the queue because it is for remote domains and the
//! relayhost is a loopback port nobody listens on: without an SMTP
//! client the attempt fails as an agent that is down, with one it fails
//! as a refused connection; either way qmgr defers it. What the tools
//! print is checked against what the queue holds, read independently
//! (directory listings, file sizes, the envelope and the status log
//! through `mail_queue`, the time through date(1)).
#![allow(clippy::unwrap_used)]

use mail_queue::{Queue, State};
use mail_types::{DeliveryStatus, QueueId};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};
use tests::{Instance, Options, wait_until};

fn start() -> Instance {
    // A port that was free a moment ago: connections to it are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    Instance::start_with(Options {
        before_start: Some(tests::log_to_file),
        postconf: vec![format!("relayhost = [127.0.0.1]:{port}")],
        ..Options::default()
    })
}

fn run(inst: &Instance, program: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = inst
        .command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ids_in(inst: &Instance, state: &str) -> Vec<String> {
    inst.queue_files(state)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

fn maillog(inst: &Instance) -> String {
    std::fs::read_to_string(inst.dir.join("maillog")).unwrap_or_default()
}

/// Whether postsuper logged `text` in the daemons' log, in Postfix's
/// line shape (`... postern/postsuper[PID]: TEXT`).
fn logged(inst: &Instance, text: &str) -> bool {
    maillog(inst).lines().any(|l| {
        l.split_once(" postern/postsuper[")
            .and_then(|(_, rest)| rest.split_once("]: "))
            .is_some_and(|(pid, t)| pid.parse::<u32>().is_ok() && t == text)
    })
}

/// `date`'s rendering of an arrival time in showq's layout.
fn asctime(secs: u64) -> String {
    let out = Command::new("date")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg("+%a %b %e %H:%M:%S")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

/// How many records the message's status log holds.
fn records(q: &Queue, id: &str) -> usize {
    q.read_status(&QueueId::parse(id).unwrap()).map(|r| r.len()).unwrap_or(0)
}

/// What `postqueue -p` must print for the deferred message `id`: read
/// from the file itself and its status log, grouped by reason as
/// Postfix's showq does.
fn expected_entry(q: &Queue, id: &str, mark: &str, state: State) -> (String, u64) {
    let qid = QueueId::parse(id).unwrap();
    let size = std::fs::metadata(q.path(state, &qid)).unwrap().len();
    let env = q.read_envelope(state, &qid).unwrap();
    let mut reason: Vec<Option<String>> = vec![None; env.recipients.len()];
    for r in q.read_status(&qid).unwrap() {
        if let DeliveryStatus::Deferred { text, .. } = r.outcome {
            reason[r.recipient as usize] = Some(text);
        }
    }
    let mut order: Vec<Option<String>> = vec![None];
    for r in &reason {
        if !order.contains(r) {
            order.push(r.clone());
        }
    }
    let mut rcpts: Vec<(String, Option<String>)> =
        env.recipients.iter().zip(reason).map(|(r, why)| (r.address.to_string(), why)).collect();
    rcpts.sort_by_key(|(_, why)| order.iter().position(|o| o == why));
    let sender = env.sender.map(|s| s.to_string()).unwrap_or_else(|| "MAILER-DAEMON".into());
    let shown = format!("{id}{mark}");
    let time = asctime(env.arrival);
    let mut text = format!("{shown:<20} {size:>8} {time:<19} {sender}\n");
    let mut previous: Option<&String> = None;
    for (addr, why) in &rcpts {
        if why.as_ref() != previous && why.is_some() {
            let why = why.as_ref().unwrap();
            text.push_str(&format!("{}({why})\n", " ".repeat(76usize.saturating_sub(why.len()))));
        }
        previous = why.as_ref();
        text.push_str(&format!("{}{addr}\n", " ".repeat(50)));
    }
    (text, size)
}

const HEADING: &str =
    "-------Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n";

#[test]
fn operator_tools_on_real_queue_contents() {
    let inst = start();
    let q = Queue::new(inst.queue());
    inst.sendmail(
        &["-f", "sender@postern.test", "someone@remote.example", "other@remote2.example"],
        "Subject: tools test\n\nbody line one\n",
    );
    let first = wait_until(Duration::from_secs(20), || {
        let d = ids_in(&inst, "deferred");
        (d.len() == 1).then(|| d[0].clone())
    })
    .expect("the first message was not deferred");
    inst.sendmail(&["-f", "ana@postern.test", "bob@remote.example"], "Subject: second\n\nx\n");
    let second = wait_until(Duration::from_secs(20), || {
        let d = ids_in(&inst, "deferred");
        (d.len() == 2).then(|| d.into_iter().find(|i| *i != first).unwrap())
    })
    .expect("the second message was not deferred");
    let mut both = [first.clone(), second.clone()];
    both.sort();

    // mailq and postqueue -p: Postfix's layout, byte for byte.
    let (a, sa) = expected_entry(&q, &both[0], "", State::Deferred);
    let (b, sb) = expected_entry(&q, &both[1], "", State::Deferred);
    let listing = format!("{HEADING}{a}\n{b}\n-- {} Kbytes in 2 Requests.\n", (sa + sb) / 1024);
    assert_eq!(inst.mailq(), listing);
    let mailq = run(&inst, "mailq", &[], "");
    assert_eq!(stdout(&mailq), listing);

    // postqueue -j: Postfix's JSON lines.
    let qid = QueueId::parse(&first).unwrap();
    let env = q.read_envelope(State::Deferred, &qid).unwrap();
    let status = q.read_status(&qid).unwrap();
    let why = |i: u32| match &status.iter().rev().find(|r| r.recipient == i).unwrap().outcome {
        DeliveryStatus::Deferred { text, .. } => serde_json::Value::from(text.as_str()).to_string(),
        other => panic!("{other:?}"),
    };
    let json = stdout(&run(&inst, "postqueue", &["-j"], ""));
    let line = json.lines().find(|l| l.contains(&first)).unwrap();
    assert_eq!(
        line,
        format!(
            "{{\"queue_name\": \"deferred\", \"queue_id\": \"{first}\", \"arrival_time\": {}, \
             \"message_size\": {}, \"forced_expire\": false, \"sender\": \"sender@postern.test\", \
             \"recipients\": [{{\"address\": \"someone@remote.example\", \"delay_reason\": {}}}, \
             {{\"address\": \"other@remote2.example\", \"delay_reason\": {}}}]}}",
            env.arrival,
            std::fs::metadata(q.path(State::Deferred, &qid)).unwrap().len(),
            why(0),
            why(1)
        )
    );

    // postqueue -i and -s: qmgr retries now (its backoff is 300 s), so
    // another deferral is recorded within seconds.
    let before = records(&q, &first);
    let o = run(&inst, "postqueue", &["-i", &first], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        wait_until(Duration::from_secs(15), || (records(&q, &first) > before).then_some(()))
            .is_some(),
        "postqueue -i did not make qmgr retry {first}"
    );
    let before = records(&q, &first);
    let o = run(&inst, "postqueue", &["-s", "remote2.example"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        wait_until(Duration::from_secs(15), || (records(&q, &first) > before).then_some(()))
            .is_some(),
        "postqueue -s did not make qmgr retry {first}"
    );
    let o = run(&inst, "postqueue", &["-i", "../x"], "");
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(stderr(&o), "postqueue: fatal: Cannot flush queue ID - invalid name: \"../x\"\n");
    let o = run(&inst, "postqueue", &["-s", "bad site"], "");
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(
        stderr(&o),
        "postqueue: fatal: Cannot flush mail queue - invalid destination: \"bad site\"\n"
    );
    // Wait until qmgr is done with the retries: both back in deferred/.
    wait_until(Duration::from_secs(20), || (ids_in(&inst, "deferred").len() == 2).then_some(()))
        .expect("messages did not return to deferred/");

    // postcat -q: envelope and content in Postfix's record shape.
    let cat = run(&inst, "postcat", &["-q", &first], "");
    assert!(cat.status.success(), "{}", stderr(&cat));
    let text = stdout(&cat);
    assert!(
        text.starts_with(&format!("*** ENVELOPE RECORDS deferred/{first} ***\nmessage_size: ")),
        "{text}"
    );
    assert!(text.contains(&format!("\nmessage_arrival_time: {} ", asctime(env.arrival))), "{text}");
    for line in [
        "sender: sender@postern.test",
        "original_recipient: someone@remote.example\nrecipient: someone@remote.example",
        "original_recipient: other@remote2.example\nrecipient: other@remote2.example",
        &format!("*** MESSAGE CONTENTS deferred/{first} ***"),
        "Subject: tools test",
    ] {
        assert!(text.contains(&format!("\n{line}\n")), "no {line:?} in {text}");
    }
    assert!(
        text.ends_with(&format!(
            "\n\nbody line one\n*** HEADER EXTRACTED deferred/{first} ***\n*** MESSAGE FILE END deferred/{first} ***\n"
        )),
        "{text}"
    );
    assert_eq!(stdout(&run(&inst, "postcat", &["-b", "-q", &first], "")), "\nbody line one\n");
    let headers = stdout(&run(&inst, "postcat", &["-h", "-q", &first], ""));
    assert!(headers.contains("Subject: tools test\n") && !headers.contains("***"), "{headers}");
    let o = run(&inst, "postcat", &["-q", "../x"], "");
    assert_eq!(
        (o.status.code(), stderr(&o)),
        (Some(1), "postcat: fatal: bad mail queue ID: ../x\n".into())
    );
    let missing = tests::fake_queue_id();
    let o = run(&inst, "postcat", &["-q", &missing], "");
    assert_eq!(
        (o.status.code(), stderr(&o)),
        (
            Some(1),
            format!("postcat: fatal: open queue file {missing}: No such file or directory\n")
        )
    );
    // A damaged copy: named with its problem, nothing of it shown.
    let copy = inst.dir.join("damaged");
    let mut bytes = std::fs::read(q.path(State::Deferred, &qid)).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    std::fs::File::create(&copy).unwrap().write_all(&bytes).unwrap();
    let o = run(&inst, "postcat", &[copy.to_str().unwrap()], "");
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "postcat: warning: {}: input is not a valid queue file: content checksum mismatch\n",
            copy.display()
        )
    );

    // qshape: recipient domains by age, then sender domains; the default
    // queues (incoming, active) are empty.
    let heading =
        "                                         T  5 10 20 40 80 160 320 640 1280 1280+\n";
    let row =
        |name: &str, n: u32| format!("{name:>39}{n:>3}{n:>3}  0  0  0  0   0   0   0    0     0\n");
    assert_eq!(
        inst.postern(&["qshape", "deferred"]),
        format!(
            "{heading}{}{}{}",
            row("TOTAL", 3),
            row("remote.example", 2),
            row("remote2.example", 1)
        )
    );
    assert_eq!(
        inst.postern(&["qshape", "-s", "deferred"]),
        format!("{heading}{}{}", row("TOTAL", 2), row("postern.test", 2))
    );
    assert_eq!(inst.postern(&["qshape"]), format!("{heading}{}", row("TOTAL", 0)));

    // postsuper -h: to hold/, logged, shown with "!".
    let o = run(&inst, "postsuper", &["-h", &first], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("postsuper: {first}: placed on hold\npostsuper: Placed on hold: 1 message\n")
    );
    assert_eq!(ids_in(&inst, "hold"), std::slice::from_ref(&first));
    assert!(logged(&inst, &format!("{first}: placed on hold")), "{}", maillog(&inst));
    assert!(inst.mailq().contains(&format!("\n{first}! ")), "{}", inst.mailq());
    // Held twice: nothing to do.
    let o = run(&inst, "postsuper", &["-h", &first], "");
    assert_eq!(stderr(&o), "postsuper: Placed on hold: 0 messages\n");

    // postsuper -H: back to deferred/, due now.
    let released_at = SystemTime::now() - Duration::from_secs(2);
    let o = run(&inst, "postsuper", &["-H", "ALL"], "");
    assert_eq!(
        stderr(&o),
        format!(
            "postsuper: {first}: released from hold\npostsuper: Released from hold: 1 message\n"
        )
    );
    assert!(ids_in(&inst, "hold").is_empty());
    let mtime = std::fs::metadata(q.path(State::Deferred, &qid)).unwrap().modified().unwrap();
    assert!(mtime >= released_at, "not due now: {mtime:?}");

    // postsuper -r: a new id through incoming/, same envelope facts, the
    // old file and its status log gone.
    let o = run(&inst, "postsuper", &["-r", &first], "");
    assert_eq!(
        stderr(&o),
        format!("postsuper: {first}: requeued\npostsuper: Requeued: 1 message\n")
    );
    assert!(q.locate(&qid).is_none(), "the old file is still in {:?}", q.locate(&qid));
    assert_eq!(records(&q, &first), 0, "the old status log is still there");
    let requeued = wait_until(Duration::from_secs(20), || {
        let d = ids_in(&inst, "deferred");
        d.into_iter().find(|i| *i != second && *i != first)
    })
    .expect("the requeued message did not come back to deferred/");
    let new = q.read_envelope(State::Deferred, &QueueId::parse(&requeued).unwrap()).unwrap();
    assert_eq!(new.sender, env.sender);
    assert_eq!(new.recipients, env.recipients);
    assert_eq!(new.arrival, env.arrival, "the age of a requeued message is kept");
    assert!(logged(&inst, &format!("{first}: requeued")), "{}", maillog(&inst));
    assert!(logged(&inst, &format!("{first}: released from hold")), "{}", maillog(&inst));

    // postsuper -d - (ids on stdin), bad ids warned about with Postfix's
    // words; then -d ALL.
    let o = run(&inst, "postsuper", &["-d", "-"], &format!("{requeued}\n../x\nnothex\n"));
    assert!(o.status.success());
    assert_eq!(
        stderr(&o),
        format!(
            "postsuper: warning: invalid mail queue id: ../x\n\
             postsuper: warning: invalid mail queue id: nothex\n\
             postsuper: {requeued}: removed\npostsuper: Deleted: 1 message\n"
        )
    );
    assert!(logged(&inst, &format!("{requeued}: removed")), "{}", maillog(&inst));
    assert_eq!(records(&q, &requeued), 0);
    let o = run(&inst, "postsuper", &["-d", "ALL"], "");
    assert_eq!(
        stderr(&o),
        format!("postsuper: {second}: removed\npostsuper: Deleted: 1 message\n")
    );
    assert_eq!(records(&q, &second), 0);
    assert_eq!(inst.mailq(), "Mail queue is empty\n");
    let o = run(&inst, "postsuper", &["-d", "ALL", "corrupted"], "");
    assert_eq!(
        (o.status.code(), stderr(&o)),
        (Some(1), "postsuper: fatal: invalid directory name: corrupted\n".into())
    );
    assert!(logged(&inst, "Deleted: 1 message"), "{}", maillog(&inst));
    assert!(logged(&inst, "warning: invalid mail queue id: ../x"), "{}", maillog(&inst));
}

/// Only root and the queue's owner may run postsuper: as root, the same
/// command run as `nobody` is refused with Postfix's message.
#[test]
fn postsuper_refuses_other_users() {
    if !tests::is_root() {
        return tests::skip("needs root to run postsuper as another user");
    }
    let (_tmp, dir) = tests::init_dir(&[]);
    use std::os::unix::fs::PermissionsExt;
    // nobody must get as far as reading the configuration.
    for p in [dir.parent().unwrap(), &dir] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in ["main.toml", "master.toml"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    use std::os::unix::process::CommandExt;
    let o = Command::new(tests::bin("postsuper"))
        .arg("-c")
        .arg(&dir)
        .args(["-d", "ALL"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "postsuper: fatal: use of this command is reserved for the superuser\n");
}
