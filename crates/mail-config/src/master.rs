//! `master.toml`: the service table, master.cf's columns as TOML fields.
//!
//! ```toml
//! [[service]]
//! name = "smtpd"
//! type = "inet"
//! listen = ["127.0.0.1:2525"]
//! maxproc = 2
//! [service.options]
//! smtpd_banner = "$myhostname ESMTP"
//! ```
//!
//! Fields and defaults: `name` and `type` are required; `listen` (inet:
//! required, `"host:port"`, `"[::1]:25"`, or a bare port or service name
//! meaning every `inet_interfaces` address; unix: omitted means
//! `private/<name>` or `public/<name>`), `private` (true), `unpriv` (true),
//! `chroot` (false), `wakeup` (0, none), `maxproc` (1: Postern workers are
//! asynchronous, one process serves many connections), `spawn`
//! (`"always"`; `"on-demand"` starts workers as connections wait, up to
//! `maxproc`), `command` (the
//! name), `args` ([]), `options` (Postfix `-o` overrides, checked against
//! the parameter table).

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Item, Table, Value};

use crate::error::{Error, Errors, line_of};
use crate::main_file::{Main, parse_toml, read_bounded};
use crate::params::{self, TimeUnit};
use crate::value;

/// The name of the service table file in the configuration directory.
pub const MASTER_FILE: &str = "master.toml";

/// The largest `maxproc`.
const MAX_PROCS: u32 = 1000;

/// How a service is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// A TCP listener.
    Inet,
    /// A Unix stream socket under the queue directory.
    Unix,
}

impl ServiceKind {
    /// master.cf's word for the type.
    pub fn word(self) -> &'static str {
        match self {
            ServiceKind::Inet => "inet",
            ServiceKind::Unix => "unix",
        }
    }
}

/// One `[[service]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    /// Service name. Two services may share it when their types differ
    /// (master.cf's `smtp inet` and `smtp unix`).
    pub name: String,
    /// The service's identity in master's tables, status and logs: `name`
    /// when no other service has that name, else `name/type` (`smtp/inet`,
    /// `smtp/unix`), as `postconf -M` writes a master.cf entry.
    pub id: String,
    /// inet or unix.
    pub kind: ServiceKind,
    /// inet: listen specs (see [`parse_listen`]); unix: socket paths
    /// relative to the queue directory, usually empty.
    pub listen: Vec<String>,
    /// unix: the socket lives in `private/` (true) or `public/` (false).
    pub private: bool,
    /// Run as `mail_owner` (true) or stay root (false, local delivery).
    pub unpriv: bool,
    /// Chroot into the queue directory.
    pub chroot: bool,
    /// Send a wake-up trigger this often.
    pub wakeup: Option<Duration>,
    /// Worker processes sharing the listener, 1..=1000 (with
    /// [`Spawn::OnDemand`], the most at once).
    pub maxproc: u32,
    /// Whether master keeps `maxproc` workers running or starts them as
    /// connections arrive.
    pub spawn: Spawn,
    /// Program name in `daemon_directory`.
    pub command: String,
    /// Extra arguments.
    pub args: Vec<String>,
    /// `-o name=value` overrides in Postfix text form, in file order.
    pub options: Vec<(String, String)>,
}

impl ServiceDef {
    /// The socket path of a unix service, relative to the queue
    /// directory: the first `listen` entry, else `private/<name>` or
    /// `public/<name>`.
    pub fn unix_socket(&self) -> PathBuf {
        match self.listen.first() {
            Some(p) => PathBuf::from(p),
            None => Path::new(if self.private { "private" } else { "public" }).join(&self.name),
        }
    }
}

/// When master starts a service's workers (`spawn` in master.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spawn {
    /// `"always"` (the default): `maxproc` workers run all the time,
    /// each serving many connections.
    Always,
    /// `"on-demand"`: master watches the listener and starts a worker
    /// when a connection is waiting and none of the service's workers is
    /// idle, up to `maxproc` at once (Postfix's master does this for
    /// every service). pop3d's mail service: each worker serves one
    /// session and exits.
    OnDemand,
}

/// A parsed inet listen spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// The address or host name; `None` means every `inet_interfaces`
    /// address.
    pub host: Option<String>,
    /// The port; 0 asks the kernel for any free port.
    pub port: u16,
}

/// Well-known service names accepted in place of a port number.
const SERVICES: &[(&str, u16)] = &[
    ("smtp", 25),
    ("submission", 587),
    ("submissions", 465),
    ("smtps", 465),
    ("pop3", 110),
    ("pop3s", 995),
    ("imap", 143),
    ("imap2", 143),
    ("imaps", 993),
];

fn parse_port(p: &str) -> Result<u16, String> {
    if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
        return p.parse().map_err(|_| format!("port \"{p}\" is larger than 65535"));
    }
    SERVICES.iter().find(|(n, _)| n.eq_ignore_ascii_case(p)).map(|&(_, port)| port).ok_or_else(
        || format!("unknown port or service name \"{}\"", p.chars().take(40).collect::<String>()),
    )
}

/// Parses an inet listen spec: `"host:port"`, `"[::1]:25"`, or a bare port
/// or service name (`"25"`, `"smtp"`, also `"*:25"`).
pub fn parse_listen(spec: &str) -> Result<ListenSpec, String> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (addr, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("expected \"[address]:port\", found \"{spec}\""))?;
        addr.parse::<IpAddr>().map_err(|_| format!("\"{addr}\" is not an IP address"))?;
        return Ok(ListenSpec { host: Some(addr.to_owned()), port: parse_port(port)? });
    }
    match spec.rsplit_once(':') {
        None => Ok(ListenSpec { host: None, port: parse_port(spec)? }),
        Some((host, _)) if host.contains(':') => {
            Err(format!("write IPv6 addresses in brackets, as \"[::1]:25\", found \"{spec}\""))
        }
        Some((host, port)) => {
            let port = parse_port(port)?;
            // "*:25" and ":25" mean every inet_interfaces address, like "25".
            if host.is_empty() || host == "*" {
                return Ok(ListenSpec { host: None, port });
            }
            if host.parse::<IpAddr>().is_err() && !params::is_host_name(host) {
                return Err(format!("\"{host}\" is not an address or host name"));
            }
            Ok(ListenSpec { host: Some(host.to_owned()), port })
        }
    }
}

/// The loaded service table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterFile {
    /// Services in file order.
    pub services: Vec<ServiceDef>,
}

impl MasterFile {
    /// Reads `dir/master.toml`; a missing file is an error (master has
    /// nothing to run).
    pub fn load(dir: &Path) -> Result<MasterFile, Errors> {
        let path = dir.join(MASTER_FILE);
        match read_bounded(&path)? {
            Some(text) => MasterFile::from_str(&path, &text),
            None => Err(Error::Io { path, source: std::io::ErrorKind::NotFound.into() }.into()),
        }
    }

    /// Parses `text` as `master.toml`; `path` is used in messages.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(path: &Path, text: &str) -> Result<MasterFile, Errors> {
        let doc = parse_toml(path, text)?;
        let mut errors = Vec::new();
        let mut services = Vec::new();
        let line_of_span =
            |span: Option<std::ops::Range<usize>>| span.map_or(0, |s| line_of(text, s.start));
        for (key, item) in doc.as_table().iter() {
            let line = line_of_span(doc.as_table().key(key).and_then(|k| k.span()));
            match (key, item) {
                ("service", Item::ArrayOfTables(arr)) => {
                    for (i, t) in arr.iter().enumerate() {
                        let mut ctx = Ctx {
                            path,
                            text,
                            errors: &mut errors,
                            service: format!("#{}", i + 1),
                            line: 0,
                        };
                        ctx.line = line_of_span(t.span());
                        if let Some(def) = parse_service(&mut ctx, t) {
                            services.push(def);
                        }
                    }
                }
                ("service", _) => errors.push(Error::Syntax {
                    path: path.to_owned(),
                    line,
                    message: "\"service\" must be written as [[service]] tables".to_owned(),
                }),
                _ => errors.push(Error::Syntax {
                    path: path.to_owned(),
                    line,
                    message: format!("unknown key \"{key}\" (expected [[service]] tables)"),
                }),
            }
        }
        let mut seen = HashSet::new();
        for def in &services {
            if !seen.insert((def.name.as_str(), def.kind)) {
                errors.push(Error::Service {
                    path: path.to_owned(),
                    line: service_line(text, &def.name),
                    service: def.name.clone(),
                    message: format!(
                        "duplicate service name and type ({}/{})",
                        def.name,
                        def.kind.word()
                    ),
                });
            }
        }
        let shared: HashSet<String> = services
            .iter()
            .filter(|d| services.iter().filter(|o| o.name == d.name).count() > 1)
            .map(|d| d.name.clone())
            .collect();
        for def in &mut services {
            if shared.contains(&def.name) {
                def.id = format!("{}/{}", def.name, def.kind.word());
            }
        }
        if errors.is_empty() { Ok(MasterFile { services }) } else { Err(Errors(errors)) }
    }

    /// The service called `name`: by its id (`smtp/unix`), else the
    /// first of that name. Clients that connect (`socket_path`) want the
    /// unix one, so they use [`MasterFile::unix_service`].
    pub fn service(&self, name: &str) -> Option<&ServiceDef> {
        self.services
            .iter()
            .find(|s| s.id == name)
            .or_else(|| self.services.iter().find(|s| s.name == name))
    }

    /// The unix service called `name` (or with the id `name`), the one a
    /// client connects to even when an inet service shares the name.
    pub fn unix_service(&self, name: &str) -> Option<&ServiceDef> {
        self.services
            .iter()
            .find(|s| s.kind == ServiceKind::Unix && (s.name == name || s.id == name))
    }

    /// Where clients reach the unix service `name`: the one function
    /// every sender (and master, which binds it) uses, so a socket moved
    /// or a service renamed in master.toml cannot leave a client knocking
    /// on an old path. The error names the service and says who needs it.
    pub fn socket_path(&self, queue_dir: &Path, name: &str) -> Result<PathBuf, String> {
        match self.unix_service(name).or_else(|| self.service(name)) {
            Some(def) if def.kind == ServiceKind::Unix => Ok(queue_dir.join(def.unix_socket())),
            Some(_) => Err(format!(
                "service \"{name}\" in master.toml is not a unix service ({})",
                needed_by(name)
            )),
            None => Err(format!(
                "no service \"{name}\" in master.toml ({}); services are: {}",
                needed_by(name),
                self.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// Errors for the services other processes reach by name
    /// ([`CONNECTED_SERVICES`]) that are missing or not unix services.
    pub fn check_connected(&self, path: &Path) -> Vec<Error> {
        CONNECTED_SERVICES
            .iter()
            .filter_map(|(name, _)| {
                let message = self.socket_path(Path::new(""), name).err()?;
                Some(Error::Service {
                    path: path.to_owned(),
                    line: 0,
                    service: (*name).to_owned(),
                    message,
                })
            })
            .collect()
    }
}

/// The unix services other Postern processes connect to by these names,
/// and who does. Renaming one in master.toml breaks them, so `postern
/// check` and master's start and reload refuse a table without them.
pub const CONNECTED_SERVICES: &[(&str, &str)] = &[
    ("qmgr", "smtpd, pickup, local-delivery, master, sendmail and postqueue send it triggers"),
    ("pickup", "sendmail and master send it triggers"),
    ("local", "qmgr hands it local deliveries"),
];

fn needed_by(name: &str) -> String {
    match CONNECTED_SERVICES.iter().find(|(n, _)| *n == name) {
        Some((_, who)) => format!("{who} by this name"),
        None => "a client looks it up by this name".to_owned(),
    }
}

/// The line of the last `name = "<name>"` in `text`, for duplicate
/// reports (the second occurrence is the one to fix).
fn service_line(text: &str, name: &str) -> u32 {
    let needle = format!("\"{name}\"");
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            l.starts_with("name") && l.contains(&needle)
        })
        .map(|(i, _)| u32::try_from(i + 1).unwrap_or(0))
        .last()
        .unwrap_or(0)
}

/// Error-reporting context for one service entry.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    errors: &'a mut Vec<Error>,
    service: String,
    line: u32,
}

impl Ctx<'_> {
    fn err(&mut self, line: u32, message: String) {
        let line = if line == 0 { self.line } else { line };
        self.errors.push(Error::Service {
            path: self.path.to_owned(),
            line,
            service: self.service.clone(),
            message,
        });
    }

    fn key_line(&self, t: &Table, key: &str) -> u32 {
        t.key(key).and_then(|k| k.span()).map_or(0, |s| line_of(self.text, s.start))
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.value().chars().take(60).collect::<String>()),
        Value::Integer(i) => i.value().to_string(),
        Value::Boolean(b) => b.value().to_string(),
        Value::Float(f) => f.value().to_string(),
        Value::Datetime(d) => d.value().to_string(),
        Value::Array(_) => "an array".to_owned(),
        Value::InlineTable(_) => "a table".to_owned(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s != "."
        && s != ".."
}

fn parse_service(ctx: &mut Ctx<'_>, t: &Table) -> Option<ServiceDef> {
    let before = ctx.errors.len();
    // Name first, so that later errors can say which service they are about.
    match t.get("name").and_then(Item::as_value) {
        Some(Value::String(s)) if valid_name(s.value()) => ctx.service = s.value().clone(),
        Some(v) => {
            let l = ctx.key_line(t, "name");
            ctx.err(
                l,
                format!(
                    "field \"name\": expected letters, digits, '-', '_' or '.', found {}",
                    shown(v)
                ),
            );
        }
        None => ctx.err(0, "missing field \"name\"".to_owned()),
    }
    let mut def = ServiceDef {
        name: ctx.service.clone(),
        id: ctx.service.clone(),
        kind: ServiceKind::Unix,
        listen: Vec::new(),
        private: true,
        unpriv: true,
        chroot: false,
        wakeup: None,
        maxproc: 1,
        spawn: Spawn::Always,
        command: ctx.service.clone(),
        args: Vec::new(),
        options: Vec::new(),
    };
    let mut kind = None;
    for (key, item) in t.iter() {
        let line = ctx.key_line(t, key);
        if key == "options" {
            match item {
                Item::Table(opts) => parse_options(ctx, opts, None, &mut def.options),
                Item::Value(Value::InlineTable(opts)) => {
                    parse_options(ctx, &opts.clone().into_table(), Some(line), &mut def.options)
                }
                _ => ctx.err(line, "field \"options\": expected a table of parameters".to_owned()),
            }
            continue;
        }
        let Some(v) = item.as_value() else {
            ctx.err(line, format!("field \"{key}\": expected a value, found a table"));
            continue;
        };
        let bad = |ctx: &mut Ctx<'_>, what: &str| {
            ctx.err(line, format!("field \"{key}\": expected {what}, found {}", shown(v)))
        };
        match key {
            "name" => {}
            "type" => match v.as_str() {
                Some("inet") => kind = Some(ServiceKind::Inet),
                Some("unix") => kind = Some(ServiceKind::Unix),
                _ => bad(ctx, "\"inet\" or \"unix\""),
            },
            "listen" => match strings(v) {
                Some(l) => def.listen = l,
                None => bad(ctx, "a list of strings"),
            },
            "private" | "unpriv" | "chroot" => match v.as_bool() {
                Some(b) if key == "private" => def.private = b,
                Some(b) if key == "unpriv" => def.unpriv = b,
                Some(b) => def.chroot = b,
                None => bad(ctx, "true or false"),
            },
            "wakeup" => match v {
                Value::Integer(i) if *i.value() >= 0 => {
                    def.wakeup = Some(Duration::from_secs(i.value().unsigned_abs()))
                        .filter(|d| !d.is_zero());
                }
                Value::String(s) => match value::parse_duration(s.value(), TimeUnit::Seconds) {
                    Some(d) => def.wakeup = Some(d).filter(|d| !d.is_zero()),
                    None => bad(ctx, "seconds or a time such as 60s or 5m"),
                },
                _ => bad(ctx, "seconds or a time such as 60s or 5m"),
            },
            "maxproc" => match v
                .as_integer()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_PROCS).contains(n))
            {
                Some(n) => def.maxproc = n,
                None => bad(ctx, &format!("an integer from 1 to {MAX_PROCS}")),
            },
            "spawn" => match v.as_str() {
                Some("always") => def.spawn = Spawn::Always,
                Some("on-demand") => def.spawn = Spawn::OnDemand,
                _ => bad(ctx, "\"always\" or \"on-demand\""),
            },
            "command" => match v.as_str() {
                Some(c) if valid_name(c) => def.command = c.to_owned(),
                _ => bad(ctx, "a program name in daemon_directory (no '/')"),
            },
            "args" => match strings(v) {
                Some(a) => def.args = a,
                None => bad(ctx, "a list of strings"),
            },
            _ => ctx.err(line, format!("unknown field \"{key}\"")),
        }
    }
    match kind {
        Some(k) => def.kind = k,
        None if t.contains_key("type") => {}
        None => ctx.err(0, "missing field \"type\" (\"inet\" or \"unix\")".to_owned()),
    }
    let listen_line = ctx.key_line(t, "listen");
    match def.kind {
        ServiceKind::Inet if def.listen.is_empty() && kind.is_some() => {
            ctx.err(
                listen_line,
                "an inet service needs \"listen\" (for example [\"25\"] or [\"127.0.0.1:2525\"])"
                    .to_owned(),
            );
        }
        ServiceKind::Inet => {
            for l in &def.listen {
                if let Err(m) = parse_listen(l) {
                    ctx.err(listen_line, format!("field \"listen\": {m}"));
                }
            }
        }
        ServiceKind::Unix => {
            for l in &def.listen {
                let ok = !l.is_empty()
                    && !l.contains('\0')
                    && Path::new(l).is_relative()
                    && Path::new(l)
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)));
                if !ok {
                    ctx.err(listen_line, format!("field \"listen\": \"{l}\" is not a socket path inside the queue directory"));
                }
            }
        }
    }
    (ctx.errors.len() == before).then_some(def)
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.value().clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

/// Checks `[service.options]`: declared names and values valid for their
/// kind, converted to Postfix text. `inline_line` is the line of an inline
/// `options = { ... }` table, whose keys have no spans of their own.
fn parse_options(
    ctx: &mut Ctx<'_>,
    opts: &Table,
    inline_line: Option<u32>,
    out: &mut Vec<(String, String)>,
) {
    for (key, item) in opts.iter() {
        let line = inline_line.unwrap_or_else(|| ctx.key_line(opts, key));
        let Some(param) = params::lookup(key) else {
            ctx.err(line, format!("option: unknown parameter \"{key}\""));
            continue;
        };
        match item.as_value().map(|v| value::toml_to_text(param.kind, v)) {
            Some(Ok(text)) => out.push((param.name.to_owned(), text)),
            Some(Err(m)) => ctx.err(line, format!("option: parameter \"{key}\": {m}")),
            None => ctx
                .err(line, format!("option: parameter \"{key}\": expected a value, found a table")),
        }
    }
}

/// Mail for `relay_domains` goes to the service `relay_transport` names;
/// a master.toml from before the `relay` service would defer all of it.
fn check_relay_transport(main: &Main, master: &MasterFile, path: &Path) -> Option<Error> {
    if main.list("relay_domains").is_empty() {
        return None;
    }
    let value = main.str("relay_transport");
    let name = value.split(':').next().unwrap_or_default().trim();
    let name = if name.is_empty() { "relay" } else { name };
    if master.services.iter().any(|s| s.name == name && s.kind == ServiceKind::Unix) {
        return None;
    }
    Some(Error::Service {
        path: path.to_owned(),
        line: 0,
        service: name.to_owned(),
        message: "relay_transport sends mail for relay_domains to this unix service, which is \
                  not defined; add it (type = \"unix\", command = \"smtp-client\", as in the \
                  default master.toml) or set relay_transport = smtp"
            .to_owned(),
    })
}

/// Checks `main.toml` and `master.toml` in `dir` together (`postern
/// check`): each file, then every service's options applied over
/// `main.toml`, which finds `$name` loops an option introduces.
pub fn check(dir: &Path) -> Result<(), Errors> {
    let mut errors = Vec::new();
    let main = Main::load(dir).map_err(|e| errors.extend(e.0)).ok();
    let master = MasterFile::load(dir).map_err(|e| errors.extend(e.0)).ok();
    if let Some(master) = &master {
        errors.extend(master.check_connected(&dir.join(MASTER_FILE)));
    }
    if let (Some(main), Some(master)) = (&main, &master) {
        errors.extend(check_relay_transport(main, master, &dir.join(MASTER_FILE)));
    }
    if let (Some(_), Some(master)) = (main, master) {
        let path = dir.join(MASTER_FILE);
        for s in &master.services {
            if s.options.is_empty() {
                continue;
            }
            if let Err(e) = Main::load_with_overrides(dir, &s.options) {
                errors.extend(e.0.into_iter().map(|e| Error::Service {
                    path: path.clone(),
                    line: 0,
                    service: s.name.clone(),
                    message: format!("with its options: {e}"),
                }));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Errors(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"
# The SMTP server.
[[service]]
name = "smtpd"
type = "inet"
listen = ["127.0.0.1:2525", "[::1]:2525", "smtp"]
maxproc = 2
[service.options]
smtpd_banner = "$myhostname test"
smtpd_timeout = 60

[[service]]
name = "qmgr"
type = "unix"
wakeup = 300
unpriv = true

[[service]]
name = "local"
type = "unix"
unpriv = false
command = "local-delivery"
args = ["-v"]

[[service]]
name = "pickup"
type = "unix"
private = false
wakeup = "1m"
options = { syslog_name = "postern/pickup" }
"#;

    fn parse(text: &str) -> Result<MasterFile, Errors> {
        MasterFile::from_str(Path::new("/etc/postern/master.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("should fail").to_string()
    }

    #[test]
    fn good_file() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.services.len(), 4);
        let smtpd = m.service("smtpd").unwrap();
        assert_eq!(smtpd.kind, ServiceKind::Inet);
        assert_eq!(smtpd.maxproc, 2);
        assert_eq!(smtpd.command, "smtpd");
        assert_eq!(
            smtpd.options,
            [
                ("smtpd_banner".to_owned(), "$myhostname test".to_owned()),
                ("smtpd_timeout".to_owned(), "60s".to_owned())
            ]
        );
        let qmgr = m.service("qmgr").unwrap();
        assert_eq!(qmgr.wakeup, Some(Duration::from_secs(300)));
        assert_eq!(qmgr.unix_socket(), PathBuf::from("private/qmgr"));
        let local = m.service("local").unwrap();
        assert!(!local.unpriv);
        assert_eq!(local.command, "local-delivery");
        assert_eq!(local.args, ["-v"]);
        let pickup = m.service("pickup").unwrap();
        assert_eq!(pickup.unix_socket(), PathBuf::from("public/pickup"));
        assert_eq!(pickup.wakeup, Some(Duration::from_secs(60)));
        assert_eq!(pickup.options, [("syslog_name".to_owned(), "postern/pickup".to_owned())]);
    }

    #[test]
    fn spawn_mode() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.service("smtpd").unwrap().spawn, Spawn::Always);
        let text = "[[service]]\nname = \"pop3-mail\"\ntype = \"unix\"\nspawn = \"on-demand\"\nmaxproc = 100\n";
        let m = parse(text).unwrap();
        assert_eq!(m.service("pop3-mail").unwrap().spawn, Spawn::OnDemand);
        let e = err("[[service]]\nname = \"a\"\ntype = \"unix\"\nspawn = \"lazy\"\n");
        assert_eq!(
            e,
            "/etc/postern/master.toml:4: service \"a\": field \"spawn\": expected \"always\" or \"on-demand\", found \"lazy\""
        );
    }

    #[test]
    fn socket_paths_come_from_the_service_table() {
        let m = parse(GOOD).unwrap();
        let q = Path::new("/var/spool/postern");
        assert_eq!(m.socket_path(q, "pickup").unwrap(), q.join("public/pickup"));
        assert_eq!(m.socket_path(q, "local").unwrap(), q.join("private/local"));
        assert!(m.check_connected(Path::new("master.toml")).is_empty());
        // A renamed service is named in the error, with who needs it.
        let renamed = parse(&GOOD.replace("name = \"qmgr\"", "name = \"queue-manager\"")).unwrap();
        let e = renamed.socket_path(q, "qmgr").unwrap_err();
        assert!(e.starts_with("no service \"qmgr\" in master.toml (smtpd, pickup"), "{e}");
        assert!(e.contains("services are: smtpd, queue-manager, local, pickup"), "{e}");
        let errs = renamed.check_connected(Path::new("/etc/postern/master.toml"));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with("/etc/postern/master.toml"), "{}", errs[0]);
        // A listen path moves the socket for master and clients alike.
        let moved =
            parse(&GOOD.replace("wakeup = 300\n", "wakeup = 300\nlisten = [\"public/q\"]\n"))
                .unwrap();
        assert_eq!(moved.socket_path(q, "qmgr").unwrap(), q.join("public/q"));
        assert!(m.socket_path(q, "smtpd").unwrap_err().contains("not a unix service"));
    }

    #[test]
    fn one_name_for_an_inet_and_a_unix_service() {
        let both = format!(
            "{GOOD}\n[[service]]\nname = \"smtpd\"\ntype = \"unix\"\ncommand = \"smtp-client\"\n"
        );
        let m = parse(&both).unwrap();
        let q = Path::new("/q");
        // Clients connect to the unix one; each has its own identity.
        assert_eq!(m.socket_path(q, "smtpd").unwrap(), q.join("private/smtpd"));
        let ids: Vec<&str> =
            m.services.iter().filter(|s| s.name == "smtpd").map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["smtpd/inet", "smtpd/unix"]);
        assert_eq!(m.service("smtpd/unix").map(|s| s.command.as_str()), Some("smtp-client"));
        assert_eq!(m.service("local").map(|s| s.id.as_str()), Some("local"));
    }

    #[test]
    fn listen_specs() {
        let l = |s| parse_listen(s);
        assert_eq!(
            l("127.0.0.1:2525").unwrap(),
            ListenSpec { host: Some("127.0.0.1".into()), port: 2525 }
        );
        assert_eq!(l("[::1]:25").unwrap(), ListenSpec { host: Some("::1".into()), port: 25 });
        assert_eq!(l("25").unwrap(), ListenSpec { host: None, port: 25 });
        assert_eq!(l("*:smtp").unwrap(), ListenSpec { host: None, port: 25 });
        assert_eq!(l("submission").unwrap().port, 587);
        assert_eq!(
            l("localhost:0").unwrap(),
            ListenSpec { host: Some("localhost".into()), port: 0 }
        );
        assert!(l("::1:25").unwrap_err().contains("brackets"));
        assert!(l("70000").is_err());
        assert!(l("127.0.0.1:").is_err());
        assert!(l("[::1]25").is_err());
        assert!(l("[nothost]:25").is_err());
        assert!(l("bad host:25").is_err());
        assert!(l("nosuchservice").is_err());
    }

    #[test]
    fn validation_errors_name_file_line_service() {
        let e = err("[[service]]\nname = \"smtpd\"\ntype = \"tcp\"\nlisten = [\"25\"]\n");
        assert_eq!(
            e,
            "/etc/postern/master.toml:3: service \"smtpd\": field \"type\": expected \"inet\" or \"unix\", found \"tcp\""
        );
        let e = err("[[service]]\nname = \"a\"\ntype = \"unix\"\nmaxproc = 0\n");
        assert!(e.starts_with("/etc/postern/master.toml:4: service \"a\": field \"maxproc\": expected an integer from 1 to 1000"), "{e}");
        assert!(
            err("[[service]]\nname = \"a\"\ntype = \"unix\"\nmaxproc = 1001\n").contains("maxproc")
        );
        let e = err(
            "[[service]]\nname = \"a\"\ntype = \"unix\"\n[[service]]\nname = \"a\"\ntype = \"unix\"\n",
        );
        assert_eq!(
            e,
            "/etc/postern/master.toml:5: service \"a\": duplicate service name and type (a/unix)"
        );
        let e = err(
            "[[service]]\nname = \"a\"\ntype = \"unix\"\n[service.options]\nsmtpd_timeout = \"soon\"\nmydestinaton = \"x\"\n",
        );
        let lines: Vec<_> = e.lines().collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert!(lines[0].starts_with("/etc/postern/master.toml:5: service \"a\": option: parameter \"smtpd_timeout\": expected a time"));
        assert_eq!(
            lines[1],
            "/etc/postern/master.toml:6: service \"a\": option: unknown parameter \"mydestinaton\""
        );
        assert!(
            err("[[service]]\ntype = \"unix\"\n")
                .contains("service \"#1\": missing field \"name\"")
        );
        assert!(err("[[service]]\nname = \"a\"\n").contains("missing field \"type\""));
        assert!(err("[[service]]\nname = \"a\"\ntype = \"inet\"\n").contains("needs \"listen\""));
        assert!(
            err("[[service]]\nname = \"a\"\ntype = \"unix\"\nlisten = [\"../x\"]\n")
                .contains("inside the queue directory")
        );
        assert!(
            err("[[service]]\nname = \"a\"\ntype = \"unix\"\nmaxprocs = 2\n")
                .contains("unknown field \"maxprocs\"")
        );
        assert!(
            err("[[service]]\nname = \"a\"\ntype = \"unix\"\ncommand = \"/bin/sh\"\n")
                .contains("no '/'")
        );
        assert!(err("[[service]]\nname = \"a/b\"\ntype = \"unix\"\n").contains("field \"name\""));
        assert!(err("services = 1").contains("unknown key \"services\""));
        assert!(err("service = 1").contains("[[service]]"));
        assert!(err("[[service]\n").starts_with("/etc/postern/master.toml:1: "));
    }

    #[test]
    fn all_errors_collected() {
        let e = err("[[service]]\nname = \"a\"\ntype = \"x\"\nmaxproc = -1\nchroot = \"yes\"\n");
        assert_eq!(e.lines().count(), 3, "{e}");
    }

    #[test]
    fn check_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = check(dir.path()).unwrap_err().to_string();
        assert!(err.contains("master.toml"), "{err}");
        std::fs::write(dir.path().join(MASTER_FILE), GOOD).unwrap();
        check(dir.path()).unwrap();
        std::fs::write(dir.path().join("main.toml"), "smtp_helo_name = \"$smtpd_banner\"\n")
            .unwrap();
        std::fs::write(
            dir.path().join(MASTER_FILE),
            "[[service]]\nname = \"s\"\ntype = \"unix\"\n[service.options]\nsmtpd_banner = \"$smtp_helo_name\"\n",
        )
        .unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("service \"s\": with its options: parameter \"smtp"), "{e}");
        assert!(e.ends_with("$name expansion loop"), "{e}");
    }

    #[test]
    fn relay_domains_need_the_relay_transport_service() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MASTER_FILE), GOOD).unwrap();
        std::fs::write(dir.path().join("main.toml"), "relay_domains = \"b.example\"\n").unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("service \"relay\": relay_transport sends mail"), "{e}");
        let with_relay = format!(
            "{GOOD}\n[[service]]\nname = \"relay\"\ntype = \"unix\"\ncommand = \"smtp-client\"\n"
        );
        std::fs::write(dir.path().join(MASTER_FILE), with_relay).unwrap();
        check(dir.path()).unwrap();
        std::fs::write(dir.path().join(MASTER_FILE), GOOD).unwrap();
        std::fs::write(
            dir.path().join("main.toml"),
            "relay_domains = \"b.example\"\nrelay_transport = \"local:\"\n",
        )
        .unwrap();
        check(dir.path()).unwrap();
    }

    proptest! {
        #[test]
        fn from_str_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn listen_never_panics(s in any::<String>()) {
            let _ = parse_listen(&s);
        }
    }
}
