//! Which command a reply answers: the verbs Postfix counts in its
//! `disconnect from NAME[ADDR] ehlo=1 mail=1 ... commands=N` line and names
//! in `lost connection after CMD`, and which of them are "junk" commands
//! for `smtpd_junk_command_limit`.
//!
//! [`crate::Server`] tags every reply with the command it answers, so a
//! driver can feed any number of pipelined commands at once and still
//! count them per command.

/// A command verb as the counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Helo,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Vrfy,
    Etrn,
    Quit,
    /// Anything else, including lines that are not commands at all.
    Unknown,
}

impl Verb {
    /// Every verb, in the order of Postfix's disconnect line.
    pub const ALL: [Verb; 14] = [
        Verb::Helo,
        Verb::Ehlo,
        Verb::StartTls,
        Verb::Auth,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Bdat,
        Verb::Rset,
        Verb::Noop,
        Verb::Vrfy,
        Verb::Etrn,
        Verb::Quit,
        Verb::Unknown,
    ];

    /// The verb at the start of a command line (case-insensitive).
    pub fn of_line(line: &[u8]) -> Verb {
        let end = line
            .iter()
            .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(line.len());
        let word = &line[..end];
        Verb::ALL
            .into_iter()
            .find(|v| *v != Verb::Unknown && word.eq_ignore_ascii_case(v.name().as_bytes()))
            .unwrap_or(Verb::Unknown)
    }

    /// Lower-case name, as in the disconnect line.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Helo => "helo",
            Verb::Ehlo => "ehlo",
            Verb::StartTls => "starttls",
            Verb::Auth => "auth",
            Verb::Mail => "mail",
            Verb::Rcpt => "rcpt",
            Verb::Data => "data",
            Verb::Bdat => "bdat",
            Verb::Rset => "rset",
            Verb::Noop => "noop",
            Verb::Vrfy => "vrfy",
            Verb::Etrn => "etrn",
            Verb::Quit => "quit",
            Verb::Unknown => "unknown",
        }
    }

    /// Upper-case name, as in `lost connection after CMD`.
    pub fn label(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Bdat => "BDAT",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Vrfy => "VRFY",
            Verb::Etrn => "ETRN",
            Verb::Quit => "QUIT",
            Verb::Unknown => "UNKNOWN",
        }
    }

    /// The commands Postfix's smtpd flags `SMTPD_CMD_FLAG_LIMIT`: past
    /// `smtpd_junk_command_limit` of them, each one counts as an error.
    /// They cost the server work without moving mail. (HELP is not a
    /// command here, as in Postfix: it gets 502 and counts as an error
    /// anyway.)
    pub fn is_junk(self) -> bool {
        matches!(self, Verb::Helo | Verb::Ehlo | Verb::Rset | Verb::Noop | Verb::Vrfy | Verb::Etrn)
    }
}

/// What a reply from [`crate::Server`] answers (see
/// [`crate::Server::answered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// A command line; for DATA this is the 354 (or the refusal).
    Command(Verb),
    /// The end of the DATA stream: the reply that accepts or refuses the
    /// message.
    Message,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        assert_eq!(Verb::of_line(b"ehlo x\r\n"), Verb::Ehlo);
        assert_eq!(Verb::of_line(b"QUIT\r\n"), Verb::Quit);
        assert_eq!(Verb::of_line(b"RCPT TO:<a>\n"), Verb::Rcpt);
        assert_eq!(Verb::of_line(b"STARTTLS"), Verb::StartTls);
        assert_eq!(Verb::of_line(b"unknown"), Verb::Unknown);
        assert_eq!(Verb::of_line(b"\x00\xff"), Verb::Unknown);
        assert_eq!(Verb::of_line(b""), Verb::Unknown);
        assert_eq!(Verb::Data.label(), "DATA");
        assert!(Verb::Noop.is_junk() && !Verb::Mail.is_junk());
    }
}
