//! Running a delivery command (`mailbox_command`, an alias `|command`) the
//! way Postfix's `pipe_command()` does: `/bin/sh -c COMMAND`, the message on
//! standard input, a clean environment, a time limit, and the exit status
//! mapped through `<sysexits.h>` to a delivery status.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mail_types::{DeliveryStatus, EnhancedStatus};

/// How much of a command's output we keep for the bounce text.
const OUTPUT_LIMIT: usize = 4096;

/// How long we wait for the output pipes to close after the command exited.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How a command is run.
#[derive(Debug, Clone)]
pub(crate) struct CommandSpec {
    pub(crate) command: String,
    /// Set when we are root: the child becomes this user. Otherwise the
    /// child runs as we do.
    pub(crate) uid_gid: Option<(u32, u32)>,
    /// Working directory (the user's home); `/` when it is not usable.
    pub(crate) cwd: PathBuf,
    /// The whole environment (it is cleared first).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) time_limit: Duration,
}

/// Runs `spec.command` with `input` on its standard input and turns the
/// outcome into a delivery status. `success` is the `status=sent` text.
pub(crate) fn run(
    spec: &CommandSpec,
    prefix: &[u8],
    content: &[u8],
    success: &str,
) -> DeliveryStatus {
    match execute(spec, prefix, content) {
        Ok(outcome) => map_outcome(&spec.command, &outcome, success),
        Err(e) => DeliveryStatus::defer(
            EnhancedStatus(4, 3, 0),
            format!("cannot run command \"{}\": {e}", spec.command),
        ),
    }
}

/// What happened to a command.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `None` when it was killed for exceeding the time limit.
    pub(crate) status: Option<ExitStatus>,
    /// The start of its standard output and error, interleaved by stream.
    pub(crate) output: Vec<u8>,
}

fn execute(spec: &CommandSpec, prefix: &[u8], content: &[u8]) -> std::io::Result<Outcome> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a time-out kills the whole pipeline.
        .process_group(0);
    if let Some((uid, gid)) = spec.uid_gid {
        // std also clears the supplementary groups when changing uid as
        // root.
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let message: Vec<u8> = [prefix, content].concat();
    // Feed and drain on threads so that a command that writes a lot before
    // reading cannot deadlock with us.
    // The writer is detached: a background process that inherited the
    // pipe and never reads must not hold up the delivery.
    thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A command may legitimately stop reading early (EPIPE).
            let _ = stdin.write_all(&message);
        }
    });
    let (tx, rx) = mpsc::channel();
    let mut readers = 0;
    for stream in
        [stdout.map(|s| Box::new(s) as Box<dyn Read + Send>), stderr.map(|s| Box::new(s) as _)]
            .into_iter()
            .flatten()
    {
        let tx = tx.clone();
        readers += 1;
        thread::spawn(move || {
            let _ = tx.send(read_limited(stream));
        });
    }
    drop(tx);

    let status = wait_with_deadline(&mut child, Instant::now() + spec.time_limit)?;
    // The output normally ends with the command; a background process that
    // keeps the pipes open gets a short grace period, then is left alone.
    let mut output = Vec::new();
    let grace = Instant::now() + OUTPUT_GRACE;
    for _ in 0..readers {
        match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
            Ok(bytes) => output.extend_from_slice(&bytes),
            Err(_) => break,
        }
    }
    Ok(Outcome { status, output })
}

/// Keeps the first [`OUTPUT_LIMIT`] bytes and discards the rest (still
/// reading, so the command never blocks on a full pipe).
fn read_limited(mut r: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

/// Waits for the child; at the deadline kills its process group and
/// returns `None`.
fn wait_with_deadline(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        // Polling with a growing pause: cheap for the usual fast command
        // and at most 100 ms late for a slow one.
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// `<sysexits.h>` codes as Postfix's `sys_exits.c` maps them.
fn sysexit(code: i32) -> Option<(EnhancedStatus, &'static str)> {
    Some(match code {
        64 => (EnhancedStatus(5, 3, 0), "command line usage error"),
        65 => (EnhancedStatus(5, 6, 0), "data format error"),
        66 => (EnhancedStatus(5, 3, 0), "cannot open input"),
        67 => (EnhancedStatus(5, 1, 1), "user unknown"),
        68 => (EnhancedStatus(5, 1, 2), "host name unknown"),
        69 => (EnhancedStatus(5, 3, 0), "service unavailable"),
        70 => (EnhancedStatus(5, 3, 0), "internal software error"),
        71 => (EnhancedStatus(4, 3, 0), "system resource problem"),
        72 => (EnhancedStatus(5, 3, 0), "critical OS file missing"),
        73 => (EnhancedStatus(5, 2, 0), "can't create user output file"),
        74 => (EnhancedStatus(5, 3, 0), "input/output error"),
        75 => (EnhancedStatus(4, 3, 0), "temporary failure"),
        76 => (EnhancedStatus(5, 5, 0), "remote error in protocol"),
        77 => (EnhancedStatus(5, 7, 0), "permission denied"),
        78 => (EnhancedStatus(5, 3, 5), "local configuration error"),
        _ => return None,
    })
}

/// The first non-empty line of the output, for the bounce text.
fn first_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    text.lines().map(str::trim).find(|l| !l.is_empty()).map(|l| l.chars().take(200).collect())
}

pub(crate) fn map_outcome(command: &str, outcome: &Outcome, success: &str) -> DeliveryStatus {
    let with_output = |text: String| match first_line(&outcome.output) {
        Some(line) => format!("{text}. Command output: {line}"),
        None => text,
    };
    let Some(status) = outcome.status else {
        return DeliveryStatus::defer(
            EnhancedStatus(4, 3, 0),
            format!("Command time limit exceeded: \"{command}\""),
        );
    };
    if let Some(signal) = status.signal() {
        // A crash is not the message's fault: try again later.
        return DeliveryStatus::defer(
            EnhancedStatus(4, 3, 0),
            with_output(format!("Command died with signal {signal}: \"{command}\"")),
        );
    }
    let code = status.code().unwrap_or(-1);
    if code == 0 {
        return DeliveryStatus::sent(success);
    }
    let text = with_output(format!("Command died with status {code}: \"{command}\""));
    match sysexit(code) {
        Some((dsn, _)) if dsn.0 == 4 => DeliveryStatus::defer(dsn, text),
        Some((dsn, _)) => DeliveryStatus::bounce(dsn, text),
        None => DeliveryStatus::bounce(EnhancedStatus(5, 3, 0), text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_types::Class;

    fn spec(command: &str) -> CommandSpec {
        CommandSpec {
            command: command.to_owned(),
            uid_gid: None,
            cwd: PathBuf::from("/"),
            env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("RECIPIENT".into(), "a@b".into())],
            time_limit: Duration::from_secs(30),
        }
    }

    fn class(s: &DeliveryStatus) -> Option<Class> {
        match s {
            DeliveryStatus::Sent { .. } => None,
            DeliveryStatus::Failed { class, .. } => Some(*class),
        }
    }

    #[test]
    fn exit_codes_map_like_postfix() {
        let _lock = crate::privs::test_lock();
        let ok = run(&spec("cat >/dev/null"), b"P\n", b"body\n", "delivered to command: x");
        assert_eq!(ok, DeliveryStatus::sent("delivered to command: x"));

        let temp = run(&spec("exit 75"), b"", b"x", "ok");
        assert_eq!(class(&temp), Some(Class::Transient));
        assert_eq!(temp.dsn(), EnhancedStatus(4, 3, 0));

        let nouser = run(&spec("echo no such user >&2; exit 67"), b"", b"x", "ok");
        assert_eq!(class(&nouser), Some(Class::Permanent));
        assert_eq!(nouser.dsn(), EnhancedStatus(5, 1, 1));
        assert_eq!(
            nouser.text(),
            "Command died with status 67: \"echo no such user >&2; exit 67\". Command output: no such user"
        );

        let other = run(&spec("exit 1"), b"", b"x", "ok");
        assert_eq!(class(&other), Some(Class::Permanent));
        assert_eq!(other.dsn(), EnhancedStatus(5, 3, 0));
        assert_eq!(other.text(), "Command died with status 1: \"exit 1\"");

        let killed = run(&spec("kill -9 $$"), b"", b"x", "ok");
        assert_eq!(class(&killed), Some(Class::Transient));
        assert!(killed.text().contains("signal 9"), "{killed:?}");
    }

    #[test]
    fn input_and_environment_reach_the_command() {
        let _lock = crate::privs::test_lock();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd =
            format!("cat > {}; echo \"$RECIPIENT $HOME\" >> {}", out.display(), out.display());
        let status = run(&spec(&cmd), b"Delivered-To: a@b\n", b"Subject: x\n\nbody\n", "ok");
        assert_eq!(status, DeliveryStatus::sent("ok"));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "Delivered-To: a@b\nSubject: x\n\nbody\na@b \n"
        );
    }

    #[test]
    fn large_output_and_unread_input_do_not_block() {
        let _lock = crate::privs::test_lock();
        let big = vec![b'x'; 1 << 20];
        let s = run(&spec("head -c 2000000 /dev/zero; exit 0"), b"", &big, "ok");
        assert_eq!(s, DeliveryStatus::sent("ok"));
    }

    #[test]
    fn time_limit_kills_the_command() {
        let _lock = crate::privs::test_lock();
        let mut sp = spec("sleep 30");
        sp.time_limit = Duration::from_millis(200);
        let started = Instant::now();
        let s = run(&sp, b"", b"x", "ok");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(class(&s), Some(Class::Transient));
        assert!(s.text().contains("time limit"), "{s:?}");
    }

    #[test]
    fn sysexit_table() {
        let _lock = crate::privs::test_lock();
        assert_eq!(sysexit(75).map(|x| x.0), Some(EnhancedStatus(4, 3, 0)));
        assert_eq!(sysexit(78).map(|x| x.0), Some(EnhancedStatus(5, 3, 5)));
        assert_eq!(sysexit(2), None);
    }
}
