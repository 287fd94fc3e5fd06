//! IMAP client input after login: imapd's framing (line and literal
//! bounds, continuations), imap-codec's command decoder and the
//! Authenticated/Selected session on a small real Maildir made afresh
//! for each input. Run: `cargo +nightly fuzz run imap_command`.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

static N: AtomicU64 = AtomicU64::new(0);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let dir = std::path::PathBuf::from(base).join(format!(
        "imapd-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::create_dir(&dir).is_ok() {
        let _ = imapd::fuzz_one(&dir, data);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
