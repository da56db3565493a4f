//! A clock going backwards.

use std::time::Duration;

use idemkv::{Claim, EntryState, MockClock};

use crate::common::{self, TestResult, acquire, mock_clock, mock_config};
use crate::{mkey, plant, still_there};

/// What happens when the wall clock goes backwards (documented here):
/// records keep their absolute times, so a jump back by X makes every lease
/// and retention last X longer (an in-flight claim reports a longer
/// `retry_after`), and a finish recorded during the jump has a `finished_at`
/// before its `first_claimed_at`. Nothing panics, `verify` stays clean, and
/// no lease becomes immortal: once the clock passes the stored deadline
/// again the claim is an orphan and is taken over.
#[test]
fn clock_going_backwards_keeps_records_consistent() -> TestResult {
    let _serial = common::serial();
    let clock = mock_clock();
    let t0 = clock_now(&clock);
    let dir = common::fast_tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    plant(&store)?;
    let held = acquire(&store, &mkey("held"), None)?; // deadline t0 + 30 s
    let late = acquire(&store, &mkey("late"), None)?;

    clock.set(t0 - 3_600_000); // one hour back
    // The lease lasts 1 h longer; `retry_after` (an estimate from the
    // sentinel's completion, taken at once) stays within it.
    match store.claim(&mkey("held"), None)? {
        Claim::InFlight { retry_after, .. } => {
            assert!(retry_after >= Duration::from_millis(1), "{retry_after:?}");
            assert!(retry_after <= Duration::from_secs(3600 + 30), "{retry_after:?}");
        }
        other => panic!("{other:?}"),
    }
    match store.get(&mkey("held"))?.map(|e| e.state) {
        Some(EntryState::InProgress { lease_deadline, orphaned: false, .. }) => {
            let left = lease_deadline.duration_since(idemkv::to_system_time(t0 - 3_600_000))?;
            assert_eq!(left, Duration::from_secs(3600 + 30), "the lease lasts 1 h longer");
        }
        other => panic!("{other:?}"),
    }
    still_there(&store)?;
    store.complete(&late, b"finished in the past")?;
    match store.get(&mkey("late"))?.map(|e| e.state) {
        Some(EntryState::Finished(r)) => {
            assert!(r.finished_at() < r.first_claimed_at(), "times are kept as read");
            assert_eq!(r.response(), b"finished in the past");
        }
        other => panic!("{other:?}"),
    }
    let past = acquire(&store, &mkey("claimed-in-the-past"), None)?; // deadline t0 - 1 h + 30 s
    assert!(past.token() > held.token());
    assert_eq!(store.sweep()?, 0, "nothing live is swept");

    // Forward again, past every deadline: no lease is immortal.
    clock.set(t0 + 31_000);
    for id in ["held", "claimed-in-the-past"] {
        let lease = acquire(&store, &mkey(id), None)?;
        assert!(lease.recovered(), "{id}: the expired lease is an orphan");
        store.complete(&lease, b"redone")?;
    }
    assert!(matches!(store.claim(&mkey("late"), None)?, Claim::Replay(_)));
    // Far back, to the epoch: still no panic, and the records stay readable.
    clock.set(0);
    assert!(matches!(store.claim(&mkey("late"), None)?, Claim::Replay(_)));
    let k = mkey("at-epoch");
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"epoch")?;
    clock.set(t0); // a record written at time 0 has long expired by now
    assert!(store.get(&k)?.is_none());
    assert_eq!(store.verify()?.corrupt, vec![]);
    still_there(&store)
}

fn clock_now(clock: &MockClock) -> u64 {
    idemkv::Clock::now_millis(clock)
}
