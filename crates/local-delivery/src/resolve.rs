//! From one envelope recipient to the places its mail goes: alias
//! expansion (Postfix `local/alias.c`, `local/include.c`,
//! `local/token.c`), address extensions, the user lookup
//! (`local/local.c`, `local/resolve.c`) and the user's `.forward`
//! (`local/dotforward.c`).
//!
//! Rules, as Postfix applies them:
//! - the full local part is looked up as an alias first, then the part
//!   before the `recipient_delimiter` (`suporte+news` → `suporte`);
//! - an alias being expanded is not expanded again further down: a name
//!   that refers back to itself (directly, `suporte: suporte, /backup`, or
//!   through a cycle) means the user's own mailbox;
//! - expansion stops at [`MAX_DEPTH`] levels;
//! - a local user's `.forward` (the first file of `forward_path`, see
//!   [`crate::forward`]) replaces delivery to the mailbox: its entries
//!   are expanded like an alias's, its commands and files run as the
//!   user, and the user named again inside it (`\user` or `user`, directly
//!   or through other `.forward` files) means the user's own mailbox, as
//!   in Postfix; an empty `.forward` means the mailbox;
//! - an address in a domain that is not ours is forwarded (re-queued);
//! - `|command` and `/file` run with the privileges of the aliases file's
//!   owner, or of the `.forward`'s user (`default_privs` instead of root),
//!   and only where `allow_mail_to_commands` / `allow_mail_to_files` allow
//!   them (`alias`, `forward`, `include`);
//! - the same destination reached twice is delivered once;
//! - one recipient expands to at most [`MAX_DESTINATIONS`] destinations:
//!   past that, expansion stops and the recipient bounces (5.2.4, logged)
//!   for the rest, after the first ones were delivered.
//!
//! Failures of one branch are reported for that branch; the others still
//! get the mail.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mail_auth::{User, UserDb};
use mail_lookup::aliases::{AliasTarget, Aliases};
use mail_lookup::split_extension;
use mail_types::{Address, DeliveryStatus, EnhancedStatus};

use crate::forward::{self, Vars};
use crate::privs::AsUser;
use crate::settings::Settings;

/// Deepest alias nesting we follow (Postfix stops at 100; twenty is more
/// than any sane aliases file needs and keeps runaway fan-out small).
pub(crate) const MAX_DEPTH: usize = 20;

/// Most destinations one recipient may expand to. Postfix has no such
/// limit; we keep one so that nested `:include:` files cannot fan out
/// without end (each level may name the same big file again). It is far
/// above real lists: the agent delivers them one by one in one request,
/// a few milliseconds per Maildir, well within qmgr's hour for an answer,
/// and the expansion itself costs a few hundred bytes per destination.
pub(crate) const MAX_DESTINATIONS: usize = 20_000;

/// Marks, on the expansion stack, a user whose `.forward` is being
/// expanded (like `:include:` entries, it cannot be an alias name
/// without quotes).
const FORWARD_KEY: &str = ":forward:";

/// The recipient address a local user was reached by.
#[derive(Debug)]
struct Recipient<'a> {
    /// `local@domain`.
    full: &'a str,
    local: &'a str,
    domain: &'a str,
    extension: Option<&'a str>,
    /// The delimiter character that separated the extension.
    delimiter: Option<char>,
}

/// Who runs a command or writes a file named in an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// One place to deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// A local user's mailbox.
    Mailbox {
        user: User,
        /// `user@domain` (extension included): `Delivered-To:` and `to=`.
        address: String,
        /// The address extension after the delimiter, if any.
        extension: Option<String>,
    },
    /// Another domain: re-queue with `Delivered-To: via`.
    Forward { address: String, via: String },
    /// `/file` from an alias (a trailing `/` means Maildir).
    File { path: PathBuf, owner: Owner, via: String },
    /// `|command` from an alias or a `.forward`.
    Command {
        command: String,
        owner: Owner,
        via: String,
        home: PathBuf,
        /// `$USER` of the command: the `.forward`'s user; `None` for the
        /// name of `owner`.
        user: Option<String>,
    },
}

impl Destination {
    /// The `to=` of the log line: the mailbox or remote address, or for a
    /// file or command the alias that named it (as Postfix logs them).
    pub(crate) fn log_address(&self) -> &str {
        match self {
            Destination::Mailbox { address, .. } | Destination::Forward { address, .. } => address,
            Destination::File { via, .. } | Destination::Command { via, .. } => via,
        }
    }

    /// The address a `Delivered-To:` loop check compares.
    pub(crate) fn loop_address(&self) -> &str {
        match self {
            Destination::Mailbox { address, .. } => address,
            Destination::Forward { via, .. }
            | Destination::File { via, .. }
            | Destination::Command { via, .. } => via,
        }
    }
}

/// A branch that could not be delivered, with the address it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) address: String,
    pub(crate) status: DeliveryStatus,
}

/// The result of resolving one recipient.
#[derive(Debug, Default)]
pub(crate) struct Expansion {
    pub(crate) destinations: Vec<Destination>,
    pub(crate) failures: Vec<Failure>,
    /// What is already in `destinations`, so a list of thousands is not
    /// compared pairwise.
    seen: HashSet<Key>,
    /// A destination past [`MAX_DESTINATIONS`] was found: expansion has
    /// stopped.
    overflow: bool,
}

/// When two destinations are the same place.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key {
    /// One mailbox per user and extension, whatever address reached it.
    Mailbox(String, Option<String>),
    /// Remote addresses compare without case.
    Forward(String),
    /// Files and commands: the same one with the same privileges and
    /// `via` (all fields, as `==` compares them).
    Other(String),
}

impl Key {
    fn of(d: &Destination) -> Key {
        match d {
            Destination::Mailbox { user, extension, .. } => {
                Key::Mailbox(user.name.clone(), extension.clone())
            }
            Destination::Forward { address, .. } => Key::Forward(address.to_ascii_lowercase()),
            other => Key::Other(format!("{other:?}")),
        }
    }
}

impl Expansion {
    fn add(&mut self, d: Destination) {
        if self.overflow {
            return;
        }
        let key = Key::of(&d);
        if self.seen.contains(&key) {
            return;
        }
        if self.destinations.len() >= MAX_DESTINATIONS {
            // Not dropped: `resolve` turns this into a bounce of the
            // recipient that names the limit.
            self.overflow = true;
            return;
        }
        self.seen.insert(key);
        self.destinations.push(d);
    }

    fn fail(&mut self, address: &str, status: DeliveryStatus) {
        self.failures.push(Failure { address: address.to_owned(), status });
    }
}

/// What an alias's commands and files may do.
#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    owner: Owner,
    commands: bool,
    files: bool,
    what: &'static str,
    /// The user of a `.forward` (commands start in their home, with their
    /// name); `None` for aliases and `:include:` files.
    user: Option<&'a User>,
}

/// Resolves recipients against the aliases and the user database.
#[derive(Debug)]
pub(crate) struct Resolver<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) aliases: &'a Aliases,
    pub(crate) users: &'a UserDb,
}

impl Resolver<'_> {
    /// Expands `address` (a recipient in one of our domains).
    pub(crate) fn resolve(&self, address: &str) -> Expansion {
        let mut out = Expansion::default();
        let mut stack = Vec::new();
        self.expand(address, 0, &mut stack, &mut out);
        if out.overflow {
            // RFC 3463 X.2.4, mailing list expansion problem. A bounce, not
            // a deferral: a retry would deliver the first ones again.
            let text = format!(
                "alias expansion exceeds {MAX_DESTINATIONS} destinations: \
                 delivered to the first {MAX_DESTINATIONS}, not to the rest"
            );
            tracing::warn!("{address}: {text}");
            out.fail(address, DeliveryStatus::bounce(EnhancedStatus(5, 2, 4), text));
        }
        out
    }

    fn expand(&self, address: &str, depth: usize, stack: &mut Vec<String>, out: &mut Expansion) {
        // Alias and user lookups read root's files.
        crate::privs::root();
        if out.overflow {
            return;
        }
        let parsed = match Address::parse(address) {
            Ok(a) => a,
            Err(e) => {
                let text = format!("bad address syntax: {address:?}: {e}");
                return out.fail(address, DeliveryStatus::bounce(EnhancedStatus(5, 1, 3), text));
            }
        };
        let domain = parsed.domain().unwrap_or(&self.settings.myorigin).to_owned();
        if depth > 0 && !self.settings.is_local_domain(&domain) && parsed.domain().is_some() {
            let via = self.via(stack);
            return out.add(Destination::Forward { address: address.to_owned(), via });
        }
        let local = parsed.local();
        let full = format!("{local}@{domain}");
        if depth > MAX_DEPTH {
            let text =
                format!("mail forwarding loop for {full}: alias nesting deeper than {MAX_DEPTH}");
            return out.fail(&full, DeliveryStatus::bounce(EnhancedStatus(5, 4, 6), text));
        }
        let (base, extension) = split_extension(local, &self.settings.recipient_delimiter);

        // Aliases: the full local part, then the base name; a name already
        // being expanded is the user itself.
        let mut candidates = vec![local.to_lowercase()];
        if extension.is_some() {
            candidates.push(base.to_lowercase());
        }
        for name in candidates {
            if stack.contains(&name) {
                continue;
            }
            match self.aliases.lookup_entry(&name) {
                Ok(Some(alias)) => {
                    let owner = match self.owner_of(alias.owner_uid, alias.owner_gid) {
                        Ok(owner) => owner,
                        Err(status) => return out.fail(&full, status),
                    };
                    let source = Source {
                        owner,
                        commands: self.settings.commands_in_alias,
                        files: self.settings.files_in_alias,
                        what: "alias",
                        user: None,
                    };
                    stack.push(name);
                    for target in &alias.targets {
                        self.target(target, source, depth, stack, out);
                    }
                    stack.pop();
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("alias lookup for {name}: {e}");
                    let text = format!("alias database unavailable: {e}");
                    return out.fail(&full, DeliveryStatus::defer(EnhancedStatus(4, 3, 0), text));
                }
            }
        }

        match self.users.lookup(base) {
            Ok(Some(user)) => {
                let delimiter = local.get(base.len()..).and_then(|r| r.chars().next());
                let at = Recipient { full: &full, local, domain: &domain, extension, delimiter };
                self.user(user, &at, depth, stack, out);
            }
            Ok(None) => {
                let text = format!("unknown user: \"{}\"", base.to_lowercase());
                out.fail(&full, DeliveryStatus::bounce(EnhancedStatus(5, 1, 1), text));
            }
            Err(e) => {
                tracing::warn!("user lookup for {base}: {e}");
                let text = format!("user database unavailable: {e}");
                out.fail(&full, DeliveryStatus::defer(EnhancedStatus(4, 3, 0), text));
            }
        }
    }

    /// A local user: the `.forward` if there is one, else the mailbox.
    fn user(
        &self,
        user: User,
        at: &Recipient<'_>,
        depth: usize,
        stack: &mut Vec<String>,
        out: &mut Expansion,
    ) {
        let mailbox = |user: User| Destination::Mailbox {
            user,
            address: at.full.to_owned(),
            extension: at.extension.map(str::to_owned),
        };
        // Named again from inside the user's own .forward (`\user`, or
        // `user` as Postfix allows): the mailbox, not the file again.
        let key = format!("{FORWARD_KEY}{}", user.name);
        if stack.contains(&key) {
            return out.add(mailbox(user));
        }
        let found = match self.forward_file(&user, at) {
            Ok(Some(found)) => found,
            Ok(None) => return out.add(mailbox(user)),
            Err(text) => {
                tracing::warn!("{}: {text}", at.full);
                let status = DeliveryStatus::defer(EnhancedStatus(4, 3, 0), text);
                return out.fail(at.full, status);
            }
        };
        for w in &found.warnings {
            tracing::warn!("{w}");
        }
        if found.targets.is_empty() {
            // An empty or comment-only .forward: normal delivery.
            return out.add(mailbox(user));
        }
        tracing::debug!("{}: using {}", at.full, found.path.display());
        let owner = match self.owner_of(user.uid, user.gid) {
            Ok(owner) => owner,
            Err(status) => return out.fail(at.full, status),
        };
        let source = Source {
            owner,
            commands: self.settings.commands_in_forward,
            files: self.settings.files_in_forward,
            what: "forward",
            user: Some(&user),
        };
        stack.push(key);
        for target in &found.targets {
            self.target(target, source, depth, stack, out);
        }
        stack.pop();
    }

    /// The `.forward` of `user` that `forward_path` finds, if any.
    fn forward_file(
        &self,
        user: &User,
        at: &Recipient<'_>,
    ) -> Result<Option<forward::Found>, String> {
        let forward_path = &self.settings.forward_path;
        if forward_path.trim().is_empty() {
            return Ok(None);
        }
        let mut extension = at.extension.filter(|e| !e.is_empty());
        if extension.is_some_and(|e| e.contains('/') || e.contains('\0')) {
            // Postfix refuses such extensions for the same reason: they
            // would name a file outside the home.
            tracing::warn!("{}: address with illegal extension; extension ignored", at.full);
            extension = None;
        }
        let mut buf = [0u8; 4];
        let delimiter = match (extension, at.delimiter) {
            (Some(_), Some(c)) => Some(&*c.encode_utf8(&mut buf)),
            _ => None,
        };
        let vars = Vars {
            user: Some(&user.name),
            home: user.home.to_str(),
            extension,
            recipient_delimiter: delimiter,
            recipient: Some(at.full),
            local: Some(at.local),
            domain: Some(at.domain),
        };
        let paths = forward::candidates(forward_path, &vars);
        forward::find(&paths, user)
    }

    fn target(
        &self,
        target: &AliasTarget,
        source: Source<'_>,
        depth: usize,
        stack: &mut Vec<String>,
        out: &mut Expansion,
    ) {
        if out.overflow {
            return;
        }
        let via = self.via(stack);
        match target {
            AliasTarget::Address(address) => self.expand(address, depth + 1, stack, out),
            AliasTarget::Command(command) if source.commands => {
                let home = match source.user {
                    Some(user) => user.home.clone(),
                    None => self.home_of(source.owner.uid),
                };
                out.add(Destination::Command {
                    command: command.clone(),
                    owner: source.owner,
                    via,
                    home,
                    user: source.user.map(|u| u.name.clone()),
                });
            }
            AliasTarget::Command(command) => {
                let text = format!("mail to command is restricted ({}: |{command})", source.what);
                out.fail(&via, DeliveryStatus::bounce(EnhancedStatus(5, 7, 1), text));
            }
            AliasTarget::File(path) if source.files => {
                out.add(Destination::File { path: path.clone(), owner: source.owner, via });
            }
            AliasTarget::File(path) => {
                let text =
                    format!("mail to file is restricted ({}: {})", source.what, path.display());
                out.fail(&via, DeliveryStatus::bounce(EnhancedStatus(5, 7, 1), text));
            }
            AliasTarget::Include(path) => self.include(path, source, depth, stack, out, &via),
        }
    }

    fn include(
        &self,
        path: &Path,
        parent: Source<'_>,
        depth: usize,
        stack: &mut Vec<String>,
        out: &mut Expansion,
        via: &str,
    ) {
        let key = format!(":include:{}", path.display());
        if stack.contains(&key) || out.overflow {
            return;
        }
        // Read with the privileges of whoever named the file, so an alias
        // cannot be used to read a file its owner could not.
        let read = AsUser::switch(parent.owner.uid, parent.owner.gid)
            .map_err(|e| format!("cannot switch to uid {}: {e}", parent.owner.uid))
            .and_then(|_guard| {
                let meta = std::fs::symlink_metadata(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let (targets, warnings) =
                    mail_lookup::aliases::read_include(path).map_err(|e| e.to_string())?;
                Ok((meta, targets, warnings))
            });
        let (meta, targets, warnings) = match read {
            Ok(x) => x,
            Err(e) => {
                let text = format!("cannot open include file: {e}");
                return out.fail(via, DeliveryStatus::defer(EnhancedStatus(4, 3, 0), text));
            }
        };
        for w in warnings {
            tracing::warn!("{w}");
        }
        let owner = match self.owner_of(meta.uid(), meta.gid()) {
            Ok(owner) => owner,
            Err(status) => return out.fail(via, status),
        };
        let source = Source {
            owner,
            commands: self.settings.commands_in_include,
            files: self.settings.files_in_include,
            what: "include",
            user: None,
        };
        stack.push(key);
        for target in &targets {
            self.target(target, source, depth + 1, stack, out);
        }
        stack.pop();
    }

    /// Commands and files of a root-owned aliases file run as
    /// `default_privs`, never as root.
    fn owner_of(&self, uid: u32, gid: u32) -> Result<Owner, DeliveryStatus> {
        crate::privs::root();
        let s = self.settings;
        crate::privs::unprivileged(Owner { uid, gid }, &s.default_privs, s.privileged())
            .map_err(|e| DeliveryStatus::defer(EnhancedStatus(4, 3, 5), e))
    }

    fn home_of(&self, uid: u32) -> PathBuf {
        crate::privs::root();
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(u)) => u.dir,
            _ => PathBuf::from("/"),
        }
    }

    /// The alias or `.forward` user whose expansion we are in, as an
    /// address (for `Delivered-To:` and logs); `:include:` levels are
    /// skipped.
    fn via(&self, stack: &[String]) -> String {
        match stack.iter().rev().find(|n| !n.starts_with(":include:")) {
            Some(name) => {
                let name = name.strip_prefix(FORWARD_KEY).unwrap_or(name);
                format!("{name}@{}", self.settings.myorigin)
            }
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Fixture {
        _dir: tempfile::TempDir,
        settings: Settings,
        aliases: Aliases,
        users: UserDb,
        path: PathBuf,
    }

    fn fixture(aliases_text: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
            p
        };
        let users = write(
            "passwd",
            "suporte:x:1000:1000::/home/suporte\nana:x:1001:1001::/home/ana\nroot:x:0:0::/root\n",
        );
        let aliases = write("aliases", aliases_text);
        write("team", "ana\nbia@remote.example, |/bin/true\n");
        let main = mail_config::Main::from_str(
            &dir.path().join("main.toml"),
            "myhostname = \"mail.example.org\"\nmydestination = [\"$myhostname\", \"example.org\"]\nrecipient_delimiter = \"+\"\nallow_mail_to_commands = [\"alias\"]\nallow_mail_to_files = [\"forward\"]\n",
        )
        .unwrap();
        Fixture {
            settings: Settings::from_config(&main),
            aliases: Aliases::new(vec![aliases]),
            users: UserDb::passwd_file(users),
            path: dir.path().to_owned(),
            _dir: dir,
        }
    }

    impl Fixture {
        fn resolve(&self, address: &str) -> Expansion {
            Resolver { settings: &self.settings, aliases: &self.aliases, users: &self.users }
                .resolve(address)
        }
    }

    fn mailboxes(e: &Expansion) -> Vec<(String, Option<String>)> {
        e.destinations
            .iter()
            .filter_map(|d| match d {
                Destination::Mailbox { address, extension, .. } => {
                    Some((address.clone(), extension.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn plain_user_and_extension() {
        let _lock = crate::privs::test_lock();
        let f = fixture("");
        let e = f.resolve("suporte@example.org");
        assert_eq!(mailboxes(&e), [("suporte@example.org".into(), None)]);
        let e = f.resolve("Suporte+News@example.org");
        assert_eq!(mailboxes(&e), [("Suporte+News@example.org".into(), Some("News".into()))]);
        assert!(e.failures.is_empty());
    }

    #[test]
    fn unknown_user_bounces_like_postfix() {
        let _lock = crate::privs::test_lock();
        let f = fixture("");
        let e = f.resolve("ghost@example.org");
        assert!(e.destinations.is_empty());
        assert_eq!(
            e.failures[0].status,
            DeliveryStatus::bounce(EnhancedStatus(5, 1, 1), "unknown user: \"ghost\"")
        );
    }

    #[test]
    fn aliases_chain_fan_out_and_forward() {
        let _lock = crate::privs::test_lock();
        let f =
            fixture("postmaster: root\nroot: suporte, ana, friend@remote.example\nlist+x: ana\n");
        let e = f.resolve("postmaster@mail.example.org");
        assert_eq!(
            mailboxes(&e),
            [("suporte@mail.example.org".into(), None), ("ana@mail.example.org".into(), None)]
        );
        assert!(e.destinations.contains(&Destination::Forward {
            address: "friend@remote.example".into(),
            via: "root@mail.example.org".into()
        }));
        // The full local part is tried before the base name.
        let e = f.resolve("list+x@example.org");
        assert_eq!(mailboxes(&e), [("ana@mail.example.org".into(), None)]);
        // Extension stripped, then alias.
        let e = f.resolve("root+y@example.org");
        assert_eq!(mailboxes(&e).len(), 2);
    }

    #[test]
    fn self_reference_means_the_user() {
        let _lock = crate::privs::test_lock();
        let f = fixture("suporte: suporte, ana\n");
        let e = f.resolve("suporte@example.org");
        assert_eq!(
            mailboxes(&e),
            [("suporte@mail.example.org".into(), None), ("ana@mail.example.org".into(), None)]
        );
        assert!(e.failures.is_empty());
    }

    #[test]
    fn cycles_end_at_the_users() {
        let _lock = crate::privs::test_lock();
        let f = fixture("suporte: ana\nana: suporte\nloop1: loop2\nloop2: loop1\n");
        let e = f.resolve("suporte@example.org");
        // suporte -> ana -> suporte (being expanded: the user itself).
        assert_eq!(mailboxes(&e), [("suporte@mail.example.org".into(), None)]);
        // A cycle of names that are no users ends in "unknown user".
        let e = f.resolve("loop1@example.org");
        assert!(e.destinations.is_empty());
        assert_eq!(e.failures.len(), 1);
        assert!(
            e.failures[0].status.text().contains("unknown user: \"loop1\""),
            "{:?}",
            e.failures
        );
    }

    #[test]
    fn depth_is_limited() {
        let _lock = crate::privs::test_lock();
        let mut text = String::new();
        for i in 0..30 {
            text.push_str(&format!("a{i}: a{}\n", i + 1));
        }
        let f = fixture(&text);
        let e = f.resolve("a0@example.org");
        assert!(e.destinations.is_empty());
        assert_eq!(e.failures[0].status.dsn(), EnhancedStatus(5, 4, 6));
    }

    #[test]
    fn commands_files_and_includes() {
        let _lock = crate::privs::test_lock();
        let f = fixture("");
        let team = f.path.join("team");
        std::fs::File::create(f.path.join("aliases"))
            .unwrap()
            .write_all(
                format!(
                    "prog: |/usr/bin/vacation\nlog: /tmp/log\nteam: :include:{}\n",
                    team.display()
                )
                .as_bytes(),
            )
            .unwrap();
        let e = f.resolve("prog@example.org");
        assert!(
            matches!(&e.destinations[..], [Destination::Command { command, via, .. }] if command == "/usr/bin/vacation" && via == "prog@mail.example.org")
        );
        // Files are not allowed by this configuration.
        let e = f.resolve("log@example.org");
        assert!(e.destinations.is_empty());
        assert_eq!(e.failures[0].status.dsn(), EnhancedStatus(5, 7, 1));
        assert!(matches!(e.failures[0].status, DeliveryStatus::Bounced { .. }));
        // Include: a user, a remote address, and a command that "include"
        // does not allow.
        let e = f.resolve("team@example.org");
        assert_eq!(mailboxes(&e), [("ana@mail.example.org".into(), None)]);
        assert!(e.destinations.iter().any(
            |d| matches!(d, Destination::Forward { address, .. } if address == "bia@remote.example")
        ));
        assert_eq!(e.failures.len(), 1);
        assert!(e.failures[0].status.text().contains("mail to command is restricted"));
    }

    #[test]
    fn big_lists_expand_whole_and_the_limit_bounces_the_rest() {
        let _lock = crate::privs::test_lock();
        let f = fixture("");
        let write_list = |name: &str, n: usize| {
            let text: String = (0..n).map(|i| format!("m{i}@remote.example\n")).collect();
            let path = f.path.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        // 1,500 members (the old cap of 1,000 kept the first 1,000 and
        // reported the recipient sent).
        let list = write_list("members", 1500);
        let over = write_list("huge", MAX_DESTINATIONS + 5);
        std::fs::write(
            f.path.join("aliases"),
            format!("list: :include:{}\nhuge: :include:{}\n", list.display(), over.display()),
        )
        .unwrap();
        let e = f.resolve("list@example.org");
        assert_eq!(e.destinations.len(), 1500);
        assert!(e.failures.is_empty(), "{:?}", e.failures);
        // Past the limit: the first MAX_DESTINATIONS get it, and the
        // recipient bounces with the reason instead of losing the rest.
        let e = f.resolve("huge@example.org");
        assert_eq!(e.destinations.len(), MAX_DESTINATIONS);
        assert_eq!(e.failures.len(), 1, "{:?}", e.failures);
        assert_eq!(e.failures[0].address, "huge@example.org");
        assert_eq!(e.failures[0].status.dsn(), EnhancedStatus(5, 2, 4));
        assert!(matches!(e.failures[0].status, DeliveryStatus::Bounced { .. }));
        assert!(
            e.failures[0].status.text().contains("exceeds 20000 destinations"),
            "{:?}",
            e.failures
        );
        // Exactly the limit is no overflow.
        std::fs::write(
            &over,
            (0..MAX_DESTINATIONS).map(|i| format!("m{i}@remote.example\n")).collect::<String>(),
        )
        .unwrap();
        let e = f.resolve("huge@example.org");
        assert_eq!(e.destinations.len(), MAX_DESTINATIONS);
        assert!(e.failures.is_empty(), "{:?}", e.failures);
    }

    #[test]
    fn duplicates_are_delivered_once() {
        let _lock = crate::privs::test_lock();
        let f = fixture("all: suporte, staff, suporte\nstaff: suporte, ana\n");
        let e = f.resolve("all@example.org");
        assert_eq!(
            mailboxes(&e),
            [("suporte@mail.example.org".into(), None), ("ana@mail.example.org".into(), None)]
        );
    }

    /// Users whose homes are in the test directory and whose ids are
    /// ours, so that their `.forward` files can be written.
    fn forward_fixture() -> Fixture {
        let f = fixture("");
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let mut passwd = String::new();
        for name in ["maria", "ana", "suporte"] {
            let home = f.path.join("home").join(name);
            std::fs::create_dir_all(&home).unwrap();
            passwd.push_str(&format!("{name}:x:{uid}:{gid}::{}\n", home.display()));
        }
        std::fs::write(f.path.join("passwd"), passwd).unwrap();
        let main = mail_config::Main::from_str(
            &f.path.join("main.toml"),
            "myhostname = \"mail.example.org\"\nmydestination = [\"$myhostname\", \"example.org\"]\nrecipient_delimiter = \"+\"\nallow_mail_to_files = [\"alias\"]\n",
        )
        .unwrap();
        Fixture { settings: Settings::from_config(&main), ..f }
    }

    impl Fixture {
        fn forward(&self, user: &str, name: &str, text: &str) {
            let path = self.path.join("home").join(user).join(name);
            std::fs::write(&path, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }

    #[test]
    fn dot_forward_with_backslash_self() {
        let _lock = crate::privs::test_lock();
        let f = forward_fixture();
        f.forward("maria", ".forward", "# copies\nsuporte, \\maria\n");
        let e = f.resolve("maria@example.org");
        assert_eq!(
            mailboxes(&e),
            [("suporte@mail.example.org".into(), None), ("maria@mail.example.org".into(), None)]
        );
        assert!(e.failures.is_empty(), "{:?}", e.failures);
        // Reached through an alias, the user's .forward still applies.
        std::fs::write(f.path.join("aliases"), "vendas: maria\n").unwrap();
        let e = f.resolve("vendas@example.org");
        assert_eq!(mailboxes(&e).len(), 2);
    }

    #[test]
    fn dot_forward_self_reference_remote_and_commands() {
        let _lock = crate::privs::test_lock();
        let f = forward_fixture();
        f.forward(
            "maria",
            ".forward",
            "maria, friend@remote.example, |/usr/bin/vacation maria\n/tmp/x\n",
        );
        let e = f.resolve("maria@example.org");
        assert_eq!(mailboxes(&e), [("maria@mail.example.org".into(), None)]);
        assert!(e.destinations.contains(&Destination::Forward {
            address: "friend@remote.example".into(),
            via: "maria@mail.example.org".into()
        }));
        let home = f.path.join("home/maria");
        assert!(e.destinations.iter().any(|d| matches!(d,
            Destination::Command { command, via, home: h, user, .. }
                if command == "/usr/bin/vacation maria" && via == "maria@mail.example.org"
                    && *h == home && user.as_deref() == Some("maria"))));
        // Files are allowed in aliases only here.
        assert_eq!(e.failures.len(), 1);
        assert!(
            e.failures[0].status.text().contains("mail to file is restricted (forward: /tmp/x)"),
            "{:?}",
            e.failures
        );
    }

    #[test]
    fn dot_forward_cycles_end_in_a_mailbox() {
        let _lock = crate::privs::test_lock();
        let f = forward_fixture();
        f.forward("maria", ".forward", "ana\n");
        f.forward("ana", ".forward", "maria\n");
        let e = f.resolve("maria@example.org");
        assert_eq!(mailboxes(&e), [("maria@mail.example.org".into(), None)]);
        let e = f.resolve("ana@example.org");
        assert_eq!(mailboxes(&e), [("ana@mail.example.org".into(), None)]);
        // A .forward to an unknown user bounces that branch only.
        f.forward("ana", ".forward", "ghost, \\ana\n");
        let e = f.resolve("ana@example.org");
        assert_eq!(mailboxes(&e), [("ana@mail.example.org".into(), None)]);
        assert_eq!(e.failures[0].status.dsn(), EnhancedStatus(5, 1, 1));
    }

    #[test]
    fn dot_forward_extension_empty_and_symlink() {
        let _lock = crate::privs::test_lock();
        let f = forward_fixture();
        f.forward("maria", ".forward+news", "ana\n");
        f.forward("maria", ".forward", "suporte\n");
        let e = f.resolve("maria+news@example.org");
        assert_eq!(mailboxes(&e), [("ana@mail.example.org".into(), None)]);
        let e = f.resolve("maria+other@example.org");
        assert_eq!(mailboxes(&e), [("suporte@mail.example.org".into(), None)]);
        // An extension with a slash never names a file.
        std::fs::create_dir(f.path.join("home/maria/.forward+a")).unwrap();
        f.forward("maria", ".forward+a/b", "ana\n");
        let e = f.resolve("maria+a/b@example.org");
        assert_eq!(mailboxes(&e), [("suporte@mail.example.org".into(), None)]);
        // Empty (comments only): the mailbox.
        f.forward("maria", ".forward", "# nothing\n\n");
        let e = f.resolve("maria@example.org");
        assert_eq!(mailboxes(&e), [("maria@example.org".into(), None)]);
        // A symlink is ignored: the mailbox.
        let fwd = f.path.join("home/maria/.forward");
        std::fs::remove_file(&fwd).unwrap();
        f.forward("ana", "list", "suporte\n");
        std::os::unix::fs::symlink(f.path.join("home/ana/list"), &fwd).unwrap();
        let e = f.resolve("maria@example.org");
        assert_eq!(mailboxes(&e), [("maria@example.org".into(), None)]);
        assert!(e.failures.is_empty());
    }
}
