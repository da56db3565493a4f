//! The META file: the store's identity and progress (docs/FORMAT.md, "META").
//!
//! ```text
//!   0   8 magic            b"IDEMKVMT"
//!   8   4 version          u32 = 3 (1 and 2 are read too)
//!  12   4 dir_id           u32, random, chosen when the directory is created
//!  16   8 boot             u64, incremented at every open
//!  24   8 token_ceiling    u64, no fencing token above it has been issued
//!  32   8 checkpoint_seq   u64, every journal entry <= it is durable in sled
//!  40   8 created_at       u64 ms since the Unix epoch
//!  48   4 flags            u32 (version 3): bit 0 = sled carries a marker,
//!                                   bit 1 = sled was found to have lost records,
//!                                   bit 2 = open, or not closed cleanly
//!  52   8 sled_id          u64 (version 3): the sled marker's sled_id
//!  60   8 next_sled_id     u64 (version 3): also accepted, until the next
//!                                   checkpoint makes it sled_id (0: none)
//!  68   4 crc32            over bytes [0, 68)
//! ```
//! Versions 1 and 2 end after `created_at` with the crc32 at 48 (52 bytes);
//! they read as `flags = 0`.
//! It is replaced atomically: written to `META.tmp`, fsynced, renamed over
//! `META`, and the directory fsynced.

use super::{crc, u32_at, u64_at};
use crate::error::{Error, Result};

pub(crate) const MAGIC: [u8; 8] = *b"IDEMKVMT";
/// Version 2 marks a store whose sled index may hold expiry groups: a
/// version-1 build would misread them, so it must refuse the store.
/// Version 3 adds `flags`: a store whose sled carries a marker must not be
/// written by a build that does not keep the marker up to date.
pub(crate) const VERSION: u32 = 3;
/// The oldest version still read (its index holds layout-1 entries only).
const OLDEST: u32 = 1;
const VERSION_OFFSET: usize = 8;
const DIR_ID_OFFSET: usize = VERSION_OFFSET + 4;
const BOOT_OFFSET: usize = DIR_ID_OFFSET + 4;
const TOKEN_CEILING_OFFSET: usize = BOOT_OFFSET + 8;
const CHECKPOINT_OFFSET: usize = TOKEN_CEILING_OFFSET + 8;
const CREATED_OFFSET: usize = CHECKPOINT_OFFSET + 8;
const FLAGS_OFFSET: usize = CREATED_OFFSET + 8;
const SLED_ID_OFFSET: usize = FLAGS_OFFSET + 4;
const NEXT_SLED_ID_OFFSET: usize = SLED_ID_OFFSET + 8;
const CRC_OFFSET: usize = NEXT_SLED_ID_OFFSET + 8;
/// Size of the META file.
pub(crate) const LEN: usize = CRC_OFFSET + 4;
/// Size of a version 1 or 2 META file (no flags).
const LEN_V2: usize = FLAGS_OFFSET + 4;
/// `flags` bit: sled carries a marker (`format::marker`) that open checks.
pub(crate) const FLAG_SLED_MARKED: u32 = 1;
/// `flags` bit: a count of sled's records disagreed with its marker; the
/// store refuses to open until it is restored.
pub(crate) const FLAG_SLED_LOST: u32 = 2;
/// `flags` bit: the store is open, or did not close cleanly: set by every
/// open, cleared by a close whose final checkpoint succeeded. sled's batches
/// are atomic across a crash but not across its own I/O errors (a full
/// disk), so after an unclean end the marker's count is rebuilt from a
/// count of the records instead of checked against it.
pub(crate) const FLAG_SLED_RECOUNT: u32 = 4;
const KNOWN_FLAGS: u32 = FLAG_SLED_MARKED | FLAG_SLED_LOST | FLAG_SLED_RECOUNT;

/// The decoded META file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Random identity of the directory: leases of other stores are refused.
    pub dir_id: u32,
    pub boot: u64,
    pub token_ceiling: u64,
    pub checkpoint_seq: u64,
    pub created_at: u64,
    /// `FLAG_SLED_*` bits.
    pub flags: u32,
    /// The `sled_id` sled's marker must carry…
    pub sled_id: u64,
    /// …or this one, when not 0: drawn by an open, made `sled_id` by the
    /// next checkpoint (after sled was synced with it).
    pub next_sled_id: u64,
}

impl Meta {
    /// Whether sled must carry a marker that matches this META.
    pub fn sled_marked(&self) -> bool {
        self.flags & FLAG_SLED_MARKED != 0
    }

    /// Whether the store did not close cleanly (its sled count is rebuilt).
    pub fn sled_recount(&self) -> bool {
        self.flags & FLAG_SLED_RECOUNT != 0
    }

    /// Whether a count of sled's records once disagreed with its marker.
    pub fn sled_lost(&self) -> bool {
        self.flags & FLAG_SLED_LOST != 0
    }
}

pub(crate) fn encode(m: &Meta) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(&MAGIC);
    b[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&VERSION.to_le_bytes());
    b[DIR_ID_OFFSET..DIR_ID_OFFSET + 4].copy_from_slice(&m.dir_id.to_le_bytes());
    b[BOOT_OFFSET..BOOT_OFFSET + 8].copy_from_slice(&m.boot.to_le_bytes());
    b[TOKEN_CEILING_OFFSET..TOKEN_CEILING_OFFSET + 8]
        .copy_from_slice(&m.token_ceiling.to_le_bytes());
    b[CHECKPOINT_OFFSET..CHECKPOINT_OFFSET + 8].copy_from_slice(&m.checkpoint_seq.to_le_bytes());
    b[CREATED_OFFSET..CREATED_OFFSET + 8].copy_from_slice(&m.created_at.to_le_bytes());
    b[FLAGS_OFFSET..FLAGS_OFFSET + 4].copy_from_slice(&m.flags.to_le_bytes());
    b[SLED_ID_OFFSET..SLED_ID_OFFSET + 8].copy_from_slice(&m.sled_id.to_le_bytes());
    b[NEXT_SLED_ID_OFFSET..NEXT_SLED_ID_OFFSET + 8].copy_from_slice(&m.next_sled_id.to_le_bytes());
    let sum = crc(&b[..CRC_OFFSET]);
    b[CRC_OFFSET..].copy_from_slice(&sum.to_le_bytes());
    b
}

pub(crate) fn decode(b: &[u8]) -> Result<Meta> {
    let corrupt = |reason: &str| Error::Corrupt { key: b"META".to_vec(), reason: reason.into() };
    if b.len() != LEN && b.len() != LEN_V2 {
        return Err(corrupt(&format!("META is {} bytes, expected {LEN}", b.len())));
    }
    if b[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let crc_at = b.len() - 4;
    if u32_at(b, crc_at) != crc(&b[..crc_at]) {
        return Err(corrupt("checksum mismatch"));
    }
    let version = u32_at(b, VERSION_OFFSET);
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(super::unsupported("META", version, VERSION));
    }
    let expected = if version >= 3 { LEN } else { LEN_V2 };
    if b.len() != expected {
        return Err(corrupt(&format!(
            "META version {version} is {} bytes, expected {expected}",
            b.len()
        )));
    }
    let flags = if version >= 3 { u32_at(b, FLAGS_OFFSET) } else { 0 };
    if flags & !KNOWN_FLAGS != 0 {
        return Err(corrupt(&format!("unknown META flags {flags:#x}")));
    }
    let v3 = |at: usize| if version >= 3 { u64_at(b, at) } else { 0 };
    Ok(Meta {
        flags,
        sled_id: v3(SLED_ID_OFFSET),
        next_sled_id: v3(NEXT_SLED_ID_OFFSET),
        dir_id: u32_at(b, DIR_ID_OFFSET),
        boot: u64_at(b, BOOT_OFFSET),
        token_ceiling: u64_at(b, TOKEN_CEILING_OFFSET),
        checkpoint_seq: u64_at(b, CHECKPOINT_OFFSET),
        created_at: u64_at(b, CREATED_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let m = Meta {
            dir_id: 9,
            boot: 3,
            token_ceiling: 1 << 32,
            checkpoint_seq: 77,
            created_at: 5,
            flags: FLAG_SLED_MARKED,
            sled_id: 11,
            next_sled_id: 12,
        };
        let b = encode(&m);
        assert_eq!(decode(&b).unwrap(), m);
        // Version-1 and version-2 META files (written by earlier builds: no
        // flags, 52 bytes) are still read, as unmarked.
        for old in [1u32, 2] {
            let mut v = b[..LEN_V2].to_vec();
            v[8..12].copy_from_slice(&old.to_le_bytes());
            let sum = crc(&v[..FLAGS_OFFSET]);
            v[FLAGS_OFFSET..].copy_from_slice(&sum.to_le_bytes());
            assert_eq!(decode(&v).unwrap(), Meta { flags: 0, sled_id: 0, next_sled_id: 0, ..m });
            // A version-3 length with an old version number is damage.
            let mut long = b;
            long[8..12].copy_from_slice(&old.to_le_bytes());
            let sum = crc(&long[..CRC_OFFSET]);
            long[CRC_OFFSET..].copy_from_slice(&sum.to_le_bytes());
            assert!(decode(&long).is_err());
        }
        for bit in 0..LEN * 8 {
            let mut d = b;
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&d).is_err());
        }
    }
}
