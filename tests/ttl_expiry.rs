//! Guards retention and lease expiry: finished records replay until retention (counted from completion) passes, leases expire into recovered claims, per-namespace and per-call policies apply, all without the sweeper.

mod common;

use std::time::Duration;

use common::{T0, TestResult, acquire, key, mock_clock, mock_config, ms};
use idemkv::{Claim, ClaimOptions, Config, EntryState, Key, MockClock, Policy, Store};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const MS: Duration = Duration::from_millis(1);

fn expect_replay(store: &Store, k: &Key, body: &[u8]) -> TestResult {
    match store.claim(k, None)? {
        Claim::Replay(r) => {
            assert_eq!(r.response(), body);
            Ok(())
        }
        other => Err(format!("expected Replay of {k}, got {other:?}").into()),
    }
}

fn one_hour(clock: &MockClock) -> Config {
    mock_config(clock)
        .default_policy(Policy::default().lease(Duration::from_secs(30)).retention(HOUR))
}

#[test]
fn retention_counts_from_completion_not_claim() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = one_hour(&clock).open(dir.path())?;
    let k = key("slow");
    let lease = acquire(&store, &k, None)?;
    clock.advance(10 * MIN); // long side effect (lease expired, nobody took over)
    store.complete(&lease, b"resp")?;
    let done_at = T0 + 10 * 60_000;
    assert_eq!(store.get(&k)?.map(|e| ms(e.expires_at)), Some(done_at + 3_600_000));

    // Past claim + lease + retention, but not past completion + retention.
    clock.set(T0 + 30_000 + 3_600_000 + 1);
    expect_replay(&store, &k, b"resp")?;
    clock.set(done_at + 3_600_000 - 1);
    expect_replay(&store, &k, b"resp")?;

    clock.set(done_at + 3_600_000);
    assert_eq!(store.get(&k)?, None, "expired at completion + retention");
    let fresh = acquire(&store, &k, None)?;
    assert_eq!(fresh.attempt(), 1);
    assert!(!fresh.recovered());
    Ok(())
}

#[test]
fn namespace_policy_applies() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock)
        .namespace("short", Policy::default().lease(Duration::from_secs(5)).retention(10 * MIN))
        .open(dir.path())?;
    let short = Key::new("short", "a")?;
    let long = key("a"); // default policy: 30 s lease, 72 h retention

    let ls = acquire(&store, &short, None)?;
    let ll = acquire(&store, &long, None)?;
    assert_eq!(ms(ls.deadline()), T0 + 5_000);
    assert_eq!(ms(ll.deadline()), T0 + 30_000);
    store.complete(&ls, b"s")?;
    store.complete(&ll, b"l")?;

    clock.advance(10 * MIN - MS);
    expect_replay(&store, &short, b"s")?;
    clock.advance(MS);
    assert_eq!(store.get(&short)?, None);
    expect_replay(&store, &long, b"l")?;
    clock.advance(72 * HOUR - 10 * MIN);
    assert_eq!(store.get(&long)?, None);

    // The namespace lease: taken over after 5 s.
    let a = acquire(&store, &short, None)?;
    clock.advance(Duration::from_secs(5) - MS);
    assert!(matches!(store.claim(&short, None)?, Claim::InFlight { .. }));
    clock.advance(MS);
    let b = acquire(&store, &short, None)?;
    assert!(b.recovered());
    assert!(b.token() > a.token());
    Ok(())
}

#[test]
fn claim_options_apply() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    let k = key("opts");
    let opts = ClaimOptions::new().lease(Duration::from_secs(2)).retention(20 * MIN);
    let Claim::Acquired(lease) = store.claim_with(&k, None, &opts)? else {
        panic!("a new key is acquired");
    };
    let lease = lease.into_lease();
    assert_eq!(ms(lease.deadline()), T0 + 2_000);
    clock.advance(Duration::from_secs(1));
    store.complete(&lease, b"r")?;
    assert_eq!(
        store.get(&k)?.map(|e| ms(e.expires_at)),
        Some(T0 + 1_000 + 20 * 60_000),
        "the per-call retention is kept for the completion"
    );
    clock.advance(20 * MIN - MS);
    expect_replay(&store, &k, b"r")?;
    clock.advance(MS);
    assert_eq!(store.get(&k)?, None);

    // Per-call lease: another claimer takes over after 2 s, not 30 s.
    let Claim::Acquired(a) = store.claim_with(&k, None, &opts)? else {
        panic!("expired key is acquired");
    };
    let a = a.into_lease();
    clock.advance(Duration::from_secs(2));
    let b = acquire(&store, &k, None)?;
    assert!(b.recovered());
    assert_eq!(b.attempt(), 2);
    assert!(b.token() > a.token());
    Ok(())
}

#[test]
fn expired_lease_is_recovered() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    let k = key("orphan");
    let a = acquire(&store, &k, None)?;
    clock.advance(Duration::from_secs(30) - MS);
    match store.claim(&k, None)? {
        Claim::InFlight { retry_after, .. } => assert_eq!(retry_after, MS),
        other => panic!("expected InFlight, got {other:?}"),
    }
    clock.advance(MS);
    let b = acquire(&store, &k, None)?;
    assert!(b.recovered());
    assert_eq!(b.attempt(), 2);
    assert!(b.token() > a.token());
    assert!(matches!(store.claim(&k, None)?, Claim::InFlight { attempt: 2, .. }));
    Ok(())
}

#[test]
fn expiry_does_not_depend_on_the_sweeper() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = one_hour(&clock).open(dir.path())?; // sweep_interval(None)
    let done = key("done");
    let held = key("held");
    let l = acquire(&store, &done, None)?;
    store.complete(&l, b"x")?;
    let h = acquire(&store, &held, None)?;
    store.checkpoint()?;
    assert_eq!(store.__index_len(), 2);

    clock.advance(HOUR);
    assert_eq!(store.get(&done)?, None);
    assert!(
        matches!(
            store.get(&held)?.map(|e| e.state),
            Some(EntryState::InProgress { orphaned: true, .. })
        ),
        "an abandoned claim lives lease + retention"
    );
    assert_eq!(store.__index_len(), 2, "nothing swept: the records are still stored");
    let fresh = acquire(&store, &done, None)?;
    assert_eq!(fresh.attempt(), 1);

    clock.advance(Duration::from_secs(30));
    assert_eq!(store.get(&held)?, None, "expired at lease deadline + retention");
    let again = acquire(&store, &held, None)?;
    assert_eq!(again.attempt(), 1, "an expired record is absent, not an orphan");
    assert!(!again.recovered());
    assert!(again.token() > h.token());
    Ok(())
}

#[test]
fn expiry_holds_across_reopen() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let k = key("persisted");
    {
        let store = one_hour(&clock).open(dir.path())?;
        let l = acquire(&store, &k, None)?;
        store.complete(&l, b"kept")?;
        store.close()?;
    }
    clock.advance(HOUR - MS);
    {
        let store = one_hour(&clock).open(dir.path())?;
        expect_replay(&store, &k, b"kept")?;
        store.close()?;
    }
    clock.advance(MS);
    let store = one_hour(&clock).open(dir.path())?;
    assert_eq!(store.get(&k)?, None);
    assert_eq!(acquire(&store, &k, None)?.attempt(), 1);
    Ok(())
}
