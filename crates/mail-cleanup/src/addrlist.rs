//! A forgiving parser for RFC 5322 §3.4 address lists, as found in To, Cc
//! and Bcc: mailboxes with or without display names, groups, comments,
//! quoted strings, and the obsolete route syntax (§4.4).
//!
//! It only extracts the addr-spec of each mailbox. Malformed input yields
//! whatever address-like text it holds rather than an error, because
//! `sendmail -t` must do its best with headers written by hand; the
//! addresses are validated later, when they are parsed as envelope
//! recipients.

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

fn tokenize(s: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            // RFC 5322 §3.2.2: comments nest and may hold quoted-pairs.
            '(' => {
                let mut depth = 1usize;
                while let Some(c) = chars.next() {
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
                while let Some(c) = chars.next() {
                    w.push(c);
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                w.push(n);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                toks.push(Tok::Word(w));
            }
            // RFC 5322 §3.4.1: domain-literal.
            '[' => {
                let mut w = String::from('[');
                for c in chars.by_ref() {
                    w.push(c);
                    if c == ']' {
                        break;
                    }
                }
                toks.push(Tok::Word(w));
            }
            '<' | '>' | ':' | ';' | ',' | '@' | '.' => toks.push(Tok::Special(c)),
            _ => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
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
                toks.push(Tok::Word(w));
            }
        }
    }
    toks
}

/// The addr-spec inside `<...>`, with an obsolete route (`@a,@b:`) dropped
/// (RFC 5322 §4.4).
fn angle_addr(toks: &[Tok]) -> String {
    let toks = if toks.first() == Some(&Tok::Special('@')) {
        match toks.iter().position(|t| *t == Tok::Special(':')) {
            Some(i) => &toks[i + 1..],
            None => toks,
        }
    } else {
        toks
    };
    toks.iter().map(Tok::text).collect()
}

/// Returns the addr-spec of every mailbox in an address-list header value.
pub(crate) fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut words: Vec<Tok> = Vec::new();
    let mut angle: Option<String> = None;
    let mut inside: Option<Vec<Tok>> = None;
    let flush = |words: &mut Vec<Tok>, angle: &mut Option<String>, out: &mut Vec<String>| {
        // A mailbox is either `display-name <addr-spec>` (the angle wins)
        // or a bare addr-spec.
        let addr = match angle.take() {
            Some(a) => a,
            None => words.iter().map(Tok::text).collect(),
        };
        words.clear();
        if !addr.is_empty() {
            out.push(addr);
        }
    };
    for tok in tokenize(value) {
        if let Some(toks) = inside.as_mut() {
            if tok == Tok::Special('>') {
                angle = Some(angle_addr(toks));
                inside = None;
            } else {
                toks.push(tok);
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
            tok if angle.is_none() => words.push(tok),
            _ => {}
        }
    }
    if let Some(toks) = inside {
        angle = Some(angle_addr(&toks));
    }
    flush(&mut words, &mut angle, &mut out);
    out
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

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = addresses(&s);
        }

        #[test]
        fn never_panics_on_specials(s in "[<>:;,@.()\"\\\\\\[\\] a-c]{0,100}") {
            let _ = addresses(&s);
        }
    }
}
