//! An expiry group (docs/FORMAT.md, "Expiry index", version 2): the value of
//! one expiry-index entry, naming the keys of up to [`GROUP_MAX`] records
//! written by one applier batch whose expiry times are close together.
//!
//! ```text
//!   0   1 version   2
//!   1   2 n         number of keys that follow
//!   3   …           n × (u16 length, raw key)
//!   …   4 crc32     over every byte before it
//! ```
//! One entry per group instead of one per record halves the sled writes of a
//! record's life (`storage::Storage::apply`).

use super::{check_trailing_crc, crc, u16_at};

const VERSION: u8 = 2;
/// Most keys in one group: a few KiB for webhook-sized ids (at most
/// 64 × (2 + key length) bytes plus 7).
pub(crate) const GROUP_MAX: usize = 64;

/// Encodes the keys of one group.
pub(crate) fn encode<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + keys.len() * 32);
    out.push(VERSION);
    out.extend_from_slice(&(keys.len() as u16).to_le_bytes());
    for k in keys {
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(k);
    }
    let sum = crc(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The raw keys of a group, or why they cannot be read.
pub(crate) fn decode(b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if b.len() < 7 {
        return Err(format!("expiry group of {} bytes is too short", b.len()));
    }
    check_trailing_crc(b)?;
    if b[0] != VERSION {
        return Err(format!("expiry group version {} is not supported", b[0]));
    }
    let n = usize::from(u16_at(b, 1));
    let body = &b[..b.len() - 4];
    let mut at = 3;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        if at + 2 > body.len() {
            return Err("expiry group ends inside a key length".into());
        }
        let len = usize::from(u16_at(body, at));
        at += 2;
        let key = body.get(at..at + len).ok_or("expiry group ends inside a key")?;
        keys.push(key.to_vec());
        at += len;
    }
    if at != body.len() {
        return Err(format!("{} bytes after the last key of an expiry group", body.len() - at));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let keys: Vec<&[u8]> = vec![b"\x06stripeevt_1", b"", b"\x01ak"];
        let b = encode(keys.iter().copied());
        assert_eq!(decode(&b).unwrap(), keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip in byte {i} accepted");
        }
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut} accepted");
        }
        assert_eq!(decode(&encode(std::iter::empty())).unwrap(), Vec::<Vec<u8>>::new());
        // The example of docs/FORMAT.md.
        let one = encode([&b"\x06stripeevt_1"[..]].into_iter());
        let doc = b"\x02\x01\x00\x0c\x00\x06stripeevt_1";
        assert_eq!(&one[..17], doc);
        assert_eq!(one[17..], crc32fast::hash(doc).to_le_bytes());
    }
}
