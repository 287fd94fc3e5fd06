//! Replays the committed `maildir_name` fuzz corpus on stable Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn maildir_name_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/maildir_name");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let text = String::from_utf8(std::fs::read(e.path()).unwrap()).unwrap();
        let parsed = mail_maildir::parse_file_name(&text);
        if e.file_name() == "dovecot" {
            assert_eq!(parsed.size, Some(490));
            assert_eq!(parsed.flags, "RS");
        }
        n += 1;
    }
    assert!(n > 0);
}
