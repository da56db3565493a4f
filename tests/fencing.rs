//! Guards lease fencing: a holder whose lease expired and was taken over cannot complete, fail, extend or release, and finished or removed claims are stale.

mod common;

use std::time::Duration;

use common::{TestResult, acquire, key, mock_clock, mock_config};
use idemkv::{Claim, Error, Failure, Lease, StaleReason, Store};

const LEASE: Duration = Duration::from_secs(30);

fn stale(res: idemkv::Result<()>) -> Option<StaleReason> {
    match res {
        Err(Error::StaleLease { reason, .. }) => Some(reason),
        _ => None,
    }
}

struct Superseded {
    store: Store,
    a: Lease,
    b: Lease,
}

/// A holds the key, its lease runs out, B takes it over.
fn superseded() -> TestResult<(tempfile::TempDir, Superseded)> {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    let k = key("fenced");
    let a = acquire(&store, &k, None)?;
    clock.advance(LEASE + Duration::from_millis(1));
    let b = acquire(&store, &k, None)?;
    Ok((dir, Superseded { store, a, b }))
}

#[test]
fn takeover_after_expiry_fences_the_old_holder() -> TestResult {
    let (_dir, s) = superseded()?;
    let (store, a, b) = (&s.store, &s.a, &s.b);
    assert!(b.recovered(), "the take-over of an expired lease is a recovery");
    assert_eq!(b.attempt(), 2);
    assert!(b.token() > a.token());

    let res = store.complete(a, b"A's result");
    assert!(
        matches!(
            res,
            Err(Error::StaleLease {
                reason: StaleReason::Superseded { current },
                token,
                ..
            }) if current == b.token() && token == a.token()
        ),
        "{res:?}"
    );
    store.complete(b, b"B's result")?;
    match store.claim(b.key(), None)? {
        Claim::Replay(r) => {
            assert_eq!(r.response(), b"B's result");
            assert_eq!(r.token(), b.token());
            assert_eq!(r.attempts(), 2);
        }
        other => panic!("expected B's Replay, got {other:?}"),
    }
    // After B finished, A is still superseded (not "finished": it never was).
    assert_eq!(
        stale(store.complete(a, b"late")),
        Some(StaleReason::Superseded { current: b.token() })
    );
    Ok(())
}

#[test]
fn stale_holder_cannot_fail_extend_or_release() -> TestResult {
    let (_dir, s) = superseded()?;
    let (store, a, b) = (&s.store, &s.a, &s.b);
    let want = Some(StaleReason::Superseded { current: b.token() });
    let before = store.get(b.key())?;
    assert_eq!(stale(store.fail(a, Failure::Retryable)), want);
    assert_eq!(stale(store.fail(a, Failure::Terminal(b"no"))), want);
    let mut a2 = a.clone();
    assert_eq!(stale(store.extend(&mut a2, LEASE)), want);
    assert_eq!(&a2, a, "a refused extend leaves the lease alone");
    assert_eq!(stale(store.release(a)), want);
    assert_eq!(store.get(b.key())?, before, "stale calls change nothing");
    // B is unaffected.
    store.complete(b, b"B")?;
    assert!(matches!(store.claim(b.key(), None)?, Claim::Replay(r) if r.response() == b"B"));
    Ok(())
}

#[test]
fn finished_and_removed_claims_are_stale() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;

    let k = key("twice");
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"first")?;
    assert_eq!(stale(store.complete(&lease, b"second")), Some(StaleReason::Finished));
    assert_eq!(stale(store.fail(&lease, Failure::Retryable)), Some(StaleReason::Finished));
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(r) if r.response() == b"first"));

    let k = key("released");
    let lease = acquire(&store, &k, None)?;
    store.release(&lease)?;
    assert_eq!(stale(store.release(&lease)), Some(StaleReason::Finished));

    let k = key("removed");
    let mut lease = acquire(&store, &k, None)?;
    assert!(store.remove(&k)?);
    assert_eq!(stale(store.complete(&lease, b"x")), Some(StaleReason::Missing));
    assert_eq!(stale(store.extend(&mut lease, LEASE)), Some(StaleReason::Missing));
    assert_eq!(store.get(&k)?, None, "a stale complete does not resurrect the key");
    Ok(())
}

#[test]
fn expired_lease_nobody_took_over_still_completes() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    let k = key("late");
    let lease = acquire(&store, &k, None)?;
    clock.advance(LEASE * 3);
    store.complete(&lease, b"late but alone")?;
    match store.claim(&k, None)? {
        Claim::Replay(r) => {
            assert_eq!(r.response(), b"late but alone");
            assert_eq!(r.token(), lease.token());
        }
        other => panic!("expected Replay, got {other:?}"),
    }
    Ok(())
}

#[test]
fn tokens_increase_within_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let mut last = 0;
    for i in 0..50 {
        let lease: Lease = acquire(&store, &key(format!("t{i}")), None)?;
        assert!(lease.token() > last, "token {} after {last}", lease.token());
        last = lease.token();
        if i % 2 == 0 {
            store.release(&lease)?;
            let again = acquire(&store, lease.key(), None)?;
            assert!(again.token() > last);
            last = again.token();
        }
    }
    Ok(())
}
