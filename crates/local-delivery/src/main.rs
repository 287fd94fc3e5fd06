//! SUMMARY
//!   local-delivery - the Postern local delivery agent (Postfix local(8))
//!
//! DESCRIPTION
//!   Delivers mail for the domains in `mydestination`. qmgr connects to
//!   `private/local` and sends one `DeliveryRequest` per connection (a
//!   queue id in `active/` and some of its recipients); the agent answers
//!   with one `DeliveryReply` holding a result per recipient. Each worker
//!   process is single-threaded and serves one batch of connections at a
//!   time: all those waiting in the listen backlog of the socket that the
//!   `maxproc` workers share, up to 32. It reads every request of the
//!   batch, delivers each, fsyncs each Maildir `new/` written once for
//!   the batch (group commit), and only then answers each; a recipient
//!   whose `new/` fsync failed is deferred (4.3.0), never reported sent.
//!
//!   For each recipient: the address extension after `recipient_delimiter`
//!   is split off (and passed on as `$EXTENSION`); a `Delivered-To:` header
//!   equal to the recipient means a forwarding loop (bounced 5.4.6);
//!   `alias_maps` are expanded recursively (aliases(5): addresses, `/file`,
//!   `|command`, `:include:`; an alias that names itself means the user;
//!   at most 20 levels); a local user's `.forward` (the first file of
//!   `forward_path` that exists: `~/.forward+EXT`, then `~/.forward`)
//!   is expanded the same way, the user named inside it meaning the
//!   user's own mailbox (`\user`); remote addresses from aliases and
//!   `.forward` files are re-queued with `Delivered-To:` of the alias or
//!   user and qmgr is woken; local users (system
//!   users, or `passwd_file`) get the message in `mailbox_command`'s input,
//!   in `~/home_mailbox` (a Maildir when it ends in `/`, else an mbox), or
//!   in `mail_spool_directory/USER` (mbox). Every delivered copy starts
//!   with `Return-Path: <sender>` and `Delivered-To: recipient`.
//!
//! SECURITY
//!   In a system install this program runs as root (`unpriv = false` in
//!   master.toml), like Postfix's local, because it must write as many
//!   different users. It never writes into a user's directory as root: for
//!   each delivery it switches its effective uid, gid and groups to the
//!   recipient and switches back afterwards (a user without a `.forward`
//!   keeps the user's ids from the `.forward` lookup to the Maildir write,
//!   with nothing done in between that needs root); commands are started
//!   with the recipient's real uid. `|command` and `/file` destinations from an
//!   aliases or `:include:` file run as that file's owner, those of a
//!   `.forward` as its user; a `.forward` is read with the user's ids,
//!   never through a symlink, and only if it is a regular file of at most
//!   1 MiB owned by the user or root and not writable by group or others
//!   (otherwise it is ignored with a warning); commands and
//!   files never run as root: a root recipient's `mailbox_command`, and
//!   destinations of a root-owned file, run as `default_privs` (uid 0
//!   and gid 0 are each replaced, as Postfix's `local/command.c` and
//!   `local/file.c` do). Mailbox files are opened without following
//!   symlinks. It talks only to qmgr (over `private/local`) and reads only
//!   queue files, aliases and the user database. In an unprivileged
//!   instance nothing is root and no switching happens; a development
//!   instance made by root (mail_owner is root, which a system install
//!   never has) belongs to root the same way, so its commands and files
//!   keep root's ids instead of default_privs.
//!
//! CONFIGURATION
//!   queue_directory, alias_maps, recipient_delimiter, passwd_file,
//!   home_mailbox, mail_spool_directory, mailbox_command,
//!   mailbox_size_limit, allow_mail_to_commands, allow_mail_to_files
//!   (`alias`, `forward`, `include`), forward_path (not `$`-expanded by
//!   mail-config: `$home`, `$user`, `$extension`, `$recipient_delimiter`
//!   and `${name?text}` are expanded per recipient),
//!   mydestination, myorigin, myhostname, mail_owner (owner of re-queued
//!   files), command_time_limit (how long a command may run),
//!   default_privs (the account used instead of root for commands and
//!   files).
//!
//! DIAGNOSTICS
//!   One line per delivered destination, as Postfix writes it:
//!   `QUEUEID: to=<suporte@example.org>, orig_to=<root@example.org>,
//!   relay=local, delay=0.1, dsn=2.0.0, status=sent (delivered to maildir)`.
//!   Unreadable queue files and aliases files defer (4.3.0) with a warning.
//!   A broken IPC peer is a warning. Fatal (exit, master restarts us): no
//!   listening socket, or root privileges cannot be restored.
//!
//! STANDARDS
//!   RFC 5321 §4.4 (Return-Path), RFC 3463 (enhanced status codes),
//!   RFC 4155 (mbox), the qmail Maildir specification, aliases(5),
//!   sysexits.h exit codes for commands.

mod command;
mod deliver;
mod forward;
mod group;
mod mailbox;
mod privs;
mod resolve;
mod settings;

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use mail_daemon::{BlockingConnection, Listener};
use mail_ipc::delivery::{DeliveryReply, DeliveryRequest, RecipientResult};
use mail_types::{DeliveryStatus, EnhancedStatus};

use crate::deliver::Agent;
use crate::group::NewDirs;
use crate::settings::Settings;

/// How long we wait for qmgr to send its request once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    mail_daemon::exit_on_fatal("local", run())
}

/// The most connections (requests) served as one batch, which share the
/// fsync of each Maildir `new/` they write to. It bounds what a kill -9
/// of a worker can make qmgr deliver twice: the deliveries of one batch
/// whose replies were not yet sent.
pub(crate) const BATCH_MAX: usize = 32;

/// One batch of connections at a time on one thread
/// (`run_blocking_batch`: no runtime, no helper threads), because glibc
/// makes every set*uid a broadcast to all threads of the process. Both
/// kinds of stop finish the batch in hand: a reload must not hand new
/// deliveries to a worker with the old configuration, and a delivery cut
/// short would only be redone.
fn run() -> anyhow::Result<()> {
    let mut daemon = mail_daemon::init("local")?;
    if !matches!(daemon.listeners.as_slice(), [Listener::Unix(_)]) {
        bail!("local-delivery needs exactly one unix listener (private/local)");
    }
    let mut settings = Settings::from_config(&daemon.config);
    settings.qmgr_socket = daemon.socket_path("qmgr")?;
    let agent = Agent::new(settings);
    mail_daemon::run_blocking_batch(&mut daemon, BATCH_MAX, |conns| {
        let streams = conns
            .into_iter()
            .filter_map(|c| match c {
                BlockingConnection::Unix(s) => Some(s),
                BlockingConnection::Tcp(..) => None,
            })
            .collect();
        serve_batch(streams, &agent, &mut NewDirs::sync);
    })?;
    Ok(())
}

/// Whether the other end has closed the connection.
fn peer_gone(stream: &UnixStream) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    // qmgr sends nothing after its request, so a readable end of stream
    // can only mean it closed the connection.
    let mut byte = [0u8; 1];
    matches!(
        recv(stream.as_raw_fd(), &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
        Ok(0)
    )
}

/// Reads the one request of a connection, within its own deadline.
fn read_request(mut stream: UnixStream) -> Option<(UnixStream, DeliveryRequest)> {
    if let Err(e) = stream.set_read_timeout(Some(REQUEST_TIMEOUT)) {
        tracing::warn!("cannot set up qmgr connection: {e}");
        return None;
    }
    match mail_ipc::read_frame::<DeliveryRequest>(&mut stream, mail_ipc::frame::MAX_FRAME) {
        Ok(Some(req)) => Some((stream, req)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("bad delivery request from qmgr: {e}");
            None
        }
    }
}

/// One request per connection, one reply each: every request is read,
/// then delivered, then the Maildir directories written are fsynced (by
/// `sync`, once each for the whole batch), and only then is each reply
/// written, so that no recipient is reported delivered before its
/// message is on disk.
fn serve_batch(streams: Vec<UnixStream>, agent: &Agent, sync: &mut dyn FnMut(&mut NewDirs)) {
    let requests: Vec<_> = streams.into_iter().filter_map(read_request).collect();
    let mut dirs = NewDirs::default();
    let mut started = Vec::with_capacity(requests.len());
    for (stream, request) in requests {
        if peer_gone(&stream) {
            // qmgr died after sending this request (it sat in our backlog):
            // nobody would record the result, and the next qmgr sends it
            // again, so delivering now would only make a duplicate.
            tracing::warn!("{}: qmgr closed the connection; request dropped", request.queue_id);
            continue;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            agent.begin(&request, &mut dirs)
        }));
        started.push((stream, request, result.ok()));
    }
    // The replies and the next batch are root's business.
    crate::privs::root();
    sync(&mut dirs);
    for (mut stream, request, begun) in started {
        let reply = match begun {
            Some(begun) => agent.finish(&request, begun, &dirs),
            None => panic_reply(&request),
        };
        if let Err(e) = mail_ipc::write_frame(&mut stream, &reply) {
            tracing::warn!("{}: cannot send the delivery reply to qmgr: {e}", request.queue_id);
        }
    }
}

/// A panic while delivering: every recipient is retried later.
fn panic_reply(request: &DeliveryRequest) -> DeliveryReply {
    tracing::error!("{}: panic while delivering; every recipient deferred", request.queue_id);
    let status = DeliveryStatus::defer(EnhancedStatus(4, 3, 0), "internal error in local delivery");
    DeliveryReply {
        results: request
            .recipients
            .iter()
            .map(|r| RecipientResult { index: r.index, status: status.clone() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::tests::fixture;
    use std::io::Write as _;

    /// qmgr's side: one connection per request, as qmgr opens them.
    fn connect(req: &DeliveryRequest) -> (UnixStream, UnixStream) {
        let (mut qmgr, agent) = UnixStream::pair().unwrap();
        mail_ipc::write_frame(&mut qmgr, req).unwrap();
        (qmgr, agent)
    }

    fn answer(qmgr: &mut UnixStream) -> Vec<(u32, String, String)> {
        qmgr.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let reply = mail_ipc::read_frame::<DeliveryReply>(qmgr, mail_ipc::frame::MAX_FRAME)
            .unwrap()
            .unwrap();
        reply
            .results
            .iter()
            .map(|r| (r.index, r.status.log_word().to_owned(), r.status.dsn().to_string()))
            .collect()
    }

    fn row(i: u32, word: &str, dsn: &str) -> (u32, String, String) {
        (i, word.to_owned(), dsn.to_owned())
    }

    #[test]
    fn a_batch_shares_one_new_fsync_and_answers_each_connection() {
        let _lock = crate::privs::test_lock();
        let f = fixture("root: suporte\n");
        let a = f.enqueue(b"Subject: a\n\na\n", &["suporte@example.org"]);
        let b = f.enqueue(b"Subject: b\n\nb\n", &["ghost@example.org", "root@example.org"]);
        let c = f.enqueue(b"Subject: c\n\nc\n", &["suporte+x@example.org"]);
        let gone = f.enqueue(b"Subject: d\n\nd\n", &["suporte@example.org"]);
        let (mut qa, sa) = connect(&a);
        let (mut qb, sb) = connect(&b);
        let (mut qc, sc) = connect(&c);
        // This qmgr sent its request and died: the request is dropped.
        let (qd, sd) = connect(&gone);
        drop(qd);
        let mut fsyncs = Vec::new();
        serve_batch(vec![sa, sb, sd, sc], &f.agent, &mut |dirs| {
            fsyncs.push(dirs.pending());
            dirs.sync();
        });
        // One new/ for three messages, one fsync.
        assert_eq!(fsyncs, [1]);
        assert_eq!(answer(&mut qa), [row(0, "sent", "2.0.0")]);
        assert_eq!(answer(&mut qb), [row(0, "bounced", "5.1.1"), row(1, "sent", "2.0.0")]);
        assert_eq!(answer(&mut qc), [row(0, "sent", "2.0.0")]);
        assert_eq!(f.maildir_count(), 3);
        let mut bodies: Vec<String> =
            std::fs::read_dir(f.dir.path().join("home/suporte/Maildir/new"))
                .unwrap()
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .map(|t| t.rsplit('\n').nth(1).unwrap().to_owned())
                .collect();
        bodies.sort();
        assert_eq!(bodies, ["a", "b", "c"]);
    }

    #[test]
    fn a_failed_new_fsync_defers_and_takes_the_copies_back() {
        let _lock = crate::privs::test_lock();
        let f = fixture("");
        // An mbox beside the Maildir: its delivery does not wait on new/.
        std::fs::write(
            f.dir.path().join("aliases"),
            format!("box: {}/box\n", f.dir.path().display()),
        )
        .unwrap();
        let a = f.enqueue(b"Subject: a\n\na\n", &["suporte@example.org"]);
        let b = f.enqueue(b"Subject: b\n\nb\n", &["suporte@example.org", "box@example.org"]);
        let (mut qa, sa) = connect(&a);
        let (mut qb, sb) = connect(&b);
        serve_batch(vec![sa, sb], &f.agent, &mut |dirs| {
            dirs.sync_with(|_| Err(std::io::Error::from_raw_os_error(libc::EIO)));
        });
        let new = f.dir.path().join("home/suporte/Maildir/new");
        let text = format!("cannot fsync {}: Input/output error (os error 5)", new.display());
        let ra = answer(&mut qa);
        assert_eq!(ra, [row(0, "deferred", "4.3.0")]);
        let rb = answer(&mut qb);
        assert_eq!(rb[0], row(0, "deferred", "4.3.0"));
        assert_eq!(rb[1].1, "sent", "{rb:?}");
        // The status text names the directory and the error.
        let reply_text = {
            let (mut q, s) = connect(&a);
            serve_batch(vec![s], &f.agent, &mut |dirs| {
                dirs.sync_with(|_| Err(std::io::Error::from_raw_os_error(libc::EIO)));
            });
            q.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let r = mail_ipc::read_frame::<DeliveryReply>(&mut q, mail_ipc::frame::MAX_FRAME);
            r.unwrap().unwrap().results[0].status.text().to_owned()
        };
        assert_eq!(reply_text, text);
        assert_eq!(f.maildir_count(), 0, "a deferred copy stayed in new/");
        assert!(std::fs::read_to_string(f.dir.path().join("box")).unwrap().contains("\nb\n"));
        let _ = std::io::stderr().flush();
    }
}
