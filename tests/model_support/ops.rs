//! The operations of a test sequence, their outcomes, and the values they
//! name by number (bodies, fingerprints, keys, leases).

use idemkv::{Fingerprint, Key};

use super::{ClaimOut, EntryView, Fp, KEYS, LeaseId, Ms, NS, ReplayView, Stale};

/// One operation of a test sequence. A `lease` field selects among the
/// leases acquired so far, stale ones included: 0 is the most recent, 1 the
/// one before, … (modulo their number); with none acquired the op is
/// skipped (`Outcome::NoLease`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `claim`, or `claim_with` when `lease_ms` or `retention_ms` is set.
    Claim { key: u8, fp: Option<Fp>, lease_ms: Option<Ms>, retention_ms: Option<Ms> },
    /// `wait` with a short timeout: behaves as a claim, `InFlight` at the
    /// timeout (the mock clock does not move while it waits).
    Wait { key: u8, fp: Option<Fp>, timeout_ms: u64 },
    /// `complete(lease, body(body))`.
    Complete { lease: usize, body: u8 },
    /// `fail(lease, Retryable)`.
    FailRetryable { lease: usize },
    /// `fail(lease, Terminal(body(body)))`.
    FailTerminal { lease: usize, body: u8 },
    /// `extend(lease, by_ms)`.
    Extend { lease: usize, by_ms: Ms },
    /// `release(lease)`.
    Release { lease: usize },
    /// `remove(key)`.
    Remove { key: u8 },
    /// `get(key)`.
    Get { key: u8 },
    /// Moves the mock clock forward.
    Advance { ms: Ms },
    /// `sweep()`.
    Sweep,
    /// Closes the store (`close()` if `close`, else drop) and opens it again.
    Reopen { close: bool },
}

/// The result of one operation, in the model's terms. Identical for the
/// model and the real store, or the test fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A lease-addressed op with no lease acquired yet: skipped.
    NoLease,
    Acquired {
        lease: LeaseId,
        attempt: u32,
        recovered: bool,
        deadline: Ms,
    },
    Replay(ReplayView),
    InFlight {
        retry_after_ms: Ms,
        attempt: u32,
    },
    Mismatch {
        stored: Fp,
    },
    /// `complete`, `fail` or `release` returned `Ok`.
    Done,
    /// `extend` returned `Ok`; the lease's new deadline.
    Extended {
        deadline: Ms,
    },
    Stale(Stale),
    /// `Error::InvalidConfig` (bad per-call options or `extend` duration).
    InvalidConfig,
    Removed(bool),
    Got(Option<EntryView>),
    Swept(usize),
    Advanced,
    Reopened,
    /// Anything the model never answers: an unexpected error, a token that
    /// did not increase, a token the driver never saw.
    Unexpected(String),
}

impl From<ClaimOut> for Outcome {
    fn from(c: ClaimOut) -> Outcome {
        match c {
            ClaimOut::Acquired { id, attempt, recovered, deadline } => {
                Outcome::Acquired { lease: id, attempt, recovered, deadline }
            }
            ClaimOut::Replay(r) => Outcome::Replay(r),
            ClaimOut::InFlight { retry_after_ms, attempt } => {
                Outcome::InFlight { retry_after_ms, attempt }
            }
            ClaimOut::Mismatch { stored } => Outcome::Mismatch { stored },
        }
    }
}

/// The bytes of response/payload number `n` (0 is the empty response).
pub fn body(n: u8) -> Vec<u8> {
    if n == 0 { Vec::new() } else { format!("body-{n}").into_bytes() }
}

/// The fingerprint of number `n`.
pub fn fingerprint(n: Fp) -> Fingerprint {
    Fingerprint::of(format!("request-{n}"))
}

/// The key of number `n`.
pub fn key(n: u8) -> Key {
    Key::new(NS, format!("k{}", n % KEYS)).expect("valid key")
}

/// Picks lease `sel` among `n` acquired: 0 is the latest.
pub fn pick(sel: usize, n: usize) -> Option<usize> {
    (n > 0).then(|| n - 1 - sel % n)
}
