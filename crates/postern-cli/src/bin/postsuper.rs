//! `postsuper`: see the `postsuper` module of postern-cli.
fn main() -> std::process::ExitCode {
    postern_cli::postsuper::main_with_args(std::env::args().skip(1).collect())
}
