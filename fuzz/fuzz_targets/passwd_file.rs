//! Fuzz target: arbitrary bytes as a Dovecot-style passwd-file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mail_auth::parse_passwd_file(data, std::path::Path::new("passwd"));
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = mail_auth::parse_passwd_line(line);
        let _ = mail_auth::verify_password(line, "suporte");
    }
});
