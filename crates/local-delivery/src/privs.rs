//! Switching the effective uid/gid to a recipient for one delivery, and
//! back (Postfix's `set_eugid()`).
//!
//! In a system install local-delivery runs as root and every file it
//! creates or writes in a user's home or mailbox is created with the
//! user's effective uid, gid and (only) group, so quotas, ownership and
//! permission checks are the user's own. In an unprivileged instance
//! (`postern init --dev`) nothing is root and no switch happens: the whole
//! instance belongs to the one invoking user.
//!
//! The process is single-threaded apart from an idle signal thread, and
//! glibc applies `set*id` to every thread, so the switch is process-wide
//! and cannot race with another delivery.

use nix::unistd::{Gid, Uid, getegid, geteuid, getgroups, setegid, seteuid, setgroups};

/// Is this process privileged (so that it must switch for deliveries)?
pub(crate) fn is_root() -> bool {
    geteuid().is_root()
}

/// While alive, the process runs with the effective ids of a user; dropping
/// it returns to root. A no-op when not started as root.
#[derive(Debug)]
#[must_use = "the switch lasts as long as the guard"]
pub(crate) struct AsUser {
    saved: Option<Saved>,
}

#[derive(Debug)]
struct Saved {
    egid: Gid,
    groups: Vec<Gid>,
}

impl AsUser {
    /// Switches to `uid`/`gid` (with `gid` as the only supplementary
    /// group) when root; otherwise does nothing.
    pub(crate) fn switch(uid: u32, gid: u32) -> Result<AsUser, nix::Error> {
        if !is_root() {
            return Ok(AsUser { saved: None });
        }
        let saved = Saved { egid: getegid(), groups: getgroups()? };
        let gid = Gid::from_raw(gid);
        // Order matters: groups and gid can only be changed while still
        // root; the uid goes last.
        let result = setgroups(&[gid])
            .and_then(|()| setegid(gid))
            .and_then(|()| seteuid(Uid::from_raw(uid)));
        let guard = AsUser { saved: Some(saved) };
        // On failure the guard's Drop undoes whatever part succeeded.
        result.map(|()| guard)
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        let Some(saved) = self.saved.take() else { return };
        // The real uid is still 0, so these cannot fail for lack of
        // privilege. If they fail anyway, continuing could deliver the next
        // message with the wrong identity; a panic could be caught by the
        // request's catch_unwind, so abort (master starts a fresh worker).
        let restored = seteuid(Uid::from_raw(0))
            .and_then(|()| setegid(saved.egid))
            .and_then(|()| setgroups(&saved.groups));
        if let Err(e) = restored {
            tracing::error!("fatal: cannot restore root privileges after a delivery: {e}");
            std::process::abort();
        }
    }
}

/// Tests that touch files take this lock: when the test binary runs as
/// root, a privilege switch in one test changes the ids of every thread,
/// so such tests must not overlap.
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_is_a_no_op_without_root() {
        // As root a switch would change the ids of every test thread at
        // once; that path is exercised by the end-to-end tests instead.
        if is_root() {
            return;
        }
        let before = (geteuid(), getegid());
        let guard = AsUser::switch(0, 0).unwrap();
        assert_eq!((geteuid(), getegid()), before);
        drop(guard);
    }
}
