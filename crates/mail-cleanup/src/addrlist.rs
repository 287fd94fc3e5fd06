//! A forgiving parser for RFC 5322 §3.4 address lists, as found in To, Cc
//! and Bcc: mailboxes with or without display names, groups, comments,
//! quoted strings, and the obsolete route syntax (§4.4).
//!
//! It extracts the addr-spec of each mailbox and where it is. Malformed input yields
//! whatever address-like text it holds rather than an error, because
//! `sendmail -t` must do its best with headers written by hand; the
//! addresses are validated later, when they are parsed as envelope
//! recipients.
//!
//! [`rewrite`] replaces the addr-specs in place (canonical mapping of
//! header addresses), keeping every other byte of the value.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An atom, a quoted string (quotes kept), or a domain literal.
    Word(String),
    /// One of `< > : ; , @ .`.
    Special(char),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Word(w) => w.clone(),
            Tok::Special(c) => c.to_string(),
        }
    }
}

/// A token and the bytes of the value it was read from.
type Spanned = (Tok, Range<usize>);

fn tokenize(s: &str) -> Vec<Spanned> {
    let mut toks = Vec::new();
    let mut chars = s.char_indices().peekable();
    // The end of the character last consumed.
    let end = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        chars.peek().map_or(s.len(), |&(i, _)| i)
    };
    while let Some((start, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            // RFC 5322 §3.2.2: comments nest and may hold quoted-pairs.
            '(' => {
                let mut depth = 1usize;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            // RFC 5322 §3.2.4: quoted-string; kept with its quotes so that a
            // quoted local part stays valid.
            '"' => {
                let mut w = String::from('"');
                while let Some((_, c)) = chars.next() {
                    w.push(c);
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                w.push(n);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                toks.push((Tok::Word(w), start..end(&mut chars)));
            }
            // RFC 5322 §3.4.1: domain-literal.
            '[' => {
                let mut w = String::from('[');
                for (_, c) in chars.by_ref() {
                    w.push(c);
                    if c == ']' {
                        break;
                    }
                }
                toks.push((Tok::Word(w), start..end(&mut chars)));
            }
            '<' | '>' | ':' | ';' | ',' | '@' | '.' => {
                toks.push((Tok::Special(c), start..start + 1));
            }
            _ => {
                let mut w = String::from(c);
                while let Some(&(_, n)) = chars.peek() {
                    if matches!(
                        n,
                        ' ' | '\t'
                            | '\r'
                            | '\n'
                            | '('
                            | '"'
                            | '['
                            | '<'
                            | '>'
                            | ':'
                            | ';'
                            | ','
                            | '@'
                            | '.'
                    ) {
                        break;
                    }
                    w.push(n);
                    chars.next();
                }
                toks.push((Tok::Word(w), start..end(&mut chars)));
            }
        }
    }
    toks
}

/// The text of `toks` and the bytes they cover (`None`: no tokens).
fn joined(toks: &[Spanned]) -> (String, Option<Range<usize>>) {
    let text = toks.iter().map(|(t, _)| t.text()).collect();
    let span = match (toks.first(), toks.last()) {
        (Some((_, a)), Some((_, b))) => Some(a.start..b.end),
        _ => None,
    };
    (text, span)
}

/// The addr-spec inside `<...>`, with an obsolete route (`@a,@b:`) dropped
/// (RFC 5322 §4.4).
fn angle_addr(toks: &[Spanned]) -> (String, Option<Range<usize>>) {
    let toks = if toks.first().is_some_and(|(t, _)| *t == Tok::Special('@')) {
        match toks.iter().position(|(t, _)| *t == Tok::Special(':')) {
            Some(i) => &toks[i + 1..],
            None => toks,
        }
    } else {
        toks
    };
    joined(toks)
}

/// One mailbox of an address list: its addr-spec, and where that is in
/// the header value (so it can be replaced with the display name,
/// comments, groups and folding around it left as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mailbox {
    /// The addr-spec, white space and comments inside it removed.
    pub(crate) addr: String,
    /// The bytes of the value it was read from.
    pub(crate) span: Range<usize>,
}

/// Every mailbox in an address-list header value, in order.
pub(crate) fn mailboxes(value: &str) -> Vec<Mailbox> {
    let mut out = Vec::new();
    let mut words: Vec<Spanned> = Vec::new();
    let mut angle: Option<(String, Option<Range<usize>>)> = None;
    let mut inside: Option<Vec<Spanned>> = None;
    let flush = |words: &mut Vec<Spanned>,
                 angle: &mut Option<(String, Option<Range<usize>>)>,
                 out: &mut Vec<Mailbox>| {
        // A mailbox is either `display-name <addr-spec>` (the angle wins)
        // or a bare addr-spec.
        let (addr, span) = match angle.take() {
            Some(a) => a,
            None => joined(words),
        };
        words.clear();
        if let Some(span) = span.filter(|_| !addr.is_empty()) {
            out.push(Mailbox { addr, span });
        }
    };
    for (tok, span) in tokenize(value) {
        if let Some(toks) = inside.as_mut() {
            if tok == Tok::Special('>') {
                angle = Some(angle_addr(toks));
                inside = None;
            } else {
                toks.push((tok, span));
            }
            continue;
        }
        match tok {
            Tok::Special('<') => inside = Some(Vec::new()),
            // Group start (RFC 5322 §3.4): what came before was its name.
            Tok::Special(':') => {
                words.clear();
                angle = None;
            }
            Tok::Special(',' | ';') => flush(&mut words, &mut angle, &mut out),
            // Words after an angle-addr (a trailing phrase) are ignored.
            tok if angle.is_none() => words.push((tok, span)),
            _ => {}
        }
    }
    if let Some(toks) = inside {
        angle = Some(angle_addr(&toks));
    }
    flush(&mut words, &mut angle, &mut out);
    out
}

/// Returns the addr-spec of every mailbox in an address-list header value.
pub(crate) fn addresses(value: &str) -> Vec<String> {
    mailboxes(value).into_iter().map(|m| m.addr).collect()
}

/// `value` with each mailbox's addr-spec replaced by what `rewrite` gives
/// for it (`Ok(None)`: left as it is); `Ok(None)` when nothing changed.
/// Everything around the addresses (display names, comments, group
/// names, white space and line folds) is kept byte for byte.
pub(crate) fn rewrite<E>(
    value: &str,
    mut rewrite: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    let mut out = String::with_capacity(value.len());
    let mut copied = 0;
    let mut changed = false;
    for m in mailboxes(value) {
        let Some(new) = rewrite(&m.addr)? else { continue };
        if new == m.addr {
            continue;
        }
        out.push_str(&value[copied..m.span.start]);
        out.push_str(&new);
        copied = m.span.end;
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    out.push_str(&value[copied..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn extracts_every_form() {
        let table: &[(&str, &[&str])] = &[
            ("a@x.org", &["a@x.org"]),
            ("a@x.org, b@y.org", &["a@x.org", "b@y.org"]),
            ("Nome do Destinatario <ubuntu@fiap.edu.br>", &["ubuntu@fiap.edu.br"]),
            ("\"Doe, John\" <john@x.org>, Mary <mary@x.org>", &["john@x.org", "mary@x.org"]),
            ("c@x.org (Carol, the boss), <d@x.org>", &["c@x.org", "d@x.org"]),
            ("a@x.org (nested (comment, here))", &["a@x.org"]),
            ("undisclosed-recipients:;", &[]),
            ("team: a@x.org, \"B b\" <b@x.org>;, z@x.org", &["a@x.org", "b@x.org", "z@x.org"]),
            ("<@relay.org,@r2.org:u@x.org>", &["u@x.org"]),
            ("\"odd local\"@x.org", &["\"odd local\"@x.org"]),
            ("u@[192.0.2.1]", &["u@[192.0.2.1]"]),
            ("suporte", &["suporte"]),
            ("first . last @ x . org", &["first.last@x.org"]),
            ("Broken <a@x.org", &["a@x.org"]),
            ("", &[]),
            (",,,", &[]),
            ("<>", &[]),
        ];
        for (value, want) in table {
            assert_eq!(addresses(value), *want, "{value}");
        }
    }

    /// The rewrite of the tests: `a@x.org` and `u@x.org` get new names.
    fn table(addr: &str) -> Result<Option<String>, ()> {
        Ok(match addr {
            "a@x.org" => Some("alice@y.org".into()),
            "u@x.org" => Some("\"u s\"@y.org".into()),
            "same@x.org" => Some("same@x.org".into()),
            _ => None,
        })
    }

    #[test]
    fn rewrites_in_place_keeping_everything_else() {
        let table_cases: &[(&str, Option<&str>)] = &[
            ("a@x.org", Some("alice@y.org")),
            ("  a@x.org  ", Some("  alice@y.org  ")),
            ("Ana (the boss) <a@x.org> (home)", Some("Ana (the boss) <alice@y.org> (home)")),
            ("\"Doe, A\" <a@x.org>, b@x.org", Some("\"Doe, A\" <alice@y.org>, b@x.org")),
            ("a@x.org (Ana), <u@x.org>", Some("alice@y.org (Ana), <\"u s\"@y.org>")),
            (
                "team: a@x.org,\n\t\"B\" <b@x.org>;, u@x.org",
                Some("team: alice@y.org,\n\t\"B\" <b@x.org>;, \"u s\"@y.org"),
            ),
            ("<@relay.org:a@x.org>", Some("<@relay.org:alice@y.org>")),
            ("=?utf-8?q?Jos=C3=A9?= <a@x.org>", Some("=?utf-8?q?Jos=C3=A9?= <alice@y.org>")),
            ("Broken <a@x.org", Some("Broken <alice@y.org")),
            ("a @ x . org", Some("alice@y.org")),
            ("b@x.org, same@x.org", None),
            ("undisclosed-recipients:;", None),
            ("<>", None),
            ("", None),
        ];
        for (value, want) in table_cases {
            assert_eq!(rewrite(value, table).unwrap().as_deref(), *want, "{value}");
        }
        // A failing lookup stops the rewrite.
        assert_eq!(rewrite("a@x.org", |_| Err::<Option<String>, _>("down")), Err("down"));
        // Non-ASCII around the address stays whole.
        assert_eq!(
            rewrite("José Ñandú <a@x.org>, ç@x.org", table).unwrap().as_deref(),
            Some("José Ñandú <alice@y.org>, ç@x.org")
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = addresses(&s);
        }

        #[test]
        fn rewrite_never_panics(s in "\\PC{0,200}") {
            let _ = rewrite(&s, |a| Ok::<_, ()>(Some(format!("<{a}>z"))));
        }

        #[test]
        fn rewrite_never_panics_on_specials(s in "[<>:;,@.()\"\\\\\\[\\] a-cé]{0,100}") {
            // Every address is replaced, none lost, none made up.
            let n = mailboxes(&s).len();
            let out = rewrite(&s, |_| Ok::<_, ()>(Some("q@r.s".to_owned()))).unwrap();
            let after = mailboxes(out.as_deref().unwrap_or(&s));
            prop_assert_eq!(after.len(), n);
            prop_assert!(after.iter().all(|m| m.addr == "q@r.s"), "{:?}", after);
        }

        #[test]
        fn never_panics_on_specials(s in "[<>:;,@.()\"\\\\\\[\\] a-c]{0,100}") {
            let _ = addresses(&s);
        }
    }
}
