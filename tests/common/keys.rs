//! Test keys: the namespace most tests use, and a claim that must acquire.

use idemkv::{Claim, Fingerprint, Key, Lease, Store};

use super::TestResult;

/// The namespace used by most tests.
pub const NS: &str = "test";

/// Key `NS:<id>`.
pub fn key(id: impl AsRef<[u8]>) -> Key {
    Key::new(NS, id).expect("valid test key")
}

/// Claims `key` and insists on `Acquired`.
pub fn acquire(store: &Store, key: &Key, fp: impl Into<Option<Fingerprint>>) -> TestResult<Lease> {
    match store.claim(key, fp)? {
        Claim::Acquired(lease) => Ok(lease.into_lease()),
        other => Err(format!("expected Acquired for {key}, got {other:?}").into()),
    }
}
