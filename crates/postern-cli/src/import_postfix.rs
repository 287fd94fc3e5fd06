//! `postern import-postfix [DIR | --from DIR] [--force]`: converts a Postfix
//! configuration (main.cf, master.cf and the lookup tables they name in
//! the Postfix directory) into this instance's main.toml and master.toml.
//!
//! Every comment and every parameter line is carried over in order: a
//! parameter Postern knows becomes a TOML entry of its type; one it does
//! not know, or keeps for itself (the Postfix paths and owners), stays as
//! a comment with the reason, and is listed on standard output. master.cf
//! services become `[[service]]` tables with Postern's programs; the
//! Postfix services Postern does in-process (cleanup, trivial-rewrite,
//! bounce, ...) are listed with what does their work instead. Tables
//! under the Postfix directory (`hash:/etc/postfix/virtual`) are copied
//! next to main.toml, since Postern reads their source text and purging
//! postfix removes its directory. The result is checked as `postern
//! check` would; existing files are replaced only with `--force`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use mail_config::params;
use mail_config::settings::UNIMPLEMENTED_PREFIX;
use mail_config::value;

/// The largest main.cf, master.cf or table file read.
const MAX_FILE: u64 = 4 << 20;
/// The longest logical line (a parameter with its continuations).
const MAX_LOGICAL_LINE: usize = 256 << 10;

/// Options of `postern import-postfix`.
#[derive(Debug, clap::Args)]
pub struct ImportOptions {
    /// The Postfix configuration directory, as `postern import-postfix
    /// /etc/postfix` or `--from /etc/postfix`.
    #[arg(long, value_name = "DIR", default_value = "/etc/postfix")]
    pub from: PathBuf,
    /// The Postfix configuration directory (the same as `--from`).
    #[arg(value_name = "POSTFIX_DIR", conflicts_with = "from")]
    pub dir: Option<PathBuf>,
    /// Replace an existing main.toml and master.toml.
    #[arg(long)]
    pub force: bool,
}

/// Parameters Postern keeps to itself: a Postfix value would point it at
/// Postfix's queue, programs or owner.
const OWN: &[(&str, &str)] = &[
    ("queue_directory", "Postern has its own queue (/var/spool/postern)"),
    ("data_directory", "Postern keeps its data in its queue directory"),
    ("daemon_directory", "Postern's daemons are in /usr/lib/postern"),
    ("command_directory", "Postern's package installs its commands in /usr/sbin, the default"),
    ("shlib_directory", "Postern has no shared libraries"),
    ("meta_directory", "Postern has no meta files"),
    ("mail_owner", "Postern's daemons run as the postern user"),
    ("setgid_group", "Postern's postdrop group is its own"),
    ("config_directory", "this file is the configuration"),
    ("manpage_directory", "documentation paths are the package's"),
    ("sample_directory", "documentation paths are the package's"),
    ("readme_directory", "documentation paths are the package's"),
    ("html_directory", "documentation paths are the package's"),
    ("sendmail_path", "Postern installs its own sendmail"),
    ("newaliases_path", "Postern installs its own newaliases"),
    ("mailq_path", "Postern installs its own mailq"),
    ("process_id_directory", "Postern keeps its pid file in its queue directory"),
    ("compatibility_level", "Postern has one set of defaults (Postfix's of level 3.6 and later)"),
];

/// What Postern does instead of a Postfix service it has no process for.
const BUILT_IN: &[(&str, &str)] = &[
    ("cleanup", "built in: smtpd and pickup clean and queue messages themselves"),
    ("trivial-rewrite", "built in: qmgr resolves and routes addresses"),
    ("bounce", "built in: qmgr writes bounces, delay warnings and success notices"),
    ("tlsmgr", "not needed: each process keeps its own TLS state"),
    ("verify", "not implemented: address verification"),
    ("flush", "built in: qmgr answers postqueue -f and -s"),
    ("proxymap", "not needed: the daemons read their tables themselves"),
    ("showq", "built in: postqueue reads the queue"),
    ("error", "built in: qmgr answers error: routes"),
    ("discard", "built in: qmgr answers discard: routes"),
    ("scache", "built in: smtp-client caches its connections"),
    ("postlogd", "not needed: maillog_file is written by each process"),
    ("postscreen", "not implemented: smtpd faces clients directly (add an smtpd service)"),
    ("virtual", "not implemented: the virtual(8) delivery agent"),
    ("lmtp", "not implemented: the LMTP client"),
    ("pipe", "not implemented: the pipe(8) delivery agent"),
    ("spawn", "not implemented: spawn(8)"),
    ("dnsblog", "not implemented: postscreen's DNSBL logger"),
    ("tlsproxy", "not implemented: postscreen's TLS proxy"),
];

/// Postern programs by the Postfix command that does the same job.
const PROGRAMS: &[(&str, &str)] = &[
    ("smtpd", "smtpd"),
    ("pickup", "pickup"),
    ("qmgr", "qmgr"),
    ("oqmgr", "qmgr"),
    ("smtp", "smtp-client"),
    ("local", "local-delivery"),
    ("anvil", "anvil"),
];

/// The services Postern needs that master.cf has no line for (authd,
/// POP3 and IMAP, which Dovecot or Courier served beside Postfix).
const POSTERN_SERVICES: &str = r#"
# Postern's own services, which have no master.cf line in Postfix.
# authd checks passwords for SMTP AUTH, POP3 and IMAP (as root, since
# pam_unix checks other users' passwords only as root). Exactly one.
[[service]]
name = "authd"
type = "unix"
unpriv = false
maxproc = 1
command = "authd"

# POP3: pop3 (110, STLS) and pop3s (995, implicit TLS) are the login
# services; after a login a pop3-mail process, started on demand, serves
# that user's Maildir as the user.
[[service]]
name = "pop3"
type = "inet"
listen = ["pop3"]
maxproc = 1
command = "pop3d"

[[service]]
name = "pop3s"
type = "inet"
listen = ["pop3s"]
maxproc = 1
command = "pop3d"
[service.options]
syslog_name = "postern/pop3s"
pop3_tls_wrappermode = "yes"

[[service]]
name = "pop3-mail"
type = "unix"
unpriv = false
spawn = "on-demand"
maxproc = 100
command = "pop3d"
args = ["mail"]

# IMAP: imap (143, STARTTLS) and imaps (993, implicit TLS) are the login
# services; after a login an imap-mail process, started on demand, serves
# that user's Maildir and folders as the user.
[[service]]
name = "imap"
type = "inet"
listen = ["imap"]
maxproc = 1
command = "imapd"

[[service]]
name = "imaps"
type = "inet"
listen = ["imaps"]
maxproc = 1
command = "imapd"
[service.options]
syslog_name = "postern/imaps"
imap_tls_wrappermode = "yes"

[[service]]
name = "imap-mail"
type = "unix"
unpriv = false
spawn = "on-demand"
maxproc = 100
command = "imapd"
args = ["mail"]
"#;

/// One thing the import could not carry over, for the report.
struct Report {
    lines: Vec<String>,
    copied: BTreeSet<PathBuf>,
}

impl Report {
    fn note(&mut self, text: String) {
        self.lines.push(text);
    }
}

/// Runs the command; `dir` is Postern's configuration directory.
pub fn import(dir: &Path, opts: &ImportOptions) -> Result<(), String> {
    let from = opts.dir.as_ref().unwrap_or(&opts.from);
    let main_cf = read_file(&from.join("main.cf"))?;
    let master_cf = read_file(&from.join("master.cf"))?;
    let main_out = dir.join(mail_config::MAIN_FILE);
    let master_out = dir.join(mail_config::MASTER_FILE);
    for f in [&main_out, &master_out] {
        if f.exists() && !opts.force {
            return Err(format!(
                "{} exists; move it away or run postern import-postfix --force to replace it",
                f.display()
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut report = Report { lines: Vec::new(), copied: BTreeSet::new() };
    let main_toml = convert_main(&main_cf, from, dir, &mut report)?;
    let master_toml = convert_master(&master_cf, &mut report);
    write_file(&main_out, &main_toml)?;
    write_file(&master_out, &master_toml)?;
    println!("postern import-postfix: wrote {} and {}", main_out.display(), master_out.display());
    for f in &report.copied {
        println!("  copied table {}", f.display());
    }
    for line in &report.lines {
        println!("  {line}");
    }
    match mail_config::check(dir) {
        Ok(()) => {
            println!("postern import-postfix: the result passes postern check");
            Ok(())
        }
        Err(errors) => Err(format!(
            "the converted configuration does not load; fix these and run postern check:\n{errors}"
        )),
    }
}

fn read_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("{}: larger than {MAX_FILE} bytes", path.display()));
    }
    Ok(text)
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("toml.import");
    std::fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", tmp.display()))
}

/// A piece of a Postfix configuration file: a comment or blank line kept
/// as it is, or one logical line (with its continuation lines joined by
/// a space, as Postfix joins them).
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Comment(String),
    Logical { text: String, line: usize },
}

/// Postfix's file syntax (main.cf and master.cf share it): a line that
/// starts with whitespace continues the previous logical line; comment
/// and blank lines end it.
fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        let continues = raw.starts_with([' ', '\t']) && !trimmed.is_empty();
        if continues
            && !trimmed.starts_with('#')
            && let Some((t, _)) = current.as_mut()
        {
            if t.len() + trimmed.len() < MAX_LOGICAL_LINE {
                t.push(' ');
                t.push_str(trimmed);
            }
            continue;
        }
        if let Some((t, line)) = current.take() {
            out.push(Piece::Logical { text: t, line });
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            out.push(Piece::Comment(raw.trim_end().to_owned()));
        } else {
            current = Some((trimmed.chars().take(MAX_LOGICAL_LINE).collect(), i + 1));
        }
    }
    if let Some((t, line)) = current {
        out.push(Piece::Logical { text: t, line });
    }
    out
}

/// A comment line that carries an unconverted line and its reason.
fn commented(original: &str, reason: &str) -> String {
    format!("# {original}\n#   (import-postfix: {reason})\n")
}

fn convert_main(
    text: &str,
    from: &Path,
    dir: &Path,
    report: &mut Report,
) -> Result<String, String> {
    let mut out = format!(
        "# main.toml converted from {} by postern import-postfix.\n\
         # Lines Postern cannot use are kept as comments, each with the reason.\n",
        from.join("main.cf").display()
    );
    let pieces = pieces(text);
    // Postfix takes the last of several lines for one name (with a
    // warning); TOML allows one.
    let mut last = std::collections::HashMap::new();
    for p in &pieces {
        if let Piece::Logical { text, line } = p
            && let Some((name, _)) = text.split_once('=')
        {
            last.insert(name.trim().to_owned(), *line);
        }
    }
    for piece in pieces {
        let (text, line) = match piece {
            Piece::Comment(c) => {
                out.push_str(&c);
                out.push('\n');
                continue;
            }
            Piece::Logical { text, line } => (text, line),
        };
        if let Some((name, _)) = text.split_once('=')
            && let Some(&later) = last.get(name.trim())
            && later != line
        {
            let why = format!("main.cf line {later} sets it again, and Postfix uses the last");
            out.push_str(&commented(&text, &why));
            report.note(format!("main.cf:{line}: {} overridden ({why})", name.trim()));
            continue;
        }
        let Some((name, value)) = text.split_once('=') else {
            out.push_str(&commented(&text, "not a name = value line"));
            report.note(format!("main.cf:{line}: not a parameter line, kept as a comment"));
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if let Some((_, why)) = OWN.iter().find(|(n, _)| *n == name) {
            out.push_str(&commented(&text, why));
            report.note(format!("{name}: not imported ({why})"));
            continue;
        }
        let Some(param) = params::lookup(name) else {
            out.push_str(&commented(&text, "Postern has no such parameter"));
            report.note(format!("{name}: not imported (Postern has no such parameter)"));
            continue;
        };
        let value = copy_tables(value, from, dir, report)?;
        match value::text_to_toml(param.kind, &value) {
            Ok(v) => {
                let _ = writeln!(out, "{name} = {}", v.to_string().trim());
                if param.doc.starts_with(UNIMPLEMENTED_PREFIX) {
                    report.note(format!("{name}: imported, but {}", lower_first(param.doc)));
                }
            }
            Err(e) => {
                out.push_str(&commented(&text, &e));
                report.note(format!("{name}: not imported ({e})"));
            }
        }
    }
    Ok(out)
}

fn lower_first(text: &str) -> String {
    let mut c = text.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

/// Table types whose source file Postern reads.
const TABLE_TYPES: &[&str] = &["hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash"];

/// Copies each `type:PATH` table that lives under `from` into `dir`
/// (Postern reads the source file, and purging postfix removes `from`),
/// and names the copy in the value instead.
fn copy_tables(
    value: &str,
    from: &Path,
    dir: &Path,
    report: &mut Report,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while !rest.is_empty() {
        let end = rest.find(|c: char| c.is_whitespace() || c == ',').unwrap_or(rest.len());
        let (word, tail) = rest.split_at(end);
        out.push_str(&copy_table(word, from, dir, report)?);
        let sep =
            tail.len() - tail.trim_start_matches(|c: char| c.is_whitespace() || c == ',').len();
        out.push_str(&tail[..sep]);
        rest = &tail[sep..];
    }
    Ok(out)
}

fn copy_table(word: &str, from: &Path, dir: &Path, report: &mut Report) -> Result<String, String> {
    let inner = params::strip_proxy(word);
    let Some((kind, path)) = inner.split_once(':') else { return Ok(word.to_owned()) };
    if !TABLE_TYPES.contains(&kind) {
        return Ok(word.to_owned());
    }
    let path = expand_config_directory(path, from);
    let source = Path::new(&path);
    if !source.starts_with(from) {
        return Ok(word.to_owned());
    }
    let Some(file_name) = source.file_name() else { return Ok(word.to_owned()) };
    let target = dir.join(file_name);
    if !report.copied.contains(&target) {
        let text = read_file(source).map_err(|e| format!("table {word}: {e}"))?;
        std::fs::write(&target, &text).map_err(|e| format!("write {}: {e}", target.display()))?;
        report.copied.insert(target.clone());
    }
    Ok(format!("{kind}:{}", target.display()))
}

/// `$config_directory` in a table path is the Postfix directory.
fn expand_config_directory(path: &str, from: &Path) -> String {
    let from = from.display().to_string();
    path.replace("${config_directory}", &from)
        .replace("$(config_directory)", &from)
        .replace("$config_directory", &from)
}

/// One master.cf service line, split into its columns.
struct Service<'a> {
    name: &'a str,
    kind: &'a str,
    private: &'a str,
    unpriv: &'a str,
    wakeup: &'a str,
    command: &'a str,
    args: Vec<String>,
}

fn split_service(text: &str) -> Option<Service<'_>> {
    let mut words = text.split_whitespace();
    let name = words.next()?;
    let kind = words.next()?;
    let private = words.next()?;
    let unpriv = words.next()?;
    let _chroot = words.next()?;
    let wakeup = words.next()?;
    let _maxproc = words.next()?;
    let command = words.next()?;
    Some(Service { name, kind, private, unpriv, wakeup, command, args: args(words) })
}

/// The arguments, with Postfix 3's `{ ... }` grouping taken as one word
/// (`-o { smtpd_banner = a b }`).
fn args<'a>(words: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut group: Option<Vec<&str>> = None;
    for w in words {
        match group.as_mut() {
            Some(g) if w == "}" => {
                out.push(g.join(" "));
                group = None;
            }
            Some(g) => g.push(w),
            None if w == "{" => group = Some(Vec::new()),
            None => out.push(w.to_owned()),
        }
    }
    if let Some(g) = group {
        out.push(g.join(" "));
    }
    out
}

fn convert_master(text: &str, report: &mut Report) -> String {
    let mut out = String::from(
        "# master.toml converted from master.cf by postern import-postfix.\n\
         # The chroot and maxproc columns are not carried over: Postern's\n\
         # workers serve many connections each (maxproc below is Postern's\n\
         # default), and its daemons do not chroot.\n",
    );
    let mut names: Vec<String> = Vec::new();
    for piece in pieces(text) {
        let (text, line) = match piece {
            Piece::Comment(c) => {
                out.push_str(&c);
                out.push('\n');
                continue;
            }
            Piece::Logical { text, line } => (text, line),
        };
        let Some(s) = split_service(&text) else {
            out.push_str(&commented(&text, "not a service line"));
            report.note(format!("master.cf:{line}: not a service line, kept as a comment"));
            continue;
        };
        let label = format!("{}/{}", s.name, s.kind);
        let program = PROGRAMS.iter().find(|(p, _)| *p == s.command).map(|&(_, q)| q);
        let Some(program) = program else {
            let why = BUILT_IN
                .iter()
                .find(|(p, _)| *p == s.command)
                .map_or("no Postern program does this", |(_, w)| w);
            out.push_str(&commented(&text, why));
            report.note(format!("service {label} ({}): not imported ({why})", s.command));
            continue;
        };
        out.push_str(&service_table(&s, program, &names, report));
        names.push(s.name.to_owned());
    }
    out.push_str(POSTERN_SERVICES);
    out
}

fn service_table(s: &Service<'_>, program: &str, seen: &[String], report: &mut Report) -> String {
    let label = format!("{}/{}", s.name, s.kind);
    let inet = s.kind == "inet";
    // master.cf names an inet service by its address; master.toml by a
    // name, with the address in `listen`.
    let name = if inet { s.name.rsplit(':').next().unwrap_or(s.name) } else { s.name };
    let mut name = name.to_owned();
    while inet && seen.contains(&name) {
        name.push('_');
    }
    let mut t = String::from("\n[[service]]\n");
    let _ = writeln!(t, "name = {}", toml_str(&name));
    let _ = writeln!(t, "type = {}", toml_str(if inet { "inet" } else { "unix" }));
    if inet {
        let _ = writeln!(t, "listen = [{}]", toml_str(s.name));
    }
    if !inet && s.private == "n" {
        t.push_str("private = false\n");
    }
    if s.unpriv == "n" || program == "local-delivery" {
        t.push_str("unpriv = false\n");
    }
    let wakeup = s.wakeup.trim_end_matches('?');
    if wakeup != "-" && wakeup != "0" && value::parse_u64(wakeup).is_some() {
        let _ = writeln!(t, "wakeup = {wakeup}");
    }
    let maxproc = match program {
        "smtpd" | "local-delivery" => 2,
        _ => 1,
    };
    let _ = writeln!(t, "maxproc = {maxproc}");
    let _ = writeln!(t, "command = {}", toml_str(program));
    let mut options = String::new();
    let mut args = s.args.iter();
    while let Some(a) = args.next() {
        if a == "-o" {
            let Some(o) = args.next() else { break };
            option(&mut options, o, &name, &label, report);
        } else if let Some(o) = a.strip_prefix("-o") {
            option(&mut options, o, &name, &label, report);
        } else {
            report.note(format!("service {label}: argument {a:?} not imported"));
        }
    }
    if !options.is_empty() {
        t.push_str("[service.options]\n");
        t.push_str(&options);
    }
    t
}

/// One `-o name=value`, checked against the parameter table.
fn option(out: &mut String, text: &str, service: &str, label: &str, report: &mut Report) {
    let Some((name, value)) = text.split_once('=') else {
        report.note(format!("service {label}: -o {text:?} is not name=value, not imported"));
        return;
    };
    let (name, value) = (name.trim(), value.trim());
    let Some(param) = params::lookup(name) else {
        report.note(format!(
            "service {label}: -o {name} not imported (Postern has no such parameter)"
        ));
        let _ = writeln!(out, "# {name} = {value:?}  (import-postfix: no such parameter)");
        return;
    };
    let mut value = value.replace("$service_name", service);
    if name == "syslog_name" {
        value = value.replace("postfix/", "postern/");
    }
    match value::text_to_toml(param.kind, &value) {
        // Options are Postfix text in master.toml; the loader checks them.
        Ok(_) => {
            let _ = writeln!(out, "{name} = {}", toml_str(&value));
        }
        Err(e) => report.note(format!("service {label}: -o {name} not imported ({e})")),
    }
}

fn toml_str(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_lines_join_continuations_and_keep_comments() {
        let p = pieces("# top\na = 1\n  2\n\nb=x\n# c\n\tnot a continuation after a comment\n");
        assert_eq!(
            p,
            [
                Piece::Comment("# top".into()),
                Piece::Logical { text: "a = 1 2".into(), line: 2 },
                Piece::Comment(String::new()),
                Piece::Logical { text: "b=x".into(), line: 5 },
                Piece::Comment("# c".into()),
                Piece::Logical { text: "not a continuation after a comment".into(), line: 7 },
            ]
        );
    }

    #[test]
    fn grouped_arguments_are_one_word() {
        let w = args("-o { smtpd_banner = a b } -o x=y".split_whitespace());
        assert_eq!(w, ["-o", "smtpd_banner = a b", "-o", "x=y"]);
    }

    #[test]
    fn tables_under_the_postfix_directory_are_copied() {
        let t = tempfile::tempdir().unwrap();
        let from = t.path().join("postfix");
        let to = t.path().join("postern");
        std::fs::create_dir_all(&from).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(from.join("virtual"), "a@x b@y\n").unwrap();
        let mut r = Report { lines: Vec::new(), copied: BTreeSet::new() };
        let v = copy_tables(
            "hash:$config_directory/virtual, regexp:/etc/x hash:/etc/aliases",
            &from,
            &to,
            &mut r,
        )
        .unwrap();
        assert_eq!(
            v,
            format!("hash:{}, regexp:/etc/x hash:/etc/aliases", to.join("virtual").display())
        );
        assert_eq!(std::fs::read_to_string(to.join("virtual")).unwrap(), "a@x b@y\n");
        let err = copy_tables("hash:$config_directory/missing", &from, &to, &mut r).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }
}
