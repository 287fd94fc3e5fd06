//! Writing one message to one destination: a user's mailbox (Maildir,
//! mbox in the home, the mail spool, or `mailbox_command`), an alias's
//! `/file` or `|command`, or a re-queued copy for a remote address
//! (Postfix `local/mailbox.c`, `local/file.c`, `local/command.c`,
//! `local/forward.c`).
//!
//! Every write into a user's space happens with the user's effective ids
//! ([`AsUser`]); commands are started as the user by the kernel
//! (`setuid` in the child). Commands and files never run as root: a root
//! uid or gid is replaced by `default_privs` ([`privs::unprivileged`]).
//! Nothing follows a symlink at the mailbox path.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mail_auth::User;
use mail_queue::{Queue, Recipient};
use mail_submit::{Origin, Submission};
use mail_types::{Address, DeliveryStatus, EnhancedStatus};

use crate::command::{self, CommandSpec};
use crate::group::{NewDirs, Outcome};
use crate::privs::{self, AsUser};
use crate::resolve::Owner;
use crate::settings::Settings;

/// The message being delivered, as every destination needs it.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    /// Envelope sender, empty for `<>`.
    pub(crate) sender: &'a str,
    /// The recipient as qmgr gave it (`ORIGINAL_RECIPIENT`).
    pub(crate) original: &'a str,
    pub(crate) content: &'a [u8],
}

impl Message<'_> {
    /// `Return-Path:` and `Delivered-To:` (RFC 5321 §4.4: the final
    /// delivery adds Return-Path).
    fn prefix(&self, delivered_to: &str) -> Vec<u8> {
        format!("Return-Path: <{}>\nDelivered-To: {delivered_to}\n", self.sender).into_bytes()
    }
}

fn defer(text: impl Into<String>) -> DeliveryStatus {
    DeliveryStatus::defer(EnhancedStatus(4, 3, 0), text)
}

/// Maps a mailbox write error: transient ones defer (4.2.0), the rest (a
/// symlink where the mailbox should be, an unsafe file) bounce (5.2.0).
fn storage_error(e: &mail_maildir::Error) -> DeliveryStatus {
    if e.is_transient() {
        DeliveryStatus::defer(EnhancedStatus(4, 2, 0), e.to_string())
    } else {
        DeliveryStatus::bounce(EnhancedStatus(5, 2, 0), e.to_string())
    }
}

/// Delivers to a local user's mailbox; a Maildir delivery waits in
/// `dirs` for its `new/` fsync.
pub(crate) fn deliver_to_user(
    s: &Settings,
    m: &Message<'_>,
    user: &User,
    address: &str,
    extension: Option<&str>,
    dirs: &mut NewDirs,
) -> Outcome {
    let prefix = m.prefix(address);
    let maildir = s.mailbox_command.is_empty() && s.home_mailbox.ends_with('/');
    if !maildir {
        // Commands and mbox files need root to start or to lock; only a
        // Maildir write takes over a kept identity of the user.
        privs::root();
    }
    if !s.mailbox_command.is_empty() {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let mut env = user_env(&user.name, &user.home);
        env.extend([
            ("SENDER".to_owned(), m.sender.to_owned()),
            ("RECIPIENT".to_owned(), address.to_owned()),
            ("LOCAL".to_owned(), local.to_owned()),
            ("DOMAIN".to_owned(), domain.to_owned()),
            ("EXTENSION".to_owned(), extension.unwrap_or("").to_owned()),
            ("ORIGINAL_RECIPIENT".to_owned(), m.original.to_owned()),
        ]);
        let ids = Owner { uid: user.uid, gid: user.gid };
        let runs_as = match privs::unprivileged(ids, &s.default_privs, s.privileged()) {
            Ok(o) => o,
            Err(e) => return Outcome::Done(config_error(e)),
        };
        // default_privs (root's mail) may not be able to enter root's home.
        let cwd = if runs_as == ids { usable_dir(&user.home) } else { PathBuf::from("/") };
        let spec = CommandSpec {
            command: s.mailbox_command.clone(),
            uid_gid: privs::is_root().then_some((runs_as.uid, runs_as.gid)),
            cwd,
            env,
            time_limit: s.command_time_limit,
        };
        let success = format!("delivered to command: {}", s.mailbox_command);
        return Outcome::Done(command::run(&spec, &prefix, m.content, &success));
    }
    let owner = Owner { uid: user.uid, gid: user.gid };
    if !s.home_mailbox.is_empty() {
        let path = user.home.join(&s.home_mailbox);
        return if s.home_mailbox.ends_with('/') {
            write_maildir(s, m, &prefix, &path, owner, &user.name, dirs)
        } else {
            Outcome::Done(write_mbox(s, m, &prefix, &path, owner, &user.name, false))
        };
    }
    let path = s.mail_spool_directory.join(&user.name);
    Outcome::Done(write_mbox(s, m, &prefix, &path, owner, &user.name, true))
}

/// Delivers to an alias's `/file` (a Maildir when it ends in `/`, which
/// waits in `dirs` for its `new/` fsync) as the alias owner.
pub(crate) fn deliver_to_file(
    s: &Settings,
    m: &Message<'_>,
    path: &Path,
    owner: Owner,
    via: &str,
    dirs: &mut NewDirs,
) -> Outcome {
    let owner = match privs::unprivileged(owner, &s.default_privs, s.privileged()) {
        Ok(o) => o,
        Err(e) => return Outcome::Done(config_error(e)),
    };
    let prefix = m.prefix(via);
    let who = format!("uid {}", owner.uid);
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return write_maildir(s, m, &prefix, path, owner, &who, dirs);
    }
    let mut status = write_mbox(s, m, &prefix, path, owner, &who, false);
    if let DeliveryStatus::Sent { text, .. } = &mut status {
        *text = format!("delivered to file: {}", path.display());
    }
    Outcome::Done(status)
}

/// Pipes the message to an alias's or a `.forward`'s `|command` as the
/// file's owner. `user` names the `.forward`'s user for `$USER`; `None`
/// means the name of `owner`.
pub(crate) fn deliver_to_command(
    s: &Settings,
    m: &Message<'_>,
    command_line: &str,
    owner: Owner,
    via: &str,
    home: &Path,
    user: Option<&str>,
) -> DeliveryStatus {
    let requested = owner;
    let owner = match privs::unprivileged(owner, &s.default_privs, s.privileged()) {
        Ok(o) => o,
        Err(e) => return config_error(e),
    };
    let name = match user {
        // default_privs runs it: the name must not claim another identity.
        Some(name) if owner == requested => name.to_owned(),
        _ => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner.uid))
            .ok()
            .flatten()
            .map_or_else(|| owner.uid.to_string(), |u| u.name),
    };
    let (local, domain) = via.rsplit_once('@').unwrap_or((via, ""));
    let mut env = user_env(&name, home);
    env.extend([
        ("SENDER".to_owned(), m.sender.to_owned()),
        ("RECIPIENT".to_owned(), via.to_owned()),
        ("LOCAL".to_owned(), local.to_owned()),
        ("DOMAIN".to_owned(), domain.to_owned()),
        ("EXTENSION".to_owned(), String::new()),
        ("ORIGINAL_RECIPIENT".to_owned(), m.original.to_owned()),
    ]);
    let spec = CommandSpec {
        command: command_line.to_owned(),
        uid_gid: privs::is_root().then_some((owner.uid, owner.gid)),
        cwd: if owner == requested { usable_dir(home) } else { PathBuf::from("/") },
        env,
        time_limit: s.command_time_limit,
    };
    command::run(&spec, &m.prefix(via), m.content, &format!("delivered to command: {command_line}"))
}

/// Re-queues the message for a remote address named by an alias, with a
/// `Delivered-To:` of the alias so that a loop back to us is caught, then
/// wakes qmgr.
pub(crate) fn forward(s: &Settings, m: &Message<'_>, address: &str, via: &str) -> DeliveryStatus {
    let queue = Queue::new(&s.queue_directory);
    let mut content = format!("Delivered-To: {via}\n").into_bytes();
    content.extend_from_slice(m.content);
    let Ok(to) = Address::parse(address) else {
        return DeliveryStatus::bounce(
            EnhancedStatus(5, 1, 3),
            format!("bad address syntax in forward destination <{address}>"),
        );
    };
    // The stored sender was written from a parsed address, so it parses;
    // should one not, the copy waits rather than go out under another.
    let sender = match m.sender {
        "" => None,
        text => match Address::parse(text) {
            Ok(a) => Some(a),
            Err(e) => return defer(format!("cannot forward to {address}: sender <{text}>: {e}")),
        },
    };
    let (sender, to) = match crate::forward::rewrite_envelope(&s.rewriter, sender, &to) {
        Ok(rewritten) => rewritten,
        Err(e) => return defer(format!("cannot forward to {address}: {e}")),
    };
    let sub = Submission {
        esmtp: Default::default(),
        sender,
        recipients: to
            .into_iter()
            .map(|a| Recipient {
                address: a,
                original: address.to_owned(),
                esmtp: Default::default(),
            })
            .collect(),
        origin: Origin::Forward,
    };
    // The queue belongs to mail_owner; qmgr must be able to read the file.
    let owner = if privs::is_root() {
        match nix::unistd::User::from_name(&s.mail_owner) {
            Ok(Some(u)) => Some((u.uid.as_raw(), u.gid.as_raw())),
            _ => {
                return defer(format!(
                    "cannot find mail_owner {:?} to write the queue file",
                    s.mail_owner
                ));
            }
        }
    } else {
        None
    };
    let written = (|| {
        let _guard = match owner {
            Some((uid, gid)) => Some(AsUser::switch(uid, gid).map_err(|e| e.to_string())?),
            None => None,
        };
        mail_submit::submit(&queue, &sub, &content).map_err(|e| e.to_string())
    })();
    match written {
        Ok(queued) => {
            // As the daemon itself, not mail_owner: the guard is gone.
            mail_submit::wake_queued(&s.qmgr_socket, std::slice::from_ref(&queued.id));
            DeliveryStatus::sent(format!("forwarded as {}", queued.id.as_str()))
        }
        Err(e) => defer(format!("cannot forward to {address}: {e}")),
    }
}

fn user_env(name: &str, home: &Path) -> Vec<(String, String)> {
    vec![
        ("HOME".to_owned(), home.display().to_string()),
        ("USER".to_owned(), name.to_owned()),
        ("LOGNAME".to_owned(), name.to_owned()),
        ("SHELL".to_owned(), "/bin/sh".to_owned()),
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
    ]
}

/// The home as the command's working directory, or `/` when it is not a
/// directory we can enter (in an unprivileged instance, root's home).
fn usable_dir(home: &Path) -> PathBuf {
    let enterable = nix::unistd::access(home, nix::unistd::AccessFlags::X_OK).is_ok();
    if home.is_dir() && enterable { home.to_owned() } else { PathBuf::from("/") }
}

/// `default_privs` names no usable account: retry once it is fixed.
fn config_error(text: String) -> DeliveryStatus {
    DeliveryStatus::defer(EnhancedStatus(4, 3, 5), text)
}

fn too_big(s: &Settings, size: u64) -> bool {
    s.mailbox_size_limit != 0 && size > s.mailbox_size_limit
}

fn size_bounce(path: &Path, who: &str) -> DeliveryStatus {
    DeliveryStatus::bounce(
        EnhancedStatus(5, 2, 2),
        format!(
            "cannot update mailbox {} for user {who}. mailbox exceeds size limit",
            path.display()
        ),
    )
}

/// Writes the message into the Maildir as `owner`; `new/` (opened as
/// `owner`) is fsynced later, once for the batch ([`NewDirs::sync`]).
fn write_maildir(
    s: &Settings,
    m: &Message<'_>,
    prefix: &[u8],
    path: &Path,
    owner: Owner,
    who: &str,
    dirs: &mut NewDirs,
) -> Outcome {
    if too_big(s, (prefix.len() + m.content.len()) as u64) {
        return Outcome::Done(size_bounce(path, who));
    }
    let written = {
        let _guard = match AsUser::switch(owner.uid, owner.gid) {
            Ok(g) => g,
            Err(e) => {
                return Outcome::Done(defer(format!("cannot switch to uid {}: {e}", owner.uid)));
            }
        };
        mail_maildir::deliver_unsynced(path, prefix, m.content, &s.myhostname)
    };
    match written {
        Ok(u) => dirs.add(u, owner, DeliveryStatus::sent("delivered to maildir")),
        Err(e) => Outcome::Done(storage_error(&e)),
    }
}

fn write_mbox(
    s: &Settings,
    m: &Message<'_>,
    prefix: &[u8],
    path: &Path,
    owner: Owner,
    who: &str,
    spool: bool,
) -> DeliveryStatus {
    // Files in the spool directory (root-owned, 1777 or 2775 root:mail on
    // Debian) are created by root and given to the user, as Postfix does;
    // in a world-writable spool the user then writes it. Otherwise only
    // the dot-lock needs root: we write as root to a file that must already
    // belong to the user. Whoever can rename files in the spool could swap
    // another file in after any check of the path, so the owner is checked
    // on the opened descriptor ([`mail_maildir::deliver_mbox_owned_by`]).
    let mut as_root = false;
    let spool_owner = spool && privs::is_root();
    if spool_owner {
        if let Err(e) = create_spool_file(path, owner) {
            return defer(format!("cannot create mailbox {}: {e}", path.display()));
        }
        match std::fs::metadata(&s.mail_spool_directory) {
            Ok(meta) if meta.mode() & 0o002 != 0 => {}
            Ok(_) => as_root = true,
            Err(e) => {
                return defer(format!("cannot access {}: {e}", s.mail_spool_directory.display()));
            }
        }
    }
    let _guard = if as_root {
        None
    } else {
        match AsUser::switch(owner.uid, owner.gid) {
            Ok(g) => Some(g),
            Err(e) => return defer(format!("cannot switch to uid {}: {e}", owner.uid)),
        }
    };
    let current = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return defer(format!("cannot access mailbox {}: {e}", path.display())),
    };
    if too_big(s, current + (prefix.len() + m.content.len()) as u64) {
        return size_bounce(path, who);
    }
    let now = SystemTime::now();
    let written = if spool_owner {
        mail_maildir::deliver_mbox_owned_by(path, owner.uid, m.sender, prefix, m.content, now)
    } else {
        mail_maildir::deliver_mbox(path, m.sender, prefix, m.content, now)
    };
    match written {
        Ok(()) => DeliveryStatus::sent("delivered to mailbox"),
        Err(e) => storage_error(&e),
    }
}

/// Creates an empty spool mailbox owned by the user (we are root), unless
/// one exists. `O_EXCL|O_NOFOLLOW`: never through a planted symlink.
fn create_spool_file(path: &Path, owner: Owner) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))?;
            file.sync_all()
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(dir: &Path, extra: &str) -> Settings {
        // Tests may run as root: then the queue is written as "ourselves".
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name;
        let text = format!(
            "myhostname = \"mail.example.org\"\nqueue_directory = \"{}\"\nmail_spool_directory = \"{}\"\nmail_owner = \"{me}\"\n{extra}",
            dir.join("queue").display(),
            dir.join("spool").display()
        );
        Settings::from_config(&mail_config::Main::from_str(&dir.join("main.toml"), &text).unwrap())
    }

    fn me(dir: &Path) -> User {
        User {
            name: "suporte".into(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            home: dir.join("home"),
            password_hash: None,
        }
    }

    /// Lets default_privs (nobody) write in a test directory when the
    /// tests run as root.
    fn open_up(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }

    /// One delivery as a batch of one: its new/ fsync included.
    fn user_now(
        s: &Settings,
        m: &Message<'_>,
        user: &User,
        address: &str,
        extension: Option<&str>,
    ) -> DeliveryStatus {
        let mut dirs = NewDirs::default();
        let o = deliver_to_user(s, m, user, address, extension, &mut dirs);
        dirs.sync();
        dirs.resolve(o)
    }

    fn file_now(
        s: &Settings,
        m: &Message<'_>,
        path: &Path,
        owner: Owner,
        via: &str,
    ) -> DeliveryStatus {
        let mut dirs = NewDirs::default();
        let o = deliver_to_file(s, m, path, owner, via, &mut dirs);
        dirs.sync();
        dirs.resolve(o)
    }

    const MSG: Message<'static> = Message {
        sender: "ana@example.com",
        original: "suporte@example.org",
        content: b"Subject: hi\n\nbody\n",
    };

    #[test]
    fn maildir_in_home() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "home_mailbox = \"Maildir/\"\n");
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte@example.org", None);
        assert_eq!(st, DeliveryStatus::sent("delivered to maildir"));
        let new = dir.path().join("home/Maildir/new");
        let files: Vec<_> = std::fs::read_dir(&new).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(
            text,
            "Return-Path: <ana@example.com>\nDelivered-To: suporte@example.org\nSubject: hi\n\nbody\n"
        );
    }

    /// As root, a delivery for an ordinary user switches to the user and
    /// still makes its file without a tmp/ name: linking an O_TMPFILE
    /// file through /proc/self/fd works after the effective uid switch.
    #[test]
    fn maildir_as_another_user_uses_an_unnamed_file() {
        let _lock = crate::privs::test_lock();
        if !privs::is_root() {
            eprintln!("skipped: maildir_as_another_user_uses_an_unnamed_file: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        open_up(dir.path());
        let nobody = privs::default_privs_account("nobody").unwrap();
        let user = User { uid: nobody.uid, gid: nobody.gid, ..me(dir.path()) };
        std::fs::create_dir(&user.home).unwrap();
        std::os::unix::fs::chown(&user.home, Some(nobody.uid), Some(nobody.gid)).unwrap();
        let s = settings(dir.path(), "home_mailbox = \"Maildir/\"\n");
        let st = user_now(&s, &MSG, &user, "suporte@example.org", None);
        assert_eq!(st, DeliveryStatus::sent("delivered to maildir"));
        let md = user.home.join("Maildir");
        let files: Vec<_> =
            std::fs::read_dir(md.join("new")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::metadata(&files[0]).unwrap().uid(), nobody.uid);
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
        // The same write, looked at closely: no tmp/ name was used.
        let u = {
            let _as = AsUser::switch(nobody.uid, nobody.gid).unwrap();
            assert_eq!(nix::unistd::geteuid().as_raw(), nobody.uid);
            mail_maildir::deliver_unsynced(&md, b"", b"x\n", "h").unwrap()
        };
        if !u.unnamed {
            eprintln!("skipped: no O_TMPFILE under {}: the tmp/ fallback ran", md.display());
            return;
        }
        let owner = std::fs::metadata(&u.delivered.path).unwrap().uid();
        assert_eq!(owner, nobody.uid);
        u.sync().unwrap();
    }

    #[test]
    fn mbox_in_home_and_size_limit() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let s = settings(dir.path(), "home_mailbox = \"mbox\"\nmailbox_size_limit = 200\n");
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte@example.org", None);
        assert!(matches!(st, DeliveryStatus::Sent { .. }), "{st:?}");
        let text = std::fs::read_to_string(dir.path().join("home/mbox")).unwrap();
        assert!(text.starts_with("From ana@example.com "), "{text}");
        assert!(text.contains("Delivered-To: suporte@example.org\n"));
        // The second copy would pass 200 bytes.
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte@example.org", None);
        assert_eq!(st.dsn(), EnhancedStatus(5, 2, 2));
        assert!(st.text().contains("exceeds size limit"), "{st:?}");
    }

    #[test]
    fn spool_mailbox() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("spool")).unwrap();
        let s = settings(dir.path(), "");
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte@example.org", None);
        assert_eq!(st, DeliveryStatus::sent("delivered to mailbox"));
        assert!(dir.path().join("spool/suporte").is_file());
    }

    #[test]
    fn symlinked_mailbox_bounces() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("spool")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("spool/suporte")).unwrap();
        let s = settings(dir.path(), "");
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte@example.org", None);
        assert!(matches!(st, DeliveryStatus::Bounced { .. }), "{st:?}");
    }

    /// Root writes a spool mailbox for its user while someone who may
    /// rename files in the spool keeps swapping another user's file in
    /// and out of the path: not one byte may land in the other file. (A
    /// check of the path before the open lost this race.)
    #[test]
    fn spool_mailbox_swapped_under_root_is_never_written() {
        let _lock = crate::privs::test_lock();
        if !privs::is_root() {
            eprintln!("skipped: only root writes spool mailboxes for other users");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        // Not world-writable: root writes the file itself.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mailbox = spool.join("suporte");
        let other = spool.join("other");
        std::fs::write(&mailbox, b"").unwrap();
        std::fs::write(&other, b"").unwrap();
        let stranger = privs::default_privs_account("nobody").unwrap();
        std::os::unix::fs::chown(&other, Some(stranger.uid), Some(stranger.gid)).unwrap();
        let s = settings(dir.path(), "");
        let user = User { uid: 0, gid: 0, ..me(dir.path()) };
        assert_ne!(stranger.uid, user.uid);

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, mailbox, other) = (stop.clone(), mailbox.clone(), other.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    nix::fcntl::renameat2(
                        None,
                        &mailbox,
                        None,
                        &other,
                        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                    )
                    .unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        // Until the swaps have made both outcomes happen a few times (a
        // loaded machine may not run the swapper at once).
        let (mut sent, mut refused) = (0, 0);
        let started = std::time::Instant::now();
        while (sent < 20 || refused < 20) && started.elapsed() < std::time::Duration::from_secs(20)
        {
            let st = user_now(&s, &MSG, &user, "suporte@example.org", None);
            match &st {
                DeliveryStatus::Sent { .. } => sent += 1,
                DeliveryStatus::Bounced { .. } if st.dsn() == EnhancedStatus(5, 2, 0) => {
                    refused += 1
                }
                _ => panic!("{st:?}"),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        // Whichever name it has now, the stranger's file is empty.
        for path in [&mailbox, &other] {
            let meta = std::fs::metadata(path).unwrap();
            if meta.uid() == stranger.uid {
                assert_eq!(meta.len(), 0, "{sent} sent, {refused} refused, {swaps} swaps");
            } else {
                assert!(meta.len() > 0);
            }
        }
        assert!(sent > 0 && refused > 0, "{sent} sent, {refused} refused, {swaps} swaps");
    }

    #[test]
    fn mailbox_command_gets_the_environment() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let out = dir.path().join("out");
        let cmd = format!(
            "cat > {0}; echo \"$EXTENSION|$LOCAL|$DOMAIN|$SENDER|$ORIGINAL_RECIPIENT|$USER|$PWD\" >> {0}",
            out.display()
        );
        // As root, a recipient with uid 0 runs the command as
        // default_privs (nobody), in /, and it must be able to write here.
        let as_root = privs::is_root();
        if as_root {
            open_up(dir.path());
        }
        let mut s = settings(dir.path(), &format!("mailbox_command = '{cmd}'\n"));
        // A system install (mail_owner is not root), whatever runs the test.
        s.root_instance = false;
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte+news@example.org", Some("news"));
        assert_eq!(st, DeliveryStatus::sent(format!("delivered to command: {cmd}")));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with(
            "Return-Path: <ana@example.com>\nDelivered-To: suporte+news@example.org\n"
        ));
        let home = if as_root { PathBuf::from("/") } else { dir.path().join("home") };
        if as_root {
            let nobody = privs::default_privs_account("nobody").unwrap();
            assert_eq!(std::fs::metadata(&out).unwrap().uid(), nobody.uid);
        }
        assert!(
            text.ends_with(&format!(
                "news|suporte+news|example.org|ana@example.com|suporte@example.org|suporte|{}\n",
                home.display()
            )),
            "{text}"
        );
        let s = settings(dir.path(), "mailbox_command = 'exit 75'\n");
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte@example.org", None);
        assert_eq!(st.dsn(), EnhancedStatus(4, 3, 0));
    }

    #[test]
    fn alias_file_and_command() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), "");
        s.root_instance = false;
        let owner =
            Owner { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() };
        if privs::is_root() {
            open_up(dir.path());
        }
        let file = dir.path().join("copy");
        let st = file_now(&s, &MSG, &file, owner, "log@example.org");
        assert_eq!(st, DeliveryStatus::sent(format!("delivered to file: {}", file.display())));
        if privs::is_root() {
            // Root's file delivery is done as default_privs.
            let nobody = privs::default_privs_account("nobody").unwrap();
            assert_eq!(std::fs::metadata(&file).unwrap().uid(), nobody.uid);
        }
        assert!(
            std::fs::read_to_string(&file).unwrap().contains("Delivered-To: log@example.org\n")
        );
        let md = PathBuf::from(format!("{}/md/", dir.path().display()));
        let st = file_now(&s, &MSG, &md, owner, "log@example.org");
        assert_eq!(st, DeliveryStatus::sent("delivered to maildir"));
        let st = deliver_to_command(
            &s,
            &MSG,
            "test \"$RECIPIENT\" = prog@example.org && test \"$(id -u)\" != 0",
            owner,
            "prog@example.org",
            dir.path(),
            None,
        );
        assert!(matches!(st, DeliveryStatus::Sent { .. }), "{st:?}");
    }

    #[test]
    fn root_instance_keeps_root_for_commands() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = format!("id -u > {}", out.display());
        let mut s = settings(dir.path(), &format!("mailbox_command = '{cmd}'\n"));
        // A development instance made by whoever runs the test: commands
        // run as that user (root included), as before default_privs.
        s.root_instance = privs::is_root();
        assert!(!s.privileged());
        let st = user_now(&s, &MSG, &me(dir.path()), "suporte@example.org", None);
        assert!(matches!(st, DeliveryStatus::Sent { .. }), "{st:?}");
        let uid = std::fs::read_to_string(&out).unwrap();
        assert_eq!(uid.trim(), nix::unistd::geteuid().as_raw().to_string());
    }

    #[test]
    fn forward_requeues_with_delivered_to() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "");
        let queue = Queue::new(&s.queue_directory);
        queue.create_layout().unwrap();
        let st = forward(&s, &MSG, "friend@remote.example", "root@example.org");
        let DeliveryStatus::Sent { text, .. } = &st else { panic!("{st:?}") };
        let ids = queue.scan(mail_queue::State::Incoming).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(text, &format!("forwarded as {}", ids[0].as_str()));
        let qf = queue.read(mail_queue::State::Incoming, &ids[0]).unwrap();
        assert_eq!(qf.envelope.sender.unwrap(), "ana@example.com");
        assert_eq!(qf.envelope.recipients[0].address, "friend@remote.example");
        assert_eq!(qf.envelope.origin, "local");
        assert!(qf.content.starts_with(b"Delivered-To: root@example.org\nSubject: hi\n"));
    }

    #[test]
    fn forwarded_copies_are_rewritten_as_cleanup_would() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("canonical"), "ana@example.com  ana.silva@example.com\n")
            .unwrap();
        std::fs::write(
            dir.path().join("virtual"),
            "friend@remote.example  bia@example.org, caio@remote.example\n",
        )
        .unwrap();
        let s = settings(
            dir.path(),
            "canonical_maps = \"hash:canonical\"\nvirtual_alias_maps = \"hash:virtual\"\n",
        );
        let queue = Queue::new(&s.queue_directory);
        queue.create_layout().unwrap();
        let st = forward(&s, &MSG, "friend@remote.example", "root@example.org");
        assert!(matches!(st, DeliveryStatus::Sent { .. }), "{st:?}");
        let ids = queue.scan(mail_queue::State::Incoming).unwrap();
        let qf = queue.read(mail_queue::State::Incoming, &ids[0]).unwrap();
        assert_eq!(qf.envelope.sender.unwrap(), "ana.silva@example.com");
        let to: Vec<(String, String)> = qf
            .envelope
            .recipients
            .iter()
            .map(|r| (r.address.to_string(), r.original.clone()))
            .collect();
        assert_eq!(
            to,
            [
                ("bia@example.org".to_owned(), "friend@remote.example".to_owned()),
                ("caio@remote.example".to_owned(), "friend@remote.example".to_owned()),
            ]
        );
        // A table that cannot be read defers the copy; nothing is queued.
        std::fs::remove_file(dir.path().join("virtual")).unwrap();
        let st = forward(&s, &MSG, "friend@remote.example", "root@example.org");
        assert_eq!(st.log_word(), "deferred", "{st:?}");
        assert_eq!(queue.scan(mail_queue::State::Incoming).unwrap().len(), 1);
    }

    #[test]
    fn forward_of_a_null_sender_and_an_unparsable_one() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "");
        let queue = Queue::new(&s.queue_directory);
        queue.create_layout().unwrap();
        let null = Message { sender: "", ..MSG };
        let st = forward(&s, &null, "friend@remote.example", "root@example.org");
        assert!(matches!(st, DeliveryStatus::Sent { .. }), "{st:?}");
        let ids = queue.scan(mail_queue::State::Incoming).unwrap();
        let qf = queue.read(mail_queue::State::Incoming, &ids[0]).unwrap();
        assert_eq!(qf.envelope.sender, None);
        // A sender that does not parse is not replaced by another: the
        // copy waits, and nothing is queued.
        let bad = Message { sender: "a b@@", ..MSG };
        let st = forward(&s, &bad, "friend@remote.example", "root@example.org");
        assert_eq!(st.log_word(), "deferred", "{st:?}");
        let text = st.text();
        assert!(
            text.starts_with("cannot forward to friend@remote.example: sender <a b@@>"),
            "{text}"
        );
        assert_eq!(queue.scan(mail_queue::State::Incoming).unwrap().len(), 1);
    }
}
