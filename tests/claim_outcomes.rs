//! Guards every claim outcome and state transition of one key: Acquired, InFlight, Replay, Mismatch, and complete/fail/release/extend/remove as seen by `claim` and `get`.

mod common;

use std::time::Duration;

use common::{T0, TestResult, acquire, key, mock_clock, mock_config, ms};
use idemkv::{Claim, EntryState, Failure, Fingerprint, Outcome, Store};

const LEASE: Duration = Duration::from_secs(30);

fn open(clock: &idemkv::MockClock) -> TestResult<(tempfile::TempDir, Store)> {
    let dir = tempfile::tempdir()?;
    let store = mock_config(clock).open(dir.path())?;
    Ok((dir, store))
}

#[test]
fn new_key_is_acquired_then_in_flight() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_1");
    let fp = Fingerprint::of(b"body");

    let lease = acquire(&store, &k, fp)?;
    assert_eq!(lease.attempt(), 1);
    assert!(!lease.recovered());
    assert_eq!(lease.key(), &k);
    assert_eq!(ms(lease.deadline()), T0 + 30_000);

    match store.claim(&k, fp)? {
        Claim::InFlight { retry_after, attempt } => {
            assert_eq!(retry_after, LEASE, "nothing elapsed: the whole lease is left");
            assert_eq!(attempt, 1);
        }
        other => panic!("expected InFlight, got {other:?}"),
    }
    clock.advance(Duration::from_secs(10));
    match store.claim(&k, fp)? {
        Claim::InFlight { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(20));
        }
        other => panic!("expected InFlight, got {other:?}"),
    }
    Ok(())
}

#[test]
fn complete_then_replay_byte_identical() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_2");
    let fp = Fingerprint::of(b"body");
    let response: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();

    let lease = acquire(&store, &k, fp)?;
    clock.advance(Duration::from_millis(1234));
    store.complete(&lease, &response)?;
    clock.advance(Duration::from_secs(5));

    for _ in 0..3 {
        match store.claim(&k, fp)? {
            Claim::Replay(done) => {
                assert_eq!(done.response(), &response[..]);
                assert_eq!(done.outcome(), Outcome::Completed);
                assert!(done.is_completed());
                assert_eq!(ms(done.first_claimed_at()), T0);
                assert_eq!(ms(done.finished_at()), T0 + 1234);
                assert_eq!(done.attempts(), 1);
                assert_eq!(done.token(), lease.token());
            }
            other => panic!("expected Replay, got {other:?}"),
        }
    }
    // A replay without a fingerprint is a replay too.
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(_)));
    Ok(())
}

#[test]
fn retryable_failure_makes_key_claimable_with_next_attempt() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_3");
    let first = acquire(&store, &k, None)?;
    clock.advance(Duration::from_secs(1));
    store.fail(&first, Failure::Retryable)?;

    let entry = store.get(&k)?.expect("record kept");
    assert_eq!(
        entry.state,
        EntryState::Claimable {
            since: idemkv::to_system_time(T0 + 1000),
            after_retryable_failure: true
        }
    );
    assert_eq!(entry.attempts, 1);

    let second = acquire(&store, &k, None)?;
    assert_eq!(second.attempt(), 2);
    assert!(!second.recovered(), "a retryable failure is not an orphan");
    assert!(second.token() > first.token());
    store.complete(&second, b"ok")?;
    match store.claim(&k, None)? {
        Claim::Replay(done) => {
            assert_eq!(done.attempts(), 2);
            assert_eq!(ms(done.first_claimed_at()), T0, "created_at is kept");
        }
        other => panic!("expected Replay, got {other:?}"),
    }
    Ok(())
}

#[test]
fn terminal_failure_replays_payload() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_4");
    let lease = acquire(&store, &k, None)?;
    store.fail(&lease, Failure::Terminal(b"card declined\x00\xff"))?;
    match store.claim(&k, None)? {
        Claim::Replay(done) => {
            assert_eq!(done.outcome(), Outcome::Failed);
            assert!(!done.is_completed());
            assert_eq!(done.response(), b"card declined\x00\xff");
            assert_eq!(done.token(), lease.token());
        }
        other => panic!("expected Replay, got {other:?}"),
    }
    Ok(())
}

#[test]
fn release_makes_key_acquirable_again() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_5");
    let first = acquire(&store, &k, None)?;
    store.release(&first)?;
    match store.get(&k)?.map(|e| e.state) {
        Some(EntryState::Claimable { after_retryable_failure, .. }) => {
            assert!(!after_retryable_failure)
        }
        other => panic!("expected Claimable, got {other:?}"),
    }
    let second = acquire(&store, &k, None)?;
    assert_eq!(second.attempt(), 2);
    assert!(!second.recovered());
    Ok(())
}

#[test]
fn extend_moves_the_deadline() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_6");
    let mut lease = acquire(&store, &k, None)?;
    clock.advance(Duration::from_secs(20));
    store.extend(&mut lease, Duration::from_secs(30))?;
    assert_eq!(ms(lease.deadline()), T0 + 50_000);

    // Past the original deadline (T0 + 30 s): still held.
    clock.advance(Duration::from_secs(11));
    match store.claim(&k, None)? {
        Claim::InFlight { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(19)),
        other => panic!("expected InFlight after the original deadline, got {other:?}"),
    }
    match store.get(&k)?.map(|e| e.state) {
        Some(EntryState::InProgress { lease_deadline, orphaned, .. }) => {
            assert_eq!(ms(lease_deadline), T0 + 50_000);
            assert!(!orphaned);
        }
        other => panic!("expected InProgress, got {other:?}"),
    }
    // Past the extended deadline: taken over.
    clock.advance(Duration::from_secs(19));
    let next = acquire(&store, &k, None)?;
    assert!(next.recovered());
    assert_eq!(next.attempt(), 2);
    Ok(())
}

#[test]
fn get_shows_each_state() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_7");
    let fp = Fingerprint::of(b"x");
    assert_eq!(store.get(&k)?, None);

    let lease = acquire(&store, &k, fp)?;
    let e = store.get(&k)?.expect("in progress");
    assert_eq!(e.key, k);
    assert_eq!(e.attempts, 1);
    assert_eq!(e.fingerprint, Some(fp));
    assert_eq!(ms(e.created_at), T0);
    assert_eq!(
        e.state,
        EntryState::InProgress {
            token: lease.token(),
            claimed_at: idemkv::to_system_time(T0),
            lease_deadline: lease.deadline(),
            orphaned: false,
        }
    );

    clock.advance(LEASE);
    match store.get(&k)?.map(|e| e.state) {
        Some(EntryState::InProgress { orphaned, .. }) => {
            assert!(orphaned, "a lease at its deadline is orphaned")
        }
        other => panic!("expected InProgress, got {other:?}"),
    }

    let lease = acquire(&store, &k, fp)?;
    store.fail(&lease, Failure::Retryable)?;
    assert!(matches!(
        store.get(&k)?.map(|e| e.state),
        Some(EntryState::Claimable { after_retryable_failure: true, .. })
    ));

    let lease = acquire(&store, &k, fp)?;
    store.complete(&lease, b"done")?;
    let e = store.get(&k)?.expect("finished");
    assert_eq!(e.attempts, 3);
    match e.state {
        EntryState::Finished(r) => {
            assert_eq!(r.response(), b"done");
            assert_eq!(r.outcome(), Outcome::Completed);
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    Ok(())
}

#[test]
fn remove_evicts_and_next_claim_starts_afresh() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_8");
    assert!(!store.remove(&k)?, "nothing to remove");
    let first = acquire(&store, &k, Fingerprint::of(b"a"))?;
    store.complete(&first, b"one")?;
    assert!(store.remove(&k)?);
    assert_eq!(store.get(&k)?, None);
    assert!(!store.remove(&k)?, "already gone");

    // Fresh: attempt 1, and the old fingerprint is forgotten too.
    let again = acquire(&store, &k, Fingerprint::of(b"b"))?;
    assert_eq!(again.attempt(), 1);
    assert!(!again.recovered());
    assert!(again.token() > first.token());
    Ok(())
}

#[test]
fn mismatch_changes_nothing() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_9");
    let fp = Fingerprint::of(b"payload A");
    let other = Fingerprint::of(b"payload B");

    let lease = acquire(&store, &k, fp)?;
    let before = store.get(&k)?;
    match store.claim(&k, other)? {
        Claim::Mismatch { stored } => assert_eq!(stored, fp),
        o => panic!("expected Mismatch, got {o:?}"),
    }
    assert_eq!(store.get(&k)?, before, "a mismatch must not change the record");
    // Even past the lease a mismatching claim does not take the key over.
    clock.advance(LEASE * 2);
    assert!(matches!(store.claim(&k, other)?, Claim::Mismatch { .. }));
    assert_eq!(store.get(&k)?.map(|e| e.attempts), Some(1));

    let lease2 = acquire(&store, &k, fp)?;
    assert!(lease2.token() > lease.token());
    store.complete(&lease2, b"A done")?;
    let before = store.get(&k)?;
    assert!(matches!(store.claim(&k, other)?, Claim::Mismatch { .. }));
    assert_eq!(store.get(&k)?, before);
    Ok(())
}

#[test]
fn no_fingerprint_skips_the_check() -> TestResult {
    let clock = mock_clock();
    let (_dir, store) = open(&clock)?;
    let k = key("evt_10");
    let fp = Fingerprint::of(b"payload A");
    let lease = acquire(&store, &k, fp)?;
    assert!(matches!(store.claim(&k, None)?, Claim::InFlight { .. }));
    store.complete(&lease, b"A")?;
    match store.claim(&k, None)? {
        Claim::Replay(r) => assert_eq!(r.response(), b"A"),
        o => panic!("expected Replay, got {o:?}"),
    }
    assert_eq!(store.get(&k)?.and_then(|e| e.fingerprint), Some(fp));

    // Stored without a fingerprint: any fingerprint is accepted.
    let k2 = key("evt_11");
    let lease = acquire(&store, &k2, None)?;
    assert!(matches!(store.claim(&k2, Fingerprint::of(b"anything"))?, Claim::InFlight { .. }));
    store.complete(&lease, b"B")?;
    assert!(matches!(store.claim(&k2, Fingerprint::of(b"else"))?, Claim::Replay(_)));
    Ok(())
}
