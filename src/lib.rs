//! # idemkv — each side effect once, every duplicate gets the original answer
//!
//! An embedded, in-process idempotency and deduplication engine. A service
//! that receives webhooks or retried API calls claims each event's key before
//! running its side effect, completes it with the response, and every
//! duplicate — concurrent or days later, before or after a crash — gets that
//! response back instead of running the side effect again. No Redis to run.
//!
//! - **Atomic claims**: of N concurrent claimers of a key exactly one acquires.
//! - **Fenced leases**: fencing tokens strictly increase across restarts; a
//!   stale holder cannot overwrite a newer one's result.
//! - **Durable**: every transition is journaled in our own crc32-framed,
//!   group-committed, fsynced journal before it is acknowledged; records live
//!   in sled 0.34.7 in our own versioned encoding (`docs/FORMAT.md`).
//! - **Crash recovery**: the journal is replayed on open, a torn tail cut off;
//!   claims of the dead process are orphaned at once, and so is a claim whose
//!   [`Guard`] was dropped unfinished (a panic, a cancelled future): the next
//!   claimer gets [`Guard::recovered`] and reconciles.
//! - **Retention** counted from completion (72 h by default), checked against
//!   the sender's declared retry horizon; expiry is checked on every read and
//!   a background sweeper removes expired records through an expiry index.
//!
//! ```
//! use idemkv::{Claim, Fingerprint, Key, Store};
//!
//! # fn already_charged(_: &Key) -> Option<Vec<u8>> { None }
//! # fn charge(_: &[u8]) -> Vec<u8> { b"ok".to_vec() }
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
//! let key = Key::new("stripe", "evt_1")?;
//! let response = match store.claim(&key, Fingerprint::of(body))? {
//!     Claim::Acquired(guard) => {
//!         // An earlier attempt was cut short after it may have charged:
//!         // reconcile instead of charging twice.
//!         let found = if guard.recovered() { already_charged(guard.key()) } else { None };
//!         let response = found.unwrap_or_else(|| charge(body)); // the side effect, once
//!         guard.complete(&response)?; // dropping the guard instead abandons the claim
//!         response
//!     }
//!     Claim::Replay(done) => done.response().to_vec(), // a duplicate
//!     Claim::InFlight { retry_after, .. } => return Err(format!("busy, retry in {retry_after:?}").into()),
//!     Claim::Mismatch { .. } => return Err("key reused for another payload".into()),
//! };
//! assert_eq!(response, b"ok");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same in one call: [`Store::run_once`]. From async code: the `_async`
//! forms ([`Store::claim_async`], [`Store::run_once_async`],
//! [`Guard::complete_async`], …), runtime-agnostic. Many keys at once, one
//! fsync: [`Store::claim_batch`], [`Store::complete_batch`]. Typed bodies
//! (the `serde` feature): `Json`, `Replay::json`. See [`Store`] for which
//! calls block and what each error leaves behind ("Which calls block",
//! "Errors"), and each method for its own.
//!
//! Architecture and guarantees: `docs/DESIGN.md`; byte layouts: `docs/FORMAT.md`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The layers, top to bottom: a module imports only from modules below it
// (docs/DESIGN.md, "Layers"; checked by tests/layers.rs):
//   http      the HTTP layer over the public front (the `http` feature)
//   store     the public front: API types, validation, waiting, metrics
//   embedded  the embedded backend: stripes over the engine
//   stripe    one stripe's state, pure: decides and returns effects
//   engine    journal, applier, checkpoint, META, tokens, sled storage
//   format    byte layouts of everything stored
//   core      the contract: record, rules, reports, the backend boundary
//   leaves    config, metrics, key, fingerprint, clock, io, poison, error, text
mod clock;
mod config;
mod core;
mod embedded;
mod engine;
mod error;
mod fingerprint;
mod format;
#[cfg(feature = "http")]
pub mod http;
mod io;
mod key;
mod metrics;
mod poison;
mod store;
mod stripe;
mod text;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use clock::{Clock, MAX_DURATION, Millis, MockClock, SystemClock, to_system_time};
pub use config::{
    Config, Durability, MAX_IMPORTED_TOKEN, MAX_RESPONSE_LIMIT, MAX_SEGMENT_BYTES, MAX_SWEEP_BATCH,
    MAX_TOKEN, MIN_SEGMENT_BYTES, MIN_SLED_CACHE_BYTES, Policy,
};
pub use error::{Error, Result, StaleReason};
pub use fingerprint::Fingerprint;
pub use key::{Key, MAX_ID_LEN, MAX_NAMESPACE_LEN};
pub use metrics::{Latency, NamespaceStats, Stats};
/// Fault-injection seams and decoder entry points for tests and fuzzing
/// (the `testing` feature); not a stable API, not in release builds.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing {
    pub use crate::io::{JournalFile, JournalFs, StdFs};

    /// Decodes `bytes` as a stored record (the `record_decode` fuzz target).
    pub fn decode_record(bytes: &[u8]) -> crate::Result<()> {
        crate::format::record::decode(b"fuzz", bytes).map(drop)
    }

    /// Re-encodes a record that decoded; must equal the input (round trip).
    pub fn reencode_record(bytes: &[u8]) -> crate::Result<Vec<u8>> {
        crate::format::record::decode(b"fuzz", bytes).map(|r| crate::format::record::encode(&r))
    }

    /// Drives one stripe's state, with the engine below it simulated in
    /// memory, through the operations `bytes` encodes, against a reference
    /// map of each key's latest record (the `stripe_model` fuzz target);
    /// `Err` describes the first divergence.
    pub fn stripe_model(bytes: &[u8]) -> Result<(), String> {
        crate::stripe::model::check(bytes)
    }

    /// Scans `bytes` as a journal segment (the `journal_recover` fuzz
    /// target): the sequence numbers of the intact entries before the first
    /// damage, and the damage.
    pub fn scan_journal_segment(bytes: &[u8]) -> (Vec<u64>, Option<String>) {
        let (entries, damage) = crate::engine::journal::scan_segment_image(bytes);
        (entries.into_iter().map(|(seq, _)| seq).collect(), damage)
    }

    /// Decodes `bytes` as a stored HTTP response envelope and encodes it
    /// again (the `http_envelope` fuzz target): must equal the input.
    #[cfg(feature = "http")]
    pub fn reencode_http_envelope(bytes: &[u8]) -> crate::Result<Vec<u8>> {
        crate::http::testing::reencode_envelope(bytes)
    }

    /// Reads `value` as an `Idempotency-Key` header (lenient, then strict)
    /// and as a `webhook-id`: `Ok` keys are never empty or over the limit.
    #[cfg(feature = "http")]
    pub fn parse_key_headers(value: &[u8]) -> Vec<Result<Option<String>, String>> {
        crate::http::testing::parse_key_headers(value)
    }
}

pub use core::{BodyFormat, RecoveryReport, VerifyReport};
#[cfg(feature = "serde")]
pub use store::Json;
pub use store::{
    Attempt, Body, Claim, ClaimOptions, Codec, Entry, EntryState, ExportedRecord, Fail, Failure,
    Guard, Lease, Outcome, Replay, RunOnce, Store,
};

#[cfg(test)]
mod tests {
    #[test]
    fn store_is_send_sync_and_cheap_to_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<crate::Store>();
        check::<crate::Lease>();
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<crate::Claim>();
        send_sync::<crate::Guard>();
    }
}
