//! The MIME tree of one message, as byte ranges into its raw bytes.
//!
//! RFC 3501 asks for octet counts, line counts and section contents of
//! the message exactly as stored, so this module never decodes or
//! re-encodes: it finds header blocks, bodies and multipart boundaries
//! (RFC 2046 §5.1.1) and records where they are. Header field values are
//! handed to mail-parser only where IMAP wants them interpreted
//! (Content-Type parameters with RFC 2231 continuations).
//!
//! The tree is built without recursion, from an explicit work list, and
//! is bounded: [`MAX_DEPTH`] levels of multipart or message/rfc822
//! nesting, [`MAX_PARTS`] parts in all and [`MAX_FIELDS`] indexed header
//! fields per part. What lies beyond a limit stays in the bytes of the
//! enclosing part (it is still fetched with `BODY[]`), it is only not
//! split further.
//!
//! DIAGNOSTICS: none; any input gives a tree.

use std::ops::Range;

use mail_parser::{HeaderValue, parsers::MessageStream};

/// Deepest nesting of multiparts and encapsulated messages that is split.
pub const MAX_DEPTH: usize = 100;
/// Most parts (entities) one message is split into.
pub const MAX_PARTS: usize = 10_000;
/// Most header fields indexed per entity; later ones stay in the header
/// bytes but are not looked at by name.
pub const MAX_FIELDS: usize = 2_000;

/// One header field: its name and its value, both as raw ranges.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The field name, without the colon.
    pub name: Range<usize>,
    /// The value after the colon, up to (not including) the final line break.
    pub value: Range<usize>,
    /// The whole field including its final line break.
    pub whole: Range<usize>,
}

/// What an entity's body holds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A body that is not split further.
    Leaf,
    /// A multipart body and the indexes of its parts, in order.
    Multipart(Vec<usize>),
    /// A message/rfc822 body and the index of the encapsulated message.
    Message(usize),
}

/// A parsed Content-Type (or the RFC 2045 §5.2 default).
#[derive(Debug, Clone)]
pub(crate) struct ContentType {
    /// Lower-case type, e.g. `text`.
    pub kind: String,
    /// Lower-case subtype, e.g. `plain`.
    pub subtype: String,
    /// Parameters in header order, names lower-case, values as decoded
    /// by mail-parser (RFC 2231 continuations joined).
    pub params: Vec<(String, String)>,
}

impl ContentType {
    fn default_for(parent_digest: bool) -> ContentType {
        if parent_digest {
            ContentType { kind: "message".into(), subtype: "rfc822".into(), params: Vec::new() }
        } else {
            ContentType {
                kind: "text".into(),
                subtype: "plain".into(),
                params: vec![("charset".into(), "us-ascii".into())],
            }
        }
    }

    /// The value of parameter `name` (lower-case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[cfg(test)]
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind == kind && self.subtype == subtype
    }
}

/// One entity: a header block and a body.
#[derive(Debug, Clone)]
pub(crate) struct Entity {
    /// The header block including the blank line that ends it.
    pub header: Range<usize>,
    /// The body, up to (not including) the line break before the next
    /// boundary.
    pub body: Range<usize>,
    /// The indexed fields of the header.
    pub fields: Vec<Field>,
    pub content_type: ContentType,
    pub kind: Kind,
    /// Nesting level: 0 for the message itself.
    pub depth: usize,
}

/// The MIME tree of a message: entity 0 is the message itself.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub entities: Vec<Entity>,
}

/// Parses the header block starting at `start`, ending at `end`: returns
/// the end of the header block (after the blank line) and the fields.
pub(crate) fn parse_header(raw: &[u8], start: usize, end: usize) -> (usize, Vec<Field>) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = start;
    while pos < end {
        let line_end = memchr_lf(raw, pos, end);
        let line = &raw[pos..line_end];
        let content = trim_eol(line);
        if content.is_empty() {
            // RFC 5322 §2.1: the first empty line ends the header.
            return (line_end, fields);
        }
        if (line[0] == b' ' || line[0] == b'\t') && !fields.is_empty() {
            if let Some(last) = fields.last_mut() {
                last.value.end = pos + content.len();
                last.whole.end = line_end;
            }
        } else if let Some(colon) = content.iter().position(|&b| b == b':') {
            let name = &content[..colon];
            let valid_name = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b));
            if valid_name && fields.len() < MAX_FIELDS {
                fields.push(Field {
                    name: pos..pos + colon,
                    value: pos + colon + 1..pos + content.len(),
                    whole: pos..line_end,
                });
            }
        } else if fields.is_empty() && pos == start && looks_like_body(content) {
            // No header at all: Dovecot and Postfix treat a first line that
            // is not a field as the start of the body.
            return (start, fields);
        }
        pos = line_end;
    }
    (end, fields)
}

/// A first line without a colon that cannot be a field name either:
/// the entity has no header (a bare body).
fn looks_like_body(line: &[u8]) -> bool {
    line.iter().any(|&b| b == b' ' || b == b'\t' || !(33..=126).contains(&b))
}

/// The index just after the next LF at or after `pos`, or `end`.
pub(crate) fn memchr_lf(raw: &[u8], pos: usize, end: usize) -> usize {
    raw[pos..end].iter().position(|&b| b == b'\n').map_or(end, |i| pos + i + 1)
}

/// `line` without its trailing CRLF or LF.
pub(crate) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The value bytes of the field, as mail-parser's field parsers expect
/// them: up to and including the final line break.
pub(crate) fn value_with_eol<'a>(raw: &'a [u8], f: &Field) -> &'a [u8] {
    &raw[f.value.start..f.whole.end]
}

fn parse_content_type(raw: &[u8], fields: &[Field], parent_digest: bool) -> ContentType {
    let Some(f) =
        fields.iter().rev().find(|f| raw[f.name.clone()].eq_ignore_ascii_case(b"content-type"))
    else {
        return ContentType::default_for(parent_digest);
    };
    let mut value = value_with_eol(raw, f).to_vec();
    if !value.ends_with(b"\n") {
        value.extend_from_slice(b"\r\n");
    }
    match MessageStream::new(&value).parse_content_type() {
        HeaderValue::ContentType(ct) => {
            let kind = ct.c_type.to_ascii_lowercase();
            let Some(subtype) = ct.c_subtype.map(|s| s.to_ascii_lowercase()) else {
                // RFC 2045 §5.2: a syntactically invalid Content-Type is
                // taken as text/plain; charset=us-ascii.
                return ContentType::default_for(false);
            };
            if kind.is_empty() || subtype.is_empty() {
                return ContentType::default_for(false);
            }
            let params = ct
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.name.to_ascii_lowercase(), a.value.into_owned()))
                .collect();
            ContentType { kind, subtype, params }
        }
        _ => ContentType::default_for(false),
    }
}

/// Splits a multipart body at `--boundary` lines (RFC 2046 §5.1.1) into
/// the ranges of its parts. A missing close delimiter ends the last part
/// at the end of the body.
fn split_multipart(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut pos = body.start;
    let mut current: Option<usize> = None;
    while pos < body.end {
        let line_end = memchr_lf(raw, pos, body.end);
        let line = trim_eol(&raw[pos..line_end]);
        if let Some(rest) = line.strip_prefix(b"--").and_then(|l| l.strip_prefix(boundary)) {
            let close = rest.starts_with(b"--");
            let tail = if close { &rest[2..] } else { rest };
            if tail.iter().all(|&b| b == b' ' || b == b'\t') {
                // The line break before the delimiter belongs to it.
                let before = if pos > body.start && raw[pos - 1] == b'\n' {
                    if pos - 1 > body.start && raw[pos - 2] == b'\r' { pos - 2 } else { pos - 1 }
                } else {
                    pos
                };
                if let Some(start) = current.take() {
                    parts.push(start..before.max(start));
                }
                if close {
                    return parts;
                }
                current = Some(line_end);
            }
        }
        pos = line_end;
    }
    if let Some(start) = current {
        parts.push(start..body.end);
    }
    parts
}

impl Tree {
    /// Builds the tree of `raw`. Never fails; malformed input gives the
    /// structure a lenient reader would see.
    pub(crate) fn parse(raw: &[u8]) -> Tree {
        let mut tree = Tree { entities: Vec::new() };
        tree.push_entity(raw, 0..raw.len(), 0, false);
        // Work list of entities whose body still has to be looked at.
        let mut work = vec![0usize];
        while let Some(idx) = work.pop() {
            let (body, depth, ct) = {
                let e = &tree.entities[idx];
                (e.body.clone(), e.depth, e.content_type.clone())
            };
            if depth >= MAX_DEPTH {
                continue;
            }
            if ct.kind == "multipart" {
                let Some(boundary) = ct.param("boundary").filter(|b| !b.is_empty()) else {
                    continue;
                };
                let ranges = split_multipart(raw, body, boundary.as_bytes());
                let digest = ct.subtype == "digest";
                let mut children = Vec::with_capacity(ranges.len());
                for r in ranges {
                    if tree.entities.len() >= MAX_PARTS {
                        break;
                    }
                    children.push(tree.push_entity(raw, r, depth + 1, digest));
                }
                if children.is_empty() {
                    continue;
                }
                // Pushed in reverse so parts are expanded in order (the
                // order does not change the result, only memory use).
                work.extend(children.iter().rev().copied());
                tree.entities[idx].kind = Kind::Multipart(children);
            } else if ct.kind == "message" && (ct.subtype == "rfc822" || ct.subtype == "global") {
                if tree.entities.len() >= MAX_PARTS {
                    continue;
                }
                let inner = tree.push_entity(raw, body, depth + 1, false);
                tree.entities[idx].kind = Kind::Message(inner);
                work.push(inner);
            }
        }
        tree
    }

    fn push_entity(
        &mut self,
        raw: &[u8],
        range: Range<usize>,
        depth: usize,
        digest: bool,
    ) -> usize {
        let (header_end, fields) = parse_header(raw, range.start, range.end);
        let content_type = parse_content_type(raw, &fields, digest);
        self.entities.push(Entity {
            header: range.start..header_end,
            body: header_end..range.end.max(header_end),
            fields,
            content_type,
            kind: Kind::Leaf,
            depth,
        });
        self.entities.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_body_ranges() {
        let raw = b"A: 1\r\nB: 2\r\n  more\r\n\r\nbody\r\n";
        let t = Tree::parse(raw);
        let e = &t.entities[0];
        assert_eq!(&raw[e.header.clone()], b"A: 1\r\nB: 2\r\n  more\r\n\r\n");
        assert_eq!(&raw[e.body.clone()], b"body\r\n");
        assert_eq!(&raw[e.fields[1].value.clone()], b" 2\r\n  more");
        assert_eq!(&raw[e.fields[1].whole.clone()], b"B: 2\r\n  more\r\n");
        assert!(e.content_type.is("text", "plain"));
    }

    #[test]
    fn multipart_parts_exclude_the_crlf_before_the_boundary() {
        let raw = b"Content-Type: multipart/mixed; boundary=xx\r\n\r\npreamble\r\n--xx\r\n\r\none\r\n--xx\r\nContent-Type: text/html\r\n\r\n<b>two</b>\r\n--xx--\r\nepilogue\r\n";
        let t = Tree::parse(raw);
        let Kind::Multipart(ch) = &t.entities[0].kind else { panic!("not multipart") };
        assert_eq!(ch.len(), 2);
        assert_eq!(&raw[t.entities[ch[0]].body.clone()], b"one");
        assert_eq!(&raw[t.entities[ch[1]].header.clone()], b"Content-Type: text/html\r\n\r\n");
        assert_eq!(&raw[t.entities[ch[1]].body.clone()], b"<b>two</b>");
        assert!(t.entities[ch[1]].content_type.is("text", "html"));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut raw = Vec::new();
        for i in 0..500 {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"\r\nleaf\r\n");
        let t = Tree::parse(&raw);
        assert_eq!(t.entities.iter().map(|e| e.depth).max(), Some(MAX_DEPTH));
    }

    #[test]
    fn no_header_at_all() {
        let raw = b"just a body line\r\n";
        let t = Tree::parse(raw);
        assert_eq!(t.entities[0].header, 0..0);
        assert_eq!(t.entities[0].body, 0..raw.len());
    }
}
