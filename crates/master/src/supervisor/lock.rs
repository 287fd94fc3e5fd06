//! The instance lock on `pid/master.lock`: one master per queue, and no
//! new master while workers of a killed one still run.

use anyhow::{Context as _, bail};
use mail_ipc::sockets;
use mail_queue::Queue;
use nix::fcntl::{FcntlArg, FdFlag, Flock, FlockArg, fcntl};
use std::fs::File;

/// Takes the instance lock, or refuses to start: another master runs, or
/// workers of a master that was killed still do (they inherit the lock and
/// hold the old listeners; a second qmgr on one queue would deliver twice).
pub(super) fn lock_instance(queue: &Queue) -> anyhow::Result<Flock<File>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = queue.root().join(sockets::MASTER_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!(
            "the Postern mail system is already running, or processes of a master that was killed still \
             hold {}; stop it with `postern stop`, or wait for the old processes to exit",
            path.display()
        ),
        Err((_, e)) => return Err(e).with_context(|| format!("lock {}", path.display())),
    };
    // Workers inherit the lock (mail-daemon keeps it from their children).
    fcntl(lock.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).context("fcntl master.lock")?;
    Ok(lock)
}
