//! Sentinel keys: a completed key that a bad-input test must not lose.

use idemkv::{Claim, Key, Store};

use super::{TestResult, acquire};

/// The response a sentinel key is completed with: what a bad-input test
/// must not lose.
pub const SENTINEL: &[u8] = b"sentinel";

/// Completes `key` in `store` with [`SENTINEL`].
pub fn plant_sentinel(store: &Store, key: &Key) -> TestResult {
    let lease = acquire(store, key, None)?;
    store.complete(&lease, SENTINEL)?;
    Ok(())
}

/// `key` still replays [`SENTINEL`]: nothing stored was lost.
pub fn sentinel_replays(store: &Store, key: &Key) -> TestResult {
    match store.claim(key, None)? {
        Claim::Replay(r) if r.response() == SENTINEL => Ok(()),
        other => Err(format!("the sentinel {key} was lost: {other:?}").into()),
    }
}
