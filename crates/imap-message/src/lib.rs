//! Everything IMAP computes from one message's bytes: ENVELOPE,
//! BODYSTRUCTURE and BODY, `BODY[section]<partial>`, BINARY and
//! BINARY.SIZE, SEARCH evaluation, and the SORT and THREAD orders.
//!
//! No I/O and no async: imapd reads the message (with CRLF line ends, as
//! the client sees it: `mail_maildir::crlf::to_crlf`), hands the bytes to
//! [`Message::parse`], and puts the returned imap-types values straight
//! into its responses. Per-message facts the bytes do not hold (flags,
//! UID, internal date, modseq) reach [`search::matches`] through the
//! [`search::SearchContext`] trait imapd implements.
//!
//! The MIME structure is found on the raw bytes (offsets, never
//! re-encoding); mail-parser interprets Content-Type parameters (RFC
//! 2231), decodes RFC 2047 words for SEARCH and SORT, and decodes
//! base64 and quoted-printable for BINARY and body SEARCH.
//!
//! SECURITY: every input is untrusted. Nesting is bounded by
//! [`MAX_DEPTH`], parts by [`MAX_PARTS`], indexed header fields by
//! [`MAX_FIELDS`], addresses per field by [`MAX_ADDRESSES`] and
//! References per message by [`thread::MAX_REFERENCES`]; nothing recurses
//! deeper than [`MAX_DEPTH`], and no input panics (the fuzz target
//! `imap_message` feeds bytes through every public function).
//!
//! STANDARDS: RFC 3501 §6.4.4, §6.4.5, §7.4.2; RFC 9051; RFC 3516
//! (BINARY); RFC 5256 (SORT, THREAD); RFC 7162 (MODSEQ); RFC 2045, RFC
//! 2046, RFC 2047, RFC 2231, RFC 5322.

#![forbid(unsafe_code)]

mod address;
mod envelope;
mod fetch;
mod fuzz;
mod mime;
pub mod search;
mod section;
pub mod sort;
mod strings;
mod structure;
mod text;
pub mod thread;

use std::borrow::Cow;

pub use address::MAX_ADDRESSES;
#[doc(hidden)]
pub use fuzz::fuzz_one;
pub use mime::{MAX_DEPTH, MAX_FIELDS, MAX_PARTS};
pub use section::{BinaryError, partial};
pub use strings::nstring_data;

use imap_types::body::BodyStructure;
use imap_types::envelope::Envelope;

/// One message, parsed once; every FETCH item is computed from it.
///
/// Holds the raw bytes (borrowed) and the byte ranges of its MIME tree.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    tree: mime::Tree,
}

impl<'a> Message<'a> {
    /// Parses `raw`, which should have CRLF line ends. Never fails: any
    /// input gives the structure a lenient reader sees (a message with no
    /// header is all body; a broken multipart is one part).
    pub fn parse(raw: &'a [u8]) -> Message<'a> {
        Message { raw, tree: mime::Tree::parse(raw) }
    }

    /// The bytes the message was parsed from (`BODY[]`, `RFC822`).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// RFC822.SIZE: the number of octets of the message.
    pub fn size(&self) -> u32 {
        u32::try_from(self.raw.len()).unwrap_or(u32::MAX)
    }

    /// The message's header block, including the blank line that ends it
    /// (`BODY[HEADER]`, `RFC822.HEADER`).
    pub fn header(&self) -> &'a [u8] {
        &self.raw[self.tree.entities[0].header.clone()]
    }

    /// The message's body (`BODY[TEXT]`, `RFC822.TEXT`).
    pub fn text(&self) -> &'a [u8] {
        &self.raw[self.tree.entities[0].body.clone()]
    }

    /// The ENVELOPE (RFC 3501 §7.4.2) of the message.
    pub fn envelope(&self) -> Envelope<'static> {
        envelope::envelope(self.raw, &self.tree.entities[0])
    }

    /// BODYSTRUCTURE with extension data (`extensions = true`) or the
    /// non-extensible BODY (`false`).
    pub fn body_structure(&self, extensions: bool) -> BodyStructure<'static> {
        structure::body_structure(self.raw, &self.tree, extensions)
    }

    /// The data of `BODY[section]` (no section: the whole message),
    /// before any `<partial>`. A part that does not exist gives `None`
    /// (RFC 9051 §6.4.5 lets the server answer NIL or an empty string;
    /// Dovecot sends an empty string, and so does [`Message::fetch`]).
    pub fn section(
        &self,
        section: Option<&imap_types::fetch::Section<'_>>,
    ) -> Option<Cow<'a, [u8]>> {
        section::section(self.raw, &self.tree, section)
    }

    /// `BINARY[part]` (RFC 3516): the part's body with its
    /// Content-Transfer-Encoding removed. An empty `part` is the whole
    /// message (for a single-part message, its decoded body).
    pub fn binary(&self, part: &[std::num::NonZeroU32]) -> Result<Cow<'a, [u8]>, BinaryError> {
        section::binary(self.raw, &self.tree, part)
    }

    /// `BINARY.SIZE[part]`: the length of [`Message::binary`].
    pub fn binary_size(&self, part: &[std::num::NonZeroU32]) -> Result<u32, BinaryError> {
        self.binary(part).map(|b| u32::try_from(b.len()).unwrap_or(u32::MAX))
    }

    /// The answer to one FETCH data item that the message bytes decide
    /// (ENVELOPE, BODY, BODYSTRUCTURE, BODY[...], BINARY[...],
    /// BINARY.SIZE[...], RFC822, RFC822.HEADER, RFC822.TEXT,
    /// RFC822.SIZE). `None` for the items imapd answers from its index
    /// (FLAGS, UID, INTERNALDATE, MODSEQ). A BINARY item on a part with an
    /// unknown transfer encoding gives `Some(Err(..))`: answer
    /// `NO [UNKNOWN-CTE]`.
    pub fn fetch(
        &self,
        item: &imap_types::fetch::MessageDataItemName<'_>,
    ) -> Option<Result<imap_types::fetch::MessageDataItem<'a>, BinaryError>> {
        fetch::fetch(self, item)
    }

    /// The headers-derived facts SORT and THREAD use, to keep per message
    /// (see [`sort::SortFacts`]).
    pub fn sort_facts(&self) -> sort::SortFacts {
        sort::SortFacts::from_message(self)
    }

    pub(crate) fn tree(&self) -> &mime::Tree {
        &self.tree
    }
}
