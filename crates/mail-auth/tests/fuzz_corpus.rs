//! Replays the committed `passwd_file` and `sasl` fuzz corpora on
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

/// The same driver as `fuzz/fuzz_targets/sasl.rs`: mechanism, initial
/// response (`-` for none), then one response per line.
fn sasl_exchange(text: &str) -> mail_auth::sasl::Step {
    let mut lines = text.split('\n');
    let mech = lines.next().unwrap_or("");
    let initial = lines.next().filter(|l| *l != "-");
    let mut sasl = mail_auth::sasl::Sasl::new();
    let mut step = sasl.start(mech, initial);
    for line in lines {
        step = sasl.step(line);
    }
    step
}

#[test]
fn sasl_corpus() {
    use mail_auth::sasl::{Credentials, ErrorKind, Step};
    let done = |u: &str, p: &str| Step::Done(Credentials { user: u.into(), password: p.into() });
    for (name, bytes) in corpus("sasl") {
        let Ok(text) = std::str::from_utf8(&bytes) else { continue };
        let step = sasl_exchange(text);
        let want = match name.as_str() {
            "plain_initial" | "plain_challenge" | "login" | "login_empty_initial" => {
                Some(done("suporte", "suporte"))
            }
            "plain_authzid_mismatch" => Some(Step::Error(ErrorKind::AuthzidMismatch)),
            "invalid_base64" => Some(Step::Error(ErrorKind::InvalidBase64)),
            "unsupported" => Some(Step::Error(ErrorKind::UnsupportedMechanism)),
            _ => None,
        };
        if let Some(want) = want {
            assert_eq!(step, want, "{name}");
        }
    }
}
