//! The record: one key's state as stored in sled and carried in journal
//! frames. Layout (docs/FORMAT.md, "Record", versions 1 and 2):
//!
//! ```text
//! off len field
//!   0   2 magic        b"IK"
//!   2   1 version      1, or 2 when the body has a format (bits 1-2)
//!   3   1 state tag    1 InProgress, 2 Completed, 3 Failed, 4 Idle
//!   4   1 flags        bit 0: fingerprint present; bits 1-2 (version 2):
//!                      body format, 1 JSON, 2 HTTP envelope; others 0
//!   5   1 idle reason  0 (not Idle), 1 Released, 2 RetryableFailure
//!   6   2 reserved     0
//!   8   4 attempts     u32
//!  12   8 created_at   u64 ms since the Unix epoch (first claim)
//!  20   8 expires_at   u64 ms; the record is absent to reads from then on
//!  28   8 retention    u64 ms; kept from the claim for the finishing transition
//!  36   8 token        u64 fencing token (Idle: the last holder's)
//!  44   8 t1           u64 ms: claimed_at / finished_at / idle since
//!  52   8 t2           u64 ms: lease deadline (InProgress), else 0
//!  60   8 boot         u64 boot epoch of the claiming process (InProgress), else 0
//!  68  16 fingerprint  zero when absent
//!  84   4 body_len     u32
//!  88   n body         response (Completed) or error payload (Failed), else empty
//! 88+n  4 crc32        over bytes [0, 88+n)
//! ```

use std::sync::Arc;

use super::{check_trailing_crc, crc, u32_at, u64_at};
use crate::core::{BodyFormat, IdleReason, Record, State};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;

pub(crate) const MAGIC: [u8; 2] = *b"IK";
/// The newest version this build writes and reads. Version 1 (no body
/// format) is still written for every record whose body is plain bytes, so a
/// store that never uses the typed API stays readable by builds that know
/// only version 1.
pub(crate) const VERSION: u8 = 2;
const VERSION_PLAIN: u8 = 1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + 2;
const TAG_OFFSET: usize = VERSION_OFFSET + 1;
const FLAGS_OFFSET: usize = TAG_OFFSET + 1;
const IDLE_REASON_OFFSET: usize = FLAGS_OFFSET + 1;
const RESERVED_OFFSET: usize = IDLE_REASON_OFFSET + 1;
const ATTEMPTS_OFFSET: usize = RESERVED_OFFSET + 2;
const CREATED_OFFSET: usize = ATTEMPTS_OFFSET + 4;
const EXPIRES_OFFSET: usize = CREATED_OFFSET + 8;
const RETENTION_OFFSET: usize = EXPIRES_OFFSET + 8;
const TOKEN_OFFSET: usize = RETENTION_OFFSET + 8;
const T1_OFFSET: usize = TOKEN_OFFSET + 8;
const T2_OFFSET: usize = T1_OFFSET + 8;
const BOOT_OFFSET: usize = T2_OFFSET + 8;
const FINGERPRINT_OFFSET: usize = BOOT_OFFSET + 8;
const BODY_LEN_OFFSET: usize = FINGERPRINT_OFFSET + 16;
/// Bytes before the body.
pub(crate) const HEADER_LEN: usize = BODY_LEN_OFFSET + 4;
/// Header plus the crc trailer: the size of a record with an empty body.
pub(crate) const OVERHEAD: usize = HEADER_LEN + 4;

const TAG_IN_PROGRESS: u8 = 1;
const TAG_COMPLETED: u8 = 2;
const TAG_FAILED: u8 = 3;
const TAG_IDLE: u8 = 4;

const FLAG_FINGERPRINT: u8 = 1;
/// Bits 1-2 (version 2): the body format; 0 is never written in version 2.
const FORMAT_SHIFT: u8 = 1;
const FORMAT_MASK: u8 = 0b110;
const FORMAT_JSON: u8 = 1;
const FORMAT_HTTP: u8 = 2;

/// Encodes a record.
pub(crate) fn encode(r: &Record) -> Vec<u8> {
    type Fields<'a> = (u8, u8, u64, u64, u64, u64, &'a [u8], BodyFormat);
    let (tag, idle, token, t1, t2, boot, body, format): Fields<'_> = match &r.state {
        State::InProgress { token, boot, claimed_at, lease_deadline } => (
            TAG_IN_PROGRESS,
            0,
            *token,
            *claimed_at,
            *lease_deadline,
            *boot,
            &[],
            BodyFormat::Bytes,
        ),
        State::Completed { token, finished_at, body, format } => {
            (TAG_COMPLETED, 0, *token, *finished_at, 0, 0, body, *format)
        }
        State::Failed { token, finished_at, body, format } => {
            (TAG_FAILED, 0, *token, *finished_at, 0, 0, body, *format)
        }
        State::Idle { last_token, since, reason } => {
            let reason = match reason {
                IdleReason::Released => 1,
                IdleReason::RetryableFailure => 2,
            };
            (TAG_IDLE, reason, *last_token, *since, 0, 0, &[], BodyFormat::Bytes)
        }
    };
    let (version, format_bits) = match format {
        BodyFormat::Bytes => (VERSION_PLAIN, 0),
        BodyFormat::Json => (VERSION, FORMAT_JSON << FORMAT_SHIFT),
        BodyFormat::Http => (VERSION, FORMAT_HTTP << FORMAT_SHIFT),
    };
    let mut out = Vec::with_capacity(OVERHEAD + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(version);
    out.push(tag);
    out.push(if r.fingerprint.is_some() { FLAG_FINGERPRINT } else { 0 } | format_bits);
    out.push(idle);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&r.attempts.to_le_bytes());
    out.extend_from_slice(&r.created_at.to_le_bytes());
    out.extend_from_slice(&r.expires_at.to_le_bytes());
    out.extend_from_slice(&r.retention_ms.to_le_bytes());
    out.extend_from_slice(&token.to_le_bytes());
    out.extend_from_slice(&t1.to_le_bytes());
    out.extend_from_slice(&t2.to_le_bytes());
    out.extend_from_slice(&boot.to_le_bytes());
    out.extend_from_slice(r.fingerprint.as_ref().map_or(&[0u8; 16], |f| f.as_bytes()));
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(body);
    let sum = crc(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Decodes a record; `key` (the raw storage key) only labels the error.
pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Result<Record> {
    decode_inner(bytes).map_err(|e| match e {
        Invalid::Corrupt(reason) => Error::Corrupt { key: key.to_vec(), reason },
        Invalid::Version(v) => crate::format::unsupported("record", v.into(), VERSION.into()),
    })
}

/// Why bytes are not a record this build can read.
enum Invalid {
    Corrupt(String),
    Version(u8),
}

fn corrupt<T>(reason: impl Into<String>) -> std::result::Result<T, Invalid> {
    Err(Invalid::Corrupt(reason.into()))
}

fn decode_inner(b: &[u8]) -> std::result::Result<Record, Invalid> {
    // Length first: every fixed offset below must be in bounds.
    if b.len() < OVERHEAD {
        return corrupt(format!("record is {} bytes, below the {OVERHEAD}-byte minimum", b.len()));
    }
    if b[MAGIC_OFFSET..MAGIC_OFFSET + 2] != MAGIC {
        return corrupt("bad magic");
    }
    // Checksum before interpreting any field, so that a flipped bit in a
    // length or tag is reported as corruption rather than as a strange value.
    check_trailing_crc(b).map_err(Invalid::Corrupt)?;
    // After the checksum: an intact record of a newer version is not damage.
    let version = b[VERSION_OFFSET];
    if version != VERSION && version != VERSION_PLAIN {
        return Err(Invalid::Version(version));
    }
    if b[RESERVED_OFFSET..RESERVED_OFFSET + 2] != [0, 0] {
        return corrupt("reserved bytes are not zero");
    }
    let body_len = u32_at(b, BODY_LEN_OFFSET) as usize;
    if HEADER_LEN + body_len + 4 != b.len() {
        return corrupt(format!("body length {body_len} does not match the size {}", b.len()));
    }
    let flags = b[FLAGS_OFFSET];
    let known =
        if version == VERSION_PLAIN { FLAG_FINGERPRINT } else { FLAG_FINGERPRINT | FORMAT_MASK };
    if flags & !known != 0 {
        return corrupt(format!("unknown flags {flags:#04x} in a version {version} record"));
    }
    let tag = b[TAG_OFFSET];
    // Canonical: version 2 exactly when a finished record's body has a
    // format, so that every record re-encodes to the same bytes.
    let format = match (flags & FORMAT_MASK) >> FORMAT_SHIFT {
        0 if version == VERSION_PLAIN => BodyFormat::Bytes,
        FORMAT_JSON if matches!(tag, TAG_COMPLETED | TAG_FAILED) => BodyFormat::Json,
        FORMAT_HTTP if matches!(tag, TAG_COMPLETED | TAG_FAILED) => BodyFormat::Http,
        0 => return corrupt("a version 2 record without a body format"),
        FORMAT_JSON | FORMAT_HTTP => {
            return corrupt(format!("state tag {tag} carries a body format"));
        }
        other => return corrupt(format!("unknown body format {other}")),
    };
    if !matches!(tag, TAG_COMPLETED | TAG_FAILED) && body_len != 0 {
        return corrupt(format!("state tag {tag} carries a {body_len}-byte body"));
    }
    if tag != TAG_IDLE && b[IDLE_REASON_OFFSET] != 0 {
        return corrupt("idle reason set on a record that is not idle");
    }
    let fingerprint = (flags & FLAG_FINGERPRINT != 0).then(|| {
        let mut f = [0u8; 16];
        f.copy_from_slice(&b[FINGERPRINT_OFFSET..FINGERPRINT_OFFSET + 16]);
        Fingerprint::from_bytes(f)
    });
    let token = u64_at(b, TOKEN_OFFSET);
    let t1 = u64_at(b, T1_OFFSET);
    let body: Arc<[u8]> = b[HEADER_LEN..HEADER_LEN + body_len].into();
    let state = match tag {
        TAG_IN_PROGRESS => State::InProgress {
            token,
            boot: u64_at(b, BOOT_OFFSET),
            claimed_at: t1,
            lease_deadline: u64_at(b, T2_OFFSET),
        },
        TAG_COMPLETED => State::Completed { token, finished_at: t1, body, format },
        TAG_FAILED => State::Failed { token, finished_at: t1, body, format },
        TAG_IDLE => State::Idle {
            last_token: token,
            since: t1,
            reason: match b[IDLE_REASON_OFFSET] {
                1 => IdleReason::Released,
                2 => IdleReason::RetryableFailure,
                other => return corrupt(format!("unknown idle reason {other}")),
            },
        },
        other => return corrupt(format!("unknown state tag {other}")),
    };
    Ok(Record {
        attempts: u32_at(b, ATTEMPTS_OFFSET),
        created_at: u64_at(b, CREATED_OFFSET),
        expires_at: u64_at(b, EXPIRES_OFFSET),
        retention_ms: u64_at(b, RETENTION_OFFSET),
        fingerprint,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        let base = |state| Record {
            attempts: 3,
            created_at: 1_000,
            expires_at: 9_000,
            retention_ms: 5_000,
            fingerprint: Some(Fingerprint::of(b"body")),
            state,
        };
        vec![
            base(State::InProgress { token: 7, boot: 2, claimed_at: 1_500, lease_deadline: 4_000 }),
            base(State::Completed {
                token: 8,
                finished_at: 2_000,
                body: Arc::from(&b"ok"[..]),
                format: BodyFormat::Bytes,
            }),
            base(State::Failed {
                token: 9,
                finished_at: 2_100,
                body: Arc::from(&b"no"[..]),
                format: BodyFormat::Bytes,
            }),
            base(State::Completed {
                token: 10,
                finished_at: 2_200,
                body: Arc::from(&br#"{"ok":true}"#[..]),
                format: BodyFormat::Json,
            }),
            base(State::Failed {
                token: 11,
                finished_at: 2_300,
                body: Arc::from(&br#""declined""#[..]),
                format: BodyFormat::Json,
            }),
            Record {
                fingerprint: None,
                ..base(State::Idle { last_token: 9, since: 3, reason: IdleReason::Released })
            },
            base(State::Completed {
                token: 12,
                finished_at: 2_400,
                body: Arc::from(&b"\x01\x00\xc9\x00\x00"[..]),
                format: BodyFormat::Http,
            }),
        ]
    }

    #[test]
    fn round_trip() {
        for r in samples() {
            let bytes = encode(&r);
            assert_eq!(decode(b"k", &bytes).unwrap(), r);
        }
    }

    /// Rewrites byte `at` and fixes the checksum: intact, but changed.
    fn resealed(mut bytes: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
        bytes[at] = value;
        let n = bytes.len() - 4;
        let sum = crc(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
        bytes
    }

    #[test]
    fn newer_version_is_unsupported_not_corrupt() {
        for v in [0, 3, 4, 255] {
            let bytes = resealed(encode(&samples()[1]), VERSION_OFFSET, v);
            match decode(b"k", &bytes) {
                Err(Error::UnsupportedVersion { found, supported: 2, .. }) => {
                    assert_eq!(found, u32::from(v))
                }
                other => panic!("version {v}: {other:?}"),
            }
        }
    }

    #[test]
    fn version_is_1_for_plain_bodies_and_2_for_typed_ones() {
        for r in samples() {
            let typed = matches!(
                r.state,
                State::Completed { format: BodyFormat::Json | BodyFormat::Http, .. }
                    | State::Failed { format: BodyFormat::Json | BodyFormat::Http, .. }
            );
            assert_eq!(encode(&r)[VERSION_OFFSET], if typed { 2 } else { 1 }, "{r:?}");
        }
    }

    #[test]
    fn body_format_bits_are_checked_against_version_and_state() {
        let s = samples();
        // Every flags value on a plain and on a typed record: only the
        // canonical ones decode, and each decoded record re-encodes exactly.
        for r in [&s[0], &s[1], &s[3], &s[4], &s[5], &s[6]] {
            let bytes = encode(r);
            for flags in 0..=u8::MAX {
                let b = resealed(bytes.clone(), FLAGS_OFFSET, flags);
                if let Ok(d) = decode(b"k", &b) {
                    // Version and format bits survive a re-encode (the
                    // fingerprint bytes of a cleared flag are not read).
                    let again = encode(&d);
                    assert_eq!(again[VERSION_OFFSET], b[VERSION_OFFSET], "{flags:#04x} {r:?}");
                    assert_eq!(again[FLAGS_OFFSET], flags, "{flags:#04x} of {r:?}");
                    assert_eq!(decode(b"k", &again).unwrap(), d);
                } else {
                    assert!(matches!(decode(b"k", &b), Err(Error::Corrupt { .. })));
                }
            }
        }
        // A typed body on a state without a body, and version 2 without one.
        let b = resealed(encode(&s[0]), FLAGS_OFFSET, 1 | (FORMAT_JSON << FORMAT_SHIFT));
        let b = resealed(b, VERSION_OFFSET, 2);
        assert!(matches!(decode(b"k", &b), Err(Error::Corrupt { .. })));
        let b = resealed(encode(&s[1]), VERSION_OFFSET, 2);
        assert!(matches!(decode(b"k", &b), Err(Error::Corrupt { .. })));
        // A version 1 record with format bits is damage, not JSON.
        let b = resealed(encode(&s[1]), FLAGS_OFFSET, 1 | (FORMAT_JSON << FORMAT_SHIFT));
        assert!(matches!(decode(b"k", &b), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_corrupt() {
        for r in samples() {
            let bytes = encode(&r);
            for len in 0..bytes.len() {
                assert!(matches!(decode(b"k", &bytes[..len]), Err(Error::Corrupt { .. })));
            }
            for bit in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(matches!(decode(b"k", &b), Err(Error::Corrupt { .. })), "bit {bit}");
            }
        }
    }
}
