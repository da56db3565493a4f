//! `Claim::InFlight::retry_after` estimates when the holder will finish —
//! the namespace's recent p90 claim-to-completion time minus what the holder
//! has run, never beyond its lease — instead of the time left on the lease.

mod common;

use std::time::Duration;

use common::{TestResult, key, mock_clock, mock_config};
use idemkv::{Claim, Store};

fn in_flight(store: &Store, id: &str) -> Duration {
    match store.claim(&key(id), None).expect("claim") {
        Claim::InFlight { retry_after, .. } => retry_after,
        other => panic!("{id}: expected InFlight, got {other:?}"),
    }
}

#[test]
fn retry_after_follows_recent_processing_times_capped_by_the_lease() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = mock_clock();
    let store = mock_config(&clock).open(dir.path())?; // lease 30 s
    // Before the first completion: the time left on the lease.
    let holder = store.claim(&key("early"), None)?.into_guard().expect("acquired");
    clock.advance(Duration::from_secs(1));
    assert_eq!(in_flight(&store, "early"), Duration::from_secs(29));
    drop(holder);

    // Jobs that take 2 s (ten of them; then one slow outlier under 10 %).
    for i in 0..30 {
        let g = store.claim(&key(format!("job{i}")), None)?.into_guard().expect("acquired");
        clock.advance(Duration::from_millis(if i == 29 { 20_000 } else { 2_000 }));
        g.complete(b"done")?;
    }
    let holder = store.claim(&key("busy"), None)?.into_guard().expect("acquired");
    assert_eq!(in_flight(&store, "busy"), Duration::from_secs(2), "p90 = 2 s, nothing run yet");
    clock.advance(Duration::from_millis(500));
    assert_eq!(in_flight(&store, "busy"), Duration::from_millis(1_500));
    // Past the p90: a quarter of it, not zero, not the lease.
    clock.advance(Duration::from_secs(5));
    assert_eq!(in_flight(&store, "busy"), Duration::from_millis(500));
    // Near the lease end: capped by what is left of it.
    clock.advance(Duration::from_millis(24_300));
    assert_eq!(in_flight(&store, "busy"), Duration::from_millis(200));
    holder.complete(b"done")?;

    // Per namespace: another source has no estimate yet.
    let other = idemkv::Key::new("other", "x")?;
    let _held = store.claim(&other, None)?.into_guard().expect("acquired");
    match store.claim(&other, None)? {
        Claim::InFlight { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(30)),
        c => panic!("{c:?}"),
    }
    Ok(())
}
