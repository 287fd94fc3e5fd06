//! The few system calls the skeleton needs that std does not wrap:
//! adopting inherited file descriptors, the parent-death signal and the
//! privilege drop.
#![allow(unsafe_code)]

use anyhow::{Context as _, bail};
use mail_ipc::status::{LISTEN_FD_START, STATUS_FD};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn is_open(fd: RawFd) -> bool {
    fcntl(fd, FcntlArg::F_GETFD).is_ok()
}

/// Takes ownership of the status pipe (fd 3, if open) and of `n`
/// listening sockets from fd 4. Marks them close-on-exec so a
/// `mailbox_command` never inherits them.
pub(crate) fn adopt_fds(n: usize) -> anyhow::Result<(Option<File>, Vec<OwnedFd>)> {
    let mut listeners = Vec::with_capacity(n);
    for i in 0..n {
        let fd = LISTEN_FD_START + i as RawFd;
        if !is_open(fd) {
            bail!(
                "listening socket fd {fd} is not open: this program is started by master (postern start)"
            );
        }
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .with_context(|| format!("fcntl fd {fd}"))?;
        // SAFETY: fd was checked open above, master placed it there for us
        // alone, and nothing else in this process has claimed it: init()
        // runs once, before any other code opens files.
        listeners.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // Anything else we inherited (master's lock on pid/master.lock, which
    // every worker holds so a new master can tell old workers still run)
    // must not reach the programs we start in turn.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let first_free = LISTEN_FD_START + n as RawFd;
        let fds: Vec<RawFd> =
            dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
        for fd in fds.into_iter().filter(|fd| *fd >= first_free) {
            let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
        }
    }
    let status = if is_open(STATUS_FD) {
        fcntl(STATUS_FD, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("fcntl status fd")?;
        // SAFETY: as above: fd 3 is the status pipe master dup2'ed for us,
        // checked open, and owned by nothing else in this process.
        Some(File::from(unsafe { OwnedFd::from_raw_fd(STATUS_FD) }))
    } else {
        None
    };
    Ok((status, listeners))
}

/// Asks the kernel to send SIGTERM when master exits, so a `kill -9` of
/// master does not leave workers holding its sockets.
pub(crate) fn die_with_parent() {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    if nix::unistd::getppid().as_raw() == 1 {
        // master died before the call above took effect.
        std::process::exit(1);
    }
}

/// setgroups, setgid, setuid to `user`, then checks root cannot be regained.
pub(crate) fn drop_privileges(user: &str) -> anyhow::Result<()> {
    use nix::unistd::{Gid, Uid, User, setgid, setgroups, setuid};
    let u = User::from_name(user)
        .with_context(|| format!("look up mail_owner {user:?}"))?
        .with_context(|| format!("mail_owner {user:?} does not exist: create it (adduser --system {user}) or set mail_owner"))?;
    if u.uid.is_root() {
        // A development instance started by root names root as its owner;
        // a system install must not, and `postern check` says so.
        tracing::warn!(
            "mail_owner {user:?} has uid 0: not dropping privileges (acceptable only for a development instance)"
        );
        return Ok(());
    }
    setgroups(&[u.gid]).context("setgroups")?;
    setgid(u.gid).context("setgid")?;
    setuid(u.uid).context("setuid")?;
    if setuid(Uid::from_raw(0)).is_ok() || setgid(Gid::from_raw(0)).is_ok() {
        bail!("could regain root after dropping privileges");
    }
    Ok(())
}
