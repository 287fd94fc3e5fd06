//! The connection under the POP3 and IMAP test clients: a TCP stream,
//! plain or switched to TLS in place, read through one buffer and
//! written line by line. Each client parses its own protocol's replies
//! on top of it.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What a client reads and writes: the TCP stream, or TLS over it.
pub(crate) trait Transport: Read + Write + Send {}
impl<T: Read + Write + Send> Transport for T {}

/// One connection, plain or TLS.
pub(crate) struct LineStream {
    pub(crate) reader: BufReader<Box<dyn Transport>>,
    pub(crate) tcp: TcpStream,
}

impl std::fmt::Debug for LineStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineStream").field("tcp", &self.tcp).finish()
    }
}

impl LineStream {
    /// Over a connected socket, reads waiting at most 20 s.
    pub(crate) fn new(s: TcpStream) -> LineStream {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let tcp = s.try_clone().unwrap();
        LineStream { reader: BufReader::new(Box::new(s)), tcp }
    }

    /// The TLS handshake now, the certificate checked against `cert_pem`
    /// for `name`; nothing may be buffered from before it.
    pub(crate) fn start_tls(&mut self, cert_pem: &str, name: &str) -> Result<(), String> {
        assert!(self.reader.buffer().is_empty(), "data before TLS: {:?}", self.reader.buffer());
        let tls = crate::tls_handshake(&self.tcp, cert_pem, name)?;
        self.reader = BufReader::new(Box::new(tls));
        Ok(())
    }

    /// How long a read may wait.
    pub(crate) fn set_timeout(&self, d: Duration) {
        self.tcp.set_read_timeout(Some(d)).unwrap();
    }

    /// Sends bytes as they are.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.reader.get_mut();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }
}
