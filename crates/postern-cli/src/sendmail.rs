//! `sendmail`: the Sendmail-compatible submission command (Postfix
//! sendmail(1)), also run as `mailq` (= `postqueue -p`) and `newaliases`
//! (= `sendmail -bi`) through argv\[0\].
//!
//! In the default mode (`-bm`) it reads a message from standard input,
//! turns CRLF into LF, stops at EOF or, unless `-i`/`-oi` is given, at a
//! line with only a dot, and writes a maildrop file
//! (`mail_queue::Maildrop`) into `queue_directory/maildrop/`, itself where
//! it may (root, a development instance) and else through the setgid
//! `$command_directory/postdrop` (a system install's 1730 `maildrop/`;
//! see the `postdrop` module). Then it
//! pokes pickup through `public/pickup`; pickup also scans on its own
//! timer, so a failed poke only delays the mail. Exit status 0 means the
//! maildrop file is on stable storage. Nothing here parses headers beyond
//! `-t`'s check that some recipient exists; qualification, `Received:`,
//! `Message-Id:` and the rest are pickup's (cleanup's) job.
//!
//! `-bs` speaks SMTP on standard input and output (RFC 5321 through the
//! `smtp-proto` state machine) and writes one maildrop file per message.
//!
//! `newaliases` has no database to build: local delivery rereads the alias
//! files whenever they change. It checks the files named by
//! `alias_database`, prints their warnings and exits 0 when they load.
//!
//! Exit codes are sysexits(3), as Postfix uses them: 64 usage or no
//! recipients, 65 message too big, 75 cannot write the maildrop file,
//! 78 bad configuration.

use mail_config::{Main, settings};
use mail_ipc::trigger::Trigger;
use mail_queue::{Maildrop, Queue};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// sysexits(3) codes.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_NOUSER: u8 = 67;
const EX_SOFTWARE: u8 = 70;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

const USAGE: &str = "usage: sendmail [-t] [-i] [-f sender] [-F full_name] [-C config_dir] \
[-bm | -bs | -bp | -bi] [--] [recipient ...]";

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-bm`: read a message and queue it (the default).
    Deliver,
    /// `-bs`: SMTP on stdin/stdout.
    Smtp,
    /// `-bp`, or run as `mailq`: list the queue.
    ListQueue,
    /// `-bi`/`-I`, or run as `newaliases`: check the alias files.
    Newaliases,
    /// `-q`: ask qmgr to retry deferred mail now (`postqueue -f`).
    Flush,
    /// `-bv`: verify addresses; not supported.
    Verify,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// What to do.
    pub mode: Mode,
    /// `-C DIR`.
    pub config_dir: Option<PathBuf>,
    /// `-t`: recipients from To/Cc/Bcc as well.
    pub extract_recipients: bool,
    /// `-i`/`-oi`: a line with a lone dot does not end the message.
    pub ignore_dots: bool,
    /// `-f`/`-r`: the envelope sender as given.
    pub sender: Option<String>,
    /// `-F`: the sender's full name.
    pub full_name: Option<String>,
    /// Recipient arguments, in order.
    pub recipients: Vec<String>,
}

/// Options that take a value, Postfix's getopt string
/// `46B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx` (q handled apart).
const WITH_VALUE: &str = "BCFLNORVXbefhopr";
/// Options without a value that are accepted and ignored.
const IGNORED_FLAGS: &str = "46GUcmnvx";

/// Parses the arguments after argv\[0\]. `program` is argv\[0\]'s base
/// name: `mailq` and `newaliases` select their modes. Options may come
/// before or after recipients (glibc getopt permutes, so Postfix accepts
/// `sendmail rcpt -oi` on Linux); `--` ends them.
pub fn parse_args(program: &str, args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        mode: match program {
            "mailq" => Mode::ListQueue,
            "newaliases" => Mode::Newaliases,
            _ => Mode::Deliver,
        },
        config_dir: None,
        extract_recipients: false,
        ignore_dots: false,
        sender: None,
        full_name: None,
        recipients: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            o.recipients.extend(args[i..].iter().cloned());
            break;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.recipients.push(arg.clone());
            continue;
        };
        if flags.starts_with('q') {
            // `-q` flushes; `-qINTERVAL`, `-qRsite` ... are Sendmail daemon
            // forms that Postfix maps to a flush as well.
            o.mode = Mode::Flush;
            continue;
        }
        for (pos, c) in flags.char_indices() {
            if WITH_VALUE.contains(c) {
                let rest = &flags[pos + c.len_utf8()..];
                let value = if !rest.is_empty() {
                    rest.to_owned()
                } else if let Some(v) = args.get(i) {
                    i += 1;
                    v.clone()
                } else {
                    return Err(format!("option -{c} requires an argument"));
                };
                apply_value(&mut o, c, value)?;
                break;
            }
            match c {
                't' => o.extract_recipients = true,
                'i' => o.ignore_dots = true,
                'I' => o.mode = Mode::Newaliases,
                c if IGNORED_FLAGS.contains(c) => {}
                other => return Err(format!("invalid option -- '{other}'")),
            }
        }
    }
    Ok(o)
}

fn apply_value(o: &mut Options, c: char, value: String) -> Result<(), String> {
    match c {
        'C' => o.config_dir = Some(PathBuf::from(value)),
        'F' => o.full_name = Some(value),
        'f' | 'r' => o.sender = Some(value),
        // Sendmail's -oX options: only -oi means something to us.
        'o' if value.starts_with('i') => o.ignore_dots = true,
        'b' => {
            o.mode = match value.as_str() {
                "m" => Mode::Deliver,
                "s" => Mode::Smtp,
                "p" => Mode::ListQueue,
                "i" => Mode::Newaliases,
                "v" => Mode::Verify,
                other => return Err(format!("unsupported: -b{other}")),
            }
        }
        // -B body type, -N DSN notify, -R DSN return, -V envelope id, -h
        // hop count, -L, -O, -X, -e, -p: accepted and ignored, as Postfix
        // ignores most of them.
        _ => {}
    }
    Ok(())
}

/// Why reading the message failed.
#[derive(Debug)]
pub enum ReadError {
    /// The message is larger than `message_size_limit`.
    TooBig,
    /// Standard input failed.
    Io(std::io::Error),
}

/// Reads a message from `input` the way Sendmail does: CRLF becomes LF,
/// a missing final newline is added, a leading `From ` line (Unix mbox
/// envelope) is dropped as Postfix drops it, and unless `ignore_dots` a
/// line with only `.` ends the message. `limit` bounds the result
/// (0 = no limit).
pub fn read_message(
    input: &mut impl BufRead,
    ignore_dots: bool,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    let limit = if limit == 0 { mail_queue::format::MAX_CONTENT } else { limit };
    let mut content = Vec::new();
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        let room = limit.saturating_sub(content.len() as u64);
        // Two bytes of slack for the CRLF of a line that exactly fits.
        let n =
            input.by_ref().take(room + 2).read_until(b'\n', &mut line).map_err(ReadError::Io)?;
        if n == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && n as u64 == room + 2 {
            return Err(ReadError::TooBig);
        }
        if complete {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if !ignore_dots && line == b"." {
            break;
        }
        if std::mem::take(&mut first) && line.starts_with(b"From ") {
            continue;
        }
        if content.len() as u64 + line.len() as u64 + 1 > limit {
            return Err(ReadError::TooBig);
        }
        content.extend_from_slice(&line);
        content.push(b'\n');
        if !complete {
            break;
        }
    }
    Ok(content)
}

/// Splits one recipient argument into addresses. An argument may hold a
/// list (`"a, b"`) or a display form (`"Ana <ana@example.org>"`), as
/// Postfix's sendmail accepts; it is parsed as an RFC 5322 address list.
pub fn split_recipient_arg(arg: &str) -> Vec<String> {
    let cleaned: String = arg.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let header = format!("To: {cleaned}\n\n");
    mail_cleanup::extract_recipients(header.as_bytes()).0
}

/// Strips the angle brackets of an envelope address given on the command
/// line or in `MAIL FROM`; `""` and `<>` are the null sender.
fn bare(addr: &str) -> &str {
    let t = addr.trim();
    t.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(t)
}

/// Entry point of the `sendmail`, `mailq` and `newaliases` binaries.
pub fn main_with_args(argv0: &str, args: Vec<String>) -> ExitCode {
    let program = Path::new(argv0).file_name().and_then(|n| n.to_str()).unwrap_or("sendmail");
    let opts = match parse_args(program, &args) {
        Ok(o) => o,
        Err(e) => return fail(program, &format!("{e}\n{USAGE}"), EX_USAGE),
    };
    // Messages name the program as Postfix does: sendmail, mailq or newaliases.
    let dir = mail_config::config_dir_from(opts.config_dir.as_deref());
    let main = match Main::load(&dir) {
        Ok(m) => m,
        Err(e) => return fail(program, &e.to_string(), EX_CONFIG),
    };
    match opts.mode {
        Mode::ListQueue => crate::postqueue::list(&main),
        Mode::Flush => crate::postqueue::flush(&main, program),
        Mode::Newaliases => newaliases(&main),
        Mode::Verify => {
            eprintln!("sendmail: -bv not supported");
            ExitCode::from(1)
        }
        Mode::Smtp => smtp_session(&main),
        Mode::Deliver => deliver(&main, &opts),
    }
}

fn fail(program: &str, message: &str, code: u8) -> ExitCode {
    eprintln!("{program}: fatal: {message}");
    ExitCode::from(code)
}

/// The real user's login name, or `None` without a passwd entry.
fn login_name() -> (String, Option<String>) {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => (u.name.clone(), Some(u.name)),
        _ => (uid.to_string(), None),
    }
}

fn deliver(main: &Main, o: &Options) -> ExitCode {
    let sender = match &o.sender {
        Some(s) => match check_sender(s) {
            Ok(s) => s,
            Err(e) => return fail("sendmail", &e, EX_USAGE),
        },
        None => String::new(),
    };
    let (user, login) = login_name();
    if sender.is_empty() && login.is_none() {
        return fail(
            "sendmail",
            &format!("no login name found for user ID {}", nix::unistd::getuid()),
            EX_NOUSER,
        );
    }
    let mut recipients = Vec::new();
    for arg in &o.recipients {
        let found = split_recipient_arg(arg);
        if found.is_empty() && !arg.trim().is_empty() {
            return fail("sendmail", &format!("bad address syntax: {arg}"), EX_USAGE);
        }
        recipients.extend(found);
    }
    if recipients.is_empty() && !o.extract_recipients {
        return fail("sendmail", "no recipient addresses found", EX_USAGE);
    }
    let limit = settings::Common::new(main).message_size_limit;
    let content = match read_message(&mut std::io::stdin().lock(), o.ignore_dots, limit) {
        Ok(c) => c,
        Err(ReadError::TooBig) => return fail("sendmail", "message file too big", EX_DATAERR),
        Err(ReadError::Io(e)) => {
            return fail("sendmail", &format!("error reading input: {e}"), EX_TEMPFAIL);
        }
    };
    if o.extract_recipients
        && recipients.is_empty()
        && mail_cleanup::extract_recipients(&content).0.is_empty()
    {
        return fail("sendmail", "no recipient addresses found in message header", EX_DATAERR);
    }
    let drop = Maildrop {
        sender,
        recipients,
        extract_recipients: o.extract_recipients,
        full_name: o.full_name.clone().unwrap_or_default(),
        user,
        content,
    };
    match enqueue(main, &drop) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail("sendmail", &e, EX_TEMPFAIL),
    }
}

/// Checks a `-f` sender's syntax and returns it as the maildrop carries
/// it: `<>` for the null sender, else the bare address.
fn check_sender(s: &str) -> Result<String, String> {
    let b = bare(s);
    if b.is_empty() {
        return Ok("<>".into());
    }
    mail_types::Address::parse(b)
        .map(|_| b.to_owned())
        .map_err(|e| format!("bad sender address syntax: {s}: {e}"))
}

/// Writes a maildrop file and pokes pickup. Returns the maildrop id, or
/// an empty string when postdrop wrote the file.
fn enqueue(main: &Main, drop: &Maildrop) -> Result<String, String> {
    let common = settings::Common::new(main);
    let queue = Queue::new(&common.queue_directory);
    let id = match queue.write_maildrop(drop) {
        Ok(id) => id,
        // A system install's maildrop/ (1730, setgid_group) takes files
        // from the setgid postdrop only.
        Err(mail_queue::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return run_postdrop(main, &common.command_directory.join("postdrop"), drop)
                .map(|()| String::new());
        }
        Err(e) => return Err(format!("cannot write maildrop file: {e}")),
    };
    // The file is in maildrop/ and pickup scans it within a minute, so a
    // failed poke is no failure of sendmail; a master.toml without pickup
    // is worth saying, since then nothing will ever take it.
    if let Err(Poke::NoService(e)) = poke(main, "pickup", Trigger::Wakeup) {
        eprintln!("sendmail: warning: {e}");
    }
    Ok(id.to_string())
}

/// Hands `drop` to the setgid `postdrop` (which also pokes pickup); its
/// exit status 0 means the file is on stable storage.
fn run_postdrop(main: &Main, program: &Path, drop: &Maildrop) -> Result<(), String> {
    let bytes = mail_queue::maildrop::encode(drop).map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(program)
        .arg("-c")
        .arg(main.dir())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot write maildrop/ and cannot run {}: {e}", program.display()))?;
    let written = child.stdin.take().map(|mut s| s.write_all(&bytes));
    let status = child.wait().map_err(|e| format!("waiting for {}: {e}", program.display()))?;
    match (written, status.success()) {
        (Some(Ok(())), true) => Ok(()),
        (Some(Err(e)), _) => Err(format!("writing to {}: {e}", program.display())),
        _ => Err(format!("{} failed ({status})", program.display())),
    }
}

/// Why a trigger was not sent.
#[derive(Debug)]
pub(crate) enum Poke {
    /// master.toml has no such unix service (renamed or removed).
    NoService(String),
    /// The service did not take it (not running, or busy past the timeout).
    Unreachable(String),
}

/// Sends one trigger to the unix service `service` of master.toml
/// (`mail_ipc::trigger::send`: bounded by a short timeout). Callers may
/// ignore an unreachable receiver: it rescans on its own timer (a lost
/// trigger delays mail, never loses it).
pub(crate) fn poke(main: &Main, service: &str, trigger: Trigger) -> Result<(), Poke> {
    let master =
        mail_config::MasterFile::load(main.dir()).map_err(|e| Poke::NoService(e.to_string()))?;
    let path = master
        .socket_path(&settings::Common::new(main).queue_directory, service)
        .map_err(Poke::NoService)?;
    mail_ipc::trigger::send(&path, trigger)
        .map_err(|e| Poke::Unreachable(format!("{}: {e}", path.display())))
}

fn newaliases(main: &Main) -> ExitCode {
    let paths = settings::Sendmail::new(main).alias_database;
    match mail_lookup::aliases::Aliases::new(paths).check() {
        Ok((_, warnings)) => {
            for w in warnings {
                eprintln!("newaliases: warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("newaliases", &e.to_string(), EX_CONFIG),
    }
}

/// `-bs`: one SMTP session on stdin/stdout. Every syntactically valid
/// MAIL and RCPT is accepted; each message becomes a maildrop file.
fn smtp_session(main: &Main) -> ExitCode {
    let (user, _) = login_name();
    let (common, smtpd) = (settings::Common::new(main), settings::Smtpd::new(main));
    let params = smtp_proto::ServerParams {
        hostname: common.myhostname,
        banner: smtpd.smtpd_banner,
        max_message_size: common.message_size_limit,
        max_recipients: smtpd.smtpd_recipient_limit,
        hard_error_limit: smtpd.smtpd_hard_error_limit,
        helo_required: false,
        vrfy_enabled: false,
        starttls_offered: false,
        auth_mechanisms: Vec::new(),
        // Local input from a pipe often has bare LFs, and no other MTA
        // parses this stream, so "\n.\n" may end the message here.
        bare_lf_ends_data: true,
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut session = SmtpSession { main, user, server: smtp_proto::Server::new(params) };
    match session.run(&mut stdin.lock(), &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("sendmail", &format!("SMTP session: {e}"), EX_SOFTWARE),
    }
}

struct SmtpSession<'a> {
    main: &'a Main,
    user: String,
    server: smtp_proto::Server,
}

impl SmtpSession<'_> {
    fn run(&mut self, input: &mut impl Read, output: &mut impl Write) -> std::io::Result<()> {
        let mut sender = String::new();
        let mut rcpts: Vec<String> = Vec::new();
        output.write_all(&self.server.greeting().to_bytes())?;
        output.flush()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(ev) = self.server.next_event() {
                match ev {
                    smtp_proto::Event::Reply(r) => output.write_all(&r.to_bytes())?,
                    smtp_proto::Event::Mail { from, .. } => {
                        sender = from.map_or_else(|| "<>".to_owned(), |a| a.to_string());
                        rcpts.clear();
                        self.server.accept();
                    }
                    smtp_proto::Event::Rcpt { to, .. } => {
                        rcpts.push(to.to_string());
                        self.server.accept();
                    }
                    // Local submission checks syntax only, like RCPT here.
                    smtp_proto::Event::Vrfy { .. } => self.server.accept(),
                    smtp_proto::Event::Message { content } => {
                        let drop = Maildrop {
                            sender: std::mem::take(&mut sender),
                            recipients: std::mem::take(&mut rcpts),
                            extract_recipients: false,
                            full_name: String::new(),
                            user: self.user.clone(),
                            content,
                        };
                        match enqueue(self.main, &drop) {
                            Ok(id) => self.server.message_queued(&id),
                            Err(e) => {
                                eprintln!("sendmail: warning: {e}");
                                self.server.reject(smtp_proto::Reply::with_status(
                                    451,
                                    mail_types::EnhancedStatus(4, 3, 0),
                                    "Error: queue file write error",
                                ));
                            }
                        }
                    }
                    smtp_proto::Event::StartTls
                    | smtp_proto::Event::Auth { .. }
                    | smtp_proto::Event::AuthResponse { .. } => {
                        // Never advertised; the state machine should not ask.
                        self.server.reject(smtp_proto::Reply::with_status(
                            502,
                            mail_types::EnhancedStatus(5, 5, 1),
                            "Error: command not implemented",
                        ));
                    }
                    smtp_proto::Event::Close => {
                        output.flush()?;
                        return Ok(());
                    }
                }
            }
            output.flush()?;
            if self.server.is_closed() {
                return Ok(());
            }
            let n = input.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.server.feed(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn parse(a: &[&str]) -> Result<Options, String> {
        parse_args("sendmail", &args(a))
    }

    #[test]
    fn parses_common_forms() {
        let o = parse(&["-t", "-i", "-f", "root@example.org", "-F", "Root User", "a@b.c"]).unwrap();
        assert_eq!(o.mode, Mode::Deliver);
        assert!(o.extract_recipients && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("root@example.org"));
        assert_eq!(o.full_name.as_deref(), Some("Root User"));
        assert_eq!(o.recipients, vec!["a@b.c"]);

        let o = parse(&["-oi", "-fme@x.y", "-ti", "-C/tmp/c", "--", "-odd", "b"]).unwrap();
        assert!(o.ignore_dots && o.extract_recipients);
        assert_eq!(o.sender.as_deref(), Some("me@x.y"));
        assert_eq!(o.config_dir, Some(PathBuf::from("/tmp/c")));
        assert_eq!(o.recipients, vec!["-odd", "b"]);

        let o = parse(&["-r", "x@y.z", "rcpt", "-oi"]).unwrap();
        assert_eq!(o.sender.as_deref(), Some("x@y.z"));
        assert!(o.ignore_dots);
        assert_eq!(o.recipients, vec!["rcpt"]);
    }

    #[test]
    fn parses_modes_and_argv0() {
        assert_eq!(parse(&["-bs"]).unwrap().mode, Mode::Smtp);
        assert_eq!(parse(&["-bp"]).unwrap().mode, Mode::ListQueue);
        assert_eq!(parse(&["-bi"]).unwrap().mode, Mode::Newaliases);
        assert_eq!(parse(&["-I"]).unwrap().mode, Mode::Newaliases);
        assert_eq!(parse(&["-b", "m"]).unwrap().mode, Mode::Deliver);
        assert_eq!(parse(&["-bv", "x"]).unwrap().mode, Mode::Verify);
        assert_eq!(parse(&["-q"]).unwrap().mode, Mode::Flush);
        assert_eq!(parse_args("mailq", &[]).unwrap().mode, Mode::ListQueue);
        assert_eq!(parse_args("newaliases", &[]).unwrap().mode, Mode::Newaliases);
    }

    #[test]
    fn ignores_what_postfix_ignores() {
        let o = parse(&[
            "-v", "-oem", "-odb", "-B", "8BITMIME", "-N", "never", "-R", "hdrs", "-V", "id", "-m",
            "a",
        ])
        .unwrap();
        assert!(!o.ignore_dots);
        assert_eq!(o.recipients, vec!["a"]);
    }

    #[test]
    fn rejects_bad_usage() {
        assert!(parse(&["-Z"]).unwrap_err().contains("invalid option"));
        assert!(parse(&["-f"]).unwrap_err().contains("requires an argument"));
        assert!(parse(&["-bd"]).unwrap_err().contains("unsupported"));
    }

    fn read(input: &str, ignore_dots: bool, limit: u64) -> Result<String, ReadError> {
        read_message(&mut input.as_bytes(), ignore_dots, limit)
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn dot_ends_input_unless_ignored() {
        assert_eq!(
            read("Subject: x\r\n\r\nbody\r\n.\r\nafter\n", false, 0).unwrap(),
            "Subject: x\n\nbody\n"
        );
        assert_eq!(read("a\n.\nb", true, 0).unwrap(), "a\n.\nb\n");
        assert_eq!(read("a\n..\nb\n", false, 0).unwrap(), "a\n..\nb\n");
        assert_eq!(read("a\n.", false, 0).unwrap(), "a\n");
        assert_eq!(read("", false, 0).unwrap(), "");
    }

    #[test]
    fn drops_unix_from_line_and_bounds_size() {
        assert_eq!(
            read("From root Sat Nov 28\nSubject: y\n\nz\n", false, 0).unwrap(),
            "Subject: y\n\nz\n"
        );
        assert_eq!(read("x\nFrom here\n", false, 0).unwrap(), "x\nFrom here\n");
        assert_eq!(read("abcd\r\n", false, 5).unwrap(), "abcd\n");
        assert!(matches!(read("abcde\n", false, 5), Err(ReadError::TooBig)));
        assert!(matches!(read(&"y".repeat(100), false, 10), Err(ReadError::TooBig)));
    }

    #[test]
    fn recipient_arguments() {
        assert_eq!(split_recipient_arg("suporte"), vec!["suporte"]);
        assert_eq!(split_recipient_arg("a@b.c, Ana <ana@x.y>"), vec!["a@b.c", "ana@x.y"]);
        assert_eq!(check_sender("<>").unwrap(), "<>");
        assert_eq!(check_sender("").unwrap(), "<>");
        assert_eq!(check_sender("<root@x.y>").unwrap(), "root@x.y");
        assert!(check_sender("a b@c").is_err());
    }

    proptest! {
        #[test]
        fn read_message_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                     dots: bool, limit in 0u64..64) {
            if let Ok(c) = read_message(&mut bytes.as_slice(), dots, limit) {
                prop_assert!(limit == 0 || c.len() as u64 <= limit);
            }
        }

        #[test]
        fn parse_args_never_panics(a in proptest::collection::vec(".{0,6}", 0..6)) {
            let _ = parse_args("sendmail", &a);
        }
    }
}
