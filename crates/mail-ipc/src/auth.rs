//! smtpd, pop3d, imapd → authd (`private/authd`): "is this user's
//! password right, and who are they?"
//!
//! A client keeps a connection for many requests, one in flight at a
//! time: it writes an [`AuthRequest`] and reads one [`AuthReply`]. authd
//! applies the failure delays before it answers, so a reply may take up
//! to about 15 s; [`Client`] waits [`REQUEST_TIMEOUT`]. A caller that
//! wants several checks at once holds several clients.
//!
//! The password crosses the socket (it is private, mode 0600, reachable
//! by mail_owner and root only) but is never logged: [`AuthRequest`]'s
//! `Debug` hides it. Severities: none; every failure is returned, and a
//! caller answers its client with a temporary failure (`454 4.7.0`).

use crate::frame::{Error, read_frame_async, write_frame_async};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;

/// The largest auth frame: a request holds a user name and a password of
/// at most `mail_auth::sasl`'s limits (256 and 1024 bytes) and a few
/// small fields; a reply a name, a home and a mail location.
pub const MAX_FRAME: u32 = 8 * 1024;

/// The longest user name in a request, in bytes (`mail_auth::sasl::MAX_USER`).
pub const MAX_USER: usize = 256;
/// The longest password in a request, in bytes (`mail_auth::sasl::MAX_PASSWORD`).
pub const MAX_PASSWORD: usize = 1024;

/// How long [`Client::authenticate`] waits for one answer: authd delays a
/// failure by up to 15 s, and PAM may add its own few seconds.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Client`] waits to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocol the user is logging in to, for the log and for PAM's
/// `PAM_SERVICE`-independent records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Service {
    /// SMTP AUTH (smtpd, submission).
    Smtp,
    /// POP3 USER/PASS or AUTH.
    Pop3,
    /// IMAP LOGIN or AUTHENTICATE.
    Imap,
}

impl Service {
    /// Lower-case name, as logged (`smtp`, `pop3`, `imap`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Pop3 => "pop3",
            Service::Imap => "imap",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One password check.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Which protocol asks.
    pub service: Service,
    /// The login name as the client sent it.
    pub user: String,
    /// The password as the client sent it. Not shown by `Debug`.
    pub password: String,
    /// The client's address (failure delays are per address).
    pub client: IpAddr,
    /// Whether the client's connection is encrypted (logged).
    pub tls: bool,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("service", &self.service)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("client", &self.client)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Who a user is, once the password is right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUser {
    /// The canonical login name (as the user database spells it; clients
    /// often send another case).
    pub user: String,
    /// Numeric uid the user's mail sessions run as.
    pub uid: u32,
    /// Numeric gid.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// Mail location from the user database, when it names one
    /// (`None`: `home_mailbox` under `home` applies).
    pub mail: Option<String>,
}

/// authd's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthReply {
    /// The password is right.
    Ok(AuthUser),
    /// Wrong user or wrong password (never says which).
    Fail,
    /// The check could not be made now (PAM or the passwd-file failed,
    /// authd is overloaded, too many checks from this client at once);
    /// the text is for the log, not for the client.
    TempFail(String),
}

/// The client side of connections to authd: connects on first use, keeps
/// the connection for later requests, and reconnects once when it finds
/// it broken.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    stream: Option<UnixStream>,
    timeout: Duration,
}

impl Client {
    /// A client of the authd socket at `path`; nothing is connected yet.
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client { path: path.into(), stream: None, timeout: REQUEST_TIMEOUT }
    }

    /// The same with another bound per request (tests).
    pub fn with_timeout(path: impl Into<PathBuf>, timeout: Duration) -> Client {
        Client { path: path.into(), stream: None, timeout }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks authd to check `req`, within the request bound. A connection
    /// that turns out broken before any answer (authd restarted) is
    /// replaced once; after a timeout the connection is dropped (a late
    /// answer would be out of step). Errors name the socket.
    pub async fn authenticate(&mut self, req: &AuthRequest) -> Result<AuthReply, ClientError> {
        let reused = self.stream.is_some();
        match self.try_once(req).await {
            Ok(reply) => Ok(reply),
            Err(e) if reused && e.is_broken() => self.try_once(req).await,
            Err(e) => Err(e),
        }
    }

    async fn try_once(&mut self, req: &AuthRequest) -> Result<AuthReply, ClientError> {
        let path = self.path.clone();
        let fail = |kind| ClientError { path: path.clone(), kind };
        if self.stream.is_none() {
            let stream =
                match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&path)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(fail(ClientErrorKind::Connect(e))),
                    Err(_) => return Err(fail(ClientErrorKind::ConnectTimeout)),
                };
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else { unreachable!("the stream was just set") };
        let exchange = async {
            write_frame_async(stream, req).await?;
            read_frame_async::<AuthReply>(stream, MAX_FRAME).await
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        match result {
            Ok(Ok(Some(reply))) => Ok(reply),
            Ok(Ok(None)) => {
                self.stream = None;
                Err(fail(ClientErrorKind::Closed))
            }
            Ok(Err(e)) => {
                self.stream = None;
                Err(fail(ClientErrorKind::Ipc(e)))
            }
            Err(_) => {
                self.stream = None;
                Err(fail(ClientErrorKind::Timeout(self.timeout)))
            }
        }
    }
}

/// Why a request to authd got no answer.
#[derive(Debug, thiserror::Error)]
#[error("authd at {path}: {kind}; is the authd service in master.toml running?")]
pub struct ClientError {
    /// The socket.
    pub path: PathBuf,
    /// What happened.
    pub kind: ClientErrorKind,
}

impl ClientError {
    /// A connection that was fine once and is no more: worth one retry.
    fn is_broken(&self) -> bool {
        matches!(
            &self.kind,
            ClientErrorKind::Closed | ClientErrorKind::Ipc(Error::Io(_) | Error::Truncated)
        )
    }
}

/// The cause inside a [`ClientError`].
#[derive(Debug, thiserror::Error)]
pub enum ClientErrorKind {
    /// Nobody listens at the socket (authd not in master.toml, or master
    /// not running), or the socket cannot be reached.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// Connecting took longer than [`CONNECT_TIMEOUT`].
    #[error("connecting timed out")]
    ConnectTimeout,
    /// authd closed the connection without answering.
    #[error("closed the connection without an answer")]
    Closed,
    /// A frame could not be written or read.
    #[error("{0}")]
    Ipc(Error),
    /// No answer within the bound.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_frame, write_frame};
    use proptest::prelude::*;

    fn request() -> AuthRequest {
        AuthRequest {
            service: Service::Smtp,
            user: "suporte".into(),
            password: "segredo".into(),
            client: "192.0.2.7".parse().unwrap(),
            tls: true,
        }
    }

    #[test]
    fn frames_fit_the_limit_and_round_trip() {
        let longest = AuthRequest {
            service: Service::Imap,
            user: "u".repeat(MAX_USER),
            password: "p".repeat(MAX_PASSWORD),
            client: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            tls: false,
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &longest).unwrap();
        assert!(buf.len() <= MAX_FRAME as usize, "{} bytes", buf.len());
        assert_eq!(decode_frame::<AuthRequest>(&buf, MAX_FRAME).unwrap(), Some(longest));
        let ok = AuthReply::Ok(AuthUser {
            user: "u".repeat(MAX_USER),
            uid: 1000,
            gid: 1000,
            home: PathBuf::from("/".repeat(2048)),
            mail: Some("maildir:".to_owned() + &"x".repeat(2048)),
        });
        for reply in [ok, AuthReply::Fail, AuthReply::TempFail("PAM: busy".into())] {
            let mut buf = Vec::new();
            write_frame(&mut buf, &reply).unwrap();
            assert!(buf.len() <= MAX_FRAME as usize);
            assert_eq!(decode_frame::<AuthReply>(&buf, MAX_FRAME).unwrap(), Some(reply));
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", request());
        assert!(!shown.contains("segredo"), "{shown}");
        assert!(shown.contains("suporte") && shown.contains("192.0.2.7"), "{shown}");
    }

    #[tokio::test]
    async fn keeps_the_connection_and_reconnects_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authd");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            // First connection: two requests, then it closes (authd
            // restarted); second: one more.
            let (mut s, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                let req: AuthRequest = read_frame_async(&mut s, MAX_FRAME).await.unwrap().unwrap();
                assert_eq!(req.password, "segredo");
                write_frame_async(&mut s, &AuthReply::Fail).await.unwrap();
            }
            drop(s);
            let (mut s, _) = listener.accept().await.unwrap();
            let _: AuthRequest = read_frame_async(&mut s, MAX_FRAME).await.unwrap().unwrap();
            write_frame_async(&mut s, &AuthReply::TempFail("x".into())).await.unwrap();
            // Then one that never answers.
            let _: AuthRequest = read_frame_async(&mut s, MAX_FRAME).await.unwrap().unwrap();
            (listener, s)
        });
        let mut c = Client::with_timeout(&path, Duration::from_millis(500));
        assert_eq!(c.authenticate(&request()).await.unwrap(), AuthReply::Fail);
        assert_eq!(c.authenticate(&request()).await.unwrap(), AuthReply::Fail);
        assert_eq!(c.authenticate(&request()).await.unwrap(), AuthReply::TempFail("x".into()));
        let e = c.authenticate(&request()).await.unwrap_err();
        assert!(matches!(e.kind, ClientErrorKind::Timeout(_)), "{e}");
        drop(server.await.unwrap());
        let mut none = Client::new(dir.path().join("none"));
        let e = none.authenticate(&request()).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("none") && text.contains("master.toml"), "{text}");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_frame::<AuthRequest>(&bytes, MAX_FRAME);
            let _ = decode_frame::<AuthReply>(&bytes, MAX_FRAME);
        }
    }
}
