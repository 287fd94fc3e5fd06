//! Replays the committed `aliases` and `map_file` fuzz corpora on
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
fn aliases_corpus() {
    for (name, bytes) in corpus("aliases") {
        let (entries, warnings) = mail_lookup::aliases::parse_aliases(&bytes, Path::new(&name));
        let _ = mail_lookup::aliases::parse_include(&bytes, Path::new(&name));
        if name == "debian" {
            assert_eq!(entries["root"].len(), 3, "{entries:?}");
            assert!(entries.contains_key("mailer-daemon"));
            assert!(warnings.iter().any(|w| w.starts_with("debian:6:")), "{warnings:?}");
        }
    }
}

#[test]
fn map_file_corpus() {
    for (name, bytes) in corpus("map_file") {
        let parsed = mail_lookup::maps::parse_map(&bytes, Path::new(&name));
        if name == "virtual" {
            let (entries, warnings) = parsed.unwrap();
            assert_eq!(entries["list@postern.test"], "a@x.org, b@x.org c@x.org");
            assert_eq!(entries["vdomain.test"], "anything");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    }
}
