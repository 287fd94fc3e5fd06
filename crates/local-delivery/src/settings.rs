//! The parameters local delivery reads, taken once from main.toml (plus the
//! service's `-o` overrides) into one plain struct that is passed down.

use std::path::PathBuf;
use std::time::Duration;

use mail_config::Main;

/// Everything a delivery needs to know about the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) queue_directory: PathBuf,
    pub(crate) alias_maps: Vec<PathBuf>,
    /// Empty: no address extensions.
    pub(crate) recipient_delimiter: String,
    /// Empty: system users.
    pub(crate) passwd_file: PathBuf,
    pub(crate) home_mailbox: String,
    pub(crate) mail_spool_directory: PathBuf,
    /// Not `$`-expanded: the shell sees `$HOME`, `$EXTENSION`, ...
    pub(crate) mailbox_command: String,
    /// 0: no limit.
    pub(crate) mailbox_size_limit: u64,
    /// `|command` allowed in aliases / `:include:` files.
    pub(crate) commands_in_alias: bool,
    pub(crate) commands_in_include: bool,
    /// `|command` allowed in `.forward` files.
    pub(crate) commands_in_forward: bool,
    /// `/file` allowed in aliases / `:include:` / `.forward` files.
    pub(crate) files_in_alias: bool,
    pub(crate) files_in_include: bool,
    pub(crate) files_in_forward: bool,
    /// Not `$`-expanded: [`crate::forward`] expands `$home`, `$user`, ...
    /// per recipient. Empty: no `.forward` files.
    pub(crate) forward_path: String,
    /// Lower-case, without trailing dots.
    pub(crate) mydestination: Vec<String>,
    /// Domain for unqualified alias targets (`Delivered-To:`, re-injection).
    pub(crate) myorigin: String,
    pub(crate) myhostname: String,
    /// Owner of the queue: re-injected files are written as this user.
    pub(crate) mail_owner: String,
    /// How long a `mailbox_command` or an alias `|command` may run.
    pub(crate) command_time_limit: Duration,
    /// The account (a name) that commands and files run as instead of
    /// root: Postfix's `default_privs`.
    pub(crate) default_privs: String,
    /// `mail_owner` is root: a development instance made by root
    /// (`postern init --dev` as root). Such an instance belongs to root as
    /// a user's belongs to that user, so root's commands are not moved to
    /// `default_privs` (a system install never has mail_owner root).
    pub(crate) root_instance: bool,
}

impl Settings {
    pub(crate) fn from_config(c: &Main) -> Settings {
        let allow_commands = c.list("allow_mail_to_commands");
        let allow_files = c.list("allow_mail_to_files");
        let has = |list: &[String], what: &str| list.iter().any(|x| x.eq_ignore_ascii_case(what));
        let myhostname = c.str("myhostname");
        Settings {
            queue_directory: c.path("queue_directory"),
            alias_maps: c.list("alias_maps").into_iter().map(|p| c.dir().join(p)).collect(),
            recipient_delimiter: c.str("recipient_delimiter"),
            passwd_file: c.path("passwd_file"),
            home_mailbox: c.str("home_mailbox"),
            mail_spool_directory: c.path("mail_spool_directory"),
            mailbox_command: c.text("mailbox_command"),
            mailbox_size_limit: c.size("mailbox_size_limit"),
            commands_in_alias: has(&allow_commands, "alias"),
            commands_in_include: has(&allow_commands, "include"),
            commands_in_forward: has(&allow_commands, "forward"),
            files_in_alias: has(&allow_files, "alias"),
            files_in_include: has(&allow_files, "include"),
            files_in_forward: has(&allow_files, "forward"),
            forward_path: c.text("forward_path"),
            mydestination: c
                .list("mydestination")
                .into_iter()
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            myorigin: origin(&c.str("myorigin"), &myhostname),
            myhostname,
            root_instance: nix::unistd::User::from_name(&c.str("mail_owner"))
                .ok()
                .flatten()
                .is_some_and(|u| u.uid.is_root()),
            mail_owner: c.str("mail_owner"),
            command_time_limit: c.duration("command_time_limit"),
            default_privs: c.str("default_privs"),
        }
    }

    /// Do commands and files of root run as `default_privs`? In a system
    /// install (we are root, `mail_owner` is not); not in a development
    /// instance, whoever made it.
    pub(crate) fn privileged(&self) -> bool {
        crate::privs::is_root() && !self.root_instance
    }

    /// Is `domain` one of ours (`mydestination`)?
    pub(crate) fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        self.mydestination.contains(&d)
    }
}

/// `myorigin`, which may name a file (`/etc/mailname`) whose first line is
/// the domain, as in Postfix.
fn origin(value: &str, myhostname: &str) -> String {
    if !value.starts_with('/') {
        return if value.is_empty() { myhostname.to_owned() } else { value.to_owned() };
    }
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open(value).and_then(|f| f.take(1024).read_to_string(&mut text));
    match read.ok().and_then(|_| text.lines().next().map(str::trim).map(str::to_owned)) {
        Some(line) if !line.is_empty() => line,
        _ => myhostname.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn reads_parameters() {
        let text = r#"
myhostname = "mail.example.org"
mydestination = ["$myhostname", "Example.ORG."]
recipient_delimiter = "+"
mailbox_command = "/usr/bin/procmail -a $EXTENSION"
alias_maps = ["hash:aliases"]
allow_mail_to_files = ["alias", "include"]
"#;
        let main = Main::from_str(Path::new("/etc/postern/main.toml"), text).unwrap();
        let s = Settings::from_config(&main);
        assert_eq!(s.mailbox_command, "/usr/bin/procmail -a $EXTENSION");
        assert_eq!(s.recipient_delimiter, "+");
        assert!(s.is_local_domain("example.org"));
        assert!(s.is_local_domain("MAIL.example.org."));
        assert!(!s.is_local_domain("example.com"));
        assert_eq!(s.myorigin, "mail.example.org");
        assert!(s.commands_in_alias && !s.commands_in_include);
        assert!(s.files_in_alias && s.files_in_include && !s.files_in_forward);
        assert!(s.commands_in_forward);
        assert_eq!(
            s.forward_path,
            "$home/.forward${recipient_delimiter}${extension}, $home/.forward"
        );
        assert_eq!(s.alias_maps.len(), 1);
        assert_eq!(s.command_time_limit, Duration::from_secs(1000));
        assert_eq!(s.default_privs, "nobody");
        assert!(s.alias_maps[0].ends_with("aliases"));
    }

    #[test]
    fn origin_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mailname");
        std::fs::File::create(&f)
            .and_then(|mut h| std::io::Write::write_all(&mut h, b"x.example\n"))
            .unwrap();
        assert_eq!(origin(f.to_str().unwrap(), "h"), "x.example");
        assert_eq!(origin("/nonexistent/file", "h"), "h");
        assert_eq!(origin("", "h"), "h");
        assert_eq!(origin("d.example", "h"), "d.example");
    }
}
