//! Length-prefixed, versioned, size-limited frames.
//!
//! ```text
//! u32 BE  length L of what follows (2 + payload)
//! u16 BE  PROTOCOL_VERSION
//! L-2     payload: stdx::codec of the message
//! ```
//! A reader refuses a length over its limit before allocating, a version
//! other than its own, and a payload with trailing bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{self, Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The IPC protocol version. Bump on any change to a message type.
pub const PROTOCOL_VERSION: u16 = 2;

/// Default frame limit: enough for a delivery request with many
/// recipients, small enough that a broken peer cannot exhaust memory.
pub const MAX_FRAME: u32 = 16 << 20;

/// IPC failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket or pipe failed.
    #[error("ipc i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer announced a frame larger than the limit.
    #[error("ipc frame of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// The peer speaks another protocol version (a half-upgraded install).
    #[error(
        "ipc protocol version {0}, expected {PROTOCOL_VERSION}: restart all Postern processes after an upgrade"
    )]
    Version(u16),
    /// The payload did not decode as the expected message.
    #[error("ipc payload: {0}")]
    Decode(String),
    /// The peer closed the connection in the middle of a frame.
    #[error("ipc peer closed the connection mid-frame")]
    Truncated,
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, Error> {
    let payload = stdx::codec::encode(msg).map_err(|e| Error::Decode(e.to_string()))?;
    let len = u32::try_from(payload.len() + 2).map_err(|_| Error::TooLarge(u32::MAX))?;
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn check_len(len: u32, max: u32) -> Result<(), Error> {
    if len > max {
        return Err(Error::TooLarge(len));
    }
    if len < 2 {
        return Err(Error::Decode("frame shorter than its version field".into()));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let version = u16::from_be_bytes([body[0], body[1]]);
    if version != PROTOCOL_VERSION {
        return Err(Error::Version(version));
    }
    stdx::codec::decode(&body[2..]).map_err(|e| Error::Decode(e.to_string()))
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), Error> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read, max: u32) -> Result<Option<T>, Error> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut len[1..]).map_err(eof_is_truncated)?;
    let len = u32::from_be_bytes(len);
    check_len(len, max)?;
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(eof_is_truncated)?;
    decode(&body).map(Some)
}

/// Writes one frame to an async stream.
pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), Error> {
    w.write_all(&encode(msg)?).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame from an async stream. `Ok(None)` is a clean end of stream.
pub async fn read_frame_async<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
    max: u32,
) -> Result<Option<T>, Error> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut len[1..]).await.map_err(eof_is_truncated)?;
    let len = u32::from_be_bytes(len);
    check_len(len, max)?;
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.map_err(eof_is_truncated)?;
    decode(&body).map(Some)
}

/// A server's read of a client's next request, once its first byte is
/// there: the rest must come within `limit`. `None` ends the connection:
/// a clean end of stream, or a bad or slow frame (logged as a warning).
pub async fn read_request_async<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
    max: u32,
    limit: std::time::Duration,
) -> Option<T> {
    match tokio::time::timeout(limit, read_frame_async::<T>(r, max)).await {
        Ok(Ok(req)) => req,
        Ok(Err(e)) => {
            tracing::warn!("closing a client connection: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("closing a client connection: timeout in the middle of a request");
            None
        }
    }
}

fn eof_is_truncated(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof { Error::Truncated } else { Error::Io(e) }
}

/// Decodes a frame held entirely in memory (for the fuzz target).
pub fn decode_frame<T: DeserializeOwned>(mut bytes: &[u8], max: u32) -> Result<Option<T>, Error> {
    read_frame(&mut bytes, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::Trigger;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Trigger::Wakeup).unwrap();
        write_frame(&mut buf, &Trigger::Flush).unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame::<Trigger>(&mut r, MAX_FRAME).unwrap(), Some(Trigger::Wakeup));
        assert_eq!(read_frame::<Trigger>(&mut r, MAX_FRAME).unwrap(), Some(Trigger::Flush));
        assert_eq!(read_frame::<Trigger>(&mut r, MAX_FRAME).unwrap(), None);
        assert!(matches!(
            decode_frame::<Trigger>(&[0xff, 0xff, 0xff, 0xff], MAX_FRAME),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(decode_frame::<Trigger>(&buf[..5], MAX_FRAME), Err(Error::Truncated)));
        let mut wrong = buf[..buf.len() / 2].to_vec();
        wrong[5] = 9;
        assert!(matches!(decode_frame::<Trigger>(&wrong, MAX_FRAME), Err(Error::Version(9))));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame::<crate::delivery::DeliveryRequest>(&bytes, 1 << 16);
            let _ = decode_frame::<crate::control::ControlReply>(&bytes, 1 << 16);
        }
    }
}
