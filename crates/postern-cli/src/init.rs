//! `postern init --dev DIR`: writes a complete unprivileged instance —
//! main.toml, master.toml, a passwd-file with the tutorial's user
//! `suporte`, aliases (`root: suporte`), Maildirs laid out as the
//! tutorial's `maildirmake` commands make them, a self-signed TLS
//! certificate for the instance's names (`tls/cert.pem`, `tls/key.pem`),
//! and the queue — with
//! every path under DIR and high loopback ports, so an ordinary user can
//! run a whole mail system.

use std::path::{Path, PathBuf};

/// The folders the tutorial creates with maildirmake.
const TUTORIAL_FOLDERS: [&str; 4] = ["Enviados", "Rascunhos", "Lixeira", "Spam"];

/// The instance's certificate and key, relative to its directory.
const TLS_CERT: &str = "tls/cert.pem";
const TLS_KEY: &str = "tls/key.pem";

/// Ports of a dev instance: base + the well-known port.
const DEFAULT_PORT_BASE: u16 = 10000;

/// What init wrote, for the caller to print or use.
#[derive(Debug)]
pub struct Instance {
    /// The instance (and config) directory.
    pub dir: PathBuf,
    /// SMTP listen address as written in master.toml.
    pub smtp: String,
    /// The users, name and password.
    pub users: Vec<(String, String)>,
    /// The mail domain.
    pub domain: String,
}

/// Makes `p` absolute against the current directory.
pub fn absolute(p: &Path) -> Result<PathBuf, String> {
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    Ok(cwd.join(p))
}

fn toml_str(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

/// The options of `postern init --dev DIR` and `postern dev DIR`.
#[derive(Debug, Clone, clap::Args)]
pub struct InitOptions {
    /// Add a user (or give the tutorial's user suporte another password);
    /// repeatable.
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    pub users: Vec<(String, String)>,
    /// The instance's host name; its domain is the mail domain.
    #[arg(long, value_name = "FQDN", default_value = "mail.postern.test")]
    pub hostname: String,
    /// Listen on BASE + the well-known port (SMTP on BASE+25) [default: 10000].
    #[arg(long, value_name = "BASE", overrides_with = "any_port")]
    pub port_base: Option<u16>,
    /// Let the kernel choose every port (see `postern status`).
    #[arg(long, overrides_with = "port_base")]
    pub any_port: bool,
}

/// `NAME:PASSWORD`, with a name that is safe in the passwd-file and as a
/// directory name.
fn parse_user(spec: &str) -> Result<(String, String), String> {
    let (n, p) = spec.split_once(':').ok_or_else(|| format!("{spec}: expected NAME:PASSWORD"))?;
    let valid = !n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return Err(format!("{spec}: the name may use letters, digits, '.', '_' and '-'"));
    }
    Ok((n.to_owned(), p.to_owned()))
}

/// Writes the instance in `dir` (made absolute against the current
/// directory).
pub fn init(dir: &Path, opts: &InitOptions) -> Result<Instance, String> {
    let mut users: Vec<(String, String)> = vec![("suporte".into(), "suporte".into())];
    // The tutorial's user is always there; --user adds more, or gives
    // suporte another password.
    for (n, p) in &opts.users {
        match users.iter_mut().find(|(name, _)| name == n) {
            Some(u) => u.1 = p.clone(),
            None => users.push((n.clone(), p.clone())),
        }
    }
    let hostname = opts.hostname.clone();
    let port_base =
        if opts.any_port { None } else { Some(opts.port_base.unwrap_or(DEFAULT_PORT_BASE)) };
    let dir = absolute(dir)?;
    if dir.join("main.toml").exists() {
        return Err(format!(
            "{} already has a main.toml; choose an empty directory",
            dir.display()
        ));
    }
    // An existing key is never replaced: whoever trusts its certificate
    // would be locked out, and the operator may have put a real one there.
    if dir.join(TLS_KEY).exists() {
        return Err(format!("{} already has {TLS_KEY}; choose an empty directory", dir.display()));
    }
    let port = |well_known: u16| port_base.map(|b| b.saturating_add(well_known)).unwrap_or(0);
    let smtp = format!("127.0.0.1:{}", port(25));
    let submission = format!("127.0.0.1:{}", port(587));
    let smtps = format!("127.0.0.1:{}", port(465));
    let pop3 = format!("127.0.0.1:{}", port(110));
    let pop3s = format!("127.0.0.1:{}", port(995));
    let imap = format!("127.0.0.1:{}", port(143));
    let imaps = format!("127.0.0.1:{}", port(993));
    let domain = mail_config::domain_of(&hostname);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let daemon_dir = exe.parent().ok_or("binary has no directory")?.to_owned();
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "nobody".into());
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    mkdir(&dir)?;
    mkdir(&dir.join("mail"))?;
    let d = |p: &str| toml_str(&dir.join(p).display().to_string());

    let main_toml = format!(
        r#"# main.toml of a Postern development instance, written by `postern init --dev`.
# Parameters have Postfix's names and meanings; `postconf -c {dir} -n` shows
# what is set here and `postconf -c {dir} -d` every default.

myhostname = {hostname}
mydomain = {domain}
myorigin = "$mydomain"
mydestination = ["$myhostname", "localhost.$mydomain", "localhost", "$mydomain"]
mynetworks = ["127.0.0.0/8", "[::1]/128"]
inet_interfaces = ["loopback-only"]
smtpd_banner = "$myhostname ESMTP $mail_name"

# No DNS lookups at all: clients are named localhost (loopback) or unknown,
# nothing is sent to a nameserver, and mail for other domains waits
# (deferred: DNS lookups disabled) unless it goes to a [host]:port relay. To look client names up as a server
# on the Internet does (connect from host.example.org[192.0.2.1]):
#   postconf -c {dir} -e "disable_dns_lookups = no"
# which asks the nameservers of /etc/resolv.conf, or others given with
#   postconf -c {dir} -e "dns_resolver_addresses = 192.0.2.53, [2001:db8::53]:5353"
disable_dns_lookups = true

# Deliver into ~/Maildir/ (the tutorial's home_mailbox = Maildir/).
home_mailbox = "Maildir/"

# Log lines go to master's standard error (`postern start-fg` shows them;
# `postern start` appends them to queue/maillog). A system install logs to
# syslog, as Postfix does (maillog_destination = "syslog", the default).
maillog_destination = "stderr"

# Everything lives under this directory; nothing here needs root.
queue_directory = {queue}
daemon_directory = {daemon_dir}
mail_owner = {me}
mail_spool_directory = {spool}
alias_maps = [{aliases}]
alias_database = [{aliases}]
# Users of this instance: Dovecot passwd-file layout (user:{{SCHEME}}hash:uid:gid::home::).
passwd_file = {passwd}
# Who may send as which address after AUTH (submission and smtps refuse
# a MAIL FROM the logged-in user does not own: reject_sender_login_mismatch).
smtpd_sender_login_maps = [{sender_logins}]

# TLS with the self-signed certificate init made for $myhostname,
# localhost, 127.0.0.1 and ::1. Put a real certificate and key in these
# files (or point the parameters elsewhere) and run `postern reload`.
smtpd_tls_cert_file = {tls_cert}
smtpd_tls_key_file = {tls_key}
smtpd_tls_security_level = "may"
smtpd_tls_loglevel = 1
"#,
        dir = dir.display(),
        hostname = toml_str(&hostname),
        domain = toml_str(&domain),
        queue = d("queue"),
        daemon_dir = toml_str(&daemon_dir.display().to_string()),
        me = toml_str(&me),
        spool = d("mail"),
        aliases = d("aliases"),
        passwd = d("passwd"),
        sender_logins = toml_str(&format!("hash:{}", dir.join("sender_logins").display())),
        tls_cert = d(TLS_CERT),
        tls_key = d(TLS_KEY),
    );
    let master_toml = format!(
        r#"# master.toml of a Postern development instance: the service table
# (Postfix's master.cf). maxproc is the number of worker processes that
# share a service's listening socket; each serves many connections.

# smtp (25) for mail from other servers; submission (587: STARTTLS and
# AUTH required) and smtps (465: implicit TLS) for users' mail clients.
# AUTH is checked by authd against the passwd file below.
[[service]]
name = "smtp"
type = "inet"
listen = [{smtp}]
maxproc = 2
command = "smtpd"

[[service]]
name = "submission"
type = "inet"
listen = [{submission}]
maxproc = 1
command = "smtpd"
[service.options]
syslog_name = "postern/submission"
smtpd_tls_security_level = "encrypt"
smtpd_sasl_auth_enable = "yes"
smtpd_tls_auth_only = "yes"
smtpd_client_restrictions = "permit_sasl_authenticated, reject"
smtpd_sender_restrictions = "reject_sender_login_mismatch"

[[service]]
name = "smtps"
type = "inet"
listen = [{smtps}]
maxproc = 1
command = "smtpd"
[service.options]
syslog_name = "postern/smtps"
smtpd_tls_wrappermode = "yes"
smtpd_sasl_auth_enable = "yes"
smtpd_client_restrictions = "permit_sasl_authenticated, reject"
smtpd_sender_restrictions = "reject_sender_login_mismatch"

# Counts each client's connections across every smtpd process
# (Postfix's anvil): smtpd_client_connection_count_limit and
# smtpd_client_connection_rate_limit. Exactly one.
[[service]]
name = "anvil"
type = "unix"
maxproc = 1
command = "anvil"

# The one process that checks passwords (SASL for smtpd, later POP3 and
# IMAP): passwd-file users, or system users through PAM. Here it runs as
# you and checks the passwd-file of this instance. Exactly one.
[[service]]
name = "authd"
type = "unix"
unpriv = false
maxproc = 1
command = "authd"

[[service]]
name = "pickup"
type = "unix"
private = false
wakeup = 60
maxproc = 1
command = "pickup"

[[service]]
name = "qmgr"
type = "unix"
private = false
wakeup = 300
maxproc = 1
command = "qmgr"

# The SMTP client: mail for other domains, to their MX hosts or a
# relayhost. The same name as the inet smtp service above, as in
# master.cf; `postern restart smtp` restarts both, `smtp/unix` this one.
[[service]]
name = "smtp"
type = "unix"
maxproc = 1
command = "smtp-client"

# The same client for relay_domains (relay_transport = relay), as
# Postfix's relay service: a queue and limits of its own, so mail
# relayed inward does not wait behind mail going out.
[[service]]
name = "relay"
type = "unix"
maxproc = 1
command = "smtp-client"

[service.options]
syslog_name = "postern/relay"

[[service]]
name = "local"
type = "unix"
unpriv = false
maxproc = 2
command = "local-delivery"

# POP3 (the tutorial's `telnet mail 110`, user suporte, pass suporte):
# pop3 (110, STLS) and pop3s (995, implicit TLS) are the login services;
# after a login they hand the session to a pop3-mail process, which
# master starts on demand and which serves that one user's Maildir.
[[service]]
name = "pop3"
type = "inet"
listen = [{pop3}]
maxproc = 1
command = "pop3d"

[[service]]
name = "pop3s"
type = "inet"
listen = [{pop3s}]
maxproc = 1
command = "pop3d"
[service.options]
syslog_name = "postern/pop3s"
pop3_tls_wrappermode = "yes"

[[service]]
name = "pop3-mail"
type = "unix"
unpriv = false
spawn = "on-demand"
maxproc = 20
command = "pop3d"
args = ["mail"]

# IMAP (Thunderbird, mutt, curl imap://): imap (143, STARTTLS) and imaps
# (993, implicit TLS) are the login services; after a login they hand the
# session to an imap-mail process, started on demand, which serves that
# one user's Maildir and folders.
[[service]]
name = "imap"
type = "inet"
listen = [{imap}]
maxproc = 1
command = "imapd"

[[service]]
name = "imaps"
type = "inet"
listen = [{imaps}]
maxproc = 1
command = "imapd"
[service.options]
syslog_name = "postern/imaps"
imap_tls_wrappermode = "yes"

[[service]]
name = "imap-mail"
type = "unix"
unpriv = false
spawn = "on-demand"
maxproc = 20
command = "imapd"
args = ["mail"]
"#,
        smtp = toml_str(&smtp),
        submission = toml_str(&submission),
        smtps = toml_str(&smtps),
        pop3 = toml_str(&pop3),
        pop3s = toml_str(&pop3s),
        imap = toml_str(&imap),
        imaps = toml_str(&imaps),
    );
    let aliases = "# Aliases of this instance (the format of /etc/aliases). After editing,\n\
                   # run newaliases, or just wait: local delivery rereads a changed file.\n\
                   postmaster: root\nMAILER-DAEMON: postmaster\nabuse: postmaster\n"
        .to_string()
        + &format!("root: {}\n", users[0].0);
    let mut passwd =
        String::from("# user:{SCHEME}hash:uid:gid:gecos:home:shell:extra (Dovecot passwd-file)\n");
    for (name, pass) in &users {
        let home = dir.join("home").join(name);
        let user = mail_auth::User {
            name: name.clone(),
            uid,
            gid,
            home: home.clone(),
            password_hash: None,
        };
        passwd.push_str(&mail_auth::format_passwd_line(&user, &mail_auth::hash_password(pass)));
        passwd.push('\n');
        let maildir = home.join("Maildir");
        mkdir(&home)?;
        mail_maildir::make(&maildir).map_err(|e| e.to_string())?;
        for f in TUTORIAL_FOLDERS {
            mail_maildir::make_folder(&maildir, f).map_err(|e| e.to_string())?;
        }
    }
    let write = |name: &str, text: &str, mode: u32| {
        let p = dir.join(name);
        stdx::fs::atomic_write(&p, text.as_bytes(), mode)
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write("main.toml", &main_toml, 0o644)?;
    write("master.toml", &master_toml, 0o644)?;
    write("aliases", &aliases, 0o644)?;
    let mut logins =
        String::from("# Envelope sender -> the logins that own it (smtpd_sender_login_maps).\n");
    for (name, _) in &users {
        logins.push_str(&format!("{name}@{domain} {name}\n"));
    }
    write("sender_logins", &logins, 0o644)?;
    write("passwd", &passwd, 0o600)?;
    let cert = mail_tls::self_signed(&[&hostname, "localhost", "127.0.0.1", "::1"])?;
    mkdir(&dir.join("tls"))?;
    write(TLS_CERT, &cert.cert_pem, 0o644)?;
    write(TLS_KEY, &cert.key_pem, 0o600)?;
    mail_config::check(&dir)
        .map_err(|e| format!("init wrote a configuration that does not load (a bug): {e}"))?;
    mail_queue::Queue::new(dir.join("queue")).create_layout().map_err(|e| e.to_string())?;

    let bin = daemon_dir.display();
    println!("Postern development instance written to {}", dir.display());
    if port(25) == 0 {
        println!(
            "  SMTP:    {smtp}   (port 0 means: any free port; see `postern -c {} status`)",
            dir.display()
        );
    } else {
        println!("  SMTP:    {smtp}");
        println!("  submission (STARTTLS + AUTH): {submission}   smtps (TLS + AUTH): {smtps}");
        println!("  POP3:    {pop3} (STLS)   pop3s (TLS): {pop3s}");
        println!("  IMAP:    {imap} (STARTTLS)   imaps (TLS): {imaps}");
    }
    for (n, p) in &users {
        println!(
            "  user:    {n}@{domain} (password {p}), Maildir {}",
            dir.join("home").join(n).join("Maildir").display()
        );
    }
    println!("  start:   {bin}/postern -c {} start-fg", dir.display());
    println!(
        "  send:    echo \"Teste de envio\" | {bin}/sendmail -C {} {}@{domain}",
        dir.display(),
        users[0].0
    );
    println!("  queue:   {bin}/postqueue -c {} -p", dir.display());
    Ok(Instance { dir, smtp, users, domain })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> InitOptions {
        InitOptions {
            users: Vec::new(),
            hostname: "mail.postern.test".into(),
            port_base: None,
            any_port: true,
        }
    }

    /// The certificate init writes verifies, for the names a client uses,
    /// against the server built from the main.toml init wrote; the key is
    /// private, and a second init does not replace it.
    #[tokio::test]
    async fn dev_instance_has_a_certificate_clients_can_verify() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("inst");
        init(&dir, &opts()).expect("init");
        let mode =
            |p: &str| std::fs::metadata(dir.join(p)).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(TLS_KEY), 0o600);
        assert_eq!(mode(TLS_CERT) & 0o600, 0o600);

        let main = mail_config::Main::load(&dir).expect("main.toml loads");
        let t = mail_config::settings::SmtpdTls::new(&main);
        assert_eq!(t.smtpd_tls_security_level, mail_config::settings::TlsLevel::May);
        assert_eq!(t.smtpd_tls_cert_file, Some(dir.join(TLS_CERT)));
        assert_eq!(t.smtpd_tls_key_file, Some(dir.join(TLS_KEY)));
        let server = mail_tls::ServerTls::load(&mail_tls::ServerSettings::from_config(&t))
            .expect("the server loads the files");
        let pem = std::fs::read(dir.join(TLS_CERT)).expect("cert");
        let client = mail_tls::TlsConnector::from(
            mail_tls::client_config_trusting(&pem).expect("client config"),
        );
        for name in ["localhost", "127.0.0.1", "::1", "mail.postern.test"] {
            let (c_io, s_io) = tokio::io::duplex(16 * 1024);
            let sn = mail_tls::rustls::pki_types::ServerName::try_from(name).expect("name");
            let (s, c) = tokio::join!(
                server.accept(s_io, std::time::Duration::from_secs(10)),
                client.connect(sn.to_owned(), c_io)
            );
            c.unwrap_or_else(|e| panic!("{name}: {e}"));
            s.unwrap_or_else(|e| panic!("{name}: {e}"));
        }

        // A second init in the same place refuses, and the key is unchanged.
        let key = std::fs::read(dir.join(TLS_KEY)).expect("key");
        assert!(init(&dir, &opts()).unwrap_err().contains("already has a main.toml"));
        std::fs::remove_file(dir.join("main.toml")).expect("rm");
        let e = init(&dir, &opts()).unwrap_err();
        assert!(e.contains("already has tls/key.pem"), "{e}");
        assert_eq!(std::fs::read(dir.join(TLS_KEY)).expect("key"), key);
    }

    #[test]
    fn user_specs() {
        assert_eq!(parse_user("maria:s3:cr3t"), Ok(("maria".into(), "s3:cr3t".into())));
        assert!(parse_user("maria").unwrap_err().contains("expected NAME:PASSWORD"));
        assert!(parse_user("../x:p").unwrap_err().contains("the name may use"));
        assert!(parse_user(":p").is_err());
    }
}
