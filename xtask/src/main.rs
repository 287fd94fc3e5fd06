//! Project chores that are checked by `cargo test`: `cargo xtask tidy`
//! (also run as this crate's tests) enforces the project's conventions
//! that no compiler checks (docs/ARCHITECTURE.md): the dependency rules
//! between crates, a `//!` doc at the top of every source file, and no
//! `#[ignore]`/`#[should_panic]` tests.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod tidy;

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("tidy") => match tidy::run_all(&tidy::workspace_root()) {
            Ok(()) => {
                println!("tidy: ok");
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in problems {
                    eprintln!("tidy: {p}");
                }
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo xtask tidy");
            ExitCode::from(2)
        }
    }
}
