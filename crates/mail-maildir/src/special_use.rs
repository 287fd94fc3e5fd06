//! SPECIAL-USE (RFC 6154): which folders hold sent mail, drafts, trash,
//! junk and archives, by name.
//!
//! Maildir has no place for the attribute, so, as Dovecot's
//! `special_use` settings do, a configured mapping from folder names
//! decides. The parameter `imap_special_use` holds it as a
//! comma-separated list of `Name=\Attribute` pairs, for example
//! `Enviados=\Sent, Rascunhos=\Drafts, Lixeira=\Trash, Spam=\Junk`;
//! names match case-insensitively and may hold blanks (the pair is
//! trimmed), several names may share an attribute, and the first pair
//! for a name wins. The default ([`DEFAULT_SPECIAL_USE`]) covers the
//! tutorial's Portuguese folders and the usual English names.

use crate::FolderName;

/// The default mapping: the tutorial's `.Enviados .Rascunhos .Lixeira
/// .Spam`, and the names Thunderbird, Apple Mail, Outlook and Dovecot's
/// examples create.
pub const DEFAULT_SPECIAL_USE: &str = "Sent=\\Sent, Enviados=\\Sent, Sent Messages=\\Sent, \
Sent Items=\\Sent, Drafts=\\Drafts, Rascunhos=\\Drafts, Trash=\\Trash, Lixeira=\\Trash, \
Deleted Messages=\\Trash, Deleted Items=\\Trash, Junk=\\Junk, Spam=\\Junk, Lixo Eletr\u{f4}nico=\\Junk, \
Archive=\\Archive, Archives=\\Archive, Arquivo=\\Archive";

/// The most pairs a mapping may have.
const MAX_PAIRS: usize = 256;

/// One SPECIAL-USE attribute (RFC 6154 §2, and `\Important` of RFC 8457
/// is left out: it names a view, not a folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecialUse {
    /// `\All`: every message (a virtual folder; Maildir has none, but an
    /// operator may name one).
    All,
    /// `\Archive`.
    Archive,
    /// `\Drafts`.
    Drafts,
    /// `\Flagged`.
    Flagged,
    /// `\Junk`.
    Junk,
    /// `\Sent`.
    Sent,
    /// `\Trash`.
    Trash,
}

impl SpecialUse {
    /// The attribute as IMAP writes it (`\Sent`).
    pub fn as_imap(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }

    /// The attribute of `\Name` (case-insensitive, as IMAP atoms are).
    pub fn from_imap(text: &str) -> Option<SpecialUse> {
        [
            SpecialUse::All,
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Flagged,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
        ]
        .into_iter()
        .find(|u| u.as_imap().eq_ignore_ascii_case(text))
    }
}

/// Folder names and their SPECIAL-USE attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialUseMap {
    /// Lowercased folder name and attribute, in the order given.
    pairs: Vec<(String, SpecialUse)>,
}

impl SpecialUseMap {
    /// Parses `Name=\Attribute, ...` (see the module documentation). The
    /// error names the pair that is wrong. An empty text is an empty map.
    pub fn parse(text: &str) -> Result<SpecialUseMap, String> {
        let mut pairs: Vec<(String, SpecialUse)> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, attr) = item
                .rsplit_once('=')
                .ok_or_else(|| format!("{item:?}: expected Name=\\Attribute"))?;
            let (name, attr) = (name.trim(), attr.trim());
            let special = SpecialUse::from_imap(attr)
                .ok_or_else(|| format!("{item:?}: unknown attribute {attr:?}"))?;
            let folder = FolderName::new(name).map_err(|e| format!("{item:?}: {e}"))?;
            if folder.is_inbox() {
                return Err(format!("{item:?}: INBOX has no special use"));
            }
            if pairs.len() >= MAX_PAIRS {
                return Err(format!("more than {MAX_PAIRS} pairs"));
            }
            let key = folder.as_str().to_lowercase();
            if !pairs.iter().any(|(k, _)| *k == key) {
                pairs.push((key, special));
            }
        }
        Ok(SpecialUseMap { pairs })
    }

    /// The attribute of a folder, if the mapping names it.
    pub fn get(&self, name: &FolderName) -> Option<SpecialUse> {
        let key = name.as_str().to_lowercase();
        self.pairs.iter().find(|(k, _)| *k == key).map(|&(_, u)| u)
    }

    /// The names mapped to `special`, in the order given (lowercased).
    pub fn names_for(&self, special: SpecialUse) -> impl Iterator<Item = &str> {
        self.pairs.iter().filter(move |(_, u)| *u == special).map(|(k, _)| k.as_str())
    }
}

impl Default for SpecialUseMap {
    fn default() -> SpecialUseMap {
        // The default text is a constant this module's tests parse.
        SpecialUseMap::parse(DEFAULT_SPECIAL_USE).unwrap_or(SpecialUseMap { pairs: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> FolderName {
        FolderName::new(s).unwrap()
    }

    #[test]
    fn default_covers_the_tutorial_and_english_names() {
        let map = SpecialUseMap::parse(DEFAULT_SPECIAL_USE).unwrap();
        assert_eq!(map, SpecialUseMap::default());
        for (folder, want) in [
            ("Enviados", SpecialUse::Sent),
            ("Rascunhos", SpecialUse::Drafts),
            ("Lixeira", SpecialUse::Trash),
            ("Spam", SpecialUse::Junk),
            ("Sent", SpecialUse::Sent),
            ("sent", SpecialUse::Sent),
            ("Drafts", SpecialUse::Drafts),
            ("Trash", SpecialUse::Trash),
            ("Junk", SpecialUse::Junk),
            ("Archive", SpecialUse::Archive),
            ("Sent Messages", SpecialUse::Sent),
            ("Lixo Eletrônico", SpecialUse::Junk),
        ] {
            assert_eq!(map.get(&name(folder)), Some(want), "{folder}");
        }
        assert_eq!(map.get(&FolderName::inbox()), None);
        assert_eq!(map.get(&name("Lists.rust")), None);
        assert_eq!(map.get(&name("Sent.Old")), None);
        assert_eq!(SpecialUse::Junk.as_imap(), "\\Junk");
    }

    #[test]
    fn parse_and_errors() {
        let map =
            SpecialUseMap::parse(" Saída = \\sent ,Caixa.Velha=\\Archive,, Saída=\\Trash").unwrap();
        assert_eq!(map.get(&name("SAÍDA")), Some(SpecialUse::Sent));
        assert_eq!(map.get(&name("caixa.velha")), Some(SpecialUse::Archive));
        assert_eq!(map.names_for(SpecialUse::Sent).collect::<Vec<_>>(), ["saída"]);
        assert_eq!(SpecialUseMap::parse("").unwrap().get(&name("Sent")), None);
        for (bad, want) in [
            ("Sent", "expected"),
            ("Sent=\\Outbox", "unknown attribute"),
            ("a..b=\\Sent", "empty hierarchy level"),
            ("INBOX=\\Sent", "INBOX"),
            ("=\\Sent", "empty name"),
        ] {
            let err = SpecialUseMap::parse(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
