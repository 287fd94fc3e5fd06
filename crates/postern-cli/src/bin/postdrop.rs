//! `postdrop`: see the `postdrop` module of postern-cli.
fn main() -> std::process::ExitCode {
    mail_daemon::default_sigpipe();
    postern_cli::postdrop::main_with_args(std::env::args().skip(1).collect())
}
