//! Guards that a clock reading at or near `u64::MAX` milliseconds panics nowhere: every public call (claim, wait, extend, complete, fail, release, remove, get, list, export, import, sweep, stats, checkpoint, verify, close and reopen) saturates its deadlines instead of overflowing, and `MockClock::advance` saturates instead of wrapping back to 0.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::{TestResult, acquire, key, mock_config};
use idemkv::{Claim, ClaimOptions, Clock, Failure, MAX_DURATION, MockClock, Policy, Store};

/// Every call at the clock's current time; returns an error on a contract
/// breach (a panic is caught by the caller).
fn exercise(store: &Store, clock: &MockClock, tag: &str) -> TestResult {
    let k = |id: &str| key(format!("{tag}-{id}"));
    let done = acquire(store, &k("done"), None)?;
    assert!(matches!(store.claim(&k("done"), None)?, Claim::InFlight { .. }));
    assert!(matches!(
        store.wait(&k("done"), None, Duration::from_millis(1))?,
        Claim::InFlight { .. }
    ));
    let mut done = done;
    store.extend(&mut done, Duration::from_secs(60))?;
    let _ = done.deadline();
    store.complete(&done, b"ok")?;
    assert!(matches!(store.claim(&k("done"), None)?, Claim::Replay(_)));
    let opts = ClaimOptions::new().lease(MAX_DURATION).retention(MAX_DURATION);
    let long = store.claim_with(&k("long"), None, &opts)?.into_lease().ok_or("not acquired")?;
    store.fail(&long, Failure::Terminal(b"no"))?;
    let idle = acquire(store, &k("idle"), None)?;
    store.fail(&idle, Failure::Retryable)?;
    let released = acquire(store, &k("released"), None)?;
    store.release(&released)?;
    let removed = acquire(store, &k("removed"), None)?;
    store.remove(&k("removed"))?;
    assert!(store.complete(&removed, b"x").is_err());
    let _ = store.get(&k("done"))?;
    let _ = store.list(None, None, 100)?;
    let mut exported = Vec::new();
    store.export(|r| {
        exported.push(r);
        Ok(())
    })?;
    for r in &exported {
        store.import(r)?;
    }
    store.sweep()?;
    let _ = store.stats().to_prometheus();
    store.checkpoint()?;
    assert!(store.verify()?.corrupt.is_empty());
    // Time moves on past the end: saturates, never wraps to the past.
    clock.advance(Duration::MAX);
    assert_eq!(clock.now_millis(), u64::MAX);
    let _ = store.claim(&k("done"), None)?;
    store.sweep()?;
    Ok(())
}

#[test]
fn a_clock_at_the_end_of_time_never_panics() -> TestResult {
    for start in [u64::MAX, u64::MAX - 1, u64::MAX - 1_000, u64::MAX - 30_000] {
        for policy in
            [Policy::default(), Policy::default().lease(MAX_DURATION).retention(MAX_DURATION)]
        {
            let dir = common::fast_tempdir()?;
            let clock = MockClock::new(start);
            let res = catch_unwind(AssertUnwindSafe(|| -> TestResult {
                let store = mock_config(&clock).default_policy(policy).open(dir.path())?;
                exercise(&store, &clock, "a")?;
                store.close()?;
                clock.set(start);
                let store = mock_config(&clock).default_policy(policy).open(dir.path())?;
                exercise(&store, &clock, "b")?;
                store.close()?;
                Ok(())
            }));
            match res {
                Ok(r) => r.map_err(|e| format!("clock at {start}: {e}"))?,
                Err(_) => panic!("clock at {start}, {policy:?}: a call panicked"),
            }
        }
    }
    Ok(())
}

#[test]
fn mock_clock_advance_saturates_and_is_exact_below_a_millisecond() {
    let clock = MockClock::new(u64::MAX - 1);
    clock.advance(Duration::from_millis(5));
    assert_eq!(clock.now_millis(), u64::MAX, "saturates instead of wrapping");
    let clock = MockClock::new(0);
    for _ in 0..3 {
        clock.advance(Duration::from_micros(400));
    }
    assert_eq!(clock.now_millis(), 1, "3 x 400 µs is 1.2 ms");
}
