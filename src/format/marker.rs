//! The sled marker: what sled holds, written with every change to sled
//! (docs/FORMAT.md, "sled marker").
//!
//! ```text
//!   0   8 magic        b"IDEMKVSM"
//!   8   4 version      u32 = 1
//!  12   4 dir_id       u32, META's dir_id: the store this sled belongs to
//!  16   8 sled_id      u64, drawn at random at each open: which copy
//!  24   8 applied_seq  u64, every journal entry <= it is in sled
//!  32   8 records      u64, number of records (b'r' keys) in sled
//!  40   4 crc32        over bytes [0, 40)
//! ```
//! It lives under the sled key `b"s"` and is rewritten in the same atomic
//! sled batch as the records it counts, so sled's recovered state always
//! carries the marker that describes it. META (version 3) says whether a
//! marker must be there; open and `verify` compare the two and count.

use super::{crc, u32_at, u64_at};
use crate::error::{Error, Result};

pub(crate) const MAGIC: [u8; 8] = *b"IDEMKVSM";
pub(crate) const VERSION: u32 = 1;
const VERSION_OFFSET: usize = 8;
const DIR_ID_OFFSET: usize = VERSION_OFFSET + 4;
const SLED_ID_OFFSET: usize = DIR_ID_OFFSET + 4;
const APPLIED_OFFSET: usize = SLED_ID_OFFSET + 8;
const RECORDS_OFFSET: usize = APPLIED_OFFSET + 8;
const CRC_OFFSET: usize = RECORDS_OFFSET + 8;
/// Size of an encoded marker.
pub(crate) const LEN: usize = CRC_OFFSET + 4;

/// The decoded sled marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The directory identity of the store that wrote this sled.
    pub dir_id: u32,
    /// Drawn at random at each open (recorded in META first): a copy of the
    /// directory, opened on its own, gets another, so its `sled/` is told
    /// apart from this one's although both share `dir_id`.
    pub sled_id: u64,
    /// Every journal entry up to this one is in sled.
    pub applied_seq: u64,
    /// Records in sled.
    pub records: u64,
}

pub(crate) fn encode(m: &Marker) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(&MAGIC);
    b[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&VERSION.to_le_bytes());
    b[DIR_ID_OFFSET..DIR_ID_OFFSET + 4].copy_from_slice(&m.dir_id.to_le_bytes());
    b[SLED_ID_OFFSET..SLED_ID_OFFSET + 8].copy_from_slice(&m.sled_id.to_le_bytes());
    b[APPLIED_OFFSET..APPLIED_OFFSET + 8].copy_from_slice(&m.applied_seq.to_le_bytes());
    b[RECORDS_OFFSET..RECORDS_OFFSET + 8].copy_from_slice(&m.records.to_le_bytes());
    let sum = crc(&b[..CRC_OFFSET]);
    b[CRC_OFFSET..].copy_from_slice(&sum.to_le_bytes());
    b
}

pub(crate) fn decode(b: &[u8]) -> Result<Marker> {
    let corrupt = |reason: String| Error::Corrupt {
        key: b"sled".to_vec(),
        reason: format!("the sled marker is damaged ({reason})"),
    };
    if b.len() != LEN {
        return Err(corrupt(format!("{} bytes, expected {LEN}", b.len())));
    }
    if b[..8] != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    if u32_at(b, CRC_OFFSET) != crc(&b[..CRC_OFFSET]) {
        return Err(corrupt("checksum mismatch".into()));
    }
    let version = u32_at(b, VERSION_OFFSET);
    if version != VERSION {
        return Err(super::unsupported("sled marker", version, VERSION));
    }
    Ok(Marker {
        dir_id: u32_at(b, DIR_ID_OFFSET),
        sled_id: u64_at(b, SLED_ID_OFFSET),
        applied_seq: u64_at(b, APPLIED_OFFSET),
        records: u64_at(b, RECORDS_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_bit_flip_refused() {
        let m = Marker { dir_id: 0xdead_beef, sled_id: 77, applied_seq: 1 << 40, records: 12_345 };
        let b = encode(&m);
        assert_eq!(decode(&b).unwrap(), m);
        for bit in 0..LEN * 8 {
            let mut d = b;
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&d).is_err(), "bit {bit}");
        }
        for len in 0..LEN {
            assert!(decode(&b[..len]).is_err());
        }
    }

    /// The example in docs/FORMAT.md.
    #[test]
    fn documented_example() {
        let m = Marker { dir_id: 7, sled_id: 5, applied_seq: 42, records: 3 };
        let hex: String = encode(&m).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "4944454d4b56534d010000000700000005000000000000002a000000000000000300000000000000e697d5c4"
        );
    }
}
