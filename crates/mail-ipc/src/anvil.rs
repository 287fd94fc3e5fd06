//! smtpd, pop3d, imapd → anvil (`private/anvil`): connection counting
//! across every process of a service (Postfix's anvil(8) protocol, reduced
//! to the two requests smtpd makes), per client address and, for pop3d
//! and imapd as Dovecot's anvil does it, per user ([`Subject`]).
//!
//! Each process keeps one connection (a *link*) to anvil for its
//! whole life. It sends [`AnvilRequest::Connect`] for each new client
//! connection and waits for the [`ConnectReply`]; it sends
//! [`AnvilRequest::Disconnect`] when that connection ends and expects no
//! answer. anvil counts per link, so when a link closes (the smtpd exited
//! or crashed) every connection it still had counted is released.
//!
//! [`AnvilClient`] is the client side of one link; it has no policy
//! (retries, failing open) of its own. Severities: none; every failure is
//! returned.

use crate::frame::{Error, read_frame_async, write_frame_async};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::UnixStream;

/// The largest anvil frame: a request is a short service name and an
/// address or a user name, a reply two integers.
pub const MAX_FRAME: u32 = 512;

/// The longest service name anvil accepts; longer ones are a broken peer.
pub const MAX_SERVICE: usize = 64;

/// The longest user name anvil counts (an address of RFC 5321's longest
/// path and then some); a longer one is not sent, and only the process's
/// own count applies to it.
pub const MAX_USER: usize = 320;

/// What anvil counts connections of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// A client address (anvil groups IPv6 addresses per /64).
    Client(IpAddr),
    /// A logged-in user, as authd names it.
    User(String),
}

/// A request on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnvilRequest {
    /// A connection to `service`; answered by a [`ConnectReply`].
    Connect {
        /// The service, as its daemon logs it (`smtp`, `pop3`, `imap`).
        service: String,
        /// Whose connection it is.
        subject: Subject,
    },
    /// A connection counted by an earlier `Connect` on this link ended;
    /// no reply.
    Disconnect {
        /// As in the `Connect`.
        service: String,
        /// As in the `Connect`.
        subject: Subject,
    },
}

/// anvil's answer to a `Connect`, counting the connection just announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectReply {
    /// Connections of this client open now, across every link.
    pub count: u32,
    /// Connections of this client in the current `anvil_rate_time_unit`.
    pub rate: u32,
}

/// The client side of one link to anvil.
#[derive(Debug)]
pub struct AnvilClient {
    stream: UnixStream,
}

impl AnvilClient {
    /// Connects to anvil's socket at `path`, waiting at most `timeout`.
    pub async fn open(path: &Path, timeout: Duration) -> Result<AnvilClient, Error> {
        match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Ok(Ok(stream)) => Ok(AnvilClient { stream }),
            Ok(Err(e)) => Err(Error::Io(e)),
            Err(_) => Err(timed_out()),
        }
    }

    /// Announces a connection and returns anvil's counts, waiting at most
    /// `timeout` for the whole exchange. After an error the link is out of
    /// step (a late reply may still arrive): drop it.
    pub async fn connect(
        &mut self,
        service: &str,
        subject: &Subject,
        timeout: Duration,
    ) -> Result<ConnectReply, Error> {
        let req = AnvilRequest::Connect { service: service.to_owned(), subject: subject.clone() };
        let exchange = async {
            write_frame_async(&mut self.stream, &req).await?;
            read_frame_async::<ConnectReply>(&mut self.stream, MAX_FRAME).await?.ok_or_else(|| {
                Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "anvil closed the connection",
                ))
            })
        };
        tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err(timed_out()))
    }

    /// Announces the end of a connection counted by [`AnvilClient::connect`].
    pub async fn disconnect(
        &mut self,
        service: &str,
        subject: &Subject,
        timeout: Duration,
    ) -> Result<(), Error> {
        let req =
            AnvilRequest::Disconnect { service: service.to_owned(), subject: subject.clone() };
        tokio::time::timeout(timeout, write_frame_async(&mut self.stream, &req))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }
}

/// Counts `subjects` as one connection each to `service` on a new link
/// and returns the link, blocking at most `timeout` per step: the counts
/// last as long as the caller keeps it open (a pop3d or imapd mail
/// process, for its one session), and end when it closes, however the
/// process ends.
pub fn hold(
    path: &Path,
    service: &str,
    subjects: &[Subject],
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, Error> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    for subject in subjects {
        let req = AnvilRequest::Connect { service: service.to_owned(), subject: subject.clone() };
        crate::write_frame(&mut stream, &req)?;
        crate::read_frame::<ConnectReply>(&mut stream, MAX_FRAME)?.ok_or_else(|| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "anvil closed the connection",
            ))
        })?;
    }
    Ok(stream)
}

fn timed_out() -> Error {
    Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "anvil did not answer in time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_frame, write_frame};
    use proptest::prelude::*;

    #[test]
    fn frames_fit_the_limit() {
        let longest = AnvilRequest::Connect {
            service: "s".repeat(MAX_SERVICE),
            subject: Subject::Client("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &longest).unwrap();
        assert!(buf.len() <= MAX_FRAME as usize, "{} bytes", buf.len());
        assert_eq!(decode_frame::<AnvilRequest>(&buf, MAX_FRAME).unwrap(), Some(longest));
        let user = AnvilRequest::Disconnect {
            service: "s".repeat(MAX_SERVICE),
            subject: Subject::User("\u{10ffff}".repeat(MAX_USER / 4)),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &user).unwrap();
        assert!(buf.len() <= MAX_FRAME as usize, "{} bytes", buf.len());
        assert_eq!(decode_frame::<AnvilRequest>(&buf, MAX_FRAME).unwrap(), Some(user));
        let mut buf = Vec::new();
        write_frame(&mut buf, &ConnectReply { count: 3, rate: u32::MAX }).unwrap();
        assert_eq!(
            decode_frame::<ConnectReply>(&buf, MAX_FRAME).unwrap(),
            Some(ConnectReply { count: 3, rate: u32::MAX })
        );
    }

    #[tokio::test]
    async fn client_round_trip_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anvil");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let req: AnvilRequest = read_frame_async(&mut s, MAX_FRAME).await.unwrap().unwrap();
            assert!(matches!(req, AnvilRequest::Connect { ref service, .. } if service == "smtp"));
            write_frame_async(&mut s, &ConnectReply { count: 1, rate: 2 }).await.unwrap();
            let req: AnvilRequest = read_frame_async(&mut s, MAX_FRAME).await.unwrap().unwrap();
            assert!(matches!(req, AnvilRequest::Disconnect { .. }));
            // The next Connect gets no answer.
            let _: Option<AnvilRequest> = read_frame_async(&mut s, MAX_FRAME).await.unwrap();
            s
        });
        let t = Duration::from_millis(300);
        let mut c = AnvilClient::open(&path, t).await.unwrap();
        let ip = Subject::Client("192.0.2.1".parse().unwrap());
        assert_eq!(c.connect("smtp", &ip, t).await.unwrap(), ConnectReply { count: 1, rate: 2 });
        c.disconnect("smtp", &ip, t).await.unwrap();
        let e = c.connect("smtp", &ip, t).await.unwrap_err();
        assert!(e.to_string().contains("in time"), "{e}");
        drop(server.await.unwrap());
        assert!(AnvilClient::open(&dir.path().join("none"), t).await.is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_frame::<AnvilRequest>(&bytes, MAX_FRAME);
            let _ = decode_frame::<ConnectReply>(&bytes, MAX_FRAME);
        }
    }
}
