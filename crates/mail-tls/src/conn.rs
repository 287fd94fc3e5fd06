//! A byte stream, plain or inside TLS: one type, so a server session
//! that says STARTTLS (smtpd; pop3d's STLS and imapd's STARTTLS later)
//! goes on with the same code, an implicit-TLS service (smtps) is the same
//! session started in the second state, and a client (the benchmark's
//! load generator, the SMTP client) upgrades the same way.
//!
//! Generic over the transport so tests run sessions over
//! `tokio::io::duplex`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A server's connection: `T` is its TLS session.
pub type ServerConn<S> = MaybeTls<S, crate::ServerStream<S>>;

/// A client's connection.
pub type ClientConn<S> = MaybeTls<S, crate::ClientStream<S>>;

/// One connection, `S` plain or `T` (TLS over `S`).
#[derive(Debug)]
pub enum MaybeTls<S, T> {
    /// Before STARTTLS (or on a service without TLS).
    Plain(S),
    /// After a completed handshake.
    Tls(Box<T>),
    /// The transport was taken for a handshake that failed: reads see
    /// end of file, writes fail, so the session ends.
    Gone,
}

impl<S, T> MaybeTls<S, T> {
    /// Takes the plain transport out for a handshake; `None` when the
    /// connection is already TLS or gone.
    pub fn take_plain(&mut self) -> Option<S> {
        match std::mem::replace(self, MaybeTls::Gone) {
            MaybeTls::Plain(s) => Some(s),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The TLS session, once there is one.
    pub fn tls(&self) -> Option<&T> {
        match self {
            MaybeTls::Tls(t) => Some(t),
            _ => None,
        }
    }
}

impl<S, T> AsyncRead for MaybeTls<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl<S, T> AsyncWrite for MaybeTls<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }
}
