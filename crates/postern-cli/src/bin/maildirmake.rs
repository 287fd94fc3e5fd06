//! `maildirmake`: see the `maildirmake` module of postern-cli.
fn main() -> std::process::ExitCode {
    postern_cli::maildirmake::main_with_args(std::env::args().skip(1).collect())
}
