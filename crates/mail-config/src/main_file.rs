//! `main.toml`: the global parameters, one flat TOML table with Postfix's
//! names. [`Main`] holds the explicit values as Postfix text and answers
//! lookups, expanding `$name` on the way.
//!
//! Loading checks everything it can up front (names, kinds, element syntax,
//! `$name` loops and unknown references) and reports every problem with the
//! file and line, so that a daemon that starts never meets a bad value
//! later. Programs read values through the typed structs of
//! [`crate::settings`]; lookups by a name that comes from outside
//! (`postconf NAME`) use the `lookup_*` methods, which return
//! [`Error::Unknown`] for an undeclared name. The by-name accessors with
//! a literal name (`str`, `list`, ...) remain for the settings builders
//! and panic on an undeclared name, a bug in the caller.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{ImDocument, Item};

use crate::error::{Error, Errors, line_of};
use crate::expand::{ExpandError, MAX_EXPANDED, expand};
use crate::params::{self, Kind, Param};
use crate::value;

/// The largest `main.toml` (or `master.toml`) we read.
pub(crate) const MAX_FILE: u64 = 1024 * 1024;

/// The name of the global parameter file in the configuration directory.
pub const MAIN_FILE: &str = "main.toml";

/// One explicit setting: its text and where it came from.
#[derive(Debug, Clone)]
struct Setting {
    text: String,
    path: PathBuf,
    line: u32,
}

/// The loaded `main.toml` plus any `-o` overrides.
#[derive(Debug, Clone)]
pub struct Main {
    dir: PathBuf,
    file: PathBuf,
    explicit: HashMap<&'static str, Setting>,
    /// The machine's host name, qualified (the computed `myhostname` default).
    host_name: String,
    /// When `myorigin` names a file: that file name and its first line,
    /// read once at load.
    origin_file: Option<(String, Option<String>)>,
}

/// Reads a config file with a size bound. `Ok(None)` if it does not exist.
pub(crate) fn read_bounded(path: &Path) -> Result<Option<String>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: path.to_owned(), source }),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io { path: path.to_owned(), source })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Error::Syntax {
            path: path.to_owned(),
            line: 0,
            message: format!("file is larger than {MAX_FILE} bytes"),
        });
    }
    String::from_utf8(bytes).map(Some).map_err(|e| Error::Syntax {
        path: path.to_owned(),
        line: 0,
        message: format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Parses TOML text, turning a syntax error into [`Error::Syntax`] with the
/// line of the problem.
pub(crate) fn parse_toml<'a>(path: &Path, text: &'a str) -> Result<ImDocument<&'a str>, Error> {
    ImDocument::parse(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        let mut message = e.message().lines().next().unwrap_or("invalid TOML").trim().to_owned();
        let source = usize::try_from(line).ok().and_then(|n| text.lines().nth(n.checked_sub(1)?));
        if let Some(quoted) = source.and_then(quoted_form) {
            message.push_str(&format!(
                "; values in this file are TOML strings: write {quoted}, or let postconf -e write it"
            ));
        }
        Error::Syntax { path: path.to_owned(), line, message }
    })
}

/// A main.cf-style line (`home_mailbox = Maildir/`, typed by hand from
/// a Postfix habit) in the quoted form main.toml wants; `None` when the
/// line is not of that shape or its value is quoted already.
fn quoted_form(line: &str) -> Option<String> {
    let (name, value) = line.split_once('=')?;
    let (name, value) = (name.trim(), value.trim());
    let is_name = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let quoted = value.starts_with(['"', '\'', '[', '{']);
    if !is_name || value.is_empty() || quoted || value.len() > 200 {
        return None;
    }
    Some(format!("{name} = \"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// The host name with `.localdomain` appended if it has no dot (the
/// `myhostname` default rule).
pub fn qualify_host_name(name: &str) -> String {
    let name = name.trim().trim_end_matches('.');
    if name.is_empty() {
        "localhost.localdomain".to_owned()
    } else if name.contains('.') {
        name.to_owned()
    } else {
        format!("{name}.localdomain")
    }
}

/// `host` minus its first label, or `localdomain` if nothing is left (the
/// `mydomain` default rule).
pub fn domain_of(host: &str) -> String {
    match host.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest.to_owned(),
        _ => "localdomain".to_owned(),
    }
}

fn machine_host_name() -> String {
    let raw =
        nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    qualify_host_name(&raw)
}

/// The first line of a small file (`/etc/mailname`), trimmed; `None` if it
/// cannot be read or is empty.
fn first_line(path: &str) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(path).ok()?.take(1024).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next()?.trim();
    if line.is_empty() { None } else { Some(line.to_owned()) }
}

fn declared(name: &str) -> &'static Param {
    match params::lookup(name) {
        Some(p) => p,
        // Callers pass literal names; an undeclared one is a bug in the
        // caller, not a configuration problem.
        None => panic!("mail-config: parameter \"{name}\" is not declared in params.rs"),
    }
}

impl Main {
    /// Reads `dir/main.toml`. A missing file means every parameter has its
    /// default.
    pub fn load(dir: &Path) -> Result<Main, Errors> {
        Main::load_with_overrides(dir, &[])
    }

    /// Like [`Main::load`], then applies `-o name=value` overrides (values
    /// in Postfix text form), which win over the file.
    pub fn load_with_overrides(dir: &Path, overrides: &[(String, String)]) -> Result<Main, Errors> {
        let file = dir.join(MAIN_FILE);
        let text = read_bounded(&file)?.unwrap_or_default();
        Main::build(dir, &file, &text, overrides)
    }

    /// Parses `text` as if it were `main.toml` at `path_for_messages` (whose
    /// parent directory becomes the configuration directory).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(path_for_messages: &Path, text: &str) -> Result<Main, Errors> {
        let dir = path_for_messages.parent().unwrap_or(Path::new("")).to_owned();
        Main::build(&dir, path_for_messages, text, &[])
    }

    fn build(
        dir: &Path,
        file: &Path,
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<Main, Errors> {
        let mut errors = Vec::new();
        let mut explicit = HashMap::new();
        match parse_toml(file, text) {
            Err(e) => errors.push(e),
            Ok(doc) => {
                for (key, item) in doc.as_table().iter() {
                    let line = doc
                        .as_table()
                        .key(key)
                        .and_then(|k| k.span())
                        .map_or(0, |s| line_of(text, s.start));
                    let Some(param) = params::lookup(key) else {
                        errors.push(Error::Unknown {
                            path: file.to_owned(),
                            line,
                            name: key.to_owned(),
                        });
                        continue;
                    };
                    let result = match item {
                        Item::Value(v) => value::toml_to_text(param.kind, v),
                        Item::Table(_) | Item::ArrayOfTables(_) => Err(format!(
                            "{}, found a table (main.toml is one flat table of parameters)",
                            value::expected(param.kind)
                        )),
                        Item::None => continue,
                    };
                    match result {
                        Ok(text) => {
                            explicit
                                .insert(param.name, Setting { text, path: file.to_owned(), line });
                        }
                        Err(message) => errors.push(Error::BadValue {
                            path: file.to_owned(),
                            line,
                            name: key.to_owned(),
                            message,
                        }),
                    }
                }
            }
        }
        let o_path = PathBuf::from("-o");
        for (name, text) in overrides {
            let Some(param) = params::lookup(name) else {
                errors.push(Error::Unknown { path: o_path.clone(), line: 0, name: name.clone() });
                continue;
            };
            match value::check_text(param.kind, text) {
                Ok(()) => {
                    explicit.insert(
                        param.name,
                        Setting { text: text.clone(), path: o_path.clone(), line: 0 },
                    );
                }
                Err(message) => errors.push(Error::BadValue {
                    path: o_path.clone(),
                    line: 0,
                    name: name.clone(),
                    message,
                }),
            }
        }
        let mut main = Main {
            dir: dir.to_owned(),
            file: file.to_owned(),
            explicit,
            host_name: machine_host_name(),
            origin_file: None,
        };
        if errors.is_empty() {
            main.check_expansions(&mut errors);
        }
        if errors.is_empty() {
            main.origin_file = main
                .expand_param("myorigin", &mut Vec::new(), false)
                .ok()
                .filter(|v| v.starts_with('/'))
                .map(|v| {
                    let line = first_line(&v);
                    (v, line)
                });
            Ok(main)
        } else {
            Err(Errors(errors))
        }
    }

    /// Expands every parameter once, so loops, unknown `$names` and bad
    /// list elements are reported at load rather than at first use.
    fn check_expansions(&self, errors: &mut Vec<Error>) {
        let mut loops = BTreeSet::new();
        for p in params::PARAMS {
            let (path, line) = self
                .explicit
                .get(p.name)
                .map_or((self.file.clone(), 0), |s| (s.path.clone(), s.line));
            let bad = |message: String| Error::BadValue {
                path: path.clone(),
                line,
                name: p.name.to_owned(),
                message,
            };
            match self.expand_param(p.name, &mut Vec::new(), true) {
                Ok(v) => {
                    if matches!(p.kind, Kind::Int { .. })
                        && value::is_reference(&self.text(p.name))
                        && let Err(message) = value::check_text(p.kind, &v).and_then(|()| {
                            if value::is_reference(&v) {
                                Err(format!("\"{v}\" is not a number"))
                            } else {
                                Ok(())
                            }
                        })
                    {
                        errors.push(bad(message));
                    }
                    if (matches!(p.kind, Kind::List | Kind::MapList)
                        || params::WORD_PARAMS.contains(&p.name))
                        && let Err(message) = params::check_elements(p.name, &value::split_list(&v))
                    {
                        errors.push(bad(message));
                    }
                    // Folder names hold blanks, so this one is no list.
                    if p.name == "imap_special_use"
                        && let Err(message) = params::check_special_use(&v)
                    {
                        errors.push(bad(message));
                    }
                }
                Err(ExpandError::Loop(cycle)) => {
                    loops.insert(self.loop_culprit(cycle));
                }
                // Reported only where the bad text is, not again for every
                // parameter that refers to it.
                Err(ExpandError::Unknown(n)) if self.own_text_mentions(p, &n) => {
                    errors.push(bad(format!("refers to unknown parameter \"${n}\"")));
                }
                Err(ExpandError::TooLong) => {
                    errors.push(bad(format!("expands to more than {MAX_EXPANDED} bytes")))
                }
                Err(ExpandError::Syntax(m)) if self.own_text_expands_badly(p) => {
                    errors.push(bad(m))
                }
                Err(_) => {}
            }
        }
        errors.extend(loops.into_iter().map(|name| Error::ExpansionLoop { name }));
    }

    /// The one name to report for a `$name` cycle, the same whichever
    /// member the expansion started from: the explicitly set member that
    /// comes first in its file, else the alphabetically first.
    fn loop_culprit(&self, mut cycle: Vec<String>) -> String {
        cycle.sort();
        let explicit = cycle
            .iter()
            .filter_map(|n| self.explicit.get(n.as_str()).map(|s| ((s.path.clone(), s.line), n)))
            .min()
            .map(|(_, n)| n.clone());
        explicit.or_else(|| cycle.first().cloned()).unwrap_or_default()
    }

    fn own_text_mentions(&self, p: &'static Param, name: &str) -> bool {
        let mut hit = false;
        let _ = expand(&self.effective_text(p, &mut Vec::new()).unwrap_or_default(), &mut |n| {
            hit |= n == name;
            Ok(String::from("x"))
        });
        hit
    }

    fn own_text_expands_badly(&self, p: &'static Param) -> bool {
        let text = self.effective_text(p, &mut Vec::new()).unwrap_or_default();
        matches!(expand(&text, &mut |_| Ok(String::new())), Err(ExpandError::Syntax(_)))
    }

    /// The text of `p` before expansion: explicit, else default, with the
    /// computed defaults of `myhostname` and `mydomain` (the latter derived
    /// from the effective, expanded `myhostname`).
    fn effective_text(
        &self,
        p: &'static Param,
        stack: &mut Vec<&'static str>,
    ) -> Result<String, ExpandError> {
        if let Some(s) = self.explicit.get(p.name) {
            return Ok(s.text.clone());
        }
        Ok(match p.name {
            "myhostname" => self.host_name.clone(),
            "mydomain" => domain_of(&self.expand_param("myhostname", stack, true)?),
            _ => p.default.to_owned(),
        })
    }

    /// The fully expanded value of a parameter. `stack` holds the names
    /// being expanded, for loop detection. With `strict` false the special
    /// `myorigin` file rule is skipped (used while loading that file).
    fn expand_param(
        &self,
        name: &str,
        stack: &mut Vec<&'static str>,
        strict: bool,
    ) -> Result<String, ExpandError> {
        let p = params::lookup(name).ok_or_else(|| ExpandError::Unknown(name.to_owned()))?;
        if let Some(at) = stack.iter().position(|n| *n == p.name) {
            return Err(ExpandError::Loop(stack[at..].iter().map(|n| (*n).to_owned()).collect()));
        }
        stack.push(p.name);
        let result = self.effective_text(p, stack).and_then(|text| match p.kind {
            Kind::Str | Kind::List | Kind::MapList | Kind::Path => {
                expand(&text, &mut |n| self.expand_param(n, stack, strict))
            }
            Kind::Int { .. } if value::is_reference(&text) => {
                expand(&text, &mut |n| self.expand_param(n, stack, strict))
            }
            _ => Ok(text),
        });
        let result = match result {
            Ok(v) if strict && p.name == "myorigin" && v.starts_with('/') => {
                match self.origin_file.as_ref().filter(|(f, _)| *f == v) {
                    Some((_, line)) => line.clone().ok_or(()),
                    None => first_line(&v).ok_or(()),
                }
                .or_else(|()| self.expand_param("myhostname", stack, strict))
            }
            other => other,
        };
        stack.pop();
        result
    }

    /// The declaration of `name`, or [`Error::Unknown`] naming it and
    /// this `main.toml`.
    fn param_named(&self, name: &str) -> Result<&'static Param, Error> {
        params::lookup(name).ok_or_else(|| Error::Unknown {
            path: self.file.clone(),
            line: 0,
            name: name.to_owned(),
        })
    }

    /// The explicit value of a parameter named at run time, unexpanded
    /// (`postconf -n`); `Ok(None)` when it has its default.
    pub fn lookup_raw(&self, name: &str) -> Result<Option<String>, Error> {
        let p = self.param_named(name)?;
        Ok(self.explicit.get(p.name).map(|s| s.text.clone()))
    }

    /// The value in effect of a parameter named at run time, unexpanded
    /// (`postconf NAME`).
    pub fn lookup_text(&self, name: &str) -> Result<String, Error> {
        Ok(self.text(self.param_named(name)?.name))
    }

    /// The value in effect of a parameter named at run time,
    /// `$name`-expanded (`postconf -x NAME`).
    pub fn lookup_expanded(&self, name: &str) -> Result<String, Error> {
        Ok(self.str(self.param_named(name)?.name))
    }

    /// The configuration directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `main.toml` path (it may not exist).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The explicit value (file or override) as Postfix text, unexpanded;
    /// `None` if the parameter has its default (`postconf -n`).
    pub fn raw(&self, name: &str) -> Option<String> {
        self.explicit.get(declared(name).name).map(|s| s.text.clone())
    }

    /// Where the explicit value of `name` was set: the file (or `-o`) and
    /// the line (0 for `-o`).
    pub fn origin(&self, name: &str) -> Option<(&Path, u32)> {
        self.explicit.get(declared(name).name).map(|s| (s.path.as_path(), s.line))
    }

    /// The default as Postfix text (`postconf -d`), with `myhostname` and
    /// `mydomain` computed from this machine's host name.
    pub fn default_text(&self, name: &str) -> String {
        match declared(name).name {
            "myhostname" => self.host_name.clone(),
            "mydomain" => domain_of(&self.host_name),
            _ => declared(name).default.to_owned(),
        }
    }

    /// The value in effect, unexpanded (`postconf NAME`): explicit, else
    /// the default.
    pub fn text(&self, name: &str) -> String {
        let p = declared(name);
        self.effective_text(p, &mut Vec::new()).unwrap_or_else(|_| self.default_text(name))
    }

    /// The value, `$name`-expanded (any kind; `postconf -x`).
    ///
    /// # Panics
    /// Only if `name` is not declared in `params.rs`, which is a bug.
    pub fn str(&self, name: &str) -> String {
        let p = declared(name);
        self.expand_param(p.name, &mut Vec::new(), true).unwrap_or_else(|_| self.text(name))
    }

    /// A list parameter, expanded and split on commas and whitespace. For
    /// lookup-table lists (`alias_maps`) a `hash:`/`lmdb:` prefix is removed.
    pub fn list(&self, name: &str) -> Vec<String> {
        let items = value::split_list(&self.str(name));
        if declared(name).kind == Kind::MapList {
            items
                .into_iter()
                .map(|i| match params::split_map_type(&i) {
                    Some((_, path)) => path.to_owned(),
                    None => i,
                })
                .collect()
        } else {
            items
        }
    }

    /// A boolean parameter.
    pub fn bool(&self, name: &str) -> bool {
        debug_assert_eq!(declared(name).kind, Kind::Bool, "{name} is not a Bool parameter");
        value::parse_bool(&self.text(name)).unwrap_or(false)
    }

    /// An integer parameter (Int or Size).
    pub fn int(&self, name: &str) -> u64 {
        debug_assert!(
            matches!(declared(name).kind, Kind::Int { .. } | Kind::Size),
            "{name} is not an Int parameter"
        );
        let text = self.text(name);
        if value::is_reference(&text) {
            return value::parse_u64(&self.str(name)).unwrap_or(0);
        }
        value::parse_u64(&text).unwrap_or(0)
    }

    /// A size parameter, in bytes.
    pub fn size(&self, name: &str) -> u64 {
        self.int(name)
    }

    /// A time parameter.
    pub fn duration(&self, name: &str) -> Duration {
        let unit = match declared(name).kind {
            Kind::Duration { unit } => unit,
            _ => {
                debug_assert!(false, "{name} is not a Duration parameter");
                params::TimeUnit::Seconds
            }
        };
        value::parse_duration(&self.text(name), unit).unwrap_or_default()
    }

    /// A path parameter, expanded; relative paths are relative to the
    /// configuration directory. Empty (not set) stays empty.
    pub fn path(&self, name: &str) -> PathBuf {
        let s = self.str(name);
        if s.is_empty() { PathBuf::new() } else { self.dir.join(s) }
    }

    /// `mynetworks`, parsed (it was checked at load).
    pub fn mynetworks(&self) -> crate::Networks {
        crate::Networks::parse(&self.list("mynetworks")).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(text: &str) -> Result<Main, Errors> {
        Main::from_str(Path::new("/etc/postern/main.toml"), text)
    }

    fn ok(text: &str) -> Main {
        load(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> String {
        load(text).expect_err("should fail").to_string()
    }

    #[test]
    fn a_main_cf_habit_gets_the_quoted_form_in_the_error() {
        let e = Main::from_str(Path::new("/etc/postern/main.toml"), "home_mailbox = Maildir/\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/postern/main.toml:1: "), "{e}");
        assert!(
            e.contains("write home_mailbox = \"Maildir/\", or let postconf -e write it"),
            "{e}"
        );
        assert_eq!(
            quoted_form(r#"smtpd_banner = Bem "Vindo" \ $myhostname"#).unwrap(),
            r#"smtpd_banner = "Bem \"Vindo\" \\ $myhostname""#
        );
        assert_eq!(quoted_form("x = \"already\""), None);
        assert_eq!(quoted_form("[section"), None);
    }

    #[test]
    fn defaults_without_file_contents() {
        let m = ok("");
        assert_eq!(m.dir(), Path::new("/etc/postern"));
        assert_eq!(m.raw("smtpd_banner"), None);
        assert_eq!(m.text("smtpd_banner"), "$myhostname ESMTP $mail_name");
        assert!(m.str("myhostname").contains('.'));
        assert_eq!(m.str("mydomain"), domain_of(&m.str("myhostname")));
        assert_eq!(m.int("smtpd_recipient_limit"), 1000);
        assert_eq!(m.size("message_size_limit"), 10_240_000);
        assert_eq!(m.duration("maximal_queue_lifetime"), Duration::from_secs(5 * 86_400));
        assert_eq!(m.duration("delay_warning_time"), Duration::ZERO);
        assert!(m.bool("append_at_myorigin"));
        assert!(!m.bool("biff"));
        assert_eq!(m.list("alias_maps"), ["/etc/aliases"]);
        assert_eq!(m.list("alias_database"), ["/etc/aliases"]);
        assert_eq!(m.path("queue_directory"), PathBuf::from("/var/spool/postern"));
        assert_eq!(m.path("passwd_file"), PathBuf::new());
        assert!(m.mynetworks().contains("::1".parse().unwrap()));
    }

    #[test]
    fn every_kind_from_toml() {
        let m = ok(r#"
            # comment
            myhostname = "mail.example.com"
            smtpd_helo_required = true
            disable_vrfy_command = "yes"
            smtpd_recipient_limit = 50
            message_size_limit = "20480000"
            smtpd_timeout = 60
            queue_run_delay = "5m"
            maximal_queue_lifetime = "2"
            mydestination = ["$myhostname", "localhost.$mydomain", "localhost"]
            mynetworks = "127.0.0.0/8, 192.168.0.0/16 [::1]/128"
            queue_directory = "queue"
            alias_maps = "hash:/etc/aliases, lmdb:/etc/more"
        "#);
        assert!(m.bool("smtpd_helo_required"));
        assert!(m.bool("disable_vrfy_command"));
        assert_eq!(m.int("smtpd_recipient_limit"), 50);
        assert_eq!(m.size("message_size_limit"), 20_480_000);
        assert_eq!(m.duration("smtpd_timeout"), Duration::from_secs(60));
        assert_eq!(m.raw("smtpd_timeout").as_deref(), Some("60s"));
        assert_eq!(m.duration("queue_run_delay"), Duration::from_secs(300));
        assert_eq!(m.duration("maximal_queue_lifetime"), Duration::from_secs(2 * 86_400));
        assert_eq!(
            m.list("mydestination"),
            ["mail.example.com", "localhost.example.com", "localhost"]
        );
        assert_eq!(
            m.raw("mydestination").as_deref(),
            Some("$myhostname, localhost.$mydomain, localhost")
        );
        assert!(m.mynetworks().contains("192.168.3.4".parse().unwrap()));
        assert_eq!(m.path("queue_directory"), PathBuf::from("/etc/postern/queue"));
        assert_eq!(m.list("alias_maps"), ["/etc/aliases", "/etc/more"]);
        assert_eq!(m.str("smtpd_banner"), "mail.example.com ESMTP Postern");
        assert_eq!(m.origin("smtpd_timeout"), Some((Path::new("/etc/postern/main.toml"), 8)));
    }

    #[test]
    fn expansion_rules() {
        let m = ok(r#"
            myhostname = "mx.example.org"
            smtpd_banner = "Bem Vindo - $myhostname $$5 ${mail_name?(${mail_name})}"
            mydomain = "${myhostname}"
            mailbox_command = "/usr/bin/procmail -a \"$EXTENSION\""
        "#);
        assert_eq!(m.str("smtpd_banner"), "Bem Vindo - mx.example.org $5 (Postern)");
        assert_eq!(m.str("mydomain"), "mx.example.org");
        // Raw parameters keep their $ for the daemon.
        assert_eq!(m.str("mailbox_command"), "/usr/bin/procmail -a \"$EXTENSION\"");
        // mydomain default follows the effective myhostname.
        let m = ok("myhostname = \"a.b.example\"");
        assert_eq!(m.str("mydomain"), "b.example");
        assert_eq!(m.str("myorigin"), "a.b.example");
        let m = ok("myhostname = \"single\"");
        assert_eq!(m.str("mydomain"), "localdomain");
    }

    #[test]
    fn expansion_loops_and_unknown_refs() {
        assert_eq!(
            err("myhostname = \"$mydomain\""),
            "parameter \"myhostname\": $name expansion loop"
        );
        let e = err("smtpd_banner = \"$smtp_helo_name\"\nsmtp_helo_name = \"$smtpd_banner\"");
        assert!(e.contains("expansion loop"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert_eq!(
            err("\n\nsmtpd_banner = \"$myhostnme ESMTP\""),
            "/etc/postern/main.toml:3: parameter \"smtpd_banner\": refers to unknown parameter \"$myhostnme\""
        );
        assert!(err("smtpd_banner = \"${myhostname\"").contains("missing '}'"));
    }

    #[test]
    fn errors_name_file_line_and_parameter_and_are_all_collected() {
        let e = err(
            "myhostname = \"x.y\"\nmessage_size_limit = \"ten\"\n\n\nmydestinaton = \"a\"\nbiff = 3\n",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines,
            [
                "/etc/postern/main.toml:2: parameter \"message_size_limit\": expected a size in bytes, found \"ten\"",
                "/etc/postern/main.toml:5: unknown parameter \"mydestinaton\"",
                "/etc/postern/main.toml:6: parameter \"biff\": expected yes or no (or true or false), found 3",
            ]
        );
        assert!(err("a = [").starts_with("/etc/postern/main.toml:1: "));
        assert!(err("[smtpd]\nx = 1").contains("unknown parameter \"smtpd\""));
        assert!(err("mydestination = 1").contains("expected a list of strings, found 1"));
        assert!(err("smtpd_recipient_limit = 0").contains("expected an integer from 1 to"));
        assert!(err("mynetworks = [\"10.0.0.1/8\"]").contains("non-null host address bits"));
        assert!(err("inet_protocols = \"ipv5\"").contains(":1: parameter \"inet_protocols\""));
    }

    #[test]
    fn lookups_by_outside_name_return_errors() {
        let m = ok("myhostname = \"mx.example.org\"");
        assert_eq!(m.lookup_raw("myhostname").unwrap().as_deref(), Some("mx.example.org"));
        assert_eq!(m.lookup_raw("smtpd_banner").unwrap(), None);
        assert_eq!(m.lookup_text("smtpd_banner").unwrap(), "$myhostname ESMTP $mail_name");
        assert_eq!(m.lookup_expanded("smtpd_banner").unwrap(), "mx.example.org ESMTP Postern");
        for e in [
            m.lookup_raw("mydestinaton").unwrap_err(),
            m.lookup_text("mydestinaton").unwrap_err(),
            m.lookup_expanded("mydestinaton").unwrap_err(),
        ] {
            assert_eq!(e.to_string(), "/etc/postern/main.toml: unknown parameter \"mydestinaton\"");
        }
    }

    #[test]
    fn overrides_win_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.toml"),
            "smtpd_banner = \"file\"\nmyhostname = \"h.example\"\n",
        )
        .unwrap();
        let m = Main::load(dir.path()).unwrap();
        assert_eq!(m.str("smtpd_banner"), "file");
        let o = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let m = Main::load_with_overrides(
            dir.path(),
            &[o("smtpd_banner", "$myhostname override"), o("smtpd_timeout", "10")],
        )
        .unwrap();
        assert_eq!(m.str("smtpd_banner"), "h.example override");
        assert_eq!(m.duration("smtpd_timeout"), Duration::from_secs(10));
        let e =
            Main::load_with_overrides(dir.path(), &[o("smtpd_timeout", "ten"), o("nosuch", "1")])
                .unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert!(e.to_string().starts_with("-o: parameter \"smtpd_timeout\""), "{e}");
    }

    #[test]
    fn missing_file_is_defaults_unreadable_is_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Main::load(dir.path()).is_ok());
        std::fs::create_dir(dir.path().join("main.toml")).unwrap();
        let e = Main::load(dir.path()).unwrap_err();
        assert!(matches!(e.0[0], Error::Io { .. } | Error::Syntax { .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.toml"), b"mail_name = \"\xff\"").unwrap();
        assert!(Main::load(dir.path()).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn myorigin_from_file_and_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let mailname = dir.path().join("mailname");
        std::fs::write(&mailname, "example.net\nignored\n").unwrap();
        let text = format!("myhostname = \"h.example\"\nmyorigin = \"{}\"", mailname.display());
        let m = Main::from_str(&dir.path().join("main.toml"), &text).unwrap();
        assert_eq!(m.str("myorigin"), "example.net");
        let text =
            format!("myhostname = \"h.example\"\nmyorigin = \"{}/nosuch\"", dir.path().display());
        let m = Main::from_str(&dir.path().join("main.toml"), &text).unwrap();
        assert_eq!(m.str("myorigin"), "h.example");
    }

    #[test]
    fn host_name_rules() {
        assert_eq!(qualify_host_name("box"), "box.localdomain");
        assert_eq!(qualify_host_name("mail.example.com."), "mail.example.com");
        assert_eq!(qualify_host_name(""), "localhost.localdomain");
        assert_eq!(domain_of("mail.example.com"), "example.com");
        assert_eq!(domain_of("box"), "localdomain");
    }

    proptest! {
        #[test]
        fn from_str_never_panics(s in any::<String>()) {
            let _ = load(&s);
        }

        #[test]
        fn from_str_never_panics_on_tomlish(s in "([a-z_]{1,12} = (\"[$a-z{}()?:, ]{0,16}\"|[0-9]{1,3}|true|\\[\"[a-z$]{0,5}\"\\])\n){0,6}") {
            if let Ok(m) = load(&s) {
                for p in params::PARAMS {
                    let _ = m.str(p.name);
                }
            }
        }
    }
}
