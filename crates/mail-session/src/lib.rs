//! The login/mail split that pop3d and imapd share, as Dovecot
//! does it: the login service, unprivileged and serving many clients,
//! authenticates a client and hands the session to a mail-service
//! process, which starts as root, becomes the mailbox owner and serves
//! only that user.
//!
//! - [`send`] / [`recv`]: one session over a Unix stream connection to
//!   the mail service: as SCM_RIGHTS the client's own TCP connection (a
//!   plain session: the login process is then out of its path, as in
//!   Dovecot) or the client's end of a socketpair (TLS: the login process
//!   keeps relaying between the client's TLS stream and its end of the
//!   pair), then a [`Handoff`] frame, then the mail process's one-byte
//!   [`ACCEPTED`].
//! - [`anvil`]: a process's link to anvil, for smtpd's client limits and
//!   pop3d's and imapd's caps per client address and per user.
//! - [`become_user`]: initgroups, setgid, setuid to the user, checked, so
//!   the mail process can never touch a mailbox with root's rights.
//! - [`maildir_location`]: where the user's Maildir is.
//! - [`service`]: what both sides do around the handoff that does not
//!   depend on the protocol (connection caps, the relay, the login
//!   side's certificate, the mail side's wait for and takeover of its
//!   session).
//!
//! Severities: none; every failure is returned. `unsafe` is confined to
//! `sys.rs` (taking ownership of a received descriptor).
#![deny(unsafe_code)]

pub mod anvil;
pub mod service;
mod sys;

pub use mail_ipc::session::{ACCEPTED, Handoff, MAX_FRAME, MAX_PENDING};
/// A session's connection on the mail side (TCP or Unix stream).
pub use socket2::Socket;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use mail_ipc::auth::AuthUser;

/// What went wrong with a handoff or a privilege change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on the socket failed.
    #[error("{0}: {1}")]
    Sys(&'static str, nix::Error),
    /// The peer closed the connection, or sent no descriptor.
    #[error("the peer closed the connection or sent no session descriptor")]
    NoDescriptor,
    /// The handoff frame could not be written or read.
    #[error("handoff frame: {0}")]
    Frame(#[from] mail_ipc::Error),
    /// The user's uid or gid cannot be taken.
    #[error("cannot become uid {uid} gid {gid} ({user}): {step}: {source}")]
    Privileges {
        /// The user.
        user: String,
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
        /// The call that failed.
        step: &'static str,
        /// The error.
        source: nix::Error,
    },
    /// After the change, root could be regained, or the ids are not what
    /// was asked: the process must not go on.
    #[error("privilege change to uid {0} did not stick")]
    NotDropped(u32),
    /// The mailbox owner is root, outside a development instance.
    #[error("refusing to serve the mailbox of {0} as root (uid 0)")]
    Root(String),
}

/// The login side: sends `session` (the mail process's end of the
/// socketpair) and `handoff` over `conn`, a connection to the mail
/// service. The caller then waits for [`ACCEPTED`] on `conn`.
pub fn send(conn: &UnixStream, session: BorrowedFd<'_>, handoff: &Handoff) -> Result<(), Error> {
    let fds = [session.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"S")];
    sendmsg::<()>(conn.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| Error::Sys("sendmsg", e))?;
    let mut w = conn;
    mail_ipc::write_frame(&mut w, handoff)?;
    Ok(())
}

/// The mail side: receives one session from `conn` (as accepted on the
/// mail service's socket). Bounded by `conn`'s read timeout, which the
/// caller sets.
pub fn recv(conn: &UnixStream) -> Result<(OwnedFd, Handoff), Error> {
    let fd = sys::recv_fd(conn)?.ok_or(Error::NoDescriptor)?;
    let mut r = conn;
    let handoff = mail_ipc::read_frame::<Handoff>(&mut r, MAX_FRAME)?.ok_or(Error::NoDescriptor)?;
    Ok((fd, handoff))
}

/// Whether this process may change its uid (it runs as root).
pub fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Becomes `user` (uid, gid, and the user's supplementary groups from
/// the group database, or just `gid` when the name is not a system user,
/// as with passwd-file users). Without root (an unprivileged instance)
/// nothing changes and `Ok(false)` is returned. A target uid of 0 is
/// refused unless `allow_root` (a development instance run by root,
/// whose every user is root).
pub fn become_user(user: &str, uid: u32, gid: u32, allow_root: bool) -> Result<bool, Error> {
    use nix::unistd::{Gid, Uid, getegid, geteuid, getgid, getuid, setgid, setgroups, setuid};
    if !privileged() {
        return Ok(false);
    }
    if uid == 0 {
        if allow_root {
            return Ok(false);
        }
        return Err(Error::Root(user.to_owned()));
    }
    let fail = |step, source| Error::Privileges { user: user.to_owned(), uid, gid, step, source };
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    let system = nix::unistd::User::from_name(user).ok().flatten().is_some_and(|p| p.uid == u);
    if system {
        let name =
            std::ffi::CString::new(user).map_err(|_| fail("initgroups", nix::Error::EINVAL))?;
        nix::unistd::initgroups(&name, g).map_err(|e| fail("initgroups", e))?;
    } else {
        setgroups(&[g]).map_err(|e| fail("setgroups", e))?;
    }
    setgid(g).map_err(|e| fail("setgid", e))?;
    setuid(u).map_err(|e| fail("setuid", e))?;
    if setuid(Uid::from_raw(0)).is_ok()
        || getuid() != u
        || geteuid() != u
        || getgid() != g
        || getegid() != g
    {
        return Err(Error::NotDropped(uid));
    }
    Ok(true)
}

/// The user's Maildir: authd's `mail` location when the user database
/// gives one (`maildir:~/Maildir`, `~/Maildir`, or an absolute path;
/// Dovecot's `:OPTIONS` suffix is ignored), else `home_mailbox` under the
/// home. A `home_mailbox` that names an mbox file (no trailing `/`), or
/// none, means `Maildir/`: pop3d and imapd serve Maildirs only.
pub fn maildir_location(user: &AuthUser, home_mailbox: &str) -> Result<PathBuf, String> {
    if let Some(mail) = user.mail.as_deref().filter(|m| !m.is_empty()) {
        let spec = mail.strip_prefix("maildir:").unwrap_or(mail);
        let spec = spec.split(':').next().unwrap_or(spec);
        let path = match spec.strip_prefix("~/") {
            Some(rest) => user.home.join(rest),
            None => PathBuf::from(spec),
        };
        if !path.is_absolute() || mail.starts_with("mbox:") {
            return Err(format!("mail location {mail:?} is not a Maildir path that can be served"));
        }
        return Ok(path);
    }
    let relative = if home_mailbox.ends_with('/') { home_mailbox } else { "Maildir/" };
    let relative = Path::new(relative);
    if relative.is_absolute()
        || relative.components().any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("home_mailbox {home_mailbox:?} must be relative to the home"));
    }
    Ok(user.home.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn user(mail: Option<&str>) -> AuthUser {
        AuthUser {
            user: "suporte".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/suporte".into(),
            mail: mail.map(str::to_owned),
        }
    }

    #[test]
    fn locations() {
        assert_eq!(
            maildir_location(&user(None), "Maildir/").unwrap(),
            Path::new("/home/suporte/Maildir/")
        );
        assert_eq!(maildir_location(&user(None), "").unwrap(), Path::new("/home/suporte/Maildir/"));
        assert_eq!(
            maildir_location(&user(None), "Mail/box/").unwrap(),
            Path::new("/home/suporte/Mail/box/")
        );
        assert!(maildir_location(&user(None), "../x/").is_err());
        assert_eq!(
            maildir_location(&user(Some("maildir:~/Mail:LAYOUT=fs")), "").unwrap(),
            Path::new("/home/suporte/Mail")
        );
        assert_eq!(
            maildir_location(&user(Some("/var/vmail/s")), "").unwrap(),
            Path::new("/var/vmail/s")
        );
        assert!(maildir_location(&user(Some("mbox:~/mail")), "").is_err());
        assert!(maildir_location(&user(Some("relative")), "").is_err());
    }

    #[test]
    fn a_session_crosses_with_its_descriptor() {
        let (a, b) = UnixStream::pair().expect("pair");
        let (mine, theirs) = UnixStream::pair().expect("pair");
        let handoff = Handoff {
            user: mail_ipc::auth::AuthUser {
                user: "suporte".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/suporte".into(),
                mail: None,
            },
            client: "127.0.0.1:4000".parse().expect("addr"),
            tls: false,
            method: "USER".into(),
            pending: b"STAT\r\n".to_vec(),
        };
        let t = std::thread::spawn(move || recv(&b).expect("recv"));
        use std::os::fd::AsFd;
        send(&a, theirs.as_fd(), &handoff).expect("send");
        drop(theirs);
        let (fd, got) = t.join().expect("thread");
        assert_eq!(got, handoff);
        // The received descriptor is the other end of `mine`.
        let mut s = UnixStream::from(fd);
        s.write_all(b"+OK\r\n").expect("write");
        let mut buf = [0u8; 5];
        (&mine).read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"+OK\r\n");
    }

    #[test]
    fn no_descriptor_is_an_error() {
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(b"S").expect("write");
        drop(a);
        assert!(matches!(recv(&b), Err(Error::NoDescriptor)));
    }

    #[test]
    fn become_user_without_root_changes_nothing() {
        if privileged() {
            eprintln!("skipped: become_user_without_root_changes_nothing: runs as root");
            return;
        }
        assert!(!become_user("nobody", 65534, 65534, false).expect("no-op"));
    }
}
