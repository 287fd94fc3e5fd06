//! Issue 11's install test: `deploy/build-deb --debug` builds the package
//! from the binaries this test run built, and `tests/install-deb.sh`
//! installs it with apt into a fresh Debian 12 root (debootstrap, cached
//! under target/install-test), runs the Postfix tutorial there in its own
//! network namespace (postconf -e, the user suporte, mail -s, SMTP on 25,
//! maildirmake, POP3 retr 1, IMAP LOGIN and LIST), upgrades the package
//! over itself and removes and purges it, checking that configuration and
//! mail survive what they should. The script's steps are in its header.
//!
//! Root only, and only where debootstrap is installed and Debian's mirror
//! answers; otherwise it says `skipped: ...`. Prints how long it took.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[test]
fn install_tutorial_upgrade_remove() {
    if !tests::is_root() {
        tests::skip("needs root: debootstrap, chroot and network namespaces");
        return;
    }
    for tool in ["debootstrap", "dpkg-deb", "dpkg-shlibdeps", "unshare", "ip", "curl"] {
        if !tests::have_tool(tool) {
            tests::skip(&format!("{tool} is not installed (tests/run.sh installs it)"));
            return;
        }
    }
    let started = Instant::now();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let bin_dir = tests::bin_dir();
    let build = Command::new(workspace.join("deploy/build-deb"))
        .arg("--debug")
        .env("POSTERN_BIN_DIR", &bin_dir)
        .current_dir(&workspace)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "build-deb: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let deb = String::from_utf8(build.stdout).unwrap().lines().last().unwrap().to_owned();
    let built = started.elapsed();

    // Beside the binaries, so a different CARGO_TARGET_DIR gets its own.
    let cache = bin_dir.parent().unwrap().join("install-test");
    let out = Command::new(workspace.join("tests/install-deb.sh"))
        .arg(&deb)
        .arg(&cache)
        .current_dir(&workspace)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(77) {
        let reason = stdout.lines().find_map(|l| l.strip_prefix("skipped: ")).unwrap_or("?");
        tests::skip(reason);
        return;
    }
    assert!(
        out.status.success(),
        "install-deb.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tutorial: all steps passed"), "{stdout}");
    eprintln!(
        "install_deb: package built in {:.0}s, installed and tested in {:.0}s",
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
}
