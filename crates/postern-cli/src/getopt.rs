//! The getopt(3) command lines of Postfix's queue tools (`postcat`,
//! `postsuper`): options grouped (`-ps`), a value attached or as the next
//! word (`-dALL`, `-d ALL`), and the options ending at `--` or the first
//! word that is not one. Each tool decides what its letters mean.

/// The options in order, each with its value when its letter takes one,
/// and the words after them.
pub(crate) type Parsed<'a> = (Vec<(char, Option<String>)>, &'a [String]);

/// Splits `args` into options and operands. `with_value` lists the letters
/// that take a value; a missing value is an error naming its letter.
pub(crate) fn parse<'a>(args: &'a [String], with_value: &str) -> Result<Parsed<'a>, char> {
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else { break };
        for (at, c) in flags.char_indices() {
            if !with_value.contains(c) {
                opts.push((c, None));
                continue;
            }
            let rest = &flags[at + c.len_utf8()..];
            let value = if !rest.is_empty() {
                rest.to_owned()
            } else {
                i += 1;
                args.get(i).cloned().ok_or(c)?
            };
            opts.push((c, Some(value)));
            break;
        }
        i += 1;
    }
    Ok((opts, &args[i.min(args.len())..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn groups_values_and_operands() {
        let a = words("-ps -dALL -h X -c /etc/p deferred hold");
        let (opts, rest) = parse(&a, "cdh").unwrap();
        assert_eq!(
            opts,
            [
                ('p', None),
                ('s', None),
                ('d', Some("ALL".into())),
                ('h', Some("X".into())),
                ('c', Some("/etc/p".into()))
            ]
        );
        assert_eq!(rest, words("deferred hold"));
        let a = words("-e -- -q");
        assert_eq!(parse(&a, "c").unwrap(), (vec![('e', None)], &a[2..]));
        assert_eq!(parse(&words("-e -c"), "c"), Err('c'));
        assert_eq!(parse(&words("-"), "c").unwrap().1, words("-"));
    }
}
