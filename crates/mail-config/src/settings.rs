//! Typed settings: the parameters each program reads, as struct fields
//! named after the parameter (one grep finds both), with every value
//! already converted (`Duration`, `PathBuf`, `usize`, [`LocalDomains`],
//! [`Networks`]).
//!
//! A program builds the structs it needs once from a loaded [`Main`]
//! (`settings::Smtpd::new(&main)`) and passes them down. Because
//! [`Main`] checked every value, `$name` reference and list element at
//! load, building cannot fail; and because daemons read fields instead of
//! looking parameters up by name, a misspelt parameter is a compile
//! error, not a panic at run time. Looking a parameter up by name is left
//! to `postconf`, where the name comes from the operator
//! ([`Main::lookup_text`] and friends return errors).
//!
//! The split follows the rule that a daemon sees only its own
//! section plus [`Common`]: [`Smtpd`] (and [`SmtpdTls`]), [`Pop3d`], [`Imapd`], [`Qmgr`], [`Local`], [`Master`]
//! and [`Sendmail`]; pickup needs only [`Common`]. A parameter that no
//! struct reads must say so in its doc in `params.rs` (see
//! [`UNIMPLEMENTED_PREFIX`]); a unit test below keeps the two in step.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::{LocalDomains, Main, Networks};

/// How the doc of a parameter that Postern declares (so `main.cf` habits
/// and `postconf -e` work) but does not act on yet begins. `postern check`
/// and `postconf -e` warn when such a parameter is set.
pub const UNIMPLEMENTED_PREFIX: &str = "Not yet implemented";

/// How the doc of a parameter that is accepted only so that Postfix
/// configurations load, and deliberately ignored, begins.
pub const COMPAT_PREFIX: &str = "Accepted for compatibility";

/// Whether the parameter `name` is declared but has no effect yet (its
/// doc starts with [`UNIMPLEMENTED_PREFIX`]).
pub fn is_unimplemented(name: &str) -> bool {
    crate::params::lookup(name).is_some_and(|p| p.doc.starts_with(UNIMPLEMENTED_PREFIX))
}

/// A warning for each parameter that is set (in the file or with `-o`)
/// to something other than its default although it has no effect yet:
/// the parameter's name and the line `postern check` and `postconf -e`
/// print, in the shape of configuration errors
/// (`/etc/postern/main.toml:3: parameter "relayhost": not yet implemented; the setting has no effect`).
pub fn unimplemented_warnings(main: &Main) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String, PathBuf, u32)> = crate::params::PARAMS
        .iter()
        .filter(|p| p.doc.starts_with(UNIMPLEMENTED_PREFIX))
        .filter_map(|p| {
            let raw = main.raw(p.name)?;
            if raw.trim() == main.default_text(p.name).trim() {
                return None;
            }
            let (path, line) = main.origin(p.name)?;
            let at = if line == 0 {
                path.display().to_string()
            } else {
                format!("{}:{line}", path.display())
            };
            let message = format!(
                "{at}: parameter \"{}\": not yet implemented; the setting has no effect",
                p.name
            );
            Some((p.name, message, path.to_owned(), line))
        })
        .collect();
    out.sort_by(|a, b| (&a.2, a.3).cmp(&(&b.2, b.3)));
    out.into_iter().map(|(n, m, _, _)| (n, m)).collect()
}

/// Reads parameters for the builders, remembering which names were read
/// so the test below can check that every parameter has a typed home.
struct Reader<'a> {
    main: &'a Main,
    seen: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Reader<'a> {
    fn new(main: &'a Main) -> Reader<'a> {
        Reader { main, seen: RefCell::new(BTreeSet::new()) }
    }

    fn note(&self, name: &'static str) -> &'static str {
        self.seen.borrow_mut().insert(name);
        name
    }

    fn str(&self, name: &'static str) -> String {
        self.main.str(self.note(name))
    }

    /// Unexpanded: for the raw parameters whose `$` the daemon expands.
    fn raw_str(&self, name: &'static str) -> String {
        self.main.text(self.note(name))
    }

    fn bool(&self, name: &'static str) -> bool {
        self.main.bool(self.note(name))
    }

    fn u64(&self, name: &'static str) -> u64 {
        self.main.int(self.note(name))
    }

    fn usize(&self, name: &'static str) -> usize {
        usize::try_from(self.u64(name)).unwrap_or(usize::MAX)
    }

    fn u32(&self, name: &'static str) -> u32 {
        u32::try_from(self.u64(name)).unwrap_or(u32::MAX)
    }

    fn duration(&self, name: &'static str) -> Duration {
        self.main.duration(self.note(name))
    }

    fn path(&self, name: &'static str) -> PathBuf {
        self.main.path(self.note(name))
    }

    /// An optional path: `None` when empty (not set).
    fn opt_path(&self, name: &'static str) -> Option<PathBuf> {
        Some(self.path(name)).filter(|p| !p.as_os_str().is_empty())
    }

    fn list(&self, name: &'static str) -> Vec<String> {
        self.main.list(self.note(name))
    }

    /// A list of files, relative ones resolved against the configuration
    /// directory (as [`Main::path`] does).
    fn paths(&self, name: &'static str) -> Vec<PathBuf> {
        self.list(name).into_iter().map(|p| self.main.dir().join(p)).collect()
    }
}

/// What every program needs: where things are, who we are, and the
/// limits that the cleanup work shared by smtpd, pickup and sendmail
/// applies.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Common {
    /// The queue and its sockets.
    pub queue_directory: PathBuf,
    /// Where master finds the daemon programs (and `postern` finds master).
    pub daemon_directory: PathBuf,
    /// The unprivileged user the daemons run as.
    pub mail_owner: String,
    /// The group of `maildrop/` and of the setgid `postdrop` helper.
    pub setgid_group: String,
    /// Where `sendmail` finds `postdrop`.
    pub command_directory: PathBuf,
    /// `Postern`, for banners and bounces.
    pub mail_name: String,
    /// The prefix of every log line.
    pub syslog_name: String,
    /// The log file; `None` means `maillog_destination` ([`Logging`]).
    pub maillog_file: Option<PathBuf>,
    /// This host's fully qualified name (computed if not set).
    pub myhostname: String,
    /// This host's domain (computed if not set).
    pub mydomain: String,
    /// The domain of unqualified addresses, with the `/etc/mailname` file
    /// rule already applied.
    pub myorigin: String,
    /// The local-domain test built from `mydestination`.
    pub mydestination: LocalDomains,
    /// Append `@$myorigin` to addresses without a domain.
    pub append_at_myorigin: bool,
    /// Empty: no address extensions.
    pub recipient_delimiter: String,
    /// The alias files (map type prefix removed, relative paths resolved).
    pub alias_maps: Vec<PathBuf>,
    /// The passwd-file of virtual users; `None` means system users.
    pub passwd_file: Option<PathBuf>,
    /// Bytes; 0 means no limit.
    pub message_size_limit: u64,
    /// Bytes of headers a message may have.
    pub header_size_limit: usize,
    /// Envelope address rewriting (smtpd and pickup).
    pub rewrite: Rewrite,
}

/// cleanup's address rewriting tables (map type prefixes removed,
/// relative paths resolved), shared by smtpd and pickup.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rewrite {
    /// Sender and recipient canonical tables.
    pub canonical_maps: Vec<PathBuf>,
    /// Sender canonical tables, before `canonical_maps`.
    pub sender_canonical_maps: Vec<PathBuf>,
    /// Recipient canonical tables, before `canonical_maps`.
    pub recipient_canonical_maps: Vec<PathBuf>,
    /// Virtual alias tables.
    pub virtual_alias_maps: Vec<PathBuf>,
    /// Domain names and `type:table` entries, as listed (expanded).
    pub virtual_alias_domains: Vec<String>,
    /// Deepest virtual alias nesting.
    pub virtual_alias_recursion_limit: usize,
    /// Most addresses one recipient expands to.
    pub virtual_alias_expansion_limit: usize,
    /// The configuration directory, for relative table names in
    /// `virtual_alias_domains`.
    pub config_directory: PathBuf,
    /// What `canonical_maps` rewrites.
    pub canonical_classes: CanonicalClasses,
    /// What `sender_canonical_maps` rewrites.
    pub sender_canonical_classes: CanonicalClasses,
    /// What `recipient_canonical_maps` rewrites.
    pub recipient_canonical_classes: CanonicalClasses,
}

/// Which addresses a canonical table rewrites (Postfix's
/// `canonical_classes` and its sender and recipient forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CanonicalClasses {
    /// The envelope sender (MAIL FROM, `sendmail -f`).
    pub envelope_sender: bool,
    /// The envelope recipients.
    pub envelope_recipient: bool,
    /// Addresses in From, Sender, Reply-To and the other sender headers.
    pub header_sender: bool,
    /// Addresses in To, Cc, Bcc and the other recipient headers.
    pub header_recipient: bool,
}

impl CanonicalClasses {
    /// Every class.
    pub const ALL: CanonicalClasses = CanonicalClasses {
        envelope_sender: true,
        envelope_recipient: true,
        header_sender: true,
        header_recipient: true,
    };

    /// The classes a list names (checked at load: unknown words cannot
    /// reach here, and are ignored if they do).
    pub fn from_words(words: &[String]) -> CanonicalClasses {
        let has = |w: &str| words.iter().any(|x| x.eq_ignore_ascii_case(w));
        CanonicalClasses {
            envelope_sender: has("envelope_sender"),
            envelope_recipient: has("envelope_recipient"),
            header_sender: has("header_sender"),
            header_recipient: has("header_recipient"),
        }
    }
}

impl Rewrite {
    fn read(r: &Reader<'_>) -> Rewrite {
        Rewrite {
            canonical_maps: r.paths("canonical_maps"),
            sender_canonical_maps: r.paths("sender_canonical_maps"),
            recipient_canonical_maps: r.paths("recipient_canonical_maps"),
            virtual_alias_maps: r.paths("virtual_alias_maps"),
            virtual_alias_domains: r.list("virtual_alias_domains"),
            virtual_alias_recursion_limit: r.usize("virtual_alias_recursion_limit"),
            virtual_alias_expansion_limit: r.usize("virtual_alias_expansion_limit"),
            config_directory: r.main.dir().to_owned(),
            canonical_classes: CanonicalClasses::from_words(&r.list("canonical_classes")),
            sender_canonical_classes: CanonicalClasses::from_words(
                &r.list("sender_canonical_classes"),
            ),
            recipient_canonical_classes: CanonicalClasses::from_words(
                &r.list("recipient_canonical_classes"),
            ),
        }
    }
}

impl Common {
    /// Reads the common parameters.
    pub fn new(main: &Main) -> Common {
        Common::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Common {
        Common {
            queue_directory: r.path("queue_directory"),
            daemon_directory: r.path("daemon_directory"),
            mail_owner: r.str("mail_owner"),
            setgid_group: r.str("setgid_group"),
            command_directory: r.path("command_directory"),
            mail_name: r.str("mail_name"),
            syslog_name: r.str("syslog_name"),
            maillog_file: r.opt_path("maillog_file"),
            myhostname: r.str("myhostname"),
            mydomain: r.str("mydomain"),
            myorigin: r.str("myorigin"),
            mydestination: LocalDomains::new(r.list("mydestination")),
            append_at_myorigin: r.bool("append_at_myorigin"),
            recipient_delimiter: r.str("recipient_delimiter"),
            alias_maps: r.paths("alias_maps"),
            passwd_file: r.opt_path("passwd_file"),
            message_size_limit: r.u64("message_size_limit"),
            header_size_limit: r.usize("header_size_limit"),
            rewrite: Rewrite::read(r),
        }
    }
}

/// The SMTP server's parameters (also `sendmail -bs`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Smtpd {
    /// The text after `220`.
    pub smtpd_banner: String,
    /// The longest wait for a client; as configured (0 stays 0).
    pub smtpd_timeout: Duration,
    /// Recipients per message.
    pub smtpd_recipient_limit: usize,
    /// Errors before disconnecting.
    pub smtpd_hard_error_limit: u32,
    /// Errors before every reply is delayed.
    pub smtpd_soft_error_limit: u32,
    /// Connections per client address, counted by anvil; 0 means no limit.
    pub smtpd_client_connection_count_limit: u32,
    /// Connections per client address per `anvil_rate_time_unit`; 0 means no limit.
    pub smtpd_client_connection_rate_limit: u32,
    /// Connections one smtpd process serves at once.
    pub smtpd_process_connection_limit: usize,
    /// The longest session; zero disables the deadline.
    pub smtpd_session_deadline: Duration,
    /// The longest DATA transfer; zero disables the deadline.
    pub smtpd_data_deadline: Duration,
    /// Junk commands (HELO, EHLO, RSET, NOOP, VRFY, ETRN) before each counts as an error.
    pub smtpd_junk_command_limit: u32,
    /// HELO/EHLO before MAIL FROM.
    pub smtpd_helo_required: bool,
    /// VRFY is refused.
    pub disable_vrfy_command: bool,
    /// AUTH is offered.
    pub smtpd_sasl_auth_enable: bool,
    /// The longest TLS handshake.
    pub smtpd_starttls_timeout: Duration,
    /// Bytes the queue file system must keep free; 0 means 1.5 ×
    /// `message_size_limit` (the daemon applies that rule).
    pub queue_minfree: u64,
    /// The clients that may relay.
    pub mynetworks: Networks,
    /// The restriction lists, as listed (expanded, split).
    pub smtpd_client_restrictions: Vec<String>,
    /// HELO restrictions.
    pub smtpd_helo_restrictions: Vec<String>,
    /// MAIL FROM restrictions.
    pub smtpd_sender_restrictions: Vec<String>,
    /// Relay control restrictions.
    pub smtpd_relay_restrictions: Vec<String>,
    /// RCPT TO restrictions.
    pub smtpd_recipient_restrictions: Vec<String>,
    /// Sender -> owner login tables.
    pub smtpd_sender_login_maps: Vec<PathBuf>,
    /// Implicit `reject_unlisted_recipient` at the end of RCPT checks.
    pub smtpd_reject_unlisted_recipient: bool,
    /// Implicit `reject_unlisted_sender`.
    pub smtpd_reject_unlisted_sender: bool,
    /// Domains relayed for anyone (names or `type:table` entries).
    pub relay_domains: Vec<String>,
    /// Relay routed addresses from untrusted clients.
    pub allow_untrusted_routing: bool,
    /// `user%domain` is `user@domain`.
    pub allow_percent_hack: bool,
    /// `site!user` is `user@site`.
    pub swap_bangpath: bool,
    /// For relative `type:table` names in restriction lists.
    pub config_directory: PathBuf,
    /// The local recipient tables, as listed (expanded, `type:` prefixes
    /// kept: `unix:passwd.byname` is the user database); empty: every
    /// local name is accepted.
    pub local_recipient_maps: Vec<String>,
}

impl Smtpd {
    /// Reads smtpd's parameters.
    pub fn new(main: &Main) -> Smtpd {
        Smtpd::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Smtpd {
        Smtpd {
            smtpd_banner: r.str("smtpd_banner"),
            smtpd_timeout: r.duration("smtpd_timeout"),
            smtpd_recipient_limit: r.usize("smtpd_recipient_limit"),
            smtpd_hard_error_limit: r.u32("smtpd_hard_error_limit"),
            smtpd_soft_error_limit: r.u32("smtpd_soft_error_limit"),
            smtpd_client_connection_count_limit: r.u32("smtpd_client_connection_count_limit"),
            smtpd_client_connection_rate_limit: r.u32("smtpd_client_connection_rate_limit"),
            smtpd_process_connection_limit: r.usize("smtpd_process_connection_limit"),
            smtpd_session_deadline: r.duration("smtpd_session_deadline"),
            smtpd_data_deadline: r.duration("smtpd_data_deadline"),
            smtpd_junk_command_limit: r.u32("smtpd_junk_command_limit"),
            smtpd_helo_required: r.bool("smtpd_helo_required"),
            disable_vrfy_command: r.bool("disable_vrfy_command"),
            smtpd_sasl_auth_enable: r.bool("smtpd_sasl_auth_enable"),
            smtpd_starttls_timeout: r.duration("smtpd_starttls_timeout"),
            queue_minfree: r.u64("queue_minfree"),
            // Checked element by element at load, so this cannot fail.
            mynetworks: Networks::parse(&r.list("mynetworks")).unwrap_or_default(),
            smtpd_client_restrictions: r.list("smtpd_client_restrictions"),
            smtpd_helo_restrictions: r.list("smtpd_helo_restrictions"),
            smtpd_sender_restrictions: r.list("smtpd_sender_restrictions"),
            smtpd_relay_restrictions: r.list("smtpd_relay_restrictions"),
            smtpd_recipient_restrictions: r.list("smtpd_recipient_restrictions"),
            smtpd_sender_login_maps: r.paths("smtpd_sender_login_maps"),
            smtpd_reject_unlisted_recipient: r.bool("smtpd_reject_unlisted_recipient"),
            smtpd_reject_unlisted_sender: r.bool("smtpd_reject_unlisted_sender"),
            relay_domains: r.list("relay_domains"),
            allow_untrusted_routing: r.bool("allow_untrusted_routing"),
            allow_percent_hack: r.bool("allow_percent_hack"),
            swap_bangpath: r.bool("swap_bangpath"),
            config_directory: r.main.dir().to_owned(),
            local_recipient_maps: r.list("local_recipient_maps"),
        }
    }
}

/// `smtpd_tls_security_level`: whether the SMTP server offers or requires
/// TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLevel {
    /// `none` or empty: no STARTTLS.
    None,
    /// `may`: STARTTLS offered, plain SMTP allowed.
    May,
    /// `encrypt`: STARTTLS required before mail is accepted.
    Encrypt,
}

impl TlsLevel {
    fn from_word(w: &str) -> TlsLevel {
        match w.trim().to_ascii_lowercase().as_str() {
            "may" => TlsLevel::May,
            "encrypt" => TlsLevel::Encrypt,
            // Anything else was refused at load; empty is Postfix's "none".
            _ => TlsLevel::None,
        }
    }
}

/// The TLS versions a `*_tls_protocols` value enables. Postern offers
/// only TLS 1.2 and 1.3, so a value that would enable anything older is
/// refused when `main.toml` loads rather than quietly narrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsProtocols {
    /// TLSv1.2 is enabled.
    pub tls12: bool,
    /// TLSv1.3 is enabled.
    pub tls13: bool,
}

/// Postfix's protocol names, oldest first; the index is the order `>=`
/// and `<=` compare in.
const TLS_PROTOCOL_NAMES: [&str; 6] = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
const TLS12: usize = 4;

impl TlsProtocols {
    /// Parses a value in Postfix's syntax (`tls_protocol_mask`): names to
    /// include (`TLSv1.3`), names to exclude (`!TLSv1`), and bounds
    /// (`>=TLSv1.2`, `<=TLSv1.3`, also with a space after the operator).
    /// No include means every protocol before the exclusions and bounds
    /// apply, as in Postfix; an empty value means every protocol Postern
    /// offers. `Err` is a message for a configuration error.
    pub fn parse(items: &[String]) -> Result<TlsProtocols, String> {
        if items.is_empty() {
            return Ok(TlsProtocols { tls12: true, tls13: true });
        }
        let index = |name: &str| {
            TLS_PROTOCOL_NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).ok_or_else(|| {
                format!(
                    "unknown TLS protocol \"{name}\"; expected one of {}",
                    TLS_PROTOCOL_NAMES.join(", ")
                )
            })
        };
        let (mut include, mut exclude) = ([false; 6], [false; 6]);
        let (mut min, mut max) = (0, TLS_PROTOCOL_NAMES.len() - 1);
        let mut it = items.iter().map(String::as_str);
        while let Some(item) = it.next() {
            let bound = if let Some(rest) = item.strip_prefix(">=") {
                Some((true, rest))
            } else {
                item.strip_prefix("<=").map(|rest| (false, rest))
            };
            match bound {
                Some((is_min, rest)) => {
                    let name = if rest.is_empty() {
                        it.next().ok_or_else(|| format!("\"{item}\" needs a protocol name"))?
                    } else {
                        rest
                    };
                    let i = index(name)?;
                    if is_min { min = min.max(i) } else { max = max.min(i) }
                }
                None => match item.strip_prefix('!') {
                    Some(name) => exclude[index(name)?] = true,
                    None => include[index(item)?] = true,
                },
            }
        }
        let any_include = include.iter().any(|&b| b);
        let on = |i: usize| (!any_include || include[i]) && !exclude[i] && (min..=max).contains(&i);
        let old: Vec<&str> = (0..TLS12).filter(|&i| on(i)).map(|i| TLS_PROTOCOL_NAMES[i]).collect();
        if !old.is_empty() {
            return Err(format!(
                "enables {}, older than TLSv1.2, which Postern does not offer; \
                 write \">=TLSv1.2\" (or exclude them: \"!SSLv2, !SSLv3, !TLSv1, !TLSv1.1\")",
                old.join(", ")
            ));
        }
        let p = TlsProtocols { tls12: on(TLS12), tls13: on(TLS12 + 1) };
        if !p.tls12 && !p.tls13 {
            return Err("enables no protocol; Postern offers TLSv1.2 and TLSv1.3".into());
        }
        Ok(p)
    }
}

/// The SMTP server's TLS parameters, read by `mail_tls` (certificates,
/// protocols) and by smtpd (level, wrapper mode).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpdTls {
    /// Whether STARTTLS is offered or required.
    pub smtpd_tls_security_level: TlsLevel,
    /// The certificate file (PEM, leaf first); `None` when not set.
    pub smtpd_tls_cert_file: Option<PathBuf>,
    /// The key file (PEM); defaults to the certificate file.
    pub smtpd_tls_key_file: Option<PathBuf>,
    /// Files of a key followed by its chain; when not empty, they replace
    /// the two above.
    pub smtpd_tls_chain_files: Vec<PathBuf>,
    /// The versions offered at level `may`.
    pub smtpd_tls_protocols: TlsProtocols,
    /// The versions offered at level `encrypt`.
    pub smtpd_tls_mandatory_protocols: TlsProtocols,
    /// TLS from the first byte (smtps, port 465).
    pub smtpd_tls_wrappermode: bool,
    /// AUTH only over TLS.
    pub smtpd_tls_auth_only: bool,
    /// 0 logs TLS failures only; 1 and more a summary line per handshake too.
    pub smtpd_tls_loglevel: u32,
}

impl SmtpdTls {
    /// Reads the SMTP server's TLS parameters.
    pub fn new(main: &Main) -> SmtpdTls {
        SmtpdTls::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> SmtpdTls {
        // Both lists were checked at load, so parsing cannot fail here.
        let protocols = |name| {
            TlsProtocols::parse(&r.list(name)).unwrap_or(TlsProtocols { tls12: true, tls13: true })
        };
        SmtpdTls {
            smtpd_tls_security_level: TlsLevel::from_word(&r.str("smtpd_tls_security_level")),
            smtpd_tls_cert_file: r.opt_path("smtpd_tls_cert_file"),
            smtpd_tls_key_file: r.opt_path("smtpd_tls_key_file"),
            smtpd_tls_chain_files: r.paths("smtpd_tls_chain_files"),
            smtpd_tls_protocols: protocols("smtpd_tls_protocols"),
            smtpd_tls_mandatory_protocols: protocols("smtpd_tls_mandatory_protocols"),
            smtpd_tls_wrappermode: r.bool("smtpd_tls_wrappermode"),
            smtpd_tls_auth_only: r.bool("smtpd_tls_auth_only"),
            smtpd_tls_loglevel: r.u32("smtpd_tls_loglevel"),
        }
    }
}

/// anvil's parameters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Anvil {
    /// The window connection rates are counted in.
    pub anvil_rate_time_unit: Duration,
    /// How often the statistics lines are logged.
    pub anvil_status_update_time: Duration,
}

impl Anvil {
    /// Reads anvil's parameters.
    pub fn new(main: &Main) -> Anvil {
        Anvil::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Anvil {
        Anvil {
            anvil_rate_time_unit: r.duration("anvil_rate_time_unit"),
            anvil_status_update_time: r.duration("anvil_status_update_time"),
        }
    }
}

/// authd's parameters (the passwd-file is [`Common::passwd_file`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Authd {
    /// The PAM service name for system users.
    pub authd_pam_service: String,
    /// The lowest uid of a system user that may log in.
    pub authd_first_valid_uid: u32,
}

impl Authd {
    /// Reads authd's parameters.
    pub fn new(main: &Main) -> Authd {
        Authd::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Authd {
        Authd {
            authd_pam_service: r.str("authd_pam_service"),
            authd_first_valid_uid: r.u32("authd_first_valid_uid"),
        }
    }
}

/// pop3d's parameters (its TLS certificate is [`SmtpdTls`]'s, its
/// mailbox location [`Local::home_mailbox`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Pop3d {
    /// How long a session may sit between commands.
    pub pop3_idle_timeout: Duration,
    /// Connections per client address in one login process; 0: no limit.
    pub pop3_client_connection_limit: usize,
    /// Logged-in sessions per user in one login process; 0: no limit.
    pub pop3_user_connection_limit: usize,
    /// Passwords on plain connections from the network.
    pub pop3_plaintext_auth: bool,
    /// Implicit TLS (pop3s).
    pub pop3_tls_wrappermode: bool,
    /// Where the user's Maildir is, relative to the home.
    pub home_mailbox: String,
}

impl Pop3d {
    /// Reads pop3d's parameters.
    pub fn new(main: &Main) -> Pop3d {
        Pop3d::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Pop3d {
        Pop3d {
            pop3_idle_timeout: r.duration("pop3_idle_timeout"),
            pop3_client_connection_limit: r.usize("pop3_client_connection_limit"),
            pop3_user_connection_limit: r.usize("pop3_user_connection_limit"),
            pop3_plaintext_auth: r.bool("pop3_plaintext_auth"),
            pop3_tls_wrappermode: r.bool("pop3_tls_wrappermode"),
            home_mailbox: r.str("home_mailbox"),
        }
    }
}

/// imapd's parameters (its TLS certificate is [`SmtpdTls`]'s, its
/// mailbox location [`Local::home_mailbox`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Imapd {
    /// How long a session may sit between commands (IDLE restarts it).
    pub imap_idle_timeout: Duration,
    /// Connections per client address in one login process; 0: no limit.
    pub imap_client_connection_limit: usize,
    /// Logged-in sessions per user in one login process; 0: no limit.
    pub imap_user_connection_limit: usize,
    /// Passwords on plain connections from the network.
    pub imap_plaintext_auth: bool,
    /// Implicit TLS (imaps).
    pub imap_tls_wrappermode: bool,
    /// The longest command line, literals not counted.
    pub imap_max_line_length: usize,
    /// The largest APPEND literal; 0 means no limit of its own.
    pub message_size_limit: u64,
    /// Where the user's Maildir is, relative to the home.
    pub home_mailbox: String,
}

impl Imapd {
    /// Reads imapd's parameters.
    pub fn new(main: &Main) -> Imapd {
        Imapd::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Imapd {
        Imapd {
            imap_idle_timeout: r.duration("imap_idle_timeout"),
            imap_client_connection_limit: r.usize("imap_client_connection_limit"),
            imap_user_connection_limit: r.usize("imap_user_connection_limit"),
            imap_plaintext_auth: r.bool("imap_plaintext_auth"),
            imap_tls_wrappermode: r.bool("imap_tls_wrappermode"),
            imap_max_line_length: r.usize("imap_max_line_length"),
            message_size_limit: r.u64("message_size_limit"),
            home_mailbox: r.str("home_mailbox"),
        }
    }
}

/// The queue manager's parameters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Qmgr {
    /// How often the deferred queue is scanned.
    pub queue_run_delay: Duration,
    /// Shortest wait before a deferred message is retried.
    pub minimal_backoff_time: Duration,
    /// Longest wait before a deferred message is retried.
    pub maximal_backoff_time: Duration,
    /// How long a message may stay deferred before it bounces.
    pub maximal_queue_lifetime: Duration,
    /// The same for bounce messages.
    pub bounce_queue_lifetime: Duration,
    /// Messages in active/ at once (at least 1).
    pub qmgr_message_active_limit: usize,
    /// Parallel deliveries per destination (at least 1).
    pub default_destination_concurrency_limit: usize,
    /// Recipients per request to local delivery (at least 1).
    pub local_destination_recipient_limit: usize,
    /// Recipients per request to other agents (at least 1).
    pub default_destination_recipient_limit: usize,
    /// Parallel requests to local delivery (at least 1).
    pub local_destination_concurrency_limit: usize,
    /// Parallel deliveries per destination of the smtp transport.
    pub smtp_destination_concurrency_limit: usize,
    /// Recipients per request to the smtp transport.
    pub smtp_destination_recipient_limit: usize,
    /// Parallel deliveries per destination of the relay transport.
    pub relay_destination_concurrency_limit: usize,
    /// Recipients per request to the relay transport.
    pub relay_destination_recipient_limit: usize,
    /// Domains relayed to from anyone, routed to `relay_transport`.
    pub relay_domains: Vec<String>,
    /// `transport[:nexthop]` for relay_domains.
    pub relay_transport: String,
    /// Non-local mail's next hop, as written (empty: the recipient's MX).
    pub relayhost: String,
    /// `transport_maps`' table files, as given (`hash:/etc/...`).
    pub transport_maps: Vec<String>,
    /// `transport[:nexthop]` for remote domains.
    pub default_transport: String,
    /// `transport[:nexthop]` for mydestination.
    pub local_transport: String,
    /// Slow start's first window (at least 1).
    pub initial_destination_concurrency: usize,
    /// Failed windows in a row before a destination is dead (at least 1).
    pub default_destination_concurrency_failed_cohort_limit: usize,
    /// Age at which the sender is warned once; zero: never.
    pub delay_warning_time: Duration,
    /// Where relative table names are.
    pub config_directory: PathBuf,
}

impl Qmgr {
    /// Reads qmgr's parameters.
    pub fn new(main: &Main) -> Qmgr {
        Qmgr::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Qmgr {
        Qmgr {
            queue_run_delay: r.duration("queue_run_delay"),
            minimal_backoff_time: r.duration("minimal_backoff_time"),
            maximal_backoff_time: r.duration("maximal_backoff_time"),
            maximal_queue_lifetime: r.duration("maximal_queue_lifetime"),
            bounce_queue_lifetime: r.duration("bounce_queue_lifetime"),
            qmgr_message_active_limit: r.usize("qmgr_message_active_limit").max(1),
            default_destination_concurrency_limit: r
                .usize("default_destination_concurrency_limit")
                .max(1),
            local_destination_recipient_limit: r.usize("local_destination_recipient_limit").max(1),
            default_destination_recipient_limit: r
                .usize("default_destination_recipient_limit")
                .max(1),
            local_destination_concurrency_limit: r
                .usize("local_destination_concurrency_limit")
                .max(1),
            smtp_destination_concurrency_limit: r
                .usize("smtp_destination_concurrency_limit")
                .max(1),
            smtp_destination_recipient_limit: r.usize("smtp_destination_recipient_limit").max(1),
            relay_destination_concurrency_limit: r
                .usize("relay_destination_concurrency_limit")
                .max(1),
            relay_destination_recipient_limit: r.usize("relay_destination_recipient_limit").max(1),
            relay_domains: r.list("relay_domains"),
            relay_transport: r.str("relay_transport"),
            relayhost: r.str("relayhost"),
            transport_maps: r.list("transport_maps"),
            default_transport: r.str("default_transport"),
            local_transport: r.str("local_transport"),
            initial_destination_concurrency: r.usize("initial_destination_concurrency").max(1),
            default_destination_concurrency_failed_cohort_limit: r
                .usize("default_destination_concurrency_failed_cohort_limit")
                .max(1),
            delay_warning_time: r.duration("delay_warning_time"),
            config_directory: r.main.dir().to_owned(),
        }
    }
}

/// Where `|command` or `/file` destinations are allowed
/// (`allow_mail_to_commands`, `allow_mail_to_files`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allow {
    /// In the aliases file.
    pub alias: bool,
    /// In `.forward` files.
    pub forward: bool,
    /// In `:include:` files.
    pub include: bool,
}

impl Allow {
    fn from_list(items: &[String]) -> Allow {
        let has = |what: &str| items.iter().any(|x| x.eq_ignore_ascii_case(what));
        Allow { alias: has("alias"), forward: has("forward"), include: has("include") }
    }
}

/// Local delivery's parameters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Local {
    /// Relative to the home directory; a trailing `/` means Maildir.
    pub home_mailbox: String,
    /// The mbox spool directory.
    pub mail_spool_directory: PathBuf,
    /// Unexpanded: the shell sees `$HOME`, `$EXTENSION`, ...
    pub mailbox_command: String,
    /// Unexpanded: local delivery expands `$home`, `$user`, ... per
    /// recipient. Empty: no `.forward` files.
    pub forward_path: String,
    /// Bytes; 0 means no limit.
    pub mailbox_size_limit: u64,
    /// Where `|command` destinations are allowed.
    pub allow_mail_to_commands: Allow,
    /// Where `/file` destinations are allowed.
    pub allow_mail_to_files: Allow,
    /// The account used instead of root for commands and files.
    pub default_privs: String,
    /// How long a command may run.
    pub command_time_limit: Duration,
}

impl Local {
    /// Reads local delivery's parameters.
    pub fn new(main: &Main) -> Local {
        Local::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Local {
        Local {
            home_mailbox: r.str("home_mailbox"),
            mail_spool_directory: r.path("mail_spool_directory"),
            mailbox_command: r.raw_str("mailbox_command"),
            forward_path: r.raw_str("forward_path"),
            mailbox_size_limit: r.u64("mailbox_size_limit"),
            allow_mail_to_commands: Allow::from_list(&r.list("allow_mail_to_commands")),
            allow_mail_to_files: Allow::from_list(&r.list("allow_mail_to_files")),
            default_privs: r.str("default_privs"),
            command_time_limit: r.duration("command_time_limit"),
        }
    }
}

/// master's parameters besides [`Common`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Master {
    /// `all`, `loopback-only` or addresses (checked at load).
    pub inet_interfaces: Vec<String>,
}

impl Master {
    /// Reads master's parameters.
    pub fn new(main: &Main) -> Master {
        Master::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Master {
        Master { inet_interfaces: r.list("inet_interfaces") }
    }
}

/// `sendmail`'s own parameters besides [`Common`] (its `-bs` mode uses
/// [`Smtpd`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Sendmail {
    /// The alias files `newaliases` checks.
    pub alias_database: Vec<PathBuf>,
}

impl Sendmail {
    /// Reads sendmail's parameters.
    pub fn new(main: &Main) -> Sendmail {
        Sendmail::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Sendmail {
        Sendmail { alias_database: r.paths("alias_database") }
    }
}

/// The IMAP store's parameters (mail-maildir's `Store`), which imapd
/// reads beside its own.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImapStore {
    /// SPECIAL-USE folders as `Name=\Attribute` pairs, already checked
    /// at load; imapd builds `mail_maildir::SpecialUseMap::parse` from it.
    pub imap_special_use: String,
}

impl ImapStore {
    /// Reads the IMAP store's parameters.
    pub fn new(main: &Main) -> ImapStore {
        ImapStore::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> ImapStore {
        ImapStore { imap_special_use: r.raw_str("imap_special_use") }
    }
}

/// Where log lines go (issue 11, ops), beside `Common`'s `syslog_name`
/// and `maillog_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogDestination {
    /// RFC 3164 datagrams to `syslog_socket`.
    Syslog,
    /// The systemd journal's native socket.
    Journald,
    /// The process's standard error.
    Stderr,
}

/// The syslog facility names `syslog_facility` accepts, in code order
/// where codes are consecutive (see [`facility_code`]).
pub const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// The RFC 3164 facility code of a name from [`FACILITIES`] (local0 is 16).
pub fn facility_code(name: &str) -> Option<u8> {
    let i = FACILITIES.iter().position(|f| f.eq_ignore_ascii_case(name.trim()))?;
    let i = u8::try_from(i).ok()?;
    Some(if i >= 12 { i + 4 } else { i })
}

/// The logger's parameters (`mail_daemon::log`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Logging {
    /// Where lines go when `maillog_file` is empty.
    pub maillog_destination: LogDestination,
    /// The facility code (mail = 2).
    pub syslog_facility: u8,
    /// The syslog daemon's datagram socket.
    pub syslog_socket: PathBuf,
    /// master's Prometheus endpoint; `None`: off, and the daemons count
    /// nothing.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Logging {
    /// Reads the logging parameters.
    pub fn new(main: &Main) -> Logging {
        Logging::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Logging {
        // Both words were checked at load; the fallbacks are the defaults.
        let maillog_destination =
            match r.str("maillog_destination").trim().to_ascii_lowercase().as_str() {
                "journald" => LogDestination::Journald,
                "stderr" => LogDestination::Stderr,
                _ => LogDestination::Syslog,
            };
        Logging {
            maillog_destination,
            syslog_facility: facility_code(&r.str("syslog_facility")).unwrap_or(2),
            syslog_socket: r.path("syslog_socket"),
            // Checked at load: anything else is empty.
            metrics_listen: r.str("metrics_listen").trim().parse().ok(),
        }
    }
}

/// DNS: the resolver every daemon that looks names up shares
/// (mail-dns), and smtpd's client name lookup.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dns {
    /// No lookups at all.
    pub disable_dns_lookups: bool,
    /// The nameservers; empty means those of `/etc/resolv.conf`.
    pub dns_resolver_addresses: Vec<std::net::SocketAddr>,
    /// One query to one nameserver.
    pub dns_resolver_timeout: Duration,
    /// Queries per lookup.
    pub dns_resolver_attempts: usize,
    /// smtpd looks its clients' names up.
    pub smtpd_peername_lookup: bool,
    /// The longest one client's name lookup may take.
    pub smtpd_peername_lookup_timeout: Duration,
}

impl Dns {
    /// Reads the DNS parameters.
    pub fn new(main: &Main) -> Dns {
        Dns::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> Dns {
        Dns {
            disable_dns_lookups: r.bool("disable_dns_lookups"),
            // Checked element by element at load, so nothing is dropped.
            dns_resolver_addresses: r
                .list("dns_resolver_addresses")
                .iter()
                .filter_map(|a| nameserver_address(a))
                .collect(),
            dns_resolver_timeout: r.duration("dns_resolver_timeout"),
            dns_resolver_attempts: r.usize("dns_resolver_attempts"),
            smtpd_peername_lookup: r.bool("smtpd_peername_lookup"),
            smtpd_peername_lookup_timeout: r.duration("smtpd_peername_lookup_timeout"),
        }
    }
}

/// `inet_protocols`: which IP versions the SMTP client connects over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetProtocols {
    /// `all` or `ipv4`.
    pub ipv4: bool,
    /// `all` or `ipv6`.
    pub ipv6: bool,
}

/// `smtp_address_preference`: which family of a host's addresses the
/// SMTP client tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPreference {
    /// The order DNS gave.
    Any,
    /// IPv4 first.
    Ipv4,
    /// IPv6 first.
    Ipv6,
}

/// The SMTP client's parameters (crates/smtp-client).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpClient {
    /// The EHLO/HELO name.
    pub smtp_helo_name: String,
    /// Our own name, for "loops back to myself".
    pub myhostname: String,
    /// `none`, `may`, `encrypt`, `verify`, `secure` (checked at load).
    pub smtp_tls_security_level: String,
    /// `smtp_tls_CAfile`: trust anchors for verify/secure; `None`: the
    /// system's.
    pub smtp_tls_cafile: Option<PathBuf>,
    /// The port for next hops that name none.
    pub smtp_tcp_port: u16,
    /// The IP versions to connect over.
    pub inet_protocols: InetProtocols,
    /// Which family first.
    pub smtp_address_preference: AddressPreference,
    /// Tried after every host of the next hop failed temporarily.
    pub smtp_fallback_relay: Vec<String>,
    /// The most addresses tried per delivery.
    pub smtp_mx_address_limit: usize,
    /// AUTH to servers that offer it, with a password from the maps.
    pub smtp_sasl_auth_enable: bool,
    /// user:password tables.
    pub smtp_sasl_password_maps: Vec<PathBuf>,
    /// TCP connect.
    pub smtp_connect_timeout: Duration,
    /// Greeting and EHLO/HELO.
    pub smtp_helo_timeout: Duration,
    /// STARTTLS and the handshake.
    pub smtp_starttls_timeout: Duration,
    /// MAIL FROM, AUTH, RSET.
    pub smtp_mail_timeout: Duration,
    /// Each RCPT TO.
    pub smtp_rcpt_timeout: Duration,
    /// DATA.
    pub smtp_data_init_timeout: Duration,
    /// Each chunk of content sent.
    pub smtp_data_xfer_timeout: Duration,
    /// The reply to the final dot.
    pub smtp_data_done_timeout: Duration,
    /// QUIT.
    pub smtp_quit_timeout: Duration,
    /// How long an idle session is kept.
    pub smtp_connection_cache_time_limit: Duration,
    /// Messages per session; 0: no limit.
    pub smtp_connection_reuse_count_limit: u64,
}

impl SmtpClient {
    /// Reads the SMTP client's parameters.
    pub fn new(main: &Main) -> SmtpClient {
        SmtpClient::read(&Reader::new(main))
    }

    fn read(r: &Reader<'_>) -> SmtpClient {
        let protocols: Vec<String> =
            r.list("inet_protocols").iter().map(|p| p.to_ascii_lowercase()).collect();
        let all = protocols.is_empty() || protocols.iter().any(|p| p == "all");
        let preference = match r.str("smtp_address_preference").trim().to_ascii_lowercase().as_str()
        {
            "ipv4" => AddressPreference::Ipv4,
            "ipv6" => AddressPreference::Ipv6,
            _ => AddressPreference::Any,
        };
        SmtpClient {
            smtp_helo_name: r.str("smtp_helo_name"),
            myhostname: r.str("myhostname"),
            smtp_tls_security_level: r.str("smtp_tls_security_level"),
            smtp_tls_cafile: r.opt_path("smtp_tls_CAfile"),
            smtp_tcp_port: u16::try_from(r.u64("smtp_tcp_port")).unwrap_or(25),
            inet_protocols: InetProtocols {
                ipv4: all || protocols.iter().any(|p| p == "ipv4"),
                ipv6: all || protocols.iter().any(|p| p == "ipv6"),
            },
            smtp_address_preference: preference,
            smtp_fallback_relay: r.list("smtp_fallback_relay"),
            smtp_mx_address_limit: r.usize("smtp_mx_address_limit"),
            smtp_sasl_auth_enable: r.bool("smtp_sasl_auth_enable"),
            smtp_sasl_password_maps: r.paths("smtp_sasl_password_maps"),
            smtp_connect_timeout: r.duration("smtp_connect_timeout"),
            smtp_helo_timeout: r.duration("smtp_helo_timeout"),
            smtp_starttls_timeout: r.duration("smtp_starttls_timeout"),
            smtp_mail_timeout: r.duration("smtp_mail_timeout"),
            smtp_rcpt_timeout: r.duration("smtp_rcpt_timeout"),
            smtp_data_init_timeout: r.duration("smtp_data_init_timeout"),
            smtp_data_xfer_timeout: r.duration("smtp_data_xfer_timeout"),
            smtp_data_done_timeout: r.duration("smtp_data_done_timeout"),
            smtp_quit_timeout: r.duration("smtp_quit_timeout"),
            smtp_connection_cache_time_limit: r.duration("smtp_connection_cache_time_limit"),
            smtp_connection_reuse_count_limit: r.u64("smtp_connection_reuse_count_limit"),
        }
    }
}

/// A `dns_resolver_addresses` element: `IP` (port 53), `IPv4:port` or
/// `[IPv6]:port`; a bare IPv6 address has no port.
pub fn nameserver_address(s: &str) -> Option<std::net::SocketAddr> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 53));
    }
    if let Some(ip) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Some(std::net::SocketAddr::new(ip.parse().ok()?, 53));
    }
    s.parse().ok().filter(|a: &std::net::SocketAddr| a.port() != 0)
}

/// Every parameter some typed struct reads.
#[cfg(test)]
fn typed_names(main: &Main) -> BTreeSet<&'static str> {
    let r = Reader::new(main);
    let _ = Common::read(&r);
    let _ = Smtpd::read(&r);
    let _ = SmtpdTls::read(&r);
    let _ = Anvil::read(&r);
    let _ = Authd::read(&r);
    let _ = ImapStore::read(&r);
    let _ = Pop3d::read(&r);
    let _ = Imapd::read(&r);
    let _ = Qmgr::read(&r);
    let _ = Local::read(&r);
    let _ = Master::read(&r);
    let _ = Sendmail::read(&r);
    let _ = Dns::read(&r);
    let _ = SmtpClient::read(&r);
    let _ = Logging::read(&r);
    r.seen.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::PARAMS;
    use std::path::Path;

    fn load(text: &str) -> Main {
        Main::from_str(Path::new("/etc/postern/main.toml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The check-postconf-undocumented rule for Postern: every declared
    /// parameter is read by a typed struct, or its doc says that it is
    /// not implemented yet or accepted only for compatibility; and a
    /// parameter that is read does not claim otherwise.
    #[test]
    fn every_parameter_has_a_typed_home_or_is_marked() {
        let read = typed_names(&load(""));
        let mut problems = Vec::new();
        for p in PARAMS {
            let marked =
                p.doc.starts_with(UNIMPLEMENTED_PREFIX) || p.doc.starts_with(COMPAT_PREFIX);
            match (read.contains(p.name), marked) {
                (false, false) => problems.push(format!(
                    "{}: no typed settings struct reads it; add it to one in settings.rs, or \
                     start its doc in params.rs with \"{UNIMPLEMENTED_PREFIX} ...\"",
                    p.name
                )),
                (true, true) => problems.push(format!(
                    "{}: settings.rs reads it but its doc says it is not implemented or ignored",
                    p.name
                )),
                _ => {}
            }
        }
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }

    #[test]
    fn imap_special_use_is_checked_at_load() {
        let d = ImapStore::new(&load(""));
        assert!(d.imap_special_use.starts_with("Sent=\\Sent, Enviados=\\Sent,"));
        assert!(
            d.imap_special_use.contains("Lixeira=\\Trash")
                && d.imap_special_use.contains("Spam=\\Junk")
        );
        let d = ImapStore::new(&load("imap_special_use = 'Saída=\\Sent, Caixa $x=\\Archive'\n"));
        assert_eq!(d.imap_special_use, "Saída=\\Sent, Caixa $x=\\Archive", "not expanded");
        let text = "\n\nimap_special_use = 'Enviados=\\Outbox'\n";
        let err =
            Main::from_str(Path::new("/etc/postern/main.toml"), text).unwrap_err().to_string();
        assert!(err.contains("main.toml:3") && err.contains("imap_special_use"), "{err}");
        assert!(err.contains("not a SPECIAL-USE attribute"), "{err}");
    }

    #[test]
    fn logging_parameters() {
        let l = Logging::new(&load(""));
        assert_eq!(l.maillog_destination, LogDestination::Syslog, "Postfix's default");
        assert_eq!((l.syslog_facility, l.syslog_socket.as_path()), (2, Path::new("/dev/log")));
        let text = "maillog_destination = \"Journald\"\nsyslog_facility = \"local3\"\n";
        let l = Logging::new(&load(text));
        assert_eq!((l.maillog_destination, l.syslog_facility), (LogDestination::Journald, 19));
        assert_eq!(facility_code("authpriv"), Some(10));
        assert_eq!(facility_code("local7"), Some(23));
        assert_eq!(l.metrics_listen, None, "off by default");
        let l = Logging::new(&load("metrics_listen = \"127.0.0.1:9154\"\n"));
        assert_eq!(l.metrics_listen, Some("127.0.0.1:9154".parse().unwrap()));
        for bad in [
            "maillog_destination = \"file\"",
            "syslog_facility = \"local8\"",
            "metrics_listen = \"localhost\"",
        ] {
            let err = Main::from_str(Path::new("/etc/postern/main.toml"), bad).unwrap_err();
            assert!(err.to_string().contains("expected "), "{err}");
        }
    }

    #[test]
    fn dns_parameters() {
        let d = Dns::new(&load(""));
        assert!(!d.disable_dns_lookups);
        assert!(d.dns_resolver_addresses.is_empty());
        assert_eq!(d.dns_resolver_timeout, Duration::from_secs(5));
        assert_eq!(d.dns_resolver_attempts, 2);
        assert!(d.smtpd_peername_lookup);
        assert_eq!(d.smtpd_peername_lookup_timeout, Duration::from_secs(10));
        let d = Dns::new(&load(
            "disable_dns_lookups = true\nsmtpd_peername_lookup = \"no\"\n\
             dns_resolver_addresses = \"127.0.0.1, 127.0.0.2:5353 [::1]:54 ::2 [::3]\"\n",
        ));
        assert!(d.disable_dns_lookups && !d.smtpd_peername_lookup);
        let got: Vec<String> = d.dns_resolver_addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["127.0.0.1:53", "127.0.0.2:5353", "[::1]:54", "[::2]:53", "[::3]:53"]);
        for bad in ["ns.example", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "1.2.3"] {
            let text = format!("dns_resolver_addresses = [\"{bad}\"]\n");
            let err = Main::from_str(Path::new("/etc/postern/main.toml"), &text).unwrap_err();
            assert!(err.to_string().contains("dns_resolver_addresses"), "{bad}: {err}");
        }
    }

    #[test]
    fn smtp_client_parameters() {
        let c = SmtpClient::new(&load("myhostname = \"mx.example\""));
        assert_eq!(c.smtp_helo_name, "mx.example");
        assert_eq!(c.smtp_tcp_port, 25);
        assert!(c.inet_protocols.ipv4 && c.inet_protocols.ipv6);
        assert_eq!(c.smtp_address_preference, AddressPreference::Any);
        assert_eq!(c.smtp_connect_timeout, Duration::from_secs(30));
        assert_eq!(c.smtp_data_done_timeout, Duration::from_secs(600));
        assert_eq!(c.smtp_connection_cache_time_limit, Duration::from_secs(2));
        let c = SmtpClient::new(&load(
            "inet_protocols = \"ipv4\"\nsmtp_address_preference = \"IPv6\"\nsmtp_tcp_port = 2525\n",
        ));
        assert!(c.inet_protocols.ipv4 && !c.inet_protocols.ipv6);
        assert_eq!(c.smtp_address_preference, AddressPreference::Ipv6);
        assert_eq!(c.smtp_tcp_port, 2525);
        let bad = Main::from_str(
            Path::new("/etc/postern/main.toml"),
            "smtp_address_preference = \"ipv5\"\n",
        )
        .unwrap_err();
        assert!(bad.to_string().contains("smtp_address_preference"), "{bad}");
    }

    #[test]
    fn the_unimplemented_list() {
        let mut names: Vec<_> =
            PARAMS.iter().filter(|p| is_unimplemented(p.name)).map(|p| p.name).collect();
        names.sort_unstable();
        assert_eq!(names, ["append_dot_mydomain", "strict_rfc821_envelopes"]);
        assert!(!is_unimplemented("myhostname"));
        assert!(!is_unimplemented("nosuch"));
    }

    #[test]
    fn setting_an_unimplemented_parameter_is_warned_about() {
        let m = load("relayhost = \"\"\nmyhostname = \"h.example\"\n");
        assert!(unimplemented_warnings(&m).is_empty(), "the default value is harmless");
        let m = load(
            "myhostname = \"h.example\"\nappend_dot_mydomain = true\nbiff = true\nstrict_rfc821_envelopes = true\n",
        );
        assert_eq!(
            unimplemented_warnings(&m),
            [
                ("append_dot_mydomain", "/etc/postern/main.toml:2: parameter \"append_dot_mydomain\": not yet implemented; the setting has no effect".to_owned()),
                ("strict_rfc821_envelopes", "/etc/postern/main.toml:4: parameter \"strict_rfc821_envelopes\": not yet implemented; the setting has no effect".to_owned()),
            ]
        );
    }

    #[test]
    fn defaults_are_postfix_defaults() {
        let m = load("myhostname = \"mail.example.com\"");
        let c = Common::new(&m);
        assert_eq!(c.queue_directory, PathBuf::from("/var/spool/postern"));
        assert_eq!(c.myorigin, "mail.example.com");
        assert_eq!(c.mydomain, "example.com");
        assert!(c.mydestination.contains("mail.example.com"));
        assert!(c.mydestination.contains("localhost.example.com"));
        assert!(c.mydestination.contains("localhost"));
        assert!(!c.mydestination.contains("example.com"));
        assert_eq!(c.alias_maps, [PathBuf::from("/etc/aliases")]);
        assert_eq!(c.passwd_file, None);
        assert_eq!(c.maillog_file, None);
        assert_eq!(c.message_size_limit, 10_240_000);
        assert_eq!(c.header_size_limit, 102_400);
        let s = Smtpd::new(&m);
        assert_eq!(s.smtpd_banner, "mail.example.com ESMTP Postern");
        assert_eq!(s.smtpd_timeout, Duration::from_secs(300));
        assert_eq!(s.smtpd_recipient_limit, 1000);
        assert!(s.mynetworks.contains("127.0.0.1".parse().unwrap()));
        assert!(!s.mynetworks.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(s.local_recipient_maps, ["proxy:unix:passwd.byname", "hash:/etc/aliases"]);
        assert_eq!(c.rewrite.canonical_classes, CanonicalClasses::ALL);
        let sender = CanonicalClasses {
            envelope_sender: true,
            header_sender: true,
            ..CanonicalClasses::default()
        };
        assert_eq!(c.rewrite.sender_canonical_classes, sender);
        let rcpt = CanonicalClasses {
            envelope_recipient: true,
            header_recipient: true,
            ..CanonicalClasses::default()
        };
        assert_eq!(c.rewrite.recipient_canonical_classes, rcpt);
        let q = Qmgr::new(&m);
        assert_eq!(q.maximal_queue_lifetime, Duration::from_secs(5 * 86_400));
        assert_eq!(q.default_destination_concurrency_limit, 20);
        let l = Local::new(&m);
        assert_eq!(l.allow_mail_to_commands, Allow { alias: true, forward: true, include: false });
        assert_eq!(l.command_time_limit, Duration::from_secs(1000));
        assert_eq!(Master::new(&m).inet_interfaces, ["all"]);
        assert_eq!(Sendmail::new(&m).alias_database, [PathBuf::from("/etc/aliases")]);
    }

    #[test]
    fn smtpd_tls_defaults_and_values() {
        let t = SmtpdTls::new(&load(""));
        assert_eq!(t.smtpd_tls_security_level, TlsLevel::None);
        assert_eq!(t.smtpd_tls_cert_file, None);
        assert_eq!(t.smtpd_tls_key_file, None);
        assert!(t.smtpd_tls_chain_files.is_empty());
        assert_eq!(t.smtpd_tls_protocols, TlsProtocols { tls12: true, tls13: true });
        assert!(!t.smtpd_tls_wrappermode);
        let t = SmtpdTls::new(&load(
            r#"
            smtpd_tls_cert_file = "tls/cert.pem"
            smtpd_tls_security_level = "encrypt"
            smtpd_tls_mandatory_protocols = "TLSv1.3"
            smtpd_tls_chain_files = "rsa.pem, /etc/ec.pem"
            "#,
        ));
        assert_eq!(t.smtpd_tls_security_level, TlsLevel::Encrypt);
        assert_eq!(t.smtpd_tls_cert_file, Some(PathBuf::from("/etc/postern/tls/cert.pem")));
        assert_eq!(t.smtpd_tls_key_file, t.smtpd_tls_cert_file, "defaults to the cert file");
        assert_eq!(
            t.smtpd_tls_chain_files,
            [PathBuf::from("/etc/postern/rsa.pem"), PathBuf::from("/etc/ec.pem")]
        );
        assert_eq!(t.smtpd_tls_mandatory_protocols, TlsProtocols { tls12: false, tls13: true });
    }

    #[test]
    fn tls_protocols_follow_postfix_syntax_and_refuse_old_versions() {
        let parse = |s: &str| TlsProtocols::parse(&crate::value::split_list(s));
        let both = TlsProtocols { tls12: true, tls13: true };
        assert_eq!(parse(""), Ok(both));
        assert_eq!(parse(">=TLSv1.2"), Ok(both));
        assert_eq!(parse(">= TLSv1.2"), Ok(both));
        assert_eq!(parse("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"), Ok(both));
        assert_eq!(
            parse("!sslv2 !sslv3 !tlsv1 !tlsv1.1 !TLSv1.3"),
            Ok(TlsProtocols { tls12: true, tls13: false })
        );
        assert_eq!(parse("TLSv1.3"), Ok(TlsProtocols { tls12: false, tls13: true }));
        assert_eq!(parse(">=TLSv1.2 <=TLSv1.2"), Ok(TlsProtocols { tls12: true, tls13: false }));
        let e = parse("!SSLv2, !SSLv3").unwrap_err();
        assert!(e.starts_with("enables TLSv1, TLSv1.1, older than TLSv1.2"), "{e}");
        assert!(e.contains(">=TLSv1.2"), "{e}");
        assert!(parse(">=TLSv1").unwrap_err().contains("enables TLSv1, TLSv1.1"));
        assert!(parse("TLSv1.2 TLSv1.1").is_err());
        assert!(parse("TLSv1.4").unwrap_err().contains("unknown TLS protocol \"TLSv1.4\""));
        assert!(parse(">=").unwrap_err().contains("needs a protocol name"));
        assert!(parse(">=TLSv1.3 <=TLSv1.2").unwrap_err().contains("enables no protocol"));
        // At load, with the file, line and parameter.
        let e = Main::from_str(
            Path::new("/etc/postern/main.toml"),
            "myhostname = \"h.example\"\nsmtpd_tls_protocols = \"!SSLv2, !SSLv3\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("main.toml:2") && e.contains("smtpd_tls_protocols"), "{e}");
        let e = Main::from_str(
            Path::new("/etc/postern/main.toml"),
            "smtpd_tls_security_level = \"verify\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("smtpd_tls_security_level")
                && e.contains("expected one of none, may, encrypt"),
            "{e}"
        );
    }

    #[test]
    fn explicit_values_are_converted() {
        let m = load(
            r#"
            myhostname = "mx.example.org"
            mydestination = ["$myhostname", "Example.ORG."]
            passwd_file = "users"
            maillog_file = "/var/log/postern.log"
            alias_maps = ["hash:aliases", "/etc/more"]
            mailbox_command = "/usr/bin/procmail -a $EXTENSION"
            allow_mail_to_files = "include"
            smtpd_timeout = "1m"
            qmgr_message_active_limit = 3
            "#,
        );
        let c = Common::new(&m);
        assert!(c.mydestination.contains("example.org"));
        assert!(c.mydestination.contains("MX.example.org."));
        assert_eq!(c.passwd_file, Some(PathBuf::from("/etc/postern/users")));
        assert_eq!(c.maillog_file, Some(PathBuf::from("/var/log/postern.log")));
        assert_eq!(
            c.alias_maps,
            [PathBuf::from("/etc/postern/aliases"), PathBuf::from("/etc/more")]
        );
        let l = Local::new(&m);
        assert_eq!(l.mailbox_command, "/usr/bin/procmail -a $EXTENSION");
        assert_eq!(l.allow_mail_to_files, Allow { alias: false, forward: false, include: true });
        assert_eq!(Smtpd::new(&m).smtpd_timeout, Duration::from_secs(60));
        assert_eq!(Qmgr::new(&m).qmgr_message_active_limit, 3);
    }
}
