//! The log as a syslog daemon and Postfix's log tools see it: an instance
//! with `maillog_destination = syslog` pointed at a datagram socket the
//! test binds receives one RFC 3164 line per event of a message's life, in
//! Postfix's words, tagged `$syslog_name/PROGRAM[PID]`, commands
//! (postsuper, postqueue) included; and pflogsumm, given a day's log of an
//! instance that delivered, deferred, bounced and rejected mail, counts
//! each of them right.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tests::{Instance, Options};

/// A syslog daemon of the test's own: every datagram, as received.
struct Syslog {
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Syslog {
    fn bind() -> (Syslog, String) {
        let dir = tempfile::Builder::new().prefix("postern-syslog-").tempdir().unwrap();
        let path = dir.path().join("log");
        let socket = UnixDatagram::bind(&path).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        // The thread ends with the process; the socket file goes with _dir.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push(line);
            }
        });
        (Syslog { lines, _dir: dir }, path.display().to_string())
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a line contains every one of `parts`.
    fn wait_for(&self, parts: &[&str]) -> String {
        tests::wait_until(Duration::from_secs(20), || {
            self.lines().into_iter().find(|l| parts.iter().all(|p| l.contains(p)))
        })
        .unwrap_or_else(|| panic!("no line with {parts:?} in {:#?}", self.lines()))
    }

    /// The lines as rsyslog writes them to /var/log/mail.log: the
    /// priority dropped, the host name after the timestamp.
    fn as_mail_log(&self) -> String {
        let mut out = String::new();
        for l in self.lines() {
            let rest = l.split_once('>').unwrap().1;
            let (stamp, text) = rest.split_at(15);
            out.push_str(&format!("{stamp} testhost{text}\n"));
        }
        out
    }
}

/// `postfix/smtpd[123]: TEXT` from a received datagram, checking the
/// RFC 3164 frame: mail.info (22), mail.warning (20), ...
fn parse(line: &str) -> (u32, &str, u32, &str) {
    let (pri, rest) = line.strip_prefix('<').unwrap().split_once('>').unwrap();
    let stamp = &rest[..15];
    let months =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = stamp.as_bytes();
    assert!(
        months.contains(&&stamp[..3])
            && (b[3], b[6], b[9], b[12], &rest[15..16]) == (b' ', b' ', b':', b':', " "),
        "timestamp of {line:?}"
    );
    let (tag, text) = rest[16..].split_once(": ").unwrap();
    let (ident, pid) = tag.strip_suffix(']').unwrap().split_once('[').unwrap();
    (pri.parse().unwrap(), ident, pid.parse().unwrap(), text)
}

fn syslog_instance(socket: &str, extra: &[&str]) -> Instance {
    let mut postconf =
        vec!["maillog_destination = syslog".to_owned(), format!("syslog_socket = {socket}")];
    postconf.extend(extra.iter().map(|s| (*s).to_owned()));
    Instance::start_with(Options { postconf, ..Options::default() })
}

#[test]
fn one_message_s_life_in_postfix_s_syslog_lines() {
    let (syslog, socket) = Syslog::bind();
    let inst = syslog_instance(&socket, &["syslog_name = postfix"]);
    let mut c = inst.smtp();
    let reply = c.send_mail(
        "suporte@postern.test",
        &["suporte@postern.test"],
        "Message-ID: <life@postern.test>\r\nSubject: one life\r\n\r\nbody\r\n",
    );
    c.cmd("QUIT", 221);
    let id = reply.split_whitespace().last().unwrap().to_owned();
    assert!(tests::is_queue_id(&id), "{reply}");
    inst.wait_for_mail("suporte", 1, Duration::from_secs(20));
    let removed = syslog.wait_for(&[&id, ": removed"]);

    let connect = syslog.wait_for(&["postfix/smtpd[", "connect from localhost[127.0.0.1]"]);
    let client = syslog.wait_for(&[&format!("{id}: client=localhost[127.0.0.1]")]);
    let msgid = syslog.wait_for(&[&format!("{id}: message-id=<life@postern.test>")]);
    let from = syslog.wait_for(&[
        &format!("{id}: from=<suporte@postern.test>, size="),
        "nrcpt=1 (queue active)",
    ]);
    let to = syslog.wait_for(&[&format!("{id}: to=<suporte@postern.test>"), "status=sent"]);
    for (line, program) in [
        (&connect, "smtpd"),
        (&client, "smtpd"),
        (&from, "qmgr"),
        (&to, "local"),
        (&removed, "qmgr"),
    ] {
        let (pri, ident, pid, _) = parse(line);
        assert_eq!(pri, 22, "mail.info: {line}");
        assert_eq!(ident, format!("postfix/{program}"), "{line}");
        assert!(pid > 1, "{line}");
    }
    assert!(parse(&msgid).1.starts_with("postfix/"), "{msgid}");
    // The smtpd lines come from one process, and it is a worker master started.
    let smtpd_pids = tests::service_pids(&inst.status(), "smtp");
    assert!(smtpd_pids.contains(&parse(&client).2), "{client} not from {smtpd_pids:?}");

    // Mail for elsewhere waits (no DNS in a dev instance): a warning-free
    // deferral, then the operator deletes it; postsuper logs as the daemons do.
    let mut c = inst.smtp();
    let reply =
        c.send_mail("suporte@postern.test", &["someone@example.org"], "Subject: away\r\n\r\nx\r\n");
    c.cmd("QUIT", 221);
    let away = reply.split_whitespace().last().unwrap().to_owned();
    syslog.wait_for(&[&format!("{away}: to=<someone@example.org>"), "status=deferred"]);
    let out = inst.command("postsuper").args(["-d", &away]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // The log is not stderr, so postsuper tells the operator there too.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("postsuper: {away}: removed")),
        "{out:?}"
    );
    let gone = syslog.wait_for(&["postfix/postsuper[", &format!("{away}: removed")]);
    assert_eq!(parse(&gone).0, 22, "{gone}");

    // postqueue's fatal errors reach the log too, as Postfix's do (mail.crit).
    let bad = inst.command("postqueue").args(["-s", "[bad"]).output().unwrap();
    assert!(!bad.status.success());
    let fatal = syslog.wait_for(&[
        "postfix/postqueue[",
        "fatal: Cannot flush mail queue - invalid destination: \"[bad\"",
    ]);
    assert_eq!(parse(&fatal).0, 18, "{fatal}");

    // A refused recipient, as Postfix's smtpd logs it.
    let mut c = inst.smtp();
    c.cmd("EHLO client.example", 250);
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    c.cmd("RCPT TO:<nobody-here@postern.test>", 550);
    c.cmd("QUIT", 221);
    let reject = syslog.wait_for(&["NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1"]);
    assert_eq!(parse(&reject).1, "postfix/smtpd", "{reject}");

    if !tests::have_tool("pflogsumm") {
        tests::skip("pflogsumm is not installed; the syslog lines were checked");
        return;
    }
    // syslog_name = postfix: Postfix's own tools read it unchanged.
    let log = syslog.as_mail_log();
    let summary = pflogsumm(&log, None);
    assert_eq!(grand_total(&summary, "received"), 2, "{summary}");
    assert_eq!(grand_total(&summary, "delivered"), 1, "{summary}");
    assert_eq!(grand_total(&summary, "rejected"), 1, "{summary}");
}

/// Runs pflogsumm on `log` and returns its report.
fn pflogsumm(log: &str, syslog_name: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mail.log");
    std::fs::write(&file, log).unwrap();
    let mut cmd = std::process::Command::new("pflogsumm");
    if let Some(name) = syslog_name {
        cmd.arg(format!("--syslog-name={name}"));
    }
    let out = cmd.arg(&file).output().expect("run pflogsumm");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A number of pflogsumm's "Grand Totals" (`    2   received`).
fn grand_total(summary: &str, what: &str) -> u64 {
    let totals = summary.split("Grand Totals").nth(1).expect("a Grand Totals section");
    let line = totals
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(what))
        .unwrap_or_else(|| panic!("no {what} in {totals}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn pflogsumm_counts_a_day_of_mail() {
    if !tests::have_tool("pflogsumm") {
        tests::skip("pflogsumm is not installed");
        return;
    }
    let (syslog, socket) = Syslog::bind();
    let inst = syslog_instance(&socket, &[]);
    // Delivered: two messages over SMTP, one through sendmail.
    let mut c = inst.smtp();
    for n in 0..2 {
        c.send_mail(
            "suporte@postern.test",
            &["suporte@postern.test"],
            &format!("Subject: {n}\r\n\r\nx\r\n"),
        );
    }
    // Deferred: mail for elsewhere, without DNS.
    c.send_mail("suporte@postern.test", &["far@example.org"], "Subject: far\r\n\r\nx\r\n");
    // Rejected: an unknown local user.
    c.cmd("MAIL FROM:<suporte@postern.test>", 250);
    c.cmd("RCPT TO:<ghost@postern.test>", 550);
    c.cmd("QUIT", 221);
    inst.sendmail(&["-f", "suporte@postern.test", "suporte@postern.test"], "Subject: local\n\nx\n");
    // Bounced: a local submission to a user who does not exist; the
    // notice goes back to suporte (a fourth delivery).
    inst.sendmail(&["-f", "suporte@postern.test", "ghost@postern.test"], "Subject: lost\n\nx\n");
    inst.wait_for_mail("suporte", 4, Duration::from_secs(30));
    syslog.wait_for(&["to=<far@example.org>", "status=deferred"]);
    syslog.wait_for(&["to=<ghost@postern.test>", "status=bounced"]);
    // A Maildir file comes before local's line about it.
    tests::wait_until(Duration::from_secs(20), || {
        (syslog.lines().iter().filter(|l| l.contains("status=sent")).count() >= 4).then_some(())
    })
    .expect("four status=sent lines");
    let log = syslog.as_mail_log();
    drop(inst);

    let summary = pflogsumm(&log, Some("postern"));
    // The bounce notice is no "received" message: Postfix makes it
    // without a client= or pickup line too.
    assert_eq!(grand_total(&summary, "received"), 5, "{summary}");
    assert_eq!(grand_total(&summary, "delivered"), 4, "{summary}");
    assert_eq!(grand_total(&summary, "deferred"), 1, "{summary}");
    assert_eq!(grand_total(&summary, "bounced"), 1, "{summary}");
    assert_eq!(grand_total(&summary, "rejected"), 1, "{summary}");
    // Under another name the same log is not Postfix's: nothing counted.
    let other = pflogsumm(&log, None);
    assert_eq!(grand_total(&other, "received"), 0, "{other}");
}
