//! Replays the committed `passwd_file` fuzz corpus on
//! stable Rust and checks what the realistic seeds contain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(name);
    let v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    assert!(!v.is_empty(), "empty corpus {}", dir.display());
    v
}

#[test]
fn passwd_file_corpus() {
    for (name, bytes) in corpus("passwd_file") {
        let users = mail_auth::parse_passwd_file(&bytes, Path::new(&name));
        if name == "dovecot" {
            assert_eq!(users["suporte"].uid, 1000);
            assert_eq!(users["maria"].home, Path::new("/home/maria"));
            assert_eq!(users.len(), 2);
        }
    }
}
