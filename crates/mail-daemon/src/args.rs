//! The argv contract between master and its children:
//! `--config-dir DIR --service NAME --generation N --listen-fds K
//! [--unpriv] [-o name=value]...`.

use anyhow::{Context as _, bail};
use std::path::PathBuf;

/// A child's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Configuration directory.
    pub config_dir: PathBuf,
    /// Service name from master.toml.
    pub service: String,
    /// Generation, bumped by master at each reload or restart.
    pub generation: u64,
    /// How many listening sockets start at fd 4.
    pub listen_fds: usize,
    /// Drop to mail_owner when started as root.
    pub unpriv: bool,
    /// `-o name=value` overrides from master.toml.
    pub overrides: Vec<(String, String)>,
    /// Anything else (service `args`).
    pub extra: Vec<String>,
}

impl Args {
    /// Parses the arguments after argv\[0\].
    pub fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut a = Args {
            config_dir: mail_config::config_dir_from(None),
            service: String::new(),
            generation: 0,
            listen_fds: 0,
            unpriv: false,
            overrides: Vec::new(),
            extra: Vec::new(),
        };
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--config-dir" | "-c" => a.config_dir = PathBuf::from(value("--config-dir")?),
                "--service" => a.service = value("--service")?,
                "--generation" => {
                    a.generation = value("--generation")?.parse().context("--generation")?
                }
                "--listen-fds" => {
                    a.listen_fds = value("--listen-fds")?.parse().context("--listen-fds")?
                }
                "--unpriv" => a.unpriv = true,
                "-o" => {
                    let kv = value("-o")?;
                    let Some((k, v)) = kv.split_once('=') else {
                        bail!("-o {kv}: expected name=value")
                    };
                    a.overrides.push((k.trim().to_owned(), v.trim().to_owned()));
                }
                _ => a.extra.push(arg),
            }
        }
        if a.listen_fds > 64 {
            bail!("--listen-fds {}: too many", a.listen_fds);
        }
        Ok(a)
    }

    /// The argv master passes (the inverse of [`Args::parse`]).
    pub fn to_argv(&self) -> Vec<String> {
        let mut v = vec![
            "--config-dir".into(),
            self.config_dir.display().to_string(),
            "--service".into(),
            self.service.clone(),
            "--generation".into(),
            self.generation.to_string(),
            "--listen-fds".into(),
            self.listen_fds.to_string(),
        ];
        if self.unpriv {
            v.push("--unpriv".into());
        }
        for (k, val) in &self.overrides {
            v.push("-o".into());
            v.push(format!("{k}={val}"));
        }
        v.extend(self.extra.iter().cloned());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = Args {
            config_dir: "/etc/postern".into(),
            service: "smtpd".into(),
            generation: 3,
            listen_fds: 2,
            unpriv: true,
            overrides: vec![("smtpd_banner".into(), "hi $myhostname".into())],
            extra: vec!["-v".into()],
        };
        assert_eq!(Args::parse(a.to_argv().into_iter()).unwrap(), a);
        assert!(Args::parse(["-o".to_string(), "nokey".into()].into_iter()).is_err());
    }
}
