//! Issue 9: master starts pop3-mail processes on demand (`spawn =
//! "on-demand"` in master.toml), one per session, at most `maxproc` at
//! once: a login beyond that waits for a process to become free, and a
//! process exits when its session ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;
use tests::pop3::Client;
use tests::{Instance, Options};

fn busy(inst: &Instance) -> Vec<u32> {
    let r = inst.status();
    let s = r.services.iter().find(|s| s.name == "pop3-mail").unwrap();
    s.workers.iter().map(|w| w.pid).collect()
}

#[test]
fn mail_processes_start_per_session_up_to_maxproc() {
    let inst = Instance::start_with(Options {
        users: vec!["ana:ana".into(), "bia:bia".into()],
        before_start: Some(|dir: &std::path::Path| {
            let p = dir.join("master.toml");
            let text = std::fs::read_to_string(&p).unwrap();
            let text = text.replace(
                "spawn = \"on-demand\"\nmaxproc = 20\n",
                "spawn = \"on-demand\"\nmaxproc = 2\n",
            );
            assert!(text.contains("maxproc = 2\ncommand = \"pop3d\"\nargs = [\"mail\"]"), "{text}");
            std::fs::write(&p, text).unwrap();
        }),
        ..Options::default()
    });
    assert!(busy(&inst).is_empty());
    let pop3 = inst.addr("pop3");
    let mut a = Client::logged_in(&pop3, "suporte", "suporte");
    let mut b = Client::logged_in(&pop3, "ana", "ana");
    let two = busy(&inst);
    assert_eq!(two.len(), 2, "{two:?}");
    // The third login waits: both processes serve a session.
    let mut c = Client::connect(&pop3);
    c.greeting();
    c.ok("USER bia");
    c.send("PASS bia");
    assert_eq!(c.line_within(Duration::from_secs(2)), None);
    a.ok("QUIT");
    assert_eq!(c.line_within(Duration::from_secs(8)).as_deref(), Some("+OK Logged in."));
    assert_eq!(c.ok("STAT"), "+OK 0 0");
    // The process that served suporte is gone; the others are busy.
    let gone: Vec<u32> = two.iter().copied().filter(|p| !tests::alive(*p)).collect();
    assert_eq!(gone.len(), 1, "{two:?}");
    b.ok("QUIT");
    c.ok("QUIT");
    let idle = tests::wait_until(Duration::from_secs(10), || {
        two.iter().all(|p| !tests::alive(*p)).then_some(())
    });
    assert!(idle.is_some(), "mail processes outlived their sessions");
}
