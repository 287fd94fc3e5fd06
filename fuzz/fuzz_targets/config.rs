//! Fuzz target: arbitrary text as main.toml and as master.toml, and as a
//! `$name` template expanded with optional attributes (local delivery's
//! use of `mail_config::expand::expand_with`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_config::expand::{ExpandError, expand_with};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = mail_config::Main::from_str(std::path::Path::new("main.toml"), &text);
    let _ = mail_config::MasterFile::from_str(std::path::Path::new("master.toml"), &text);
    let _ = expand_with(&text, 4096, &mut |name| match name {
        "home" => Ok(Some("/home/u".to_owned())),
        "extension" => Ok(None),
        "empty" => Ok(Some(String::new())),
        _ => Err(ExpandError::Unknown(name.to_owned())),
    });
});
