//! Guards the one duration rule for every duration the API takes (Policy lease, retention and retry horizon; ClaimOptions lease and retention; `Store::extend`; wait timeouts; `Buffered { max_delay }`; sweep and checkpoint intervals): zero and anything above `MAX_DURATION` are `InvalidConfig`, the rest is honoured — rounded UP to whole milliseconds where the store keeps milliseconds (a lease never ends early, never two holders; a retention never drops a key early), exactly where it runs on the monotonic clock.
//!
//! Every API is run against the same table of values, driven by a
//! `MockClock` that keeps nanoseconds (so `advance(d)` is exact).

mod common;

use std::time::{Duration, Instant};

use common::{T0, TestResult, acquire, mock_config};
use idemkv::{
    Claim, ClaimOptions, Config, Durability, Error, Key, MAX_DURATION, MockClock, Policy,
    StaleReason, Store,
};

const NS: &str = "d";

fn key(id: &str) -> Key {
    Key::new(NS, id).expect("valid key")
}

/// The table every duration-taking API is run against.
fn table() -> Vec<Duration> {
    vec![
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(500),
        Duration::from_nanos(999_999),
        Duration::from_millis(1),
        Duration::from_micros(1_500),
        Duration::from_secs(30),
        MAX_DURATION,
        MAX_DURATION + Duration::from_nanos(1),
        MAX_DURATION + Duration::from_millis(1),
        Duration::MAX,
    ]
}

/// What the rule says about `d`: `Some(ms)` honoured as `ms` whole
/// milliseconds (rounded up), `None` refused.
fn rule(d: Duration) -> Option<u64> {
    if d.is_zero() || d > MAX_DURATION {
        return None;
    }
    Some(u64::try_from(d.as_nanos().div_ceil(1_000_000)).expect("fits"))
}

/// Asserts `res` is `InvalidConfig` whose message contains every word.
#[track_caller]
fn refused<T: std::fmt::Debug>(res: idemkv::Result<T>, words: &[&str]) {
    match res {
        Err(e @ Error::InvalidConfig { .. }) => {
            let msg = e.to_string();
            for w in words {
                assert!(msg.contains(w), "message lacks {w:?}: {msg}");
            }
        }
        other => panic!("expected InvalidConfig {words:?}, got {other:?}"),
    }
}

fn ms_of(t: std::time::SystemTime) -> u64 {
    common::ms(t)
}

fn in_flight(store: &Store, k: &Key) -> TestResult {
    match store.claim(k, None)? {
        Claim::InFlight { .. } => Ok(()),
        other => Err(format!("expected InFlight, got {other:?}").into()),
    }
}

/// How a lease and retention reach the store.
#[derive(Debug, Clone, Copy)]
enum Via {
    DefaultPolicy,
    NamespacePolicy,
    ClaimOptions,
}

/// Opens a mock-clock store where claims of `k` use `lease` and `retention`
/// given `via`; `Err` is what the store refused (at open or at the claim).
fn claim_with(
    dir: &std::path::Path,
    clock: &MockClock,
    via: Via,
    lease: Duration,
    retention: Duration,
    k: &Key,
) -> idemkv::Result<(Store, idemkv::Lease)> {
    let policy = Policy::default().lease(lease).retention(retention);
    let config = mock_config(clock);
    let (store, opts) = match via {
        Via::DefaultPolicy => (config.default_policy(policy).open(dir)?, ClaimOptions::new()),
        Via::NamespacePolicy => (config.namespace(NS, policy).open(dir)?, ClaimOptions::new()),
        Via::ClaimOptions => {
            let store = config.open(dir)?;
            let opts = ClaimOptions::new().lease(lease).retention(retention);
            (store, opts)
        }
    };
    common::plant_sentinel(&store, &key("sentinel")).expect("sentinel");
    let res = store.claim_with(k, None, &opts);
    match res {
        Ok(Claim::Acquired(lease)) => Ok((store, lease.into_lease())),
        Ok(other) => panic!("a new key must be acquired, got {other:?}"),
        Err(e) => {
            assert!(store.get(k)?.is_none(), "a refused claim stores nothing");
            common::sentinel_replays(&store, &key("sentinel")).expect("sentinel");
            Err(e)
        }
    }
}

#[test]
fn leases_end_no_earlier_than_asked_and_never_have_two_holders() -> TestResult {
    for via in [Via::DefaultPolicy, Via::NamespacePolicy, Via::ClaimOptions] {
        for d in table() {
            let dir = common::fast_tempdir()?;
            let clock = MockClock::new(T0);
            let k = key("lease");
            let res = claim_with(dir.path(), &clock, via, d, MAX_DURATION, &k);
            let Some(ms) = rule(d) else {
                refused(res, &["lease"]);
                continue;
            };
            let (store, first) = res.map_err(|e| format!("{via:?} lease {d:?}: {e}"))?;
            let start = clock_ms(&store, &k)?;
            assert_eq!(ms_of(first.deadline()), start + ms, "{via:?} {d:?}: rounded up");
            // Held for all of `d` (the clock moves by exactly d - 1 ns).
            in_flight(&store, &k).map_err(|e| format!("{via:?} {d:?} at +0: {e}"))?;
            clock.advance(d - Duration::from_nanos(1));
            in_flight(&store, &k).map_err(|e| format!("{via:?} {d:?} at d - 1ns: {e}"))?;
            // Free once the whole milliseconds have passed.
            clock.set(start + ms);
            let second = acquire(&store, &k, None)?;
            assert!(second.recovered() && second.token() > first.token());
            // The first holder is fenced off: one holder at a time.
            match store.complete(&first, b"late") {
                Err(Error::StaleLease { reason: StaleReason::Superseded { .. }, .. }) => {}
                other => panic!("{via:?} {d:?}: the first holder must be stale: {other:?}"),
            }
            store.complete(&second, b"ok")?;
            store.close()?;
        }
    }
    Ok(())
}

/// The mock time of the claim of `k` (its lease deadline minus its lease is
/// not observable; the entry's `claimed_at` is).
fn clock_ms(store: &Store, k: &Key) -> TestResult<u64> {
    match store.get(k)?.ok_or("no entry")?.state {
        idemkv::EntryState::InProgress { claimed_at, .. } => Ok(ms_of(claimed_at)),
        other => Err(format!("{other:?}").into()),
    }
}

#[test]
fn retention_keeps_a_key_no_shorter_than_asked() -> TestResult {
    for via in [Via::DefaultPolicy, Via::NamespacePolicy, Via::ClaimOptions] {
        for d in table() {
            let dir = common::fast_tempdir()?;
            let clock = MockClock::new(T0);
            let k = key("kept");
            // Lease and retention both `d` (the lease may not exceed it).
            let res = claim_with(dir.path(), &clock, via, d, d, &k);
            let Some(ms) = rule(d) else {
                refused(res, &["lease"]);
                // The retention alone is refused too.
                let dir = common::fast_tempdir()?;
                let one = Duration::from_nanos(1);
                refused(claim_with(dir.path(), &clock, via, one, d, &k), &["retention"]);
                continue;
            };
            let (store, first) = res.map_err(|e| format!("{via:?} retention {d:?}: {e}"))?;
            // A duplicate at once is in flight, and the holder completes.
            in_flight(&store, &k)?;
            store.complete(&first, b"done").map_err(|e| format!("{via:?} {d:?}: {e}"))?;
            clock.advance(d - Duration::from_nanos(1));
            match store.claim(&k, None)? {
                Claim::Replay(r) if r.response() == b"done" => {}
                other => panic!("{via:?} {d:?}: kept for all of d, got {other:?}"),
            }
            clock.set(T0 + ms);
            assert!(store.get(&k)?.is_none(), "{via:?} {d:?}: gone after {ms} ms");
            let again = acquire(&store, &k, None)?;
            assert_eq!(again.attempt(), 1, "an expired record is absent");
            store.close()?;
        }
    }
    Ok(())
}

#[test]
fn retry_horizon_follows_the_rule() -> TestResult {
    let dir = common::fast_tempdir()?;
    for d in table() {
        // Retention equal to the horizon: accepted whenever `d` is.
        let retention = if d.is_zero() || d > MAX_DURATION { MAX_DURATION } else { d };
        let policy = Policy::default().lease(Duration::from_nanos(1)).retention(retention);
        let res = Config::new().namespace(NS, policy.retry_horizon(d)).open(dir.path());
        match rule(d) {
            None => refused(res, &["retry horizon"]),
            Some(_) => res.map_err(|e| format!("horizon {d:?}: {e}"))?.close()?,
        }
    }
    // Compared in the milliseconds the store honours: a retention of 1 ms
    // under a 1.5 ms horizon is refused, 2 ms is enough.
    let horizon = Duration::from_micros(1_500);
    let short = Policy::default().lease(Duration::from_millis(1)).retry_horizon(horizon);
    refused(
        Config::new().namespace(NS, short.retention(Duration::from_millis(1))).open(dir.path()),
        &["retry horizon"],
    );
    Config::new().namespace(NS, short.retention(Duration::from_millis(2))).open(dir.path())?;
    Ok(())
}

#[test]
fn extend_moves_the_deadline_by_at_least_the_duration() -> TestResult {
    for d in table() {
        let dir = common::fast_tempdir()?;
        let clock = MockClock::new(T0);
        let policy = Policy::default().lease(Duration::from_millis(1)).retention(MAX_DURATION);
        let store = mock_config(&clock).default_policy(policy).open(dir.path())?;
        common::plant_sentinel(&store, &key("sentinel"))?;
        let k = key("extended");
        let mut lease = acquire(&store, &k, None)?;
        let before = lease.clone();
        let Some(ms) = rule(d) else {
            refused(store.extend(&mut lease, d), &["extend"]);
            assert_eq!(lease, before, "a refused extension changes nothing");
            in_flight(&store, &k)?;
            store.complete(&lease, b"ok")?;
            common::sentinel_replays(&store, &key("sentinel"))?;
            continue;
        };
        store.extend(&mut lease, d).map_err(|e| format!("extend {d:?}: {e}"))?;
        assert_eq!(ms_of(lease.deadline()), T0 + ms, "extend {d:?}: rounded up");
        clock.advance(d - Duration::from_nanos(1));
        in_flight(&store, &k).map_err(|e| format!("extend {d:?} at d - 1ns: {e}"))?;
        clock.set(T0 + ms);
        let next = acquire(&store, &k, None)?;
        assert!(matches!(store.complete(&lease, b"late"), Err(Error::StaleLease { .. })));
        store.complete(&next, b"ok")?;
    }
    Ok(())
}

#[test]
fn wait_timeouts_are_exact_and_unrepresentable_ones_mean_no_limit() -> TestResult {
    let dir = common::fast_tempdir()?;
    let store = Config::new().sweep_interval(None).open(dir.path())?;
    common::plant_sentinel(&store, &key("sentinel"))?;
    let opts = ClaimOptions::new();
    for d in table() {
        // A finished key replays at once, whatever the timeout.
        let t = Instant::now();
        assert!(matches!(store.wait(&key("sentinel"), None, d)?, Claim::Replay(_)), "{d:?}");
        assert!(matches!(store.wait_with(&key("sentinel"), None, &opts, d)?, Claim::Replay(_)));
        assert!(t.elapsed() < Duration::from_secs(5), "{d:?}: a replay does not wait");
    }
    for (i, d) in table().into_iter().enumerate() {
        let k = key(&format!("held-{i}"));
        let lease = acquire(&store, &k, None)?;
        if d <= Duration::from_millis(2) {
            // Short timeouts: honoured to the nanosecond, on the monotonic clock.
            let t = Instant::now();
            let got = if i % 2 == 0 {
                store.wait(&k, None, d)?
            } else {
                store.wait_with(&k, None, &opts, d)?
            };
            assert!(matches!(got, Claim::InFlight { .. }), "{d:?}: {got:?}");
            assert!(t.elapsed() >= d, "{d:?}: returned after {:?}", t.elapsed());
        } else {
            // Long or unrepresentable timeouts: no limit short of the holder.
            let holder = store.clone();
            let releaser = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                holder.release(&lease)
            });
            let got = store.wait(&k, None, d)?;
            releaser.join().expect("releaser")?;
            assert!(matches!(got, Claim::Acquired(_)), "{d:?}: {got:?}");
        }
    }
    common::sentinel_replays(&store, &key("sentinel"))
}

#[test]
fn buffered_max_delay_follows_the_rule_and_never_poisons() -> TestResult {
    for d in table() {
        let dir = common::fast_tempdir()?;
        let res = Config::new().durability(Durability::Buffered { max_delay: d }).open(dir.path());
        if rule(d).is_none() {
            refused(res, &["max_delay"]);
            assert!(Store::open(dir.path())?.get(&key("x"))?.is_none());
            continue;
        }
        let store = res.map_err(|e| format!("max_delay {d:?}: {e}"))?;
        common::plant_sentinel(&store, &key("sentinel"))?;
        for i in 0..20 {
            let lease = acquire(&store, &key(&format!("b{i}")), None)?;
            store.complete(&lease, b"ok")?;
        }
        // Give the journal thread time to run its fsync-deadline arithmetic.
        std::thread::sleep(Duration::from_millis(5));
        store.flush().map_err(|e| format!("max_delay {d:?}: {e}"))?;
        common::sentinel_replays(&store, &key("sentinel"))?;
        store.close()?;
        let store = Store::open(dir.path())?;
        common::sentinel_replays(&store, &key("sentinel"))?;
        assert!(matches!(store.claim(&key("b19"), None)?, Claim::Replay(_)));
    }
    Ok(())
}

#[test]
fn background_intervals_follow_the_rule() -> TestResult {
    type Set = fn(Config, Option<Duration>) -> Config;
    let setters: [(&str, Set); 2] = [
        ("sweep_interval", |c, d| c.sweep_interval(d)),
        ("checkpoint_interval", |c, d| c.checkpoint_interval(d)),
    ];
    for (name, set) in setters {
        for d in table() {
            let dir = common::fast_tempdir()?;
            let clock = MockClock::new(T0);
            let config = set(Config::new().clock(clock.clone()), Some(d));
            let res = config.open(dir.path());
            if rule(d).is_none() {
                refused(res, &[name]);
                continue;
            }
            let store = res.map_err(|e| format!("{name} {d:?}: {e}"))?;
            common::plant_sentinel(&store, &key("sentinel"))?;
            let opts = ClaimOptions::new().lease(Duration::from_millis(1));
            let lease = store.claim_with(&key("short"), None, &opts.retention(opts_ms(1)))?;
            store.complete(&lease.into_lease().ok_or("not acquired")?, b"x")?;
            clock.advance(Duration::from_millis(1));
            if name == "sweep_interval" && d <= Duration::from_millis(1) {
                // A sub-millisecond interval runs every millisecond: the
                // expired key is swept soon.
                let t = Instant::now();
                while store.stats().namespaces.get(NS).map_or(0, |s| s.expirations) == 0 {
                    assert!(t.elapsed() < Duration::from_secs(10), "{d:?}: never swept");
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            common::sentinel_replays(&store, &key("sentinel"))?;
            store.close()?;
            common::sentinel_replays(&mock_config(&clock).open(dir.path())?, &key("sentinel"))?;
        }
    }
    Ok(())
}

fn opts_ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
