//! Fuzz target: arbitrary text as a host name from a DNS answer (PTR or MX
//! target, as hickory prints it): whatever `valid_hostname` lets through
//! must be safe in a log line and a Received header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(name) = mail_dns::valid_hostname(text)
    {
        assert!(name.len() <= 253, "{name:?}");
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'-' | b'_')),
            "{name:?}"
        );
        assert!(name.parse::<std::net::IpAddr>().is_err(), "{name:?}");
        assert_eq!(mail_dns::valid_hostname(&name).as_deref(), Some(name.as_str()));
    }
});
