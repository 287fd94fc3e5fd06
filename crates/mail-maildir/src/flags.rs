//! Message flags as Maildir file names carry them (`:2,FLAGS`).
//!
//! The Maildir specification (<https://cr.yp.to/proto/maildir.html>) gives
//! `D`raft, `F`lagged, `P`assed, `R`eplied, `S`een and `T`rashed (deleted);
//! Dovecot uses the lowercase letters `a`–`z` for keywords (mapped to names
//! in `dovecot-keywords`). Every ASCII letter gets one bit, so renaming a
//! message to change one flag never drops a letter another program set.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of Maildir flag letters (`A`–`Z`, `a`–`z`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u64);

impl Flags {
    /// No flag.
    pub const EMPTY: Flags = Flags(0);
    /// `D`: a draft (IMAP `\Draft`).
    pub const DRAFT: Flags = Flags::letter(b'D');
    /// `F`: flagged for attention (IMAP `\Flagged`).
    pub const FLAGGED: Flags = Flags::letter(b'F');
    /// `P`: passed on (resent or forwarded); no IMAP system flag.
    pub const PASSED: Flags = Flags::letter(b'P');
    /// `R`: replied to (IMAP `\Answered`).
    pub const ANSWERED: Flags = Flags::letter(b'R');
    /// `S`: seen (IMAP `\Seen`; set by POP3 RETR, as Dovecot does).
    pub const SEEN: Flags = Flags::letter(b'S');
    /// `T`: trashed (IMAP `\Deleted`).
    pub const DELETED: Flags = Flags::letter(b'T');

    /// The flag of one letter; anything but an ASCII letter is no flag.
    pub const fn letter(c: u8) -> Flags {
        match c {
            b'A'..=b'Z' => Flags(1 << (c - b'A')),
            b'a'..=b'z' => Flags(1 << (26 + (c - b'a'))),
            _ => Flags(0),
        }
    }

    /// The flags of the text after `:2,` in a file name. Characters that
    /// are not ASCII letters carry no flag and are ignored.
    pub fn from_maildir(text: &str) -> Flags {
        text.bytes().fold(Flags::EMPTY, |acc, c| acc | Flags::letter(c))
    }

    /// The letters in ASCII order, as the specification asks for the
    /// `:2,` suffix.
    pub fn to_maildir(self) -> String {
        (b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .filter(|&c| self.contains(Flags::letter(c)))
            .map(char::from)
            .collect()
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// These flags and those of `other`.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// These flags without those of `other`.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// The flags set both here and in `other`.
    pub const fn intersect(self, other: Flags) -> Flags {
        Flags(self.0 & other.0)
    }

    /// The five flags IMAP names (`\Seen \Answered \Flagged \Deleted
    /// \Draft`); keywords are the lowercase letters ([`Flags::KEYWORDS`]).
    pub const IMAP_SYSTEM: Flags = Flags(
        Flags::SEEN.0 | Flags::ANSWERED.0 | Flags::FLAGGED.0 | Flags::DELETED.0 | Flags::DRAFT.0,
    );

    /// Every lowercase letter: Dovecot's keyword letters.
    pub const KEYWORDS: Flags = Flags(((1u64 << 26) - 1) << 26);
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        *self = self.with(rhs);
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({:?})", self.to_maildir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_ascii_order() {
        let f = Flags::from_maildir("TSRa,zP-9");
        assert_eq!(f.to_maildir(), "PRSTaz");
        assert!(f.contains(Flags::SEEN | Flags::ANSWERED));
        assert!(!f.contains(Flags::DRAFT));
        assert_eq!(Flags::from_maildir(""), Flags::EMPTY);
        assert!(Flags::EMPTY.is_empty());
        assert_eq!(f.without(Flags::SEEN).to_maildir(), "PRTaz");
        let mut g = Flags::EMPTY;
        g |= Flags::SEEN;
        assert_eq!(g.to_maildir(), "S");
        assert_eq!(format!("{g:?}"), "Flags(\"S\")");
    }

    #[test]
    fn every_letter_has_its_own_bit() {
        let all: String = (b'A'..=b'Z').chain(b'a'..=b'z').map(char::from).collect();
        assert_eq!(Flags::from_maildir(&all).to_maildir(), all);
        for c in all.bytes() {
            assert_eq!(Flags::letter(c).to_maildir(), char::from(c).to_string());
        }
        assert!(Flags::letter(b'0').is_empty());
    }
}
