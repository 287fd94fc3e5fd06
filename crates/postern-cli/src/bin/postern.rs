//! `postern`: start, stop, reload, inspect the mail system; make dev instances.
fn main() -> std::process::ExitCode {
    mail_daemon::default_sigpipe();
    postern_cli::postern::main_with_args(std::env::args().skip(1).collect())
}
