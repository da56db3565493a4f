//! Guards that no deadline the store sets comes early, whatever the fraction of a millisecond the clock shows: a claim, completion, failure, release or extension made mid-millisecond (the clock at T0 + 1 ns … 999,999 ns) keeps the lease for its whole duration (never two holders) and the finished key for its whole retention (never a second side effect), for every lease and retention in a table including sub-millisecond ones; and a clock stepped backwards between claim and completion does not shorten the retention.

mod common;

use std::time::Duration;

use common::{T0, TestResult, acquire, key, mock_config};
use idemkv::{Claim, ClaimOptions, Failure, MockClock, Store};

/// Sub-millisecond parts of the clock when the deadline is set.
const OFFSETS: [Duration; 4] = [
    Duration::from_nanos(1),
    Duration::from_micros(1),
    Duration::from_micros(500),
    Duration::from_nanos(999_999),
];

/// Leases and retentions, sub-millisecond ones included.
const DURATIONS: [Duration; 5] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(1_500),
    Duration::from_millis(30),
    Duration::from_secs(30),
];

const ONE_NS: Duration = Duration::from_nanos(1);

/// A store on a clock at T0 + `offset`.
fn store_at(offset: Duration) -> TestResult<(tempfile::TempDir, MockClock, Store)> {
    let dir = tempfile::tempdir()?;
    let clock = MockClock::new(T0);
    clock.advance(offset);
    let store = mock_config(&clock).open(dir.path())?;
    Ok((dir, clock, store))
}

fn options(lease: Duration, retention: Duration) -> ClaimOptions {
    ClaimOptions::new().lease(lease).retention(retention)
}

#[test]
fn a_lease_is_held_for_its_whole_duration_from_any_fraction_of_a_millisecond() -> TestResult {
    for offset in OFFSETS {
        for lease in DURATIONS {
            let (_dir, clock, store) = store_at(offset)?;
            let k = key(format!("{offset:?}-{lease:?}"));
            let opts = options(lease, Duration::from_secs(3600));
            let Claim::Acquired(first) = store.claim_with(&k, None, &opts)? else {
                panic!("a new key is acquired");
            };
            let first = first.into_lease();
            // One nanosecond before the lease has passed: still held.
            clock.advance(lease - ONE_NS);
            match store.claim_with(&k, None, &opts)? {
                Claim::InFlight { .. } => {}
                other => panic!("lease {lease:?} from +{offset:?} ended early: {other:?}"),
            }
            // An extension made now, mid-millisecond, lasts its whole length too.
            let mut held = first.clone();
            store.extend(&mut held, lease)?;
            clock.advance(lease - ONE_NS);
            match store.claim_with(&k, None, &opts)? {
                Claim::InFlight { .. } => {}
                other => panic!("extension {lease:?} ended early: {other:?}"),
            }
            // Within two milliseconds past it, the key can be taken over.
            clock.advance(Duration::from_millis(2));
            match store.claim_with(&k, None, &opts)? {
                Claim::Acquired(next) => assert!(next.token() > first.token()),
                other => panic!("lease {lease:?} never ended: {other:?}"),
            }
        }
    }
    Ok(())
}

#[test]
fn a_finished_key_is_kept_for_its_whole_retention_from_any_fraction_of_a_millisecond() -> TestResult
{
    for offset in OFFSETS {
        for retention in DURATIONS {
            for how in ["complete", "fail terminally", "fail retryably", "release"] {
                let (_dir, clock, store) = store_at(offset)?;
                let k = key(format!("{offset:?}-{retention:?}-{how}"));
                let opts = options(retention.min(Duration::from_millis(1)), retention);
                let Claim::Acquired(lease) = store.claim_with(&k, None, &opts)? else {
                    panic!("a new key is acquired");
                };
                let lease = lease.into_lease();
                match how {
                    "complete" => store.complete(&lease, b"done")?,
                    "fail terminally" => store.fail(&lease, Failure::Terminal(b"bad"))?,
                    "fail retryably" => store.fail(&lease, Failure::Retryable)?,
                    _ => store.release(&lease)?,
                }
                clock.advance(retention - ONE_NS);
                let entry = store.get(&k)?;
                assert!(entry.is_some(), "{how} at +{offset:?}: kept less than {retention:?}");
                if matches!(how, "complete" | "fail terminally") {
                    assert!(matches!(store.claim_with(&k, None, &opts)?, Claim::Replay(_)));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn a_clock_stepped_back_between_claim_and_completion_keeps_the_whole_retention() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = MockClock::new(T0);
    let store = mock_config(&clock).open(dir.path())?;
    let retention = Duration::from_secs(72 * 3600);
    let opts = options(Duration::from_secs(30), retention);
    let k = key("stepped-back");
    let lease = acquire(&store, &k, None)?;
    // An NTP step of an hour backwards, then the completion.
    clock.set(T0 - 3_600_000);
    store.complete(&lease, b"charged")?;
    // Back on time: the key must be kept for the retention from the claim.
    clock.set(T0);
    clock.advance(retention - Duration::from_millis(1));
    match store.claim_with(&k, None, &opts)? {
        Claim::Replay(r) => assert_eq!(r.response(), b"charged"),
        other => panic!("a completion made while the clock was behind expired early: {other:?}"),
    }
    Ok(())
}
