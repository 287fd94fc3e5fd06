//! Decoded text for SEARCH and SORT: header values with RFC 2047 words
//! decoded, text parts with their transfer encoding and charset removed,
//! and the Date field as a point in time.
//!
//! Everything comes out as UTF-8 (RFC 5256 §2.1 and RFC 9051 §6.4.4
//! compare in UTF-8); bytes that are not valid in their charset become
//! U+FFFD rather than an error.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{HeaderValue, parsers::MessageStream};

use crate::mime::{Entity, Field, Kind, Tree, value_with_eol};
use crate::section::decode;

/// The field's value with encoded words decoded, unfolded.
pub(crate) fn decoded_value(raw: &[u8], f: &Field) -> String {
    let mut v = value_with_eol(raw, f).to_vec();
    if !v.ends_with(b"\n") {
        v.extend_from_slice(b"\r\n");
    }
    match MessageStream::new(&v).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        _ => String::new(),
    }
}

/// Decoded values of every field named `name` in the entity's header.
pub(crate) fn decoded_values(raw: &[u8], e: &Entity, name: &[u8]) -> Vec<String> {
    e.fields
        .iter()
        .filter(|f| raw[f.name.clone()].eq_ignore_ascii_case(name))
        .map(|f| decoded_value(raw, f))
        .collect()
}

/// The whole header decoded, one `Name: value` line per field.
pub(crate) fn decoded_header(raw: &[u8], e: &Entity) -> String {
    let mut out = String::new();
    for f in &e.fields {
        out.push_str(&String::from_utf8_lossy(&raw[f.name.clone()]));
        out.push_str(": ");
        out.push_str(&decoded_value(raw, f));
        out.push('\n');
    }
    out
}

/// The text of every text/* leaf of the tree, decoded, in order.
pub(crate) fn body_texts(raw: &[u8], tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for e in &tree.entities {
        if !matches!(e.kind, Kind::Leaf) || e.content_type.kind != "text" {
            continue;
        }
        let body = &raw[e.body.clone()];
        let cte = crate::envelope::first_value(raw, e, "content-transfer-encoding");
        // Undecodable content is searched as it stands.
        let bytes = decode(body, cte).unwrap_or(std::borrow::Cow::Borrowed(body));
        let charset = e.content_type.param("charset").unwrap_or("us-ascii");
        let text = match charset_decoder(charset.as_bytes()) {
            Some(dec) if !charset.eq_ignore_ascii_case("utf-8") => dec(&bytes),
            _ => String::from_utf8_lossy(&bytes).into_owned(),
        };
        out.push(text);
    }
    out
}

/// The Date field of the entity as (seconds since the epoch, the date
/// in the field's own time zone), or `None` when missing or unparsable.
pub(crate) fn sent_date(raw: &[u8], e: &Entity) -> Option<(i64, chrono::NaiveDate)> {
    let f = e.fields.iter().find(|f| raw[f.name.clone()].eq_ignore_ascii_case(b"date"))?;
    let mut v = value_with_eol(raw, f).to_vec();
    if !v.ends_with(b"\n") {
        v.extend_from_slice(b"\r\n");
    }
    match MessageStream::new(&v).parse_date() {
        HeaderValue::DateTime(dt) if dt.is_valid() => {
            let date = chrono::NaiveDate::from_ymd_opt(
                i32::from(dt.year),
                u32::from(dt.month),
                u32::from(dt.day),
            )?;
            Some((dt.to_timestamp(), date))
        }
        _ => None,
    }
}

/// Case-folds for the case-insensitive comparisons of SEARCH.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}
