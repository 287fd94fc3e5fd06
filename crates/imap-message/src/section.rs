//! `BODY[section]` (RFC 3501 §6.4.5), `<partial>`, and BINARY (RFC 3516).
//!
//! Every section is a slice of the raw bytes except HEADER.FIELDS and
//! HEADER.FIELDS.NOT, which join the chosen fields (each with its own
//! folding, unchanged) and end with the blank line, as RFC 3501 asks.
//! Part numbers follow RFC 3501 §6.4.5: a non-multipart message has one
//! part, 1, which is its body; the parts of a message/rfc822 part are
//! those of the message it holds.

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_types::core::AString;
use imap_types::fetch::{Part, Section};

use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};

use crate::envelope::first_value;
use crate::mime::{Kind, Tree};
use crate::strings::{trim_ws, unfold};

/// Why BINARY cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryError {
    /// The part number names no part of this message (answer NIL, or NO).
    NoSuchPart,
    /// The part's Content-Transfer-Encoding is not one of RFC 2045's:
    /// RFC 3516 §4.1 answers `NO [UNKNOWN-CTE]`. Holds the encoding name.
    UnknownEncoding(String),
    /// The part claims base64 or quoted-printable but its bytes are not
    /// (answer NO; the message itself is unchanged).
    Corrupt,
}

impl std::fmt::Display for BinaryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BinaryError::NoSuchPart => f.write_str("no such part"),
            BinaryError::UnknownEncoding(e) => write!(f, "unknown content transfer encoding {e}"),
            BinaryError::Corrupt => f.write_str("the part's encoded data is invalid"),
        }
    }
}

impl std::error::Error for BinaryError {}

/// Applies `<start.len>` (RFC 3501 §6.4.5): the bytes from `start`, at
/// most `len` of them; empty when `start` is past the end.
pub fn partial(data: &[u8], start: u32, len: NonZeroU32) -> &[u8] {
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
    let len = usize::try_from(len.get()).unwrap_or(usize::MAX);
    &data[start..start.saturating_add(len).min(data.len())]
}

/// The entity a part number names (RFC 3501 §6.4.5), the way Dovecot
/// reads it: a multipart's parts are numbered from 1; a message/rfc822
/// part's subparts are those of the message it holds; any other entity
/// has one part, 1, which is itself and ends the path (so `1.1` of a
/// text part inside a multipart is that text part, while `1.1` of a
/// single-part message names nothing); a multipart without parts (no
/// boundary) has none.
fn resolve(tree: &Tree, path: &[NonZeroU32]) -> Option<usize> {
    let mut cur = 0usize;
    // False while `cur` is the top-level message itself, whose parts are
    // being numbered; true once it is a part.
    let mut as_part = false;
    for (k, n) in path.iter().enumerate() {
        let i = usize::try_from(n.get() - 1).ok()?;
        let container = match tree.entities[cur].kind {
            Kind::Message(inner) if as_part => inner,
            _ => cur,
        };
        let c = &tree.entities[container];
        match &c.kind {
            Kind::Multipart(children) => cur = *children.get(i)?,
            _ if c.content_type.kind == "multipart" => return None,
            // Part 1 of a single-part entity is itself; only an
            // encapsulated message has parts below that.
            _ if i == 0 && (k + 1 == path.len() || matches!(c.kind, Kind::Message(_))) => {
                cur = container
            }
            _ => return None,
        }
        as_part = true;
    }
    Some(cur)
}

/// The message a HEADER/TEXT section with `part` refers to: the top
/// level, or the message held by a message/rfc822 part.
fn message_of(tree: &Tree, part: Option<&Part>) -> Option<usize> {
    match part {
        None => Some(0),
        Some(p) => match tree.entities[resolve(tree, p.0.as_ref())?].kind {
            Kind::Message(inner) => Some(inner),
            _ => None,
        },
    }
}

fn field_filter(raw: &[u8], tree: &Tree, idx: usize, names: &[AString<'_>], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &tree.entities[idx].fields {
        let name = &raw[f.name.clone()];
        let listed = names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name));
        if listed == keep {
            out.extend_from_slice(&raw[f.whole.clone()]);
            if !out.ends_with(b"\n") {
                // The last field of a header without a blank line.
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

pub(crate) fn section<'a>(
    raw: &'a [u8],
    tree: &Tree,
    section: Option<&Section<'_>>,
) -> Option<Cow<'a, [u8]>> {
    let slice = |r: std::ops::Range<usize>| Some(Cow::Borrowed(&raw[r]));
    match section {
        None => Some(Cow::Borrowed(raw)),
        Some(Section::Part(p)) => slice(tree.entities[resolve(tree, p.0.as_ref())?].body.clone()),
        Some(Section::Mime(p)) => slice(tree.entities[resolve(tree, p.0.as_ref())?].header.clone()),
        Some(Section::Header(p)) => {
            slice(tree.entities[message_of(tree, p.as_ref())?].header.clone())
        }
        Some(Section::Text(p)) => slice(tree.entities[message_of(tree, p.as_ref())?].body.clone()),
        Some(Section::HeaderFields(p, names)) => Some(Cow::Owned(field_filter(
            raw,
            tree,
            message_of(tree, p.as_ref())?,
            names.as_ref(),
            true,
        ))),
        Some(Section::HeaderFieldsNot(p, names)) => Some(Cow::Owned(field_filter(
            raw,
            tree,
            message_of(tree, p.as_ref())?,
            names.as_ref(),
            false,
        ))),
    }
}

/// Decodes `body` by its Content-Transfer-Encoding (RFC 2045 §6).
pub(crate) fn decode<'a>(
    body: &'a [u8],
    encoding: Option<&[u8]>,
) -> Result<Cow<'a, [u8]>, BinaryError> {
    let enc = encoding
        .map(|e| String::from_utf8_lossy(&unfold(trim_ws(e))).to_ascii_lowercase())
        .unwrap_or_default();
    match enc.as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(Cow::Borrowed(body)),
        "base64" => base64_decode(body).map(Cow::Owned).ok_or(BinaryError::Corrupt),
        "quoted-printable" => {
            quoted_printable_decode(body).map(Cow::Owned).ok_or(BinaryError::Corrupt)
        }
        _ => Err(BinaryError::UnknownEncoding(enc)),
    }
}

pub(crate) fn binary<'a>(
    raw: &'a [u8],
    tree: &Tree,
    part: &[NonZeroU32],
) -> Result<Cow<'a, [u8]>, BinaryError> {
    if part.is_empty() {
        let root = &tree.entities[0];
        if !matches!(root.kind, Kind::Leaf) {
            return Ok(Cow::Borrowed(raw));
        }
        // The whole single-part message: its header and decoded body.
        let decoded =
            decode(&raw[root.body.clone()], first_value(raw, root, "content-transfer-encoding"))?;
        if let Cow::Borrowed(_) = decoded {
            return Ok(Cow::Borrowed(raw));
        }
        let mut out = raw[root.header.clone()].to_vec();
        out.extend_from_slice(&decoded);
        return Ok(Cow::Owned(out));
    }
    let idx = resolve(tree, part).ok_or(BinaryError::NoSuchPart)?;
    let e = &tree.entities[idx];
    let body = &raw[e.body.clone()];
    if !matches!(e.kind, Kind::Leaf) {
        // Composite types are never encoded (RFC 2045 §6.4).
        return Ok(Cow::Borrowed(body));
    }
    decode(body, first_value(raw, e, "content-transfer-encoding"))
}
