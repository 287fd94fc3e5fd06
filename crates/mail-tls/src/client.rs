//! The client side: Postfix's `smtp_tls_security_level` turned into a
//! rustls `ClientConfig`, for the SMTP client and for tests.
//!
//! Levels `may` and `encrypt` encrypt without checking the server's
//! certificate: Postfix's opportunistic semantics, because most MX hosts'
//! certificates do not name the MX host, and a check that would fail
//! would only push mail back to plain text. The handshake's signatures are
//! still verified, so the session is bound to the certificate's key.
//! `verify` and `secure` check the chain against `smtp_tls_CAfile`, or,
//! when that is empty, the system's roots read from `/etc/ssl/certs` with
//! rustls-native-certs (the operator's CA store, which also knows a local
//! CA); the name they check is the one the caller connects to (Postfix's
//! `verify` checks the MX host name, `secure` the next-hop domain: that
//! choice is the SMTP client's).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pem::{EXPECT_CERT, LoadError};

/// `smtp_tls_security_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLevel {
    /// No TLS.
    None,
    /// TLS when the server offers STARTTLS; the certificate is not checked.
    May,
    /// TLS required; the certificate is not checked.
    Encrypt,
    /// TLS required, the certificate must verify and name the MX host.
    Verify,
    /// TLS required, the certificate must verify and name the next hop.
    Secure,
}

impl ClientLevel {
    /// Parses Postfix's word (case-insensitive; empty is `none`).
    pub fn parse(word: &str) -> Result<ClientLevel, String> {
        match word.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(ClientLevel::None),
            "may" => Ok(ClientLevel::May),
            "encrypt" => Ok(ClientLevel::Encrypt),
            "verify" => Ok(ClientLevel::Verify),
            "secure" => Ok(ClientLevel::Secure),
            other => Err(format!(
                "unsupported TLS security level \"{other}\"; expected none, may, encrypt, verify or secure"
            )),
        }
    }
}

/// How errors name the CA file and the client; the SMTP client's log
/// line adds which parameter it came from.
const CA_FILE: &str = "CA file";
const CLIENT: &str = "TLS client";

/// The client configuration for `level`; `None` for [`ClientLevel::None`].
/// `ca_file` (`smtp_tls_CAfile`) is used by `verify` and `secure`; without
/// it they trust the system's roots.
pub fn client_config(
    level: ClientLevel,
    ca_file: Option<&Path>,
) -> Result<Option<Arc<ClientConfig>>, LoadError> {
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| LoadError::new(CLIENT, None, e.to_string()))?;
    let config = match level {
        ClientLevel::None => return Ok(None),
        ClientLevel::May | ClientLevel::Encrypt => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(crate::provider())))
            .with_no_client_auth(),
        ClientLevel::Verify | ClientLevel::Secure => {
            let roots = match ca_file {
                Some(f) => roots_from_file(CA_FILE, f)?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(Arc::new(config)))
}

/// A verifying client that trusts exactly the certificate(s) in
/// `cert_pem`, for tests that check the instance's own self-signed
/// certificate (name and chain are checked as at level `verify`).
pub fn client_config_trusting(cert_pem: &[u8]) -> Result<Arc<ClientConfig>, LoadError> {
    let mut roots = RootCertStore::empty();
    let mut n = 0;
    for c in <CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(cert_pem) {
        let c =
            c.map_err(|e| LoadError::new("trusted certificate", None, format!("bad PEM: {e}")))?;
        roots
            .add(c)
            .map_err(|e| LoadError::new("trusted certificate", None, format!("unusable: {e}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(LoadError::new(
            "trusted certificate",
            None,
            format!("no certificate; {EXPECT_CERT}"),
        ));
    }
    let config = ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| LoadError::new("trusted certificate", None, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn roots_from_file(param: &'static str, path: &Path) -> Result<RootCertStore, LoadError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(crate::pem::read_certs(param, path)?);
    if added == 0 {
        return Err(LoadError::new(
            param,
            Some(path),
            "none of the certificates in the file can be used as a trust anchor",
        ));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, LoadError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(LoadError::new(
            CA_FILE,
            None,
            format!(
                "none given, and no system CA certificates were found{why}; install \
                 ca-certificates or give a CA file"
            ),
        ));
    }
    Ok(roots)
}

/// A verifier that accepts any certificate but still checks the
/// handshake's signatures with `provider`'s algorithms: what levels `may`
/// and `encrypt` use, and what the benchmark's load generator uses against
/// throwaway certificates.
pub fn unchecked_verifier(
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Arc<dyn ServerCertVerifier> {
    Arc::new(Unchecked(provider))
}

/// See [`unchecked_verifier`].
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
