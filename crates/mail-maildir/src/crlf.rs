//! RFC 822 sizes: what a message file counts as when every line ends in
//! CRLF, as POP3 and IMAP send it.
//!
//! Messages are stored with LF line ends (local delivery writes them so, as
//! Postfix does). The wire form turns every LF that is not already preceded
//! by a CR into CRLF and leaves every other byte (a lone CR, an existing
//! CRLF) alone; that is Dovecot's `,W=` size too. [`CrlfSize`] counts it
//! and [`to_crlf`] produces it, over chunks, so both always agree.

use std::io::{self, Read};

/// Counts the CRLF size of bytes fed in pieces of any size.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrlfSize {
    size: u64,
    last_cr: bool,
}

impl CrlfSize {
    /// Adds `chunk`, which follows whatever was added before.
    pub fn update(&mut self, chunk: &[u8]) {
        let mut bare_lf = 0u64;
        let mut prev_cr = self.last_cr;
        for &b in chunk {
            if b == b'\n' && !prev_cr {
                bare_lf += 1;
            }
            prev_cr = b == b'\r';
        }
        if let Some(&last) = chunk.last() {
            self.last_cr = last == b'\r';
        }
        self.size += chunk.len() as u64 + bare_lf;
    }

    /// The size so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// The CRLF size of everything `reader` yields.
pub fn crlf_size(mut reader: impl Read) -> io::Result<u64> {
    let mut count = CrlfSize::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(count.size()),
            Ok(n) => count.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Appends `chunk` to `out` with every bare LF turned into CRLF.
/// `last_cr` carries whether the previous chunk ended in CR (start with
/// `false`); the output length is what [`CrlfSize`] counts.
pub fn to_crlf(chunk: &[u8], last_cr: &mut bool, out: &mut Vec<u8>) {
    out.reserve(chunk.len() + chunk.len() / 32);
    let mut start = 0;
    let mut prev_cr = *last_cr;
    for (i, &b) in chunk.iter().enumerate() {
        if b == b'\n' && !prev_cr {
            out.extend_from_slice(&chunk[start..i]);
            out.extend_from_slice(b"\r\n");
            start = i + 1;
        }
        prev_cr = b == b'\r';
    }
    out.extend_from_slice(&chunk[start..]);
    if let Some(&last) = chunk.last() {
        *last_cr = last == b'\r';
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_bare_lf_twice() {
        assert_eq!(crlf_size(&b"a\nb\r\nc\rd\n\n"[..]).unwrap(), 13);
        assert_eq!(crlf_size(&b""[..]).unwrap(), 0);
        let mut out = Vec::new();
        let mut cr = false;
        to_crlf(b"a\nb\r\nc\rd\n\n", &mut cr, &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\rd\r\n\r\n");
    }

    #[test]
    fn a_cr_at_a_chunk_end_carries_over() {
        let mut c = CrlfSize::default();
        c.update(b"x\r");
        c.update(b"");
        c.update(b"\ny");
        assert_eq!(c.size(), 4);
        let (mut out, mut cr) = (Vec::new(), false);
        to_crlf(b"x\r", &mut cr, &mut out);
        to_crlf(b"", &mut cr, &mut out);
        to_crlf(b"\ny", &mut cr, &mut out);
        assert_eq!(out, b"x\r\ny");
    }

    proptest! {
        #[test]
        fn size_equals_output_whatever_the_chunks(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a')], 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(data.len());
            let (mut out, mut cr) = (Vec::new(), false);
            let mut count = CrlfSize::default();
            for part in [&data[..cut], &data[cut..]] {
                to_crlf(part, &mut cr, &mut out);
                count.update(part);
            }
            prop_assert_eq!(count.size(), out.len() as u64);
            prop_assert_eq!(crlf_size(&data[..]).unwrap(), out.len() as u64);
            // No bare LF is left.
            prop_assert!(out.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'));
            prop_assert!(out.first() != Some(&b'\n'));
        }
    }
}
