//! Replays the committed `metrics_datagram` fuzz corpus on stable Rust
//! and checks what the realistic seeds give.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mail_daemon::metrics::{Counts, decode, encode};
use std::path::PathBuf;

#[test]
fn metrics_datagram_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/metrics_datagram");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let data = std::fs::read(e.path()).unwrap();
        let got = decode(&data);
        if let Some((s, c)) = &got {
            assert_eq!(encode(s, c).as_bytes(), &data[..], "{name}");
        }
        let mut counts = Counts::default();
        let counted = String::from_utf8_lossy(&data).lines().filter(|l| counts.observe(l)).count();
        match name.as_str() {
            "smtpd" => {
                let (s, c) = got.expect("the realistic datagram decodes");
                assert_eq!(
                    (s.pid, s.service.as_str(), c.counters[0], c.delay_ms),
                    (4242, "smtp", 3, 80)
                );
            }
            "log_lines" => {
                assert!(got.is_none());
                assert_eq!((counted, counts.counters[1], counts.delay_ms), (4, 1, 80));
            }
            _ => assert!(got.is_none(), "{name}"),
        }
        seen += 1;
    }
    assert!(seen >= 4, "corpus {} has {seen} files", dir.display());
}
