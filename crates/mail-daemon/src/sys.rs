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

/// initgroups, setgid, setuid to `user`, then checks root cannot be regained.
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
    // mail_owner's own groups, as /etc/group has them: a system install
    // puts it in setgid_group (pickup reads maildrop/ files through it)
    // and ssl-cert (smtpd's key).
    match std::ffi::CString::new(user) {
        Ok(name) => nix::unistd::initgroups(&name, u.gid).context("initgroups")?,
        Err(_) => setgroups(&[u.gid]).context("setgroups")?,
    }
    setgid(u.gid).context("setgid")?;
    setuid(u.uid).context("setuid")?;
    if setuid(Uid::from_raw(0)).is_ok() || setgid(Gid::from_raw(0)).is_ok() {
        bail!("could regain root after dropping privileges");
    }
    Ok(())
}

/// What the stop handlers saw: 0 nothing, 1 SIGUSR1 (drain), 2 SIGTERM or
/// SIGINT (now). Kept as the strongest request so far.
static STOP_SEEN: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
/// The write end of the blocking skeleton's wake-up pipe, -1 before it exists.
static WAKE_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    use std::sync::atomic::Ordering;
    let level = if sig == libc::SIGUSR1 { 1 } else { 2 };
    STOP_SEEN.fetch_max(level, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; errno is saved and
        // restored so the interrupted code sees its own; a full pipe
        // (EAGAIN, it is non-blocking) already wakes the loop.
        unsafe {
            let saved = *libc::__errno_location();
            let byte = 1u8;
            let _ = libc::write(fd, (&raw const byte).cast(), 1);
            *libc::__errno_location() = saved;
        }
    }
}

/// Installs handlers for SIGTERM, SIGINT and SIGUSR1 that record the
/// request and write a byte to `wake` (the write end of a non-blocking
/// pipe), without any thread: the blocking skeleton's worker stays
/// single-threaded, so its set*uid calls need no broadcast to other
/// threads. Handlers reset to the default on exec, so a
/// `mailbox_command` starts with the usual signal dispositions.
pub(crate) fn install_stop_handlers(wake: &OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    WAKE_FD.store(wake.as_raw_fd(), std::sync::atomic::Ordering::SeqCst);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler only touches atomics and calls write(2);
        // SA_RESTART keeps blocking reads and writes of the delivery in
        // hand from failing with EINTR.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The strongest stop request the handlers have seen.
pub(crate) fn stop_seen() -> Option<crate::Stop> {
    match STOP_SEEN.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        1 => Some(crate::Stop::Drain),
        _ => Some(crate::Stop::Now),
    }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores:
/// an operator command writing into a closed pipe (`mailq | head`) then
/// ends quietly, as Postfix's do, instead of panicking on EPIPE.
pub fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_DFL installs no handler code of ours, so nothing can run
    // in signal context; std offers no safe way to change a disposition.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
