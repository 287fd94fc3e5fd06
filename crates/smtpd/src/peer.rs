//! The client's name, looked up before the greeting as Postfix's smtpd
//! does (`smtpd_peer.c`): PTR, then the addresses of the name, which must
//! include the client's (mail-dns does the lookups and checks the names).
//!
//! On when `smtpd_peername_lookup = yes` and `disable_dns_lookups = no`;
//! then every client is looked up, loopback ones too, within
//! `smtpd_peername_lookup_timeout` altogether. Off, clients are
//! `localhost` on loopback and `unknown` elsewhere, without a packet sent.

use std::time::Duration;

use mail_config::settings::Dns;
use mail_dns::{Params, Resolver};

use crate::session::Client;

/// The lookup, when it is on.
#[derive(Debug)]
pub(crate) struct PeerLookup {
    resolver: Resolver,
    /// The whole lookup for one client; `Duration::MAX` for none.
    limit: Duration,
}

impl PeerLookup {
    /// `None` when the parameters turn the lookup off, or when the
    /// resolver cannot be set up (logged: clients are then unnamed, the
    /// service goes on).
    pub(crate) fn from_config(config: &mail_config::Main) -> Option<PeerLookup> {
        let dns = Dns::new(config);
        if !dns.smtpd_peername_lookup || dns.disable_dns_lookups {
            return None;
        }
        let resolver = match Resolver::new(&Params::from_config(&dns)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{e}; client host names are not looked up");
                return None;
            }
        };
        let limit = match dns.smtpd_peername_lookup_timeout {
            Duration::ZERO => Duration::MAX,
            d => d,
        };
        Some(PeerLookup { resolver, limit })
    }

    /// The client at `addr`, named.
    pub(crate) async fn client(&self, addr: std::net::IpAddr) -> Client {
        let addr = addr.to_canonical();
        Client::named(addr, self.resolver.reverse_confirmed(addr, self.limit).await)
    }
}
