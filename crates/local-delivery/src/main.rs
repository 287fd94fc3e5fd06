//! SUMMARY
//!   local-delivery - the Postern local delivery agent (Postfix local(8))
//!
//! DESCRIPTION
//!   Delivers mail for the domains in `mydestination`. qmgr connects to
//!   `private/local` and sends one `DeliveryRequest` per connection (a
//!   queue id in `active/` and some of its recipients); the agent answers
//!   with one `DeliveryReply` holding a result per recipient. Each worker
//!   process is single-threaded and serves one connection at a time; qmgr's
//!   further connections wait in the listen backlog of the socket that all
//!   `maxproc` workers share.
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
//!   recipient and switches back afterwards; commands are started with the
//!   recipient's real uid. `|command` and `/file` destinations from an
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
use crate::settings::Settings;

/// How long we wait for qmgr to send its request once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    mail_daemon::exit_on_fatal("local", run())
}

/// One connection at a time on one thread (`run_blocking`: no runtime, no
/// helper threads), because glibc makes every set*uid a broadcast to all
/// threads of the process. Both kinds of stop finish the request in hand:
/// a reload must not hand new deliveries to a worker with the old
/// configuration, and a delivery cut short would only be redone.
fn run() -> anyhow::Result<()> {
    let mut daemon = mail_daemon::init("local")?;
    if !matches!(daemon.listeners.as_slice(), [Listener::Unix(_)]) {
        bail!("local-delivery needs exactly one unix listener (private/local)");
    }
    let mut settings = Settings::from_config(&daemon.config);
    settings.qmgr_socket = daemon.socket_path("qmgr")?;
    let agent = Agent::new(settings);
    mail_daemon::run_blocking(&mut daemon, |conn| {
        if let BlockingConnection::Unix(stream) = conn {
            serve_connection(stream, &agent);
        }
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

/// One request, one reply.
fn serve_connection(mut stream: UnixStream, agent: &Agent) {
    if let Err(e) = stream.set_read_timeout(Some(REQUEST_TIMEOUT)) {
        tracing::warn!("cannot set up qmgr connection: {e}");
        return;
    }
    let request =
        match mail_ipc::read_frame::<DeliveryRequest>(&mut stream, mail_ipc::frame::MAX_FRAME) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("bad delivery request from qmgr: {e}");
                return;
            }
        };
    if peer_gone(&stream) {
        // qmgr died after sending this request (it sat in our backlog):
        // nobody would record the result, and the next qmgr sends it
        // again, so delivering now would only make a duplicate.
        tracing::warn!("{}: qmgr closed the connection; request dropped", request.queue_id);
        return;
    }
    let reply = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        agent.handle(&request)
    })) {
        Ok(reply) => reply,
        Err(_) => {
            tracing::error!(
                "{}: panic while delivering; every recipient deferred",
                request.queue_id
            );
            let status =
                DeliveryStatus::defer(EnhancedStatus(4, 3, 0), "internal error in local delivery");
            DeliveryReply {
                results: request
                    .recipients
                    .iter()
                    .map(|r| RecipientResult { index: r.index, status: status.clone() })
                    .collect(),
            }
        }
    };
    if let Err(e) = mail_ipc::write_frame(&mut stream, &reply) {
        tracing::warn!("{}: cannot send the delivery reply to qmgr: {e}", request.queue_id);
    }
}
