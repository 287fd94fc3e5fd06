//! Fuzz target: a SASL exchange driven by arbitrary input. The first line
//! names the mechanism, the second is the initial response (`-` for none),
//! every further line is a response to a challenge.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_auth::sasl::{MAX_PASSWORD, MAX_USER, Sasl, Step};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let mech = lines.next().unwrap_or("");
    let initial = lines.next().filter(|l| *l != "-");
    let mut sasl = Sasl::new();
    let mut step = sasl.start(mech, initial);
    for line in lines {
        step = sasl.step(line);
    }
    if let Step::Done(c) = step {
        assert!(!c.user.is_empty() && c.user.len() <= MAX_USER);
        assert!(!c.user.chars().any(char::is_control));
        assert!(c.password.len() <= MAX_PASSWORD && !c.password.contains('\0'));
    }
});
