//! Tests of [`super::Mailbox`] on Maildirs made by hand in temporary
//! directories: what pop3d and imapd rely on, rule by rule.

use super::*;
use std::io::Read as _;

fn deliver(md: &Path, body: &str) -> String {
    crate::deliver(md, b"", body.as_bytes(), "host").unwrap().name
}

fn read(mb: &Mailbox, uid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    mb.open_message(uid).unwrap().read_to_end(&mut v).unwrap();
    v
}

fn uids(mb: &Mailbox) -> Vec<u32> {
    mb.messages().iter().map(|m| m.uid).collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn missing_maildir_is_created_and_empty() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("home/u/Maildir");
    let mb = Mailbox::open(&md).unwrap();
    assert!(mb.messages().is_empty());
    assert_eq!(mb.uid_next(), 1);
    assert_ne!(mb.uid_validity(), 0);
    for sub in ["tmp", "new", "cur"] {
        assert!(md.join(sub).is_dir());
    }
    let index = fs::read_to_string(md.join("postern-uidlist")).unwrap();
    assert_eq!(index, format!("postern-uidlist 1 V{} N1\n", mb.uid_validity()));
}

#[test]
fn uids_sizes_and_order_persist() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "Subject: a\n\none\n");
    let b = deliver(&md, "Subject: b\r\n\r\ntwo\n");
    let c = deliver(&md, "no newline at end");
    let mb = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&mb), [1, 2, 3]);
    let keys: Vec<&str> = mb.messages().iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, [a.as_str(), b.as_str(), c.as_str()]);
    let sizes: Vec<u64> = mb.messages().iter().map(|m| m.size).collect();
    // Bare LFs count twice, an existing CRLF once.
    assert_eq!(sizes, [16 + 3, 18 + 1, 17]);
    assert!(mb.messages().iter().all(|m| m.in_new && m.flags.is_empty()));
    assert_eq!(mb.uid_next(), 4);
    assert_eq!(read(&mb, 2), b"Subject: b\r\n\r\ntwo\n");

    let again = Mailbox::open(&md).unwrap();
    assert_eq!(again.uid_validity(), mb.uid_validity());
    assert_eq!(again.messages(), mb.messages());
    assert!(again.rebuilt().is_none());
}

#[test]
fn set_flags_moves_to_cur_and_keeps_the_uid() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "x\n");
    deliver(&md, "y\n");
    let mut mb = Mailbox::open(&md).unwrap();
    mb.set_flags(1, Flags::SEEN).unwrap();
    assert_eq!(files(&md.join("cur")), [format!("{a}:2,S")]);
    assert_eq!(files(&md.join("new")).len(), 1);
    let m = mb.message(1).unwrap();
    assert!(!m.in_new && m.flags == Flags::SEEN);
    // The same flags again: nothing to do.
    mb.set_flags(1, Flags::SEEN).unwrap();
    assert_eq!(read(&mb, 1), b"x\n");

    let mut again = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&again), [1, 2]);
    assert_eq!(again.message(1).unwrap().flags, Flags::SEEN);
    again.set_flags(1, Flags::SEEN | Flags::ANSWERED).unwrap();
    assert_eq!(files(&md.join("cur")), [format!("{a}:2,RS")]);
    assert!(matches!(again.set_flags(9, Flags::SEEN), Err(Error::NotFound { uid: 9, .. })));
}

#[test]
fn expunge_removes_files_and_uids_are_not_reused() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    for i in 0..3 {
        deliver(&md, &format!("{i}\n"));
    }
    let mut mb = Mailbox::open(&md).unwrap();
    mb.set_flags(3, Flags::SEEN).unwrap();
    assert_eq!(mb.expunge(&[3, 1, 1, 42]).unwrap(), [3, 1]);
    assert_eq!(uids(&mb), [2]);
    assert_eq!(files(&md.join("new")).len(), 1);
    assert!(files(&md.join("cur")).is_empty());
    deliver(&md, "new\n");
    let again = Mailbox::open(&md).unwrap();
    assert_eq!(uids(&again), [2, 4]);
    assert_eq!(again.uid_next(), 5);
}

#[test]
fn refresh_reports_what_others_did() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    for i in 0..3 {
        deliver(&md, &format!("{i}\n"));
    }
    let mut mine = Mailbox::open(&md).unwrap();
    let mut other = Mailbox::open(&md).unwrap();
    other.set_flags(1, Flags::FLAGGED).unwrap();
    other.expunge(&[2]).unwrap();
    deliver(&md, "late\n");
    // The snapshot stays until refreshed.
    assert_eq!(uids(&mine), [1, 2, 3]);
    let changes = mine.refresh().unwrap();
    assert_eq!(
        changes,
        Changes {
            added: vec![4],
            vanished: vec![2],
            flags_changed: vec![1],
            uid_validity_changed: false
        }
    );
    assert_eq!(uids(&mine), [1, 3, 4]);
    assert_eq!(mine.refresh().unwrap(), Changes::default());
}

#[test]
fn open_message_follows_renames_and_reports_removal() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let a = deliver(&md, "body\n");
    let mut mb = Mailbox::open(&md).unwrap();
    // Another process marks it seen.
    fs::rename(md.join("new").join(&a), md.join("cur").join(format!("{a}:2,S"))).unwrap();
    assert_eq!(read(&mb, 1), b"body\n");
    // set_flags finds it too and keeps other letters it is given.
    mb.set_flags(1, Flags::SEEN | Flags::letter(b'a')).unwrap();
    assert_eq!(files(&md.join("cur")), [format!("{a}:2,Sa")]);
    fs::remove_file(md.join("cur").join(format!("{a}:2,Sa"))).unwrap();
    assert!(matches!(mb.open_message(1), Err(Error::NotFound { uid: 1, .. })));
    assert!(matches!(mb.open_message(7), Err(Error::NotFound { uid: 7, .. })));
    assert!(matches!(mb.set_flags(1, Flags::SEEN), Err(Error::NotFound { .. })));
    assert_eq!(mb.expunge(&[1]).unwrap(), Vec::<u32>::new());
}

#[test]
fn exclusive_lock_is_held_until_dropped() {
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("Maildir");
    let one = Mailbox::open(&md).unwrap();
    let two = Mailbox::open(&md).unwrap();
    let lock = one.lock_exclusive("pop3").unwrap().expect("free");
    assert_eq!(lock.path(), md.join("postern-pop3.lock"));
    assert!(two.lock_exclusive("pop3").unwrap().is_none());
    assert!(one.lock_exclusive("pop3").unwrap().is_none(), "not re-entrant");
    // Another purpose is another lock.
    assert!(two.lock_exclusive("imap-x").unwrap().is_some());
    drop(lock);
    assert!(two.lock_exclusive("pop3").unwrap().is_some());
    for bad in ["", "../x", "POP3", "a b", &"x".repeat(33)] {
        assert!(matches!(one.lock_exclusive(bad), Err(Error::Lock { .. })), "{bad:?}");
    }
}
