//! The commands an operator types: `postern`, `postconf`, `sendmail`
//! (also `mailq` and `newaliases` by argv\[0\]), `postqueue`,
//! `postsuper`, `postcat`, `postdrop`, `maildirmake`, `postern qshape` and `postern
//! import-postfix`. Each binary in `src/bin/` is a thin wrapper around one
//! module here; the library is internal to this crate's binaries.
//!
//! These tools read configuration and the queue directly and reach
//! running daemons only through master's control socket and the qmgr and
//! pickup trigger sockets. They never deliver mail themselves.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod getopt;
pub mod import_postfix;
pub mod init;
pub mod maildirmake;
pub mod postcat;
pub mod postconf;
pub mod postdrop;
pub mod postern;
pub mod postqueue;
pub mod postsuper;
pub mod pw;
pub mod qshape;
pub mod sendmail;

use mail_config::Main;
use mail_ipc::control::{ControlReply, ControlRequest};
use std::process::ExitCode;

/// Prints `NAME: fatal: MESSAGE` (Postfix's shape) and returns failure.
pub fn fatal(program: &str, message: &str) -> ExitCode {
    eprintln!("{program}: fatal: {message}");
    ExitCode::FAILURE
}

/// Turns a clap error into `help` (for `--help`, shown on stdout, exit
/// 0) or `usage` (the message naming the bad option with the usage,
/// without clap's `error: ` prefix, for the command to show after its
/// own `NAME: fatal: ` prefix).
pub(crate) fn clap_error<T>(
    e: clap::Error,
    help: impl FnOnce(String) -> T,
    usage: impl FnOnce(String) -> T,
) -> T {
    let text = e.render().to_string();
    match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => help(text),
        _ => usage(text.strip_prefix("error: ").unwrap_or(&text).to_owned()),
    }
}

/// Sends one request to master and returns its reply.
pub fn control(main: &Main, req: &ControlRequest) -> Result<ControlReply, String> {
    let path = mail_config::settings::Common::new(main)
        .queue_directory
        .join(mail_ipc::sockets::MASTER_CONTROL);
    let mut s = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| format!("the Postern mail system is not running (cannot connect to {}: {e}); start it with postern start", path.display()))?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    mail_ipc::write_frame(&mut s, req).map_err(|e| format!("talking to master: {e}"))?;
    match mail_ipc::read_frame::<ControlReply>(&mut s, 16 << 20) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err("master closed the control connection without answering".into()),
        Err(e) => Err(format!("talking to master: {e}")),
    }
}
