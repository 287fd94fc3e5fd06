//! master under systemd's `Type=notify` (deploy/postern.service): with
//! `$NOTIFY_SOCKET` set, as systemd sets it, `postern start-fg` (which
//! becomes master) sends `READY=1` once every service's workers are
//! ready and SMTP answers, `RELOADING=1` with `MONOTONIC_USEC=` and then
//! `READY=1` around `postern reload`, and `STOPPING=1` on SIGTERM (how
//! systemd stops it), then exits. The socket here is this test's own
//! datagram socket, read as systemd reads it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::{ChildGuard, bin};

/// The next notification datagram, within `timeout`.
fn next(sock: &UnixDatagram, timeout: Duration) -> String {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification from master in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_reloading_stopping() {
    let tmp = tempfile::Builder::new().prefix("postern-test-").tempdir().unwrap();
    let dir = tmp.path().join("inst");
    let out = Command::new(bin("postern"))
        .args(["init", "--dev"])
        .arg(&dir)
        .arg("--any-port")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = tmp.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    let started = Instant::now();
    let mut master = ChildGuard(
        Command::new(bin("postern"))
            .arg("-c")
            .arg(&dir)
            .arg("start-fg")
            .env("NOTIFY_SOCKET", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ready = next(&sock, Duration::from_secs(30));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    eprintln!("READY=1 after {:?}", started.elapsed());
    // Ready means listening: status answers and shows every worker ready.
    let status = Command::new(bin("postern"))
        .arg("-c")
        .arg(&dir)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let report: mail_ipc::control::StatusReport = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report.master_pid, master.0.id(), "start-fg became master");
    let smtp = report.services.iter().find(|s| s.name == "smtp" && s.kind == "inet").unwrap();
    let mut c = tests::smtp::Client::connect(&smtp.listen[0]);
    c.expect_code(220);
    c.cmd("QUIT", 221);

    let out = Command::new(bin("postern")).arg("-c").arg(&dir).arg("reload").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reloading = next(&sock, Duration::from_secs(10));
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading:?}");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
    let ready = next(&sock, Duration::from_secs(10));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopping = next(&sock, Duration::from_secs(10));
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = master.0.try_wait().unwrap() {
            assert!(st.success(), "master exited with {st}");
            break;
        }
        assert!(Instant::now() < deadline, "master did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
