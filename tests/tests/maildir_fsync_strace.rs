//! A new Maildir or Maildir++ folder must survive a crash right after it
//! is made: `maildirmake` (the same creation code as `postern init` and
//! as a first delivery) fsyncs every directory it creates and the
//! directory that holds its entry. Observed from outside with
//! `strace -f -e trace=mkdir,openat,fsync`: this proves the system calls
//! are made, in that order, not that the file system honours them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One system call of interest, in the order strace saw them.
#[derive(Debug)]
enum Call {
    Mkdir(PathBuf),
    Fsync(PathBuf),
}

/// Runs `maildirmake ARGS` under strace; returns its mkdir and fsync
/// calls (fsyncs resolved to the path their fd was opened on), or `None`
/// when strace cannot run here.
fn traced(args: &[&Path], flag: Option<&str>, log: &Path) -> Option<Vec<Call>> {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=mkdir,mkdirat,open,openat,fsync,fdatasync", "-o"])
        .arg(log)
        .arg(tests::bin("maildirmake"));
    if let Some(f) = flag {
        cmd.args(["-f", f]);
    }
    cmd.args(args);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot run strace: {e}");
            return None;
        }
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if !out.status.success() && text.is_empty() {
        eprintln!("skipped: strace does not work here: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    assert!(out.status.success(), "maildirmake failed: {out:?}\n{text}");
    let mut fds: HashMap<(String, String), PathBuf> = HashMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        let Some((call, result)) = rest.rsplit_once(" = ") else { continue };
        let result = result.split_whitespace().next().unwrap_or("");
        let quoted = || call.split('"').nth(1).map(PathBuf::from);
        if call.starts_with("mkdir") && result == "0" {
            calls.push(Call::Mkdir(quoted().unwrap()));
        } else if call.starts_with("open") && !result.starts_with('-') {
            if let Some(p) = quoted() {
                fds.insert((pid.to_owned(), result.to_owned()), p);
            }
        } else if (call.starts_with("fsync(") || call.starts_with("fdatasync(")) && result == "0" {
            let fd = call.split(['(', ')']).nth(1).unwrap_or("");
            if let Some(p) = fds.get(&(pid.to_owned(), fd.to_owned())) {
                calls.push(Call::Fsync(p.clone()));
            }
        }
    }
    Some(calls)
}

/// Every directory made is fsynced after it was made, and so is its
/// parent; returns the directories made.
fn check(calls: &[Call]) -> Vec<PathBuf> {
    let mut made = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let Call::Mkdir(dir) = c else { continue };
        made.push(dir.clone());
        let synced_later =
            |p: &Path| calls[i + 1..].iter().any(|c| matches!(c, Call::Fsync(s) if s == p));
        assert!(synced_later(dir), "{} is never fsynced after its mkdir: {calls:?}", dir.display());
        let parent = dir.parent().unwrap();
        assert!(
            synced_later(parent),
            "the parent {} of the new {} is never fsynced after the mkdir: {calls:?}",
            parent.display(),
            dir.display()
        );
    }
    made
}

#[test]
fn maildirmake_fsyncs_new_directories_and_their_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("Maildir");
    let Some(calls) = traced(&[&md], None, &tmp.path().join("make.log")) else { return };
    let made = check(&calls);
    assert_eq!(made, [md.clone(), md.join("tmp"), md.join("new"), md.join("cur")], "{calls:?}");

    let Some(calls) = traced(&[&md], Some("Enviados"), &tmp.path().join("folder.log")) else {
        return;
    };
    let made = check(&calls);
    let folder = md.join(".Enviados");
    assert_eq!(made, [folder.clone(), folder.join("tmp"), folder.join("new"), folder.join("cur")]);
    // The folder's `maildirfolder` marker is in before its last fsync.
    assert!(folder.join("maildirfolder").is_file());
}
