//! The imapd binary; everything is in the library (src/lib.rs), which
//! the fuzz target drives too.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    imapd::main()
}
