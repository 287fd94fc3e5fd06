//! `postern pw [-s SCHEME] [-p PASSWORD] [-u USER]`: prints a password
//! hash for the passwd-file, as Dovecot's `doveadm pw` does
//! (`{YESCRYPT}$y$j9T$...`, paste it into the second field of a line).
//!
//! Schemes: `YESCRYPT` (the default, as Debian 12 hashes /etc/shadow),
//! `SHA512-CRYPT`, and `PLAIN` only when named (`-s PLAIN`). Without `-p`
//! the password is read from the terminal twice, without echo, or once
//! from standard input when that is not a terminal (a script:
//! `echo secret | postern pw`). `-u` is accepted for `doveadm pw`'s
//! command lines; none of these schemes is salted with the user name.

use mail_auth::Scheme;
use std::io::{BufRead, Write};

/// The longest password authd accepts (`mail_ipc::auth::MAX_PASSWORD`):
/// a longer one could never be used to log in.
const MAX_PASSWORD: usize = mail_ipc::auth::MAX_PASSWORD;

/// The options of `postern pw`.
#[derive(Debug, Clone, clap::Args)]
pub struct PwOptions {
    /// The scheme: YESCRYPT (default), SHA512-CRYPT, or PLAIN.
    #[arg(short = 's', value_name = "SCHEME")]
    pub scheme: Option<String>,
    /// The password (visible to other users in ps; without -p it is read
    /// from the terminal).
    #[arg(short = 'p', value_name = "PASSWORD")]
    pub password: Option<String>,
    /// The user name (accepted as doveadm pw does; no scheme here uses it).
    #[arg(short = 'u', value_name = "USER")]
    pub user: Option<String>,
}

/// Runs `postern pw`: prints the hash on stdout.
pub fn pw(opts: &PwOptions) -> Result<(), String> {
    let scheme = scheme(opts.scheme.as_deref())?;
    let password = match &opts.password {
        Some(p) => p.clone(),
        None => read_password()?,
    };
    let hash = hash(scheme, &password)?;
    println!("{hash}");
    Ok(())
}

fn scheme(name: Option<&str>) -> Result<Scheme, String> {
    match name {
        None => Ok(Scheme::Yescrypt),
        Some(n) => Scheme::parse(n)
            .ok_or_else(|| format!("unknown scheme {n:?}: use YESCRYPT, SHA512-CRYPT or PLAIN")),
    }
}

/// Checks the password and hashes it.
fn hash(scheme: Scheme, password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("empty password".to_owned());
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD} bytes, the most authd accepts"
        ));
    }
    if password.contains('\0') {
        return Err("the password contains a NUL byte".to_owned());
    }
    Ok(mail_auth::hash_password_with(scheme, password))
}

fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if std::io::IsTerminal::is_terminal(&stdin) {
        let first = prompt_hidden("Enter new password: ")?;
        let second = prompt_hidden("Retype new password: ")?;
        if first != second {
            return Err("passwords don't match".to_owned());
        }
        Ok(first)
    } else {
        read_line(&mut stdin.lock())
    }
}

/// One line of `input`, without its line ending.
fn read_line<R: BufRead>(input: &mut R) -> Result<String, String> {
    let mut line = String::new();
    std::io::Read::take(&mut *input, MAX_PASSWORD as u64 + 2)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

/// Asks on the terminal with echo off, and turns echo back on whatever
/// happens.
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| format!("cannot read the terminal settings: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet)
        .map_err(|e| format!("cannot turn off the terminal's echo: {e}"))?;
    let line = read_line(&mut stdin.lock());
    let _ = tcsetattr(&stdin, SetArg::TCSAFLUSH, &saved);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_default() {
        assert_eq!(scheme(None), Ok(Scheme::Yescrypt));
        assert_eq!(scheme(Some("sha512-crypt")), Ok(Scheme::Sha512Crypt));
        assert_eq!(scheme(Some("PLAIN")), Ok(Scheme::Plain));
        assert!(scheme(Some("MD5")).unwrap_err().contains("unknown scheme"));
    }

    #[test]
    fn hashes_verify() {
        for s in [Scheme::Yescrypt, Scheme::Sha512Crypt, Scheme::Plain] {
            let h = hash(s, "segredo").unwrap();
            assert!(mail_auth::verify_password(&h, "segredo"), "{h}");
            assert!(!mail_auth::verify_password(&h, "segred0"), "{h}");
        }
        assert!(hash(Scheme::Yescrypt, "").is_err());
        assert!(hash(Scheme::Yescrypt, &"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(hash(Scheme::Plain, "a\0b").is_err());
    }

    #[test]
    fn stdin_line() {
        assert_eq!(read_line(&mut &b"secret\n"[..]).unwrap(), "secret");
        assert_eq!(read_line(&mut &b"secret\r\nmore\n"[..]).unwrap(), "secret");
        assert_eq!(read_line(&mut &b"no newline"[..]).unwrap(), "no newline");
        assert_eq!(read_line(&mut &b""[..]).unwrap(), "");
        // A longer line is cut, and then refused as too long by hash().
        let long = "x".repeat(5000);
        let got = read_line(&mut long.as_bytes()).unwrap();
        assert!(hash(Scheme::Plain, &got).is_err());
    }
}
