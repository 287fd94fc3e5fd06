//! Values in Postfix's text form: checking and converting them per
//! [`Kind`], and the mapping between TOML values and that text form.
//!
//! Every explicit value is kept as the text Postfix would show for it
//! (`postconf -n`), so `-o name=value` overrides, `postconf -e` arguments
//! and `main.toml` entries all go through the same checks. A TOML integer
//! for a duration is seconds and becomes `"Ns"`; a list array becomes its
//! elements joined with `", "`.

use std::time::Duration;

use toml_edit::{Array, Value};

use crate::params::{Kind, TimeUnit};

/// The longest number we accept, in digits: enough for `u64`, short enough
/// that a hostile file cannot make us scan megabytes of digits.
const MAX_DIGITS: usize = 20;

/// What a value of `kind` should look like, for error messages.
pub fn expected(kind: Kind) -> String {
    match kind {
        Kind::Str | Kind::RawStr => "expected a string".to_owned(),
        Kind::Bool => "expected yes or no (or true or false)".to_owned(),
        Kind::Int { min, max } => format!("expected an integer from {min} to {max}"),
        Kind::Size => "expected a size in bytes".to_owned(),
        Kind::Duration { .. } => "expected a time such as 300s, 5m, 1h, 1d or 1w".to_owned(),
        Kind::List | Kind::MapList => "expected a list of strings".to_owned(),
        Kind::Path => "expected a path (a string)".to_owned(),
    }
}

/// `expected ..., found "text"`, with long text cut short.
fn found(kind: Kind, shown: &str) -> String {
    format!("{}, found {shown}", expected(kind))
}

fn quote(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{:?}...", cut)
    } else {
        format!("{s:?}")
    }
}

/// Parses Postfix's boolean text: `yes`/`no`, also `true`/`false`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

/// Parses an unsigned decimal integer (no sign, no unit, at most 20 digits).
pub fn parse_u64(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() || t.len() > MAX_DIGITS || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Whether `text` is nothing but one `$name` or `${name}` reference.
pub fn is_reference(text: &str) -> bool {
    let Some(rest) = text.trim().strip_prefix('$') else {
        return false;
    };
    let name = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(rest);
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a Postfix time value: a number with an optional unit letter
/// (`s m h d w`); a bare number means `unit`.
pub fn parse_duration(text: &str, unit: TimeUnit) -> Option<Duration> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], TimeUnit::from_suffix(c)?),
        _ => (t, unit),
    };
    let n = parse_u64(digits)?;
    n.checked_mul(unit.seconds()).map(Duration::from_secs)
}

/// Splits a list the way Postfix does: on commas and/or whitespace, empty
/// elements dropped.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks that `text` is a valid value of `kind` (before `$name`
/// expansion; textual kinds always pass here).
pub fn check_text(kind: Kind, text: &str) -> Result<(), String> {
    let ok = match kind {
        Kind::Str | Kind::RawStr | Kind::List | Kind::MapList | Kind::Path => true,
        Kind::Bool => parse_bool(text).is_some(),
        // `$default_destination_concurrency_limit`, as Postfix's defaults
        // for per-transport limits read: checked once expanded.
        Kind::Int { min, max } => {
            is_reference(text) || parse_u64(text).is_some_and(|n| (min..=max).contains(&n))
        }
        Kind::Size => parse_u64(text).is_some(),
        Kind::Duration { unit } => parse_duration(text, unit).is_some(),
    };
    if ok { Ok(()) } else { Err(found(kind, &quote(text))) }
}

/// Converts a TOML value from `main.toml` or `master.toml` into Postfix's
/// text form, checking it against `kind`. `Err` is the message for a
/// `BadValue` error.
pub fn toml_to_text(kind: Kind, value: &Value) -> Result<String, String> {
    let shown = || match value {
        Value::String(s) => quote(s.value()),
        Value::Integer(i) => i.value().to_string(),
        Value::Float(f) => f.value().to_string(),
        Value::Boolean(b) => b.value().to_string(),
        Value::Datetime(d) => d.value().to_string(),
        Value::Array(_) => "an array".to_owned(),
        Value::InlineTable(_) => "a table".to_owned(),
    };
    let text = match (kind, value) {
        (_, Value::String(s)) => {
            let s = s.value().clone();
            check_text(kind, &s)?;
            return Ok(s);
        }
        (Kind::Bool, Value::Boolean(b)) => if *b.value() { "yes" } else { "no" }.to_owned(),
        (Kind::Int { .. } | Kind::Size, Value::Integer(i)) => i.value().to_string(),
        (Kind::Duration { .. }, Value::Integer(i)) => format!("{}s", i.value()),
        (Kind::List | Kind::MapList, Value::Array(a)) => {
            let mut items = Vec::with_capacity(a.len());
            for v in a.iter() {
                match v {
                    Value::String(s) => items.push(s.value().clone()),
                    _ => return Err(found(kind, &shown())),
                }
            }
            items.join(", ")
        }
        _ => return Err(found(kind, &shown())),
    };
    check_text(kind, &text).map_err(|_| found(kind, &shown()))?;
    Ok(text)
}

/// Converts Postfix text (a `postconf -e` argument) into the typed TOML
/// value written to `main.toml`: strings for Str/Path, a bool, an integer
/// for Int/Size, an array of strings for lists. A duration stays the
/// string given, except a bare number for a seconds parameter, which
/// becomes an integer (a TOML integer always means seconds).
pub fn text_to_toml(kind: Kind, text: &str) -> Result<Value, String> {
    check_text(kind, text)?;
    let too_big = || found(kind, &quote(text));
    Ok(match kind {
        Kind::Str | Kind::RawStr | Kind::Path => Value::from(text),
        Kind::Bool => Value::from(parse_bool(text).ok_or_else(too_big)?),
        Kind::Int { .. } | Kind::Size => {
            let n = parse_u64(text).ok_or_else(too_big)?;
            Value::from(i64::try_from(n).map_err(|_| too_big())?)
        }
        Kind::Duration { unit } => {
            let t = text.trim();
            match parse_u64(t) {
                Some(n) if unit == TimeUnit::Seconds => {
                    Value::from(i64::try_from(n).map_err(|_| too_big())?)
                }
                _ => Value::from(t),
            }
        }
        Kind::List | Kind::MapList => {
            let mut a = Array::new();
            for item in split_list(text) {
                a.push(item);
            }
            Value::Array(a)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bools() {
        assert_eq!(parse_bool("yes"), Some(true));
        assert_eq!(parse_bool(" No "), Some(false));
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn ints() {
        assert_eq!(parse_u64("1000"), Some(1000));
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64(""), None);
        let k = Kind::Int { min: 1, max: 10 };
        assert!(check_text(k, "10").is_ok());
        assert_eq!(
            check_text(k, "0").unwrap_err(),
            "expected an integer from 1 to 10, found \"0\""
        );
    }

    #[test]
    fn durations() {
        let s = TimeUnit::Seconds;
        assert_eq!(parse_duration("300s", s), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("300", s), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m", s), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h", s), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1W", s), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("5", TimeUnit::Days), Some(Duration::from_secs(432_000)));
        assert_eq!(parse_duration("5x", s), None);
        assert_eq!(parse_duration("s", s), None);
        assert_eq!(parse_duration("99999999999999999999w", s), None);
    }

    #[test]
    fn lists() {
        assert_eq!(
            split_list("$myhostname, localhost,  $mydomain"),
            ["$myhostname", "localhost", "$mydomain"]
        );
        assert_eq!(split_list("a b\tc,,d"), ["a", "b", "c", "d"]);
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn toml_values_to_text() {
        let v = |s: &str| s.parse::<Value>().unwrap();
        assert_eq!(toml_to_text(Kind::Bool, &v("true")).unwrap(), "yes");
        assert_eq!(toml_to_text(Kind::Bool, &v("\"no\"")).unwrap(), "no");
        assert_eq!(toml_to_text(Kind::Size, &v("10240000")).unwrap(), "10240000");
        assert_eq!(
            toml_to_text(Kind::Size, &v("\"ten\"")).unwrap_err(),
            "expected a size in bytes, found \"ten\""
        );
        assert_eq!(
            toml_to_text(Kind::Size, &v("-5")).unwrap_err(),
            "expected a size in bytes, found -5"
        );
        let secs = Kind::Duration { unit: TimeUnit::Seconds };
        assert_eq!(toml_to_text(secs, &v("300")).unwrap(), "300s");
        assert_eq!(toml_to_text(secs, &v("\"5m\"")).unwrap(), "5m");
        assert_eq!(toml_to_text(Kind::List, &v("[\"a\", \"b\"]")).unwrap(), "a, b");
        assert_eq!(toml_to_text(Kind::List, &v("\"a b\"")).unwrap(), "a b");
        assert!(toml_to_text(Kind::List, &v("[1]")).is_err());
        assert!(toml_to_text(Kind::Str, &v("1")).is_err());
        assert!(toml_to_text(Kind::Path, &v("{a = 1}")).is_err());
    }

    #[test]
    fn text_to_typed_toml() {
        let r = |k, t| text_to_toml(k, t).unwrap().to_string();
        assert_eq!(r(Kind::Str, "Bem Vindo - $myhostname"), "\"Bem Vindo - $myhostname\"");
        assert_eq!(r(Kind::Bool, "yes"), "true");
        assert_eq!(r(Kind::Size, "1024"), "1024");
        assert_eq!(r(Kind::Duration { unit: TimeUnit::Seconds }, "300"), "300");
        assert_eq!(r(Kind::Duration { unit: TimeUnit::Seconds }, "300s"), "\"300s\"");
        assert_eq!(r(Kind::Duration { unit: TimeUnit::Days }, "5"), "\"5\"");
        assert_eq!(
            r(Kind::List, "$myhostname, localhost, $mydomain"),
            "[\"$myhostname\", \"localhost\", \"$mydomain\"]"
        );
        assert_eq!(r(Kind::List, ""), "[]");
        assert!(text_to_toml(Kind::Size, "ten").is_err());
        assert!(text_to_toml(Kind::Size, "18446744073709551615").is_err());
    }

    proptest! {
        #[test]
        fn text_parsers_never_panic(s in any::<String>()) {
            let _ = parse_bool(&s);
            let _ = parse_u64(&s);
            let _ = parse_duration(&s, TimeUnit::Days);
            let _ = split_list(&s);
            let _ = text_to_toml(Kind::Duration { unit: TimeUnit::Seconds }, &s);
            let _ = text_to_toml(Kind::List, &s);
        }
    }
}
