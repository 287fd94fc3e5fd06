//! Issue 9's bad-input list for POP3: each gets an error reply (or a
//! clean end of the session), the server stays up and the mailbox stays
//! intact: commands before login, numbers out of range or already
//! deleted, overlong lines, binary garbage, a client gone in the middle
//! of RETR or without QUIT, a message removed by another process, stray
//! files, a missing `cur/`, and a symlink pointing out of the Maildir.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;
use tests::Instance;
use tests::pop3::Client;

fn deliver(inst: &Instance, n: usize, body: &str) {
    let before = inst.new_mail("suporte").len();
    for i in 0..n {
        inst.sendmail(&["suporte@postern.test"], &format!("Subject: m{i}\n\n{body}"));
    }
    inst.wait_for_mail("suporte", before + n, Duration::from_secs(30));
}

fn pop3(inst: &Instance) -> Client {
    Client::logged_in(&inst.addr("pop3"), "suporte", "suporte")
}

/// Every message file of suporte's Maildir (new/ and cur/).
fn files(inst: &Instance) -> Vec<PathBuf> {
    let md = inst.maildir("suporte");
    let mut v: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .flat_map(|d| std::fs::read_dir(md.join(d)).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn count(inst: &Instance) -> usize {
    let mut c = pop3(inst);
    let stat = c.ok("STAT");
    c.ok("QUIT");
    stat.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn commands_before_login_numbers_out_of_range_and_garbage() {
    let inst = Instance::start();
    deliver(&inst, 2, "body\n");
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    for cmd in ["STAT", "LIST", "RETR 1", "DELE 1", "RSET", "TOP 1 1", "UIDL"] {
        assert!(c.err(cmd).contains("log in first"), "{cmd}");
    }
    assert_eq!(c.err("PASS suporte"), "-ERR No username given.");
    c.login("suporte", "suporte");
    for cmd in ["RETR 0", "RETR 3", "DELE 99", "LIST 999999999", "TOP 3 1", "UIDL 7"] {
        assert_eq!(c.err(cmd), "-ERR There's no message with that number.", "{cmd}");
    }
    for cmd in ["RETR", "RETR x", "RETR -1", "RETR 99999999999", "TOP 1", "STAT now", "LIST 1 2"] {
        c.err(cmd);
    }
    c.ok("DELE 2");
    assert_eq!(c.err("DELE 2"), "-ERR Message is deleted.");
    assert_eq!(c.err("TOP 2 0"), "-ERR Message is deleted.");
    assert_eq!(c.err("USER suporte"), "-ERR Already logged in.");
    // Binary garbage and an overlong line: one -ERR each, the session goes on.
    c.send_raw(b"\x00\xff\xfe\x01\x80garbage\r\n");
    assert_eq!(c.line(), "-ERR Unknown command.");
    c.send_raw(&vec![b'A'; 100_000]);
    c.send_raw(b"\r\n");
    assert_eq!(c.line(), "-ERR Line too long.");
    c.ok("NOOP");
    // Without QUIT nothing marked is deleted.
    c.drop_connection();
    assert_eq!(count(&inst), 2);
    assert_eq!(files(&inst).len(), 2);
}

#[test]
fn too_many_bad_commands_close_the_session_and_the_server_stays_up() {
    let inst = Instance::start();
    deliver(&inst, 1, "body\n");
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    let mut closed = false;
    for _ in 0..30 {
        c.send("XYZZY");
        if c.line().starts_with("-ERR Too many") {
            closed = c.closed();
            break;
        }
    }
    assert!(closed, "no limit on bad commands before login");
    let mut c = pop3(&inst);
    for _ in 0..30 {
        c.send("XYZZY");
        if c.line().starts_with("-ERR Too many") {
            break;
        }
    }
    assert!(c.closed());
    assert_eq!(count(&inst), 1);
}

#[test]
fn disconnect_in_the_middle_of_retr() {
    let inst = Instance::start();
    let big = "0123456789 abcdefghijklmnopqrstuvwxyz 0123456789 abcdefghijklmnopqrstuvwxyz\n"
        .repeat(40_000);
    deliver(&inst, 1, &big);
    let mut c = pop3(&inst);
    c.send("RETR 1");
    assert!(c.line().starts_with("+OK "));
    // A few lines, then gone.
    for _ in 0..5 {
        c.raw_line();
    }
    c.drop_connection();
    // The next session sees the message as before and can read it whole.
    let mut c = pop3(&inst);
    let size: usize = c.ok("LIST 1").split(' ').nth(2).unwrap().parse().unwrap();
    c.ok("RETR 1");
    assert_eq!(c.body().len(), size);
    c.ok("QUIT");
}

#[test]
fn message_removed_by_another_process() {
    let inst = Instance::start();
    deliver(&inst, 2, "body\n");
    let mut c = pop3(&inst);
    let first = files(&inst)[0].clone();
    std::fs::remove_file(&first).unwrap();
    let a = c.ok("LIST");
    assert!(a.starts_with("+OK 2 "), "{a}");
    c.lines();
    // Which number the removed file had depends on the order; one of the
    // two RETRs fails cleanly, the other works.
    let mut gone = 0;
    for n in 1..=2 {
        c.send(&format!("RETR {n}"));
        let l = c.line();
        if l == "-ERR Message is no longer available." {
            gone += 1;
        } else {
            assert!(l.starts_with("+OK "), "{l}");
            c.body();
        }
    }
    assert_eq!(gone, 1);
    c.ok("DELE 1");
    c.ok("DELE 2");
    c.ok("QUIT");
    assert!(files(&inst).is_empty());
    assert_eq!(count(&inst), 0);
}

#[test]
fn stray_files_missing_cur_and_symlinks_out() {
    let inst = Instance::start();
    deliver(&inst, 2, "body\n");
    let md = inst.maildir("suporte");
    // Stray files and directories where messages live.
    std::fs::write(md.join("new/.hidden"), "x").unwrap();
    std::fs::create_dir(md.join("cur/a-directory")).unwrap();
    std::fs::write(md.join("stray-at-top"), "x").unwrap();
    std::fs::write(md.join("tmp/half-written"), "x").unwrap();
    // A symlink that points outside the Maildir, named like a message.
    let secret = inst.dir.join("secret.txt");
    std::fs::write(&secret, "TOP SECRET outside the Maildir\n").unwrap();
    std::os::unix::fs::symlink(&secret, md.join("new/1700000000.M1P1.evil")).unwrap();
    let mut c = pop3(&inst);
    let stat = c.ok("STAT");
    let n: usize = stat.split(' ').nth(1).unwrap().parse().unwrap();
    // The symlink is not a message: only the two delivered ones count.
    assert_eq!(n, 2, "{stat}");
    for i in 1..=n {
        c.send(&format!("RETR {i}"));
        let l = c.line();
        if l.starts_with("+OK") {
            let body = String::from_utf8_lossy(&c.body()).into_owned();
            assert!(!body.contains("TOP SECRET"), "read through a symlink: {body}");
        }
    }
    c.ok("QUIT");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "TOP SECRET outside the Maildir\n");

    // A Maildir without cur/ (cut short by hand): served from new/, and
    // the message stays.
    let inst2 = Instance::start();
    deliver(&inst2, 1, "in new\n");
    let md2 = inst2.maildir("suporte");
    std::fs::remove_dir_all(md2.join("cur")).unwrap();
    let mut c = Client::connect(&inst2.addr("pop3"));
    c.greeting();
    c.ok("USER suporte");
    c.send("PASS suporte");
    assert_eq!(c.line(), "+OK Logged in.");
    assert!(c.ok("STAT").starts_with("+OK 1 "));
    c.ok("TOP 1 5");
    assert!(String::from_utf8_lossy(&c.body()).contains("in new"));
    c.ok("QUIT");
    assert_eq!(
        std::fs::read_dir(md2.join("new")).unwrap().count()
            + std::fs::read_dir(md2.join("cur")).map(|d| d.count()).unwrap_or(0),
        1
    );
    // The server is still up.
    let mut c = Client::connect(&inst2.addr("pop3"));
    c.greeting();
    c.ok("QUIT");
}

#[test]
fn idle_sessions_time_out() {
    let inst = Instance::start_with(tests::Options {
        postconf: vec!["pop3_idle_timeout = 2s".into()],
        ..Default::default()
    });
    let mut c = Client::connect(&inst.addr("pop3"));
    c.greeting();
    assert_eq!(c.line(), "-ERR Disconnected for inactivity.");
    assert!(c.closed());
    let mut c = pop3(&inst);
    assert_eq!(c.line(), "-ERR Disconnected for inactivity.");
    assert!(c.closed());
}
