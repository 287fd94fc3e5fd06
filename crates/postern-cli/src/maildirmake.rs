//! `maildirmake`: create Maildirs and Maildir++ folders, as Courier's
//! `maildirmake` does for the tutorial.
//!
//! ```text
//! maildirmake DIR            make the Maildir DIR (DIR/{tmp,new,cur})
//! maildirmake -f NAME DIR    make the folder DIR/.NAME inside Maildir DIR
//! maildirmake DIR/.NAME      the same, named by path (how the tutorial
//!                            makes .Enviados, .Rascunhos, .Lixeira, .Spam)
//! ```
//!
//! A folder gets `tmp/ new/ cur/` and an empty `maildirfolder` file, which
//! Courier and Dovecot use to recognise Maildir++ subfolders. Everything is
//! created mode 0700 (the file 0600) and owned by whoever runs the command;
//! like Courier's, it does not chown (run it as the user, or chown -R after).
//! An existing directory is an error (`maildirmake: DIR: File exists`, exit
//! status 1), as with Courier.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const PROG: &str = "maildirmake";

/// Runs `maildirmake` with `args` (without the program name).
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let mut err = std::io::stderr().lock();
    ExitCode::from(run(args, &mut err))
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Make the Maildir at this path.
    Maildir(PathBuf),
    /// Make folder `.name` inside the Maildir at `maildir`.
    Folder { maildir: PathBuf, name: String },
}

fn run(args: Vec<String>, err: &mut dyn Write) -> u8 {
    let action = match parse_args(args) {
        Ok(action) => action,
        Err(Usage::Help(text)) => {
            print!("{text}");
            return 0;
        }
        Err(Usage::Bad(message)) => {
            let _ = write!(err, "{PROG}: {message}");
            return 1;
        }
    };
    let result = match &action {
        Action::Maildir(dir) => mail_maildir::make(dir),
        Action::Folder { maildir, name } => mail_maildir::make_folder(maildir, name).map(drop),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "{PROG}: {}", describe(&e));
            1
        }
    }
}

/// Courier's command line: `[-f folder] maildir`.
#[derive(Debug, clap::Parser)]
#[command(
    name = PROG,
    about = "Make a Maildir, or a Maildir++ folder inside one",
    override_usage = "maildirmake [-f folder] maildir\n       maildirmake maildir/.folder",
    disable_version_flag = true
)]
struct Cli {
    /// Make the folder .FOLDER inside MAILDIR instead of a Maildir.
    #[arg(short = 'f', value_name = "folder")]
    folder: Option<String>,
    /// The Maildir to make (or to make the folder in); a last component
    /// starting with '.' names a folder of the Maildir above it.
    #[arg(value_name = "maildir")]
    maildir: PathBuf,
}

/// Why there is nothing to make: `--help` (text for stdout) or a usage
/// error naming the bad argument.
#[derive(Debug, PartialEq, Eq)]
enum Usage {
    Help(String),
    Bad(String),
}

fn parse_args(args: Vec<String>) -> Result<Action, Usage> {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once(PROG.to_owned()).chain(args))
        .map_err(|e| crate::clap_error(e, Usage::Help, Usage::Bad))?;
    let (dir, folder) = (cli.maildir, cli.folder);
    if let Some(name) = folder {
        return Ok(Action::Folder { maildir: dir, name });
    }
    // `maildirmake Maildir/.Enviados`: a last component starting with '.'
    // names a Maildir++ folder of the Maildir above it.
    if let Some(last) = dir.file_name().and_then(|n| n.to_str())
        && let Some(name) = last.strip_prefix('.')
    {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        return Ok(Action::Folder { maildir: parent, name: name.to_owned() });
    }
    Ok(Action::Maildir(dir))
}

/// `PATH: reason` in the shape of Courier's `perror(path)`, without Rust's
/// "(os error N)" suffix.
fn describe(e: &mail_maildir::Error) -> String {
    match (e.path(), e.io_error()) {
        (Some(path), Some(io)) => format!("{}: {}", path.display(), strerror(io)),
        _ => e.to_string(),
    }
}

fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn run_with(args: &[&str]) -> (u8, String) {
        let mut err = Vec::new();
        let code = run(args.iter().map(|s| s.to_string()).collect(), &mut err);
        (code, String::from_utf8(err).unwrap())
    }

    fn is_maildir(p: &Path) -> bool {
        ["tmp", "new", "cur"].iter().all(|s| p.join(s).is_dir())
    }

    #[test]
    fn makes_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        assert_eq!(run_with(&[md.to_str().unwrap()]), (0, String::new()));
        assert!(is_maildir(&md));
        assert!(!md.join("maildirfolder").exists());
    }

    #[test]
    fn existing_maildir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        run_with(&[md.to_str().unwrap()]);
        let (code, err) = run_with(&[md.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert_eq!(err, format!("maildirmake: {}: File exists\n", md.display()));
    }

    #[test]
    fn makes_folder_with_f() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        run_with(&[md.to_str().unwrap()]);
        assert_eq!(run_with(&["-f", "Spam", md.to_str().unwrap()]).0, 0);
        assert!(is_maildir(&md.join(".Spam")));
        assert!(md.join(".Spam/maildirfolder").is_file());
        assert_eq!(run_with(&["-fLixeira", md.to_str().unwrap()]).0, 0);
        assert!(is_maildir(&md.join(".Lixeira")));
        let (code, err) = run_with(&["-f", "Spam", md.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert_eq!(err, format!("maildirmake: {}: File exists\n", md.join(".Spam").display()));
    }

    #[test]
    fn makes_folder_by_path_as_in_the_tutorial() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        run_with(&[md.to_str().unwrap()]);
        for f in [".Enviados", ".Rascunhos", ".Lixeira", ".Spam/"] {
            let path = format!("{}/{f}", md.display());
            assert_eq!(run_with(&[&path]), (0, String::new()), "{f}");
        }
        for f in [".Enviados", ".Rascunhos", ".Lixeira", ".Spam"] {
            assert!(is_maildir(&md.join(f)));
            assert_eq!(fs::metadata(md.join(f).join("maildirfolder")).unwrap().len(), 0);
        }
    }

    #[test]
    fn parses_forms() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()).collect());
        assert_eq!(args(&["Maildir"]), Ok(Action::Maildir("Maildir".into())));
        assert_eq!(
            args(&[".Spam"]),
            Ok(Action::Folder { maildir: ".".into(), name: "Spam".into() })
        );
        assert_eq!(
            args(&["-f", "X", "--", "-odd"]),
            Ok(Action::Folder { maildir: "-odd".into(), name: "X".into() })
        );
        assert_eq!(
            args(&["-fSpam", "Maildir"]),
            Ok(Action::Folder { maildir: "Maildir".into(), name: "Spam".into() })
        );
        let bad = |a: &[&str]| match args(a) {
            Err(Usage::Bad(m)) => m,
            other => panic!("{a:?}: {other:?}"),
        };
        assert!(bad(&[]).contains("<maildir>"));
        assert!(bad(&["a", "b"]).contains("unexpected argument 'b'"));
        assert!(bad(&["-f"]).contains("'-f <folder>'"));
        assert!(bad(&["-q", "10S", "Maildir"]).contains("unexpected argument '-q'"));
        assert!(matches!(args(&["--help"]), Err(Usage::Help(h)) if h.contains("-f <folder>")));
    }

    #[test]
    fn bad_usage_and_names() {
        let (code, err) = run_with(&[]);
        assert_eq!(code, 1);
        assert!(err.starts_with("maildirmake: the following required arguments"), "{err}");
        assert!(err.contains("Usage: maildirmake [-f folder] maildir"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        run_with(&[md.to_str().unwrap()]);
        let (code, err) = run_with(&["-f", "../escape", md.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(err.contains("invalid folder name"), "{err}");
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn missing_parent_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("no/Maildir");
        let (code, err) = run_with(&[md.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert_eq!(err, format!("maildirmake: {}: No such file or directory\n", md.display()));
    }
}
