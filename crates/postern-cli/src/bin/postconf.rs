//! `postconf`: see the `postconf` module of postern-cli.
fn main() -> std::process::ExitCode {
    postern_cli::postconf::main_with_args(std::env::args().skip(1).collect())
}
