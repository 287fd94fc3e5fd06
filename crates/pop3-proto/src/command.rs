//! One POP3 command line as a value. Keywords are case-insensitive
//! (RFC 1939: `retr 1` as the tutorial types it); arguments are split on
//! spaces; message numbers are decimal, 1 and up.

/// A parsed command.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`
    User(String),
    /// `PASS password` (the rest of the line: passwords may hold spaces).
    Pass(String),
    /// `APOP name digest`: recognised so that it gets a precise refusal.
    Apop,
    /// `AUTH [mechanism [initial-response]]`; `AUTH` alone lists them.
    Auth {
        /// The mechanism, upper-cased, if given.
        mechanism: Option<String>,
        /// The initial response (base64 or `=`), if given.
        initial: Option<String>,
    },
    /// `CAPA`
    Capa,
    /// `STLS`
    Stls,
    /// `STAT`
    Stat,
    /// `LIST [msg]`
    List(Option<u32>),
    /// `RETR msg`
    Retr(u32),
    /// `DELE msg`
    Dele(u32),
    /// `NOOP`
    Noop,
    /// `RSET`
    Rset,
    /// `TOP msg n`
    Top(u32, u32),
    /// `UIDL [msg]`
    Uidl(Option<u32>),
    /// `QUIT`
    Quit,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print a password.
            Command::Pass(_) => f.write_str("Pass(<hidden>)"),
            Command::User(u) => f.debug_tuple("User").field(u).finish(),
            Command::Apop => f.write_str("Apop"),
            Command::Auth { mechanism, .. } => {
                f.debug_struct("Auth").field("mechanism", mechanism).finish_non_exhaustive()
            }
            Command::Capa => f.write_str("Capa"),
            Command::Stls => f.write_str("Stls"),
            Command::Stat => f.write_str("Stat"),
            Command::List(n) => f.debug_tuple("List").field(n).finish(),
            Command::Retr(n) => f.debug_tuple("Retr").field(n).finish(),
            Command::Dele(n) => f.debug_tuple("Dele").field(n).finish(),
            Command::Noop => f.write_str("Noop"),
            Command::Rset => f.write_str("Rset"),
            Command::Top(n, l) => f.debug_tuple("Top").field(n).field(l).finish(),
            Command::Uidl(n) => f.debug_tuple("Uidl").field(n).finish(),
            Command::Quit => f.write_str("Quit"),
        }
    }
}

impl Command {
    /// The keyword in lower case, for the session's command counts.
    pub fn name(&self) -> &'static str {
        match self {
            Command::User(_) => "user",
            Command::Pass(_) => "pass",
            Command::Apop => "apop",
            Command::Auth { .. } => "auth",
            Command::Capa => "capa",
            Command::Stls => "stls",
            Command::Stat => "stat",
            Command::List(_) => "list",
            Command::Retr(_) => "retr",
            Command::Dele(_) => "dele",
            Command::Noop => "noop",
            Command::Rset => "rset",
            Command::Top(..) => "top",
            Command::Uidl(_) => "uidl",
            Command::Quit => "quit",
        }
    }
}

/// Why a line is not a command; each is an `-ERR` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a POP3 keyword (or not ASCII).
    Unknown,
    /// A known keyword with missing, extra or malformed arguments.
    Syntax(&'static str),
}

impl ParseError {
    /// The reply line.
    pub fn reply(self) -> Vec<u8> {
        match self {
            ParseError::Unknown => crate::reply::UNKNOWN.to_vec(),
            ParseError::Syntax(what) => format!("-ERR {what}\r\n").into_bytes(),
        }
    }
}

/// The longest user name accepted in USER (authd's bound).
pub const MAX_USER: usize = 256;
/// The longest password accepted in PASS (authd's bound).
pub const MAX_PASSWORD: usize = 1024;

fn number(word: &str) -> Result<u32, ParseError> {
    if word.is_empty() || word.len() > 9 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax("Invalid message number."));
    }
    word.parse().map_err(|_| ParseError::Syntax("Invalid message number."))
}

/// Parses one line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    if keyword.is_empty() || keyword.len() > 4 || !keyword.iter().all(u8::is_ascii_alphabetic) {
        return Err(ParseError::Unknown);
    }
    let keyword = keyword.to_ascii_uppercase();
    // PASS takes the rest of the line verbatim; everything else is ASCII words.
    if keyword == b"PASS" {
        let pass =
            std::str::from_utf8(rest).map_err(|_| ParseError::Syntax("Invalid password."))?;
        if pass.is_empty() {
            return Err(ParseError::Syntax("No password given."));
        }
        if pass.len() > MAX_PASSWORD || pass.contains('\0') {
            return Err(ParseError::Syntax("Invalid password."));
        }
        return Ok(Command::Pass(pass.to_owned()));
    }
    let rest = std::str::from_utf8(rest).map_err(|_| ParseError::Syntax("Invalid arguments."))?;
    if rest.chars().any(|c| c.is_control()) {
        return Err(ParseError::Syntax("Invalid arguments."));
    }
    let args: Vec<&str> = rest.split(' ').filter(|w| !w.is_empty()).collect();
    let none = |c: Command| {
        if args.is_empty() { Ok(c) } else { Err(ParseError::Syntax("Too many arguments.")) }
    };
    let one_num = || match args.as_slice() {
        [n] => number(n),
        [] => Err(ParseError::Syntax("Message number required.")),
        _ => Err(ParseError::Syntax("Too many arguments.")),
    };
    let opt_num = || match args.as_slice() {
        [] => Ok(None),
        [n] => number(n).map(Some),
        _ => Err(ParseError::Syntax("Too many arguments.")),
    };
    match &keyword[..] {
        b"USER" => match args.as_slice() {
            [u] if u.len() <= MAX_USER => Ok(Command::User((*u).to_owned())),
            [_] => Err(ParseError::Syntax("User name too long.")),
            [] => Err(ParseError::Syntax("No user name given.")),
            _ => Err(ParseError::Syntax("Too many arguments.")),
        },
        b"APOP" => Ok(Command::Apop),
        b"AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth { mechanism: None, initial: None }),
            [m] => Ok(Command::Auth { mechanism: Some(m.to_ascii_uppercase()), initial: None }),
            [m, i] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: Some((*i).to_owned()),
            }),
            _ => Err(ParseError::Syntax("Too many arguments.")),
        },
        b"CAPA" => none(Command::Capa),
        b"STLS" => none(Command::Stls),
        b"STAT" => none(Command::Stat),
        b"NOOP" => none(Command::Noop),
        b"RSET" => none(Command::Rset),
        b"QUIT" => none(Command::Quit),
        b"LIST" => opt_num().map(Command::List),
        b"UIDL" => opt_num().map(Command::Uidl),
        b"RETR" => one_num().map(Command::Retr),
        b"DELE" => one_num().map(Command::Dele),
        b"TOP" => match args.as_slice() {
            [n, l] => {
                let lines = if l.is_empty() || l.len() > 9 || !l.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(ParseError::Syntax("Invalid number of lines."));
                } else {
                    l.parse().map_err(|_| ParseError::Syntax("Invalid number of lines."))?
                };
                Ok(Command::Top(number(n)?, lines))
            }
            _ => Err(ParseError::Syntax("TOP needs a message number and a line count.")),
        },
        _ => Err(ParseError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_commands() {
        assert_eq!(parse(b"user suporte"), Ok(Command::User("suporte".into())));
        assert_eq!(parse(b"pass suporte"), Ok(Command::Pass("suporte".into())));
        assert_eq!(parse(b"retr 1"), Ok(Command::Retr(1)));
        assert_eq!(parse(b"quit"), Ok(Command::Quit));
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 3"), Ok(Command::List(Some(3))));
        assert_eq!(parse(b"TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(parse(b"PASS with space "), Ok(Command::Pass("with space ".into())));
        assert_eq!(
            parse(b"AUTH plain AGEAYg=="),
            Ok(Command::Auth { mechanism: Some("PLAIN".into()), initial: Some("AGEAYg==".into()) })
        );
        assert!(matches!(parse(b"RETR"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"RETR x"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"RETR -1"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"RETR 99999999999"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"STAT 1"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"TOP 1"), Err(ParseError::Syntax(_))));
        assert_eq!(parse(b"XYZZY"), Err(ParseError::Unknown));
        assert_eq!(parse(b""), Err(ParseError::Unknown));
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::Unknown));
        assert!(parse(b"USER \x01").is_err());
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(format!("{:?}", parse(b"PASS secret")), "Ok(Pass(<hidden>))");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&line);
        }
    }

    /// The fuzz target `pop3_command`, replayed on the committed corpus.
    #[test]
    fn replays_fuzz_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/pop3_command");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("corpus directory").flatten() {
            let bytes = std::fs::read(e.path()).expect("corpus file");
            crate::fuzz_one(&bytes);
            n += 1;
        }
        assert!(n > 0, "empty corpus in {}", dir.display());
    }
}
