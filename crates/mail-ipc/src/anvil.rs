//! smtpd → anvil (`private/anvil`): per-client connection counting across
//! every smtpd process (Postfix's anvil(8) protocol, reduced to the two
//! requests smtpd makes).
//!
//! Each smtpd process keeps one connection (a *link*) to anvil for its
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
/// address, a reply two integers.
pub const MAX_FRAME: u32 = 256;

/// The longest service name anvil accepts; longer ones are a broken peer.
pub const MAX_SERVICE: usize = 64;

/// A request on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnvilRequest {
    /// A client connected to `service`; answered by a [`ConnectReply`].
    Connect {
        /// The service the client connected to, as smtpd logs it (`smtp`).
        service: String,
        /// The client's address (anvil groups IPv6 addresses per /64).
        client: IpAddr,
    },
    /// A connection counted by an earlier `Connect` on this link ended;
    /// no reply.
    Disconnect {
        /// As in the `Connect`.
        service: String,
        /// As in the `Connect`.
        client: IpAddr,
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
        client: IpAddr,
        timeout: Duration,
    ) -> Result<ConnectReply, Error> {
        let req = AnvilRequest::Connect { service: service.to_owned(), client };
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
        client: IpAddr,
        timeout: Duration,
    ) -> Result<(), Error> {
        let req = AnvilRequest::Disconnect { service: service.to_owned(), client };
        tokio::time::timeout(timeout, write_frame_async(&mut self.stream, &req))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }
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
            client: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &longest).unwrap();
        assert!(buf.len() <= MAX_FRAME as usize, "{} bytes", buf.len());
        assert_eq!(decode_frame::<AnvilRequest>(&buf, MAX_FRAME).unwrap(), Some(longest));
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
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(c.connect("smtp", ip, t).await.unwrap(), ConnectReply { count: 1, rate: 2 });
        c.disconnect("smtp", ip, t).await.unwrap();
        let e = c.connect("smtp", ip, t).await.unwrap_err();
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
