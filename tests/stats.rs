//! Per-namespace counters count every outcome, survive a reopen through the
//! checkpoint, and render as Prometheus text.

use std::time::Duration;

use idemkv::{Claim, Config, Failure, Fingerprint, Key, MockClock};

#[test]
fn counters_follow_the_outcomes() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = MockClock::new(1_000_000);
    let config = || Config::new().clock(clock.clone()).sweep_interval(None);
    let store = config().open(dir.path())?;
    let fp = Fingerprint::of(b"body");

    // stripe: one completed event, delivered three times; one key reused.
    let a = Key::new("stripe", "evt_a")?;
    let lease = store.claim(&a, fp)?.into_lease().ok_or("not acquired")?;
    assert!(matches!(store.claim(&a, fp)?, Claim::InFlight { .. }));
    clock.advance(Duration::from_millis(250));
    store.complete(&lease, b"ok")?;
    assert!(matches!(store.claim(&a, fp)?, Claim::Replay(_)));
    assert!(matches!(store.claim(&a, Fingerprint::of(b"other"))?, Claim::Mismatch { .. }));
    assert!(store.complete(&lease, b"again").is_err()); // stale: already finished

    // github: a retryable failure, then a retry that fails terminally; a wait.
    let b = Key::new("github", "delivery-1")?;
    let first = store.claim(&b, None)?.into_lease().ok_or("not acquired")?;
    store.fail(&first, Failure::Retryable)?;
    let second = store.claim(&b, None)?.into_lease().ok_or("not acquired")?;
    store.fail(&second, Failure::Terminal(b"bad signature"))?;
    assert!(matches!(store.wait(&b, None, Duration::ZERO)?, Claim::Replay(_)));

    let stats = store.stats();
    let s = &stats.namespaces["stripe"];
    assert_eq!((s.claims, s.acquired, s.in_flight, s.replayed, s.mismatches), (4, 1, 1, 1, 1));
    assert_eq!((s.completions, s.stale_leases, s.retries), (1, 1, 0));
    assert!((s.duplicate_rate - 0.75).abs() < 1e-9, "3 of 4 claims were duplicates");
    assert_eq!(s.event_latency_ms.count, 1);
    assert!((250..=281).contains(&s.event_latency_ms.p50), "{:?}", s.event_latency_ms);
    let g = &stats.namespaces["github"];
    assert_eq!((g.claims, g.acquired, g.retries, g.waits, g.replayed), (3, 2, 1, 1, 1));
    assert_eq!((g.failures_retryable, g.failures_terminal), (1, 1));

    let text = stats.to_prometheus();
    assert!(text.contains("idemkv_claims_total{namespace=\"stripe\"} 4"), "{text}");
    assert!(text.contains("idemkv_failures_terminal_total{namespace=\"github\"} 1"), "{text}");

    // Counters are cumulative across a reopen (saved by the closing checkpoint).
    store.close()?;
    let store = config().open(dir.path())?;
    assert!(matches!(store.claim(&a, fp)?, Claim::Replay(_)));
    let s = &store.stats().namespaces["stripe"];
    assert_eq!((s.claims, s.replayed), (5, 2));
    // Latency histograms cover this process only.
    assert_eq!(s.event_latency_ms.count, 0);
    Ok(())
}

#[test]
fn expirations_and_removals_are_counted() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = MockClock::new(1_000_000);
    let store = Config::new().clock(clock.clone()).sweep_interval(None).open(dir.path())?;
    for i in 0..3 {
        let key = Key::new("shopify", format!("o{i}"))?;
        let lease = store.claim(&key, None)?.into_lease().ok_or("not acquired")?;
        store.complete(&lease, b"ok")?;
    }
    assert!(store.remove(&Key::new("shopify", "o0")?)?);
    clock.advance(Duration::from_secs(73 * 3600));
    assert_eq!(store.sweep()?, 2);
    let s = &store.stats().namespaces["shopify"];
    assert_eq!((s.removals, s.expirations), (1, 2));
    Ok(())
}

/// Every refused lease counts in `stale_leases`, a lease of another open
/// store (`OtherStore`) included.
#[test]
fn leases_of_another_open_store_count_as_stale() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Config::new().open(dir.path())?;
    let key = Key::new("stripe", "evt_stale")?;
    let Claim::Acquired(lease) = store.claim(&key, None)? else { panic!("acquired") };
    let lease = lease.into_lease();
    store.close()?;
    let store = Config::new().open(dir.path())?;
    assert!(store.complete(&lease, b"late").is_err(), "a lease of an earlier open");
    assert_eq!(store.stats().namespaces["stripe"].stale_leases, 1);
    Ok(())
}
