//! Splitting a message into its header fields and body (RFC 5322 §2.1,
//! §2.2), tolerant the way Postfix's cleanup is.

/// One header field as it appears in the message: every physical line,
/// continuation lines included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    /// The field name, without trailing whitespace or the colon.
    pub(crate) name: &'a [u8],
    /// The field's bytes, from the name to the end of its last line.
    pub(crate) raw: &'a [u8],
    /// Offset of `raw` in the message.
    start: usize,
}

impl Field<'_> {
    /// Whether the field has this name (ASCII case-insensitive).
    pub(crate) fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The unfolded value (RFC 5322 §2.2.3: a line break followed by
    /// whitespace is removed, the whitespace kept), trimmed.
    pub(crate) fn value(&self) -> String {
        let colon = self.raw.iter().position(|&b| b == b':').map_or(self.raw.len(), |i| i + 1);
        let mut v = Vec::with_capacity(self.raw.len() - colon);
        for &b in &self.raw[colon..] {
            if b != b'\n' && b != b'\r' {
                v.push(b);
            }
        }
        String::from_utf8_lossy(&v).trim_matches([' ', '\t']).to_owned()
    }
}

/// A message split at the end of its header block.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) fields: Vec<Field<'a>>,
    /// Offset where the header block ends: the blank separator line, the
    /// first line that is not a header, or the end of the input.
    pub(crate) header_end: usize,
    /// The body, after the blank separator line when there was one.
    pub(crate) body: &'a [u8],
}

/// Whether `line` starts a header field: `name:` where the name is
/// printable US-ASCII without colon (RFC 5322 §2.2), allowing whitespace
/// before the colon as obs-optional does (RFC 5322 §4.5: `field-name *WSP ":"`).
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let trimmed_len = name.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    let name = &name[..trimmed_len];
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))).then_some(name)
}

/// Splits `content` (LF or CRLF line endings) into header fields and body.
/// Never fails: anything that is not a header starts the body.
pub(crate) fn parse(content: &[u8]) -> Parsed<'_> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    while pos < content.len() {
        let rest = &content[pos..];
        let len = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..len];
        if line == b"\n" || line == b"\r\n" {
            return Parsed { fields, header_end: pos, body: &content[pos + len..] };
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some(last) = fields.last_mut() {
                // Continuation line: the field's raw bytes grow to cover it.
                last.raw = &content[last.start..pos + len];
                pos += len;
                continue;
            }
        } else if let Some(name) = field_name(line) {
            fields.push(Field { name, raw: line, start: pos });
            pos += len;
            continue;
        }
        return Parsed { fields, header_end: pos, body: &content[pos..] };
    }
    Parsed { fields, header_end: content.len(), body: &[] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_headers_and_body() {
        let p = parse(b"From: a\nSubject: x\n  y\n\nbody\n");
        assert_eq!(p.fields.len(), 2);
        assert_eq!(p.fields[1].raw, b"Subject: x\n  y\n");
        assert_eq!(p.fields[1].value(), "x  y");
        assert_eq!(p.body, b"body\n");
        assert_eq!(p.header_end, 23);
    }

    #[test]
    fn non_header_line_starts_body() {
        let p = parse(b"Subject: x\nhello world\n");
        assert_eq!(p.fields.len(), 1);
        assert_eq!(p.body, b"hello world\n");
        let p = parse(b" leading space\nSubject: x\n");
        assert!(p.fields.is_empty());
        assert_eq!(p.body, b" leading space\nSubject: x\n");
        let p = parse(b"From root@x Sat Nov 28 13:02:34 2026\n");
        assert!(p.fields.is_empty());
    }

    #[test]
    fn obsolete_space_before_colon() {
        let p = parse(b"Subject : x\r\n\r\nb");
        assert_eq!(p.fields[0].name, b"Subject");
        assert_eq!(p.body, b"b");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let p = parse(&bytes);
            for f in &p.fields {
                let _ = f.value();
            }
            prop_assert!(p.header_end <= bytes.len());
        }
    }
}
