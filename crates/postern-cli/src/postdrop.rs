//! `postdrop`: the setgid helper that puts a local submission into
//! `maildrop/` (Postfix postdrop(1)).
//!
//! A system install's `maildrop/` is `mail_owner:setgid_group` mode 1730,
//! and the package makes `/usr/sbin/postdrop` setgid `setgid_group`, so
//! an ordinary user can create a file there through this program only,
//! and cannot list the directory or open another user's file in it.
//! `sendmail` runs `$command_directory/postdrop` when it may not write
//! `maildrop/` itself, and writes the maildrop record
//! (`mail_queue::maildrop::encode`) to its standard input. postdrop reads
//! at most `message_size_limit` plus room for the envelope, checks that
//! the record decodes, sets the submitter's login name from the real user
//! id, and writes the file as the user (owner: the user, so pickup takes
//! the sender's identity from it; group: setgid_group; mode 0640), on
//! stable storage before it exits 0; then it pokes pickup.
//!
//! It executes nothing and reads only main.toml, master.toml and its
//! input, so `-c DIR` (or `POSTERN_CONFIG_DIR`) is honoured even setgid:
//! the one right the group gives, creating files in directories of that
//! group, is the one postdrop exists to use.
//!
//! Exit codes (sysexits): 64 usage, 65 bad or oversized input, 75 cannot
//! write the file, 78 bad configuration.

use crate::getopt;
use mail_config::{Main, settings};
use mail_queue::Queue;
use std::io::Read;
use std::process::ExitCode;

const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

const USAGE: &str = "usage: postdrop [-c config_dir] [-v]";

/// Room for the record's framing and envelope on top of the message.
const ENVELOPE_ROOM: u64 = 1 << 20;

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("postdrop: fatal: {message}");
    ExitCode::from(code)
}

/// Entry point of the `postdrop` binary.
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let (opts, rest) = match getopt::parse(&args, "c") {
        Ok(p) => p,
        Err(c) => return fail(&format!("option requires an argument -- '{c}'\n{USAGE}"), EX_USAGE),
    };
    let mut config_dir = None;
    for (c, v) in opts {
        match c {
            'c' => config_dir = v.map(std::path::PathBuf::from),
            'v' => {}
            other => return fail(&format!("invalid option -- '{other}'\n{USAGE}"), EX_USAGE),
        }
    }
    if !rest.is_empty() {
        return fail(&format!("unexpected argument {:?}\n{USAGE}", rest[0]), EX_USAGE);
    }
    let dir = mail_config::config_dir_from(config_dir.as_deref());
    let main = match Main::load(&dir) {
        Ok(m) => m,
        Err(e) => return fail(&e.to_string(), EX_CONFIG),
    };
    match drop_from(&main, &mut std::io::stdin().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err((code, e)) => fail(&e, code),
    }
}

/// Reads one maildrop record from `input` and writes it to `maildrop/`.
/// Returns the maildrop id.
pub fn drop_from(main: &Main, input: &mut impl Read) -> Result<String, (u8, String)> {
    let common = settings::Common::new(main);
    let limit = match common.message_size_limit {
        0 => u64::MAX - ENVELOPE_ROOM - 1,
        n => n,
    } + ENVELOPE_ROOM;
    let mut bytes = Vec::new();
    input
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| (EX_TEMPFAIL, format!("error reading input: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err((EX_DATAERR, "message file too big".into()));
    }
    let mut m = mail_queue::maildrop::decode(std::path::Path::new("standard input"), &bytes)
        .map_err(|e| (EX_DATAERR, format!("bad input: {e}")))?;
    // Informational only (pickup trusts the file's owner), but never the
    // caller's word.
    let uid = nix::unistd::getuid();
    m.user = match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    };
    let queue = Queue::new(common.queue_directory);
    let id = queue
        .write_maildrop(&m)
        .map_err(|e| (EX_TEMPFAIL, format!("cannot write maildrop file: {e}")))?;
    if let Err(crate::sendmail::Poke::NoService(e)) =
        crate::sendmail::poke(main, "pickup", mail_ipc::trigger::Trigger::Wakeup)
    {
        eprintln!("postdrop: warning: {e}");
    }
    Ok(id.to_string())
}
