//! Running a delivery command (`mailbox_command`, an alias `|command`) the
//! way Postfix's `pipe_command()` does: `/bin/sh -c COMMAND`, the message on
//! standard input, a clean environment, a time limit, and the exit status
//! mapped through `<sysexits.h>` to a delivery status.
//!
//! The message is written and the output read from the calling thread
//! through non-blocking pipes: no helper thread, so nothing outlives the
//! delivery even when the command leaves a background process holding
//! its standard input or output open.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

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
    let pipes = Pipes::new(child.stdin.take(), child.stdout.take(), child.stderr.take());
    let mut pipes = match pipes {
        Ok(p) => p,
        Err(e) => {
            kill_group(&mut child);
            return Err(e);
        }
    };
    let message: Vec<u8> = [prefix, content].concat();
    let deadline = Instant::now() + spec.time_limit;
    // Everything happens on this thread with non-blocking pipes, so that a
    // command that writes a lot before reading cannot deadlock with us, and
    // a background process that inherited the pipes and never reads or
    // closes them cannot keep anything of ours alive after we return.
    let mut pause = Duration::from_millis(1);
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        let now = Instant::now();
        let wait = match exited {
            None => {
                if let Some(status) = child.try_wait()? {
                    // Whatever it did not read it will never read; a
                    // background process that kept the pipe does not get
                    // the rest either.
                    pipes.stdin = None;
                    exited = Some((status, now + OUTPUT_GRACE));
                    continue;
                }
                if now >= deadline {
                    kill_group(&mut child);
                    return Ok(Outcome { status: None, output: pipes.output });
                }
                // Polling for the exit with a growing pause: cheap for the
                // usual fast command and at most 100 ms late for a slow one.
                let wait = pause.min(deadline - now);
                pause = (pause * 2).min(Duration::from_millis(100));
                wait
            }
            // The output normally ends with the command; a background
            // process that keeps the pipes open gets a short grace period,
            // then is left alone.
            Some((status, grace)) => {
                if pipes.output_done() || now >= grace {
                    return Ok(Outcome { status: Some(status), output: pipes.output });
                }
                grace - now
            }
        };
        pipes.exchange(&message, wait)?;
    }
}

/// Our ends of the command's standard input, output and error, all
/// non-blocking; `None` once closed.
struct Pipes {
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    /// How much of the message has been written.
    written: usize,
    /// The first [`OUTPUT_LIMIT`] bytes of output; the rest is read and
    /// discarded, so the command never blocks on a full pipe.
    output: Vec<u8>,
}

impl Pipes {
    fn new(
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    ) -> std::io::Result<Pipes> {
        for fd in [
            stdin.as_ref().map(AsRawFd::as_raw_fd),
            stdout.as_ref().map(AsRawFd::as_raw_fd),
            stderr.as_ref().map(AsRawFd::as_raw_fd),
        ]
        .into_iter()
        .flatten()
        {
            set_nonblocking(fd)?;
        }
        Ok(Pipes { stdin, stdout, stderr, written: 0, output: Vec::new() })
    }

    fn output_done(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }

    /// Waits at most `wait` for one of the pipes to be ready, then writes
    /// and reads what it can without blocking.
    fn exchange(&mut self, message: &[u8], wait: Duration) -> std::io::Result<()> {
        let millis = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX).max(1);
        let (in_ready, out_ready, err_ready) = {
            let mut fds = Vec::with_capacity(3);
            let mut slots = [None; 3];
            if let Some(p) = &self.stdin {
                slots[0] = Some(fds.len());
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(p) = &self.stdout {
                slots[1] = Some(fds.len());
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            if let Some(p) = &self.stderr {
                slots[2] = Some(fds.len());
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            if fds.is_empty() {
                thread::sleep(Duration::from_millis(u64::from(millis)));
                return Ok(());
            }
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let ready = |slot: Option<usize>| {
                slot.and_then(|i| fds[i].revents()).is_some_and(|r| !r.is_empty())
            };
            (ready(slots[0]), ready(slots[1]), ready(slots[2]))
        };
        if in_ready {
            self.feed(message);
        }
        if out_ready && drain(self.stdout.as_mut(), &mut self.output) {
            self.stdout = None;
        }
        if err_ready && drain(self.stderr.as_mut(), &mut self.output) {
            self.stderr = None;
        }
        Ok(())
    }

    /// Writes what the pipe takes; closes it when the message is complete
    /// (end of file for the command) or the command stopped reading.
    fn feed(&mut self, message: &[u8]) {
        let Some(stdin) = self.stdin.as_mut() else { return };
        while self.written < message.len() {
            match stdin.write(&message[self.written..]) {
                Ok(0) => break,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A command may legitimately stop reading early (EPIPE).
                Err(_) => break,
            }
        }
        self.stdin = None;
    }
}

/// Reads what is there; true at end of file (or on an error, which ends
/// the stream as well).
fn drain(stream: Option<&mut impl Read>, kept: &mut Vec<u8>) -> bool {
    let Some(stream) = stream else { return true };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Kills the command's whole process group (a pipeline, or anything it
/// started) and reaps the command.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
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
        s.class()
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

    /// Threads of this process whose name is `name`.
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    #[test]
    fn background_process_holding_the_pipes_leaks_nothing() {
        let _lock = crate::privs::test_lock();
        // Threads inherit their creator's name, so anything this delivery
        // left running would show up under the test thread's unique name.
        let name = "bg-pipe-test";
        let worker = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // The message is larger than a pipe buffer: a writer that
                // waited for the background sleep to read it would never
                // finish.
                let big = vec![b'x'; 1 << 20];
                let started = Instant::now();
                let outcome = execute(&spec("sleep 30 & echo $!; exit 0"), b"", &big).unwrap();
                let elapsed = started.elapsed();
                let left = threads_named(name);
                (outcome, elapsed, left)
            })
            .unwrap();
        let (outcome, elapsed, left) = worker.join().unwrap();
        // Our own child; do not leave it running.
        let pid: i32 = String::from_utf8_lossy(&outcome.output).trim().parse().unwrap();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert_eq!(outcome.status.and_then(|s| s.code()), Some(0));
        assert!(elapsed < OUTPUT_GRACE + Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(left, 1, "threads left behind by the delivery");
    }

    #[test]
    fn sysexit_table() {
        let _lock = crate::privs::test_lock();
        assert_eq!(sysexit(75).map(|x| x.0), Some(EnhancedStatus(4, 3, 0)));
        assert_eq!(sysexit(78).map(|x| x.0), Some(EnhancedStatus(5, 3, 5)));
        assert_eq!(sysexit(2), None);
    }
}
