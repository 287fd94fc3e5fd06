//! Fuzz target: an arbitrary byte stream from a client into a
//! `smtp_proto::Server`, fed in chunks, with every decision accepted.
//! Checks that the session never panics and that its buffers stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_proto::{Event, Server, ServerParams};

fuzz_target!(|data: &[u8]| {
    let mut s = Server::new(ServerParams {
        hostname: "mail.example.org".into(),
        banner: "mail.example.org ESMTP".into(),
        max_message_size: 4096,
        max_recipients: 100,
        hard_error_limit: 1000,
        helo_required: false,
        vrfy_enabled: true,
        starttls_offered: true,
        auth_mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
        // Both DATA-end rules: smtpd's strict one and sendmail -bs's.
        bare_lf_ends_data: data.first().is_some_and(|b| b & 1 == 1),
    });
    for chunk in data.chunks(61) {
        s.feed(chunk);
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Reply(r) => {
                    let _ = r.to_bytes();
                }
                Event::Message { content } => {
                    assert!(content.len() <= 4096);
                    s.message_queued("FUZZ000000");
                }
                Event::StartTls => {
                    s.accept();
                    s.tls_started();
                }
                Event::Close => return,
                Event::Mail { .. } | Event::Rcpt { .. } | Event::Vrfy { .. } | Event::Auth { .. } | Event::AuthResponse { .. } => s.accept(),
            }
        }
        assert!(s.buffered() <= data.len());
    }
});
