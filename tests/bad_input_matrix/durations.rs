//! Bad durations (zero, absurd, a lease longer than the retention, a
//! retention shorter than the retry horizon) and other invalid config values.

use std::time::Duration;

use idemkv::{
    Claim, ClaimOptions, Config, Durability, EntryState, MAX_DURATION, MockClock, Policy,
};

use crate::common::{self, TestResult, acquire, mock_config};
use crate::store_with_sentinel;
use crate::{NS, SENTINEL, invalid_config, mkey, plant, refused, sentinel, still_there};

#[test]
fn zero_lease_and_zero_retention_are_invalid_config() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let zero = Duration::ZERO;
    for (policy, word) in [
        (Policy::default().lease(zero), "lease must be longer than zero"),
        (Policy::default().retention(zero), "retention must be longer than zero"),
    ] {
        refused(Config::new().default_policy(policy).open(dir.path()), invalid_config, &[word]);
        refused(
            Config::new().namespace(NS, policy).open(dir.path()),
            invalid_config,
            &[word, "\"m\""],
        );
    }
    let store = Config::new().open(dir.path())?;
    plant(&store)?;
    let k = mkey("zero");
    refused(
        store.claim_with(&k, None, &ClaimOptions::new().lease(zero)),
        invalid_config,
        &["claim options", "lease must be longer than zero"],
    );
    refused(
        store.claim_with(&k, None, &ClaimOptions::new().retention(zero)),
        invalid_config,
        &["retention must be longer than zero"],
    );
    assert!(store.get(&k)?.is_none(), "a refused claim stores nothing");
    let mut lease = acquire(&store, &k, None)?;
    refused(store.extend(&mut lease, zero), invalid_config, &["extend", "longer than zero"]);
    store.complete(&lease, b"ok")?;
    still_there(&store)
}

#[test]
fn absurd_durations_are_refused_and_the_longest_accepted_saturates() -> TestResult {
    let _serial = common::serial();
    // Duration::MAX and u64::MAX milliseconds are above MAX_DURATION (100
    // years): refused with InvalidConfig naming the value and the limit,
    // wherever a duration is taken.
    let ms_max = Duration::from_millis(u64::MAX);
    for absurd in [Duration::MAX, ms_max, MAX_DURATION + Duration::from_millis(1)] {
        let dir = common::fast_tempdir()?;
        let huge = Policy::default().lease(absurd).retention(absurd);
        refused(
            Config::new().default_policy(huge).open(dir.path()),
            invalid_config,
            &["lease", "MAX_DURATION", &format!("{absurd:?}")],
        );
        let (_d, store) = store_with_sentinel(Config::new())?;
        let k = mkey("forever-per-call");
        let opts = ClaimOptions::new().lease(Duration::from_secs(1)).retention(absurd);
        refused(store.claim_with(&k, None, &opts), invalid_config, &["retention", "MAX_DURATION"]);
        assert!(store.get(&k)?.is_none(), "a refused claim stores nothing");
        let mut lease = acquire(&store, &k, None)?;
        refused(store.extend(&mut lease, absurd), invalid_config, &["extend", "MAX_DURATION"]);
        store.complete(&lease, b"ok")?;
        still_there(&store)?;
    }

    // MAX_DURATION itself is accepted: "kept for a century", no overflow.
    let huge = Policy::default().lease(MAX_DURATION).retention(MAX_DURATION);
    let (dir, store) = store_with_sentinel(Config::new().default_policy(huge))?;
    let k = mkey("forever");
    let mut lease = acquire(&store, &k, None)?;
    let _ = lease.deadline(); // representable, no panic
    match store.claim(&k, None)? {
        // An estimate from the sentinel's completion: short, not the century.
        Claim::InFlight { retry_after, .. } => assert!(retry_after >= Duration::from_millis(1)),
        other => panic!("{other:?}"),
    }
    match store.get(&k)?.map(|e| e.state) {
        Some(EntryState::InProgress { lease_deadline, .. }) => {
            let left = lease_deadline.duration_since(std::time::SystemTime::now())?;
            assert!(left > Duration::from_secs(1 << 31), "the lease is a century: {left:?}");
        }
        other => panic!("{other:?}"),
    }
    store.extend(&mut lease, MAX_DURATION)?;
    store.complete(&lease, b"kept forever")?;
    let entry = store.get(&k)?.ok_or("record lost")?;
    assert!(common::ms(entry.expires_at) > 3_000_000_000_000, "{entry:?}");
    assert_eq!(store.sweep()?, 0);
    store.close()?;
    let store = Config::new().default_policy(huge).open(dir.path())?;
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(r) if r.response() == b"kept forever"));
    store.close()?;

    // A clock near the end of u64 milliseconds: deadlines saturate.
    let clock = MockClock::new(u64::MAX - 1_000);
    let dir = common::fast_tempdir()?;
    let store = mock_config(&clock).default_policy(huge).open(dir.path())?;
    plant(&store)?;
    let mut lease = acquire(&store, &k, None)?;
    assert!(matches!(store.claim(&k, None)?, Claim::InFlight { .. }));
    store.extend(&mut lease, Duration::from_secs(60))?;
    store.complete(&lease, b"late in time")?;
    clock.advance(Duration::from_millis(999));
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(_)));
    still_there(&store)?;
    // Extending past the key's retention is refused.
    let (_d, store) = store_with_sentinel(Config::new())?;
    let mut lease = acquire(&store, &k, None)?;
    refused(
        store.extend(&mut lease, MAX_DURATION),
        invalid_config,
        &["longer than the key's retention"],
    );
    store.complete(&lease, b"ok")?;
    still_there(&store)
}

#[test]
fn wait_with_an_absurd_timeout_does_not_panic() -> TestResult {
    let _serial = common::serial();
    let (_dir, store) = store_with_sentinel(Config::new())?;
    // The key is finished: wait must return its replay at once.
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.wait(&sentinel(), None, Duration::MAX)
    }));
    match res {
        Ok(Ok(Claim::Replay(r))) => assert_eq!(r.response(), SENTINEL),
        Ok(other) => panic!("{other:?}"),
        Err(_) => panic!("Store::wait(.., Duration::MAX) panicked"),
    }
    Ok(())
}

#[test]
fn wait_on_a_saturated_lease_does_not_overflow() -> TestResult {
    let _serial = common::serial();
    let clock = MockClock::new(u64::MAX - 10);
    let dir = common::fast_tempdir()?;
    let huge = Policy::default().lease(MAX_DURATION).retention(MAX_DURATION);
    let store = mock_config(&clock).default_policy(huge).open(dir.path())?;
    let k = mkey("held");
    let _lease = acquire(&store, &k, None)?;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.wait(&k, None, Duration::from_millis(10))
    }));
    assert!(matches!(res, Ok(Ok(Claim::InFlight { .. }))), "{res:?}");
    Ok(())
}

#[test]
fn lease_longer_than_retention_is_invalid_config() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let hour = Duration::from_secs(3600);
    let policy = Policy::default().lease(2 * hour).retention(hour);
    refused(
        Config::new().default_policy(policy).open(dir.path()),
        invalid_config,
        &["lease (7200s) is longer than the retention (3600s)"],
    );
    let store = Config::new().open(dir.path())?;
    plant(&store)?;
    let opts = ClaimOptions::new().lease(2 * hour).retention(hour);
    refused(
        store.claim_with(&mkey("k"), None, &opts),
        invalid_config,
        &["longer than the retention"],
    );
    // The default retention is 72 h: a per-call lease beyond it is refused too.
    let opts = ClaimOptions::new().lease(Duration::from_secs(73 * 3600));
    refused(
        store.claim_with(&mkey("k"), None, &opts),
        invalid_config,
        &["longer than the retention"],
    );
    still_there(&store)
}

#[test]
fn retention_shorter_than_the_retry_horizon_is_invalid_config() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let (hour, horizon) = (Duration::from_secs(3600), Duration::from_secs(72 * 3600));
    let short = Policy::default().retention(hour).retry_horizon(horizon);
    refused(
        Config::new().namespace("stripe", short).open(dir.path()),
        invalid_config,
        &["namespace \"stripe\"", "shorter than the declared retry horizon", "raise the retention"],
    );
    refused(
        Config::new().default_policy(short).open(dir.path()),
        invalid_config,
        &["retry horizon"],
    );
    let ok = Policy::default().retry_horizon(horizon);
    let store = Config::new().namespace(NS, ok).open(dir.path())?;
    plant(&store)?;
    let opts = ClaimOptions::new().retention(hour);
    refused(store.claim_with(&mkey("k"), None, &opts), invalid_config, &["retry horizon"]);
    assert!(store.get(&mkey("k"))?.is_none());
    still_there(&store)
}

#[test]
fn other_invalid_config_values_are_refused() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    for shards in [0, 3, 100, 4095, 8192] {
        refused(
            Config::new().shards(shards).open(dir.path()),
            invalid_config,
            &["power of two", &shards.to_string()],
        );
    }
    for shards in [1, 4096] {
        Config::new().shards(shards).open(dir.path())?.close()?;
    }
    let zero_delay = Durability::Buffered { max_delay: Duration::ZERO };
    refused(Config::new().durability(zero_delay).open(dir.path()), invalid_config, &["max_delay"]);
    refused(Config::new().sweep_batch(0).open(dir.path()), invalid_config, &["sweep_batch"]);
    refused(Config::new().segment_bytes(100).open(dir.path()), invalid_config, &["segment_bytes"]);
    Ok(())
}
