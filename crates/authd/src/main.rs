//! SUMMARY
//!   authd - the Postern password checker
//!
//! DESCRIPTION
//!   authd is the one process that checks passwords (what
//!   courier-authdaemon is in the tutorial, and Dovecot's auth process):
//!   smtpd (SASL PLAIN and LOGIN) and pop3d, and later imapd, send it a
//!   user name, a password, the client's address and whether the
//!   connection is TLS, over `private/authd` (`mail_ipc::auth`), and get
//!   back `Ok` with the user's canonical name, uid, gid and home, `Fail`
//!   (wrong user or password, never saying which) or `TempFail` (the
//!   check could not be made now).
//!
//!   With `passwd_file` set, users are the virtual users of that
//!   Dovecot-style file and their stored hashes are checked
//!   (`{SHA512-CRYPT}`, `{SHA256-CRYPT}`, `{YESCRYPT}`, `{PLAIN}`, or bare
//!   `$6$`/`$5$`/`$y$` crypt strings; `postern pw` makes them). Without
//!   it, users are system users: the password goes through PAM with the
//!   service `authd_pam_service` (`/etc/pam.d/postern`, falling back to
//!   `/etc/pam.d/other`), `pam_authenticate` then `pam_acct_mgmt`, and
//!   uid, gid and home come from the passwd database. A system user whose
//!   uid is below `authd_first_valid_uid` (default 1000: root and the
//!   system accounts) is refused; passwd-file users log in with whatever
//!   uid their line gives. Empty passwords are always refused.
//!
//! FAILURE DELAYS
//!   Counted per client address (IPv6: per /64) and per user name: a
//!   key's count is its failures since it was last zero, and returns to
//!   zero 15 minutes after its last failure. A `Fail` reply waits
//!   min(2^(n-1), 15) seconds, n the larger of the address's and the
//!   user's count including this failure (1, 2, 4, 8, 15, 15, ... s).
//!   While an address has 5 or more failures, every reply to it waits
//!   its delay, successes too. A success resets the user name's count,
//!   not the address's. At most 4 checks per client address are in
//!   flight (waiting included); more get `TempFail`. Each table holds at
//!   most 16,384 keys; when full, the key with the oldest last failure is
//!   forgotten (logged).
//!
//! TRIGGERS
//!   Started by master as the unix service `authd` (`private/authd`),
//!   maxproc 1, `unpriv = false`. SIGTERM stops at once; SIGUSR1 finishes
//!   the request each connection has in hand, then exits.
//!
//! SECURITY
//!   Runs as root (pam_unix reads /etc/shadow only for root); in a
//!   development instance, as the invoking user, when PAM can check only
//!   that user's own password (through unix_chkpwd) and the passwd-file
//!   is used anyway. Talks only over its private socket (mode 0600,
//!   mail_owner); every request is bounded (frame size, user 256 and
//!   password 1024 bytes, time to finish a frame, connections, checks in
//!   flight). Password checks run on blocking threads, at most 4 at
//!   once, at most 256 waiting. Passwords are never logged.
//!
//! CONFIGURATION
//!   passwd_file, authd_pam_service, authd_first_valid_uid,
//!   queue_directory, syslog_name, maillog_file.
//!
//! DIAGNOSTICS
//!   One line per check, in Postfix's shape
//!   (`postern/authd[PID]: ...`): `SERVICE authentication succeeded:
//!   user=<NAME>, rhost=[ADDR], tls=yes|no, uid=N, db=pam|passwd-file`,
//!   and as warnings `SERVICE authentication failed: ..., reason=TEXT`
//!   (the PAM error text, or `password mismatch`, `unknown user`, ...)
//!   and `SERVICE authentication temporarily failed: ...`, each with
//!   `delay=Ns` when the reply waited. smtpd logs its own
//!   `SASL LOGIN authentication failed` line, which fail2ban's
//!   postfix-sasl filter reads. Broken client connections and a full
//!   failure table are warnings; start-up failures are fatal.
//!
//! STANDARDS
//!   None (the SASL mechanisms, RFC 4616, are parsed by the asking
//!   daemon with `mail_auth::sasl`).
#![forbid(unsafe_code)]

mod pam;
mod penalty;
mod service;

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let result = (|| {
        let mut daemon = mail_daemon::init("authd")?;
        let common = mail_config::settings::Common::new(&daemon.config);
        let settings = mail_config::settings::Authd::new(&daemon.config);
        let users = match common.passwd_file {
            Some(path) => service::Users::PasswdFile(mail_auth::UserDb::passwd_file(path)),
            None => service::Users::System {
                pam_service: settings.authd_pam_service,
                first_valid_uid: settings.authd_first_valid_uid,
            },
        };
        let authd = Arc::new(service::Authd::new(users));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(mail_daemon::run(&mut daemon, authd))?;
        Ok(())
    })();
    mail_daemon::exit_on_fatal("authd", result)
}
