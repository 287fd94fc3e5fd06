//! BODYSTRUCTURE and BODY (RFC 3501 §7.4.2, RFC 9051 §7.5.2).
//!
//! Sizes are octets of the raw body; line counts (text/* and
//! message/rfc822) count LF, as Dovecot does. Missing headers take the RFC 2045 defaults (text/plain,
//! charset us-ascii, 7bit). A multipart without any part (no boundary,
//! or no delimiter line) is given one empty text/plain part, the same
//! placeholder Dovecot sends, because the grammar needs at least one.
//! Recursion follows the tree, which [`crate::MAX_DEPTH`] bounds.

use imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_types::core::{IString, NString, Vec1};
use imap_types::envelope::Envelope;

use mail_parser::{HeaderValue, parsers::MessageStream};

use crate::envelope::{envelope, first_value};
use crate::mime::{Entity, Kind, Tree};
use crate::strings::{istr, istring, nstring_value, trim_ws, unfold};

/// Number of lines of `body`: its LF count, which is what Dovecot
/// sends (a last line without a line break does not count).
pub(crate) fn count_lines(body: &[u8]) -> u32 {
    u32::try_from(body.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX)
}

fn size(body: &[u8]) -> u32 {
    u32::try_from(body.len()).unwrap_or(u32::MAX)
}

fn params(list: &[(String, String)]) -> Vec<(IString<'static>, IString<'static>)> {
    list.iter().map(|(n, v)| (istr(n), istring(unfold(v.as_bytes())))).collect()
}

/// The placeholder for a multipart with no parts (Dovecot's EMPTY_BODY).
fn empty_body(extensions: bool) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istr("charset"), istr("us-ascii"))],
                id: NString::NIL,
                description: NString::NIL,
                content_transfer_encoding: istr("7bit"),
                size: 0,
            },
            specific: SpecificFields::Text { subtype: istr("plain"), number_of_lines: 0 },
        },
        extension_data: extensions.then(|| SinglePartExtensionData {
            md5: NString::NIL,
            tail: Some(Disposition {
                disposition: None,
                tail: Some(Language {
                    language: Vec::new(),
                    tail: Some(Location { location: NString::NIL, extensions: Vec::new() }),
                }),
            }),
        }),
    }
}

/// Content-Disposition as the pair IMAP wants, or `None`.
fn disposition(
    raw: &[u8],
    e: &Entity,
) -> Option<(IString<'static>, Vec<(IString<'static>, IString<'static>)>)> {
    let v = first_value(raw, e, "content-disposition")?;
    let mut value = v.to_vec();
    value.extend_from_slice(b"\r\n");
    match MessageStream::new(&value).parse_content_type() {
        HeaderValue::ContentType(ct) if !ct.c_type.is_empty() => {
            let list: Vec<(String, String)> = ct
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.name.to_ascii_lowercase(), a.value.into_owned()))
                .collect();
            Some((istr(&ct.c_type.to_ascii_lowercase()), params(&list)))
        }
        _ => None,
    }
}

fn language(raw: &[u8], e: &Entity) -> Vec<IString<'static>> {
    let Some(v) = first_value(raw, e, "content-language") else { return Vec::new() };
    unfold(v)
        .split(|&b| b == b',')
        .map(trim_ws)
        .filter(|t| !t.is_empty())
        .take(crate::MAX_ADDRESSES)
        .map(|t| istring(t.to_vec()))
        .collect()
}

fn tail(raw: &[u8], e: &Entity) -> Disposition<'static> {
    Disposition {
        disposition: disposition(raw, e),
        tail: Some(Language {
            language: language(raw, e),
            tail: Some(Location {
                location: nstring_value(first_value(raw, e, "content-location")),
                extensions: Vec::new(),
            }),
        }),
    }
}

pub(crate) fn body_structure(raw: &[u8], tree: &Tree, extensions: bool) -> BodyStructure<'static> {
    entity_structure(raw, tree, 0, extensions)
}

fn entity_structure(
    raw: &[u8],
    tree: &Tree,
    idx: usize,
    extensions: bool,
) -> BodyStructure<'static> {
    let e = &tree.entities[idx];
    let ct = &e.content_type;
    if ct.kind == "multipart" {
        let bodies = match &e.kind {
            Kind::Multipart(children) => children
                .iter()
                .map(|&c| entity_structure(raw, tree, c, extensions))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| Vec1::from(empty_body(extensions)));
        return BodyStructure::Multi {
            bodies,
            subtype: istr(&ct.subtype),
            extension_data: extensions.then(|| MultiPartExtensionData {
                parameter_list: params(&ct.params),
                tail: Some(tail(raw, e)),
            }),
        };
    }
    let body_bytes = &raw[e.body.clone()];
    let encoding = first_value(raw, e, "content-transfer-encoding")
        .map(|v| unfold(trim_ws(v)))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| b"7bit".to_vec());
    let mut parameter_list = params(&ct.params);
    if ct.kind == "text" && parameter_list.is_empty() {
        // RFC 2045 §5.2's default charset, which Dovecot sends too.
        parameter_list.push((istr("charset"), istr("us-ascii")));
    }
    let basic = BasicFields {
        parameter_list,
        id: nstring_value(first_value(raw, e, "content-id")),
        description: nstring_value(first_value(raw, e, "content-description")),
        content_transfer_encoding: istring(encoding),
        size: size(body_bytes),
    };
    let specific = if ct.kind == "text" {
        SpecificFields::Text {
            subtype: istr(&ct.subtype),
            number_of_lines: count_lines(body_bytes),
        }
    } else if ct.kind == "message" && (ct.subtype == "rfc822" || ct.subtype == "global") {
        let (env, inner) = match e.kind {
            Kind::Message(inner) => (
                envelope(raw, &tree.entities[inner]),
                entity_structure(raw, tree, inner, extensions),
            ),
            // Beyond the nesting limit: an empty envelope and body.
            _ => (empty_envelope(), empty_body(extensions)),
        };
        SpecificFields::Message {
            envelope: Box::new(env),
            body_structure: Box::new(inner),
            number_of_lines: count_lines(body_bytes),
        }
    } else {
        SpecificFields::Basic { r#type: istr(&ct.kind), subtype: istr(&ct.subtype) }
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extensions.then(|| SinglePartExtensionData {
            md5: nstring_value(first_value(raw, e, "content-md5")),
            tail: Some(tail(raw, e)),
        }),
    }
}

fn empty_envelope() -> Envelope<'static> {
    Envelope {
        date: NString::NIL,
        subject: NString::NIL,
        from: Vec::new(),
        sender: Vec::new(),
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        in_reply_to: NString::NIL,
        message_id: NString::NIL,
    }
}
