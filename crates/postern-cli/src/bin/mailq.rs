//! `mailq`: `sendmail -bp`, that is `postqueue -p` (see the `sendmail`
//! module of postern-cli).
fn main() -> std::process::ExitCode {
    mail_daemon::default_sigpipe();
    postern_cli::sendmail::main_with_args("mailq", std::env::args().skip(1).collect())
}
