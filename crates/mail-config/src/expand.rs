//! `$name` expansion as Postfix's `mac_expand` does it: `$name`, `${name}`
//! and `$(name)`, the conditional forms `${name?text}` (text if name is
//! set and non-empty) and `${name:text}` (text if name is unset or
//! empty), and `$$` for a literal dollar. A `$` not followed by a name is
//! kept as is.
//!
//! This is the one implementation in Postern: `main.toml` parameters use
//! it through [`crate::Main`], and a daemon that expands its own
//! attributes (local delivery's `forward_path` with `$home`, `$user`, ...)
//! calls [`expand_with`] with its own resolver and length bound.
//!
//! Values are fetched through a callback, so this module knows nothing
//! about where they come from; loop detection lives in the caller, which
//! knows which names are being expanded. Nesting of `${name?...}` is
//! bounded ([`MAX_NESTING`]), as in Postfix, so hostile text cannot
//! exhaust the stack.

use std::fmt;

/// The largest expansion result [`crate::Main`] builds. A chain like
/// `a = $b$b`, `b = $c$c`, ... would otherwise grow exponentially.
pub const MAX_EXPANDED: usize = 64 * 1024;

/// How deeply `${name?text}` / `${name:text}` may nest inside each other
/// (Postfix's `mac_expand` stops at 100 levels too).
pub const MAX_NESTING: usize = 100;

/// Why an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// The parameter named is already being expanded; the names on the
    /// cycle, in expansion order.
    Loop(Vec<String>),
    /// `$name` names nothing the resolver knows (for `main.toml`: no
    /// declared parameter).
    Unknown(String),
    /// A plain `$name` whose value the resolver says is not set (a
    /// conditional `${name?text}` treats "not set" as empty instead).
    Undefined(String),
    /// The result would exceed the length bound.
    TooLong,
    /// A `${` without its `}`, an empty or bad name, or nesting deeper
    /// than [`MAX_NESTING`].
    Syntax(String),
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Loop(names) => write!(f, "$name expansion loop: {}", names.join(" -> ")),
            ExpandError::Unknown(n) => write!(f, "refers to unknown parameter \"${n}\""),
            ExpandError::Undefined(n) => write!(f, "\"${n}\" is not set"),
            ExpandError::TooLong => write!(f, "expansion is too long"),
            ExpandError::Syntax(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ExpandError {}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Expands `text` for [`crate::Main`]: every name is a parameter, always
/// set, and the result is bounded by [`MAX_EXPANDED`].
pub(crate) fn expand(
    text: &str,
    resolve: &mut dyn FnMut(&str) -> Result<String, ExpandError>,
) -> Result<String, ExpandError> {
    expand_with(text, MAX_EXPANDED, &mut |n| resolve(n).map(Some))
}

/// Expands `text`, asking `resolve` for the value of each name: `Ok(None)`
/// means "not set" (an error for a plain `$name`, empty for the
/// conditional forms); an `Err` from `resolve` is returned as is. The
/// result is at most `max_len` bytes.
pub fn expand_with(
    text: &str,
    max_len: usize,
    resolve: &mut dyn FnMut(&str) -> Result<Option<String>, ExpandError>,
) -> Result<String, ExpandError> {
    let mut out = String::new();
    expand_into(text, max_len, 0, resolve, &mut out)?;
    Ok(out)
}

fn expand_into(
    text: &str,
    max_len: usize,
    depth: usize,
    resolve: &mut dyn FnMut(&str) -> Result<Option<String>, ExpandError>,
    out: &mut String,
) -> Result<(), ExpandError> {
    if depth > MAX_NESTING {
        return Err(ExpandError::Syntax(format!(
            "conditional $name expansions nested more than {MAX_NESTING} deep"
        )));
    }
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        push(out, max_len, &rest[..pos])?;
        let after = &rest[pos + 1..];
        let bytes = after.as_bytes();
        match bytes.first() {
            Some(b'$') => {
                push(out, max_len, "$")?;
                rest = &after[1..];
            }
            Some(&open @ (b'{' | b'(')) => {
                let close = if open == b'{' { b'}' } else { b')' };
                let end = matching(bytes, open, close).ok_or_else(|| {
                    ExpandError::Syntax(format!(
                        "missing '{}' after \"${}\"",
                        close as char,
                        clip(after)
                    ))
                })?;
                let inner = &after[1..end];
                let name_len = inner.bytes().take_while(|&b| is_name_byte(b)).count();
                let (name, op) = inner.split_at(name_len);
                if name.is_empty() {
                    return Err(ExpandError::Syntax(format!(
                        "empty parameter name in \"${}\"",
                        clip(after)
                    )));
                }
                if !matches!(op.as_bytes().first(), None | Some(b'?' | b':')) {
                    return Err(ExpandError::Syntax(format!(
                        "bad parameter name in \"${}\"",
                        clip(after)
                    )));
                }
                let value = resolve(name)?;
                let set = value.as_deref().is_some_and(|v| !v.is_empty());
                match (op.as_bytes().first(), value) {
                    (None, Some(v)) => push(out, max_len, &v)?,
                    (None, None) => return Err(ExpandError::Undefined(name.to_owned())),
                    (Some(b'?'), _) if set => {
                        expand_into(&op[1..], max_len, depth + 1, resolve, out)?
                    }
                    (Some(b':'), _) if !set => {
                        expand_into(&op[1..], max_len, depth + 1, resolve, out)?
                    }
                    _ => {}
                }
                rest = &after[end + 1..];
            }
            Some(&b) if is_name_byte(b) => {
                let n = bytes.iter().take_while(|&&b| is_name_byte(b)).count();
                let name = &after[..n];
                match resolve(name)? {
                    Some(v) => push(out, max_len, &v)?,
                    None => return Err(ExpandError::Undefined(name.to_owned())),
                }
                rest = &after[n..];
            }
            _ => {
                push(out, max_len, "$")?;
                rest = after;
            }
        }
    }
    push(out, max_len, rest)
}

/// The index in `bytes` (which starts with `open`) of the matching `close`.
fn matching(bytes: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if b == open {
            depth += 1;
        } else if b == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

fn push(out: &mut String, max_len: usize, s: &str) -> Result<(), ExpandError> {
    if out.len().saturating_add(s.len()) > max_len {
        return Err(ExpandError::TooLong);
    }
    out.push_str(s);
    Ok(())
}

/// The start of `s`, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(name: &str) -> Result<String, ExpandError> {
        match name {
            "myhostname" => Ok("mail.example.com".into()),
            "mail_name" => Ok("Postern".into()),
            "empty" => Ok(String::new()),
            "big" => Ok("x".repeat(40_000)),
            _ => Err(ExpandError::Unknown(name.into())),
        }
    }

    fn ex(s: &str) -> Result<String, ExpandError> {
        expand(s, &mut vars)
    }

    #[test]
    fn forms() {
        assert_eq!(ex("$myhostname ESMTP $mail_name").unwrap(), "mail.example.com ESMTP Postern");
        assert_eq!(
            ex("${myhostname}x $(mail_name)y").unwrap(),
            "mail.example.comx Postern".to_owned() + "y"
        );
        assert_eq!(ex("cost $$5 and $ alone and $").unwrap(), "cost $5 and $ alone and $");
        assert_eq!(ex("a${myhostname?[$mail_name]}b").unwrap(), "a[Postern]b");
        assert_eq!(ex("a${empty?yes}b${empty:no}c${myhostname:no}").unwrap(), "abnoc");
        assert_eq!(ex("localhost.$myhostname.").unwrap(), "localhost.mail.example.com.");
    }

    #[test]
    fn errors() {
        assert_eq!(ex("$nosuch"), Err(ExpandError::Unknown("nosuch".into())));
        assert!(matches!(ex("${myhostname"), Err(ExpandError::Syntax(_))));
        assert!(matches!(ex("${}"), Err(ExpandError::Syntax(_))));
        assert!(matches!(ex("${my-host}"), Err(ExpandError::Syntax(_))));
        assert_eq!(ex("$big$big"), Err(ExpandError::TooLong));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Before the bound, 100,000 nested conditionals (400 kB, within
        // main.toml's 1 MiB limit) overflowed the stack of whoever loaded
        // the file.
        let deep = "${myhostname?".repeat(100_000) + &"}".repeat(100_000);
        assert!(matches!(ex(&deep), Err(ExpandError::Syntax(m)) if m.contains("nested")));
        let ok = "${myhostname?".repeat(MAX_NESTING) + "x" + &"}".repeat(MAX_NESTING);
        assert_eq!(ex(&ok).unwrap(), "x");
    }

    #[test]
    fn unset_names_for_other_resolvers() {
        // A resolver with optional attributes, as local delivery's
        // forward_path has: plain references to unset ones fail, the
        // conditional forms treat them as empty.
        let mut attrs = |n: &str| match n {
            "home" => Ok(Some("/home/maria".to_owned())),
            "extension" | "empty" => Ok(if n == "empty" { Some(String::new()) } else { None }),
            _ => Err(ExpandError::Unknown(n.to_owned())),
        };
        let mut ex = |s: &str| expand_with(s, 4096, &mut attrs);
        assert_eq!(ex("$home/.forward").unwrap(), "/home/maria/.forward");
        assert_eq!(ex("$home/.forward${extension?+$extension}").unwrap(), "/home/maria/.forward");
        assert_eq!(ex("${extension:none}${empty:e}").unwrap(), "nonee");
        assert_eq!(
            ex("$home/.forward+${extension}"),
            Err(ExpandError::Undefined("extension".into()))
        );
        assert_eq!(ex("$nosuch"), Err(ExpandError::Unknown("nosuch".into())));
        assert_eq!(expand_with("$home", 5, &mut attrs), Err(ExpandError::TooLong));
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = ex(&s);
        }

        #[test]
        fn never_panics_on_dollar_soup(s in "[${}()?:a-z_ ]{0,64}") {
            let _ = ex(&s);
        }
    }
}
