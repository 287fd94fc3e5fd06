//! Tests of [`super::Store`] and [`super::FolderName`] on temporary
//! Maildirs: the layouts Courier's `maildirmake` and Dovecot leave, and
//! what IMAP's CREATE, DELETE, RENAME, LIST and SUBSCRIBE need.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn name(s: &str) -> FolderName {
    FolderName::new(s).unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("Maildir");
    crate::make(&root).unwrap();
    let s = Store::new(&root);
    (t, s)
}

/// The listing as `name flags` lines, the way LIST would show it.
fn listing(s: &Store) -> Vec<String> {
    s.list()
        .unwrap()
        .into_iter()
        .map(|f| {
            let sel = if f.selectable { "" } else { " \\Noselect" };
            let kids = if f.has_children { "\\HasChildren" } else { "\\HasNoChildren" };
            format!("{} {kids}{sel}", f.name)
        })
        .collect()
}

#[test]
fn names_are_validated_and_inbox_is_case_insensitive() {
    assert_eq!(name("inbox"), FolderName::inbox());
    assert_eq!(name("InBoX.Sub").as_str(), "INBOX.Sub");
    assert!(name("INBOX").is_inbox());
    assert!(!name("INBOXES").is_inbox());
    assert_eq!(name("Lists.rust.announce").parent(), Some(name("Lists.rust")));
    assert_eq!(name("Lists").parent(), None);
    assert!(name("a.b").is_below(&name("a")));
    assert!(!name("ab").is_below(&name("a")));
    assert!(!name("a").is_below(&name("a")));
    for bad in [
        "",
        ".",
        "..",
        "../x",
        "a/../../etc",
        "/etc",
        "a/b",
        ".hidden",
        "a.",
        "a..b",
        "a\0b",
        "a\nb",
        "tab\there",
        "del\u{7f}",
        "c1\u{85}",
        "wild*",
        "wild%",
    ] {
        assert!(matches!(FolderName::new(bad), Err(Error::FolderName { .. })), "{bad:?} accepted");
    }
    assert!(FolderName::new(&"x".repeat(MAX_FOLDER_NAME_BYTES + 1)).is_err());
    assert!(FolderName::new(&vec!["a"; MAX_FOLDER_DEPTH + 1].join(".")).is_err());
    // The directory name must fit NAME_MAX in modified UTF-7: one run of
    // 66 CJK characters does (178 bytes), 50 runs of one do not (300).
    let long_cjk: String = std::iter::repeat_n('日', 66).collect();
    assert!(FolderName::new(&long_cjk).is_ok());
    let too_long: String = (0..50).map(|i| if i % 2 == 0 { "日a" } else { "本b" }).collect();
    assert!(FolderName::new(&too_long).is_err(), "every switch costs a shift");
}

#[test]
fn imap_names_decode_modified_utf7_unless_utf8() {
    let n = FolderName::from_imap("Itens Exclu&AO0-dos", false).unwrap();
    assert_eq!(n.as_str(), "Itens Excluídos");
    assert_eq!(n.to_imap(false), "Itens Exclu&AO0-dos");
    assert_eq!(n.to_imap(true), "Itens Excluídos");
    assert_eq!(n.dir_name().unwrap(), ".Itens Exclu&AO0-dos");
    assert_eq!(FolderName::from_imap("Itens Excluídos", true).unwrap(), n);
    // Raw UTF-8 from a rev1 client is not modified UTF-7.
    assert!(FolderName::from_imap("Itens Excluídos", false).is_err());
    assert!(FolderName::from_imap("&Jjo-!", false).is_ok());
    assert!(FolderName::from_imap("&AC4ALg-", false).is_err(), "dots hidden in a shift");
    assert!(FolderName::from_imap("&AC8-etc", false).is_err(), "a slash hidden in a shift");
    assert_eq!(FolderName::from_imap("a&-b", false).unwrap().dir_name().unwrap(), ".a&-b");
    assert_eq!(FolderName::inbox().dir_name(), None);
}

#[test]
fn tutorial_maildir_lists_with_implied_parents() {
    let (_t, s) = store();
    // What the tutorial types: maildirmake -f Enviados, and so on.
    for f in ["Enviados", "Rascunhos", "Lixeira", "Spam"] {
        crate::make_folder(s.root(), f).unwrap();
    }
    // Dovecot's layout for a deeper folder whose parent has no directory.
    crate::make_folder(s.root(), "Lists.rust.announce").unwrap();
    // Strays that are not folders.
    fs::create_dir(s.root().join(".bad..name")).unwrap();
    fs::create_dir(s.root().join(".&AGE-")).unwrap(); // "a" hidden in a shift
    fs::write(s.root().join(".file"), b"").unwrap();
    std::os::unix::fs::symlink("/etc", s.root().join(".Etc")).unwrap();
    fs::create_dir(s.root().join("..postern-deleted.1")).unwrap();
    assert_eq!(
        listing(&s),
        [
            "INBOX \\HasNoChildren",
            "Enviados \\HasNoChildren",
            "Lists \\HasChildren \\Noselect",
            "Lists.rust \\HasChildren \\Noselect",
            "Lists.rust.announce \\HasNoChildren",
            "Lixeira \\HasNoChildren",
            "Rascunhos \\HasNoChildren",
            "Spam \\HasNoChildren",
        ]
    );
    assert!(s.exists(&name("Enviados")).unwrap());
    assert!(!s.exists(&name("Lists")).unwrap());
    assert!(!s.exists(&name("Etc")).unwrap(), "a symlink is no folder");
    assert!(matches!(s.open(&name("Lists")), Err(Error::NoFolder { .. })));
    assert!(matches!(s.open(&name("Etc")), Err(Error::NoFolder { .. })));
    let mb = s.open(&name("Enviados")).unwrap();
    assert_eq!(mb.dir(), s.root().join(".Enviados"));
}

#[test]
fn create_makes_a_private_maildirplusplus_folder() {
    let (_t, s) = store();
    s.create(&name("Itens Excluídos")).unwrap();
    let dir = s.root().join(".Itens Exclu&AO0-dos");
    for sub in ["tmp", "new", "cur"] {
        let m = fs::metadata(dir.join(sub)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
    }
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(dir.join("maildirfolder").is_file());
    assert!(matches!(s.create(&name("Itens Excluídos")), Err(Error::FolderExists { .. })));
    assert!(matches!(s.create(&FolderName::inbox()), Err(Error::FolderExists { .. })));
    s.create(&name("a.b.c")).unwrap();
    assert!(!s.root().join(".a").exists(), "parents are implied, not made");
    assert_eq!(
        listing(&s),
        [
            "INBOX \\HasNoChildren",
            "Itens Excluídos \\HasNoChildren",
            "a \\HasChildren \\Noselect",
            "a.b \\HasChildren \\Noselect",
            "a.b.c \\HasNoChildren",
        ]
    );
    // A missing root is made on the first create.
    let t = tempfile::tempdir().unwrap();
    let fresh = Store::new(&t.path().join("new/Maildir"));
    fresh.create(&name("Sent")).unwrap();
    assert!(t.path().join("new/Maildir/cur").is_dir());
    assert!(t.path().join("new/Maildir/.Sent/cur").is_dir());
}

#[test]
fn delete_removes_only_that_folder() {
    let (_t, s) = store();
    s.create(&name("Old")).unwrap();
    s.create(&name("Old.Kid")).unwrap();
    crate::deliver(&s.path_of(&name("Old")), b"", b"bye\n", "h").unwrap();
    crate::deliver(&s.path_of(&name("Old.Kid")), b"", b"stay\n", "h").unwrap();
    // A symlink inside is removed, not followed.
    let outside = s.root().parent().unwrap().join("precious");
    fs::write(&outside, b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, s.path_of(&name("Old")).join("cur/link")).unwrap();
    s.delete(&name("Old")).unwrap();
    assert!(outside.exists());
    assert!(!s.root().join(".Old").exists());
    assert_eq!(
        listing(&s),
        ["INBOX \\HasNoChildren", "Old \\HasChildren \\Noselect", "Old.Kid \\HasNoChildren"]
    );
    assert_eq!(s.open(&name("Old.Kid")).unwrap().messages().len(), 1);
    assert!(matches!(s.delete(&name("Old")), Err(Error::NoFolder { .. })));
    assert!(matches!(s.delete(&name("inbox")), Err(Error::NotPermitted { .. })));
    assert!(matches!(s.delete(&name("Never")), Err(Error::NoFolder { .. })));
    let left: Vec<_> = fs::read_dir(s.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn rename_takes_the_children_along() {
    let (_t, s) = store();
    s.create(&name("Work")).unwrap();
    s.create(&name("Work.2024")).unwrap();
    s.create(&name("Work.2024.Q1")).unwrap();
    s.create(&name("Workshop")).unwrap();
    crate::deliver(&s.path_of(&name("Work.2024")), b"", b"x\n", "h").unwrap();
    let uidv = s.open(&name("Work.2024")).unwrap().uid_validity();
    s.rename(&name("Work"), &name("Jobs.Old")).unwrap();
    assert_eq!(
        listing(&s),
        [
            "INBOX \\HasNoChildren",
            "Jobs \\HasChildren \\Noselect",
            "Jobs.Old \\HasChildren",
            "Jobs.Old.2024 \\HasChildren",
            "Jobs.Old.2024.Q1 \\HasNoChildren",
            "Workshop \\HasNoChildren",
        ]
    );
    let mb = s.open(&name("Jobs.Old.2024")).unwrap();
    assert_eq!((mb.uid_validity(), mb.messages().len()), (uidv, 1), "UIDs kept");
    // Onto an existing name, into itself, from nothing, onto INBOX.
    assert!(matches!(
        s.rename(&name("Jobs.Old"), &name("Workshop")),
        Err(Error::FolderExists { .. })
    ));
    assert!(matches!(
        s.rename(&name("Jobs.Old"), &name("Jobs.Old.2024.Q1.x")),
        Err(Error::NotPermitted { .. })
    ));
    assert!(matches!(s.rename(&name("Nothing"), &name("Else")), Err(Error::NoFolder { .. })));
    assert!(matches!(s.rename(&name("Workshop"), &name("INBOX")), Err(Error::FolderExists { .. })));
    // A child's new name taken: nothing moves.
    s.create(&name("New.2024")).unwrap();
    s.create(&name("Src")).unwrap();
    s.create(&name("Src.2024")).unwrap();
    assert!(matches!(s.rename(&name("Src"), &name("New")), Err(Error::FolderExists { .. })));
    assert!(s.exists(&name("Src")).unwrap() && s.exists(&name("Src.2024")).unwrap());
    // Renaming a parent that exists only by its children moves them.
    s.rename(&name("Jobs"), &name("Career")).unwrap();
    assert!(s.exists(&name("Career.Old.2024.Q1")).unwrap());
}

#[test]
fn rename_inbox_moves_its_messages_and_leaves_it_empty() {
    let (_t, s) = store();
    crate::deliver(s.root(), b"", b"one\n", "h").unwrap();
    crate::deliver(s.root(), b"", b"two\n", "h").unwrap();
    let mut inbox = s.open(&FolderName::inbox()).unwrap();
    inbox.set_flags(2, crate::Flags::SEEN).unwrap();
    let old = inbox.uid_validity();
    let keys: Vec<String> = inbox.messages().iter().map(|m| m.key.clone()).collect();
    s.rename(&FolderName::inbox(), &name("Old Mail")).unwrap();
    let moved = s.open(&name("Old Mail")).unwrap();
    assert_eq!(moved.uid_validity(), old, "the index went along");
    assert_eq!(
        moved.messages().iter().map(|m| (m.uid, m.key.clone())).collect::<Vec<_>>(),
        vec![(1, keys[0].clone()), (2, keys[1].clone())]
    );
    assert_eq!(moved.message(2).unwrap().flags, crate::Flags::SEEN);
    let empty = s.open(&FolderName::inbox()).unwrap();
    assert!(empty.messages().is_empty());
    assert!(empty.uid_validity() > old, "a new INBOX, a new UIDVALIDITY");
    assert_eq!(empty.uid_next(), 1);
    // The old handle sees everything gone.
    let changes = inbox.refresh().unwrap();
    assert!(changes.uid_validity_changed);
    assert!(matches!(
        s.rename(&FolderName::inbox(), &name("Old Mail")),
        Err(Error::FolderExists { .. })
    ));
}

#[test]
fn subscriptions_persist_and_read_dovecot_and_courier_files() {
    let (_t, s) = store();
    assert!(s.subscriptions().unwrap().is_empty());
    s.subscribe(&name("Enviados")).unwrap();
    s.subscribe(&name("Itens Excluídos")).unwrap();
    s.subscribe(&name("Enviados")).unwrap();
    s.subscribe(&name("Not.There")).unwrap();
    assert_eq!(
        s.subscriptions().unwrap(),
        [name("Enviados"), name("Itens Excluídos"), name("Not.There")]
    );
    assert_eq!(
        fs::read_to_string(s.root().join("subscriptions")).unwrap(),
        "Enviados\nItens Exclu&AO0-dos\nNot.There\n"
    );
    s.unsubscribe(&name("Not.There")).unwrap();
    s.unsubscribe(&name("Never")).unwrap();
    assert_eq!(s.subscriptions().unwrap(), [name("Enviados"), name("Itens Excluídos")]);

    // Dovecot 2.3's version 2 file.
    fs::write(s.root().join("subscriptions"), b"V\t2\n\nLists\trust\nSent\n").unwrap();
    // Courier-IMAP's, with its INBOX. namespace.
    fs::write(s.root().join("courierimapsubscribed"), b"INBOX\nINBOX.Lixeira\nINBOX.Spam\nother\n")
        .unwrap();
    assert_eq!(
        s.subscriptions().unwrap(),
        [name("INBOX"), name("Lists.rust"), name("Lixeira"), name("Sent"), name("Spam")]
    );
    // Unsubscribing a Courier-only name removes it from Courier's file.
    s.unsubscribe(&name("Spam")).unwrap();
    assert!(!s.subscriptions().unwrap().contains(&name("Spam")));
    assert_eq!(
        fs::read_to_string(s.root().join("courierimapsubscribed")).unwrap(),
        "INBOX\nINBOX.Lixeira\nother\n"
    );
    // Garbage and a symlink are read as nothing, not followed.
    fs::remove_file(s.root().join("courierimapsubscribed")).unwrap();
    fs::write(s.root().join("subscriptions"), b"\xff\xfe\n../../etc\na..b\n").unwrap();
    assert!(s.subscriptions().unwrap().is_empty());
    fs::remove_file(s.root().join("subscriptions")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.root().join("subscriptions")).unwrap();
    assert!(s.subscriptions().unwrap().is_empty());
}

#[test]
fn concurrent_subscribers_both_count() {
    let (_t, s) = store();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                for j in 0..10 {
                    s.subscribe(&name(&format!("F{i}x{j}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.subscriptions().unwrap().len(), 40);
}

#[test]
fn too_many_folders_is_a_clear_error() {
    let (_t, s) = store();
    for i in 0..=MAX_FOLDERS {
        fs::create_dir(s.root().join(format!(".f{i}"))).unwrap();
    }
    assert!(matches!(s.list(), Err(Error::TooMany { limit: MAX_FOLDERS, .. })));
}

#[test]
fn a_folder_deleted_under_an_open_session_is_not_recreated() {
    let (_t, s) = store();
    s.create(&name("Gone")).unwrap();
    crate::deliver(&s.path_of(&name("Gone")), b"", b"x\n", "h").unwrap();
    let mut mb = s.open(&name("Gone")).unwrap();
    let w = crate::Watcher::new(mb.dir()).unwrap();
    s.delete(&name("Gone")).unwrap();
    assert!(w.changed().unwrap(), "the watcher says so");
    let err = mb.refresh().unwrap_err();
    assert_eq!(err.io_error().map(io::Error::kind), Some(io::ErrorKind::NotFound), "{err:?}");
    assert!(mb.append(b"late\n", crate::Flags::EMPTY, None).is_err());
    assert!(!s.root().join(".Gone").exists());
    assert_eq!(listing(&s), ["INBOX \\HasNoChildren"]);
}

#[test]
fn inbox_children_are_folders_under_inbox() {
    let (_t, s) = store();
    s.create(&name("inbox.Lists")).unwrap();
    assert!(s.root().join(".INBOX.Lists/cur").is_dir());
    assert_eq!(listing(&s), ["INBOX \\HasChildren", "INBOX.Lists \\HasNoChildren"]);
    // A directory that would shadow INBOX itself is not a folder.
    fs::create_dir(s.root().join(".INBOX")).unwrap();
    fs::create_dir(s.root().join(".inbox")).unwrap();
    assert_eq!(listing(&s).len(), 2);
}
