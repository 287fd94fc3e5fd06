//! The mail service: one process per session. It waits (briefly) for a
//! session from a login process, becomes the user, finds the Maildir and
//! serves the Authenticated and Selected states over the socketpair with
//! blocking I/O: one client, one thread, nothing to share. IDLE waits in
//! poll(2) on the client and mail-maildir's `Watcher` (inotify) on the
//! selected folder, so a delivery or another session's change wakes it
//! at once and nothing reads the disk in a loop. Then the process exits, and master starts another
//! when one is needed.
//!
//! Severities: fatal only when no listener was handed over; everything
//! about the session is a warning and a BYE or tagged NO to the client.

use mail_session::Socket;
use std::io::{BufWriter, Read, Write};
use std::os::fd::AsFd;

use imap_codec::IdleDoneCodec;
use mail_config::settings;
use mail_daemon::Daemon;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::session::{Outcome, Session};
use crate::wire::{Event, Reader, safe};

/// Bad commands in a row before the session is closed.
const MAX_BAD: u32 = 20;
/// The largest APPEND when `message_size_limit = 0` (no limit of its
/// own): what one message may sensibly take in this process's memory.
const APPEND_CEILING: u64 = 1 << 30;

pub(crate) fn run(mut daemon: Daemon) -> anyhow::Result<()> {
    let settings = settings::Imapd::new(&daemon.config);
    // Checked when main.toml loaded; a map that still does not parse
    // leaves folders without SPECIAL-USE attributes, and says so.
    let special_use = settings::ImapStore::new(&daemon.config).imap_special_use;
    let special_use = mail_maildir::SpecialUseMap::parse(&special_use).unwrap_or_else(|e| {
        tracing::warn!("imap_special_use: {e}");
        mail_maildir::SpecialUseMap::default()
    });
    let Some(r) = mail_session::service::receive_session(&mut daemon, "imap")? else {
        return Ok(());
    };
    serve(&settings, r.stream, r.handoff, r.allow_root, special_use);
    Ok(())
}

/// Bytes in and out, for the logout line.
#[derive(Debug, Default)]
struct Counts {
    input: u64,
    output: u64,
}

fn serve(
    settings: &settings::Imapd,
    stream: Socket,
    handoff: mail_session::Handoff,
    allow_root: bool,
    special_use: mail_maildir::SpecialUseMap,
) {
    let user = &handoff.user;
    let name = mail_session::service::one_line(&user.user);
    let Ok(out) = stream.try_clone() else { return };
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let say = |out: &mut BufWriter<Socket>, bytes: &[u8]| {
        let _ = out.write_all(bytes);
        let _ = out.flush();
    };
    const FAILED: &[u8] =
        b"* BYE Internal error occurred. Refer to server log for more information.\r\n";
    match mail_session::become_user(&user.user, user.uid, user.gid, allow_root) {
        Ok(_) => mail_daemon::die_with_parent(),
        Err(e) => {
            tracing::warn!("user=<{name}>: {e}");
            say(&mut out, FAILED);
            return;
        }
    }
    let root = match mail_session::maildir_location(user, &settings.home_mailbox) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("user=<{name}>: {e}");
            say(&mut out, FAILED);
            return;
        }
    };
    // Dovecot creates a missing INBOX at login; so does imapd (as the
    // user), so a new user can log in before the first delivery.
    if !root.join("cur").is_dir()
        && let Err(e) = mail_maildir::make(&root)
    {
        tracing::warn!("user=<{name}>: cannot create {}: {e}", root.display());
        say(&mut out, FAILED);
        return;
    }
    let _ = stream.set_read_timeout(Some(settings.imap_idle_timeout));
    let _ = out.get_ref().set_write_timeout(Some(settings.imap_idle_timeout));
    let max_literal = match settings.message_size_limit {
        0 => APPEND_CEILING,
        n => n.min(APPEND_CEILING),
    };
    let mut reader = Reader::new(settings.imap_max_line_length, max_literal);
    reader.push(&handoff.pending);
    let mut session = Session::new(root, special_use);
    let mut counts = Counts { input: handoff.pending.len() as u64, output: 0 };
    let mut input = &stream;
    let mut buf = vec![0u8; 64 * 1024];
    let mut bad = 0u32;
    let mut resp = Vec::new();
    loop {
        while let Some(event) = reader.next() {
            resp.clear();
            let mut close = false;
            match event {
                Event::Continue => resp.extend_from_slice(b"+ OK\r\n"),
                Event::LiteralTooBig { tag, sync, length } => {
                    let tag = tag.map(|t| safe(&t)).unwrap_or_else(|| "*".into());
                    if sync {
                        resp.extend_from_slice(
                            format!(
                                "{tag} NO [TOOBIG] Literal of {length} octets is over the limit of {max_literal}.\r\n"
                            )
                            .as_bytes(),
                        );
                    } else {
                        resp.extend_from_slice(b"* BYE [TOOBIG] Literal too large.\r\n");
                        close = true;
                    }
                }
                Event::LineTooLong { .. } => {
                    resp.extend_from_slice(b"* BYE Too long command line.\r\n");
                    close = true;
                }
                Event::Message => match session.message(reader.message(), &mut resp) {
                    Some(outcome) => {
                        bad = 0;
                        match outcome {
                            Outcome::Continue => {}
                            Outcome::Logout => {
                                counts.output += resp.len() as u64;
                                say(&mut out, &resp);
                                logout(&name, "Logged out", &counts, &session);
                                return;
                            }
                            Outcome::Idle(tag) => {
                                counts.output += resp.len() as u64;
                                if out.write_all(&resp).and_then(|()| out.flush()).is_err() {
                                    logout(&name, "Connection closed", &counts, &session);
                                    return;
                                }
                                resp.clear();
                                match idle(
                                    settings,
                                    &stream,
                                    &mut out,
                                    &mut reader,
                                    &mut session,
                                    &tag,
                                    &mut counts,
                                ) {
                                    Ok(()) => continue,
                                    Err(why) => {
                                        logout(&name, why, &counts, &session);
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    None => {
                        let tag = reader.tag().map(|t| safe(&t)).unwrap_or_else(|| "*".into());
                        resp.extend_from_slice(
                            format!("{tag} BAD Error in IMAP command received by server.\r\n")
                                .as_bytes(),
                        );
                        bad += 1;
                        if bad >= MAX_BAD {
                            resp.extend_from_slice(b"* BYE Too many invalid IMAP commands.\r\n");
                            close = true;
                        }
                    }
                },
            }
            counts.output += resp.len() as u64;
            if out.write_all(&resp).is_err() {
                logout(&name, "Connection closed", &counts, &session);
                return;
            }
            if close {
                let _ = out.flush();
                logout(&name, "Protocol error", &counts, &session);
                return;
            }
        }
        if out.flush().is_err() {
            logout(&name, "Connection closed", &counts, &session);
            return;
        }
        match input.read(&mut buf) {
            Ok(0) => {
                logout(&name, "Connection closed", &counts, &session);
                return;
            }
            Ok(n) => {
                counts.input += n as u64;
                reader.push(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                say(&mut out, b"* BYE Disconnected for inactivity.\r\n");
                logout(&name, "Inactivity", &counts, &session);
                return;
            }
            Err(_) => {
                logout(&name, "Connection closed", &counts, &session);
                return;
            }
        }
    }
}

/// IDLE (RFC 2177) until DONE: changes to the selected folder are
/// reported as they happen. `Err` ends the session with the reason.
fn idle(
    settings: &settings::Imapd,
    stream: &Socket,
    out: &mut BufWriter<Socket>,
    reader: &mut Reader,
    session: &mut Session,
    tag: &str,
    counts: &mut Counts,
) -> Result<(), &'static str> {
    // Without a watch (inotify unavailable) IDLE still ends at DONE and
    // the next command reports what changed.
    let watch = session.selected.as_ref().and_then(|s| {
        mail_maildir::Watcher::new(s.mbox.dir())
            .map_err(|e| tracing::warn!("IDLE: cannot watch {}: {e}", s.mbox.dir().display()))
            .ok()
    });
    let timeout_ms = settings.imap_idle_timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut buf = vec![0u8; 4096];
    let mut resp = Vec::new();
    loop {
        // DONE may already be in what was read.
        if let Some(event) = reader.next() {
            let text = match event {
                Event::Message if reader.decode(&IdleDoneCodec::default()).is_some() => {
                    format!("{} OK Idle completed.\r\n", safe(tag))
                }
                _ => format!("{} BAD Expected DONE.\r\n", safe(tag)),
            };
            resp.clear();
            session.sync(&mut resp, true);
            resp.extend_from_slice(text.as_bytes());
            counts.output += resp.len() as u64;
            out.write_all(&resp).and_then(|()| out.flush()).map_err(|_| "Connection closed")?;
            return Ok(());
        }
        let (client_ready, changed) = {
            let mut fds = vec![PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
            if let Some(w) = watch.as_ref() {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX)) {
                Ok(0) => {
                    let _ = out.write_all(b"* BYE Disconnected for inactivity.\r\n");
                    let _ = out.flush();
                    return Err("Inactivity");
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Err("Connection closed"),
            }
            let ready = |f: &PollFd<'_>| {
                f.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        // Drained: one refresh covers every event so far.
        if changed && watch.as_ref().is_some_and(|w| w.changed().unwrap_or(true)) {
            resp.clear();
            session.sync(&mut resp, true);
            if !resp.is_empty() {
                counts.output += resp.len() as u64;
                out.write_all(&resp).and_then(|()| out.flush()).map_err(|_| "Connection closed")?;
            }
        }
        if client_ready {
            let mut input = stream;
            match input.read(&mut buf) {
                Ok(0) => return Err("Connection closed"),
                Ok(n) => {
                    counts.input += n as u64;
                    reader.push(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Err("Connection closed"),
            }
        }
    }
}

fn logout(name: &str, why: &str, c: &Counts, s: &Session) {
    tracing::info!(
        "user=<{name}>: Disconnected: {why} in={} out={} fetched={}/{}",
        c.input,
        c.output,
        s.fetched.0,
        s.fetched.1
    );
}
