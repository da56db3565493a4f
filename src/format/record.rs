//! The record: one key's state as stored in sled and carried in journal
//! frames. Layout (docs/FORMAT.md, "Record", version 1):
//!
//! ```text
//! off len field
//!   0   2 magic        b"IK"
//!   2   1 version      1
//!   3   1 state tag    1 InProgress, 2 Completed, 3 Failed, 4 Idle
//!   4   1 flags        bit 0: fingerprint present; others 0
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
use crate::core::{IdleReason, Record, State};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;

pub(crate) const MAGIC: [u8; 2] = *b"IK";
pub(crate) const VERSION: u8 = 1;

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

/// Encodes a record.
pub(crate) fn encode(r: &Record) -> Vec<u8> {
    let (tag, idle, token, t1, t2, boot, body): (u8, u8, u64, u64, u64, u64, &[u8]) = match &r.state
    {
        State::InProgress { token, boot, claimed_at, lease_deadline } => {
            (TAG_IN_PROGRESS, 0, *token, *claimed_at, *lease_deadline, *boot, &[])
        }
        State::Completed { token, finished_at, body } => {
            (TAG_COMPLETED, 0, *token, *finished_at, 0, 0, body)
        }
        State::Failed { token, finished_at, body } => {
            (TAG_FAILED, 0, *token, *finished_at, 0, 0, body)
        }
        State::Idle { last_token, since, reason } => {
            let reason = match reason {
                IdleReason::Released => 1,
                IdleReason::RetryableFailure => 2,
            };
            (TAG_IDLE, reason, *last_token, *since, 0, 0, &[])
        }
    };
    let mut out = Vec::with_capacity(OVERHEAD + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(tag);
    out.push(if r.fingerprint.is_some() { FLAG_FINGERPRINT } else { 0 });
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
    if version != VERSION {
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
    if flags & !FLAG_FINGERPRINT != 0 {
        return corrupt(format!("unknown flags {flags:#04x}"));
    }
    let tag = b[TAG_OFFSET];
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
        TAG_COMPLETED => State::Completed { token, finished_at: t1, body },
        TAG_FAILED => State::Failed { token, finished_at: t1, body },
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
            base(State::Completed { token: 8, finished_at: 2_000, body: Arc::from(&b"ok"[..]) }),
            base(State::Failed { token: 9, finished_at: 2_100, body: Arc::from(&b"no"[..]) }),
            Record {
                fingerprint: None,
                ..base(State::Idle { last_token: 9, since: 3, reason: IdleReason::Released })
            },
        ]
    }

    #[test]
    fn round_trip() {
        for r in samples() {
            let bytes = encode(&r);
            assert_eq!(decode(b"k", &bytes).unwrap(), r);
        }
    }

    #[test]
    fn newer_version_is_unsupported_not_corrupt() {
        let mut bytes = encode(&samples()[1]);
        bytes[VERSION_OFFSET] = 2;
        let n = bytes.len() - 4;
        let sum = crc(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            decode(b"k", &bytes),
            Err(Error::UnsupportedVersion { found: 2, supported: 1, .. })
        ));
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
