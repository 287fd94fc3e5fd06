//! Fuzz target: arbitrary message bytes through `mail_cleanup::cleanup`,
//! `extract_recipients` and `header_values`. None may panic.
#![no_main]

use chrono::{Local, TimeZone};
use libfuzzer_sys::fuzz_target;
use mail_cleanup::{CleanupParams, Trace};
use mail_types::{Address, QueueId};

fuzz_target!(|data: &[u8]| {
    let p = CleanupParams {
        myhostname: "mail.example.org".into(),
        myorigin: "example.org".into(),
        append_at_myorigin: true,
        header_size_limit: 1000,
        mail_name: "Postern".into(),
    };
    let (Some(time), Ok(queue_id), Ok(sender)) =
        (Local.timestamp_opt(1_795_870_954, 0).single(), QueueId::parse("FUZZ000000"), Address::parse("root"))
    else {
        return;
    };
    let trace = Trace {
        tls: None,
        helo: Some("client.example".into()),
        client_name: "localhost".into(),
        client_addr: "127.0.0.1".into(),
        protocol: "ESMTP".into(),
        local_uid: None,
        queue_id,
        single_recipient: None,
        time,
    };
    let _ = mail_cleanup::cleanup(&p, &trace, Some(&sender), data);
    let _ = mail_cleanup::extract_recipients(data);
    let _ = mail_cleanup::header_values(data, "Delivered-To");
});
