//! DNS for Postern: one stub resolver (hickory-resolver, plain UDP and
//! TCP only) shared by the daemons that look names up: smtpd for its
//! clients' names, the SMTP client for MX and address records.
//!
//! [`Resolver::new`] takes [`Params`]: the nameservers to ask
//! (`dns_resolver_addresses`; empty means `/etc/resolv.conf`), the time
//! per query and the number of attempts, and the switch that turns every
//! lookup off (`disable_dns_lookups`). A disabled resolver never sends a
//! packet: each lookup returns [`Error::Disabled`].
//!
//! [`Resolver::reverse_confirmed`] names a client the way Postfix's smtpd
//! does for `client=NAME[ADDR]`: the PTR names of the address, then the
//! address records of each name, and a name is used only if one of its
//! addresses is the client's; otherwise the client is `unknown`, and the
//! unconfirmed PTR name is kept as the reverse name (Postfix's
//! `reverse_client_name`) for restrictions that want it.
//!
//! Everything a DNS server sends is outside input. Names are checked
//! ([`valid_hostname`]: length, labels, characters; no address-shaped
//! names) before they are used or logged, so a hostile answer cannot put
//! text into a log line or a Received header; at most [`NAME_LIMIT`] PTR
//! names and [`ADDRESS_LIMIT`] addresses per name are looked at; and the
//! whole client lookup is bounded by the time limit its caller gives.
//!
//! Lookups are of fully qualified names only: no search list or default
//! domain is appended, as Postfix's resolver calls do (it clears
//! `RES_DEFNAMES` and `RES_DNSRCH`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, RetryDnsHandle};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::system_conf::read_system_conf;
use hickory_resolver::{
    NameServerPool, PoolContext, Resolver as Hickory, TlsConfig, TokioResolver,
};
use tokio::time::Instant;

/// The most PTR names of one address that are checked (Postfix looks at
/// one; an address may legitimately have a few).
pub const NAME_LIMIT: usize = 4;

/// The most addresses of one name compared with the client's address,
/// and the most MX hosts of one domain returned.
pub const ADDRESS_LIMIT: usize = 32;

/// The longest host name, without the final dot (RFC 1035 §2.3.4).
const NAME_MAX: usize = 253;

/// The longest label (RFC 1035 §2.3.4).
const LABEL_MAX: usize = 63;

/// How the resolver is set up; see [`Params::from_config`] for the
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// False: no lookups at all (`disable_dns_lookups = yes`).
    pub enabled: bool,
    /// The nameservers, asked in order; empty means those of
    /// `/etc/resolv.conf` (then `/etc/hosts` is read first, as libc does).
    pub nameservers: Vec<SocketAddr>,
    /// How long one query to one nameserver may take.
    pub timeout: Duration,
    /// How many times a query is sent before the lookup fails.
    pub attempts: usize,
}

impl Params {
    /// From `disable_dns_lookups`, `dns_resolver_addresses`,
    /// `dns_resolver_timeout` and `dns_resolver_attempts`.
    pub fn from_config(dns: &mail_config::settings::Dns) -> Params {
        Params {
            enabled: !dns.disable_dns_lookups,
            nameservers: dns.dns_resolver_addresses.clone(),
            timeout: dns.dns_resolver_timeout,
            attempts: dns.dns_resolver_attempts,
        }
    }

    /// A resolver that asks only `nameservers`, with short timeouts
    /// (for tests).
    pub fn with_nameservers(nameservers: Vec<SocketAddr>) -> Params {
        Params { enabled: true, nameservers, timeout: Duration::from_secs(2), attempts: 1 }
    }
}

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// DNS lookups are turned off.
    Disabled,
    /// The name asked for is not a valid host name.
    InvalidName,
    /// The name does not exist, or has no record of the type asked for
    /// (a permanent answer: Postfix's "Host not found").
    NotFound,
    /// No answer now (timeout, SERVFAIL, no nameserver reachable): try
    /// again later. The text says why, for logs.
    Temporary(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Disabled => f.write_str("DNS lookups are disabled"),
            Error::InvalidName => f.write_str("invalid host name"),
            Error::NotFound => f.write_str("Host not found"),
            Error::Temporary(why) => write!(f, "Temporary failure in name resolution ({why})"),
        }
    }
}

impl std::error::Error for Error {}

/// The outcome of a name lookup for a client, as Postfix's smtpd keeps it
/// (`name_status`, `reverse_name_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameStatus {
    /// Found (and, for the client name, confirmed).
    Ok,
    /// The lookup failed for now (timeout, SERVFAIL): a restriction should
    /// answer 4xx, not 5xx.
    Temporary,
    /// There is no name (no PTR record, or no valid one).
    Permanent,
    /// The PTR name exists but none of its addresses is the client's.
    Forged,
}

/// A client's names: what logs and Received headers show (`name`) and the
/// unconfirmed PTR name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName {
    /// The confirmed name, or `unknown`.
    pub name: String,
    /// How `name` was found.
    pub name_status: NameStatus,
    /// The first valid PTR name, confirmed or not, or `unknown`
    /// (Postfix's `reverse_client_name`).
    pub reverse_name: String,
    /// How `reverse_name` was found (never [`NameStatus::Forged`]).
    pub reverse_name_status: NameStatus,
}

/// Postfix's name for a client without a (confirmed) name.
pub const UNKNOWN: &str = "unknown";

impl ClientName {
    /// No name, for the reason `status`.
    pub fn unknown(status: NameStatus) -> ClientName {
        ClientName {
            name: UNKNOWN.to_owned(),
            name_status: status,
            reverse_name: UNKNOWN.to_owned(),
            reverse_name_status: status,
        }
    }
}

/// One mail exchanger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// Lower is tried first.
    pub preference: u16,
    /// A valid host name, lower case, without the final dot.
    pub host: String,
}

/// The mail exchangers of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mx {
    /// Sorted by preference; hosts of equal preference in random order
    /// (RFC 5321 §5.1). Never empty.
    Hosts(Vec<MxHost>),
    /// The domain says it accepts no mail (RFC 7505 null MX: one MX
    /// record, preference 0, host `.`): bounce at once.
    Null,
    /// The domain exists but has no (valid) MX record: deliver to its own
    /// addresses, as if it were its one MX host (RFC 5321 §5.1).
    Implicit,
}

/// The resolver. Cheap to clone; clones share one cache.
#[derive(Clone)]
pub struct Resolver {
    inner: Option<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// Forward lookups, cached.
    resolver: TokioResolver,
    /// PTR queries, sent to the nameservers as they are: hickory's
    /// resolver answers every address in 127.0.0.0/8 and ::1 itself with
    /// `localhost` (RFC 6761), which would hide what the nameservers say
    /// about a loopback client (and make a test from 127.0.0.2 impossible).
    ptr: RetryDnsHandle<NameServerPool<TokioRuntimeProvider>>,
    options: ResolverOpts,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("enabled", &self.inner.is_some()).finish()
    }
}

impl Resolver {
    /// A resolver as `params` say. Fails only when `params.nameservers` is
    /// empty and `/etc/resolv.conf` cannot be read; the text says why.
    pub fn new(params: &Params) -> Result<Resolver, String> {
        if !params.enabled {
            return Ok(Resolver::disabled());
        }
        let (config, mut opts) = if params.nameservers.is_empty() {
            read_system_conf().map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?
        } else {
            let servers = params.nameservers.iter().map(|a| nameserver(*a)).collect();
            let mut opts = ResolverOpts::default();
            // Only the servers given: a test pointed at its own server
            // must not get answers from this host's files.
            opts.use_hosts_file = ResolveHosts::Never;
            (ResolverConfig::from_name_servers(servers), opts)
        };
        opts.timeout = params.timeout;
        opts.attempts = params.attempts.max(1);
        // A truncated or failed UDP answer is asked again over TCP.
        opts.try_tcp_on_error = true;
        let provider = TokioRuntimeProvider::default();
        let context = Arc::new(PoolContext::new(
            opts.clone(),
            TlsConfig::new().map_err(|e| format!("cannot set up the resolver: {e}"))?,
        ));
        let pool =
            NameServerPool::from_config(config.name_servers().to_vec(), context, provider.clone());
        let ptr = RetryDnsHandle::new(pool, opts.attempts);
        let mut builder = Hickory::builder_with_config(config, provider);
        *builder.options_mut() = opts.clone();
        let resolver = builder.build().map_err(|e| format!("cannot set up the resolver: {e}"))?;
        Ok(Resolver { inner: Some(Inner { resolver, ptr, options: opts }) })
    }

    /// A resolver that looks nothing up.
    pub fn disabled() -> Resolver {
        Resolver { inner: None }
    }

    /// False when every lookup returns [`Error::Disabled`].
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    fn hickory(&self) -> Result<&TokioResolver, Error> {
        self.inner.as_ref().map(|i| &i.resolver).ok_or(Error::Disabled)
    }

    /// The PTR records of `ip`, straight from the nameservers.
    async fn ptr_records(&self, ip: IpAddr) -> Result<Vec<Name>, Error> {
        let inner = self.inner.as_ref().ok_or(Error::Disabled)?;
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = inner.options.recursion_desired;
        options.use_edns = inner.options.edns0;
        options.edns_payload_len = inner.options.edns_payload_len;
        let query = Query::query(Name::from(ip), RecordType::PTR);
        let mut answers = inner.ptr.lookup(query, options);
        let response = match answers.next().await {
            None => return Err(Error::Temporary("no answer".to_owned())),
            Some(Err(e)) => return Err(classify(e)),
            Some(Ok(r)) => r,
        };
        match response.response_code {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return Err(Error::NotFound),
            code => return Err(Error::Temporary(printable(&code.to_string()))),
        }
        Ok(response
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(ptr) => Some(ptr.0.clone()),
                _ => None,
            })
            .collect())
    }

    /// The valid PTR names of `ip` (at most [`NAME_LIMIT`]), lower case,
    /// without the final dot. Invalid names in the answer are skipped
    /// (logged, made printable); [`Error::NotFound`] if no valid one is left.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, Error> {
        let ip = ip.to_canonical();
        let mut names = Vec::new();
        for ptr in self.ptr_records(ip).await? {
            let text = ptr.to_ascii();
            match valid_hostname(&text) {
                Some(name) if !names.contains(&name) => names.push(name),
                Some(_) => {}
                None => tracing::warn!("{ip}: malformed PTR name: {}", printable(&text)),
            }
            if names.len() == NAME_LIMIT {
                break;
            }
        }
        if names.is_empty() { Err(Error::NotFound) } else { Ok(names) }
    }

    /// The IPv4 (A) and IPv6 (AAAA) addresses of `host`, at most
    /// [`ADDRESS_LIMIT`] of them, IPv4 first.
    pub async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, Error> {
        let v4 = self.addresses(host, false).await;
        let v6 = self.addresses(host, true).await;
        match (v4, v6) {
            (Ok(mut a), Ok(b)) => {
                a.extend(b);
                a.truncate(ADDRESS_LIMIT);
                Ok(a)
            }
            (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(a),
            // A temporary failure of either means the answer may come.
            (Err(Error::Temporary(e)), _) | (_, Err(Error::Temporary(e))) => {
                Err(Error::Temporary(e))
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The addresses of `host` of one family: AAAA if `v6`, else A.
    pub async fn addresses(&self, host: &str, v6: bool) -> Result<Vec<IpAddr>, Error> {
        let r = self.hickory()?;
        let name = fqdn(host)?;
        let lookup = if v6 { r.ipv6_lookup(name).await } else { r.ipv4_lookup(name).await }
            .map_err(classify)?;
        let ips: Vec<IpAddr> = lookup
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::A(a) if !v6 => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) if v6 => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .take(ADDRESS_LIMIT)
            .collect();
        if ips.is_empty() { Err(Error::NotFound) } else { Ok(ips) }
    }

    /// The mail exchangers of `domain`. [`Error::NotFound`] means the
    /// domain does not exist (NXDOMAIN); a domain without MX records is
    /// [`Mx::Implicit`].
    pub async fn mx(&self, domain: &str) -> Result<Mx, Error> {
        let r = self.hickory()?;
        let name = fqdn(domain)?;
        let lookup = match r.mx_lookup(name).await {
            Ok(l) => l,
            Err(e) => {
                return match nodata(&e) {
                    Some(true) => Ok(Mx::Implicit),
                    Some(false) => Err(Error::NotFound),
                    None => Err(classify(e)),
                };
            }
        };
        let records: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::MX(mx) => Some(mx),
                _ => None,
            })
            .collect();
        if let [only] = records.as_slice()
            && only.exchange.is_root()
        {
            return Ok(Mx::Null);
        }
        let order = RandomState::new();
        let mut hosts: Vec<(u16, u64, MxHost)> = Vec::new();
        for mx in records {
            let text = mx.exchange.to_ascii();
            let Some(host) = valid_hostname(&text) else {
                tracing::warn!("{domain}: malformed MX host name: {}", printable(&text));
                continue;
            };
            if hosts.iter().any(|(_, _, h)| h.host == host) {
                continue;
            }
            let tie = order.hash_one(&host);
            hosts.push((mx.preference, tie, MxHost { preference: mx.preference, host }));
        }
        hosts.sort_by_key(|(p, tie, _)| (*p, *tie));
        hosts.truncate(ADDRESS_LIMIT);
        if hosts.is_empty() {
            return Ok(Mx::Implicit);
        }
        Ok(Mx::Hosts(hosts.into_iter().map(|(_, _, h)| h).collect()))
    }

    /// The client's name as Postfix's smtpd finds it, within `limit`
    /// altogether: PTR names of `ip`, then for each the addresses of the
    /// client's family; the first name with `ip` among them is the name.
    /// Logs Postfix's warnings (`hostname X does not resolve to address
    /// Y`). A disabled resolver gives `unknown` with
    /// [`NameStatus::Permanent`] without a lookup.
    pub async fn reverse_confirmed(&self, ip: IpAddr, limit: Duration) -> ClientName {
        let ip = ip.to_canonical();
        let deadline = Instant::now().checked_add(limit);
        let timed_out = || {
            tracing::warn!("{ip}: client name lookup timed out after {}s", limit.as_secs());
            NameStatus::Temporary
        };
        let names = match within(deadline, self.ptr(ip)).await {
            None => return ClientName::unknown(timed_out()),
            Some(Ok(names)) => names,
            Some(Err(Error::Temporary(_))) => return ClientName::unknown(NameStatus::Temporary),
            Some(Err(_)) => return ClientName::unknown(NameStatus::Permanent),
        };
        let mut out = ClientName {
            name: UNKNOWN.to_owned(),
            name_status: NameStatus::Forged,
            reverse_name: names[0].clone(),
            reverse_name_status: NameStatus::Ok,
        };
        for name in names {
            match within(deadline, self.addresses(&name, ip.is_ipv6())).await {
                None => {
                    out.name_status = timed_out();
                    return out;
                }
                Some(Ok(ips)) if ips.contains(&ip) => {
                    out.name = name;
                    out.name_status = NameStatus::Ok;
                    return out;
                }
                Some(Ok(_)) => {
                    tracing::warn!("hostname {name} does not resolve to address {ip}");
                }
                Some(Err(e)) => {
                    tracing::warn!("hostname {name} does not resolve to address {ip}: {e}");
                    if matches!(e, Error::Temporary(_)) {
                        out.name_status = NameStatus::Temporary;
                    }
                }
            }
        }
        out
    }
}

/// `fut`, or `None` past `deadline` (no deadline: no limit).
async fn within<T>(deadline: Option<Instant>, fut: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// UDP and TCP to `addr` (its port, 53 by default in the parameter).
fn nameserver(addr: SocketAddr) -> NameServerConfig {
    let conn = |mut c: ConnectionConfig| {
        c.port = addr.port();
        c
    };
    NameServerConfig::new(
        addr.ip(),
        true,
        vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
    )
}

/// `host` as a fully qualified name, if it is a valid host name.
fn fqdn(host: &str) -> Result<Name, Error> {
    let host = valid_hostname(host).ok_or(Error::InvalidName)?;
    Name::from_ascii(format!("{host}.")).map_err(|_| Error::InvalidName)
}

/// For a "no records" error: `Some(true)` if the name exists (NODATA),
/// `Some(false)` if it does not (NXDOMAIN); `None` for other errors.
fn nodata(e: &NetError) -> Option<bool> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            Some(nr.response_code != ResponseCode::NXDomain)
        }
        _ => None,
    }
}

fn classify(e: NetError) -> Error {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(_)) => Error::NotFound,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => Error::NotFound,
        other => Error::Temporary(printable(&other.to_string())),
    }
}

/// `name` if it is a valid host name, lower case and without the final
/// dot: at most 253 characters; labels of 1 to 63 letters, digits, `-`
/// (not first or last) and `_` (Postfix's `valid_hostname` allows it);
/// and not shaped like an address (all-numeric last label), which a PTR
/// record could use to pass for another client. What passes is safe to
/// put in a log line or a header.
pub fn valid_hostname(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > NAME_MAX || name.parse::<IpAddr>().is_ok() {
        return None;
    }
    let mut last = "";
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= LABEL_MAX
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return None;
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// `s` cut to 100 characters with everything but printable ASCII made
/// `?`, so that outside text is safe in a log line.
fn printable(s: &str) -> String {
    s.chars().take(100).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(valid_hostname("Client.Example.TEST.").as_deref(), Some("client.example.test"));
        assert_eq!(valid_hostname("a-b_c.example").as_deref(), Some("a-b_c.example"));
        assert_eq!(valid_hostname("localhost").as_deref(), Some("localhost"));
        assert_eq!(valid_hostname("x.123abc").as_deref(), Some("x.123abc"));
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "-a.example",
            "a-.example",
            "a b.example",
            "evil]: 250 ok",
            "x\nFAKE LOG LINE",
            "127.0.0.1",
            "10.1.2.3.",
            "1.2.3.4.5",
            "::1",
            "héllo.example",
            "a@b.example",
        ] {
            assert_eq!(valid_hostname(bad), None, "{bad:?}");
        }
        let label = "a".repeat(63);
        assert!(valid_hostname(&format!("{label}.example")).is_some());
        assert!(valid_hostname(&format!("a{label}.example")).is_none());
        let long = ["abcdefghi"; 25].join(".");
        assert_eq!(long.len(), 249);
        assert!(valid_hostname(&long).is_some());
        assert!(valid_hostname(&format!("{long}.abcd")).is_none());
    }

    #[test]
    fn printable_text() {
        assert_eq!(printable("a\r\nb\u{7f}é"), "a??b??");
        assert_eq!(printable(&"x".repeat(500)).len(), 100);
    }

    #[tokio::test]
    async fn disabled_resolver_looks_nothing_up() {
        let params = Params { enabled: false, ..Params::with_nameservers(Vec::new()) };
        let r = Resolver::new(&params).unwrap();
        assert!(!r.is_enabled());
        assert_eq!(r.mx("example.test").await, Err(Error::Disabled));
        assert_eq!(r.ips("example.test").await, Err(Error::Disabled));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(r.ptr(ip).await, Err(Error::Disabled));
        assert_eq!(
            r.reverse_confirmed(ip, Duration::from_secs(1)).await,
            ClientName::unknown(NameStatus::Permanent)
        );
    }
}
