//! The command path for the fuzz target (`fuzz/fuzz_targets/imap_command.rs`):
//! bytes through the framing (`wire::Reader`), imap-codec's command
//! decoder and the Authenticated/Selected session on a small real
//! Maildir (two messages, one folder) made afresh for each input in the
//! empty directory the caller gives, so inputs cannot affect each other.
//! Continuations, IDLE and the literal bounds behave as in the mail
//! process; nothing is written anywhere but the temporary directory.

use imap_codec::IdleDoneCodec;

use crate::session::{Outcome, Session};
use crate::wire::{Event, Reader};

/// Feeds `data` as one client's input to a session on a Maildir made in
/// `dir` (an empty directory the caller removes); returns what the
/// server wrote.
pub fn fuzz_one(dir: &std::path::Path, data: &[u8]) -> Vec<u8> {
    let root = dir.join("Maildir");
    if mail_maildir::make(&root).is_err() || mail_maildir::make_folder(&root, "Enviados").is_err() {
        return Vec::new();
    }
    for m in [
        &b"Subject: one\r\nFrom: a@b.c\r\n\r\nfirst\r\n"[..],
        b"Subject: two\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\nA\n--x--\n",
    ] {
        let _ = mail_maildir::deliver(&root, b"", m, "fuzz");
    }
    let mut session = Session::new(root, mail_maildir::SpecialUseMap::default());
    let mut reader = Reader::new(4096, 64 * 1024);
    let mut out = Vec::new();
    let mut idling = None;
    // Fed in pieces, as a network delivers it.
    for chunk in data.chunks(7) {
        reader.push(chunk);
        while let Some(event) = reader.next() {
            match event {
                Event::Continue => out.extend_from_slice(b"+ OK\r\n"),
                Event::LiteralTooBig { sync: true, .. } => out.extend_from_slice(b"x NO\r\n"),
                Event::LiteralTooBig { sync: false, .. } | Event::LineTooLong { .. } => {
                    return out;
                }
                Event::Message if idling.is_some() => {
                    let _ = reader.decode(&IdleDoneCodec::default());
                    session.sync(&mut out, true);
                    idling = None;
                }
                Event::Message => match session.message(reader.message(), &mut out) {
                    Some(Outcome::Continue) | None => {}
                    Some(Outcome::Logout) => return out,
                    Some(Outcome::Idle(tag)) => idling = Some(tag),
                },
            }
        }
        if out.len() > 1 << 20 {
            out.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// The committed corpus replays without a panic, and a known
    /// session answers as it should.
    #[test]
    fn corpus_replays() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/imap_command");
        let mut n = 0;
        for e in std::fs::read_dir(&corpus).expect("corpus") {
            let data = std::fs::read(e.expect("entry").path()).expect("read");
            let t = tempfile::tempdir().expect("tempdir");
            let _ = super::fuzz_one(t.path(), &data);
            n += 1;
        }
        assert!(n > 0);
        let t = tempfile::tempdir().expect("tempdir");
        let out = super::fuzz_one(t.path(), b"a SELECT INBOX\r\nb UID FETCH 1:* UID\r\n");
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.contains("* 2 EXISTS\r\n")
                && out.ends_with(
                    "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\nb OK Fetch completed.\r\n"
                ),
            "{out}"
        );
    }
}
