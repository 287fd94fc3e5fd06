//! The main.toml parameters smtpd uses, converted once at start-up into
//! the plain structs the protocol machine and cleanup take.

use std::time::Duration;

use mail_cleanup::CleanupParams;
pub(crate) use mail_config::settings::TlsLevel;
use mail_config::{Main, settings};
use smtp_proto::ServerParams;

/// Everything a session needs from the configuration besides the policy.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// For `smtp_proto::Server`.
    pub(crate) server: ServerParams,
    /// For `mail_cleanup::cleanup`.
    pub(crate) cleanup: CleanupParams,
    /// `smtpd_timeout`: the longest wait for a client read or write.
    pub(crate) timeout: Duration,
    /// `smtpd_client_connection_count_limit`; 0 means no limit.
    pub(crate) connection_limit: u32,
    /// `smtpd_process_connection_limit`: sessions one process serves.
    pub(crate) process_connection_limit: usize,
    /// `smtpd_session_deadline`; zero disables it.
    pub(crate) session_deadline: Duration,
    /// `smtpd_data_deadline`; zero disables it.
    pub(crate) data_deadline: Duration,
    /// `smtpd_junk_command_limit`.
    pub(crate) junk_command_limit: u32,
    /// `smtpd_soft_error_limit`: past this many errors every reply is
    /// delayed by [`ERROR_SLEEP`].
    pub(crate) soft_error_limit: u32,
    /// `queue_minfree`, or 1.5 × `message_size_limit` when that is 0.
    pub(crate) minfree: u64,
    /// `smtpd_tls_security_level`.
    pub(crate) tls_level: TlsLevel,
    /// `smtpd_tls_wrappermode`: TLS from the first byte (smtps).
    pub(crate) wrappermode: bool,
    /// `smtpd_tls_auth_only`.
    pub(crate) tls_auth_only: bool,
    /// `smtpd_tls_loglevel`: the handshake summary is logged from 1.
    pub(crate) tls_loglevel: u32,
    /// `smtpd_sasl_auth_enable`.
    pub(crate) sasl_enabled: bool,
    /// `smtpd_starttls_timeout`.
    pub(crate) starttls_timeout: Duration,
    /// What `mail_tls::ServerTls::load` reads.
    pub(crate) tls_files: mail_tls::ServerSettings,
}

/// Postfix's `smtpd_error_sleep_time` default: the delay before replying
/// to a client that has made too many errors.
pub(crate) const ERROR_SLEEP: Duration = Duration::from_secs(1);

/// Used when `smtpd_timeout` is 0, which would hang up at once.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl Settings {
    /// Builds smtpd's settings from the typed `Common` and `Smtpd` structs
    /// of mail-config (myhostname, smtpd_banner, message_size_limit,
    /// smtpd_recipient_limit, smtpd_hard_error_limit,
    /// smtpd_soft_error_limit, smtpd_helo_required, disable_vrfy_command,
    /// smtpd_timeout, smtpd_client_connection_count_limit,
    /// smtpd_process_connection_limit, smtpd_session_deadline,
    /// smtpd_data_deadline, smtpd_junk_command_limit, queue_minfree,
    /// myorigin, append_at_myorigin, header_size_limit and mail_name).
    pub(crate) fn from_config(c: &Main) -> Settings {
        let common = settings::Common::new(c);
        let smtpd = settings::Smtpd::new(c);
        let tls = settings::SmtpdTls::new(c);
        let message_size_limit = common.message_size_limit;
        let server = ServerParams {
            hostname: common.myhostname.clone(),
            banner: smtpd.smtpd_banner,
            max_message_size: message_size_limit,
            max_recipients: smtpd.smtpd_recipient_limit,
            hard_error_limit: smtpd.smtpd_hard_error_limit,
            helo_required: smtpd.smtpd_helo_required,
            vrfy_enabled: !smtpd.disable_vrfy_command,
            // Whether a certificate loads is known only to the process;
            // `Context` turns this off when it does not.
            starttls_offered: tls.smtpd_tls_security_level != TlsLevel::None
                && !tls.smtpd_tls_wrappermode,
            // The session decides (TLS state, authd).
            auth_mechanisms: Vec::new(),
            // RFC 5321 §4.1.1.4: only CRLF.CRLF ends DATA (no SMTP smuggling).
            bare_lf_ends_data: false,
        };
        let cleanup = CleanupParams {
            myhostname: common.myhostname,
            myorigin: common.myorigin,
            append_at_myorigin: common.append_at_myorigin,
            header_size_limit: common.header_size_limit,
            mail_name: common.mail_name,
            // Set from the policy's tables (`serve::Context`).
            header_rewrite: None,
        };
        let timeout = match smtpd.smtpd_timeout {
            Duration::ZERO => DEFAULT_TIMEOUT,
            t => t,
        };
        let minfree = match smtpd.queue_minfree {
            0 => message_size_limit.saturating_add(message_size_limit / 2),
            n => n,
        };
        Settings {
            server,
            cleanup,
            timeout,
            connection_limit: smtpd.smtpd_client_connection_count_limit,
            process_connection_limit: smtpd.smtpd_process_connection_limit.max(1),
            session_deadline: smtpd.smtpd_session_deadline,
            data_deadline: smtpd.smtpd_data_deadline,
            junk_command_limit: smtpd.smtpd_junk_command_limit,
            soft_error_limit: smtpd.smtpd_soft_error_limit,
            minfree,
            tls_level: tls.smtpd_tls_security_level,
            wrappermode: tls.smtpd_tls_wrappermode,
            tls_auth_only: tls.smtpd_tls_auth_only,
            tls_loglevel: tls.smtpd_tls_loglevel,
            sasl_enabled: smtpd.smtpd_sasl_auth_enable,
            starttls_timeout: match smtpd.smtpd_starttls_timeout {
                Duration::ZERO => DEFAULT_TIMEOUT,
                t => t,
            },
            tls_files: mail_tls::ServerSettings::from_config(&tls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Settings {
        Settings::from_config(&Main::from_str(Path::new("/etc/postern/main.toml"), text).unwrap())
    }

    #[test]
    fn defaults_follow_postfix() {
        let s = load(
            "myhostname = \"mail.fiap.edu.br\"\nmydomain = \"fiap.edu.br\"\nmyorigin = \"$mydomain\"\n",
        );
        assert_eq!(s.server.hostname, "mail.fiap.edu.br");
        assert_eq!(s.server.banner, "mail.fiap.edu.br ESMTP Postern");
        assert_eq!(s.server.max_message_size, 10_240_000);
        assert_eq!(s.server.max_recipients, 1000);
        assert_eq!(s.server.hard_error_limit, 20);
        assert!(!s.server.helo_required);
        // Postern turns VRFY off by default, unlike Postfix (privacy).
        assert!(!s.server.vrfy_enabled);
        assert!(!s.server.starttls_offered);
        assert!(s.server.auth_mechanisms.is_empty());
        assert_eq!(s.cleanup.myorigin, "fiap.edu.br");
        assert!(s.cleanup.append_at_myorigin);
        assert_eq!(s.cleanup.header_size_limit, 102_400);
        assert_eq!(s.cleanup.mail_name, "Postern");
        assert_eq!(s.timeout, Duration::from_secs(300));
        assert_eq!(s.connection_limit, 50);
        assert_eq!(s.process_connection_limit, 256);
        assert_eq!(s.session_deadline, Duration::from_secs(3600));
        assert_eq!(s.data_deadline, Duration::from_secs(1800));
        assert_eq!(s.junk_command_limit, 100);
        assert_eq!(s.soft_error_limit, 10);
        assert_eq!(s.minfree, 15_360_000);
    }

    #[test]
    fn tutorial_settings() {
        let s = load(
            "myhostname = \"mail.fiap.edu.br\"\nsmtpd_banner = \"Bem Vindo - fiap.edu.br\"\n\
             disable_vrfy_command = true\nsmtpd_helo_required = true\nsmtpd_timeout = \"60s\"\n\
             queue_minfree = 1000\nmessage_size_limit = 0\n",
        );
        assert_eq!(s.server.banner, "Bem Vindo - fiap.edu.br");
        assert!(!s.server.vrfy_enabled);
        assert!(s.server.helo_required);
        assert_eq!(s.timeout, Duration::from_secs(60));
        assert_eq!(s.minfree, 1000);
        assert_eq!(s.server.max_message_size, 0);
    }
}
