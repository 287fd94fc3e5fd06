//! Fuzz target: arbitrary text as main.toml and as master.toml.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = mail_config::Main::from_str(std::path::Path::new("main.toml"), &text);
    let _ = mail_config::MasterFile::from_str(std::path::Path::new("master.toml"), &text);
});
