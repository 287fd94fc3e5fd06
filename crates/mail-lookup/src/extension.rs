//! Address extensions (Postfix's `recipient_delimiter`): `suporte+news` is
//! user `suporte` with extension `news`. The one place that splits them,
//! for the recipient table here and for local delivery.

/// Splits `user+ext` at the first character of `delimiter` (each character
/// is a delimiter, as in Postfix 2.11 and later) into the base name and
/// the extension. A local part that starts with a delimiter has no
/// extension (`+foo` has no base name), nor has any when `delimiter` is
/// empty. An empty extension (`user+`) is `Some("")`.
pub fn split_extension<'a>(local: &'a str, delimiter: &str) -> (&'a str, Option<&'a str>) {
    if delimiter.is_empty() {
        return (local, None);
    }
    match local.find(|c| delimiter.contains(c)) {
        Some(at) if at > 0 => {
            let ext_start = at + local[at..].chars().next().map_or(1, char::len_utf8);
            (&local[..at], Some(&local[ext_start..]))
        }
        _ => (local, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_split() {
        assert_eq!(split_extension("a+b", "+"), ("a", Some("b")));
        assert_eq!(split_extension("a-b+c", "+-"), ("a", Some("b+c")));
        assert_eq!(split_extension("a+", "+"), ("a", Some("")));
        assert_eq!(split_extension("+a", "+"), ("+a", None));
        assert_eq!(split_extension("a", "+"), ("a", None));
        assert_eq!(split_extension("a+b", ""), ("a+b", None));
        assert_eq!(split_extension("aé+b", "é"), ("a", Some("+b")));
    }
}
