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

use crate::resolve::Owner;

/// Is this process privileged (so that it must switch for deliveries)?
/// Returns to root first if a user's identity was kept ([`keep`]).
pub(crate) fn is_root() -> bool {
    root();
    geteuid().is_root()
}

std::thread_local! {
    /// A user's identity left in place by [`keep`] for the next switch to
    /// the same user.
    static KEPT: std::cell::RefCell<Option<(u32, u32, AsUser)>> =
        const { std::cell::RefCell::new(None) };
}

/// Keeps the identity of `guard` (switched to `uid`/`gid`) after the
/// caller is done with it, instead of returning to root, so that the
/// next [`AsUser::switch`] to the same user costs no system call: the
/// `.forward` lookup of a user without one, followed by the delivery into
/// that user's Maildir. Any other switch, [`root`] and [`is_root`] return
/// to root first; everything between the two that needs root (user and
/// alias lookups, queue files, commands, replies) calls [`root`].
pub(crate) fn keep(uid: u32, gid: u32, guard: AsUser) {
    if guard.saved.is_none() {
        return;
    }
    let old = KEPT.with(|k| k.borrow_mut().replace((uid, gid, guard)));
    drop(old);
}

/// Returns to root if a user's identity was kept; a no-op otherwise.
pub(crate) fn root() {
    let kept = KEPT.with(|k| k.borrow_mut().take());
    drop(kept);
}

/// Must a command or file delivery as `owner` run as `default_privs`
/// instead? Only in a privileged install (`privileged`: we are root and
/// the instance is not root's own) and when the command would otherwise
/// get root's uid or group. In an unprivileged instance nothing switches,
/// so nothing needs replacing.
pub(crate) fn needs_default_privs(owner: Owner, privileged: bool) -> bool {
    privileged && (owner.uid == 0 || owner.gid == 0)
}

/// Replaces a root uid and a root gid, each on its own, by those of the
/// `default_privs` account, as Postfix's `local/command.c` and
/// `local/file.c` do.
pub(crate) fn with_default_privs(owner: Owner, default: Owner) -> Owner {
    Owner {
        uid: if owner.uid == 0 { default.uid } else { owner.uid },
        gid: if owner.gid == 0 { default.gid } else { owner.gid },
    }
}

/// The ids of the `default_privs` account; a missing or privileged
/// account is a configuration error (Postfix refuses to start).
pub(crate) fn default_privs_account(name: &str) -> Result<Owner, String> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) if u.uid.is_root() || u.gid.as_raw() == 0 => {
            Err(format!("default_privs account {name:?} is privileged (uid or gid 0)"))
        }
        Ok(Some(u)) => Ok(Owner { uid: u.uid.as_raw(), gid: u.gid.as_raw() }),
        Ok(None) => Err(format!("default_privs account {name:?} does not exist")),
        Err(e) => Err(format!("cannot look up default_privs account {name:?}: {e}")),
    }
}

/// The ids a command or file delivery for `owner` runs with: `owner`,
/// or `default_privs` in place of root when `privileged`
/// ([`crate::settings::Settings::privileged`]).
pub(crate) fn unprivileged(
    owner: Owner,
    default_privs: &str,
    privileged: bool,
) -> Result<Owner, String> {
    if !needs_default_privs(owner, privileged) {
        return Ok(owner);
    }
    Ok(with_default_privs(owner, default_privs_account(default_privs)?))
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
        let kept = KEPT.with(|k| k.borrow_mut().take());
        match kept {
            Some((u, g, guard)) if (u, g) == (uid, gid) => return Ok(guard),
            // Back to root before switching to someone else.
            other => drop(other),
        }
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
        // Changing the effective uid cleared the request to die with
        // master; ask again.
        mail_daemon::die_with_parent();
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
    fn root_is_replaced_by_default_privs_only_when_privileged() {
        let root = Owner { uid: 0, gid: 0 };
        let user = Owner { uid: 1000, gid: 1000 };
        let wheel = Owner { uid: 1000, gid: 0 };
        let nobody = Owner { uid: 65534, gid: 65534 };
        assert!(needs_default_privs(root, true));
        assert!(needs_default_privs(wheel, true));
        assert!(!needs_default_privs(user, true));
        // A dev instance: nothing is switched, so nothing is replaced.
        assert!(!needs_default_privs(root, false));
        assert_eq!(with_default_privs(root, nobody), nobody);
        assert_eq!(with_default_privs(wheel, nobody), Owner { uid: 1000, gid: 65534 });
        assert_eq!(with_default_privs(user, nobody), user);
    }

    #[test]
    fn default_privs_account_must_exist_and_be_unprivileged() {
        assert!(default_privs_account("root").unwrap_err().contains("privileged"));
        assert!(default_privs_account("no-such-user-xyz").unwrap_err().contains("does not exist"));
        if let Ok(Some(_)) = nix::unistd::User::from_name("nobody") {
            let o = default_privs_account("nobody").unwrap();
            assert!(o.uid != 0 && o.gid != 0);
        }
    }

    #[test]
    fn switch_is_a_no_op_without_root() {
        // As root a switch would change the ids of every test thread at
        // once; that path is exercised by the end-to-end tests instead.
        if is_root() {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: switch_is_a_no_op_without_root: needs a non-root user\n",
            );
            return;
        }
        let before = (geteuid(), getegid());
        let guard = AsUser::switch(0, 0).unwrap();
        assert_eq!((geteuid(), getegid()), before);
        drop(guard);
    }
}
