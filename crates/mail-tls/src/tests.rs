//! Real handshakes between [`ServerTls`] and the client configurations
//! over an in-memory duplex pipe, and every loading error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mail_config::settings::TlsProtocols;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const BOTH: TlsProtocols = TlsProtocols { tls12: true, tls13: true };

fn dev_cert() -> SelfSigned {
    self_signed(&["mail.postern.test", "localhost", "127.0.0.1", "::1"]).expect("rcgen")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn settings(cert: &Path, key: Option<&Path>) -> ServerSettings {
    ServerSettings {
        cert_file: Some(cert.to_owned()),
        key_file: key.map(Path::to_owned),
        chain_files: Vec::new(),
        protocols: BOTH,
    }
}

fn load_err(s: &ServerSettings) -> String {
    ServerTls::load(s).expect_err("must not load").to_string()
}

/// A server loaded from a fresh self-signed certificate, and that
/// certificate.
fn server() -> (tempfile::TempDir, ServerTls, SelfSigned) {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = dev_cert();
    let cert = write(dir.path(), "cert.pem", &c.cert_pem);
    let key = write(dir.path(), "key.pem", &c.key_pem);
    let tls = ServerTls::load(&settings(&cert, Some(&key))).expect("load");
    (dir, tls, c)
}

fn roots(trusted_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in
        <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(
            trusted_pem.as_bytes(),
        )
    {
        roots.add(c.expect("pem")).expect("add");
    }
    roots
}

fn client_versions(
    trusted_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots(trusted_pem))
            .with_no_client_auth(),
    )
}

/// Both sides of a handshake over a pipe; then a line each way through
/// the encrypted stream. Returns the server's and the client's summary.
async fn handshake(
    server: &ServerTls,
    client: Arc<ClientConfig>,
    name: &str,
) -> Result<(TlsSummary, TlsSummary), String> {
    let (c_io, s_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let connector = TlsConnector::from(client);
    let server_side = async {
        let mut s =
            server.accept(s_io, Duration::from_secs(10)).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 6];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"EHLO\r\n");
        s.write_all(b"250 ok\r\n").await.map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(summary(s.get_ref().1).expect("server summary"))
    };
    let client_side = async {
        let mut c = connector.connect(name, c_io).await.map_err(|e| format!("client: {e}"))?;
        c.write_all(b"EHLO\r\n").await.map_err(|e| e.to_string())?;
        c.flush().await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 8];
        c.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"250 ok\r\n");
        Ok::<_, String>(summary(c.get_ref().1).expect("client summary"))
    };
    let (s, c) = tokio::join!(server_side, client_side);
    // The client's error says more (it names the certificate problem).
    let c = c?;
    Ok((s?, c))
}

#[tokio::test]
async fn tls13_handshake_and_postfix_summary() {
    let (_d, tls, c) = server();
    let client = client_config_trusting(c.cert_pem.as_bytes()).expect("client");
    let (s, cs) = handshake(&tls, client, "localhost").await.expect("handshake");
    assert_eq!(s, cs, "both ends see the same session");
    assert_eq!(s.protocol, "TLSv1.3");
    let line = s.to_string();
    assert!(
        line.starts_with("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange ")
            || line.starts_with(
                "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange "
            )
            || line.starts_with(
                "TLSv1.3 with cipher TLS_CHACHA20_POLY1305_SHA256 (256/256 bits) key-exchange "
            ),
        "{line}"
    );
    // rustls prefers the post-quantum hybrid, as OpenSSL 3.5 does.
    assert!(line.ends_with("key-exchange X25519MLKEM768"), "{line}");
    let rc = s.received_comment();
    assert_eq!(rc.len(), 2);
    assert!(rc[0].starts_with("(using TLSv1.3 with cipher TLS_"), "{rc:?}");
    assert_eq!(rc[1], " key-exchange X25519MLKEM768)");
}

#[tokio::test]
async fn tls12_handshake_uses_openssl_cipher_names() {
    let (_d, tls, c) = server();
    let client = client_versions(&c.cert_pem, &[&rustls::version::TLS12]);
    let (s, _) = handshake(&tls, client, "127.0.0.1").await.expect("handshake");
    assert_eq!(s.to_string(), "TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits)");
    assert_eq!(
        s.received_comment(),
        ["(using TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits))"]
    );
}

#[tokio::test]
async fn no_version_below_tls12_can_be_configured() {
    // rustls has no TLS 1.1 or older at all, so no client could even try;
    // what we can prove is that no configuration offers one.
    let names: Vec<_> = rustls::ALL_VERSIONS.iter().map(|v| v.version).collect();
    assert_eq!(names, [rustls::ProtocolVersion::TLSv1_3, rustls::ProtocolVersion::TLSv1_2]);
    let (_d, tls, c) = server();
    assert_eq!(tls.protocols(), ["TLSv1.3", "TLSv1.2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = write(dir.path(), "c.pem", &(c.cert_pem.clone() + &c.key_pem));
    for spec in ["", ">=TLSv1.2", "TLSv1.2", "TLSv1.3", "!SSLv2 !SSLv3 !TLSv1 !TLSv1.1 !TLSv1.3"] {
        let p = TlsProtocols::parse(&mail_config::value::split_list(spec)).expect(spec);
        let t = ServerTls::load(&ServerSettings { protocols: p, ..settings(&cert, None) })
            .expect("load");
        assert!(!t.protocols().is_empty());
        assert!(t.protocols().iter().all(|v| *v == "TLSv1.2" || *v == "TLSv1.3"), "{spec}");
    }
    // A server limited to TLS 1.2 really refuses a TLS 1.3-only client.
    let only12 = ServerTls::load(&ServerSettings {
        protocols: TlsProtocols { tls12: true, tls13: false },
        ..settings(&cert, None)
    })
    .expect("load");
    assert_eq!(only12.protocols(), ["TLSv1.2"]);
    let client = client_versions(&c.cert_pem, &[&rustls::version::TLS13]);
    let e = handshake(&only12, client, "localhost").await.expect_err("no common version");
    assert!(e.contains("client:"), "{e}");
}

#[tokio::test]
async fn the_trusting_client_refuses_another_certificate_and_wrong_names() {
    let (_d, tls, c) = server();
    let client = client_config_trusting(c.cert_pem.as_bytes()).expect("client");
    handshake(&tls, client.clone(), "localhost").await.expect("localhost");
    handshake(&tls, client.clone(), "127.0.0.1").await.expect("127.0.0.1");
    handshake(&tls, client.clone(), "::1").await.expect("::1");
    handshake(&tls, client.clone(), "mail.postern.test").await.expect("myhostname");
    let e = handshake(&tls, client.clone(), "other.example").await.expect_err("wrong name");
    assert!(e.contains("certificate not valid for name"), "{e}");
    let e = handshake(&tls, client.clone(), "127.0.0.2").await.expect_err("wrong address");
    assert!(e.contains("invalid peer certificate"), "{e}");
    // Another self-signed certificate for the very same names.
    let other = client_config_trusting(dev_cert().cert_pem.as_bytes()).expect("client");
    let e = handshake(&tls, other, "localhost").await.expect_err("other cert");
    // Same subject, other key: webpki finds the anchor by name and the
    // signature does not verify.
    assert!(e.contains("invalid peer certificate: BadSignature"), "{e}");
    let stranger = client_config_trusting(
        self_signed(&["stranger.example", "localhost"]).expect("rcgen").cert_pem.as_bytes(),
    )
    .expect("client");
    let e = handshake(&tls, stranger, "localhost").await.expect_err("other issuer");
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
    assert!(client_config_trusting(b"no pem here").is_err());
}

#[tokio::test]
async fn client_levels() {
    let (_d, tls, c) = server();
    assert_eq!(ClientLevel::parse(""), Ok(ClientLevel::None));
    assert_eq!(ClientLevel::parse("Verify"), Ok(ClientLevel::Verify));
    assert!(ClientLevel::parse("dane").is_err());
    assert!(client_config(ClientLevel::None, None).expect("none").is_none());
    // may and encrypt encrypt without checking the certificate.
    for level in [ClientLevel::May, ClientLevel::Encrypt] {
        let cfg = client_config(level, None).expect("cfg").expect("some");
        handshake(&tls, cfg, "whatever.example").await.expect("opportunistic");
    }
    // verify with smtp_tls_CAfile naming the certificate checks it.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write(dir.path(), "ca.pem", &c.cert_pem);
    let cfg = client_config(ClientLevel::Verify, Some(&ca)).expect("cfg").expect("some");
    handshake(&tls, cfg.clone(), "localhost").await.expect("verify");
    assert!(handshake(&tls, cfg, "other.example").await.is_err());
    // The system roots do not know a self-signed certificate.
    match client_config(ClientLevel::Secure, None) {
        Ok(cfg) => {
            let e = handshake(&tls, cfg.expect("some"), "localhost").await.expect_err("untrusted");
            assert!(e.contains("UnknownIssuer"), "{e}");
        }
        Err(e) => {
            assert!(e.to_string().contains("no system CA certificates"), "{e}");
            eprintln!("skipped: no system CA certificates here ({e})");
        }
    }
    let e = client_config(ClientLevel::Verify, Some(&dir.path().join("nope.pem"))).unwrap_err();
    assert!(e.to_string().starts_with("CA file "), "{e}");
}

#[tokio::test]
async fn the_handshake_is_bounded_in_time() {
    let (_d, tls, _) = server();
    // A peer that connects and never speaks.
    let (_client_end, s_io) = tokio::io::duplex(1024);
    let started = std::time::Instant::now();
    let e = tls.accept(s_io, Duration::from_millis(200)).await.expect_err("timeout");
    assert!(matches!(e, HandshakeError::Timeout(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.to_string(), "timeout: the TLS handshake did not complete in 0s");

    // A peer that hangs up.
    let (client_end, s_io) = tokio::io::duplex(1024);
    drop(client_end);
    let e = tls.accept(s_io, Duration::from_secs(5)).await.expect_err("eof");
    assert_eq!(e.to_string(), "lost connection");

    // A peer that speaks SMTP instead of TLS.
    let (mut client_end, s_io) = tokio::io::duplex(1024);
    client_end.write_all(b"EHLO client.example\r\n").await.expect("write");
    let e = tls.accept(s_io, Duration::from_secs(5)).await.expect_err("garbage");
    assert!(matches!(e, HandshakeError::Failed(_)), "{e:?}");
    assert!(e.to_string().contains("corrupt message"), "{e}");
}

#[tokio::test]
async fn a_new_load_picks_up_a_replaced_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dev_cert();
    let cert = write(dir.path(), "cert.pem", &old.cert_pem);
    let key = write(dir.path(), "key.pem", &old.key_pem);
    let s = settings(&cert, Some(&key));
    let old_worker = ServerTls::load(&s).expect("load");
    // The operator renews the certificate and runs `postern reload`.
    let new = dev_cert();
    write(dir.path(), "cert.pem", &new.cert_pem);
    write(dir.path(), "key.pem", &new.key_pem);
    let new_worker = ServerTls::load(&s).expect("load");
    let trusts_new = client_config_trusting(new.cert_pem.as_bytes()).expect("client");
    handshake(&new_worker, trusts_new.clone(), "localhost").await.expect("new worker, new cert");
    assert!(
        handshake(&old_worker, trusts_new, "localhost").await.is_err(),
        "old worker kept the old"
    );
}

#[test]
fn loading_errors_name_the_file_the_problem_and_the_remedy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let c = dev_cert();
    let cert = write(d, "cert.pem", &c.cert_pem);
    let key = write(d, "key.pem", &c.key_pem);

    let e = load_err(&ServerSettings { cert_file: None, ..settings(&cert, None) });
    assert!(e.starts_with("smtpd_tls_cert_file: not set; set smtpd_tls_cert_file"), "{e}");

    let missing = d.join("missing.pem");
    let e = load_err(&settings(&missing, Some(&key)));
    assert!(
        e.starts_with(&format!(
            "smtpd_tls_cert_file {}: cannot open the file: No such file",
            missing.display()
        )),
        "{e}"
    );

    let e = load_err(&settings(&key, Some(&key)));
    assert_eq!(
        e,
        format!(
            "smtpd_tls_cert_file {}: no certificate found in the file; expected PEM 'BEGIN CERTIFICATE'",
            key.display()
        )
    );

    // The key file defaults to the certificate file, which has no key.
    let e = load_err(&settings(&cert, None));
    assert_eq!(
        e,
        format!(
            "smtpd_tls_key_file {}: no private key found in the file; expected PEM 'BEGIN PRIVATE KEY', \
             'BEGIN RSA PRIVATE KEY' or 'BEGIN EC PRIVATE KEY'",
            cert.display()
        )
    );

    let truncated = write(d, "trunc.pem", &c.cert_pem[..c.cert_pem.len() - 30]);
    let e = load_err(&settings(&truncated, Some(&key)));
    assert!(e.starts_with(&format!("smtpd_tls_cert_file {}: the file is not valid PEM (no \"-----END CERTIFICATE-----\" line)", truncated.display())), "{e}");

    let big = write(d, "big.pem", &"x".repeat(1 << 21));
    assert!(load_err(&settings(&big, Some(&key))).contains("larger than 1048576 bytes"));

    let bad_key =
        write(d, "badkey.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let e = load_err(&settings(&cert, Some(&bad_key)));
    assert!(
        e.starts_with(&format!(
            "smtpd_tls_key_file {}: the private key cannot be used (",
            bad_key.display()
        )),
        "{e}"
    );

    let bad_cert =
        write(d, "badcert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    let e = load_err(&settings(&bad_cert, Some(&key)));
    assert!(e.contains("cannot be parsed"), "{e}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dev_cert(), dev_cert());
    let cert = write(dir.path(), "cert.pem", &a.cert_pem);
    let key = write(dir.path(), "key.pem", &b.key_pem);
    assert_eq!(
        load_err(&settings(&cert, Some(&key))),
        format!(
            "smtpd_tls_key_file {}: the private key does not match the certificate in smtpd_tls_cert_file {}; \
             check that the key and the certificate belong together (and that the server certificate comes first)",
            key.display(),
            cert.display()
        )
    );
    let one_file = write(dir.path(), "both.pem", &(a.key_pem.clone() + &a.cert_pem));
    ServerTls::load(&settings(&one_file, None)).expect("cert and key in one file");
}

#[tokio::test]
async fn chain_files_hold_a_key_followed_by_its_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dev_cert(), dev_cert());
    let chain = write(dir.path(), "chain.pem", &(a.key_pem.clone() + &a.cert_pem));
    let s = ServerSettings {
        cert_file: Some(dir.path().join("ignored-when-chain-files-are-set.pem")),
        key_file: None,
        chain_files: vec![chain.clone()],
        protocols: BOTH,
    };
    let tls = ServerTls::load(&s).expect("chain file");
    let client = client_config_trusting(a.cert_pem.as_bytes()).expect("client");
    handshake(&tls, client, "localhost").await.expect("handshake");

    // Two groups in one file, as Postfix allows.
    let two =
        write(dir.path(), "two.pem", &(a.key_pem.clone() + &a.cert_pem + &b.key_pem + &b.cert_pem));
    ServerTls::load(&ServerSettings { chain_files: vec![two], ..s.clone() }).expect("two groups");

    let backwards = write(dir.path(), "backwards.pem", &(a.cert_pem.clone() + &a.key_pem));
    let e = load_err(&ServerSettings { chain_files: vec![backwards.clone()], ..s.clone() });
    assert!(
        e.starts_with(&format!(
            "smtpd_tls_chain_files {}: a certificate comes before any private key",
            backwards.display()
        )),
        "{e}"
    );
    let lonely = write(dir.path(), "lonely.pem", &(a.key_pem.clone() + &b.key_pem + &b.cert_pem));
    let e = load_err(&ServerSettings { chain_files: vec![lonely], ..s.clone() });
    assert!(e.contains("no certificate follows private key 1"), "{e}");
    let mismatched = write(dir.path(), "mismatch.pem", &(a.key_pem.clone() + &b.cert_pem));
    let e = load_err(&ServerSettings { chain_files: vec![mismatched], ..s.clone() });
    assert!(e.contains("does not match the certificate that follows it"), "{e}");
    let empty = write(dir.path(), "empty.pem", "");
    let e = load_err(&ServerSettings { chain_files: vec![empty], ..s });
    assert!(e.contains("no private key found in the file"), "{e}");
}

/// Runs openssl to make keys in the formats rcgen does not write; `None`
/// (and a skip message) when openssl is not installed.
fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
    match std::process::Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("skipped: openssl not runnable ({e})");
            None
        }
    }
}

#[tokio::test]
async fn rsa_and_sec1_keys_load_and_chain_files_choose_per_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // `req -x509` alone makes a CA certificate, which webpki refuses as a
    // server's; an operator's real certificate is a leaf.
    write(
        d,
        "req.cnf",
        "[req]\ndistinguished_name=dn\nx509_extensions=ext\nprompt=no\n[dn]\nCN=localhost\n\
         [ext]\nsubjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    );
    let req = |key: &str, out: &str| {
        openssl(
            d,
            &["req", "-new", "-x509", "-config", "req.cnf", "-key", key, "-days", "2", "-out", out],
        )
    };
    if openssl(d, &["genrsa", "-traditional", "-out", "rsa.pem", "2048"]).is_none() {
        return;
    }
    openssl(d, &["ecparam", "-name", "prime256v1", "-genkey", "-out", "ec.pem"]);
    req("rsa.pem", "rsa-cert.pem");
    req("ec.pem", "ec-cert.pem");
    let text = |n: &str| std::fs::read_to_string(d.join(n)).expect("read");
    assert!(text("rsa.pem").contains("BEGIN RSA PRIVATE KEY"));
    assert!(
        text("ec.pem").contains("BEGIN EC PARAMETERS")
            && text("ec.pem").contains("BEGIN EC PRIVATE KEY")
    );
    let rsa =
        ServerTls::load(&settings(&d.join("rsa-cert.pem"), Some(&d.join("rsa.pem")))).expect("rsa");
    let trusts_rsa = client_config_trusting(text("rsa-cert.pem").as_bytes()).expect("client");
    let (s, _) = handshake(&rsa, trusts_rsa.clone(), "localhost").await.expect("rsa handshake");
    assert!(s.to_string().starts_with("TLSv1.3 with cipher "), "{s}");
    ServerTls::load(&settings(&d.join("ec-cert.pem"), Some(&d.join("ec.pem")))).expect("sec1");

    // Two chain files, RSA and ECDSA: each client gets the key it can check.
    let rsa_chain = write(d, "rsa-chain.pem", &(text("rsa.pem") + &text("rsa-cert.pem")));
    let ec_chain = write(d, "ec-chain.pem", &(text("ec.pem") + &text("ec-cert.pem")));
    let both = ServerTls::load(&ServerSettings {
        cert_file: None,
        key_file: None,
        chain_files: vec![ec_chain, rsa_chain],
        protocols: BOTH,
    })
    .expect("two chain files");
    let trusts_ec = client_config_trusting(text("ec-cert.pem").as_bytes()).expect("client");
    handshake(&both, trusts_ec.clone(), "localhost").await.expect("ecdsa first");
    // A client that can verify only RSA signatures gets the RSA chain.
    let mut provider = (*provider()).clone();
    let algs = provider.signature_verification_algorithms;
    let rsa_schemes: Vec<_> = algs
        .mapping
        .iter()
        .filter(|(scheme, _)| format!("{scheme:?}").starts_with("RSA"))
        .cloned()
        .collect();
    provider.signature_verification_algorithms = rustls::crypto::WebPkiSupportedAlgorithms {
        all: algs.all,
        mapping: Box::leak(rsa_schemes.into_boxed_slice()),
    };
    let rsa_only = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots(&text("rsa-cert.pem")))
            .with_no_client_auth(),
    );
    handshake(&both, rsa_only, "localhost").await.expect("rsa for an RSA-only client");
}
