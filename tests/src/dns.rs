//! A DNS server for tests: authoritative for a small zone described in
//! code (PTR, A, AAAA, CNAME, MX, TXT), on 127.0.0.1 with one ephemeral port for
//! UDP and TCP, served by hickory-server on a thread of its own and
//! stopped on drop. [`SilentDns`] is its opposite: a port that takes
//! queries and never answers, for timeout tests.
//!
//! The zone is the root zone, so any name can be given a record; a name
//! without one gets NXDOMAIN, a name with records of other types only an
//! empty (NODATA) answer, as from a real authoritative server.
//!
//! ```no_run
//! let dns = tests::dns::Zone::new()
//!     .ptr("127.0.0.2", "client.example.test")
//!     .a("client.example.test", "127.0.0.2")
//!     .mx("example.test", 10, "mx.example.test")
//!     .serve();
//! // Point the resolver at dns.addr() (dns_resolver_addresses).
//! ```

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::sync::oneshot;

/// Time to live of every record (short: a test may change its mind).
const TTL: u32 = 1;

/// The records of a test zone.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    records: Vec<Record>,
}

/// `text` as a fully qualified name, each dot-separated label taken as raw
/// bytes, so that a test can serve names no real zone file would allow
/// (spaces, brackets, newlines).
fn name(text: &str) -> Name {
    let text = text.strip_suffix('.').unwrap_or(text);
    Name::from_labels(text.split('.').map(str::as_bytes))
        .unwrap_or_else(|e| panic!("test zone name {text:?}: {e}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("test zone address {text:?}: {e}"))
}

impl Zone {
    /// An empty zone.
    pub fn new() -> Zone {
        Zone::default()
    }

    fn add(mut self, owner: Name, data: RData) -> Zone {
        self.records.push(Record::from_rdata(owner, TTL, data));
        self
    }

    /// `owner A addr` or `owner AAAA addr`, after the address's family.
    pub fn a(self, owner: &str, addr: &str) -> Zone {
        let data = match ip(addr) {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.add(name(owner), data)
    }

    /// The PTR record of `addr` (in in-addr.arpa or ip6.arpa) naming `host`.
    pub fn ptr(self, addr: &str, host: &str) -> Zone {
        self.add(Name::from(ip(addr)), RData::PTR(PTR(name(host))))
    }

    /// `owner MX preference host`; `host` `.` makes a null MX.
    pub fn mx(self, owner: &str, preference: u16, host: &str) -> Zone {
        let exchange = if host == "." { Name::root() } else { name(host) };
        self.add(name(owner), RData::MX(MX::new(preference, exchange)))
    }

    /// `owner CNAME target`: an alias, which RFC 2181 forbids as an MX
    /// host and which Postfix follows anyway.
    pub fn cname(self, owner: &str, target: &str) -> Zone {
        self.add(name(owner), RData::CNAME(CNAME(name(target))))
    }

    /// `owner TXT "text"`.
    pub fn txt(self, owner: &str, text: &str) -> Zone {
        self.add(name(owner), RData::TXT(TXT::new(vec![text.to_owned()])))
    }

    /// Starts serving the zone.
    pub fn serve(self) -> TestDns {
        TestDns::start(self)
    }
}

/// A running test DNS server; stops when dropped.
#[derive(Debug)]
pub struct TestDns {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
        let Ok(addr) = udp.local_addr() else { continue };
        if let Ok(tcp) = TcpListener::bind(addr) {
            return (udp, tcp);
        }
    }
    panic!("no port of 127.0.0.1 free for both UDP and TCP in 50 tries");
}

impl TestDns {
    fn start(zone: Zone) -> TestDns {
        let root = Name::root();
        let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            root.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(name("ns.test"), name("hostmaster.test"), 1, 3600, 600, 86_400, TTL);
        assert!(handler.upsert_mut(Record::from_rdata(root.clone(), TTL, RData::SOA(soa)), 1));
        for record in zone.records {
            assert!(handler.upsert_mut(record.clone(), 1), "test zone record {record}");
        }
        let mut catalog = Catalog::new();
        let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
        catalog.upsert(LowerName::new(&root), vec![handler]);

        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("UDP socket address");
        udp.set_nonblocking(true).expect("non-blocking UDP socket");
        tcp.set_nonblocking(true).expect("non-blocking TCP listener");
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the test DNS server");
            rt.block_on(async move {
                let mut server = Server::new(catalog);
                server.register_socket(
                    tokio::net::UdpSocket::from_std(udp).expect("tokio UDP socket"),
                );
                server.register_listener(
                    tokio::net::TcpListener::from_std(tcp).expect("tokio TCP listener"),
                    Duration::from_secs(5),
                    4096,
                );
                let _ = ready.send(());
                let _ = stopped.await;
                let _ = server.shutdown_gracefully().await;
            });
        });
        is_ready.recv().expect("the test DNS server thread started");
        TestDns { addr, stop: Some(stop), thread: Some(thread) }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A nameserver that never answers: its UDP socket is never read and its
/// TCP listener never accepts, so every query times out. Closed on drop.
#[derive(Debug)]
pub struct SilentDns {
    udp: UdpSocket,
    tcp: TcpListener,
    addr: SocketAddr,
}

impl SilentDns {
    /// Binds a fresh port of 127.0.0.1.
    pub fn start() -> SilentDns {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("UDP socket address");
        SilentDns { udp, tcp, addr }
    }

    /// Where it does not answer.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The queries that arrived since the last call (UDP datagrams and
    /// TCP connections), taken out of the sockets' queues.
    pub fn take_queries(&self) -> usize {
        let mut n = 0;
        self.udp.set_nonblocking(true).expect("non-blocking UDP socket");
        self.tcp.set_nonblocking(true).expect("non-blocking TCP listener");
        let mut buf = [0u8; 4096];
        while self.udp.recv(&mut buf).is_ok() {
            n += 1;
        }
        while self.tcp.accept().is_ok() {
            n += 1;
        }
        n
    }
}

/// A nameserver that answers every UDP query with SERVFAIL (and refuses
/// TCP), as a broken or overloaded recursive resolver does. Stops on drop.
#[derive(Debug)]
pub struct ServfailDns {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServfailDns {
    /// Binds a fresh port of 127.0.0.1 and starts answering.
    pub fn start() -> ServfailDns {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
        let addr = udp.local_addr().expect("UDP socket address");
        udp.set_read_timeout(Some(Duration::from_millis(100))).expect("UDP read timeout");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
                if n < 12 {
                    continue;
                }
                // The query back with QR set, RA set and RCODE 2 (SERVFAIL).
                let mut answer = buf[..n].to_vec();
                answer[2] |= 0x80;
                answer[3] = (answer[3] & 0xf0) | 0x80 | 2;
                let _ = udp.send_to(&answer, from);
            }
        });
        ServfailDns { addr, stop, thread: Some(thread) }
    }

    /// Where it answers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServfailDns {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
