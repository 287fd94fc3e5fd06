//! Reading PEM certificate and key files, with errors that name the
//! parameter, the file, what is wrong and what to do about it.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

/// A certificate or key file larger than this is refused: a chain of a
/// dozen certificates and a key is a few tens of kilobytes.
const MAX_PEM_FILE: u64 = 1 << 20;

/// What goes wrong loading TLS files or building a configuration. Its
/// text is one line for the log and for `postern check`:
/// `smtpd_tls_cert_file /x/cert.pem: no certificate found in the file; expected PEM 'BEGIN CERTIFICATE'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The parameter that names the file (`smtpd_tls_cert_file`, ...).
    pub param: &'static str,
    /// The file, when the problem is in one.
    pub path: Option<PathBuf>,
    /// What is wrong and what to do.
    pub problem: String,
}

impl LoadError {
    pub(crate) fn new(
        param: &'static str,
        path: Option<&Path>,
        problem: impl Into<String>,
    ) -> Self {
        LoadError { param, path: path.map(Path::to_owned), problem: problem.into() }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} {}: {}", self.param, p.display(), self.problem),
            None => write!(f, "{}: {}", self.param, self.problem),
        }
    }
}

impl std::error::Error for LoadError {}

/// One PEM section we use, in file order.
pub(crate) enum Item {
    Cert(CertificateDer<'static>),
    Key(PrivateKeyDer<'static>),
}

pub(crate) const EXPECT_CERT: &str = "expected PEM 'BEGIN CERTIFICATE'";
pub(crate) const EXPECT_KEY: &str =
    "expected PEM 'BEGIN PRIVATE KEY', 'BEGIN RSA PRIVATE KEY' or 'BEGIN EC PRIVATE KEY'";

/// Reads `path` (bounded) and returns its certificates and keys in file
/// order; other PEM sections (EC PARAMETERS, ...) are skipped.
pub(crate) fn read_items(param: &'static str, path: &Path) -> Result<Vec<Item>, LoadError> {
    let err = |problem: String| LoadError::new(param, Some(path), problem);
    let file = std::fs::File::open(path).map_err(|e| {
        err(format!(
            "cannot open the file: {e}; check the path, and that the user the daemon runs as may read it"
        ))
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(err(format!(
            "the file is larger than {MAX_PEM_FILE} bytes; expected PEM certificates and a key"
        )));
    }
    let mut rest: &[u8] = &bytes;
    let mut items = Vec::new();
    loop {
        match rustls_pki_types::pem::from_buf(&mut rest) {
            Ok(None) => break,
            Ok(Some((kind, der))) => match kind {
                SectionKind::Certificate => items.push(Item::Cert(CertificateDer::from(der))),
                SectionKind::PrivateKey => {
                    items.push(Item::Key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))))
                }
                SectionKind::RsaPrivateKey => {
                    items.push(Item::Key(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))))
                }
                SectionKind::EcPrivateKey => {
                    items.push(Item::Key(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))))
                }
                _ => {}
            },
            Err(e) => {
                return Err(err(format!(
                    "the file is not valid PEM ({}); {EXPECT_CERT} and key sections",
                    pem_error_text(&e)
                )));
            }
        }
    }
    Ok(items)
}

/// The PEM error without the byte-vector debug output of its fields.
fn pem_error_text(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => {
            format!("no \"-----END {}-----\" line", String::from_utf8_lossy(end_marker))
        }
        E::IllegalSectionStart { line } => {
            format!("bad section start \"{}\"", String::from_utf8_lossy(line).trim())
        }
        E::Base64Decode(m) => format!("bad base64: {m}"),
        other => other.to_string(),
    }
}

/// The certificates of `path`, leaf first.
pub(crate) fn read_certs(
    param: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs: Vec<_> = read_items(param, path)?
        .into_iter()
        .filter_map(|i| match i {
            Item::Cert(c) => Some(c),
            Item::Key(_) => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(LoadError::new(
            param,
            Some(path),
            format!("no certificate found in the file; {EXPECT_CERT}"),
        ));
    }
    Ok(certs)
}

/// The first private key of `path`.
pub(crate) fn read_key(
    param: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, LoadError> {
    read_items(param, path)?
        .into_iter()
        .find_map(|i| match i {
            Item::Key(k) => Some(k),
            Item::Cert(_) => None,
        })
        .ok_or_else(|| {
            LoadError::new(
                param,
                Some(path),
                format!("no private key found in the file; {EXPECT_KEY}"),
            )
        })
}
