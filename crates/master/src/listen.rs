//! Binding the listeners of master.toml services. master binds every
//! socket itself and keeps it for its whole life, so a worker restart or
//! a reload never closes a listening socket: clients that connect while
//! no worker is accepting wait in the kernel's backlog.

use anyhow::{Context as _, bail};
use mail_config::{Main, ServiceDef, ServiceKind, settings};
use socket2::{Domain, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// A bound listening socket.
#[derive(Debug)]
pub(crate) struct Bound {
    /// What was actually bound: `127.0.0.1:40123` or a socket path.
    pub(crate) display: String,
    pub(crate) fd: OwnedFd,
}

const BACKLOG: i32 = 1024;

/// Well-known service names that may stand for a port.
fn port_by_name(name: &str) -> Option<u16> {
    Some(match name {
        "smtp" => 25,
        "submission" => 587,
        "smtps" | "submissions" => 465,
        "pop3" => 110,
        "pop3s" => 995,
        "imap" | "imap2" => 143,
        "imaps" => 993,
        _ => return name.parse().ok(),
    })
}

/// The addresses `inet_interfaces` names.
fn interfaces(main: &Main) -> anyhow::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for item in settings::Master::new(main).inet_interfaces {
        match item.as_str() {
            "all" => out.extend([IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)]),
            "loopback-only" | "localhost" => out.extend([IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]),
            other => out.push(
                other
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .with_context(|| format!("inet_interfaces: {other:?} is not an IP address, \"all\" or \"loopback-only\""))?,
            ),
        }
    }
    Ok(out)
}

/// Expands one `listen` entry into socket addresses.
fn addresses(main: &Main, spec: &str) -> anyhow::Result<Vec<SocketAddr>> {
    if let Some(port) = port_by_name(spec) {
        return Ok(interfaces(main)?.into_iter().map(|ip| SocketAddr::new(ip, port)).collect());
    }
    if let Ok(sa) = spec.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    let (host, port) = spec
        .rsplit_once(':')
        .with_context(|| format!("listen {spec:?}: expected host:port or a port"))?;
    let port =
        port_by_name(port).with_context(|| format!("listen {spec:?}: unknown port {port:?}"))?;
    let ips: Vec<IpAddr> = match host {
        "localhost" => vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        "*" | "" => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
        h => vec![
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .with_context(|| format!("listen {spec:?}: {h:?} is not an IP address"))?,
        ],
    };
    Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // One socket per family, as Postfix does, so "all" binds both.
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(BACKLOG)?;
    Ok(sock)
}

/// Where a unix service's socket lives: the path its clients look up
/// with `MasterFile::socket_path`.
pub(crate) fn unix_path(queue_dir: &std::path::Path, def: &ServiceDef) -> PathBuf {
    queue_dir.join(def.unix_socket())
}

/// Binds every listener of a service.
pub(crate) fn bind(main: &Main, def: &ServiceDef) -> anyhow::Result<Vec<Bound>> {
    match def.kind {
        ServiceKind::Inet => {
            let mut out = Vec::new();
            for spec in &def.listen {
                let addrs = addresses(main, spec)?;
                let many = addrs.len() > 1;
                for addr in addrs {
                    match bind_tcp(addr) {
                        Ok(sock) => {
                            let local =
                                sock.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(addr);
                            out.push(Bound { display: local.to_string(), fd: sock.into() });
                        }
                        // "all" on a host without IPv6 must not be fatal.
                        Err(e) if many && addr.is_ipv6() => {
                            tracing::warn!(
                                "service {}: cannot bind {addr}: {e}; continuing without it",
                                def.name
                            );
                        }
                        Err(e) => bail!("service {}: cannot bind {addr}: {e}", def.name),
                    }
                }
            }
            if out.is_empty() {
                bail!("service {}: no address to listen on", def.name);
            }
            Ok(out)
        }
        ServiceKind::Unix => {
            let path = unix_path(&settings::Common::new(main).queue_directory, def);
            bind_unix(&path, def.private, mail_owner_ids(main))
                .map(|fd| vec![Bound { display: path.display().to_string(), fd }])
        }
    }
}

/// mail_owner's uid and gid when master runs as root and mail_owner is
/// another account: the owner of the queue's working directories and of
/// the service sockets, so unprivileged workers can use them.
pub(crate) fn mail_owner_ids(main: &Main) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user =
        nix::unistd::User::from_name(&settings::Common::new(main).mail_owner).ok().flatten()?;
    (!user.uid.is_root()).then(|| (user.uid.as_raw(), user.gid.as_raw()))
}

fn bind_unix(
    path: &std::path::Path,
    private: bool,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<OwnedFd> {
    use std::os::unix::fs::PermissionsExt;
    // A socket left by a master that was killed; we hold the pid file, so
    // nobody else is serving it.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove stale socket {}", path.display()));
        }
        _ => {}
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("bind {}", path.display()))?;
    let mode = if private { 0o600 } else { 0o666 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(l.into())
}

/// Binds the control socket.
pub(crate) fn bind_control(
    path: &std::path::Path,
) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let fd = bind_unix(path, true, None)?;
    Ok(fd.into())
}
