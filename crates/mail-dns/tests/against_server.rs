//! mail-dns against a real authoritative server on 127.0.0.1 (the test
//! server of the `tests` crate): reverse lookups confirmed or not, MX
//! ordering, null and implicit MX, and hostile names in answers.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mail_dns::{ClientName, Error, Mx, MxHost, NameStatus, Params, Resolver};
use tests::dns::{SilentDns, TestDns, Zone};

fn resolver(dns: &TestDns) -> Resolver {
    Resolver::new(&Params::with_nameservers(vec![dns.addr()])).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const LIMIT: Duration = Duration::from_secs(10);

fn zone() -> Zone {
    Zone::new()
        // Confirmed, IPv4 and IPv6.
        .ptr("127.0.0.2", "Client.Example.TEST")
        .a("client.example.test", "127.0.0.9")
        .a("client.example.test", "127.0.0.2")
        .ptr("::2", "six.example.test")
        .a("six.example.test", "::2")
        // The name points elsewhere.
        .ptr("127.0.0.3", "liar.example.test")
        .a("liar.example.test", "192.0.2.77")
        // The name has no address at all.
        .ptr("127.0.0.4", "gone.example.test")
        // Hostile PTR names, and a good one after them.
        .ptr("127.0.0.5", "evil]: 250 ok")
        .ptr("127.0.0.5", "10.0.0.1")
        .ptr("127.0.0.6", "x\nPostern: fake line")
        .ptr("127.0.0.6", "ok.example.test")
        .a("ok.example.test", "127.0.0.6")
        // Two names, the second is the confirmed one.
        .ptr("127.0.0.7", "first.example.test")
        .ptr("127.0.0.7", "second.example.test")
        .a("first.example.test", "192.0.2.1")
        .a("second.example.test", "127.0.0.7")
        // MX.
        .mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 30, "bad name.example.test")
        .mx("example.test", 20, "mx3.example.test")
        .mx("nomail.test", 0, ".")
        .a("host-only.test", "192.0.2.5")
        .txt("host-only.test", "v=spf1 -all")
        .mx("bad-mx.test", 10, "-bad-.test")
}

#[tokio::test]
async fn reverse_lookups() {
    let dns = zone().serve();
    let r = resolver(&dns);
    let confirmed = |name: &str| ClientName {
        name: name.into(),
        name_status: NameStatus::Ok,
        reverse_name: name.into(),
        reverse_name_status: NameStatus::Ok,
    };
    assert_eq!(r.reverse_confirmed(ip("127.0.0.2"), LIMIT).await, confirmed("client.example.test"));
    assert_eq!(r.reverse_confirmed(ip("::2"), LIMIT).await, confirmed("six.example.test"));
    // An IPv4-mapped address is the IPv4 client.
    assert_eq!(
        r.reverse_confirmed(ip("::ffff:127.0.0.2"), LIMIT).await,
        confirmed("client.example.test")
    );
    let forged = |reverse: &str| ClientName {
        name: "unknown".into(),
        name_status: NameStatus::Forged,
        reverse_name: reverse.into(),
        reverse_name_status: NameStatus::Ok,
    };
    assert_eq!(r.reverse_confirmed(ip("127.0.0.3"), LIMIT).await, forged("liar.example.test"));
    assert_eq!(r.reverse_confirmed(ip("127.0.0.4"), LIMIT).await, forged("gone.example.test"));
    assert_eq!(
        r.reverse_confirmed(ip("127.0.0.8"), LIMIT).await,
        ClientName::unknown(NameStatus::Permanent)
    );
    assert_eq!(
        r.reverse_confirmed(ip("127.0.0.7"), LIMIT).await,
        ClientName {
            name: "second.example.test".into(),
            name_status: NameStatus::Ok,
            reverse_name: "first.example.test".into(),
            reverse_name_status: NameStatus::Ok,
        }
    );
}

#[tokio::test]
async fn hostile_ptr_names_are_never_used() {
    let dns = zone().serve();
    let r = resolver(&dns);
    // Only invalid names: as if there were no PTR record.
    assert_eq!(r.ptr(ip("127.0.0.5")).await, Err(Error::NotFound));
    assert_eq!(
        r.reverse_confirmed(ip("127.0.0.5"), LIMIT).await,
        ClientName::unknown(NameStatus::Permanent)
    );
    // The invalid one is skipped, the valid one used.
    assert_eq!(r.ptr(ip("127.0.0.6")).await, Ok(vec!["ok.example.test".to_owned()]));
    assert_eq!(r.reverse_confirmed(ip("127.0.0.6"), LIMIT).await.name, "ok.example.test");
}

#[tokio::test]
async fn mx_lookups() {
    let dns = zone().serve();
    let r = resolver(&dns);
    let Ok(Mx::Hosts(hosts)) = r.mx("Example.Test").await else { panic!("no MX hosts") };
    let prefs: Vec<u16> = hosts.iter().map(|h| h.preference).collect();
    assert_eq!(prefs, [10, 20, 20], "{hosts:?}");
    assert_eq!(hosts[0], MxHost { preference: 10, host: "mx1.example.test".into() });
    let mut twenty: Vec<&str> = hosts[1..].iter().map(|h| h.host.as_str()).collect();
    twenty.sort_unstable();
    assert_eq!(twenty, ["mx2.example.test", "mx3.example.test"]);

    assert_eq!(r.mx("nomail.test").await, Ok(Mx::Null));
    // No MX record, but the name exists: its own address is the MX.
    assert_eq!(r.mx("host-only.test").await, Ok(Mx::Implicit));
    // Only invalid MX hosts: treated as no MX at all.
    assert_eq!(r.mx("bad-mx.test").await, Ok(Mx::Implicit));
    assert_eq!(r.mx("nowhere.test").await, Err(Error::NotFound));
    assert_eq!(r.mx("not a domain").await, Err(Error::InvalidName));
    assert_eq!(r.mx("[127.0.0.1]").await, Err(Error::InvalidName));
}

#[tokio::test]
async fn address_lookups() {
    let dns = zone().serve();
    let r = resolver(&dns);
    assert_eq!(r.ips("client.example.test").await, Ok(vec![ip("127.0.0.9"), ip("127.0.0.2")]));
    assert_eq!(r.ips("six.example.test").await, Ok(vec![ip("::2")]));
    assert_eq!(r.addresses("six.example.test", false).await, Err(Error::NotFound));
    assert_eq!(r.ips("nowhere.test").await, Err(Error::NotFound));
}

#[tokio::test]
async fn a_silent_server_is_a_temporary_failure_within_the_limit() {
    let silent = SilentDns::start();
    let params = Params {
        timeout: Duration::from_millis(300),
        ..Params::with_nameservers(vec![silent.addr()])
    };
    let r = Resolver::new(&params).unwrap();
    let start = Instant::now();
    assert!(matches!(r.mx("example.test").await, Err(Error::Temporary(_))));
    assert!(matches!(r.ptr(ip("127.0.0.2")).await, Err(Error::Temporary(_))));
    // The client lookup as a whole stops at its own limit, even when the
    // resolver would go on.
    let slow = Resolver::new(&Params {
        timeout: Duration::from_secs(30),
        ..Params::with_nameservers(vec![silent.addr()])
    })
    .unwrap();
    let t = Instant::now();
    assert_eq!(
        slow.reverse_confirmed(ip("127.0.0.2"), Duration::from_millis(500)).await,
        ClientName::unknown(NameStatus::Temporary)
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}
