//! Postern's SMTP client (Postfix smtp(8)) as a library, so the binary
//! stays thin and the fuzz target and tests reach the parsers: the
//! bounded reply parser ([`reply`]), the next-hop syntax ([`nexthop`]),
//! connections with deadlines ([`conn`]), the idle-session cache
//! ([`cache`]) and one delivery request from queue file to per-recipient
//! results ([`deliver`]).

pub mod cache;
pub mod conn;
pub mod deliver;
pub mod nexthop;
pub mod reply;
pub mod settings;
