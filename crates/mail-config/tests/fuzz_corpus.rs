//! Replays the committed `config` fuzz corpus on stable Rust: the shipped
//! main.toml and master.toml load, and the bad file gives errors with lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_config::{Main, MasterFile};
use std::path::{Path, PathBuf};

#[test]
fn config_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
        let main = Main::from_str(Path::new("main.toml"), &text);
        let master = MasterFile::from_str(Path::new("master.toml"), &text);
        match e.file_name().to_str().unwrap() {
            "main_toml" | "tls_params" => {
                assert!(main.is_ok(), "{:?}", main.err().map(|e| e.to_string()))
            }
            "master_toml" => assert!(master.is_ok(), "{:?}", master.err().map(|e| e.to_string())),
            "bad" => {
                let Err(errors) = main else { panic!("bad config must fail") };
                let errors = errors.to_string();
                assert!(
                    errors.contains("main.toml:1:") && errors.contains("mydestinaton"),
                    "{errors}"
                );
            }
            _ => {}
        }
    }
}
