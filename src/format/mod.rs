//! Our on-disk encodings, byte for byte as in `docs/FORMAT.md`: the record
//! stored in sled, the journal segment and its frames, and the META file.
//!
//! All integers are little-endian except the expiry-index key, which is
//! big-endian so that sled's byte order is time order. Every structure
//! carries a version and a crc32 (crc32fast, IEEE polynomial); the record,
//! the segment header, META and the sled marker also start with a magic.

pub(crate) mod counters;
pub(crate) mod entry;
pub(crate) mod expiry;
pub(crate) mod marker;
pub(crate) mod meta;
pub(crate) mod record;

use crate::error::Error;

/// Reads a little-endian `u16` at `at`; the caller has checked the length.
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Reads a little-endian `u32` at `at`; the caller has checked the length.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian `u64` at `at`; the caller has checked the length.
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Checks that `bytes` ends in the crc32 of everything before it.
pub(crate) fn check_trailing_crc(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 4 {
        return Err("too short for a checksum".into());
    }
    let body = bytes.len() - 4;
    let stored = u32_at(bytes, body);
    let actual = crc(&bytes[..body]);
    if stored != actual {
        return Err(format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"));
    }
    Ok(())
}

pub(crate) fn unsupported(what: &str, found: u32, supported: u32) -> Error {
    Error::UnsupportedVersion { what: what.to_string(), found, supported }
}
