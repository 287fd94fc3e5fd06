//! The queue-file format, version 3 (described in docs/queue-format.md).
//!
//! ```text
//! offset  size  field
//! 0       8     magic "POSTERNQ"
//! 8       2     format version, big-endian (3)
//! 10      4     envelope length E, big-endian
//! 14      E     envelope (stdx::codec of `Envelope`)
//! 14+E    8     content length C, big-endian
//! 22+E    4     CRC-32 of bytes 0 .. 22+E (header, envelope, C), big-endian
//! 26+E    C     content: the message as cleanup left it, LF line endings
//! 26+E+C  4     CRC-32 of the content, big-endian
//! 30+E+C  4     trailer "END\n"
//! ```
//! The lengths and the trailer make truncation detectable without
//! reading the content, which is what qmgr does at every scan; the first
//! checksum lets an envelope be trusted after reading only the head, the
//! second covers the content for readers that read it anyway. Version 3
//! added the ESMTP facts (body type, SMTPUTF8, DSN RET/ENVID, per
//! recipient NOTIFY/ORCPT) to the envelope; version 2 files (the same
//! layout, the envelope without them) and version 1 files (no checksums
//! either) are still read, their messages having none. A reader
//! accepts exactly this layout and an envelope whose every field is
//! within bounds ([`validate`]), and nothing else: any deviation is
//! `Error::Corrupt`, and the caller quarantines the file.

use crate::Error;
use crate::layout::open_regular;
use mail_types::Address;
use mail_types::esmtp::{EnvelopeParams, RecipientParams};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// First bytes of every queue file.
pub const MAGIC: &[u8; 8] = b"POSTERNQ";
/// The format version this code writes.
pub const VERSION: u16 = 3;
/// An older version this code still reads: the envelope without
/// [`Envelope::esmtp`] and [`Recipient::esmtp`].
pub const VERSION_2: u16 = 2;
/// The oldest version this code still reads: version 2 without checksums.
pub const VERSION_1: u16 = 1;
/// Longest DSN ENVID accepted (RFC 3461 §4.4).
pub const MAX_ENVID: usize = 100;
/// Last bytes of every complete queue file.
pub const TRAILER: &[u8; 4] = b"END\n";
/// Largest envelope a reader accepts (about 100,000 recipients).
pub const MAX_ENVELOPE: u32 = 32 << 20;
/// Largest content a reader accepts; message_size_limit is far below it.
pub const MAX_CONTENT: u64 = 1 << 31;
/// Latest arrival time a reader accepts: 9999-12-31T23:59:59Z. Anything
/// later is nonsense that would overflow time arithmetic downstream.
pub const MAX_ARRIVAL: u64 = 253_402_300_799;
/// Longest address (sender, recipient, original recipient) accepted.
pub const MAX_ADDRESS: usize = 4096;
/// Longest other text field (client, origin, attribute name or value).
pub const MAX_FIELD: usize = 4096;
/// Most named attributes an envelope may carry.
pub const MAX_ATTRS: usize = 64;

const HEADER: u64 = 8 + 2 + 4;

/// The envelope of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope sender; `None` for the null sender `<>` (bounces),
    /// written as the empty string as format 2 always has.
    #[serde(with = "mail_types::reverse_path")]
    pub sender: Option<Address>,
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
    /// What MAIL FROM declared: body type, SMTPUTF8, DSN RET and ENVID
    /// (version 3; empty for older files and for mail not from SMTP).
    pub esmtp: EnvelopeParams,
}

/// One envelope recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address to deliver to, already qualified.
    pub address: Address,
    /// The address as the client gave it (DSN ORCPT, `orig_to=` in logs).
    /// Text, not an [`Address`]: it is only ever shown, and what a client
    /// or a sendmail command line gave need not parse as one. The DSN
    /// ORCPT, when the client sent one, is kept apart in `esmtp.orcpt`:
    /// it is what notifications must name, and may differ from this.
    pub original: String,
    /// What RCPT TO declared: DSN NOTIFY and ORCPT (version 3).
    pub esmtp: RecipientParams,
}

impl Recipient {
    /// A recipient without ESMTP parameters.
    pub fn new(address: Address, original: impl Into<String>) -> Recipient {
        Recipient { address, original: original.into(), esmtp: RecipientParams::default() }
    }
}

/// The envelope as versions 1 and 2 wrote it.
#[derive(Debug, Serialize, Deserialize)]
struct EnvelopeV2 {
    #[serde(with = "mail_types::reverse_path")]
    sender: Option<Address>,
    recipients: Vec<RecipientV2>,
    arrival: u64,
    client: String,
    origin: String,
    attrs: Vec<(String, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecipientV2 {
    address: Address,
    original: String,
}

impl From<EnvelopeV2> for Envelope {
    fn from(e: EnvelopeV2) -> Envelope {
        Envelope {
            sender: e.sender,
            recipients: e
                .recipients
                .into_iter()
                .map(|r| Recipient::new(r.address, r.original))
                .collect(),
            arrival: e.arrival,
            client: e.client,
            origin: e.origin,
            attrs: e.attrs,
            esmtp: EnvelopeParams::default(),
        }
    }
}

/// A queue file read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFile {
    /// The envelope.
    pub envelope: Envelope,
    /// The message content.
    pub content: Vec<u8>,
}

/// CRC-32 (IEEE 802.3, as zlib and gzip compute it), table driven. A
/// checksum against damage (bad sectors, a truncated copy, stray
/// writes), not against someone who may write the queue anyway.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Default for Crc32 {
    fn default() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }
}

impl Crc32 {
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    /// The checksum of everything fed so far.
    pub fn finish(self) -> u32 {
        !self.0
    }

    /// The checksum of `bytes`.
    pub fn of(bytes: &[u8]) -> u32 {
        let mut c = Crc32::default();
        c.update(bytes);
        c.finish()
    }
}

/// Checks every field of an envelope against its bounds: texts that are
/// too long or carry NUL, CR or LF (they end up in log lines and
/// headers), too many attributes, an arrival time past [`MAX_ARRIVAL`].
/// Writers check before writing, readers after decoding.
pub fn validate(e: &Envelope) -> Result<(), String> {
    fn text(what: &str, s: &str, max: usize) -> Result<(), String> {
        if s.len() > max {
            return Err(format!("{what} longer than {max} bytes"));
        }
        if s.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(format!("{what} contains NUL, CR or LF"));
        }
        Ok(())
    }
    // Sender and recipient addresses were checked by Address::parse at
    // decode: never empty, no control characters, bounded lengths.
    for r in &e.recipients {
        text("original recipient", &r.original, MAX_ADDRESS)?;
        if let Some(o) = &r.esmtp.orcpt {
            if o.addr_type.is_empty()
                || o.addr_type.len() > 64
                || !o.addr_type.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err("malformed ORCPT address type".into());
            }
            text("ORCPT", &o.address, MAX_ADDRESS)?;
            if o.address.chars().any(char::is_control) {
                return Err("ORCPT contains control characters".into());
            }
        }
    }
    if let Some(envid) = &e.esmtp.envid {
        text("ENVID", envid, MAX_ENVID)?;
        if !envid.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err("ENVID not printable ASCII".into());
        }
    }
    if e.arrival > MAX_ARRIVAL {
        return Err(format!("arrival time {} out of range", e.arrival));
    }
    text("client", &e.client, MAX_FIELD)?;
    text("origin", &e.origin, MAX_FIELD)?;
    if e.attrs.len() > MAX_ATTRS {
        return Err(format!("more than {MAX_ATTRS} attributes"));
    }
    for (name, value) in &e.attrs {
        if name.is_empty() {
            return Err("empty attribute name".into());
        }
        text("attribute name", name, MAX_FIELD)?;
        text("attribute value", value, MAX_FIELD)?;
    }
    Ok(())
}

/// Encodes a complete queue file (version 3).
pub fn encode(envelope: &Envelope, content: &[u8]) -> Result<Vec<u8>, Error> {
    validate(envelope).map_err(Error::Encode)?;
    let env = stdx::codec::encode(envelope).map_err(|e| Error::Encode(e.to_string()))?;
    let env_len = u32::try_from(env.len())
        .ok()
        .filter(|l| *l <= MAX_ENVELOPE)
        .ok_or_else(|| Error::Encode("envelope too large".into()))?;
    if content.len() as u64 > MAX_CONTENT {
        return Err(Error::Encode("content too large".into()));
    }
    let mut out = Vec::with_capacity(HEADER as usize + env.len() + 12 + content.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&env_len.to_be_bytes());
    out.extend_from_slice(&env);
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    let head_crc = Crc32::of(&out);
    out.extend_from_slice(&head_crc.to_be_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(&Crc32::of(content).to_be_bytes());
    out.extend_from_slice(TRAILER);
    Ok(out)
}

/// Where things are in a file, from its head.
struct Head {
    envelope: Envelope,
    version: u16,
    content_start: u64,
    content_len: u64,
}

impl Head {
    /// Bytes after the content: the content checksum (version 2) and
    /// the trailer.
    fn tail_len(&self) -> u64 {
        tail_len(self.version)
    }
}

fn tail_len(version: u16) -> u64 {
    if version == VERSION_1 { 4 } else { 8 }
}

/// Bytes of the head (everything before the content) of a file with
/// this version and envelope length.
fn head_len(version: u16, env_len: u64) -> u64 {
    HEADER + env_len + 8 + if version == VERSION_1 { 0 } else { 4 }
}

/// Decodes a complete queue file held in memory.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<QueueFile, Error> {
    let corrupt =
        |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    let head = decode_head(path, bytes, bytes.len() as u64)?;
    let start =
        usize::try_from(head.content_start).map_err(|_| corrupt("content offset out of range"))?;
    let len =
        usize::try_from(head.content_len).map_err(|_| corrupt("content length out of range"))?;
    let end = start.checked_add(len).ok_or_else(|| corrupt("content length out of range"))?;
    let content = bytes.get(start..end).ok_or_else(|| corrupt("truncated content"))?;
    if head.version != VERSION_1 {
        let stored = bytes.get(end..end + 4).ok_or_else(|| corrupt("truncated"))?;
        if Crc32::of(content).to_be_bytes() != stored {
            return Err(corrupt("content checksum mismatch"));
        }
    }
    if bytes.get(end + head.tail_len() as usize - 4..) != Some(TRAILER.as_slice()) {
        return Err(corrupt("missing trailer"));
    }
    Ok(QueueFile { envelope: head.envelope, content: content.to_vec() })
}

/// Reads only the envelope of a file, checking that the file is complete
/// and the head's checksum; the content is not read.
pub fn read_envelope(path: &Path) -> Result<Envelope, Error> {
    read_envelope_inner(path, false)
}

/// Reads the envelope of a file and checks the whole file, streaming
/// the content through its checksum without keeping it.
pub fn read_envelope_verified(path: &Path) -> Result<Envelope, Error> {
    read_envelope_inner(path, true)
}

fn read_envelope_inner(path: &Path, verify_content: bool) -> Result<Envelope, Error> {
    let corrupt =
        |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    let (mut f, meta) = open_regular(path)?;
    let file_len = meta.len();
    let mut head = vec![0u8; HEADER as usize];
    read_exact_or_corrupt(&mut f, path, &mut head)?;
    let version = check_magic(path, &head)?;
    let env_len = u64::from(u32::from_be_bytes([head[10], head[11], head[12], head[13]]));
    let want = head_len(version, env_len);
    if env_len > u64::from(MAX_ENVELOPE) || want + tail_len(version) > file_len {
        return Err(corrupt("truncated envelope"));
    }
    let mut rest = vec![0u8; (want - HEADER) as usize];
    read_exact_or_corrupt(&mut f, path, &mut rest)?;
    head.extend_from_slice(&rest);
    let parsed = decode_head(path, &head, file_len)?;
    if verify_content && parsed.version != VERSION_1 {
        let mut crc = Crc32::default();
        let mut left = parsed.content_len;
        let mut buf = vec![0u8; 64 << 10];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            read_exact_or_corrupt(&mut f, path, &mut buf[..n])?;
            crc.update(&buf[..n]);
            left -= n as u64;
        }
        let mut stored = [0u8; 4];
        read_exact_or_corrupt(&mut f, path, &mut stored)?;
        if crc.finish().to_be_bytes() != stored {
            return Err(corrupt("content checksum mismatch"));
        }
    }
    // The trailer proves the writer finished; reading 4 bytes is cheap.
    f.seek(SeekFrom::End(-4)).map_err(Error::io(path))?;
    let mut trailer = [0u8; 4];
    read_exact_or_corrupt(&mut f, path, &mut trailer)?;
    if &trailer != TRAILER {
        return Err(corrupt("missing trailer"));
    }
    Ok(parsed.envelope)
}

/// Reads and decodes a whole queue file.
pub fn read(path: &Path) -> Result<QueueFile, Error> {
    let (f, meta) = open_regular(path)?;
    let len = meta.len();
    let max = MAX_CONTENT + u64::from(MAX_ENVELOPE) + 64;
    if len > max {
        return Err(Error::Corrupt { path: path.to_owned(), reason: "file too large".into() });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // Bounded even if the file grows while we read it.
    f.take(max + 1).read_to_end(&mut bytes).map_err(Error::io(path))?;
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

/// Checks the magic and returns the version, which must be one we read.
fn check_magic(path: &Path, head: &[u8]) -> Result<u16, Error> {
    let corrupt = |reason: String| Error::Corrupt { path: path.to_owned(), reason };
    if head.get(..8) != Some(MAGIC.as_slice()) {
        return Err(corrupt("bad magic".into()));
    }
    let version = match head.get(8..10) {
        Some([a, b]) => u16::from_be_bytes([*a, *b]),
        _ => return Err(corrupt("truncated header".into())),
    };
    if !matches!(version, VERSION | VERSION_2 | VERSION_1) {
        return Err(corrupt(format!("unsupported format version {version}")));
    }
    Ok(version)
}

/// Decodes magic, version, envelope and content length from `bytes`
/// (which holds at least the whole head); checks the lengths against
/// `file_len`, the head checksum (version 2) and every envelope field.
fn decode_head(path: &Path, bytes: &[u8], file_len: u64) -> Result<Head, Error> {
    let corrupt =
        |reason: &str| Error::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    if bytes.len() < HEADER as usize {
        return Err(corrupt("truncated header"));
    }
    let version = check_magic(path, bytes)?;
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
    let content_start = head_len(version, u64::from(env_len));
    if content_start + content_len + tail_len(version) != file_len {
        return Err(corrupt("length mismatch (truncated or padded)"));
    }
    if version != VERSION_1 {
        let stored = bytes.get(env_end + 8..env_end + 12).ok_or_else(|| corrupt("truncated"))?;
        if Crc32::of(&bytes[..env_end + 8]).to_be_bytes() != stored {
            return Err(corrupt("header checksum mismatch"));
        }
    }
    let envelope: Envelope = if version == VERSION {
        stdx::codec::decode(env_bytes)
    } else {
        stdx::codec::decode::<EnvelopeV2>(env_bytes).map(Envelope::from)
    }
    .map_err(|e| corrupt(&format!("envelope: {e}")))?;
    validate(&envelope).map_err(|e| corrupt(&format!("envelope: {e}")))?;
    Ok(Head { envelope, version, content_start, content_len })
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
            sender: Some("root@example.org".parse().unwrap()),
            recipients: vec![Recipient::new(
                "suporte@example.org".parse().unwrap(),
                "suporte@example.org",
            )],
            arrival: 1_700_000_000,
            client: "localhost[127.0.0.1]".into(),
            origin: "smtpd".into(),
            attrs: vec![],
            esmtp: EnvelopeParams::default(),
        }
    }

    /// An envelope with every ESMTP field set, UTF-8 addresses included.
    fn sample_esmtp() -> Envelope {
        use mail_types::esmtp::{Body, Notify, Orcpt, Ret};
        let mut e = sample();
        e.sender = Some("üser@exämple.org".parse().unwrap());
        e.recipients.push(Recipient {
            address: "bé@example.org".parse().unwrap(),
            original: "bé".into(),
            esmtp: RecipientParams {
                notify: Some(Notify { success: true, failure: true, delay: false }),
                orcpt: Some(Orcpt {
                    addr_type: "utf-8".into(), address: "bé@exämple.org".into()
                }),
            },
        });
        e.recipients[0].esmtp.notify = Some(Notify::NEVER);
        e.esmtp = EnvelopeParams {
            body: Some(Body::EightBitMime),
            smtputf8: true,
            ret: Some(Ret::Hdrs),
            envid: Some("QQ314159".into()),
        };
        e
    }

    #[test]
    fn esmtp_fields_round_trip() {
        let bytes = encode(&sample_esmtp(), b"x\n").unwrap();
        assert_eq!(&bytes[8..10], &[0, 3]);
        let qf = decode(Path::new("q"), &bytes).unwrap();
        assert_eq!(qf.envelope, sample_esmtp());
        let mut bad = sample_esmtp();
        bad.esmtp.envid = Some("e".repeat(MAX_ENVID + 1));
        assert!(matches!(encode(&bad, b"x"), Err(Error::Encode(_))));
        bad.esmtp.envid = Some("a\u{7}b".into());
        assert!(matches!(encode(&bad, b"x"), Err(Error::Encode(_))));
        let mut bad = sample_esmtp();
        bad.recipients[1].esmtp.orcpt.as_mut().unwrap().address = "a\u{85}b".into();
        assert!(matches!(encode(&bad, b"x"), Err(Error::Encode(_))));
        bad.recipients[1].esmtp.orcpt.as_mut().unwrap().addr_type = "a;b".into();
        assert!(matches!(encode(&bad, b"x"), Err(Error::Encode(_))));
    }

    /// A version 2 file as the previous code wrote it: the same layout
    /// with the envelope of version 2 (no ESMTP fields).
    fn encode_v2(envelope: &EnvelopeV2, content: &[u8]) -> Vec<u8> {
        encode_checked(VERSION_2, envelope, content)
    }

    /// A file with checksums, of any version and envelope, unvalidated
    /// (what a forger or a bad sector could leave).
    fn encode_checked<E: Serialize>(version: u16, envelope: &E, content: &[u8]) -> Vec<u8> {
        let env = stdx::codec::encode(envelope).unwrap();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&(env.len() as u32).to_be_bytes());
        out.extend_from_slice(&env);
        out.extend_from_slice(&(content.len() as u64).to_be_bytes());
        let crc = Crc32::of(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(&Crc32::of(content).to_be_bytes());
        out.extend_from_slice(TRAILER);
        out
    }

    fn sample_v2() -> EnvelopeV2 {
        EnvelopeV2 {
            sender: Some("root@example.org".parse().unwrap()),
            recipients: vec![RecipientV2 {
                address: "suporte@example.org".parse().unwrap(),
                original: "suporte@example.org".into(),
            }],
            arrival: 1_700_000_000,
            client: "localhost[127.0.0.1]".into(),
            origin: "smtpd".into(),
            attrs: vec![],
        }
    }

    #[test]
    fn version_2_files_are_still_read() {
        let bytes = encode_v2(&sample_v2(), b"old\n");
        let qf = decode(Path::new("q"), &bytes).unwrap();
        assert_eq!((qf.envelope, qf.content), (sample(), b"old\n".to_vec()));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v2");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(read_envelope_verified(&p).unwrap(), sample());
        assert_eq!(read_envelope(&p).unwrap(), sample());
        assert_eq!(read(&p).unwrap().content, b"old\n");
        // The committed file below was written by the version 2 code.
        let fixture =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2.queue");
        assert_eq!(std::fs::read(&fixture).unwrap(), bytes);
        assert_eq!(read(&fixture).unwrap().envelope, sample());
        // A version 3 envelope under a version 2 header does not decode.
        let mut forged = encode(&sample_esmtp(), b"x").unwrap();
        forged[9] = 2;
        assert!(decode(Path::new("q"), &forged).is_err());
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

    /// A version 1 file as the previous code wrote it.
    fn encode_v1<E: Serialize>(envelope: &E, content: &[u8]) -> Vec<u8> {
        let env = stdx::codec::encode(envelope).unwrap();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION_1.to_be_bytes());
        out.extend_from_slice(&(env.len() as u32).to_be_bytes());
        out.extend_from_slice(&env);
        out.extend_from_slice(&(content.len() as u64).to_be_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(TRAILER);
        out
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(Crc32::of(b"123456789"), 0xCBF4_3926);
        assert_eq!(Crc32::of(b""), 0);
    }

    #[test]
    fn version_1_files_are_still_read() {
        let bytes = encode_v1(&sample_v2(), b"old\n");
        let qf = decode(Path::new("q"), &bytes).unwrap();
        assert_eq!((qf.envelope, qf.content), (sample(), b"old\n".to_vec()));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v1");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(read_envelope_verified(&p).unwrap(), sample());
        assert_eq!(read(&p).unwrap().content, b"old\n");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let content = b"Subject: x\n\nbody\n";
        let bytes = encode(&sample(), content).unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q");
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(
                matches!(decode(Path::new("q"), &bad), Err(Error::Corrupt { .. })),
                "flip at {at} not detected"
            );
            std::fs::write(&p, &bad).unwrap();
            assert!(
                matches!(read_envelope_verified(&p), Err(Error::Corrupt { .. })),
                "flip at {at} not detected by the streaming check"
            );
        }
    }

    #[test]
    fn nonsense_fields_are_corrupt_and_never_written() {
        let mut huge = sample();
        huge.arrival = 1 << 63;
        assert!(matches!(encode(&huge, b"x"), Err(Error::Encode(_))));
        let mut huge_v2 = sample_v2();
        huge_v2.arrival = 1 << 63;
        for forged in [encode_v1(&huge_v2, b"x"), encode_checked(VERSION, &huge, b"x")] {
            match decode(Path::new("q"), &forged) {
                Err(Error::Corrupt { reason, .. }) => {
                    assert!(reason.contains("arrival"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        let mut bad_envid = sample();
        bad_envid.esmtp.envid = Some("a\r\nb".into());
        match decode(Path::new("q"), &encode_checked(VERSION, &bad_envid, b"x")) {
            Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("ENVID"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // The envelope's layout with every address as text, as a forger
        // (or a bad sector) could write it.
        #[derive(Serialize)]
        struct TextEnvelope {
            sender: String,
            recipients: Vec<(String, String)>,
            arrival: u64,
            client: String,
            origin: String,
            attrs: Vec<(String, String)>,
        }
        let text = |sender: &str, rcpt: &str| TextEnvelope {
            sender: sender.into(),
            recipients: vec![(rcpt.into(), rcpt.into())],
            arrival: 1,
            client: "local".into(),
            origin: "pickup".into(),
            attrs: vec![],
        };
        let good = text("root@example.org", "suporte@example.org");
        assert!(decode(Path::new("q"), &encode_v1(&good, b"x")).is_ok());
        for (sender, rcpt) in [
            ("", "a@b\r\nX-Injected: 1"),
            ("", ""),
            ("", "a..b@example.org"),
            (&*"a".repeat(MAX_ADDRESS + 1), "suporte@example.org"),
            ("a b@example.org", "suporte@example.org"),
        ] {
            let forged = encode_v1(&text(sender, rcpt), b"x");
            assert!(matches!(decode(Path::new("q"), &forged), Err(Error::Corrupt { .. })));
        }
        let mut attrs = sample_v2();
        attrs.attrs = (0..=MAX_ATTRS).map(|i| (format!("a{i}"), String::new())).collect();
        assert!(decode(Path::new("q"), &encode_v1(&attrs, b"x")).is_err());
    }

    #[test]
    fn fifos_and_symlinks_are_corrupt_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Without O_NONBLOCK these opens would wait for a writer forever.
        assert!(matches!(read_envelope(&fifo), Err(Error::Corrupt { .. })));
        assert!(matches!(read(&fifo), Err(Error::Corrupt { .. })));
        let real = d.path().join("real");
        std::fs::write(&real, encode(&sample(), b"x").unwrap()).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        match read_envelope(&link) {
            Err(Error::Corrupt { reason, .. }) => assert_eq!(reason, "symbolic link"),
            other => panic!("{other:?}"),
        }
        assert_eq!(read_envelope(&real).unwrap(), sample());
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
