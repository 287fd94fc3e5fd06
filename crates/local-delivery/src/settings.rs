//! The parameters local delivery reads, taken once from main.toml (plus the
//! service's `-o` overrides) into one plain struct that is passed down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mail_config::{LocalDomains, Main, settings};
use mail_lookup::rewrite::{RewriteParams, Rewriter};

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
    /// The local-domain test shared with smtpd and qmgr.
    pub(crate) mydestination: LocalDomains,
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
    /// qmgr's trigger socket, woken after a forwarded copy is queued: the
    /// path master.toml gives the `qmgr` service (main sets it).
    pub(crate) qmgr_socket: PathBuf,
    /// cleanup's envelope rewriting of forwarded copies (canonical maps,
    /// virtual alias expansion), as Postfix's local resubmits through
    /// cleanup.
    pub(crate) rewriter: Arc<Rewriter>,
}

impl Settings {
    /// Builds local delivery's settings from the typed `Common` and
    /// `Local` structs of mail-config.
    pub(crate) fn from_config(c: &Main) -> Settings {
        let common = settings::Common::new(c);
        let local = settings::Local::new(c);
        Settings {
            rewriter: Arc::new(Rewriter::envelope_only(RewriteParams::from_settings(&common))),
            qmgr_socket: common.queue_directory.join(mail_ipc::sockets::QMGR),
            queue_directory: common.queue_directory,
            alias_maps: common.alias_maps,
            recipient_delimiter: common.recipient_delimiter,
            passwd_file: common.passwd_file.unwrap_or_default(),
            home_mailbox: local.home_mailbox,
            mail_spool_directory: local.mail_spool_directory,
            mailbox_command: local.mailbox_command,
            mailbox_size_limit: local.mailbox_size_limit,
            commands_in_alias: local.allow_mail_to_commands.alias,
            commands_in_include: local.allow_mail_to_commands.include,
            commands_in_forward: local.allow_mail_to_commands.forward,
            files_in_alias: local.allow_mail_to_files.alias,
            files_in_include: local.allow_mail_to_files.include,
            files_in_forward: local.allow_mail_to_files.forward,
            forward_path: local.forward_path,
            mydestination: common.mydestination,
            // mail-config already applied the /etc/mailname file rule;
            // an empty myorigin still qualifies alias targets, with
            // myhostname.
            myorigin: if common.myorigin.is_empty() {
                common.myhostname.clone()
            } else {
                common.myorigin
            },
            myhostname: common.myhostname,
            root_instance: nix::unistd::User::from_name(&common.mail_owner)
                .ok()
                .flatten()
                .is_some_and(|u| u.uid.is_root()),
            mail_owner: common.mail_owner,
            command_time_limit: local.command_time_limit,
            default_privs: local.default_privs,
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
        self.mydestination.contains(domain)
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
}
