//! Message bytes through every imap-message function (ENVELOPE,
//! BODYSTRUCTURE, every section and BINARY part, SEARCH, SORT, THREAD),
//! and every FETCH answer through imap-codec's encoder, which must accept
//! it. Run: `cargo +nightly fuzz run imap_message`.
#![no_main]

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::response::{Data, Response};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for item in imap_message::fuzz_one(data) {
        let seq = std::num::NonZeroU32::MIN;
        let resp = Response::Data(Data::Fetch { seq, items: Vec1::from(item) });
        let _ = ResponseCodec::default().encode(&resp).dump();
    }
});
