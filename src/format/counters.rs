//! Persisted per-namespace counters (docs/FORMAT.md, "Counters", version 1),
//! stored in sled under `b'm' | namespace` at every checkpoint.
//!
//! ```text
//!   0   1 version   1
//!   1   1 n         number of counters that follow
//!   2  8n counters  u64 each, in `metrics::Counter` order
//! 2+8n  4 crc32     over bytes [0, 2 + 8n)
//! ```
//! A reader takes the counters it knows and ignores any extra ones, so a
//! newer build may append counters without a version change.

use super::{check_trailing_crc, crc, u64_at};

const VERSION: u8 = 1;

pub(crate) fn encode(counts: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + 8 * counts.len());
    out.push(VERSION);
    out.push(counts.len() as u8);
    for c in counts {
        out.extend_from_slice(&c.to_le_bytes());
    }
    let sum = crc(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The counters, or why they cannot be read (they are then ignored: losing
/// statistics must never stop a store from opening).
pub(crate) fn decode(b: &[u8]) -> Result<Vec<u64>, String> {
    if b.len() < 6 {
        return Err("too short".into());
    }
    check_trailing_crc(b)?;
    if b[0] != VERSION {
        return Err(format!("version {}", b[0]));
    }
    let n = b[1] as usize;
    if b.len() != 6 + 8 * n {
        return Err("length does not match the count".into());
    }
    Ok((0..n).map(|i| u64_at(b, 2 + 8 * i)).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_damage() {
        let b = super::encode(&[1, 2, u64::MAX]);
        assert_eq!(super::decode(&b).unwrap(), vec![1, 2, u64::MAX]);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x40;
            assert!(super::decode(&d).is_err());
        }
    }
}
