//! The TRANSACTION and UPDATE states (RFC 1939 §5, §6) over the messages
//! the mailbox held when the session began. Message numbers are 1-based
//! positions in that list and never change during the session; DELE
//! only marks, RSET unmarks, and only QUIT hands the marks to the caller
//! to apply. A session that ends any other way deletes nothing.

use crate::command::{self, Command, ParseError};

/// What the session knows of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Octets in CRLF form, as RETR sends them.
    pub size: u64,
    /// The UIDL value: 1..=70 printable ASCII characters (RFC 1939).
    pub uidl: String,
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes.
    Reply(Vec<u8>),
    /// Send `first` (the `+OK` line), then message `index` (0-based)
    /// through [`crate::dot::DotStuffer`] (`top`: `None` for RETR, the
    /// body line count for TOP), then the closing `.`.
    Send {
        /// The `+OK` line.
        first: Vec<u8>,
        /// 0-based index into the session's list.
        index: usize,
        /// TOP's line count.
        top: Option<u32>,
    },
    /// QUIT: apply these deletions (0-based indexes), then send the reply
    /// [`Transaction::quit_reply`] gives and close.
    Quit(Vec<usize>),
    /// Send these bytes and close (too many errors).
    Close(Vec<u8>),
}

/// Bad commands before a session is closed.
pub const MAX_ERRORS: u32 = 20;

/// One user's TRANSACTION state.
#[derive(Debug, Clone)]
pub struct Transaction {
    entries: Vec<Entry>,
    deleted: Vec<bool>,
    errors: u32,
}

impl Transaction {
    /// A session over `entries`, in the order message numbers count.
    pub fn new(entries: Vec<Entry>) -> Transaction {
        let deleted = vec![false; entries.len()];
        Transaction { entries, deleted, errors: 0 }
    }

    /// The messages.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The reply to QUIT once the deletions are applied: `Ok(n)` with
    /// the number removed, or `Err(text)` when some could not be.
    pub fn quit_reply(result: Result<usize, String>) -> Vec<u8> {
        match result {
            Ok(0) => b"+OK Logging out.\r\n".to_vec(),
            Ok(_) => b"+OK Logging out, messages deleted.\r\n".to_vec(),
            Err(why) => format!("-ERR [SYS/TEMP] {}\r\n", one_line(&why)).into_bytes(),
        }
    }

    fn err(&mut self, text: Vec<u8>) -> Action {
        self.errors += 1;
        if self.errors > MAX_ERRORS {
            return Action::Close(crate::reply::TOO_MANY_ERRORS.to_vec());
        }
        Action::Reply(text)
    }

    /// A message number that names a message not marked deleted.
    fn live(&self, n: u32) -> Result<usize, Vec<u8>> {
        let i = (n as usize).wrapping_sub(1);
        match self.deleted.get(i) {
            None => Err(b"-ERR There's no message with that number.\r\n".to_vec()),
            Some(true) => Err(b"-ERR Message is deleted.\r\n".to_vec()),
            Some(false) => Ok(i),
        }
    }

    /// Handles one complete line. `None` for an overlong line.
    pub fn line(&mut self, line: Option<&[u8]>) -> Action {
        let Some(line) = line else { return self.err(crate::reply::LINE_TOO_LONG.to_vec()) };
        match command::parse(line) {
            Ok(c) => self.command(c),
            Err(e) => self.err(e.reply()),
        }
    }

    /// Handles one command.
    pub fn command(&mut self, cmd: Command) -> Action {
        match cmd {
            Command::Stat => {
                let (n, octets) = self.totals();
                Action::Reply(format!("+OK {n} {octets}\r\n").into_bytes())
            }
            Command::List(None) => {
                let (n, octets) = self.totals();
                let mut out = format!("+OK {n} messages ({octets} octets)\r\n").into_bytes();
                for (i, e) in self.live_entries() {
                    out.extend_from_slice(format!("{} {}\r\n", i + 1, e.size).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Action::Reply(out)
            }
            Command::List(Some(n)) => match self.live(n) {
                Ok(i) => {
                    Action::Reply(format!("+OK {n} {}\r\n", self.entries[i].size).into_bytes())
                }
                Err(e) => self.err(e),
            },
            Command::Uidl(None) => {
                let mut out = b"+OK\r\n".to_vec();
                for (i, e) in self.live_entries() {
                    out.extend_from_slice(format!("{} {}\r\n", i + 1, e.uidl).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Action::Reply(out)
            }
            Command::Uidl(Some(n)) => match self.live(n) {
                Ok(i) => {
                    Action::Reply(format!("+OK {n} {}\r\n", self.entries[i].uidl).into_bytes())
                }
                Err(e) => self.err(e),
            },
            Command::Retr(n) => match self.live(n) {
                Ok(i) => Action::Send {
                    first: format!("+OK {} octets\r\n", self.entries[i].size).into_bytes(),
                    index: i,
                    top: None,
                },
                Err(e) => self.err(e),
            },
            Command::Top(n, lines) => match self.live(n) {
                Ok(i) => Action::Send { first: b"+OK\r\n".to_vec(), index: i, top: Some(lines) },
                Err(e) => self.err(e),
            },
            Command::Dele(n) => match self.live(n) {
                Ok(i) => {
                    self.deleted[i] = true;
                    Action::Reply(b"+OK Marked to be deleted.\r\n".to_vec())
                }
                Err(e) => self.err(e),
            },
            Command::Rset => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                let (n, octets) = self.totals();
                Action::Reply(format!("+OK {n} messages ({octets} octets)\r\n").into_bytes())
            }
            Command::Noop => Action::Reply(b"+OK\r\n".to_vec()),
            Command::Capa => Action::Reply(crate::capabilities(false, false, true)),
            Command::Quit => Action::Quit(
                self.deleted.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| i).collect(),
            ),
            Command::User(_) | Command::Pass(_) | Command::Apop | Command::Auth { .. } => {
                self.err(b"-ERR Already logged in.\r\n".to_vec())
            }
            Command::Stls => self.err(b"-ERR STLS is allowed only before login.\r\n".to_vec()),
        }
    }

    /// The reply for a message that vanished from the disk after the
    /// session began (another process removed it).
    pub fn gone_reply() -> Vec<u8> {
        b"-ERR Message is no longer available.\r\n".to_vec()
    }

    fn live_entries(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.entries.iter().enumerate().filter(|(i, _)| !self.deleted[*i])
    }

    fn totals(&self) -> (usize, u64) {
        self.live_entries().fold((0, 0), |(n, o), (_, e)| (n + 1, o + e.size))
    }
}

/// Keeps a reply on one line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect()
}

impl From<ParseError> for Action {
    fn from(e: ParseError) -> Action {
        Action::Reply(e.reply())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Transaction {
        Transaction::new(vec![
            Entry { size: 100, uidl: "0000000100000001".into() },
            Entry { size: 20, uidl: "0000000200000001".into() },
        ])
    }

    fn reply(a: Action) -> String {
        match a {
            Action::Reply(b) => String::from_utf8(b).unwrap_or_default(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stat_list_uidl_dele_rset_quit() {
        let mut t = session();
        assert_eq!(reply(t.line(Some(b"STAT"))), "+OK 2 120\r\n");
        assert_eq!(
            reply(t.line(Some(b"LIST"))),
            "+OK 2 messages (120 octets)\r\n1 100\r\n2 20\r\n.\r\n"
        );
        assert_eq!(reply(t.line(Some(b"UIDL 2"))), "+OK 2 0000000200000001\r\n");
        assert_eq!(reply(t.line(Some(b"DELE 1"))), "+OK Marked to be deleted.\r\n");
        assert_eq!(reply(t.line(Some(b"DELE 1"))), "-ERR Message is deleted.\r\n");
        assert_eq!(reply(t.line(Some(b"RETR 1"))), "-ERR Message is deleted.\r\n");
        assert_eq!(reply(t.line(Some(b"LIST 3"))), "-ERR There's no message with that number.\r\n");
        assert_eq!(reply(t.line(Some(b"RETR 0"))), "-ERR There's no message with that number.\r\n");
        assert_eq!(reply(t.line(Some(b"STAT"))), "+OK 1 20\r\n");
        assert_eq!(reply(t.line(Some(b"UIDL"))), "+OK\r\n2 0000000200000001\r\n.\r\n");
        assert_eq!(reply(t.line(Some(b"RSET"))), "+OK 2 messages (120 octets)\r\n");
        t.line(Some(b"DELE 2"));
        assert_eq!(t.line(Some(b"QUIT")), Action::Quit(vec![1]));
        assert!(matches!(t.line(Some(b"RETR 1")), Action::Send { index: 0, top: None, .. }));
        assert!(matches!(t.line(Some(b"TOP 1 5")), Action::Send { index: 0, top: Some(5), .. }));
    }

    #[test]
    fn errors_close_after_the_limit() {
        let mut t = session();
        for _ in 0..MAX_ERRORS {
            assert!(matches!(t.line(Some(b"\x00\xff garbage")), Action::Reply(_)));
        }
        assert!(matches!(t.line(None), Action::Close(_)));
    }
}
