//! Issue 10: a Maildir copied from Dovecot keeps its UIDs. A real Dovecot
//! (dovecot-imapd from Debian, `dovecot -F` from a throwaway config on a
//! free loopback port) makes the Maildir: messages APPENDed, flagged with
//! system flags and keywords, one expunged (so the UIDs have a gap),
//! folders created and one subscribed. The Maildir is then copied in as
//! a Postern user's, and Postern's IMAP must answer what Dovecot answered
//! (LIST, LSUB, STATUS with UIDVALIDITY and UIDNEXT, UID and FLAGS of
//! every message, `\Recent` aside, which is per session), and pop3d's
//! UIDL must be Dovecot's `%08Xu%08Xv` of those UIDs. Without Dovecot the
//! test says `skipped: ...`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tests::{ChildGuard, Instance, have_tool, skip};

/// Fills the Dovecot mailbox of user `u`.
const FILL: &str = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('u', 'pw')
for box in ['Arquivo', 'Arquivo.2025', 'Caf&AOk-']:
    assert m.create(box)[0] == 'OK', box
assert m.subscribe('Arquivo')[0] == 'OK'
for i in range(1, 6):
    typ, d = m.append('INBOX', None, None, ('From: a@example.org\r\nSubject: d%d\r\n\r\nCorpo %d\r\n' % (i, i)).encode())
    assert typ == 'OK', d
typ, d = m.append('Arquivo', '(\\Seen $Label1)', None, b'Subject: arq\r\n\r\nx\r\n')
assert typ == 'OK', d
m.select('INBOX')
m.store('1', '+FLAGS', '(\\Seen)')
m.store('2', '+FLAGS', '(\\Flagged Junk)')
m.store('3', '+FLAGS', '(\\Answered $Forwarded)')
m.store('4', '+FLAGS', '(\\Deleted)')
assert m.expunge()[1] == [b'4']
m.logout()
"#;

/// What a client sees of a whole account; run against both servers.
const DUMP: &str = r#"
import imaplib, sys, re
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
# Quoting is the server's choice, and so are SPECIAL-USE attributes
# (Postern's come from imap_special_use): compare names and the RFC 3501
# attributes.
base = {'\\hasnochildren', '\\haschildren', '\\noselect', '\\noinferiors', '\\nonexistent'}
def entry(l):
    attrs, delim, name = re.match(r'\(([^)]*)\) "(.)" (.*)$', l.decode()).groups()
    keep = sorted(a for a in attrs.split() if a.lower() in base)
    return '(%s) %s %s' % (' '.join(keep), delim, name.strip('"'))
for l in sorted(entry(l) for l in m.list()[1]): print('LIST', l)
for l in sorted(entry(l).split(' ', 2)[2] for l in m.lsub()[1]): print('LSUB', l)
for box in ['INBOX', 'Arquivo', 'Arquivo.2025', 'Caf&AOk-']:
    st = m.status(box, '(MESSAGES UIDNEXT UIDVALIDITY)')[1][0].decode()
    print('STATUS', box, st[st.index('('):])
    typ, d = m.select(box, readonly=True)
    assert typ == 'OK', (box, d)
    if int(d[0]) == 0: continue
    for x in m.fetch('1:*', '(UID FLAGS)')[1]:
        x = x.decode().replace('\\Recent', '')
        n, rest = x.split(' ', 1)
        uid = re.search(r'UID (\d+)', rest).group(1)
        flags = sorted(re.search(r'FLAGS \(([^)]*)\)', rest).group(1).split())
        print('MSG', box, n, uid, ' '.join(flags))
m.logout()
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("python3 {args:?}:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the imaplib script failed");
    stdout
}

/// Stops Dovecot's master with SIGTERM (it stops its children), then
/// makes sure, even when the test fails.
struct Dovecot(ChildGuard);

impl Drop for Dovecot {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let pid = nix::unistd::Pid::from_raw(self.0.0.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let _ = tests::wait_until(Duration::from_secs(10), || {
            self.0.0.try_wait().ok().flatten().map(|_| ())
        });
    }
}

fn uid_of(name: &str) -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", name]).output().ok()?;
    let gid = Command::new("id").args(["-g", name]).output().ok()?;
    if !out.status.success() || !gid.status.success() {
        return None;
    }
    let n = |o: &[u8]| String::from_utf8_lossy(o).trim().parse().ok();
    Some((n(&out.stdout)?, n(&gid.stdout)?))
}

/// Starts Dovecot with user `u` (password `pw`) whose home is
/// `base/home/u`; returns it and its IMAP port.
fn start_dovecot(base: &Path) -> Option<(Dovecot, u16)> {
    let root = tests::is_root();
    // Dovecot refuses uid 0 for mail: as root the mailbox belongs to
    // nobody and Dovecot's own users run its processes.
    let me = String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_owned();
    let (mail_user, internal, login) = if root {
        ("nobody".to_owned(), "dovecot".to_owned(), "dovenull".to_owned())
    } else {
        (me.clone(), me.clone(), me)
    };
    let Some((uid, gid)) = uid_of(&mail_user) else {
        skip(&format!("no user {mail_user}"));
        return None;
    };
    if uid_of(&internal).is_none() || uid_of(&login).is_none() {
        skip("no dovecot/dovenull users (dovecot-core makes them)");
        return None;
    }
    let igroup = String::from_utf8_lossy(
        &Command::new("id").args(["-gn", &internal]).output().unwrap().stdout,
    )
    .trim()
    .to_owned();
    let home = base.join("home/u");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(base.join("run")).unwrap();
    fs::create_dir_all(base.join("state")).unwrap();
    if root {
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    }
    for d in [base, &base.join("home"), base.parent().unwrap()] {
        fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    fs::write(base.join("passwd"), format!("u:{{PLAIN}}pw:{uid}:{gid}::{}::\n", home.display()))
        .unwrap();
    let port = free_port();
    // Only root may chroot; anvil and imap-login do by default.
    let nochroot = if root { "" } else { "service anvil {\n  chroot =\n}\n" };
    let login_chroot = if root { "" } else { "  chroot =\n" };
    let b = base.display();
    fs::write(
        base.join("dovecot.conf"),
        format!(
            "base_dir = {b}/run\nstate_dir = {b}/state\ninstance_name = postern-test-{port}\n\
             listen = 127.0.0.1\nprotocols = imap\nssl = no\ndisable_plaintext_auth = no\n\
             auth_mechanisms = plain\nlog_path = {b}/dovecot.log\n\
             default_internal_user = {internal}\ndefault_internal_group = {igroup}\n\
             default_login_user = {login}\nfirst_valid_uid = {uid}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {b}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {b}/passwd\n}}\n\
             mail_location = maildir:~/Maildir\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    \
             port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n{login_chroot}}}\n\
             {nochroot}"
        ),
    )
    .unwrap();
    let child = Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(base.join("dovecot.conf"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start dovecot");
    let mut dc = Dovecot(ChildGuard(child));
    let up = tests::wait_until(Duration::from_secs(20), || {
        if let Ok(Some(status)) = dc.0.0.try_wait() {
            panic!(
                "dovecot exited ({status}): {}",
                fs::read_to_string(base.join("dovecot.log")).unwrap_or_default()
            );
        }
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    assert!(up.is_some(), "dovecot does not listen on {port}");
    Some((dc, port))
}

/// The UIDs and UIDVALIDITY of INBOX in a dump.
fn inbox_uids(dump: &str) -> (Vec<u32>, u32) {
    let validity = dump
        .lines()
        .find(|l| l.starts_with("STATUS INBOX "))
        .and_then(|l| l.split("UIDVALIDITY ").nth(1))
        .and_then(|v| v.trim_end_matches(')').parse().ok())
        .expect("no UIDVALIDITY for INBOX");
    let uids = dump
        .lines()
        .filter_map(|l| l.strip_prefix("MSG INBOX "))
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    (uids, validity)
}

#[test]
fn a_dovecot_maildir_keeps_uids_flags_keywords_and_folders() {
    if !have_tool("dovecot") || !Path::new("/usr/lib/dovecot/imap").exists() {
        skip("Dovecot's imapd is not installed (apt-get install dovecot-imapd)");
        return;
    }
    if !have_tool("python3") {
        skip("python3 is not installed");
        return;
    }
    let tmp = tempfile::Builder::new().prefix("postern-dovecot-").tempdir().unwrap();
    let base = tmp.path().join("dc");
    let Some((dc, port)) = start_dovecot(&base) else { return };
    let p = port.to_string();
    python(FILL, &[&p]);
    let dovecot = python(DUMP, &[&p, "u", "pw"]);
    drop(dc);
    let src = base.join("home/u/Maildir");
    assert!(src.join("dovecot-uidlist").is_file() && src.join("dovecot-keywords").is_file());

    let inst = Instance::start();
    let md = inst.maildir("suporte");
    let owner = fs::metadata(&md).unwrap();
    let (uid, gid) =
        (std::os::unix::fs::MetadataExt::uid(&owner), std::os::unix::fs::MetadataExt::gid(&owner));
    fs::remove_dir_all(&md).unwrap();
    let cp = Command::new("cp").arg("-a").arg(&src).arg(&md).status().unwrap();
    assert!(cp.success());
    let chown = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(&md).status();
    assert!(chown.unwrap().success());

    let imap_port = inst.addr("imap").rsplit(':').next().unwrap().to_owned();
    let postern = python(DUMP, &[&imap_port, "suporte", "suporte"]);
    assert_eq!(postern, dovecot, "Postern's view of Dovecot's Maildir differs");
    // Not vacuous: the gap Dovecot's EXPUNGE left, its keywords and folders.
    let (uids, validity) = inbox_uids(&dovecot);
    assert_eq!(uids, [1, 2, 3, 5], "{dovecot}");
    for want in ["Junk", "$Forwarded", "$Label1", "Caf&AOk-", "LSUB", "Arquivo.2025"] {
        assert!(dovecot.contains(want), "{want} missing from {dovecot}");
    }

    // pop3d's UIDL is Dovecot's `%08Xu%08Xv` of the same UIDs.
    let pop3_port = inst.addr("pop3").rsplit(':').next().unwrap().to_owned();
    let uidl = python(
        "import poplib, sys\np = poplib.POP3('127.0.0.1', int(sys.argv[1]))\n\
         p.user('suporte'); p.pass_('suporte')\n\
         for l in p.uidl()[1]: print(l.decode())\np.quit()\n",
        &[&pop3_port],
    );
    let want: String = uids
        .iter()
        .enumerate()
        .map(|(i, u)| format!("{} {u:08X}{validity:08X}\n", i + 1))
        .collect();
    assert_eq!(uidl, want);
}
