//! Journal segments and frames (docs/FORMAT.md, "Journal", version 1).
//!
//! ```text
//! segment header (16 bytes)
//!   0   8 magic     b"IDEMKVJL"
//!   8   4 version   u32 = 1
//!  12   4 crc32     over bytes [0, 12)
//! frame (repeated to the end of the file)
//!   0   4 len       u32, length of the payload
//!   4   4 crc32     over bytes [8, 16 + len): seq and payload
//!   8   8 seq       u64, strictly +1 from the previous frame
//!  16   n payload
//! payload
//!   0   1 op        1 Put, 2 Delete
//!   1   1 flags     bit 0: prev_expiry present (never set since 0.1's
//!                   engine layer; still accepted)
//!   2   2 key_len   u16
//!   4   8 prev_expiry  u64 ms: written 0, ignored when read
//!  12   8 new_expiry   u64 ms (Put) or 0 (Delete): index entry to add
//!  20   k key       raw storage key
//! 20+k  r record    (Put only) an encoded record, to the end of the payload
//! ```

use super::{crc, u16_at, u32_at, u64_at};

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"IDEMKVJL";
pub(crate) const SEGMENT_VERSION: u32 = 1;
pub(crate) const SEGMENT_HEADER_LEN: usize = 16;

const FRAME_LEN_OFFSET: usize = 0;
const FRAME_CRC_OFFSET: usize = FRAME_LEN_OFFSET + 4;
const FRAME_SEQ_OFFSET: usize = FRAME_CRC_OFFSET + 4;
/// Bytes before a frame's payload.
pub(crate) const FRAME_HEADER_LEN: usize = FRAME_SEQ_OFFSET + 8;

const OP_OFFSET: usize = 0;
const FLAGS_OFFSET: usize = OP_OFFSET + 1;
const KEY_LEN_OFFSET: usize = FLAGS_OFFSET + 1;
const PREV_EXPIRY_OFFSET: usize = KEY_LEN_OFFSET + 2;
const NEW_EXPIRY_OFFSET: usize = PREV_EXPIRY_OFFSET + 8;
/// Where `prev_expiry` was kept; the field stays for format compatibility.
const _: () = assert!(PREV_EXPIRY_OFFSET == 4);
const KEY_OFFSET: usize = NEW_EXPIRY_OFFSET + 8;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const FLAG_PREV_EXPIRY: u8 = 1;

/// The largest payload recovery accepts; a longer length field is damage.
/// (A record is at most 64 MiB of body plus its header and key.)
pub(crate) const MAX_PAYLOAD: usize = 65 << 20;

/// One change to one key, as journaled and as applied to sled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mutation {
    /// Raw storage key.
    pub key: std::sync::Arc<[u8]>,
    /// The new encoded record and its expiry, or `None` to delete the key.
    pub put: Option<(std::sync::Arc<[u8]>, u64)>,
}

/// The segment header.
pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    let sum = crc(&h[..12]);
    h[12..16].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Why a segment header is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Shorter than a header, wrong magic or checksum: a torn or foreign file.
    Damaged,
    /// A valid header of a newer version.
    Version(u32),
}

pub(crate) fn check_segment_header(b: &[u8]) -> Result<(), HeaderError> {
    if b.len() < SEGMENT_HEADER_LEN || b[..8] != SEGMENT_MAGIC || u32_at(b, 12) != crc(&b[..12]) {
        return Err(HeaderError::Damaged);
    }
    match u32_at(b, 8) {
        SEGMENT_VERSION => Ok(()),
        v => Err(HeaderError::Version(v)),
    }
}

/// Appends one frame for `m` with sequence number `seq` to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, seq: u64, m: &Mutation) {
    let start = out.len();
    let record_len = m.put.as_ref().map_or(0, |(r, _)| r.len());
    let payload_len = KEY_OFFSET + m.key.len() + record_len;
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // crc, filled below
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(if m.put.is_some() { OP_PUT } else { OP_DELETE });
    out.push(0); // flags: no prev_expiry (the field is unused)
    out.extend_from_slice(&(m.key.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // prev_expiry
    out.extend_from_slice(&m.put.as_ref().map_or(0, |(_, e)| *e).to_le_bytes());
    out.extend_from_slice(&m.key);
    if let Some((record, _)) = &m.put {
        out.extend_from_slice(record);
    }
    let sum = crc(&out[start + FRAME_SEQ_OFFSET..]);
    out[start + FRAME_CRC_OFFSET..start + FRAME_SEQ_OFFSET].copy_from_slice(&sum.to_le_bytes());
}

/// The outcome of reading one frame from the front of `b`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A whole, valid frame of `len` bytes.
    Ok { seq: u64, mutation: Mutation, len: usize },
    /// `b` ends before the frame does: a torn write.
    Torn,
    /// The frame is whole but fails its checks.
    Corrupt(String),
}

/// Reads the frame at the front of `b`.
pub(crate) fn decode_frame(b: &[u8]) -> Frame {
    if b.len() < FRAME_HEADER_LEN {
        return Frame::Torn;
    }
    let len = u32_at(b, FRAME_LEN_OFFSET) as usize;
    if len > MAX_PAYLOAD {
        return Frame::Corrupt(format!("frame length {len} exceeds the maximum {MAX_PAYLOAD}"));
    }
    if b.len() < FRAME_HEADER_LEN + len {
        return Frame::Torn;
    }
    let total = FRAME_HEADER_LEN + len;
    let stored = u32_at(b, FRAME_CRC_OFFSET);
    if stored != crc(&b[FRAME_SEQ_OFFSET..total]) {
        return Frame::Corrupt("frame checksum mismatch".into());
    }
    let seq = u64_at(b, FRAME_SEQ_OFFSET);
    match decode_payload(&b[FRAME_HEADER_LEN..total]) {
        Ok(mutation) => Frame::Ok { seq, mutation, len: total },
        Err(e) => Frame::Corrupt(e),
    }
}

fn decode_payload(p: &[u8]) -> Result<Mutation, String> {
    if p.len() < KEY_OFFSET {
        return Err("payload shorter than its header".into());
    }
    let key_len = u16_at(p, KEY_LEN_OFFSET) as usize;
    if key_len == 0 || p.len() < KEY_OFFSET + key_len {
        return Err(format!("bad key length {key_len}"));
    }
    let flags = p[FLAGS_OFFSET];
    if flags & !FLAG_PREV_EXPIRY != 0 {
        return Err(format!("unknown flags {flags:#04x}"));
    }
    // Journals written before the engine layer may set `prev_expiry`; its
    // value is not needed (the sweeper checks each record itself).
    let key: std::sync::Arc<[u8]> = p[KEY_OFFSET..KEY_OFFSET + key_len].into();
    let rest = &p[KEY_OFFSET + key_len..];
    let put = match p[OP_OFFSET] {
        OP_PUT => {
            // The record's own crc is checked when it is read from sled; here
            // we only need it to be long enough to hold one.
            if rest.len() < super::record::OVERHEAD {
                return Err("put without a record".into());
            }
            Some((rest.into(), u64_at(p, NEW_EXPIRY_OFFSET)))
        }
        OP_DELETE if rest.is_empty() && u64_at(p, NEW_EXPIRY_OFFSET) == 0 => None,
        OP_DELETE => return Err("delete with a record or an expiry".into()),
        op => return Err(format!("unknown op {op}")),
    };
    Ok(Mutation { key, put })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Record, State};

    fn put() -> Mutation {
        let r = Record {
            attempts: 1,
            created_at: 1,
            expires_at: 99,
            retention_ms: 50,
            fingerprint: None,
            state: State::Completed {
                token: 1,
                finished_at: 2,
                body: b"hi"[..].into(),
                format: crate::core::BodyFormat::Bytes,
            },
        };
        Mutation {
            key: b"\x01sx"[..].into(),
            put: Some((crate::format::record::encode(&r).into(), 99)),
        }
    }

    #[test]
    fn frames_round_trip() {
        let del = Mutation { key: b"\x01sy"[..].into(), put: None };
        let mut buf = Vec::new();
        encode_frame(&mut buf, 7, &put());
        let first = buf.len();
        encode_frame(&mut buf, 8, &del);
        assert_eq!(decode_frame(&buf), Frame::Ok { seq: 7, mutation: put(), len: first });
        assert_eq!(
            decode_frame(&buf[first..]),
            Frame::Ok { seq: 8, mutation: del, len: buf.len() - first }
        );
    }

    #[test]
    fn frames_of_older_builds_with_prev_expiry_still_decode() {
        // Builds before the engine layer set flag bit 0 and prev_expiry.
        let mut buf = Vec::new();
        encode_frame(&mut buf, 7, &put());
        let payload = FRAME_HEADER_LEN;
        buf[payload + FLAGS_OFFSET] = FLAG_PREV_EXPIRY;
        buf[payload + PREV_EXPIRY_OFFSET..payload + PREV_EXPIRY_OFFSET + 8]
            .copy_from_slice(&40u64.to_le_bytes());
        let sum = crc(&buf[FRAME_SEQ_OFFSET..]);
        buf[FRAME_CRC_OFFSET..FRAME_SEQ_OFFSET].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(decode_frame(&buf), Frame::Ok { seq: 7, mutation: put(), len: buf.len() });
    }

    #[test]
    fn truncation_is_torn_and_flips_are_corrupt() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 7, &put());
        for len in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..len]), Frame::Torn, "len {len}");
        }
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(!matches!(decode_frame(&b), Frame::Ok { .. }), "bit {bit}");
        }
    }

    #[test]
    fn header_checks() {
        let h = segment_header();
        assert_eq!(check_segment_header(&h), Ok(()));
        assert_eq!(check_segment_header(&h[..10]), Err(HeaderError::Damaged));
        let mut newer = h;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        let sum = crc(&newer[..12]);
        newer[12..16].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(check_segment_header(&newer), Err(HeaderError::Version(2)));
    }
}
