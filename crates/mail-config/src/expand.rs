//! `$name` expansion as Postfix's `mac_expand` does it: `$name`, `${name}`
//! and `$(name)`, the conditional forms `${name?text}` (text if name is
//! non-empty) and `${name:text}` (text if name is empty), and `$$` for a
//! literal dollar. A `$` not followed by a name is kept as is.
//!
//! Values of other parameters are fetched through a callback, so this module
//! knows nothing about where they come from; loop detection lives in the
//! caller, which knows which parameters are being expanded.

/// The largest expansion result we build. A chain like `a = $b$b`,
/// `b = $c$c`, ... would otherwise grow exponentially.
pub(crate) const MAX_EXPANDED: usize = 64 * 1024;

/// Why an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// The parameter named is already being expanded; the names on the
    /// cycle, in expansion order.
    Loop(Vec<String>),
    /// `$name` names no declared parameter.
    Unknown(String),
    /// The result would exceed [`MAX_EXPANDED`] bytes.
    TooLong,
    /// A `${` without its `}`, or an empty name.
    Syntax(String),
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Expands `text`, asking `resolve` for the expanded value of each name.
pub(crate) fn expand(
    text: &str,
    resolve: &mut dyn FnMut(&str) -> Result<String, ExpandError>,
) -> Result<String, ExpandError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        push(&mut out, &rest[..pos])?;
        let after = &rest[pos + 1..];
        let bytes = after.as_bytes();
        match bytes.first() {
            Some(b'$') => {
                push(&mut out, "$")?;
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
                match op.as_bytes().first() {
                    None => push(&mut out, &value)?,
                    Some(b'?') if !value.is_empty() => push(&mut out, &expand(&op[1..], resolve)?)?,
                    Some(b':') if value.is_empty() => push(&mut out, &expand(&op[1..], resolve)?)?,
                    _ => {}
                }
                rest = &after[end + 1..];
            }
            Some(&b) if is_name_byte(b) => {
                let n = bytes.iter().take_while(|&&b| is_name_byte(b)).count();
                push(&mut out, &resolve(&after[..n])?)?;
                rest = &after[n..];
            }
            _ => {
                push(&mut out, "$")?;
                rest = after;
            }
        }
    }
    push(&mut out, rest)?;
    Ok(out)
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

fn push(out: &mut String, s: &str) -> Result<(), ExpandError> {
    if out.len() + s.len() > MAX_EXPANDED {
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
