//! Starting a worker with its file descriptors at the fixed numbers of
//! the master–child contract (`mail_ipc::status`): status pipe on fd 3,
//! listeners from fd 4. std cannot place fds at given numbers, so this
//! is the one `pre_exec` in Postern.
#![allow(unsafe_code)]

use mail_ipc::status::{LISTEN_FD_START, STATUS_FD};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Arranges for `status` and `listeners` to appear at fds 3, 4, 5, ... in
/// the child started by `cmd`.
pub(crate) fn place_fds(
    cmd: &mut tokio::process::Command,
    status: &OwnedFd,
    listeners: &[&OwnedFd],
) {
    let mut sources: Vec<RawFd> = vec![status.as_raw_fd()];
    sources.extend(listeners.iter().map(|fd| fd.as_raw_fd()));
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid, fcntl and dup2, which are async-signal-safe; it allocates
    // nothing (`sources` was built before the fork and is only read).
    // The fds it reads are kept open by the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // A session of its own: a Ctrl-C or a signal to master's
            // process group reaches master only, which then stops the
            // workers in order (they die with master via PDEATHSIG).
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // First move every source above the target range, so placing
            // one fd can never overwrite another source.
            let mut high = [0 as RawFd; 64];
            for (i, src) in sources.iter().enumerate().take(high.len()) {
                let fd = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 100);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high[i] = fd;
            }
            for (i, fd) in high.iter().enumerate().take(sources.len()) {
                let target = if i == 0 { STATUS_FD } else { LISTEN_FD_START + i as RawFd - 1 };
                // dup2 clears close-on-exec on the target.
                if libc::dup2(*fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
