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
    /// Abandons the claim: the key is orphaned at once (the next claim
    /// acquires it `recovered`) if `lease` still holds it; otherwise nothing
    /// changes. With `guard` the driver drops a guard — the claim's own
    /// guard if it still keeps it (see [`keeps_guard`]), else
    /// `store.adopt(lease)`, which refuses a lease of an earlier open
    /// (`StaleLease { OtherStore }`); without it, `store.abandon(&lease)`,
    /// which never reports anything (the kept guard, if any, stays).
    Abandon { lease: usize, guard: bool },
    /// `complete(Json(&json_value(value)))` through the claim's guard (kept
    /// or adopted): stored as JSON (`BodyFormat::Json`).
    CompleteJson { lease: usize, value: u8 },
    /// `claim_batch` of 2–5 items, duplicates allowed: answered as
    /// sequential claims in order.
    ClaimBatch { items: Vec<(u8, Option<Fp>)> },
    /// `complete_batch` of the guards (kept or adopted) of several leases,
    /// each with body number `n` — or `Json(&json_value(n))` if `json`:
    /// each item as `complete`, in order. A lease of an earlier open cannot
    /// be adopted: its item is `StaleLease { OtherStore }`.
    CompleteBatch { items: Vec<(usize, u8)>, json: bool },
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
    /// `abandon` (which reports nothing).
    Abandoned,
    /// The answers of a batch, item by item.
    Batch(Vec<Outcome>),
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

/// A small JSON value, by number (see [`json_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLit {
    Num(u32),
    Text(&'static str),
}

/// The JSON values the typed completions store, with their expected bytes
/// (`serde_json`'s compact encoding, written out by hand).
const JSON_VALUES: [(JsonLit, &str); 5] = [
    (JsonLit::Num(0), "0"),
    (JsonLit::Num(4_000_000_000), "4000000000"),
    (JsonLit::Text("ok"), r#""ok""#),
    (JsonLit::Text(""), r#""""#),
    (JsonLit::Text("say \"hi\"\n"), r#""say \"hi\"\n""#),
];

/// JSON value number `n`.
pub fn json_value(n: u8) -> JsonLit {
    JSON_VALUES[usize::from(n) % JSON_VALUES.len()].0
}

/// The stored bytes of JSON value number `n`.
pub fn json_bytes(n: u8) -> Vec<u8> {
    JSON_VALUES[usize::from(n) % JSON_VALUES.len()].1.as_bytes().to_vec()
}

/// Whether the driver keeps the guard of lease `id` (every other one) and
/// finishes the claim through it, rather than detaching it at once. A kept
/// guard is consumed by the first finishing op on its lease (or an
/// `Abandon { guard: true }`); at a `Reopen { close: false }` the driver
/// drops the store handle and then the guards still kept, which abandon
/// their claims (the store stays open until the last one); at a
/// `Reopen { close: true }` it drops them after the store is closed and
/// opened again (nothing happens).
pub fn keeps_guard(id: LeaseId) -> bool {
    id % 2 == 1
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
