//! `postcat`: see the `postcat` module of postern-cli.
fn main() -> std::process::ExitCode {
    postern_cli::postcat::main_with_args(std::env::args().skip(1).collect())
}
