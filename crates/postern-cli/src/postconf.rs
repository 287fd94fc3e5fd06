//! `postconf`: print and edit `main.toml` the way Postfix's postconf prints
//! and edits main.cf, so operators' habits and scripts carry over.
//!
//! - `postconf` prints every parameter as `name = value`, sorted by name;
//!   `postconf NAME...` prints those. Values are shown unexpanded, as
//!   Postfix does; `-x` expands `$name`. `-n` shows only explicit settings,
//!   `-d` only defaults, `-h` the value alone. An unknown name gets
//!   `postconf: warning: NAME: unknown parameter` and exit status 0.
//! - `postconf -e "name = value" ...` (or any argument containing `=`)
//!   checks each name and value against the parameter table and writes a
//!   typed TOML value (lists become arrays of strings), keeping comments
//!   and order (toml_edit); a new parameter goes at the end. The file is
//!   replaced atomically, and on any error it is left untouched.
//! - `postconf -X name...` removes parameters; `postconf -# name...`
//!   comments them out. Comments above a removed line are kept.
//!
//! `-c DIR` selects the configuration directory (else
//! `$POSTERN_CONFIG_DIR`, else `/etc/postern`).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mail_config::{Error, Main, params};
use toml_edit::{DocumentMut, Item};

const PROG: &str = "postconf";

/// The largest main.toml postconf edits (the loader's bound too).
const MAX_FILE: u64 = 1024 * 1024;

/// The command line: Postfix's single-letter options, getopt style
/// (`-nh` is `-n -h`; `-cDIR` and `-c DIR` both work). `-h` is Postfix's
/// "value only", so help is `--help` alone.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = PROG,
    about = "Print or edit main.toml parameters, as Postfix's postconf does main.cf",
    override_usage = "postconf [-c config_dir] [-dhnx] [name...]\n       postconf [-c config_dir] -e \"name = value\"...\n       postconf [-c config_dir] -X name...\n       postconf [-c config_dir] -# name...",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Opts {
    /// The configuration directory (default: $POSTERN_CONFIG_DIR, else /etc/postern).
    #[arg(short = 'c', value_name = "config_dir")]
    dir: Option<PathBuf>,
    /// Show default values instead of the values in effect.
    #[arg(short = 'd')]
    defaults: bool,
    /// Edit main.toml: each argument is "name = value".
    #[arg(short = 'e')]
    edit: bool,
    /// Show only the value, without "name = ".
    #[arg(short = 'h')]
    value_only: bool,
    /// Show only parameters set explicitly in main.toml.
    #[arg(short = 'n')]
    explicit: bool,
    /// Expand $name in the values shown.
    #[arg(short = 'x')]
    expand: bool,
    /// Remove the named parameters from main.toml.
    #[arg(short = 'X')]
    remove: bool,
    /// Comment out the named parameters in main.toml.
    #[arg(short = '#')]
    comment_out: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Parameter names, or "name = value" assignments.
    #[arg(value_name = "name")]
    args: Vec<String>,
}

/// What parsing the command line gave: options, or text for stdout
/// (`--help`) or stderr (a usage error naming the bad option).
#[derive(Debug)]
enum Parsed {
    Run(Opts),
    Help(String),
    Usage(String),
}

fn parse_opts(args: Vec<String>) -> Parsed {
    use clap::Parser;
    match Opts::try_parse_from(std::iter::once(PROG.to_owned()).chain(args)) {
        Ok(o) => Parsed::Run(o),
        Err(e) => crate::clap_error(e, Parsed::Help, Parsed::Usage),
    }
}

/// Runs postconf with `args` (argv without the program name) and returns
/// the exit status: 0 on success, 1 on a fatal error.
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = run(args, &mut out, &mut err);
    let _ = out.flush();
    ExitCode::from(code)
}

/// The whole command, with its output streams injected for tests.
fn run(args: Vec<String>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let opts = match parse_opts(args) {
        Parsed::Run(o) => o,
        Parsed::Help(text) => {
            let _ = write!(out, "{text}");
            return 0;
        }
        Parsed::Usage(m) => {
            let _ = write!(err, "{PROG}: fatal: {m}");
            return 1;
        }
    };
    let dir = mail_config::config_dir_from(opts.dir.as_deref());
    let edit = opts.edit
        || (!opts.remove && !opts.comment_out && opts.args.iter().any(|a| a.contains('=')));
    let result = if opts.remove || opts.comment_out {
        edit_file(&dir, |text| remove(text, &opts.args, opts.comment_out))
    } else if edit {
        edit_file(&dir, |text| set(text, &opts.args))
    } else {
        return print(&opts, &dir, out, err);
    };
    match result {
        Ok(()) => {
            if edit && !(opts.remove || opts.comment_out) {
                warn_unimplemented(&dir, &opts.args, err);
            }
            0
        }
        Err(messages) => {
            for m in messages {
                let _ = writeln!(err, "{PROG}: fatal: {m}");
            }
            1
        }
    }
}

/// After `-e`: a warning for each parameter just set that has no effect
/// yet, so an operator following a Postfix tutorial learns it at once.
fn warn_unimplemented(dir: &Path, assignments: &[String], err: &mut dyn Write) {
    let Ok(main) = Main::load(dir) else { return };
    let edited: HashSet<&str> =
        assignments.iter().filter_map(|a| a.split_once('=')).map(|(n, _)| n.trim()).collect();
    for (name, message) in mail_config::settings::unimplemented_warnings(&main) {
        if edited.contains(name) {
            let _ = writeln!(err, "{PROG}: warning: {message}");
        }
    }
}

fn print(opts: &Opts, dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let file = dir.join(mail_config::MAIN_FILE);
    // -d shows what the code would use with an empty main.toml.
    let loaded = if opts.defaults { Main::from_str(&file, "") } else { Main::load(dir) };
    let main = match loaded {
        Ok(m) => m,
        Err(errors) => {
            for e in errors.0 {
                let _ = writeln!(err, "{PROG}: fatal: {e}");
            }
            return 1;
        }
    };
    let names: Vec<&str> = if opts.args.is_empty() {
        let mut all: Vec<_> = params::PARAMS.iter().map(|p| p.name).collect();
        all.sort_unstable();
        all
    } else {
        opts.args.iter().map(String::as_str).collect()
    };
    for name in names {
        // The names come from the operator: an unknown one is a warning
        // (Postfix's behaviour), never a panic.
        let shown = main.lookup_raw(name).and_then(|raw| {
            if opts.explicit && raw.is_none() {
                return Ok(None);
            }
            let value =
                if opts.expand { main.lookup_expanded(name)? } else { main.lookup_text(name)? };
            Ok(Some(value))
        });
        let value = match shown {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(_) => {
                let _ = writeln!(err, "{PROG}: warning: {name}: unknown parameter");
                continue;
            }
        };
        let line = if opts.value_only {
            value
        } else if value.is_empty() {
            format!("{name} =")
        } else {
            format!("{name} = {value}")
        };
        if writeln!(out, "{line}").is_err() {
            // A closed pipe (postconf | head) is not an error worth a message.
            break;
        }
    }
    0
}

/// Reads main.toml (missing = empty), applies `change`, and replaces the
/// file atomically if the text changed.
fn edit_file(
    dir: &Path,
    change: impl FnOnce(&str) -> Result<String, Vec<String>>,
) -> Result<(), Vec<String>> {
    let path = dir.join(mail_config::MAIN_FILE);
    let shown = path.display().to_string();
    let (old, mode) = match std::fs::File::open(&path) {
        Ok(f) => {
            let mode = f
                .metadata()
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o644);
            let mut bytes = Vec::new();
            f.take(MAX_FILE + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| vec![format!("{shown}: {e}")])?;
            if bytes.len() as u64 > MAX_FILE {
                return Err(vec![format!("{shown}: file is larger than {MAX_FILE} bytes")]);
            }
            let text =
                String::from_utf8(bytes).map_err(|_| vec![format!("{shown}: not valid UTF-8")])?;
            (text, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o644),
        Err(e) => return Err(vec![format!("{shown}: {e}")]),
    };
    let new = change(&old)
        .map_err(|ms| ms.into_iter().map(|m| format!("{shown}: {m}")).collect::<Vec<_>>())?;
    if new != old {
        stdx::fs::atomic_write(&path, new.as_bytes(), mode)
            .map_err(|e| vec![format!("{shown}: cannot write: {e}")])?;
    }
    Ok(())
}

fn parse_doc(text: &str) -> Result<DocumentMut, Vec<String>> {
    text.parse::<DocumentMut>().map_err(|e| {
        let line =
            e.span().map_or(0, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().lines().next().unwrap_or("invalid TOML").trim().to_owned();
        vec![if line == 0 { msg } else { format!("line {line}: {msg}") }]
    })
}

/// `-e`: sets each `name = value`, returning the new text.
fn set(text: &str, assignments: &[String]) -> Result<String, Vec<String>> {
    let mut doc = parse_doc(text)?;
    let mut errors = Vec::new();
    let mut edited = HashSet::new();
    for a in assignments {
        let Some((name, value)) = a.split_once('=') else {
            errors.push(format!("\"{a}\": expected \"name = value\""));
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        let Some(param) = params::lookup(name) else {
            errors.push(format!("unknown parameter \"{name}\""));
            continue;
        };
        let mut new = match mail_config::value::text_to_toml(param.kind, value) {
            Ok(v) => v,
            Err(m) => {
                errors.push(format!("parameter \"{name}\": {m}"));
                continue;
            }
        };
        let table = doc.as_table_mut();
        match table.get_mut(param.name) {
            // Keep the spacing and any "# comment" after the old value.
            Some(Item::Value(old)) => {
                *new.decor_mut() = old.decor().clone();
                *old = new;
            }
            Some(other) => *other = Item::Value(new),
            None => {
                table.insert(param.name, Item::Value(new));
            }
        }
        edited.insert(param.name);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let new_text = doc.to_string();
    // A value can be fine alone and still break the whole: a $name loop or
    // a reference to an unknown parameter. Refuse edits that add problems.
    let path = Path::new(mail_config::MAIN_FILE);
    let before = problems(path, text);
    let after: Vec<String> = problems_of(
        Main::from_str(path, &new_text).err().map(|e| e.0).unwrap_or_default(),
        &edited,
    )
    .into_iter()
    .filter(|p| !before.contains(p))
    .collect();
    if after.is_empty() { Ok(new_text) } else { Err(after) }
}

/// The problems in `text`, without their locations (lines move on edits).
fn problems(path: &Path, text: &str) -> Vec<String> {
    problems_of(Main::from_str(path, text).err().map(|e| e.0).unwrap_or_default(), &HashSet::new())
}

fn problems_of(errors: Vec<Error>, edited: &HashSet<&str>) -> Vec<String> {
    errors
        .into_iter()
        .filter_map(|e| match e {
            Error::BadValue { name, message, .. }
                if edited.is_empty() || edited.contains(name.as_str()) =>
            {
                Some(format!("parameter \"{name}\": {message}"))
            }
            Error::ExpansionLoop { .. } => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

/// `-X` / `-#`: removes (or comments out) each named parameter, moving the
/// comments that stood above it onto whatever follows.
fn remove(text: &str, names: &[String], comment_out: bool) -> Result<String, Vec<String>> {
    let mut doc = parse_doc(text)?;
    for name in names {
        let name = name.trim();
        let keys: Vec<String> = doc.as_table().iter().map(|(k, _)| k.to_owned()).collect();
        let Some(idx) = keys.iter().position(|k| k == name) else { continue };
        let Some((key, item)) = doc.as_table_mut().remove_entry(name) else { continue };
        let mut carried =
            key.leaf_decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_owned();
        if comment_out {
            let shown = match item {
                Item::Value(v) => v.decorated("", "").to_string(),
                other => other.to_string().trim().to_owned(),
            };
            if !carried.is_empty() && !carried.ends_with('\n') {
                carried.push('\n');
            }
            carried.push_str(&format!("#{name} = {shown}\n"));
        }
        if carried.is_empty() {
            continue;
        }
        let table = doc.as_table_mut();
        match keys.get(idx + 1) {
            Some(next) if matches!(table.get(next), Some(Item::Value(_))) => {
                if let Some(mut k) = table.key_mut(next) {
                    let prefix =
                        k.leaf_decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_owned();
                    k.leaf_decor_mut().set_prefix(format!("{carried}{prefix}"));
                }
            }
            Some(next) => {
                if let Some(Item::Table(t)) = table.get_mut(next) {
                    let prefix =
                        t.decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_owned();
                    t.decor_mut().set_prefix(format!("{carried}{prefix}"));
                }
            }
            None => {
                let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
                doc.set_trailing(format!("{carried}{trailing}"));
            }
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENTED: &str = "\
# Postern main.toml for the tutorial.

# Who we are.
myhostname = \"mail.example.com\"   # the FQDN

# Greeting.
smtpd_banner = \"$myhostname ESMTP $mail_name\"
message_size_limit = 10240000

# trailing comment
";

    fn sv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn cli(dir: &Path, args: &[&str]) -> (u8, String, String) {
        let mut full = sv(&["-c", dir.to_str().unwrap()]);
        full.extend(sv(args));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(full, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn opts(a: &[&str]) -> Opts {
        match parse_opts(sv(a)) {
            Parsed::Run(o) => o,
            other => panic!("{a:?}: {other:?}"),
        }
    }

    fn usage_error(a: &[&str]) -> String {
        match parse_opts(sv(a)) {
            Parsed::Usage(m) => m,
            other => panic!("{a:?}: {other:?}"),
        }
    }

    #[test]
    fn options() {
        let o = opts(&["-nh", "-cdir", "-x", "a", "--", "-b"]);
        assert!(o.explicit && o.value_only && o.expand);
        assert_eq!(o.dir, Some(PathBuf::from("dir")));
        assert_eq!(o.args, ["a", "-b"]);
        let o = opts(&["-c", "dir", "-e", "mydestination = $myhostname, localhost", "-d"]);
        assert!(o.edit && o.defaults && !o.explicit);
        assert_eq!(o.args, ["mydestination = $myhostname, localhost"]);
        assert!(usage_error(&["-q"]).starts_with("unexpected argument '-q' found"));
        assert!(usage_error(&["-c"]).contains("'-c <config_dir>'"));
        assert!(usage_error(&["--bogus"]).contains("'--bogus'"));
        let o = opts(&["-#", "-X"]);
        assert!(o.comment_out && o.remove);
    }

    #[test]
    fn setting_an_unimplemented_parameter_warns() {
        let d = tempfile::tempdir().unwrap();
        let (code, _, err) = cli(d.path(), &["-e", "append_dot_mydomain = yes", "biff = no"]);
        assert_eq!(code, 0);
        let file = d.path().join("main.toml");
        assert_eq!(
            err,
            format!(
                "postconf: warning: {}:1: parameter \"append_dot_mydomain\": not yet implemented; the setting has no effect\n",
                file.display()
            )
        );
        assert!(std::fs::read_to_string(&file).unwrap().contains("append_dot_mydomain = true"));
        let (code, _, err) = cli(d.path(), &["myhostname = mx.example.org"]);
        assert_eq!((code, err.as_str()), (0, ""), "only the parameters being set are warned about");
    }

    #[test]
    fn help_goes_to_stdout_and_lists_the_options() {
        let d = tempfile::tempdir().unwrap();
        let (code, out, err) = cli(d.path(), &["--help"]);
        assert_eq!(code, 0);
        assert!(err.is_empty(), "{err}");
        assert!(out.contains("Usage: postconf [-c config_dir] [-dhnx] [name...]"), "{out}");
        for flag in ["-d", "-e", "-h", "-n", "-x", "-X", "-#"] {
            assert!(out.contains(&format!("  {flag}")), "{flag} missing from\n{out}");
        }
        let (code, out, err) = cli(d.path(), &["-q"]);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(err.starts_with("postconf: fatal: unexpected argument '-q' found"), "{err}");
    }

    #[test]
    fn set_keeps_comments_and_order() {
        let new = set(
            COMMENTED,
            &sv(&["smtpd_banner = Bem Vindo - $myhostname", "myhostname=mx.example.org"]),
        )
        .unwrap();
        assert_eq!(
            new,
            COMMENTED
                .replace("\"$myhostname ESMTP $mail_name\"", "\"Bem Vindo - $myhostname\"")
                .replace("\"mail.example.com\"", "\"mx.example.org\"")
        );
        // A round trip with no change is byte-identical.
        assert_eq!(set(COMMENTED, &sv(&["message_size_limit = 10240000"])).unwrap(), COMMENTED);
    }

    #[test]
    fn set_writes_typed_values_and_appends_new_keys() {
        let new = set(
            COMMENTED,
            &sv(&[
                "mydestination = $myhostname, localhost, $mydomain",
                "smtpd_helo_required = yes",
                "smtpd_timeout = 60",
                "maximal_queue_lifetime = 2",
                "message_size_limit = 20480000",
                "home_mailbox = Maildir/",
                "relayhost =",
            ]),
        )
        .unwrap();
        let added = "message_size_limit = 20480000
mydestination = [\"$myhostname\", \"localhost\", \"$mydomain\"]
smtpd_helo_required = true
smtpd_timeout = 60
maximal_queue_lifetime = \"2\"
home_mailbox = \"Maildir/\"
relayhost = \"\"
";
        assert_eq!(new, COMMENTED.replace("message_size_limit = 10240000\n", added));
        let m = Main::from_str(Path::new("/x/main.toml"), &new).unwrap();
        assert_eq!(m.list("mydestination"), ["mail.example.com", "localhost", "example.com"]);
        assert!(m.bool("smtpd_helo_required"));
        assert_eq!(m.duration("maximal_queue_lifetime").as_secs(), 2 * 86_400);
        assert_eq!(m.str("home_mailbox"), "Maildir/");
    }

    #[test]
    fn set_rejects_bad_names_values_and_loops() {
        assert_eq!(
            set(COMMENTED, &sv(&["mydestinaton = x"])).unwrap_err(),
            ["unknown parameter \"mydestinaton\""]
        );
        assert_eq!(
            set(COMMENTED, &sv(&["message_size_limit = ten"])).unwrap_err(),
            ["parameter \"message_size_limit\": expected a size in bytes, found \"ten\""]
        );
        let e = set(COMMENTED, &sv(&["myhostname = $mydomain"])).unwrap_err();
        assert!(e[0].contains("expansion loop"), "{e:?}");
        let e = set(COMMENTED, &sv(&["smtpd_banner = $nosuch"])).unwrap_err();
        assert!(e[0].contains("unknown parameter \"$nosuch\""), "{e:?}");
        assert!(set("a = [", &sv(&["biff = no"])).unwrap_err()[0].starts_with("line 1: "));
    }

    #[test]
    fn remove_and_comment_out_keep_comments() {
        let new = remove(COMMENTED, &sv(&["smtpd_banner", "nosuch"]), false).unwrap();
        assert_eq!(new, COMMENTED.replace("smtpd_banner = \"$myhostname ESMTP $mail_name\"\n", ""));
        let new = remove(COMMENTED, &sv(&["message_size_limit"]), true).unwrap();
        assert!(new.contains("# Greeting.\nsmtpd_banner"), "{new}");
        assert!(new.contains("#message_size_limit = 10240000\n"), "{new}");
        assert!(new.ends_with("# trailing comment\n"), "{new}");
        assert!(
            Main::from_str(Path::new("/x/main.toml"), &new)
                .unwrap()
                .raw("message_size_limit")
                .is_none()
        );
        let new = remove(COMMENTED, &sv(&["myhostname"]), false).unwrap();
        assert!(new.starts_with("# Postern main.toml for the tutorial.\n\n# Who we are.\n\n# Greeting.\nsmtpd_banner"), "{new}");
    }

    #[test]
    fn command_line_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Printing with no main.toml shows defaults.
        let (code, out, _) = cli(d, &["smtpd_banner", "mail_name"]);
        assert_eq!(
            (code, out.as_str()),
            (0, "smtpd_banner = $myhostname ESMTP $mail_name\nmail_name = Postern\n")
        );
        // The tutorial's edit, as the shell passes it.
        let (code, _, err) = cli(
            d,
            &["-e", "smtpd_banner = Bem Vindo - $myhostname", "myhostname = mail.example.com"],
        );
        assert_eq!((code, err.as_str()), (0, ""));
        let (code, _, _) = cli(d, &["mydestination = $myhostname, localhost, $mydomain"]);
        assert_eq!(code, 0);
        let (_, out, _) = cli(d, &["-n"]);
        assert_eq!(
            out,
            "mydestination = $myhostname, localhost, $mydomain\nmyhostname = mail.example.com\nsmtpd_banner = Bem Vindo - $myhostname\n"
        );
        let (_, out, _) = cli(d, &["-x", "-h", "smtpd_banner", "mydestination"]);
        assert_eq!(out, "Bem Vindo - mail.example.com\nmail.example.com, localhost, example.com\n");
        let (_, out, _) = cli(d, &["-d", "smtpd_banner", "relayhost"]);
        assert_eq!(out, "smtpd_banner = $myhostname ESMTP $mail_name\nrelayhost =\n");
        let (code, out, err) = cli(d, &["nosuch", "mail_name"]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "mail_name = Postern\n", "postconf: warning: nosuch: unknown parameter\n")
        );
        // Everything, sorted.
        let (_, out, _) = cli(d, &[]);
        let names: Vec<&str> = out.lines().map(|l| l.split(" =").next().unwrap()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), params::PARAMS.len());
        // A bad edit is fatal and leaves the file untouched.
        let before = std::fs::read_to_string(d.join("main.toml")).unwrap();
        let (code, _, err) = cli(d, &["-e", "message_size_limit = ten"]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!(
                "postconf: fatal: {}: parameter \"message_size_limit\": expected a size in bytes, found \"ten\"\n",
                d.join("main.toml").display()
            )
        );
        assert_eq!(std::fs::read_to_string(d.join("main.toml")).unwrap(), before);
        // -X removes.
        let (code, _, _) = cli(d, &["-X", "smtpd_banner"]);
        assert_eq!(code, 0);
        let (_, out, _) = cli(d, &["-n", "-h", "smtpd_banner"]);
        assert_eq!(out, "");
        // A broken file is reported, not guessed at.
        std::fs::write(d.join("main.toml"), "biff = 3\n").unwrap();
        let (code, _, err) = cli(d, &["biff"]);
        assert_eq!(code, 1);
        assert!(err.contains("main.toml:1: parameter \"biff\""), "{err}");
    }
}
