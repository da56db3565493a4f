//! Guards durability across a clean restart: every finished key replays byte-identically (outcome, body, attempts, timestamps, token) after close, after flush + drop in Buffered mode, and after a plain drop.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{Rng, TestResult, acquire, key, mock_clock};
use idemkv::{
    Claim, Config, Durability, Entry, Failure, Fingerprint, Key, MockClock, Replay, Store,
};

const KEYS: usize = 500;
const MAX_BODY: usize = 100 * 1024;

fn body(i: usize, rng: &mut Rng) -> Vec<u8> {
    match i % 50 {
        0 => Vec::new(),
        1 => rng.bytes(MAX_BODY),
        2 => (0..=255u8).collect(),
        3 => (0..=255u8).rev().cycle().take(4096 + i).collect(),
        n if n < 12 => {
            let len = rng.below(MAX_BODY as u64) as usize;
            rng.bytes(len)
        }
        _ => {
            let len = rng.below(2048) as usize;
            rng.bytes(len)
        }
    }
}

/// Writes `KEYS` finished keys: mostly completed, some after a retryable
/// failure, some failed terminally. Returns what `get` showed for each.
fn populate(store: &Store, clock: &MockClock, seed: u64) -> TestResult<BTreeMap<Key, Entry>> {
    let mut rng = Rng::new(seed);
    let mut seen_all_bytes = [false; 256];
    let mut out = BTreeMap::new();
    for i in 0..KEYS {
        let k = key(format!("r{seed}-{i}"));
        let fp = Fingerprint::of(i.to_le_bytes());
        let b = body(i, &mut rng);
        b.iter().for_each(|&x| seen_all_bytes[x as usize] = true);
        let mut lease = acquire(store, &k, fp)?;
        clock.advance(Duration::from_millis(3));
        if i % 7 == 0 {
            store.fail(&lease, Failure::Retryable)?;
            clock.advance(Duration::from_millis(2));
            lease = acquire(store, &k, fp)?;
        }
        if i % 11 == 0 {
            store.fail(&lease, Failure::Terminal(&b))?;
        } else {
            store.complete(&lease, &b)?;
        }
        clock.advance(Duration::from_millis(1));
        out.insert(k.clone(), store.get(&k)?.ok_or("missing right after writing")?);
    }
    assert!(seen_all_bytes.iter().all(|&x| x), "bodies cover all 256 byte values");
    Ok(out)
}

fn replay_of(store: &Store, k: &Key) -> TestResult<Replay> {
    match store.claim(k, None)? {
        Claim::Replay(r) => Ok(r),
        other => Err(format!("{k}: expected Replay, got {other:?}").into()),
    }
}

fn check(dir: &Path, config: Config, expected: &BTreeMap<Key, Entry>) -> TestResult {
    let store = config.open(dir)?;
    let report = store.recovery_report();
    assert_eq!(report.damage, None, "{report:?}");
    assert_eq!(report.bytes_dropped, 0);
    for (k, before) in expected {
        let now = store.get(k)?.ok_or_else(|| format!("{k} lost"))?;
        assert_eq!(&now, before, "{k} changed across the restart");
        let r = replay_of(&store, k)?;
        let idemkv::EntryState::Finished(want) = &before.state else {
            panic!("{k} was not finished")
        };
        assert_eq!(r.response(), want.response(), "{k}: body differs");
        assert_eq!(&r, want);
    }
    store.close()?;
    Ok(())
}

fn config(clock: &MockClock, durability: Durability) -> Config {
    Config::new().clock(clock.clone()).durability(durability)
}

#[test]
fn durable_close_and_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = mock_clock();
    let store = config(&clock, Durability::Durable).open(dir.path())?;
    let expected = populate(&store, &clock, 1)?;
    store.close()?;
    check(dir.path(), config(&clock, Durability::Durable), &expected)?;
    // A second restart changes nothing either.
    check(dir.path(), config(&clock, Durability::Durable), &expected)
}

#[test]
fn buffered_flush_and_drop() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = mock_clock();
    let lazy = Durability::Buffered { max_delay: Duration::from_secs(3600) };
    let store = config(&clock, lazy).open(dir.path())?;
    let expected = populate(&store, &clock, 2)?;
    store.flush()?;
    drop(store);
    check(dir.path(), config(&clock, lazy), &expected)
}

#[test]
fn durable_drop_without_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = mock_clock();
    let store = config(&clock, Durability::Durable).open(dir.path())?;
    let expected = populate(&store, &clock, 3)?;
    let clone = store.clone();
    drop(store);
    drop(clone); // the last handle closes the store
    check(dir.path(), config(&clock, Durability::Durable), &expected)
}
