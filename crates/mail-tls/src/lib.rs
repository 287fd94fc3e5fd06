//! Postern's one TLS module: the rustls server configuration smtpd (and
//! later pop3d and imapd) loads from `main.toml`, the client
//! configurations of the SMTP client and the tests, the summary of a
//! session in Postfix's log shape, and the self-signed certificate of
//! `postern init --dev`.
//!
//! Decision: every configuration is built with the aws-lc-rs crypto
//! provider returned by [`provider`], passed explicitly to
//! `ServerConfig::builder_with_provider` / `ClientConfig::builder_with_provider`;
//! nothing relies on a process-default provider. aws-lc-rs is rustls's
//! default and the provider rcgen and hickory's TLS features use, so the
//! workspace carries one C crypto library; `aws-lc-sys` builds here
//! with the C compiler alone (no cmake, about a minute and a half once),
//! and it is the faster provider for the handshakes a mail server does
//! most (ECDHE, RSA and ECDSA signatures). Because the provider is always
//! explicit, a second provider appearing in the dependency graph cannot
//! make rustls panic on an ambiguous default.
//!
//! Postern offers TLS 1.2 and 1.3 only; rustls has nothing older, and the
//! `*_tls_protocols` parameters refuse a value that would ask for it
//! ([`mail_config::settings::TlsProtocols`]).
//!
//! Certificates are loaded once, when a worker starts ([`ServerTls::load`]):
//! `postern reload` drains the old workers and starts new ones, which read
//! `main.toml` and the certificate files again, so a renewed certificate
//! takes effect without a restart and without dropping sessions.

mod client;
mod conn;
mod dev_cert;
mod pem;
mod server;
mod summary;

use std::sync::{Arc, OnceLock};

pub use client::{ClientLevel, client_config, client_config_trusting, unchecked_verifier};
pub use conn::{ClientConn, MaybeTls, ServerConn};
pub use dev_cert::{SelfSigned, self_signed};
pub use pem::LoadError;
pub use server::{HandshakeError, ServerSettings, ServerTls};
pub use summary::{TlsSummary, summary};

/// The acceptor and connector, so callers need not depend on tokio-rustls.
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The server side of an established session ([`ServerTls::accept`]).
pub type ServerStream<IO> = tokio_rustls::server::TlsStream<IO>;

/// The client side of an established session.
pub type ClientStream<IO> = tokio_rustls::client::TlsStream<IO>;

/// The crate's rustls, for the types in its signatures
/// (`rustls::pki_types::ServerName`, `rustls::ClientConfig`).
pub use rustls;

/// The one crypto provider of the workspace (aws-lc-rs). Every server and
/// client configuration is built from it.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())).clone()
}

/// The rustls versions a [`mail_config::settings::TlsProtocols`] enables,
/// newest first.
fn versions(
    p: mail_config::settings::TlsProtocols,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut v = Vec::with_capacity(2);
    if p.tls13 {
        v.push(&rustls::version::TLS13);
    }
    if p.tls12 {
        v.push(&rustls::version::TLS12);
    }
    v
}

#[cfg(test)]
mod tests;
