//! The queue-file format, version 1 (described in docs/queue-format.md).
//!
//! ```text
//! offset  size  field
//! 0       8     magic "POSTERNQ"
//! 8       2     format version, big-endian (1)
//! 10      4     envelope length E, big-endian
//! 14      E     envelope (stdx::codec of `Envelope`)
//! 14+E    8     content length C, big-endian
//! 22+E    C     content: the message as cleanup left it, LF line endings
//! 22+E+C  4     trailer "END\n"
//! ```
//! The lengths and the trailer make truncation detectable without
//! reading the content, which is what qmgr does at every scan. A reader
//! accepts exactly this layout and nothing else: any deviation is
//! `Error::Corrupt`, and the caller quarantines the file.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// First bytes of every queue file.
pub const MAGIC: &[u8; 8] = b"POSTERNQ";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Last bytes of every complete queue file.
pub const TRAILER: &[u8; 4] = b"END\n";
/// Largest envelope a reader accepts (about 100,000 recipients).
pub const MAX_ENVELOPE: u32 = 32 << 20;
/// Largest content a reader accepts; message_size_limit is far below it.
pub const MAX_CONTENT: u64 = 1 << 31;

const HEADER: u64 = 8 + 2 + 4;

/// The envelope of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope sender; empty for the null sender `<>` (bounces).
    pub sender: String,
    /// Envelope recipients, in the order received. Their index in this
    /// vector is how status records refer to them.
    pub recipients: Vec<Recipient>,
    /// Arrival time, seconds since the epoch.
    pub arrival: u64,
    /// `host[addr]` of the SMTP client, or `local` for pickup.
    pub client: String,
    /// Which service queued it: `smtpd`, `pickup`, `bounce`, `local`.
    pub origin: String,
    /// Named extra attributes (for example `sasl_username`), so fields can
    /// be added without a format version bump.
    pub attrs: Vec<(String, String)>,
}

/// One envelope recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address to deliver to, already qualified.
    pub address: String,
    /// The address as the client gave it (DSN ORCPT, `orig_to=` in logs).
    pub original: String,
}

/// A queue file read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFile {
    /// The envelope.
    pub envelope: Envelope,
    /// The message content.
    pub content: Vec<u8>,
}

/// Encodes a complete queue file.
pub fn encode(envelope: &Envelope, content: &[u8]) -> Result<Vec<u8>, Error> {
    let env = stdx::codec::encode(envelope).map_err(|e| Error::Encode(e.to_string()))?;
    let env_len = u32::try_from(env.len())
        .ok()
        .filter(|l| *l <= MAX_ENVELOPE)
        .ok_or_else(|| Error::Encode("envelope too large".into()))?;
    let mut out = Vec::with_capacity(HEADER as usize + env.len() + 8 + content.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&env_len.to_be_bytes());
    out.extend_from_slice(&env);
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(TRAILER);
    Ok(out)
}

/// Decodes a complete queue file held in memory.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<QueueFile, Error> {
    let corrupt =
        |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    let (envelope, content_start) = decode_head(path, bytes, bytes.len() as u64)?;
    let start =
        usize::try_from(content_start).map_err(|_| corrupt("content offset out of range"))?;
    let content_len = read_u64(bytes, start - 8).ok_or_else(|| corrupt("truncated"))?;
    let end = start
        .checked_add(
            usize::try_from(content_len).map_err(|_| corrupt("content length out of range"))?,
        )
        .ok_or_else(|| corrupt("content length out of range"))?;
    let content = bytes.get(start..end).ok_or_else(|| corrupt("truncated content"))?.to_vec();
    Ok(QueueFile { envelope, content })
}

/// Reads only the envelope of a file, checking that the file is complete.
pub fn read_envelope(path: &Path) -> Result<Envelope, Error> {
    let mut f = File::open(path).map_err(Error::io(path))?;
    let file_len = f.metadata().map_err(Error::io(path))?.len();
    let mut head = vec![0u8; HEADER as usize];
    read_exact_or_corrupt(&mut f, path, &mut head)?;
    let env_len = u64::from(u32::from_be_bytes([head[10], head[11], head[12], head[13]]));
    if env_len > u64::from(MAX_ENVELOPE) || HEADER + env_len + 8 > file_len {
        check_magic(path, &head)?;
        return Err(Error::Corrupt { path: path.to_owned(), reason: "truncated envelope".into() });
    }
    let mut rest = vec![0u8; (env_len + 8) as usize];
    read_exact_or_corrupt(&mut f, path, &mut rest)?;
    head.extend_from_slice(&rest);
    let (envelope, _) = decode_head(path, &head, file_len)?;
    // The trailer proves the writer finished; reading 4 bytes is cheap.
    f.seek(SeekFrom::End(-4)).map_err(Error::io(path))?;
    let mut trailer = [0u8; 4];
    read_exact_or_corrupt(&mut f, path, &mut trailer)?;
    if &trailer != TRAILER {
        return Err(Error::Corrupt { path: path.to_owned(), reason: "missing trailer".into() });
    }
    Ok(envelope)
}

/// Reads and decodes a whole queue file.
pub fn read(path: &Path) -> Result<QueueFile, Error> {
    let mut f = File::open(path).map_err(Error::io(path))?;
    let len = f.metadata().map_err(Error::io(path))?.len();
    if len > MAX_CONTENT + u64::from(MAX_ENVELOPE) + 64 {
        return Err(Error::Corrupt { path: path.to_owned(), reason: "file too large".into() });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.read_to_end(&mut bytes).map_err(Error::io(path))?;
    decode(path, &bytes)
}

fn read_exact_or_corrupt(f: &mut File, path: &Path, buf: &mut [u8]) -> Result<(), Error> {
    f.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Corrupt { path: path.to_owned(), reason: "truncated".into() }
        } else {
            Error::Io { path: path.to_owned(), source: e }
        }
    })
}

fn check_magic(path: &Path, head: &[u8]) -> Result<(), Error> {
    let corrupt = |reason: String| Error::Corrupt { path: path.to_owned(), reason };
    if head.get(..8) != Some(MAGIC.as_slice()) {
        return Err(corrupt("bad magic".into()));
    }
    let version = u16::from_be_bytes([head[8], head[9]]);
    if version != VERSION {
        return Err(corrupt(format!("unsupported format version {version}")));
    }
    Ok(())
}

/// Decodes magic, version and envelope from `bytes` (which holds at least
/// the header, the envelope and the content length); checks the lengths
/// against `file_len`. Returns the envelope and the content offset.
fn decode_head(path: &Path, bytes: &[u8], file_len: u64) -> Result<(Envelope, u64), Error> {
    let corrupt =
        |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    if bytes.len() < HEADER as usize {
        return Err(corrupt("truncated header"));
    }
    check_magic(path, bytes)?;
    let env_len = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    if env_len > MAX_ENVELOPE {
        return Err(corrupt("envelope length out of range"));
    }
    let env_end = HEADER as usize + env_len as usize;
    let env_bytes =
        bytes.get(HEADER as usize..env_end).ok_or_else(|| corrupt("truncated envelope"))?;
    let content_len = read_u64(bytes, env_end).ok_or_else(|| corrupt("truncated"))?;
    if content_len > MAX_CONTENT {
        return Err(corrupt("content length out of range"));
    }
    let content_start = env_end as u64 + 8;
    if content_start + content_len + TRAILER.len() as u64 != file_len {
        return Err(corrupt("length mismatch (truncated or padded)"));
    }
    let envelope: Envelope =
        stdx::codec::decode(env_bytes).map_err(|e| corrupt(&format!("envelope: {e}")))?;
    Ok((envelope, content_start))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample() -> Envelope {
        Envelope {
            sender: "root@example.org".into(),
            recipients: vec![Recipient {
                address: "suporte@example.org".into(),
                original: "suporte@example.org".into(),
            }],
            arrival: 1_700_000_000,
            client: "localhost[127.0.0.1]".into(),
            origin: "smtpd".into(),
            attrs: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample(), b"Subject: x\n\nbody\n").unwrap();
        let qf = decode(Path::new("q"), &bytes).unwrap();
        assert_eq!(qf.envelope, sample());
        assert_eq!(qf.content, b"Subject: x\n\nbody\n");
    }

    #[test]
    fn every_truncation_is_detected() {
        let bytes = encode(&sample(), b"Subject: x\n\nbody\n").unwrap();
        for n in 0..bytes.len() {
            assert!(
                matches!(decode(Path::new("q"), &bytes[..n]), Err(Error::Corrupt { .. })),
                "prefix {n}"
            );
        }
        let d = tempfile::tempdir().unwrap();
        for n in [0, 5, 14, 30, bytes.len() - 1] {
            let p = d.path().join(format!("t{n}"));
            std::fs::write(&p, &bytes[..n]).unwrap();
            assert!(matches!(read_envelope(&p), Err(Error::Corrupt { .. })), "prefix {n}");
        }
        let p = d.path().join("whole");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(read_envelope(&p).unwrap(), sample());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(Path::new("q"), &bytes);
        }

        #[test]
        fn decode_never_panics_with_valid_magic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&VERSION.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let _ = decode(Path::new("q"), &bytes);
        }
    }
}
