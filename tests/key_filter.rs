//! The filter of keys that may be in sled lets a claim of a new key skip the
//! sled read. It must never hide a stored record: after a reopen (filters
//! rebuilt from sled) and while filters are rebuilt under concurrent writes,
//! every finished key still replays and every new key is acquired.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use idemkv::{Claim, Config, Durability, Key, Store};

fn key(i: u64) -> Key {
    Key::new("filter", format!("evt_{i}")).unwrap()
}

fn finish(store: &Store, i: u64) {
    match store.claim(&key(i), None).unwrap() {
        Claim::Acquired(lease) => lease.complete(format!("r{i}").as_bytes()).unwrap(),
        other => panic!("key {i}: a new key answered {other:?}"),
    }
}

fn assert_replays(store: &Store, i: u64) {
    match store.claim(&key(i), None).unwrap() {
        Claim::Replay(done) => assert_eq!(done.response(), format!("r{i}").as_bytes()),
        other => panic!("key {i} was completed but answered {other:?}"),
    }
}

#[test]
fn stored_keys_replay_after_reopen_once_the_filters_are_built() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (0..3_000).for_each(|i| finish(&store, i));
    store.close().unwrap();

    let store = Store::open(dir.path()).unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while !store.__key_filters_ready() {
        assert!(Instant::now() < give_up, "the filters were never built");
        std::thread::yield_now();
    }
    (0..3_000).for_each(|i| assert_replays(&store, i));
    (3_000..4_000).for_each(|i| finish(&store, i));
    (0..4_000).for_each(|i| assert_replays(&store, i));
}

#[test]
fn rebuilding_under_concurrent_writes_never_hides_a_key() {
    let dir = tempfile::tempdir().unwrap();
    // A long fsync delay keeps many versions pending (not yet in sled) while
    // a rebuild scans, and keys are written while it runs: the cases a
    // rebuild could get wrong. A tiny cache makes reads go through the filter.
    let store = Config::new()
        .durability(Durability::Buffered { max_delay: Duration::from_millis(20) })
        .cache_bytes(1)
        .open(dir.path())
        .unwrap();
    const PER_WRITER: u64 = 4_000;
    // Writers pause every STEP keys until one more rebuild has ended, so at
    // least PER_WRITER / STEP rebuilds overlap their writes on any machine.
    const STEP: u64 = 500;
    let finished: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let rebuilt = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let (store, finished, rebuilt) = (store.clone(), finished.clone(), rebuilt.clone());
            std::thread::spawn(move || {
                for n in 0..PER_WRITER {
                    finish(&store, t * 1_000_000 + n);
                    finished[t as usize].store(n + 1, Ordering::Release);
                    let give_up = Instant::now() + Duration::from_secs(120);
                    while rebuilt.load(Ordering::Acquire) < (n + 1) / STEP {
                        assert!(Instant::now() < give_up, "no rebuild for two minutes");
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    // After each rebuild, every key finished before it ended must replay: a
    // key the rebuild missed would be acquired again here.
    let mut rebuilds = 0;
    loop {
        let all_done = (0..2).all(|t| finished[t].load(Ordering::Acquire) == PER_WRITER);
        let before: Vec<u64> = (0..2).map(|t| finished[t].load(Ordering::Acquire)).collect();
        assert!(store.__rebuild_key_filters().unwrap());
        rebuilds += 1;
        // Everything written during the rebuild now leaves the pending maps
        // for sled, so that only the new filter can vouch for it.
        store.checkpoint().unwrap();
        for t in 0..2u64 {
            // The keys at risk: pending when the rebuild began (finished
            // shortly before it), or written while it ran.
            let upto = finished[t as usize].load(Ordering::Acquire);
            let from = before[t as usize].saturating_sub(1_000);
            (from..upto).for_each(|n| assert_replays(&store, t * 1_000_000 + n));
        }
        rebuilt.fetch_add(1, Ordering::Release);
        if all_done {
            break;
        }
    }
    writers.into_iter().for_each(|w| w.join().unwrap());
    assert!(rebuilds > PER_WRITER / STEP, "only {rebuilds} rebuilds");
    // And in the end, every key.
    for t in 0..2u64 {
        (0..PER_WRITER).for_each(|n| assert_replays(&store, t * 1_000_000 + n));
    }
}
