//! Issue 10: the real IMAP clients users run, from Debian packages, against
//! a real instance after mail came in through smtpd: mbsync (isync)
//! syncing the whole account both ways, mutt in batch mode reading a
//! message over imaps://, and fetchmail over IMAP (STARTTLS) and IMAPS
//! handing messages to an mda that writes a file. Without the client a
//! test says `skipped: ...` (tests/run.sh installs isync, mutt and
//! fetchmail as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tests::{Instance, have_tool, skip};

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "{cmd:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out, stdout)
}

/// Mail through smtpd (the SMTP port, as a remote sender would).
fn deliver(inst: &Instance, subjects: &[&str]) {
    let before = count(&inst.maildir("suporte"));
    for s in subjects {
        let mut c = inst.smtp();
        c.send_mail(
            "remetente@example.org",
            &["suporte@postern.test"],
            &format!("From: remetente@example.org\r\nTo: suporte@postern.test\r\nSubject: {s}\r\n\r\nCorpo de {s}\r\n"),
        );
        c.cmd("QUIT", 221);
    }
    tests::wait_until(Duration::from_secs(30), || {
        (count(&inst.maildir("suporte")) >= before + subjects.len()).then_some(())
    })
    .expect("the messages were not delivered");
}

/// The files in a Maildir folder's new/ and cur/.
fn files(md: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = fs::read_dir(md.join(sub)) {
            v.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    v.sort();
    v
}

fn count(md: &Path) -> usize {
    files(md).len()
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// The Maildir file whose content contains `needle`, and its info flags.
fn find(md: &Path, needle: &str) -> Option<(PathBuf, String)> {
    files(md).into_iter().find_map(|p| {
        let text = fs::read_to_string(&p).ok()?;
        if !text.contains(needle) {
            return None;
        }
        let name = p.file_name()?.to_string_lossy().into_owned();
        let flags = name.split_once(":2,").map(|(_, f)| f.to_owned()).unwrap_or_default();
        Some((p, flags))
    })
}

/// One IMAP session over Python's imaplib (plain, loopback), printing what
/// the script prints; the server-side view after a client's sync.
fn imap_script(inst: &Instance, body: &str) -> String {
    let script = format!(
        "import imaplib, sys\nm = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n\
         m.login('suporte', 'suporte')\n{body}\nm.logout()\n"
    );
    let (out, stdout) =
        run(Command::new("python3").arg("-c").arg(script).arg(port(&inst.addr("imap"))));
    assert!(out.status.success(), "the imaplib check failed");
    stdout
}

#[test]
fn mbsync_syncs_the_account_both_ways() {
    if !have_tool("mbsync") {
        skip("mbsync is not installed (apt-get install isync)");
        return;
    }
    if !have_tool("python3") {
        skip("python3 is not installed");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, &["um", "dois", "tres"]);
    let home = tempfile::tempdir().unwrap();
    let local = home.path().join("mail");
    fs::create_dir(&local).unwrap();
    let rc = home.path().join("mbsyncrc");
    fs::write(
        &rc,
        format!(
            "IMAPAccount postern\nHost localhost\nPort {}\nUser suporte\nPass suporte\n\
             SSLType IMAPS\nCertificateFile {}\n\n\
             IMAPStore remote\nAccount postern\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel conta\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\n\
             Expunge Both\nSyncState *\nSync All\n",
            port(&inst.addr("imaps")),
            inst.dir.join("tls/cert.pem").display(),
            local.display(),
            local.display()
        ),
    )
    .unwrap();
    let mbsync = || {
        let (out, _) = run(Command::new("timeout")
            .args(["60", "mbsync", "-V", "-c"])
            .arg(&rc)
            .arg("-a")
            .env("HOME", home.path()));
        assert!(out.status.success(), "mbsync failed");
    };
    // Server -> local: every message and every folder.
    mbsync();
    let inbox = local.join("INBOX");
    assert_eq!(count(&inbox), 3);
    for s in ["um", "dois", "tres"] {
        assert!(find(&inbox, &format!("Corpo de {s}")).is_some(), "{s} not synced");
    }
    for folder in ["Enviados", "Lixeira", "Rascunhos"] {
        assert!(local.join(folder).join("cur").is_dir(), "folder {folder} not synced");
    }
    // Local changes: a flag, a new message in a folder and in INBOX, a deletion.
    let (dois, _) = find(&inbox, "Corpo de dois").unwrap();
    let name = dois.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
    fs::rename(&dois, inbox.join("cur").join(format!("{base}:2,FS"))).unwrap();
    let (tres, _) = find(&inbox, "Corpo de tres").unwrap();
    fs::remove_file(tres).unwrap();
    fs::write(
        inbox.join("cur/1700000000.M1P1.cliente:2,S"),
        "From: suporte@postern.test\nSubject: local\n\nEscrito no cliente\n",
    )
    .unwrap();
    fs::write(
        local.join("Rascunhos/cur/1700000001.M2P1.cliente:2,D"),
        "Subject: rascunho\n\nRascunho do cliente\n",
    )
    .unwrap();
    mbsync();
    // The server's Maildir shows each change.
    let md = inst.maildir("suporte");
    assert_eq!(count(&md), 3, "{:?}", files(&md));
    assert_eq!(find(&md, "Corpo de dois").unwrap().1, "FS");
    assert!(find(&md, "Corpo de tres").is_none(), "the deletion did not reach the server");
    assert!(find(&md, "Escrito no cliente").unwrap().1.contains('S'));
    let drafts = md.join(".Rascunhos");
    assert!(find(&drafts, "Rascunho do cliente").unwrap().1.contains('D'));
    // And IMAP says the same.
    let seen = imap_script(
        &inst,
        "m.select('INBOX', readonly=True)\n\
         for x in m.fetch('1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')[1]:\n\
         \x20   print(x)\n\
         print(m.search(None, 'FLAGGED')[1])\n\
         print(m.status('Rascunhos', '(MESSAGES)')[1])\n",
    );
    assert!(seen.contains("Subject: um"), "{seen}");
    assert!(seen.contains("Subject: dois"), "{seen}");
    assert!(seen.contains("Subject: local"), "{seen}");
    assert!(!seen.contains("Subject: tres"), "{seen}");
    assert!(seen.contains("[b'2']"), "only dois is flagged: {seen}");
    assert!(seen.contains("MESSAGES 1"), "{seen}");
    // A server-side change comes back down on the next sync.
    deliver(&inst, &["quatro"]);
    mbsync();
    assert!(find(&inbox, "Corpo de quatro").is_some());
    assert_eq!(count(&inbox), 4);
}

#[test]
fn mutt_reads_a_message_over_imaps() {
    if !have_tool("mutt") {
        skip("mutt is not installed (apt-get install mutt)");
        return;
    }
    if !have_tool("script") {
        skip("script (util-linux) is not installed; mutt needs a terminal");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, &["primeira", "segunda"]);
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out.txt");
    let rc = home.path().join("muttrc");
    fs::write(
        &rc,
        format!(
            "set imap_user=suporte\nset imap_pass=suporte\n\
             set ssl_ca_certificates_file={}\nset ssl_verify_host=yes\n\
             set ssl_force_tls=yes\nset imap_passive=no\nset header_cache=\n\
             set message_cachedir=\nset wait_key=no\nset pipe_decode=yes\n\
             set sort=date-sent\nset mbox_type=Maildir\nset folder={}\n\
             set record=\nset postponed=\nset move=no\nset quit=yes\n",
            inst.dir.join("tls/cert.pem").display(),
            home.path().display()
        ),
    )
    .unwrap();
    let url = format!("imaps://localhost:{}/INBOX", port(&inst.addr("imaps")));
    // The second message shown in mutt's pager, then piped to a file;
    // mutt needs a terminal, which script(1) gives it (and its output is
    // the screen).
    let cmd = format!(
        "mutt -n -F {} -f {url} -e 'push \"<next-entry><display-message><exit>\
         <pipe-message>cat > {}<enter><quit>\"'",
        rc.display(),
        out.display()
    );
    let (o, screen) = run(Command::new("timeout")
        .args(["20", "script", "-qec"])
        .arg(&cmd)
        .arg("/dev/null")
        .env("HOME", home.path())
        .env("TERM", "xterm"));
    assert!(o.status.success(), "mutt failed");
    // The index listed both, one still new after reading the other
    // (the pager's own screen is skipped by curses: input was waiting).
    for want in ["primeira", "segunda", "[Msgs:2 New:1 ", "2 kept, 0 deleted."] {
        assert!(screen.contains(want), "{want:?} not on mutt's screen: {screen}");
    }
    let got = fs::read_to_string(&out).expect("mutt wrote nothing");
    assert!(got.contains("Subject: segunda"), "{got}");
    assert!(got.contains("Corpo de segunda"), "{got}");
    assert!(!got.contains("primeira"), "{got}");
    // Reading it set \Seen on the server, the first stayed unread.
    let md = inst.maildir("suporte");
    assert!(find(&md, "Corpo de segunda").unwrap().1.contains('S'));
    assert!(!find(&md, "Corpo de primeira").unwrap().1.contains('S'));
}

fn fetchmail(home: &Path, rc: &str) -> (Output, String) {
    let rcfile = home.join("fetchmailrc");
    fs::write(&rcfile, rc).unwrap();
    fs::set_permissions(&rcfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    run(Command::new("timeout")
        .args(["60", "fetchmail", "-v", "-f"])
        .arg(&rcfile)
        .arg("-i")
        .arg(home.join("fetchids"))
        .env("HOME", home))
}

#[test]
fn fetchmail_over_imap_and_imaps() {
    if !have_tool("fetchmail") {
        skip("fetchmail is not installed (apt-get install fetchmail)");
        return;
    }
    let inst = Instance::start();
    deliver(&inst, &["f1", "f2"]);
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    let cert = inst.dir.join("tls/cert.pem");
    let md = inst.maildir("suporte");
    // IMAP with STARTTLS (certificate checked), keeping the messages:
    // they stay on the server, \Seen.
    let rc = format!(
        "set no syslog\npoll localhost via 127.0.0.1 service {} protocol IMAP\n  \
         user suporte there with password suporte is root here\n  \
         sslproto TLS1.2+ sslcommonname localhost sslcertck sslcertfile {}\n  keep\n  \
         mda \"cat >> {}\"\n",
        port(&inst.addr("imap")),
        cert.display(),
        out.display()
    );
    let (o, log) = fetchmail(home.path(), &rc);
    assert!(o.status.success(), "fetchmail (IMAP) failed");
    assert!(log.contains("IMAP> A0001 STARTTLS") && log.contains("using protocol TLSv1."), "{log}");
    let got = fs::read_to_string(&out).unwrap();
    assert!(got.contains("Corpo de f1") && got.contains("Corpo de f2"), "{got}");
    assert_eq!(count(&md), 2);
    for s in ["f1", "f2"] {
        assert!(find(&md, &format!("Corpo de {s}")).unwrap().1.contains('S'), "{s} not \\Seen");
    }
    // A new message, then IMAPS fetching only what is unseen, and deleting.
    deliver(&inst, &["f3"]);
    fs::remove_file(&out).unwrap();
    let rc = format!(
        "set no syslog\npoll localhost via 127.0.0.1 service {} protocol IMAP\n  \
         user suporte there with password suporte is root here\n  \
         ssl sslcommonname localhost sslcertck sslcertfile {}\n  \
         mda \"cat >> {}\"\n",
        port(&inst.addr("imaps")),
        cert.display(),
        out.display()
    );
    let (o, log) = fetchmail(home.path(), &rc);
    assert!(o.status.success(), "fetchmail (IMAPS) failed");
    assert!(log.contains("using protocol TLSv1."), "{log}");
    let got = fs::read_to_string(&out).unwrap();
    assert!(got.contains("Corpo de f3"), "{got}");
    assert!(!got.contains("Corpo de f1"), "a \\Seen message fetched again: {got}");
    // Without `keep`, fetchmail deleted (and expunged) what it fetched.
    assert!(find(&md, "Corpo de f3").is_none(), "{:?}", files(&md));
    assert_eq!(count(&md), 2);
}
