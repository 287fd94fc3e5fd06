//! The mail service: one process per session. It waits (briefly) for a
//! session from a login process, becomes the user, locks and opens the
//! Maildir and serves the TRANSACTION and UPDATE states over the
//! socketpair, with blocking I/O: one client, one thread, nothing to
//! share. Then it exits, and master starts another when one is needed.
//!
//! Severities: fatal only when no listener was handed over; everything
//! about the session is a warning and an `-ERR` to the client.

use mail_session::Socket;
use std::io::{BufWriter, Read, Write};

use mail_config::settings;
use mail_daemon::Daemon;
use mail_maildir::{Flags, Mailbox};
use pop3_proto::dot::DotStuffer;
use pop3_proto::line::{Line, LineReader};
use pop3_proto::reply;
use pop3_proto::transaction::{Action, Entry, Transaction};

/// How much of a message is read at once.
const CHUNK: usize = 64 * 1024;

pub(crate) fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    let settings = settings::Pop3d::new(&daemon.config);
    let Some(r) = mail_session::service::receive_session(&mut daemon, "pop3")? else {
        return Ok(());
    };
    serve(&settings, r.stream, r.handoff, r.allow_root);
    Ok(())
}

/// What the session did, for the logout line.
#[derive(Debug, Default)]
struct Counts {
    top: (u64, u64),
    retr: (u64, u64),
    deleted: usize,
}

fn serve(
    settings: &settings::Pop3d,
    stream: Socket,
    handoff: mail_session::Handoff,
    allow_root: bool,
) {
    let user = &handoff.user;
    let name = mail_session::service::one_line(&user.user);
    let Ok(out) = stream.try_clone() else { return };
    let mut out = BufWriter::with_capacity(CHUNK, out);
    let say = |out: &mut BufWriter<Socket>, bytes: &[u8]| {
        let _ = out.write_all(bytes);
        let _ = out.flush();
    };
    match mail_session::become_user(&user.user, user.uid, user.gid, allow_root) {
        Ok(_) => mail_daemon::die_with_parent(),
        Err(e) => {
            tracing::warn!("user=<{name}>: {e}");
            say(&mut out, reply::MAILBOX_FAILED);
            return;
        }
    }
    let dir = match mail_session::maildir_location(user, &settings.home_mailbox) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("user=<{name}>: {e}");
            say(&mut out, reply::MAILBOX_FAILED);
            return;
        }
    };
    let before = crate::mailbox::stamps(&dir);
    let mut mailbox = match Mailbox::open(&dir) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("user=<{name}>: cannot open the mailbox: {e}");
            say(&mut out, reply::MAILBOX_FAILED);
            return;
        }
    };
    let _lock = match mailbox.lock_exclusive("pop3") {
        Ok(Some(l)) => l,
        Ok(None) => {
            tracing::info!("user=<{name}>: Mailbox in use: another POP3 session holds the lock");
            say(&mut out, reply::IN_USE);
            return;
        }
        Err(e) => {
            tracing::warn!("user=<{name}>: {e}");
            say(&mut out, reply::MAILBOX_FAILED);
            return;
        }
    };
    // What arrived between the open and the lock belongs to this session;
    // when new/ and cur/ have not changed since before the open, the
    // open's listing already is that (a second listing doubled the cost
    // of a login to a large mailbox).
    if !crate::mailbox::unchanged_since(&dir, before)
        && let Err(e) = mailbox.refresh()
    {
        tracing::warn!("user=<{name}>: cannot read the mailbox: {e}");
        say(&mut out, reply::MAILBOX_FAILED);
        return;
    }
    for s in mailbox.skipped() {
        tracing::warn!("user=<{name}>: skipping {}: {}", s.path.display(), s.reason);
    }
    let validity = mailbox.uid_validity();
    let uids: Vec<u32> = mailbox.messages().iter().map(|m| m.uid).collect();
    let entries = mailbox
        .messages()
        .iter()
        .map(|m| Entry { size: m.size, uidl: crate::mailbox::uidl(m.uid, validity) })
        .collect();
    let mut tx = Transaction::new(entries);
    let _ = stream.set_read_timeout(Some(settings.pop3_idle_timeout));
    let _ = out.get_ref().set_write_timeout(Some(settings.pop3_idle_timeout));
    say(&mut out, reply::LOGGED_IN);
    let mut reader = LineReader::new(pop3_proto::MAX_LINE);
    reader.push(&handoff.pending);
    let mut counts = Counts::default();
    let mut input = &stream;
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(line) = reader.next_line() {
            let line = match line {
                Line::Complete(l) => Some(l),
                Line::TooLong => None,
            };
            let ok = match tx.line(line.as_deref()) {
                Action::Reply(bytes) => out.write_all(&bytes).is_ok(),
                Action::Close(bytes) => {
                    say(&mut out, &bytes);
                    tracing::info!("user=<{name}>: Disconnected: too many bad commands");
                    return;
                }
                Action::Send { first, index, top } => {
                    let Some(&uid) = uids.get(index) else { return };
                    let size = tx.entries().get(index).map_or(0, |e| e.size);
                    match send(&mailbox, uid, &first, top, &mut out) {
                        Ok(sent) => {
                            match top {
                                Some(_) => counts.top = (counts.top.0 + 1, counts.top.1 + sent),
                                None => {
                                    counts.retr = (counts.retr.0 + 1, counts.retr.1 + sent);
                                    if sent != size {
                                        tracing::warn!(
                                            "user=<{name}>: UID {uid}: sent {sent} octets, the index says {size}"
                                        );
                                    }
                                    mark_seen(&mut mailbox, uid, &name);
                                }
                            }
                            true
                        }
                        Err(SendError::Gone) => out.write_all(&Transaction::gone_reply()).is_ok(),
                        Err(SendError::Open(e)) => {
                            tracing::warn!("user=<{name}>: UID {uid}: {e}");
                            out.write_all(b"-ERR [SYS/TEMP] Cannot read the message.\r\n").is_ok()
                        }
                        Err(SendError::Client) => {
                            tracing::info!(
                                "user=<{name}>: Disconnected: Connection closed in RETR"
                            );
                            return;
                        }
                    }
                }
                Action::Quit(deleted) => {
                    let gone: Vec<u32> =
                        deleted.iter().filter_map(|&i| uids.get(i).copied()).collect();
                    let result = if gone.is_empty() {
                        Ok(0)
                    } else {
                        mailbox.expunge(&gone).map(|r| r.len()).map_err(|e| {
                            tracing::warn!("user=<{name}>: deleting: {e}");
                            "Some messages could not be deleted.".to_owned()
                        })
                    };
                    counts.deleted = *result.as_ref().unwrap_or(&0);
                    say(&mut out, &Transaction::quit_reply(result));
                    logout(&name, "Logged out", &counts, &tx);
                    return;
                }
            };
            if !ok {
                logout(&name, "Connection closed", &counts, &tx);
                return;
            }
        }
        if out.flush().is_err() {
            logout(&name, "Connection closed", &counts, &tx);
            return;
        }
        match input.read(&mut buf) {
            Ok(0) => {
                logout(&name, "Connection closed", &counts, &tx);
                return;
            }
            Ok(n) => reader.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                say(&mut out, reply::IDLE_TIMEOUT);
                logout(&name, "Inactivity", &counts, &tx);
                return;
            }
            Err(_) => {
                logout(&name, "Connection closed", &counts, &tx);
                return;
            }
        }
    }
}

fn logout(name: &str, why: &str, c: &Counts, tx: &Transaction) {
    let size: u64 = tx.entries().iter().map(|e| e.size).sum();
    tracing::info!(
        "user=<{name}>: Disconnected: {why} top={}/{}, retr={}/{}, del={}/{}, size={size}",
        c.top.0,
        c.top.1,
        c.retr.0,
        c.retr.1,
        c.deleted,
        tx.entries().len(),
    );
}

/// RETR leaves the message in `cur/` with Seen, as Dovecot does. A
/// failure only costs the flag.
fn mark_seen(mailbox: &mut Mailbox, uid: u32, name: &str) {
    let Some(flags) = mailbox.message(uid).map(|m| m.flags) else { return };
    if let Err(e) = mailbox.set_flags(uid, flags | Flags::SEEN) {
        tracing::warn!("user=<{name}>: UID {uid}: cannot set the Seen flag: {e}");
    }
}

enum SendError {
    /// The file is gone (another process removed it).
    Gone,
    /// It cannot be opened or read for another reason.
    Open(String),
    /// Writing to the client failed: the session is over.
    Client,
}

/// Streams one message: the `+OK` line, the stuffed CRLF body, `.`.
/// Returns the message octets sent.
fn send(
    mailbox: &Mailbox,
    uid: u32,
    first: &[u8],
    top: Option<u32>,
    out: &mut impl Write,
) -> Result<u64, SendError> {
    let mut file = match mailbox.open_message(uid) {
        Ok(f) => f,
        Err(mail_maildir::Error::NotFound { .. }) => return Err(SendError::Gone),
        Err(e) => return Err(SendError::Open(e.to_string())),
    };
    out.write_all(first).map_err(|_| SendError::Client)?;
    let mut dot = match top {
        Some(n) => DotStuffer::top(n),
        None => DotStuffer::retr(),
    };
    let mut chunk = vec![0u8; CHUNK];
    let mut stuffed = Vec::with_capacity(CHUNK + CHUNK / 8);
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The "+OK" is out: the response must still end properly, so
            // the message is cut short rather than the session.
            Err(e) => {
                tracing::warn!("UID {uid}: read error: {e}");
                break;
            }
        };
        stuffed.clear();
        dot.feed(&chunk[..n], &mut stuffed);
        out.write_all(&stuffed).map_err(|_| SendError::Client)?;
        if dot.is_done() {
            break;
        }
    }
    let sent = dot.octets();
    stuffed.clear();
    dot.finish(&mut stuffed);
    out.write_all(&stuffed).map_err(|_| SendError::Client)?;
    Ok(sent)
}
