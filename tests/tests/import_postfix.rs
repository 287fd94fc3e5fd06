//! `postern import-postfix`: Debian's own postfix configuration (the
//! main.cf and master.cf the postfix package installs, read from the
//! package's files at test time) and the tutorial's `postconf -e` edits
//! become a main.toml and master.toml that pass `postern check`, with
//! every line Postern cannot use kept as a comment and reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Output};

/// Debian's files: the main.cf debconf writes (when postfix is
/// installed and configured here) or the package's template, and the
/// package's master.cf.
fn debian_files() -> Option<(String, String)> {
    let main = ["/etc/postfix/main.cf", "/usr/share/postfix/main.cf.debian"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())?;
    let master = ["/usr/share/postfix/master.cf.dist", "/etc/postfix/master.cf"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())?;
    Some((main, master))
}

fn import(from: &Path, to: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(tests::bin("postern"));
    c.arg("-c").arg(to).arg("import-postfix").arg(from).args(extra);
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn debians_postfix_configuration_with_the_tutorials_edits() {
    let Some((main_cf, master_cf)) = debian_files() else {
        tests::skip("Debian's postfix package is not installed (apt-get install postfix)");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let from = t.path().join("postfix");
    let to = t.path().join("postern");
    std::fs::create_dir_all(&from).unwrap();
    // The tutorial's edits, as `postconf -e` appends them, and a table
    // in the Postfix directory.
    let main_cf = format!(
        "{main_cf}\n\
         smtpd_banner = Bem Vindo - $myhostname\n\
         mydestination = $myhostname, localhost, $mydomain\n\
         mynetworks = 127.0.0.1/32 172.16.0.0/20\n\
         inet_interfaces = all\n\
         mydomain = exemplo.com.br\n\
         myorigin = /etc/mailname\n\
         myhostname = mail.exemplo.com.br\n\
         home_mailbox = Maildir/\n\
         virtual_alias_maps = hash:/NOWHERE/virtual\n\
         no_such_parameter_here = 1\n"
    )
    .replace("/NOWHERE", &from.display().to_string());
    std::fs::write(from.join("main.cf"), &main_cf).unwrap();
    std::fs::write(from.join("master.cf"), &master_cf).unwrap();
    std::fs::write(from.join("virtual"), "vendas@exemplo.com.br suporte\n").unwrap();

    let out = import(&from, &to, &[]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("the result passes postern check"), "{report}");

    let main = std::fs::read_to_string(to.join("main.toml")).unwrap();
    // Comments come over as they were; known parameters as TOML.
    for line in main_cf.lines().filter(|l| l.starts_with('#')) {
        assert!(main.contains(line), "comment {line:?} lost:\n{main}");
    }
    assert!(main.contains("smtpd_banner = \"Bem Vindo - $myhostname\"\n"), "{main}");
    assert!(main.contains("home_mailbox = \"Maildir/\"\n"), "{main}");
    assert!(main.contains("mynetworks = [\"127.0.0.1/32\", \"172.16.0.0/20\"]\n"), "{main}");
    // Debian's banner is overridden by the later line, as in Postfix.
    assert!(
        main.contains("# smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\n#   (import-postfix: main.cf line "),
        "{main}"
    );
    // Postfix's own settings and unknown ones stay as comments, reported.
    assert!(main.contains("# compatibility_level = 3.6\n#   (import-postfix: "), "{main}");
    assert!(report.contains("compatibility_level: not imported"), "{report}");
    assert!(main.contains("# no_such_parameter_here = 1\n"), "{main}");
    assert!(
        report.contains("no_such_parameter_here: not imported (Postern has no such parameter)"),
        "{report}"
    );
    // The table is copied beside main.toml and named there.
    let copy = to.join("virtual");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "vendas@exemplo.com.br suporte\n");
    assert!(
        main.contains(&format!("virtual_alias_maps = [\"hash:{}\"]", copy.display())),
        "{main}"
    );

    // postconf reads the result as Postfix's would.
    let pc = Command::new(tests::bin("postconf"))
        .arg("-c")
        .arg(&to)
        .args(["mydestination", "smtpd_banner", "myorigin"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pc.stdout),
        "mydestination = $myhostname, localhost, $mydomain\n\
         smtpd_banner = Bem Vindo - $myhostname\n\
         myorigin = /etc/mailname\n",
        "{}",
        text(&pc)
    );

    // master.cf: Postern's programs for the services it has, the rest
    // reported with what does their work.
    let master = std::fs::read_to_string(to.join("master.toml")).unwrap();
    assert!(
        master.contains(
            "name = \"smtp\"\ntype = \"inet\"\nlisten = [\"smtp\"]\nmaxproc = 2\ncommand = \"smtpd\"\n"
        ),
        "{master}"
    );
    assert!(master.contains("name = \"smtp\"\ntype = \"unix\"\n"), "{master}");
    assert!(master.contains("command = \"smtp-client\"\n"), "{master}");
    assert!(master.contains("name = \"relay\""), "{master}");
    assert!(master.contains("syslog_name = \"postern/relay\""), "{master}");
    assert!(master.contains("name = \"authd\""), "{master}");
    assert!(master.contains("name = \"imap-mail\""), "{master}");
    assert!(
        report.contains("service cleanup/unix (cleanup): not imported (built in: "),
        "{report}"
    );
    assert!(report.contains("service maildrop/unix (pipe): not imported"), "{report}");

    // An existing configuration is not replaced without --force.
    let again = import(&from, &to, &[]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("--force"), "{}", text(&again));
    assert!(import(&from, &to, &["--force"]).status.success());
}

#[test]
fn a_missing_postfix_directory_names_the_file() {
    let t = tempfile::tempdir().unwrap();
    let out = import(&t.path().join("nothing"), &t.path().join("out"), &[]);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("nothing/main.cf"), "{msg}");
}

#[test]
fn a_closed_pipe_ends_the_report_quietly() {
    // `postern import-postfix | head -1`: the report is longer than what
    // the reader takes; the command must end as Postfix's tools do (by
    // SIGPIPE), never with a panic on standard error.
    let Some((main_cf, master_cf)) = debian_files() else {
        tests::skip("Debian's postfix package is not installed (apt-get install postfix)");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let from = t.path().join("postfix");
    std::fs::create_dir_all(&from).unwrap();
    std::fs::write(from.join("main.cf"), main_cf).unwrap();
    std::fs::write(from.join("master.cf"), master_cf).unwrap();
    let mut child = Command::new(tests::bin("postern"))
        .arg("-c")
        .arg(t.path().join("out"))
        .arg("import-postfix")
        .arg("--from")
        .arg(&from)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(out.status.success() || out.status.signal() == Some(13), "{:?} {err}", out.status);
}
