//! What the agent needs from main.toml and master.toml, read once per
//! worker: `mail_config::settings::SmtpClient`, the TLS client
//! configuration built from it, the password tables, and the addresses
//! this instance listens on (for "loops back to myself").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mail_config::settings::SmtpClient;
use mail_tls::ClientLevel;
use mail_tls::rustls::ClientConfig;

/// Everything a delivery reads.
#[derive(Debug)]
pub struct Settings {
    /// The parameters.
    pub p: SmtpClient,
    /// `smtp_tls_security_level`.
    pub level: ClientLevel,
    /// The TLS client configuration for `level` (`None` for `none`).
    pub tls: Option<Arc<ClientConfig>>,
    /// `smtp_sasl_password_maps`.
    pub sasl: mail_lookup::maps::Maps,
    /// `queue_directory`.
    pub queue_directory: PathBuf,
    /// The inet addresses this instance's master listens on (port known).
    pub own_addresses: Vec<SocketAddr>,
}

impl Settings {
    /// From the loaded configuration; the error names the parameter.
    pub fn new(
        main: &mail_config::Main,
        master: &mail_config::MasterFile,
    ) -> Result<Settings, String> {
        let p = SmtpClient::new(main);
        let level = ClientLevel::parse(&p.smtp_tls_security_level)
            .map_err(|e| format!("smtp_tls_security_level: {e}"))?;
        let tls = mail_tls::client_config(level, p.smtp_tls_cafile.as_deref())
            .map_err(|e| format!("smtp_tls_CAfile: {e}"))?;
        let sasl = mail_lookup::maps::Maps::new(p.smtp_sasl_password_maps.clone());
        let queue_directory = mail_config::settings::Common::new(main).queue_directory;
        let own_addresses = master
            .services
            .iter()
            .filter(|s| s.kind == mail_config::ServiceKind::Inet)
            .flat_map(|s| s.listen.iter())
            .filter_map(|l| l.parse::<SocketAddr>().ok())
            .filter(|a| a.port() != 0)
            .collect();
        Ok(Settings { p, level, tls, sasl, queue_directory, own_addresses })
    }
}
