//! Guards corruption handling: a damaged stored record gives Error::Corrupt (never a panic or a wrong answer) for that key only, and `verify` reports exactly that key.

mod common;

use std::time::Duration;

use common::{TestResult, acquire, key, mock_clock, mock_config};
use idemkv::{Claim, ClaimOptions, Error, Key, Store};

fn finish(store: &Store, k: &Key, body: &[u8]) -> TestResult {
    let lease = acquire(store, k, None)?;
    store.complete(&lease, body)?;
    Ok(())
}

fn assert_corrupt(store: &Store, k: &Key) {
    let claim = store.claim(k, None);
    assert!(
        matches!(&claim, Err(Error::Corrupt { key, .. }) if key == k.as_raw()),
        "claim of {k}: {claim:?}"
    );
    let get = store.get(k);
    assert!(
        matches!(&get, Err(Error::Corrupt { key, .. }) if key == k.as_raw()),
        "get of {k}: {get:?}"
    );
}

fn assert_replays(store: &Store, k: &Key, body: &[u8]) -> TestResult {
    match store.claim(k, None)? {
        Claim::Replay(r) => assert_eq!(r.response(), body, "{k}"),
        other => return Err(format!("{k}: expected Replay, got {other:?}").into()),
    }
    Ok(())
}

fn corrupt_keys(store: &Store) -> TestResult<Vec<Vec<u8>>> {
    Ok(store.verify()?.corrupt.into_iter().map(|(k, _)| k).collect())
}

#[test]
fn garbage_record_is_corrupt_for_that_key_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let keys: Vec<Key> = ["a", "b", "c"].iter().map(key).collect();
    for k in &keys {
        finish(&store, k, k.id())?;
    }
    assert_eq!(store.verify()?.corrupt, vec![]);

    store.__corrupt_record(&keys[1], b"garbage")?;
    assert_corrupt(&store, &keys[1]);
    assert_replays(&store, &keys[0], b"a")?;
    assert_replays(&store, &keys[2], b"c")?;
    let report = store.verify()?;
    assert_eq!(report.records, 3);
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].0, keys[1].as_raw());
    assert!(!report.corrupt[0].1.is_empty(), "a reason is given");
    // Writes to other keys still work.
    finish(&store, &key("d"), b"d")?;
    store.close()?;

    // The store opens over a corrupt record, which stays reported.
    let store = Store::open(dir.path())?;
    assert_corrupt(&store, &keys[1]);
    assert_replays(&store, &key("d"), b"d")?;
    assert_eq!(corrupt_keys(&store)?, vec![keys[1].as_raw().to_vec()]);
    Ok(())
}

#[test]
fn plausible_but_damaged_records_are_corrupt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let k = key("plausible");
    finish(&store, &k, b"fine")?;
    let mut truncated = b"IK\x01\x02".to_vec();
    truncated.resize(100, 0);
    for bytes in [&b""[..], b"IK", b"IK\x01", b"IK\x01\x02\x00\x00\x00\x00", &truncated] {
        store.__corrupt_record(&k, bytes)?;
        assert_corrupt(&store, &k);
        assert_eq!(corrupt_keys(&store)?, vec![k.as_raw().to_vec()], "{bytes:?}");
    }
    Ok(())
}

/// Takes the engine's own encoding of a record from the journal, checks that
/// it reads back as written, then flips single bits in it.
#[test]
fn real_record_with_a_flipped_bit_is_corrupt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let k = key("real");
    let body: Vec<u8> = (0..=255u8).collect();
    finish(&store, &k, &body)?;
    finish(&store, &key("other"), b"other")?;
    store.flush()?;

    let mut record = None;
    for seg in common::segments(dir.path())? {
        for f in common::parse_segment(&std::fs::read(seg)?) {
            if f.key == k.as_raw() && f.state_tag() == Some(2) {
                record = f.record;
            }
        }
    }
    let record = record.ok_or("completion frame not found in the journal")?;
    assert_eq!(&record[..3], b"IK\x01");

    // The genuine bytes read back as the same replay.
    store.__corrupt_record(&k, &record)?;
    assert_replays(&store, &k, &body)?;

    let len = record.len();
    for pos in [3, 8, 12, 20, 36, 84, 88, 88 + 100, len - 5, len - 1] {
        for bit in [0, 7] {
            let mut damaged = record.clone();
            damaged[pos] ^= 1 << bit;
            store.__corrupt_record(&k, &damaged)?;
            assert_corrupt(&store, &k);
            assert_eq!(corrupt_keys(&store)?, vec![k.as_raw().to_vec()], "byte {pos} bit {bit}");
            assert_replays(&store, &key("other"), b"other")?;
        }
    }
    store.__corrupt_record(&k, &record)?;
    assert_replays(&store, &k, &body)?;
    assert_eq!(store.verify()?.corrupt, vec![]);
    Ok(())
}

#[test]
fn sweep_skips_a_corrupt_record() -> TestResult {
    let clock = mock_clock();
    let dir = tempfile::tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    let hour = Duration::from_secs(3600);
    for id in ["x", "y"] {
        let lease = store
            .claim_with(&key(id), None, &ClaimOptions::new().retention(hour))?
            .into_lease()
            .ok_or("expected Acquired")?;
        store.complete(&lease, b"v")?;
    }
    store.__corrupt_record(&key("x"), b"garbage")?;
    clock.advance(hour);
    assert_eq!(store.sweep()?, 1, "the healthy expired record is swept");
    assert_eq!(store.get(&key("y"))?, None);
    assert_eq!(corrupt_keys(&store)?, vec![key("x").as_raw().to_vec()]);
    Ok(())
}

#[test]
fn corrupt_record_can_be_removed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let k = key("broken");
    finish(&store, &k, b"x")?;
    store.__corrupt_record(&k, b"garbage")?;
    store.remove(&k)?;
    assert_eq!(store.get(&k)?, None);
    assert_eq!(acquire(&store, &k, None)?.attempt(), 1);
    assert_eq!(store.verify()?.corrupt, vec![]);
    Ok(())
}
