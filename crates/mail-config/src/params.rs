//! The parameter table: every `main.toml` parameter is declared exactly once
//! here, with its kind, its default in Postfix's text form and a one-line doc
//! (ripgrep's `flags/defs.rs`, Postfix's `mail_params.h`).
//!
//! Names and meanings are Postfix's so that `postconf -e` and operators'
//! habits carry over. `postconf -d` prints this table; the generated
//! configuration reference is built from it.

/// The unit a bare number means for a [`Kind::Duration`] parameter, as in
/// Postfix (`maximal_queue_lifetime = 5` is five days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// `s`
    Seconds,
    /// `m`
    Minutes,
    /// `h`
    Hours,
    /// `d`
    Days,
    /// `w`
    Weeks,
}

impl TimeUnit {
    /// The number of seconds in one unit.
    pub fn seconds(self) -> u64 {
        match self {
            TimeUnit::Seconds => 1,
            TimeUnit::Minutes => 60,
            TimeUnit::Hours => 3600,
            TimeUnit::Days => 86_400,
            TimeUnit::Weeks => 604_800,
        }
    }

    /// The unit for a Postfix suffix letter (`s m h d w`, case-insensitive).
    pub fn from_suffix(c: char) -> Option<TimeUnit> {
        match c.to_ascii_lowercase() {
            's' => Some(TimeUnit::Seconds),
            'm' => Some(TimeUnit::Minutes),
            'h' => Some(TimeUnit::Hours),
            'd' => Some(TimeUnit::Days),
            'w' => Some(TimeUnit::Weeks),
            _ => None,
        }
    }
}

/// What values a parameter takes, and how `main.toml` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string; `$name` references are expanded at lookup.
    Str,
    /// A string that mail-config does not expand, because the daemon that
    /// uses it expands its own variables (`mailbox_command`'s `$HOME`,
    /// Postfix's "raw" parameters).
    RawStr,
    /// TOML `true`/`false`, or the strings `yes`/`no`.
    Bool,
    /// An unsigned integer within `min..=max`.
    Int {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A size in bytes (an integer; 0 often means "no limit").
    Size,
    /// A time: a TOML integer is seconds; a string is a number with an
    /// optional Postfix unit (`300s`, `5m`, `1h`, `1d`, `1w`), and a bare
    /// number in a string means `unit`.
    Duration {
        /// What a bare number in a string means.
        unit: TimeUnit,
    },
    /// A TOML array of strings, or one string split on commas and/or
    /// whitespace as Postfix does. Elements are expanded at lookup.
    List,
    /// Like [`Kind::List`], but each element names a lookup table file,
    /// optionally with Postfix's type prefix (`hash:/etc/aliases`); the
    /// prefix is accepted and stripped, because Postern reads the plain file.
    MapList,
    /// A file or directory; expanded, and relative paths are relative to the
    /// configuration directory. Empty means "not set".
    Path,
}

/// One declared parameter.
#[derive(Debug)]
pub struct Param {
    /// The Postfix name, also the `main.toml` key.
    pub name: &'static str,
    /// What values it takes.
    pub kind: Kind,
    /// The default in Postfix's text form (for example
    /// `"$myhostname ESMTP $mail_name"`). For `myhostname` and `mydomain` the
    /// real default is computed from the host name; see [`crate::Main`].
    pub default: &'static str,
    /// One line for `postconf -d` readers and the configuration reference.
    /// A parameter that is declared but has no effect yet starts with
    /// "Not yet implemented" ([`crate::settings::UNIMPLEMENTED_PREFIX`]);
    /// one kept only so that Postfix configurations load starts with
    /// "Accepted for compatibility".
    pub doc: &'static str,
}

const fn p(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Param {
    Param { name, kind, default, doc }
}

const INT_MAX: u64 = i32::MAX as u64;
const fn int(min: u64) -> Kind {
    Kind::Int { min, max: INT_MAX }
}
const SECONDS: Kind = Kind::Duration { unit: TimeUnit::Seconds };
const HOURS: Kind = Kind::Duration { unit: TimeUnit::Hours };
const DAYS: Kind = Kind::Duration { unit: TimeUnit::Days };

/// Every parameter Postern knows, grouped by the daemon that reads it.
/// One line per parameter, so that one grep finds a declaration.
#[rustfmt::skip]
pub static PARAMS: &[Param] = &[
    // Common.
    p("queue_directory", Kind::Path, "/var/spool/postern", "Where the mail queue, the private/ and public/ sockets and the master pid file live."),
    p("daemon_directory", Kind::Path, "/usr/lib/postern", "Where master finds the daemon programs named in master.toml."),
    p("command_directory", Kind::Path, "/usr/sbin", "Where the operator commands (postconf, postqueue, ...) are installed; sendmail runs $command_directory/postdrop when it may not write maildrop/ itself."),
    p("mail_owner", Kind::Str, "postern", "The unprivileged user that owns the queue and runs the network-facing daemons."),
    p("setgid_group", Kind::Str, "postdrop", "The group of maildrop/ (mode 1730 when master runs as root and the group exists; else 1733) and of the setgid postdrop helper, through which sendmail drops mail without other privileges."),
    p("mail_name", Kind::Str, "Postern", "The mail system name, used in the SMTP banner and in bounce messages."),
    p("myhostname", Kind::Str, "", "This machine's fully qualified domain name (default: the host name, with .localdomain appended if it has no dot)."),
    p("mydomain", Kind::Str, "", "This machine's domain (default: $myhostname minus its first label, or localdomain)."),
    p("myorigin", Kind::Str, "$myhostname", "The domain appended to unqualified sender addresses; a value starting with / names a file whose first line is used (for example /etc/mailname)."),
    p("mydestination", Kind::List, "$myhostname, localhost.$mydomain, localhost", "The domains this machine delivers locally."),
    p("mynetworks", Kind::List, "127.0.0.0/8, [::1]/128", "The client networks trusted to relay through this server (address/prefix entries)."),
    p("inet_interfaces", Kind::List, "all", "The addresses the inet services listen on: all, loopback-only, or a list of addresses."),
    p("inet_protocols", Kind::List, "all", "The IP versions the SMTP client connects over (all, ipv4, ipv6); listeners follow inet_interfaces only."),
    p("syslog_name", Kind::Str, "postern", "The prefix of every log line (postern/smtpd[PID]: ...)."),
    p("maillog_file", Kind::Path, "", "A file every process appends its log lines to; when set it replaces maillog_destination, as setting it replaces syslog in Postfix."),
    p("append_at_myorigin", Kind::Bool, "yes", "Append @$myorigin to addresses that have no domain."),
    p("append_dot_mydomain", Kind::Bool, "no", "Not yet implemented (domains are left as written): append .$mydomain to domains that have no dot."),
    p("recipient_delimiter", Kind::Str, "", "The characters that separate a user name from an address extension (user+ext); empty disables extensions."),
    p("alias_maps", Kind::MapList, "hash:/etc/aliases", "The alias files used by local delivery (a hash: or lmdb: prefix is accepted and ignored)."),
    p("alias_database", Kind::MapList, "$alias_maps", "The alias files that newaliases rebuilds."),
    p("passwd_file", Kind::Path, "", "A Dovecot-style passwd-file of virtual users; empty means the system users of the passwd database."),
    // smtpd.
    p("smtpd_banner", Kind::Str, "$myhostname ESMTP $mail_name", "The text after 220 in the SMTP greeting."),
    p("smtpd_timeout", SECONDS, "300s", "How long smtpd waits for a client command or data before hanging up."),
    p("smtpd_recipient_limit", int(1), "1000", "The most recipients smtpd accepts in one message."),
    p("smtpd_hard_error_limit", int(1), "20", "The number of client errors after which smtpd disconnects."),
    p("smtpd_soft_error_limit", int(1), "10", "The number of client errors after which smtpd delays each reply."),
    p("smtpd_client_connection_count_limit", int(0), "50", "The most simultaneous connections one client address may have, counted by anvil across every smtpd; 0 disables the limit."),
    p("smtpd_client_connection_rate_limit", int(0), "0", "The most connections one client address may make per anvil_rate_time_unit, counted by anvil across every smtpd; 0 disables the limit."),
    p("smtpd_process_connection_limit", int(1), "256", "The most simultaneous connections one smtpd process serves; more are answered 421 4.7.0 and closed. Postfix has no such parameter because each of its smtpd processes serves one client; a Postern smtpd serves many, so this bounds its memory and descriptors (total = this x maxproc)."),
    p("smtpd_session_deadline", SECONDS, "3600s", "The longest an SMTP session may last, however busy (Postern's own; Postfix bounds only each read); then 421 4.4.2 and disconnect. 0 disables it."),
    p("smtpd_data_deadline", SECONDS, "1800s", "The longest one DATA transfer may take (Postern's own, in place of Postfix's smtpd_min_data_rate); then 421 4.4.2 and disconnect, nothing queued. 0 disables it."),
    p("smtpd_junk_command_limit", int(0), "100", "The number of junk commands (HELO, EHLO, RSET, NOOP, VRFY, ETRN) a client may send before each further one counts as an error towards smtpd_hard_error_limit, as in Postfix."),
    p("smtpd_helo_required", Kind::Bool, "no", "Require HELO or EHLO before MAIL FROM."),
    p("disable_vrfy_command", Kind::Bool, "yes", "Reject the VRFY command (it lets clients probe for user names). Postern's default is yes, where Postfix's is no: for privacy, VRFY is off unless turned on."),
    p("message_size_limit", Kind::Size, "10240000", "The largest message accepted, in bytes, headers included; 0 means no limit."),
    p("header_size_limit", Kind::Size, "102400", "The largest header block a message may have; a larger one is refused (552 5.3.4)."),
    p("line_length_limit", Kind::Int { min: 512, max: INT_MAX }, "2048", "Accepted for compatibility with main.cf; Postern keeps long message lines whole (message_size_limit bounds the total)."),
    p("strict_rfc821_envelopes", Kind::Bool, "no", "Not yet implemented (smtpd always accepts addresses without <>): require MAIL FROM and RCPT TO addresses in <>, as RFC 821 demands."),
    p("queue_minfree", Kind::Size, "0", "The free space the queue file system must keep before smtpd accepts mail; 0 means 1.5 x message_size_limit."),
    // smtpd SASL (authd checks the passwords).
    p("smtpd_sasl_auth_enable", Kind::Bool, "no", "Offer SMTP AUTH (PLAIN, LOGIN), checked by the authd service; the submission and smtps services turn it on with an override."),
    p("smtpd_starttls_timeout", SECONDS, "300s", "The longest a TLS handshake (after STARTTLS, or at connect on smtps) may take; then the connection is closed."),
    // smtpd access policy and cleanup address rewriting (issue 7, policy).
    p("smtpd_client_restrictions", Kind::List, "", "Restrictions applied to the client (with smtpd_delay_reject = yes, evaluated at RCPT TO, as Postfix does)."),
    p("smtpd_helo_restrictions", Kind::List, "", "Restrictions applied to the HELO/EHLO name (evaluated at RCPT TO)."),
    p("smtpd_sender_restrictions", Kind::List, "", "Restrictions applied to the MAIL FROM address (evaluated at RCPT TO)."),
    p("smtpd_relay_restrictions", Kind::List, "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination", "Relay control restrictions applied at RCPT TO, before smtpd_recipient_restrictions."),
    p("smtpd_recipient_restrictions", Kind::List, "", "Restrictions applied to the RCPT TO address, after smtpd_relay_restrictions."),
    p("smtpd_sender_login_maps", Kind::MapList, "", "Tables of envelope sender -> SASL login names that own it, for reject_sender_login_mismatch."),
    p("smtpd_reject_unlisted_recipient", Kind::Bool, "yes", "Reject RCPT TO addresses in local or virtual alias domains that no table lists, even when no restriction asks for it."),
    p("smtpd_reject_unlisted_sender", Kind::Bool, "no", "Reject MAIL FROM addresses in local or virtual alias domains that no table lists, even when no restriction asks for it."),
    p("relay_domains", Kind::List, "", "Domains (names, or type:table lookup files) this server relays mail to from anyone; subdomains match too. Postfix's default at compatibility level 2 and later is empty."),
    p("allow_untrusted_routing", Kind::Bool, "no", "Relay addresses with sender-specified routing (user@a@b, user%a@b, a!user@b) from clients outside mynetworks to relay_domains."),
    p("allow_percent_hack", Kind::Bool, "yes", "Treat user%domain in a local address as user@domain."),
    p("swap_bangpath", Kind::Bool, "yes", "Treat site!user in a local address as user@site."),
    p("canonical_maps", Kind::MapList, "", "Tables that rewrite sender and recipient addresses (canonical(5)), in the envelope and in the headers as canonical_classes says."),
    p("sender_canonical_maps", Kind::MapList, "", "Tables that rewrite sender addresses, before canonical_maps, in the envelope and the headers as sender_canonical_classes says."),
    p("recipient_canonical_maps", Kind::MapList, "", "Tables that rewrite recipient addresses, before canonical_maps, in the envelope and the headers as recipient_canonical_classes says."),
    p("virtual_alias_maps", Kind::MapList, "", "Tables that redirect recipients to one or more other addresses (virtual(5)), for every domain, in smtpd, pickup and the copies local delivery forwards."),
    p("virtual_alias_domains", Kind::List, "$virtual_alias_maps", "Domains whose addresses all come from virtual_alias_maps: names, or tables whose domain-only keys name them; unlisted addresses are rejected at RCPT TO."),
    p("virtual_alias_recursion_limit", int(1), "1000", "The deepest nesting of virtual alias expansion; deeper defers the message."),
    p("virtual_alias_expansion_limit", int(1), "1000", "The most addresses one recipient may expand to; more defers the message."),
    // cleanup's header rewriting and smtpd's local recipient table (issue 7, rewrite).
    p("canonical_classes", Kind::List, "envelope_sender, envelope_recipient, header_sender, header_recipient", "What canonical_maps rewrites: envelope_sender, envelope_recipient, header_sender (From, Sender, Reply-To, Errors-To, Return-Receipt-To and their Resent- forms), header_recipient (To, Cc, Bcc, Apparently-To and their Resent- forms)."),
    p("sender_canonical_classes", Kind::List, "envelope_sender, header_sender", "What sender_canonical_maps rewrites: envelope_sender, header_sender."),
    p("recipient_canonical_classes", Kind::List, "envelope_recipient, header_recipient", "What recipient_canonical_maps rewrites: envelope_recipient, header_recipient."),
    p("local_recipient_maps", Kind::List, "proxy:unix:passwd.byname $alias_maps", "The tables of local recipients smtpd accepts at RCPT TO for mydestination domains (others: 550 5.1.1 User unknown in local recipient table): unix:passwd.byname (or proxy:unix:passwd.byname) is the user database (system users, or passwd_file), an alias_maps entry is that aliases file, anything else a key-value table; empty accepts every local name."),
    // anvil.
    p("anvil_rate_time_unit", SECONDS, "60s", "The time unit over which anvil counts client connection rates."),
    p("anvil_status_update_time", SECONDS, "600s", "How often anvil logs its statistics (max connection rate and count); 0 logs them only at exit."),
    // authd (users and passwords). Postfix has no such service; the names follow Dovecot's settings.
    p("authd_pam_service", Kind::Str, "postern", "The PAM service name authd checks system users' passwords with (/etc/pam.d/NAME; without that file PAM uses /etc/pam.d/other)."),
    p("authd_first_valid_uid", int(0), "1000", "The lowest uid of a system user authd lets log in (Dovecot's first_valid_uid); lower ones, root among them, are refused. passwd-file users log in with the uid their line gives."),
    // qmgr.
    p("queue_run_delay", SECONDS, "300s", "How often qmgr scans the deferred queue."),
    p("minimal_backoff_time", SECONDS, "300s", "The shortest time a deferred message waits before the next attempt."),
    p("maximal_backoff_time", SECONDS, "4000s", "The longest time a deferred message waits before the next attempt."),
    p("maximal_queue_lifetime", DAYS, "5d", "How long a message may stay deferred before it is bounced."),
    p("bounce_queue_lifetime", DAYS, "5d", "How long a bounce message may stay deferred before it is discarded."),
    p("qmgr_message_active_limit", int(1), "20000", "The most messages in the active queue at once."),
    p("default_destination_concurrency_limit", int(1), "20", "The most parallel deliveries to one destination."),
    p("local_destination_concurrency_limit", int(1), "$default_destination_concurrency_limit", "The most parallel requests to local delivery. Postfix's default is 2 per recipient, because its local(8) takes one recipient per request; Postern's batches recipients, so this bounds all local deliveries at once."),
    p("default_destination_recipient_limit", int(1), "50", "The most recipients qmgr puts in one delivery request; a message with more is split into several requests."),
    p("local_destination_recipient_limit", int(1), "50", "The most recipients in one request to local delivery (Postfix's default is 1: its local(8) runs a process per request; Postern's batches)."),
    // Per-transport limits (Postfix's <transport>_destination_*_limit) for the transports of the
    // default master.toml; any other transport takes the default_ ones.
    p("smtp_destination_concurrency_limit", int(1), "$default_destination_concurrency_limit", "The most parallel deliveries to one destination through the smtp transport."),
    p("smtp_destination_recipient_limit", int(1), "$default_destination_recipient_limit", "The most recipients in one request to the smtp transport."),
    p("relay_destination_concurrency_limit", int(1), "$default_destination_concurrency_limit", "The most parallel deliveries to one destination through the relay transport (relay_domains)."),
    p("relay_destination_recipient_limit", int(1), "$default_destination_recipient_limit", "The most recipients in one request to the relay transport."),
    // qmgr routing and scheduling (issue 8, qmgr): trivial-rewrite's resolve, done inside qmgr.
    p("relayhost", Kind::Str, "", "The next hop of non-local mail without a transport_maps entry: [host]:port skips the MX lookup, host (or host:port) looks its MX up, a comma-separated list is tried in order (failover); empty means the MX of the recipient's domain."),
    p("transport_maps", Kind::MapList, "", "Tables of recipient address or domain -> transport:nexthop (transport(5)): user+ext@domain, user@domain, domain, .parent, then *; smtp:[host]:port, local:, error:text, discard:text, or any unix service of master.toml."),
    p("default_transport", Kind::Str, "smtp", "The transport:nexthop of mail for domains that are not ours and have no transport_maps entry; a nexthop here wins over relayhost."),
    p("relay_transport", Kind::Str, "relay", "The transport:nexthop of mail for relay_domains (the relay service of master.toml, an smtp-client of its own, so inbound relay mail does not queue behind outbound mail); a nexthop here wins over relayhost."),
    p("local_transport", Kind::Str, "local:$myhostname", "The transport of mail for mydestination (the nexthop part is ignored: local delivery needs none)."),
    p("initial_destination_concurrency", int(1), "5", "Parallel deliveries qmgr starts a destination with (slow start); each success window widens it up to the destination's concurrency limit, failures narrow it."),
    p("default_destination_concurrency_failed_cohort_limit", int(1), "1", "How many windows' worth of failed connections in a row make a destination dead: its other mail is deferred without an attempt (delivery temporarily suspended) until minimal_backoff_time has passed or a flush."),
    p("delay_warning_time", HOURS, "0h", "Send the sender one delay warning (RFC 3464, Action: delayed) once a message has been queued this long; 0 disables warnings."),
    // local delivery.
    p("home_mailbox", Kind::Str, "", "The mailbox path relative to the user's home; ending in / means Maildir (Maildir/); empty means mail_spool_directory."),
    p("mail_spool_directory", Kind::Path, "/var/mail", "The directory of mbox spool files, used when home_mailbox and mailbox_command are empty."),
    p("mailbox_command", Kind::RawStr, "", "A command that delivers to the mailbox (procmail), run as the recipient; its $HOME, $USER, ... are expanded by local delivery."),
    p("forward_path", Kind::RawStr, "$home/.forward${recipient_delimiter}${extension}, $home/.forward", "Where local delivery looks for a user's .forward file (the first that exists is used); $home, $user, $extension, $recipient_delimiter and ${name?text} are expanded by local delivery."),
    p("mailbox_size_limit", Kind::Size, "51200000", "The largest mbox file or message local delivery writes, in bytes; 0 means no limit."),
    p("allow_mail_to_commands", Kind::List, "alias, forward", "Where |command destinations are allowed: alias, forward, include."),
    p("allow_mail_to_files", Kind::List, "alias, forward", "Where /file/name destinations are allowed: alias, forward, include."),
    p("default_privs", Kind::Str, "nobody", "The account local delivery uses for commands and files when the recipient or the alias owner is root."),
    p("command_time_limit", SECONDS, "1000s", "How long local delivery lets a mailbox_command or an alias |command run before killing it."),
    p("biff", Kind::Bool, "no", "Accepted for compatibility with Postfix and ignored: Postern never notifies comsat."),
    // TLS (mail-tls): the server's certificate and protocols, and the client's level.
    p("smtpd_tls_cert_file", Kind::Path, "", "The server certificate file (PEM, the server certificate first, then any intermediate certificates); empty means no certificate."),
    p("smtpd_tls_key_file", Kind::Path, "$smtpd_tls_cert_file", "The server private key file (PEM: PKCS#8, RSA or SEC1 EC); it may be the same file as smtpd_tls_cert_file."),
    p("smtpd_tls_chain_files", Kind::List, "", "Files that each hold a private key followed by its certificate chain (PEM); when set, smtpd_tls_cert_file and smtpd_tls_key_file are ignored. Several files give several key types (RSA and ECDSA)."),
    p("smtpd_tls_security_level", Kind::Str, "", "SMTP server TLS: none (or empty) offers no STARTTLS, may offers it, encrypt requires it before MAIL FROM."),
    p("smtpd_tls_protocols", Kind::List, ">=TLSv1.2", "The TLS versions offered when TLS is optional, in Postfix syntax (>=TLSv1.2, or !SSLv2, !SSLv3, !TLSv1, !TLSv1.1); Postern offers only TLSv1.2 and TLSv1.3 and refuses a value that enables anything older (Postfix's default is >=TLSv1)."),
    p("smtpd_tls_mandatory_protocols", Kind::List, ">=TLSv1.2", "The TLS versions offered when smtpd_tls_security_level = encrypt, in the syntax of smtpd_tls_protocols (Postfix's default is >=TLSv1)."),
    p("smtpd_tls_wrappermode", Kind::Bool, "no", "Speak TLS from the first byte (implicit TLS, port 465), as the smtps service sets with an override; no means plain SMTP with STARTTLS."),
    p("smtpd_tls_auth_only", Kind::Bool, "yes", "Offer and accept AUTH only over TLS. Postern's default is yes (Postfix's is no), so that passwords never cross the network in clear unless configured so."),
    p("smtpd_tls_loglevel", Kind::Int { min: 0, max: 4 }, "0", "SMTP server TLS logging: 0 logs only failures, 1 also a summary line per handshake, 2 and more are accepted as 1."),
    // DNS (issue 7, dns): the shared resolver of crates/mail-dns, and smtpd's client name lookup.
    p("disable_dns_lookups", Kind::Bool, "no", "Turn off every DNS lookup Postern makes (smtpd's client name lookups, the SMTP client's MX and address lookups: its MX deliveries are deferred 4.4.3): nothing is sent to any nameserver. Postfix's name, which Postfix deprecated for smtp_dns_support_level (its SMTP client only); Postern keeps it as the one switch for all daemons. postern init --dev sets it to yes."),
    p("dns_resolver_addresses", Kind::List, "", "The nameservers Postern asks, in order, as IP, IP:port or [IPv6]:port (port 53 by default), over UDP and TCP; empty means the nameservers of /etc/resolv.conf, with /etc/hosts read first as libc does. Postern's own (Postfix always uses the system resolver)."),
    p("dns_resolver_timeout", SECONDS, "5s", "How long the resolver waits for one answer from one nameserver (resolv.conf's timeout option, which this overrides)."),
    p("dns_resolver_attempts", Kind::Int { min: 1, max: 10 }, "2", "How many times the resolver asks before a lookup fails (resolv.conf's attempts option, which this overrides)."),
    p("smtpd_peername_lookup", Kind::Bool, "yes", "Look up the client's name before the greeting (PTR, then the name's addresses, which must include the client's), for logs, Received headers and restrictions; no, or disable_dns_lookups = yes, names every client unknown (localhost on loopback) without a lookup."),
    p("smtpd_peername_lookup_timeout", SECONDS, "10s", "The longest smtpd's client name lookup may take for one connection, all queries together (Postern's own: Postfix relies on the resolver's timeouts); past it the client is unknown and the session goes on."),
    // pop3d (issue 9): the POP3 server's login and mail services. TLS uses smtpd's certificate (smtpd_tls_cert_file, smtpd_tls_key_file, smtpd_tls_chain_files, smtpd_tls_protocols).
    p("pop3_idle_timeout", SECONDS, "600s", "How long a POP3 session may wait for the client's next command before it is closed (RFC 1939's 10-minute autologout timer), before and after login."),
    p("pop3_client_connection_limit", int(0), "10", "The most simultaneous POP3 connections one client address may have in one pop3 login process (pop3 and pop3s run one process each by default); 0 disables the limit. Clients in mynetworks are not exempt."),
    p("pop3_user_connection_limit", int(0), "10", "The most simultaneous logged-in POP3 sessions of one user in one login process (Dovecot's mail_max_userip_connections); one session per mailbox holds the lock, the others get [IN-USE]. 0 disables the limit."),
    p("pop3_tls_wrappermode", Kind::Bool, "no", "Speak TLS from the first byte (implicit TLS, port 995), as the pop3s service sets with an override; no means plain POP3 with STLS when a certificate is configured."),
    p("pop3_plaintext_auth", Kind::Bool, "no", "Accept USER/PASS and AUTH PLAIN on an unencrypted connection from a non-loopback address (Dovecot's disable_plaintext_auth = no). The default no requires STLS or pop3s first; loopback clients may always log in."),
    // imapd (issue 10): the IMAP server's login services (imap, imaps) and its mail service (imap-mail). TLS uses smtpd's certificate; APPEND is bounded by message_size_limit.
    p("imap_idle_timeout", SECONDS, "1800s", "How long an IMAP session may wait for the client's next command before it is closed (RFC 9051's 30-minute inactivity autologout; Dovecot's imap_idle_notify aside), before and after login. IDLE counts as activity: an idling client's timer restarts with every notification and at each DONE."),
    p("imap_client_connection_limit", int(0), "10", "The most simultaneous IMAP connections one client address may have in one imap login process (imap and imaps run one process each by default); 0 disables the limit."),
    p("imap_user_connection_limit", int(0), "10", "The most simultaneous logged-in IMAP sessions of one user in one login process (Dovecot's mail_max_userip_connections); 0 disables the limit."),
    p("imap_tls_wrappermode", Kind::Bool, "no", "Speak TLS from the first byte (implicit TLS, port 993), as the imaps service sets with an override; no means plain IMAP with STARTTLS when a certificate is configured."),
    p("imap_plaintext_auth", Kind::Bool, "no", "Accept LOGIN and AUTHENTICATE PLAIN on an unencrypted connection from a non-loopback address (Dovecot's disable_plaintext_auth = no). The default no advertises LOGINDISABLED there and requires STARTTLS or imaps first; loopback clients may always log in."),
    p("imap_max_line_length", Kind::Int { min: 1024, max: 16_777_216 }, "65536", "The longest IMAP command line, literals not counted (Dovecot's imap_max_line_length); a longer line is answered BAD and the connection closed. Before login lines and literals are also capped at a few kilobytes whatever this says."),
    // IMAP store (issue 10, store): crates/mail-maildir's Store, read by imapd.
    p("imap_special_use", Kind::RawStr, "Sent=\\Sent, Enviados=\\Sent, Sent Messages=\\Sent, Sent Items=\\Sent, Drafts=\\Drafts, Rascunhos=\\Drafts, Trash=\\Trash, Lixeira=\\Trash, Deleted Messages=\\Trash, Deleted Items=\\Trash, Junk=\\Junk, Spam=\\Junk, Lixo Eletr\u{f4}nico=\\Junk, Archive=\\Archive, Archives=\\Archive, Arquivo=\\Archive", "Which folders IMAP LIST marks with a SPECIAL-USE attribute (RFC 6154), as comma-separated Name=\\Attribute pairs (Dovecot's special_use, by folder name): Name is the folder in UTF-8 with . between levels, matched case-insensitively, and may hold blanks; Attribute is one of \\Sent \\Drafts \\Trash \\Junk \\Archive \\All \\Flagged. The default covers the tutorial's Enviados, Rascunhos, Lixeira and Spam and the usual English names; empty marks none."),
    // Logging and metrics (issue 11, ops): crates/mail-daemon's log.rs, and master's metrics endpoint.
    p("maillog_destination", Kind::Str, "syslog", "Where log lines go when maillog_file is empty: syslog (RFC 3164 datagrams to syslog_socket, as Postfix's syslog(3) writes them), journald (the systemd journal, SYSLOG_IDENTIFIER = $syslog_name/SERVICE) or stderr (master's standard error, which every daemon inherits). A development instance sets stderr."),
    p("syslog_facility", Kind::Str, "mail", "The syslog facility of every log line (mail, daemon, user, auth, authpriv, local0 ... local7), for syslog and journald."),
    p("metrics_listen", Kind::Str, "", "The address:port of master's Prometheus endpoint (GET /metrics, text format 0.0.4), for example 127.0.0.1:9154; empty turns it off. Read when master starts."),
    p("syslog_socket", Kind::Path, "/dev/log", "The local syslog socket (a Unix datagram socket) for maillog_destination = syslog. Postern's own: Postfix always uses /dev/log."),
    // smtp client.
    // SMTP client (issue 8, smtpc): crates/smtp-client, service smtp/unix.
    p("smtp_helo_name", Kind::Str, "$myhostname", "The name the SMTP client sends in HELO/EHLO."),
    p("smtp_tls_security_level", Kind::Str, "", "SMTP client TLS: none (or empty), may (STARTTLS when offered, plain text when the handshake fails) and encrypt (TLS required; neither checks the certificate, Postfix's opportunistic semantics), verify and secure (the certificate must verify against smtp_tls_CAfile or the system roots and name the host)."),
    p("smtp_tls_CAfile", Kind::Path, "", "The trusted CA certificates (PEM) for smtp_tls_security_level verify and secure; empty means the system's certificates (/etc/ssl/certs)."),
    p("smtp_tcp_port", Kind::Int { min: 1, max: 65535 }, "25", "The TCP port the SMTP client connects to when the next hop names none (MX hosts, [host]). Postern's own: Postfix takes it from the smtp entry of /etc/services."),
    p("smtp_address_preference", Kind::Str, "any", "Which addresses of a host the SMTP client tries first: ipv4, ipv6 or any (the order DNS gave)."),
    p("smtp_fallback_relay", Kind::List, "", "Hosts to try, in order, after every host of a next hop failed temporarily (host, host:port, [host], [host]:port)."),
    p("smtp_mx_address_limit", Kind::Int { min: 1, max: 100 }, "5", "The most addresses (of all MX hosts together) the SMTP client tries for one delivery."),
    p("smtp_sasl_auth_enable", Kind::Bool, "no", "Authenticate to servers that offer AUTH (PLAIN or LOGIN) with a password from smtp_sasl_password_maps."),
    p("smtp_sasl_password_maps", Kind::MapList, "", "Tables of user:password, keyed by [host]:port, [host], host:port, host, or the next-hop domain, as Postfix looks them up."),
    p("smtp_connect_timeout", SECONDS, "30s", "How long the SMTP client waits for a TCP connection to complete."),
    p("smtp_helo_timeout", SECONDS, "300s", "How long the SMTP client waits for the greeting and the reply to EHLO/HELO."),
    p("smtp_starttls_timeout", SECONDS, "300s", "How long the SMTP client waits for the reply to STARTTLS and for the TLS handshake."),
    p("smtp_mail_timeout", SECONDS, "300s", "How long the SMTP client waits for the reply to MAIL FROM (and to AUTH and RSET)."),
    p("smtp_rcpt_timeout", SECONDS, "300s", "How long the SMTP client waits for the reply to each RCPT TO."),
    p("smtp_data_init_timeout", SECONDS, "120s", "How long the SMTP client waits for the reply to DATA."),
    p("smtp_data_xfer_timeout", SECONDS, "180s", "How long the SMTP client may take to send one chunk of the message content."),
    p("smtp_data_done_timeout", SECONDS, "600s", "How long the SMTP client waits for the reply to the final dot."),
    p("smtp_quit_timeout", SECONDS, "300s", "How long the SMTP client waits for the reply to QUIT."),
    p("smtp_connection_cache_time_limit", SECONDS, "2s", "How long an idle SMTP session stays open for the next message to the same destination."),
    p("smtp_connection_reuse_count_limit", Kind::Int { min: 0, max: INT_MAX }, "0", "How many messages one SMTP session may carry before it is closed; 0 means no limit."),
];

/// The declaration of `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// Map types whose prefix Postern accepts and strips (it reads the source
/// file itself, so the Postfix database type does not matter).
pub(crate) const MAP_TYPES: &[&str] = &["hash", "lmdb", "btree", "cdb", "dbm", "texthash"];

/// Checks the expanded elements of list parameters whose elements have a
/// fixed vocabulary or syntax. `Err` is a message for [`crate::Error::BadValue`].
pub(crate) fn check_elements(name: &str, items: &[String]) -> Result<(), String> {
    let one_of = |allowed: &[&str]| {
        for it in items {
            if !allowed.contains(&it.to_ascii_lowercase().as_str()) {
                return Err(format!("expected one of {}, found \"{it}\"", allowed.join(", ")));
            }
        }
        Ok(())
    };
    match name {
        "mynetworks" => crate::Networks::parse(items).map(|_| ()),
        "dns_resolver_addresses" => {
            for it in items {
                if crate::settings::nameserver_address(it).is_none() {
                    return Err(format!("expected IP, IP:port or [IPv6]:port, found \"{it}\""));
                }
            }
            Ok(())
        }
        "inet_protocols" => one_of(&["all", "ipv4", "ipv6"]),
        "smtp_address_preference" => one_word(items, &["any", "ipv4", "ipv6"], &[]),
        "maillog_destination" => one_word(items, &["syslog", "journald", "stderr"], &[]),
        "syslog_facility" => one_word(items, crate::settings::FACILITIES, &[]),
        "metrics_listen" => match items {
            [] => Ok(()),
            [one] if one.parse::<std::net::SocketAddr>().is_ok() => Ok(()),
            _ => Err(format!(
                "expected an address:port such as 127.0.0.1:9154, found \"{}\"",
                items.join(" ")
            )),
        },
        "smtpd_tls_security_level" => one_word(items, &["none", "may", "encrypt"], &[]),
        "smtp_tls_security_level" => one_word(
            items,
            &["none", "may", "encrypt", "verify", "secure"],
            &["dane", "dane-only", "fingerprint", "half-dane"],
        ),
        "smtpd_tls_protocols" | "smtpd_tls_mandatory_protocols" => {
            crate::settings::TlsProtocols::parse(items).map(|_| ())
        }
        "canonical_classes" => {
            one_of(&["envelope_sender", "envelope_recipient", "header_sender", "header_recipient"])
        }
        "sender_canonical_classes" => one_of(&["envelope_sender", "header_sender"]),
        "recipient_canonical_classes" => one_of(&["envelope_recipient", "header_recipient"]),
        "local_recipient_maps" => items.iter().try_for_each(|it| check_local_recipient_table(it)),
        "allow_mail_to_commands" | "allow_mail_to_files" => {
            one_of(&["alias", "forward", "include"])
        }
        "inet_interfaces" => {
            let special = items
                .iter()
                .find(|i| i.eq_ignore_ascii_case("all") || i.eq_ignore_ascii_case("loopback-only"));
            match special {
                Some(s) if items.len() > 1 => Err(format!("\"{s}\" must be the only element")),
                Some(_) => Ok(()),
                None => {
                    for it in items {
                        let bare =
                            it.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(it);
                        let ok = bare.parse::<std::net::IpAddr>().is_ok() || is_host_name(bare);
                        if !ok {
                            return Err(format!(
                                "expected all, loopback-only or addresses, found \"{it}\""
                            ));
                        }
                    }
                    Ok(())
                }
            }
        }
        _ => match lookup(name).map(|p| p.kind) {
            Some(Kind::MapList) => {
                for it in items {
                    if let Some((ty, _)) = split_map_type(it)
                        && !MAP_TYPES.contains(&ty)
                    {
                        return Err(format!(
                            "unsupported lookup table type \"{ty}:\" in \"{it}\" (use a plain file name)"
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        },
    }
}

/// The user database's name in `local_recipient_maps` (Postfix's
/// passwd lookup table), with or without `proxy:` in front.
pub const USER_DATABASE_TABLE: &str = "unix:passwd.byname";

/// An element of `local_recipient_maps` without a leading `proxy:`
/// (Postfix's proxymap only shares the lookup between processes; Postern
/// reads the same table directly).
pub fn strip_proxy(spec: &str) -> &str {
    match spec.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("proxy:") => &spec[6..],
        _ => spec,
    }
}

/// One `local_recipient_maps` element: the user database, or a table
/// Postern reads as a file.
fn check_local_recipient_table(spec: &str) -> Result<(), String> {
    let table = strip_proxy(spec);
    if table.eq_ignore_ascii_case(USER_DATABASE_TABLE) {
        return Ok(());
    }
    match split_map_type(table) {
        Some((ty, rest)) if MAP_TYPES.contains(&ty.to_ascii_lowercase().as_str()) => {
            if rest.is_empty() { Err(format!("empty table name in \"{spec}\"")) } else { Ok(()) }
        }
        Some((ty, _)) => Err(format!(
            "unsupported lookup table \"{ty}:\" in \"{spec}\"; use {USER_DATABASE_TABLE} (the \
             user database), a {} table or a plain file name",
            MAP_TYPES.join(", ")
        )),
        None if table.is_empty() => Err(format!("empty table name in \"{spec}\"")),
        None => Ok(()),
    }
}

/// Checks `imap_special_use` (the syntax mail-maildir's `SpecialUseMap`
/// reads): comma-separated `Name=\Attribute` pairs.
pub(crate) fn check_special_use(value: &str) -> Result<(), String> {
    const ATTRIBUTES: [&str; 7] =
        ["\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash"];
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((name, attr)) = item.rsplit_once('=') else {
            return Err(format!("expected Name=\\Attribute, found \"{item}\""));
        };
        let (name, attr) = (name.trim(), attr.trim());
        if !ATTRIBUTES.contains(&attr.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "\"{attr}\" is not a SPECIAL-USE attribute (\\Sent \\Drafts \\Trash \\Junk \\Archive \\All \\Flagged)"
            ));
        }
        let bad_name = name.is_empty()
            || name.len() > 200
            || name.split('.').count() > 32
            || name.split('.').any(str::is_empty)
            || name.chars().any(|c| c.is_control() || matches!(c, '/' | '%' | '*'))
            || name.eq_ignore_ascii_case("INBOX");
        if bad_name {
            return Err(format!("\"{name}\" is not a folder name that can have a special use"));
        }
    }
    Ok(())
}

/// Parameters of kind [`Kind::Str`] whose value is one word (from a fixed
/// vocabulary, or an address), checked by [`check_elements`] like list elements.
pub(crate) const WORD_PARAMS: &[&str] = &[
    "smtpd_tls_security_level",
    "smtp_tls_security_level",
    "smtp_address_preference",
    "maillog_destination",
    "syslog_facility",
    "metrics_listen",
];

/// At most one word, from `allowed`; `unsupported` are Postfix's words
/// that Postern does not implement, refused with that reason.
fn one_word(items: &[String], allowed: &[&str], unsupported: &[&str]) -> Result<(), String> {
    match items {
        [] => Ok(()),
        [one] => {
            let w = one.to_ascii_lowercase();
            if allowed.contains(&w.as_str()) {
                Ok(())
            } else if unsupported.contains(&w.as_str()) {
                Err(format!(
                    "\"{one}\" is not supported by Postern; use one of {}",
                    allowed.join(", ")
                ))
            } else {
                Err(format!("expected one of {}, found \"{one}\"", allowed.join(", ")))
            }
        }
        _ => Err(format!(
            "expected one word (one of {}), found {}",
            allowed.join(", "),
            items.join(" ")
        )),
    }
}

/// Splits `type:path` into its parts; a plain path (or a Windows-free path
/// with a colon after a slash) has no type.
pub(crate) fn split_map_type(s: &str) -> Option<(&str, &str)> {
    let (ty, rest) = s.split_once(':')?;
    if !ty.is_empty() && ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some((ty, rest))
    } else {
        None
    }
}

/// A syntactically plausible DNS host name (letters, digits, `-`, `.`).
pub(crate) fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut names: Vec<_> = PARAMS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a parameter is declared twice");
        for p in PARAMS {
            assert!(!p.doc.is_empty(), "{} has no doc", p.name);
            assert!(
                // Postfix spells a few names with capitals (smtp_tls_CAfile).
                p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn every_default_is_valid_for_its_kind() {
        for p in PARAMS {
            crate::value::check_text(p.kind, p.default)
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
    }

    #[test]
    fn lookup_finds_declared_only() {
        assert_eq!(lookup("smtpd_banner").map(|p| p.kind), Some(Kind::Str));
        assert!(lookup("mydestinaton").is_none());
        assert!(lookup("config_directory").is_none());
    }

    #[test]
    fn element_checks() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_elements("inet_protocols", &v(&["ipv4", "IPv6"])).is_ok());
        assert!(check_special_use(lookup("imap_special_use").unwrap().default).is_ok());
        assert!(check_special_use("").is_ok());
        assert!(check_special_use("Itens Enviados = \\sent, Caixa.Velha=\\Archive").is_ok());
        for bad in ["Sent", "Sent=\\Outbox", "a..b=\\Sent", "INBOX=\\Sent", "=\\Sent", "a/b=\\Sent"]
        {
            assert!(check_special_use(bad).is_err(), "{bad}");
        }
        assert!(check_elements("inet_protocols", &v(&["ipv5"])).is_err());
        assert!(check_elements("inet_interfaces", &v(&["all"])).is_ok());
        assert!(
            check_elements("inet_interfaces", &v(&["127.0.0.1", "[::1]", "mail.example.com"]))
                .is_ok()
        );
        assert!(check_elements("inet_interfaces", &v(&["all", "127.0.0.1"])).is_err());
        assert!(check_elements("inet_interfaces", &v(&["bad host!"])).is_err());
        assert!(check_elements("mynetworks", &v(&["10.0.0.0/8"])).is_ok());
        assert!(check_elements("mynetworks", &v(&["10.0.0.0/99"])).is_err());
        assert!(check_elements("alias_maps", &v(&["hash:/etc/aliases", "/etc/more"])).is_ok());
        assert!(check_elements("alias_maps", &v(&["mysql:/etc/x.cf"])).is_err());
        let lrm = |s: &[&str]| check_elements("local_recipient_maps", &v(s));
        assert!(lrm(&["proxy:unix:passwd.byname", "hash:/etc/aliases", "/etc/x"]).is_ok());
        assert!(lrm(&["unix:passwd.byname", "PROXY:hash:/etc/more", "texthash:users"]).is_ok());
        assert!(lrm(&[]).is_ok());
        let e = lrm(&["unix:group.byname"]).unwrap_err();
        assert!(e.contains("unsupported lookup table \"unix:\""), "{e}");
        assert!(lrm(&["proxy:mysql:/etc/x.cf"]).is_err());
        assert!(lrm(&["hash:"]).is_err());
        assert!(
            check_elements("canonical_classes", &v(&["header_sender", "envelope_recipient"]))
                .is_ok()
        );
        assert!(check_elements("sender_canonical_classes", &v(&["envelope_recipient"])).is_err());
        assert!(check_elements("recipient_canonical_classes", &v(&["header_sender"])).is_err());
        assert!(check_elements("allow_mail_to_files", &v(&["alias", "include"])).is_ok());
        assert!(check_elements("allow_mail_to_files", &v(&["everywhere"])).is_err());
        assert!(check_elements("smtpd_tls_security_level", &v(&[])).is_ok());
        assert!(check_elements("smtpd_tls_security_level", &v(&["May"])).is_ok());
        assert!(check_elements("smtpd_tls_security_level", &v(&["verify"])).is_err());
        assert!(check_elements("smtpd_tls_security_level", &v(&["may", "encrypt"])).is_err());
        assert!(check_elements("smtp_tls_security_level", &v(&["secure"])).is_ok());
        let dane = check_elements("smtp_tls_security_level", &v(&["dane"])).unwrap_err();
        assert!(dane.contains("not supported by Postern"), "{dane}");
        assert!(check_elements("smtpd_tls_protocols", &v(&[">=TLSv1.2"])).is_ok());
        assert!(check_elements("smtpd_tls_protocols", &v(&["!SSLv2", "!SSLv3"])).is_err());
    }
}
