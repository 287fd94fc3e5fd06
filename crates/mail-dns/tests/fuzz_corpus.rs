//! Replays the committed `dns_name` fuzz corpus on stable Rust and checks
//! what the realistic seeds give.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn dns_name_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dns_name");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let text = String::from_utf8(std::fs::read(e.path()).unwrap()).unwrap();
        let got = mail_dns::valid_hostname(&text);
        let want = match name.as_str() {
            "ptr" => Some("client.example.test"),
            "mixed_case" => Some("mail.example.org"),
            "underscore" => Some("_dmarc.example.com"),
            _ => None,
        };
        assert_eq!(got.as_deref(), want, "{name}: {text:?}");
        seen += 1;
    }
    assert!(seen >= 7, "corpus {} has {seen} files", dir.display());
}
