//! A parser of journal segments and their frames (src/format/entry.rs):
//! a 16-byte segment header, then frames
//! `len u32 | crc u32 | seq u64 | payload`, payload
//! `op u8 | flags u8 | key_len u16 | prev_expiry u64 | new_expiry u64 | key | record`.

use std::path::{Path, PathBuf};

use super::crc32;

pub const SEGMENT_HEADER_LEN: usize = 16;
pub const FRAME_HEADER_LEN: usize = 16;

/// One whole, checksum-valid frame of a segment file.
#[derive(Debug, Clone)]
pub struct FrameInfo {
    /// Byte offset of the frame in its segment file.
    pub start: usize,
    /// Offset one past its last byte.
    pub end: usize,
    pub seq: u64,
    /// Raw storage key: `ns_len | namespace | id`.
    pub key: Vec<u8>,
    /// The encoded record of a Put, `None` for a Delete.
    pub record: Option<Vec<u8>>,
}

impl FrameInfo {
    /// The record's state tag (1 InProgress, 2 Completed, 3 Failed, 4 Idle).
    pub fn state_tag(&self) -> Option<u8> {
        self.record.as_ref().map(|r| r[3])
    }

    /// The id part of the raw key.
    pub fn id(&self) -> &[u8] {
        &self.key[1 + self.key[0] as usize..]
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Parses every frame of an undamaged segment; panics on damage.
pub fn parse_segment(bytes: &[u8]) -> Vec<FrameInfo> {
    assert!(bytes.len() >= SEGMENT_HEADER_LEN, "segment header missing");
    assert_eq!(&bytes[..8], b"IDEMKVJL", "segment magic");
    assert_eq!(le_u32(bytes, 12), crc32(&bytes[..12]), "segment header crc");
    let mut at = SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while at < bytes.len() {
        assert!(at + FRAME_HEADER_LEN <= bytes.len(), "torn frame at {at}");
        let len = le_u32(bytes, at) as usize;
        let end = at + FRAME_HEADER_LEN + len;
        assert!(end <= bytes.len(), "torn frame at {at}");
        assert_eq!(le_u32(bytes, at + 4), crc32(&bytes[at + 8..end]), "frame crc at {at}");
        let seq = le_u64(bytes, at + 8);
        let p = &bytes[at + FRAME_HEADER_LEN..end];
        let key_len = u16::from_le_bytes([p[2], p[3]]) as usize;
        let key = p[20..20 + key_len].to_vec();
        let record = match p[0] {
            1 => Some(p[20 + key_len..].to_vec()),
            2 => None,
            op => panic!("unknown op {op} at {at}"),
        };
        out.push(FrameInfo { start: at, end, seq, key, record });
        at = end;
    }
    out
}

/// The segment files of `<store>/journal`, in sequence order.
pub fn segments(store_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(store_dir.join("journal"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    out.retain(|p| p.extension().is_some_and(|e| e == "log"));
    out.sort();
    Ok(out)
}
