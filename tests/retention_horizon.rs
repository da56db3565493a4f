//! Guards configuration checks: retention shorter than the declared retry horizon, leases longer than retention, zero leases and bad shard counts are refused with InvalidConfig, at open or at claim, before anything is stored.

mod common;

use std::time::Duration;

use common::{TestResult, acquire, key};
use idemkv::{Claim, ClaimOptions, Config, Error, Key, Policy, Store};

const HOUR: Duration = Duration::from_secs(3600);

fn invalid_config<T: std::fmt::Debug>(res: idemkv::Result<T>) -> String {
    match res {
        Err(Error::InvalidConfig { reason }) => reason,
        other => panic!("expected Error::InvalidConfig, got {other:?}"),
    }
}

/// Opens `config` in a directory that does not exist yet, expecting a refusal
/// that leaves nothing behind.
fn refused(config: Config) -> TestResult<String> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("store");
    let reason = invalid_config(config.open(&dir));
    assert!(!dir.exists(), "a refused config must not create the directory");
    Ok(reason)
}

#[test]
fn namespace_retention_below_horizon_is_refused_at_open() -> TestResult {
    let policy = Policy::default().retention(24 * HOUR).retry_horizon(72 * HOUR);
    let reason = refused(Config::new().namespace("stripe", policy))?;
    assert!(reason.contains("horizon"), "{reason}");
    assert!(reason.contains("stripe"), "names the namespace: {reason}");

    // Equal is enough.
    let dir = tempfile::tempdir()?;
    let ok = Policy::default().retention(72 * HOUR).retry_horizon(72 * HOUR);
    Config::new().namespace("stripe", ok).open(dir.path())?.close()?;
    Ok(())
}

#[test]
fn default_policy_retention_below_horizon_is_refused_at_open() -> TestResult {
    let policy = Policy::default().retention(HOUR).retry_horizon(2 * HOUR);
    let reason = refused(Config::new().default_policy(policy))?;
    assert!(reason.contains("horizon"), "{reason}");
    Ok(())
}

#[test]
fn claim_retention_below_horizon_is_refused_and_stores_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Config::new()
        .namespace("stripe", Policy::default().retry_horizon(24 * HOUR))
        .open(dir.path())?;
    let k = Key::new("stripe", "evt_1")?;
    let short = ClaimOptions::new().retention(23 * HOUR);
    let reason = invalid_config(store.claim_with(&k, None, &short));
    assert!(reason.contains("horizon"), "{reason}");
    let reason = invalid_config(store.claim_with(&k, None, &short.lease(Duration::from_secs(5))));
    assert!(reason.contains("horizon"), "{reason}");

    assert_eq!(store.get(&k)?, None, "a refused claim stores nothing");
    store.checkpoint()?;
    assert_eq!(store.__index_len(), 0);
    assert_eq!(store.verify()?.records, 0);

    // The horizon is per namespace: elsewhere the short retention is fine.
    let other = key("evt_1");
    assert!(matches!(store.claim_with(&other, None, &short)?, Claim::Acquired(_)));
    // And a long-enough per-call retention is accepted.
    let lease = store
        .claim_with(&k, None, &ClaimOptions::new().retention(24 * HOUR))?
        .into_lease()
        .ok_or("expected Acquired")?;
    assert_eq!(lease.attempt(), 1, "the refused claims did not count");
    Ok(())
}

#[test]
fn lease_longer_than_retention_is_refused() -> TestResult {
    let reason =
        refused(Config::new().default_policy(Policy::default().lease(2 * HOUR).retention(HOUR)))?;
    assert!(reason.contains("lease"), "{reason}");
    refused(Config::new().namespace("ns", Policy::default().lease(2 * HOUR).retention(HOUR)))?;

    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let k = key("k");
    invalid_config(store.claim_with(
        &k,
        None,
        &ClaimOptions::new().lease(2 * HOUR).retention(HOUR),
    ));
    invalid_config(store.claim_with(&k, None, &ClaimOptions::new().lease(100 * HOUR)));
    assert_eq!(store.get(&k)?, None);

    // extend() is held to the same rule.
    let mut lease = acquire(&store, &k, None)?;
    invalid_config(store.extend(&mut lease, 73 * HOUR));
    Ok(())
}

#[test]
fn zero_lease_or_retention_is_refused() -> TestResult {
    refused(Config::new().default_policy(Policy::default().lease(Duration::ZERO)))?;
    refused(Config::new().namespace("ns", Policy::default().lease(Duration::ZERO)))?;
    refused(Config::new().default_policy(Policy::default().retention(Duration::ZERO)))?;

    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let k = key("k");
    invalid_config(store.claim_with(&k, None, &ClaimOptions::new().lease(Duration::ZERO)));
    invalid_config(store.claim_with(&k, None, &ClaimOptions::new().retention(Duration::ZERO)));
    assert_eq!(store.get(&k)?, None);
    let mut lease = acquire(&store, &k, None)?;
    invalid_config(store.extend(&mut lease, Duration::ZERO));
    Ok(())
}

#[test]
fn shards_must_be_a_power_of_two() -> TestResult {
    for bad in [0, 3, 6, 100, 8192] {
        let reason = refused(Config::new().shards(bad))?;
        assert!(reason.contains("shards"), "{reason}");
    }
    for good in [1, 2, 4096] {
        let dir = tempfile::tempdir()?;
        let store = Config::new().shards(good).open(dir.path())?;
        acquire(&store, &key("k"), None)?;
        store.close()?;
    }
    Ok(())
}
