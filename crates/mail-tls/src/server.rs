//! The server side: certificates and keys from `smtpd_tls_cert_file`,
//! `smtpd_tls_key_file` or `smtpd_tls_chain_files`, a rustls
//! `ServerConfig` with TLS 1.2 as the floor, and a handshake with a time
//! bound whose failure smtpd logs as Postfix does
//! (`SSL_accept error from host[addr]: ...`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mail_config::settings::{SmtpdTls, TlsLevel, TlsProtocols};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{Error as RustlsError, InconsistentKeys, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::pem::{self, EXPECT_CERT, Item, LoadError};

const CERT_FILE: &str = "smtpd_tls_cert_file";
const KEY_FILE: &str = "smtpd_tls_key_file";
const CHAIN_FILES: &str = "smtpd_tls_chain_files";

/// What the server needs to know to load its TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `smtpd_tls_cert_file`: PEM, the server certificate first, then its
    /// chain. Ignored when `chain_files` is not empty.
    pub cert_file: Option<PathBuf>,
    /// `smtpd_tls_key_file`: PEM (PKCS#8, RSA or SEC1 EC); may be the
    /// certificate file. `None` means the certificate file.
    pub key_file: Option<PathBuf>,
    /// `smtpd_tls_chain_files`: each file holds a private key followed by
    /// its certificate chain (several key + chain groups may follow each
    /// other in one file). Several keys give several algorithms (RSA and
    /// ECDSA); each client gets the first one it can verify.
    pub chain_files: Vec<PathBuf>,
    /// The versions to offer.
    pub protocols: TlsProtocols,
}

impl ServerSettings {
    /// The settings of a loaded `main.toml` (with a service's overrides
    /// applied): `smtpd_tls_mandatory_protocols` when the level is
    /// `encrypt` (or the service is smtps, `smtpd_tls_wrappermode = yes`,
    /// where TLS is mandatory too), `smtpd_tls_protocols` otherwise, as
    /// Postfix chooses.
    pub fn from_config(t: &SmtpdTls) -> ServerSettings {
        let mandatory = t.smtpd_tls_security_level == TlsLevel::Encrypt || t.smtpd_tls_wrappermode;
        ServerSettings {
            cert_file: t.smtpd_tls_cert_file.clone(),
            key_file: t.smtpd_tls_key_file.clone(),
            chain_files: t.smtpd_tls_chain_files.clone(),
            protocols: if mandatory {
                t.smtpd_tls_mandatory_protocols
            } else {
                t.smtpd_tls_protocols
            },
        }
    }
}

/// A loaded server configuration. Cheap to clone; one per worker.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    acceptor: TlsAcceptor,
    protocols: Vec<&'static str>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("protocols", &self.protocols).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the certificate and key files and builds the configuration.
    /// A plain function of the files' contents: a worker calls it when it
    /// starts, so the workers `postern reload` starts see a replaced
    /// certificate.
    pub fn load(s: &ServerSettings) -> Result<ServerTls, LoadError> {
        let provider = crate::provider();
        let keys = if s.chain_files.is_empty() {
            vec![load_cert_and_key(s, &provider)?]
        } else {
            let mut keys = Vec::new();
            for f in &s.chain_files {
                keys.extend(load_chain_file(f, &provider)?);
            }
            keys
        };
        let versions = crate::versions(s.protocols);
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| LoadError::new("smtpd_tls_protocols", None, e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Keys(keys)));
        let config = Arc::new(config);
        let protocols = versions.iter().map(|v| protocol_name(v.version)).collect();
        Ok(ServerTls { acceptor: TlsAcceptor::from(config.clone()), config, protocols })
    }

    /// The acceptor, for callers that drive the handshake themselves.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// The protocol versions offered, newest first, in Postfix's spelling
    /// (`TLSv1.3`, `TLSv1.2`).
    pub fn protocols(&self) -> &[&'static str] {
        &self.protocols
    }

    /// Runs the server side of the handshake on `io`, giving up after
    /// `limit`. Bytes the client sent before the handshake must not have
    /// been read from `io` by the caller (after STARTTLS, smtpd discards
    /// what it had buffered, so pipelined commands are never executed).
    pub async fn accept<IO>(
        &self,
        io: IO,
        limit: Duration,
    ) -> Result<tokio_rustls::server::TlsStream<IO>, HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(limit, self.acceptor.accept(io)).await {
            Err(_) => Err(HandshakeError::Timeout(limit)),
            Ok(Err(e)) => Err(HandshakeError::from_io(e)),
            Ok(Ok(s)) => Ok(s),
        }
    }
}

/// Why a handshake failed. Its text is what follows
/// `SSL_accept error from host[addr]: ` in smtpd's log line.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client did not finish the handshake within the limit.
    Timeout(Duration),
    /// The connection closed during the handshake.
    LostConnection,
    /// A TLS protocol failure (rustls's description: no shared cipher
    /// suite, a bad record, an alert from the peer, ...), or an I/O error.
    Failed(String),
}

impl HandshakeError {
    fn from_io(e: std::io::Error) -> HandshakeError {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => HandshakeError::LostConnection,
            _ => match e.get_ref().and_then(|i| i.downcast_ref::<RustlsError>()) {
                Some(tls) => HandshakeError::Failed(tls.to_string()),
                None => HandshakeError::Failed(e.to_string()),
            },
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Timeout(d) => {
                write!(f, "timeout: the TLS handshake did not complete in {}s", d.as_secs())
            }
            HandshakeError::LostConnection => f.write_str("lost connection"),
            HandshakeError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Postfix's name of a protocol version.
pub(crate) fn protocol_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1",
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1",
        rustls::ProtocolVersion::SSLv3 => "SSLv3",
        rustls::ProtocolVersion::SSLv2 => "SSLv2",
        _ => "unknown",
    }
}

/// `smtpd_tls_cert_file` and `smtpd_tls_key_file`.
fn load_cert_and_key(
    s: &ServerSettings,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, LoadError> {
    let Some(cert_file) = &s.cert_file else {
        return Err(LoadError::new(
            CERT_FILE,
            None,
            "not set; set smtpd_tls_cert_file and smtpd_tls_key_file (or smtpd_tls_chain_files), \
             or smtpd_tls_security_level = none",
        ));
    };
    let key_file = s.key_file.as_deref().unwrap_or(cert_file);
    let certs = pem::read_certs(CERT_FILE, cert_file)?;
    let key = pem::read_key(KEY_FILE, key_file)?;
    let desc = format!("the certificate in {CERT_FILE} {}", cert_file.display());
    certified(provider, certs, key, KEY_FILE, key_file, &desc)
}

/// One `smtpd_tls_chain_files` file: groups of a key followed by its
/// certificates.
fn load_chain_file(
    path: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Vec<Arc<CertifiedKey>>, LoadError> {
    let err = |problem: String| LoadError::new(CHAIN_FILES, Some(path), problem);
    let mut groups: Vec<(PrivateKeyDer<'static>, Vec<CertificateDer<'static>>)> = Vec::new();
    for item in pem::read_items(CHAIN_FILES, path)? {
        match item {
            Item::Key(k) => groups.push((k, Vec::new())),
            Item::Cert(c) => match groups.last_mut() {
                Some((_, certs)) => certs.push(c),
                None => {
                    return Err(err(
                        "a certificate comes before any private key; each private key must be \
                         followed by its certificate chain, server certificate first"
                            .into(),
                    ));
                }
            },
        }
    }
    if groups.is_empty() {
        return Err(err(format!(
            "no private key found in the file; expected a private key (PEM 'BEGIN PRIVATE KEY') \
             followed by its certificate chain ({EXPECT_CERT})"
        )));
    }
    let n = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (key, certs))| {
            let which = if n == 1 {
                "the private key".to_owned()
            } else {
                format!("private key {}", i + 1)
            };
            if certs.is_empty() {
                return Err(err(format!(
                    "no certificate follows {which}; {EXPECT_CERT} after each key"
                )));
            }
            certified(provider, certs, key, CHAIN_FILES, path, "the certificate that follows it")
        })
        .collect()
}

/// Pairs a chain with its key, checking that they belong together.
fn certified(
    provider: &rustls::crypto::CryptoProvider,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    key_param: &'static str,
    key_path: &Path,
    cert_desc: &str,
) -> Result<Arc<CertifiedKey>, LoadError> {
    let err = |problem: String| LoadError::new(key_param, Some(key_path), problem);
    let signer = provider.key_provider.load_private_key(key).map_err(|e| {
        err(format!(
            "the private key cannot be used ({e}); expected an RSA (2048 bits or more), \
             ECDSA P-256/P-384 or Ed25519 key"
        ))
    })?;
    let ck = CertifiedKey::new(certs, signer);
    match ck.keys_match() {
        Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(Arc::new(ck)),
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(err(format!(
            "the private key does not match {cert_desc}; \
             check that the key and the certificate belong together (and that the server \
             certificate comes first)"
        ))),
        Err(e) => Err(err(format!(
            "{cert_desc} cannot be parsed ({e}); {EXPECT_CERT} with an X.509 certificate"
        ))),
    }
}

/// The server's keys; a client gets the first one it can verify (an
/// ECDSA key for a modern client, RSA for one that offers only RSA
/// signatures), as OpenSSL chooses among several Postfix chain files.
#[derive(Debug)]
struct Keys(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for Keys {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered = hello.signature_schemes();
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(offered).is_some())
            .or_else(|| self.0.first())
            .cloned()
    }
}
