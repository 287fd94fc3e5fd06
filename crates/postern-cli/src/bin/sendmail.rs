//! `sendmail`: see the `sendmail` module of postern-cli.
fn main() -> std::process::ExitCode {
    mail_daemon::default_sigpipe();
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_else(|| "sendmail".into());
    postern_cli::sendmail::main_with_args(&argv0, args.collect())
}
