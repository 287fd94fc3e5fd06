//! A TLS session in Postfix's words: the protocol, the cipher under its
//! OpenSSL name and its bits, and for TLS 1.3 the key exchange, for the
//! `Anonymous TLS connection established from host[addr]: ...` log line
//! and the Received header's `(using ...)` comment.
//!
//! Postfix (`tls_log_summary`) goes on with `server-signature` and
//! `server-digest`; rustls does not tell a server which signature scheme
//! it used, so the summary ends after the key exchange.

use std::fmt;

use rustls::{CipherSuite, CommonState, NamedGroup};

/// The summary of an established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSummary {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: &'static str,
    /// The cipher as OpenSSL (and so Postfix) names it:
    /// `TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`.
    pub cipher: String,
    /// Bits of the cipher's key used (Postfix's first number).
    pub use_bits: u32,
    /// Bits of the cipher's key (the second).
    pub alg_bits: u32,
    /// TLS 1.3 only, as Postfix: `X25519`, `ECDHE (P-256)`, `X25519MLKEM768`.
    pub key_exchange: Option<String>,
}

impl TlsSummary {
    /// The Received header's comment, as lines to be joined with a
    /// newline and a tab, the way Postfix folds it:
    /// `(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)` and
    /// ` key-exchange X25519)`.
    pub fn received_comment(&self) -> Vec<String> {
        let first = format!(
            "(using {} with cipher {} ({}/{} bits)",
            self.protocol, self.cipher, self.use_bits, self.alg_bits
        );
        match &self.key_exchange {
            Some(kx) => vec![first, format!(" key-exchange {kx})")],
            None => vec![first + ")"],
        }
    }
}

/// `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519`:
/// what follows `Anonymous TLS connection established from host[addr]: `.
impl fmt::Display for TlsSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} with cipher {} ({}/{} bits)",
            self.protocol, self.cipher, self.use_bits, self.alg_bits
        )?;
        if let Some(kx) = &self.key_exchange {
            write!(f, " key-exchange {kx}")?;
        }
        Ok(())
    }
}

/// The summary of `conn` (a `ServerConnection` or `ClientConnection`,
/// for example `stream.get_ref().1`); `None` before the handshake is done.
pub fn summary(conn: &CommonState) -> Option<TlsSummary> {
    let version = conn.protocol_version()?;
    let suite = conn.negotiated_cipher_suite()?.suite();
    let (cipher, bits) = cipher_name(suite);
    let protocol = crate::server::protocol_name(version);
    let key_exchange = if version == rustls::ProtocolVersion::TLSv1_3 {
        conn.negotiated_key_exchange_group().map(|g| group_name(g.name()))
    } else {
        None
    };
    Some(TlsSummary { protocol, cipher, use_bits: bits, alg_bits: bits, key_exchange })
}

/// OpenSSL's name and the key bits of the suites rustls implements.
fn cipher_name(s: CipherSuite) -> (String, u32) {
    let (name, bits) = match s {
        CipherSuite::TLS13_AES_256_GCM_SHA384 => ("TLS_AES_256_GCM_SHA384", 256),
        CipherSuite::TLS13_AES_128_GCM_SHA256 => ("TLS_AES_128_GCM_SHA256", 128),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => ("TLS_CHACHA20_POLY1305_SHA256", 256),
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            ("ECDHE-ECDSA-AES256-GCM-SHA384", 256)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            ("ECDHE-ECDSA-AES128-GCM-SHA256", 128)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-ECDSA-CHACHA20-POLY1305", 256)
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => ("ECDHE-RSA-AES256-GCM-SHA384", 256),
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => ("ECDHE-RSA-AES128-GCM-SHA256", 128),
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-RSA-CHACHA20-POLY1305", 256)
        }
        other => {
            // A suite a future rustls adds: its IANA name, and the key
            // size its name states.
            let name = other.as_str().unwrap_or("unknown").to_owned();
            let bits = if name.contains("128") { 128 } else { 256 };
            return (name, bits);
        }
    };
    (name.to_owned(), bits)
}

/// The key exchange group as Postfix logs it (`ECDHE (P-256)` for the
/// NIST curves, OpenSSL's short name for the rest).
fn group_name(g: NamedGroup) -> String {
    match g {
        NamedGroup::X25519 => "X25519".into(),
        NamedGroup::X448 => "X448".into(),
        NamedGroup::secp256r1 => "ECDHE (P-256)".into(),
        NamedGroup::secp384r1 => "ECDHE (P-384)".into(),
        NamedGroup::secp521r1 => "ECDHE (P-521)".into(),
        NamedGroup::X25519MLKEM768 => "X25519MLKEM768".into(),
        NamedGroup::secp256r1MLKEM768 => "SecP256r1MLKEM768".into(),
        NamedGroup::MLKEM768 => "MLKEM768".into(),
        other => other.as_str().map_or_else(|| format!("{other:?}"), str::to_owned),
    }
}
