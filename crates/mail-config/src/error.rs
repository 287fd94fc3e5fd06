//! Configuration errors: every one names the file, the line (when there is
//! one) and the parameter or service involved, so an operator can go straight
//! to the mistake. Loading collects all of them instead of stopping at the
//! first, as Postfix's `postconf` warnings do.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// One problem found while reading `main.toml`, `master.toml` or `-o`
/// overrides.
///
/// A `line` of 0 means "no line" (a value that came from the command line,
/// or a whole-file problem); `Display` then leaves it out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file is not valid TOML, or does not have the expected shape
    /// (for example a `[table]` in `main.toml`).
    #[error("{}: {message}", Location(path, *line))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 if unknown.
        line: u32,
        /// What is wrong, one line.
        message: String,
    },
    /// A parameter name that is not declared in `params.rs` (often a typo).
    #[error("{}: unknown parameter \"{name}\"", Location(path, *line))]
    Unknown {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 if unknown.
        line: u32,
        /// The name as written.
        name: String,
    },
    /// A declared parameter (or a master.toml field) whose value does not
    /// fit its kind.
    #[error("{}: parameter \"{name}\": {message}", Location(path, *line))]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 if unknown.
        line: u32,
        /// The parameter or field name, prefixed with the service name for
        /// master.toml (`service "smtpd": maxproc`).
        name: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A `master.toml` service entry is wrong: a bad or unknown field, a
    /// duplicate name, or a bad `-o` option.
    #[error("{}: service \"{service}\": {message}", Location(path, *line))]
    Service {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 if unknown.
        line: u32,
        /// The service name (or `#N` for the N-th entry if it has none).
        service: String,
        /// What is wrong.
        message: String,
    },
    /// `$a` refers to `$b` which refers back to `$a`, directly or not.
    #[error("parameter \"{name}\": $name expansion loop")]
    ExpansionLoop {
        /// A parameter on the loop.
        name: String,
    },
}

/// Formats `path:line` or just `path` when the line is unknown.
struct Location<'a>(&'a PathBuf, u32);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 == 0 {
            write!(f, "{}", self.0.display())
        } else {
            write!(f, "{}:{}", self.0.display(), self.1)
        }
    }
}

/// Every error found in one load. Never empty when returned as `Err`.
#[derive(Debug)]
pub struct Errors(pub Vec<Error>);

impl fmt::Display for Errors {
    /// One error per line, no trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl From<Error> for Errors {
    fn from(e: Error) -> Errors {
        Errors(vec![e])
    }
}

/// Converts a byte offset into a 1-based line number.
pub(crate) fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let newlines = text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count();
    u32::try_from(newlines).unwrap_or(u32::MAX - 1).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_line() {
        let e = Error::Unknown {
            path: "/etc/postern/main.toml".into(),
            line: 12,
            name: "mydestinaton".into(),
        };
        assert_eq!(e.to_string(), "/etc/postern/main.toml:12: unknown parameter \"mydestinaton\"");
        let e =
            Error::BadValue { path: "-o".into(), line: 0, name: "x".into(), message: "bad".into() };
        assert_eq!(e.to_string(), "-o: parameter \"x\": bad");
    }

    #[test]
    fn errors_one_per_line() {
        let errs = Errors(vec![
            Error::ExpansionLoop { name: "a".into() },
            Error::Syntax { path: "f".into(), line: 1, message: "m".into() },
        ]);
        assert_eq!(errs.to_string(), "parameter \"a\": $name expansion loop\nf:1: m");
    }

    #[test]
    fn lines_from_offsets() {
        let t = "a\nb\nc";
        assert_eq!(line_of(t, 0), 1);
        assert_eq!(line_of(t, 2), 2);
        assert_eq!(line_of(t, 4), 3);
        assert_eq!(line_of(t, 999), 3);
    }
}
