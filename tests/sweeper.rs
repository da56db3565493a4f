//! Guards the sweeper: `sweep()` removes exactly the expired records through the expiry index, leaves live and re-claimed records alone, and the background thread does the same on its own.

mod common;

use std::time::{Duration, Instant};

use common::{TestResult, acquire, key, mock_clock, mock_config};
use idemkv::{Claim, ClaimOptions, Durability, EntryState, Key, Store};

const HOUR: Duration = Duration::from_secs(3600);

fn complete_with_retention(store: &Store, k: &Key, retention: Duration) -> TestResult {
    let opts = ClaimOptions::new().retention(retention);
    let lease = store.claim_with(k, None, &opts)?.into_lease().ok_or("expected Acquired")?;
    store.complete(&lease, k.id())?;
    Ok(())
}

fn assert_replays(store: &Store, keys: &[Key]) -> TestResult {
    for k in keys {
        match store.claim(k, None)? {
            Claim::Replay(r) => assert_eq!(r.response(), k.id()),
            other => return Err(format!("{k}: expected Replay, got {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn sweep_removes_exactly_the_expired() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    // A small batch so that one sweep pages through the index.
    let store = mock_config(&clock).sweep_batch(4).open(dir.path())?;
    let groups: Vec<Vec<Key>> =
        (1..=3).map(|h| (0..10).map(|i| key(format!("h{h}-{i}"))).collect()).collect();
    for (h, keys) in groups.iter().enumerate() {
        for k in keys {
            complete_with_retention(&store, k, HOUR * (h as u32 + 1))?;
        }
    }
    // Abandoned claims: expire at lease (30 s) + retention (1 h).
    let held: Vec<Key> = (0..5).map(|i| key(format!("held-{i}"))).collect();
    for k in &held {
        store
            .claim_with(k, None, &ClaimOptions::new().retention(HOUR))?
            .into_lease()
            .ok_or("expected Acquired")?;
    }
    store.checkpoint()?;
    assert_eq!(store.__index_len(), 35);
    assert_eq!(store.sweep()?, 0, "nothing is due yet");

    clock.advance(HOUR);
    assert_eq!(store.sweep()?, 10);
    store.checkpoint()?;
    // Every live record is still named (the index may also name records
    // that are gone, until the expiry their old version had comes due).
    assert!(store.__index_len() >= 25);
    assert_eq!(store.sweep()?, 0, "a second sweep finds nothing");
    for k in &groups[0] {
        assert_eq!(store.get(k)?, None);
    }
    assert_replays(&store, &groups[1])?;
    assert_replays(&store, &groups[2])?;
    for k in &held {
        assert!(matches!(
            store.get(k)?.map(|e| e.state),
            Some(EntryState::InProgress { orphaned: true, .. })
        ));
    }

    clock.advance(Duration::from_secs(30));
    assert_eq!(store.sweep()?, 5, "abandoned claims expire at lease + retention");
    clock.advance(HOUR - Duration::from_secs(30));
    assert_eq!(store.sweep()?, 10);
    store.checkpoint()?;
    assert!(store.__index_len() >= 10);
    assert_replays(&store, &groups[2])?;

    clock.advance(HOUR);
    assert_eq!(store.sweep()?, 10);
    assert_eq!(store.sweep()?, 0);
    // Once every version ever written has expired, the index drains.
    clock.advance(Duration::from_secs(60));
    assert_eq!(store.sweep()?, 0);
    store.checkpoint()?;
    assert_eq!(store.__index_len(), 0);
    assert_eq!(store.sweep()?, 0);
    Ok(())
}

#[test]
fn reclaimed_record_survives_its_old_index_entry() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    let k = key("phoenix");
    complete_with_retention(&store, &k, HOUR)?;
    store.checkpoint()?;
    clock.advance(HOUR);

    // Expired, not yet swept: re-claimed before the sweeper comes by.
    let lease = acquire(&store, &k, None)?;
    assert_eq!(lease.attempt(), 1);
    assert_eq!(store.sweep()?, 0, "the live record must not be swept");
    assert!(matches!(
        store.get(&k)?.map(|e| e.state),
        Some(EntryState::InProgress { token, orphaned: false, .. }) if token == lease.token()
    ));
    store.complete(&lease, b"second life")?;
    store.checkpoint()?;
    assert_eq!(store.sweep()?, 0);
    assert_eq!(store.__index_len(), 1, "only the new record's entry remains");
    match store.claim(&k, None)? {
        Claim::Replay(r) => assert_eq!(r.response(), b"second life"),
        other => panic!("expected Replay, got {other:?}"),
    }
    Ok(())
}

/// The old index entry is in sled while the re-claimed version is still on
/// its way there (Buffered, no fsync yet): the sweeper must skip it.
#[test]
fn reclaimed_record_pending_in_the_journal_is_not_swept() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock)
        .durability(Durability::Buffered { max_delay: HOUR })
        .open(dir.path())?;
    let k = key("pending");
    complete_with_retention(&store, &k, HOUR)?;
    store.checkpoint()?; // flushes and applies
    clock.advance(HOUR);
    let lease = acquire(&store, &k, None)?;
    assert_eq!(store.sweep()?, 0);
    store.complete(&lease, b"kept")?;
    assert_eq!(store.sweep()?, 0);
    store.checkpoint()?;
    assert_eq!(store.sweep()?, 0);
    assert_eq!(store.__index_len(), 1);
    match store.claim(&k, None)? {
        Claim::Replay(r) => assert_eq!(r.response(), b"kept"),
        other => panic!("expected Replay, got {other:?}"),
    }
    Ok(())
}

#[test]
fn sweep_removes_expired_records_not_yet_applied() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock)
        .durability(Durability::Buffered { max_delay: HOUR })
        .open(dir.path())?;
    for i in 0..5 {
        complete_with_retention(&store, &key(format!("p{i}")), HOUR)?;
    }
    clock.advance(HOUR);
    // Contract: "Removes every expired record now. Returns how many were removed."
    assert_eq!(store.sweep()?, 5);
    Ok(())
}

#[test]
fn background_sweeper_removes_expired_records() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store =
        mock_config(&clock).sweep_interval(Some(Duration::from_millis(10))).open(dir.path())?;
    let short: Vec<Key> = (0..20).map(|i| key(format!("s{i}"))).collect();
    let long: Vec<Key> = (0..5).map(|i| key(format!("l{i}"))).collect();
    for k in &short {
        complete_with_retention(&store, k, HOUR)?;
    }
    for k in &long {
        complete_with_retention(&store, k, 72 * HOUR)?;
    }
    store.checkpoint()?;
    assert_eq!(store.__index_len(), 25);

    clock.advance(HOUR);
    // A real thread: poll, bounded.
    let give_up = Instant::now() + Duration::from_secs(5);
    let expired = || store.stats().namespaces.values().map(|n| n.expirations).sum::<u64>();
    while expired() < 20 {
        assert!(
            Instant::now() < give_up,
            "sweeper did not remove the expired records within 5 s ({} removed)",
            expired()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(expired(), 20);
    assert!(store.__index_len() >= 5);
    assert_eq!(store.sweep()?, 0, "the background sweeper left nothing due");
    assert_replays(&store, &long)?;
    for k in &short {
        assert_eq!(store.get(k)?, None);
    }
    Ok(())
}
