//! The client's byte stream, plain or inside TLS: one type, so a session
//! that says STARTTLS goes on with the same code, and smtps (implicit
//! TLS, `smtpd_tls_wrappermode = yes`) is the same session started in
//! the second state.
//!
//! Generic over the transport so the unit tests run sessions over
//! `tokio::io::duplex`; smtpd itself uses `TcpStream`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use mail_tls::ServerStream as TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One client connection.
#[derive(Debug)]
pub(crate) enum Conn<S> {
    /// Before STARTTLS (or on a service without TLS).
    Plain(S),
    /// After a completed handshake.
    Tls(Box<TlsStream<S>>),
    /// The transport was taken for a handshake that failed: reads see
    /// end of file, writes fail, so the session ends.
    Gone,
}

impl<S> Conn<S> {
    /// Takes the plain transport out for a handshake; `None` when the
    /// connection is already TLS or gone.
    pub(crate) fn take_plain(&mut self) -> Option<S> {
        match std::mem::replace(self, Conn::Gone) {
            Conn::Plain(s) => Some(s),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The TLS session, once there is one.
    pub(crate) fn tls(&self) -> Option<&TlsStream<S>> {
        match self {
            Conn::Tls(t) => Some(t),
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}
