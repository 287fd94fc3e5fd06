//! Fuzz target: an arbitrary byte stream from a client into a
//! `smtp_proto::Server`, fed in chunks, with every decision accepted.
//! Checks that the session never panics and that its buffers stay
//! bounded, also when the driver streams DATA out with `take_data` (as
//! smtpd does) and counts junk commands: the content taken plus the final
//! message never exceeds the size limit, and every reply after a command
//! is tagged with what it answers. BDAT chunks (RFC 3030) and the ESMTP
//! parameters (DSN, SMTPUTF8, BODY) go through the same checks; the
//! corpus has pipelined and split chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_proto::{Answered, Event, Server, ServerParams};

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
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
        bare_lf_ends_data: flags & 1 == 1,
    });
    let streaming = flags & 2 == 2;
    if flags & 4 == 4 {
        s.set_junk_command_limit(u32::from(flags >> 3));
    }
    let mut taken = 0usize;
    for chunk in data.chunks(61) {
        s.feed(chunk);
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Reply(r) => {
                    let _ = r.to_bytes();
                    // The end of a DATA message, or a message refused
                    // for its size (a BDAT one is refused chunk by chunk).
                    if s.answered() == Some(Answered::Message) || r.code == 552 {
                        taken = 0;
                    }
                }
                Event::Message { content } => {
                    assert!(taken + content.len() <= 4096);
                    taken = 0;
                    s.message_queued("FUZZ000000");
                }
                Event::StartTls => {
                    s.accept();
                    s.tls_started();
                }
                Event::Close => return,
                Event::Mail { params, .. } => {
                    // A new transaction: whatever was taken before
                    // belonged to a message given up (RSET in BDAT).
                    taken = 0;
                    let _ = params.envelope_params();
                    s.accept()
                }
                Event::Rcpt { params, .. } => {
                    if let Some(o) = &params.orcpt {
                        assert!(!o.address.chars().any(char::is_control));
                    }
                    s.accept()
                }
                Event::Vrfy { .. } | Event::Auth { .. } | Event::AuthResponse { .. } => s.accept(),
            }
        }
        if streaming {
            taken += s.take_data().len();
            assert!(taken <= 4096);
        }
        assert!(s.buffered() <= data.len());
        let _ = (s.last_command(), s.data_size());
    }
});
