//! `newaliases`: `sendmail -bi` (see the `sendmail` module of postern-cli).
fn main() -> std::process::ExitCode {
    mail_daemon::default_sigpipe();
    postern_cli::sendmail::main_with_args("newaliases", std::env::args().skip(1).collect())
}
