//! IMAP keywords of one folder: Dovecot's `dovecot-keywords` table, which
//! gives each keyword one of the lowercase letters `a`–`z` that follow the
//! standard flags in a message's `:2,` suffix.
//!
//! The file holds one `N name` line per keyword, `N` from 0 (`a`) to 25
//! (`z`), as Dovecot writes it; we read Dovecot's and write the same
//! format, so a Maildir moved back to Dovecot keeps its keywords. A folder
//! has at most 26 keywords ([`crate::Error::Keyword`] beyond). Lines that
//! cannot be read are skipped, and a letter without a name in the table
//! is kept on the file (renames never drop it) but shows as no keyword.
//! Courier's `courierimapkeywords` directory is not read.

use crate::Flags;

/// Dovecot's keyword table in a Maildir.
pub const KEYWORDS_FILE: &str = "dovecot-keywords";
/// How many keywords a folder can have: one per lowercase letter.
pub const MAX_KEYWORDS: usize = 26;
/// The longest keyword accepted.
pub const MAX_KEYWORD_LEN: usize = 128;
/// The largest keyword file read.
pub(crate) const MAX_KEYWORDS_BYTES: u64 = 64 * 1024;

/// The keywords of one folder, by letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    names: [Option<String>; MAX_KEYWORDS],
}

impl Keywords {
    /// Parses a `dovecot-keywords` file.
    pub fn parse(bytes: &[u8]) -> Keywords {
        let mut out = Keywords::default();
        for line in String::from_utf8_lossy(bytes).lines() {
            let Some((n, name)) = line.split_once(' ') else { continue };
            let Ok(n) = n.parse::<usize>() else { continue };
            if n < MAX_KEYWORDS && is_keyword(name) && out.flag(name).is_none() {
                out.names[n] = Some(name.to_owned());
            }
        }
        out
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (n, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                out.push_str(&format!("{n} {name}\n"));
            }
        }
        out
    }

    /// The flag letter of a keyword (compared case-insensitively, as
    /// IMAP atoms are), if the folder has it.
    pub fn flag(&self, name: &str) -> Option<Flags> {
        self.names
            .iter()
            .position(|k| k.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(name)))
            .map(letter)
    }

    /// The keyword names among `flags`, in letter order.
    pub fn names(&self, flags: Flags) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .enumerate()
            .filter_map(move |(n, k)| k.as_deref().filter(|_| flags.contains(letter(n))))
    }

    /// Every keyword of the folder, in letter order (for FLAGS and
    /// PERMANENTFLAGS).
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.names.iter().filter_map(|k| k.as_deref())
    }

    /// The flags of every lowercase letter that names a keyword.
    pub fn mask(&self) -> Flags {
        (0..MAX_KEYWORDS)
            .filter(|&n| self.names[n].is_some())
            .fold(Flags::EMPTY, |a, n| a | letter(n))
    }

    /// Adds a keyword and returns its letter; `None` when all 26 are taken.
    /// The name must already be checked with [`is_keyword`].
    pub(crate) fn add(&mut self, name: &str) -> Option<Flags> {
        if let Some(f) = self.flag(name) {
            return Some(f);
        }
        let free = self.names.iter().position(Option::is_none)?;
        self.names[free] = Some(name.to_owned());
        Some(letter(free))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.iter().all(Option::is_none)
    }
}

/// The flag of keyword slot `n` (`a` + n).
fn letter(n: usize) -> Flags {
    // n < 26, so the letter is in a..=z.
    Flags::letter(b'a' + n as u8)
}

/// Whether `name` can be an IMAP keyword: a non-empty atom (RFC 3501 §9
/// `flag-keyword`) of at most [`MAX_KEYWORD_LEN`] bytes, not starting with
/// `\` (system flags are not keywords).
pub fn is_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEYWORD_LEN
        && name.bytes().all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_file_round_trip() {
        let k = Keywords::parse(b"0 $Forwarded\n1 Junk\n3 $label1\nbad\n30 x\n4 \\Seen\n5 junk\n");
        assert_eq!(k.flag("$forwarded"), Some(Flags::letter(b'a')));
        assert_eq!(k.flag("JUNK"), Some(Flags::letter(b'b')));
        assert_eq!(k.flag("$Label1"), Some(Flags::letter(b'd')));
        assert_eq!(k.flag("\\Seen"), None);
        assert_eq!(k.all().collect::<Vec<_>>(), ["$Forwarded", "Junk", "$label1"]);
        let f = Flags::from_maildir("Sacd");
        assert_eq!(k.names(f).collect::<Vec<_>>(), ["$Forwarded", "$label1"]);
        assert_eq!(k.render(), "0 $Forwarded\n1 Junk\n3 $label1\n");
        assert_eq!(Keywords::parse(k.render().as_bytes()), k);
        assert_eq!(k.mask(), Flags::from_maildir("abd"));
    }

    #[test]
    fn add_fills_free_letters_up_to_26() {
        let mut k = Keywords::parse(b"1 b\n");
        assert_eq!(k.add("a0"), Some(Flags::letter(b'a')));
        assert_eq!(k.add("B"), Some(Flags::letter(b'b')));
        for i in 2..26 {
            assert!(k.add(&format!("k{i}")).is_some());
        }
        assert_eq!(k.add("one-too-many"), None);
        assert_eq!(k.add("k25"), Some(Flags::letter(b'z')));
    }

    #[test]
    fn keyword_syntax() {
        for good in ["$Forwarded", "Junk", "NonJunk", "a.b-c_d"] {
            assert!(is_keyword(good), "{good}");
        }
        for bad in ["", "a b", "\\Seen", "a(b", "a*", "a%", "a\"", "a]", "é", &"x".repeat(129)] {
            assert!(!is_keyword(bad), "{bad}");
        }
    }
}
