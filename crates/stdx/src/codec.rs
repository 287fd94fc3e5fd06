//! The one place that names the binary encoding of queue files and IPC
//! frames.
//!
//! bincode 2.0.x with serde, fixed-width little-endian integers so a length
//! field in a record costs the same everywhere, and a size limit on every
//! decode so a corrupt length cannot make us allocate gigabytes. Swapping to
//! another serde codec is a change to this file only.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// Why bytes could not be decoded (or, rarely, a value encoded).
#[derive(Debug)]
pub struct CodecError(String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

fn config<const LIMIT: usize>() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<LIMIT>,
> {
    bincode::config::standard().with_fixed_int_encoding().with_limit::<LIMIT>()
}

/// Largest value any caller may encode or decode: 64 MiB. Callers apply
/// their own, smaller, limits to the bytes they read before decoding.
const MAX: usize = 64 << 20;

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config::<MAX>())
        .map_err(|e| CodecError(format!("encode: {e}")))
}

/// Decodes exactly one value from `bytes`; trailing bytes are an error
/// (OpenSMTPD's `m_end` rule: a frame that is longer than its message is
/// not what its sender meant).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config::<MAX>())
        .map_err(|e| CodecError(format!("decode: {e}")))?;
    if used != bytes.len() {
        return Err(CodecError(format!("decode: {} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct T {
        a: String,
        b: Vec<u32>,
    }

    #[test]
    fn round_trip_and_rejects_trailing_and_garbage() {
        let t = T { a: "x".into(), b: vec![1, 2] };
        let mut bytes = encode(&t).unwrap();
        assert_eq!(decode::<T>(&bytes).unwrap(), t);
        bytes.push(0);
        assert!(decode::<T>(&bytes).is_err());
        // A length prefix claiming 2^60 bytes must fail, not allocate.
        let evil = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode::<T>(&evil).is_err());
    }
}
