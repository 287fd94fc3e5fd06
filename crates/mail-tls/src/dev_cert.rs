//! The self-signed certificate of a development instance
//! (`postern init --dev`), made with rcgen on the same provider.

use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

/// A certificate and its key, both PEM.
#[derive(Clone)]
pub struct SelfSigned {
    /// `-----BEGIN CERTIFICATE-----` ...
    pub cert_pem: String,
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8) ...
    pub key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("SelfSigned").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// Makes a self-signed ECDSA P-256 server certificate for `names` (host
/// names, and IP addresses, which become IP subject alternative names),
/// valid from last year for ten years; the first name is also the
/// subject's common name.
pub fn self_signed(names: &[&str]) -> Result<SelfSigned, String> {
    let first = names.first().ok_or("a certificate needs at least one name")?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .map_err(|e| format!("cannot make a certificate for {}: {e}", names.join(", ")))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, *first);
    params.distinguished_name = dn;
    // A server certificate, not a CA: verifiers (webpki, OpenSSL) accept
    // it as its own trust anchor for exactly these names.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let year = this_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok(SelfSigned { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// The current year (UTC), close enough for a validity window that starts
/// a year early.
fn this_year() -> i32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let years = secs / 31_556_952; // seconds in an average Gregorian year
    1970 + i32::try_from(years).unwrap_or(0)
}
