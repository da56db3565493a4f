//! Guards claim atomicity: of many threads racing to claim one key, exactly one acquires and every other caller sees InFlight or the winner's Replay.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use common::{TestResult, buffered, key};
use idemkv::{Claim, Config, Durability, Fingerprint};

const THREADS: usize = 8;
const KEYS: usize = 200;

fn response(k: usize, thread: usize) -> Vec<u8> {
    format!("key {k} won by thread {thread}").into_bytes()
}

fn race(durability: Durability) -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Config::new().durability(durability).open(dir.path())?;
    let keys: Vec<_> = (0..KEYS).map(|i| key(format!("race-{i}"))).collect();
    let fp = Fingerprint::of(b"same request");
    let acquired: Vec<AtomicUsize> = (0..KEYS).map(|_| AtomicUsize::new(0)).collect();
    let winners: Mutex<Vec<Option<usize>>> = Mutex::new(vec![None; KEYS]);
    let in_flight = AtomicUsize::new(0);
    let replays = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, keys, acquired, winners, barrier) =
                (&store, &keys, &acquired, &winners, &barrier);
            let (in_flight, replays) = (&in_flight, &replays);
            s.spawn(move || {
                for (i, k) in keys.iter().enumerate() {
                    barrier.wait(); // every thread claims key i at once
                    match store.claim(k, fp).expect("claim") {
                        Claim::Acquired(lease) => {
                            assert_eq!(lease.attempt(), 1);
                            acquired[i].fetch_add(1, Ordering::SeqCst);
                            winners.lock().unwrap()[i] = Some(t);
                            lease.complete(response(i, t)).expect("complete");
                        }
                        Claim::InFlight { attempt, .. } => {
                            assert_eq!(attempt, 1);
                            in_flight.fetch_add(1, Ordering::Relaxed);
                        }
                        Claim::Replay(r) => {
                            let prefix = format!("key {i} won by thread ");
                            assert!(r.response().starts_with(prefix.as_bytes()), "{r:?}");
                            replays.fetch_add(1, Ordering::Relaxed);
                        }
                        Claim::Mismatch { .. } => panic!("same fingerprint cannot mismatch"),
                    }
                }
            });
        }
    });

    let winners = winners.into_inner().unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(acquired[i].load(Ordering::SeqCst), 1, "key {i} must be acquired exactly once");
        let w = winners[i].expect("a winner");
        match store.claim(k, fp)? {
            Claim::Replay(r) => assert_eq!(r.response(), &response(i, w)[..]),
            other => panic!("key {i}: expected Replay, got {other:?}"),
        }
    }
    assert_eq!(
        in_flight.load(Ordering::Relaxed) + replays.load(Ordering::Relaxed),
        KEYS * (THREADS - 1),
        "every loser got InFlight or Replay"
    );
    store.close()?;
    Ok(())
}

#[test]
fn exactly_one_acquires_durable() -> TestResult {
    race(Durability::Durable)
}

#[test]
fn exactly_one_acquires_buffered() -> TestResult {
    race(buffered())
}

/// No per-key barrier: threads sweep the keys in different orders, so claims,
/// completions and replays of many keys interleave across shards.
#[test]
fn exactly_one_acquires_interleaved() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Config::new()
        .durability(Durability::Buffered { max_delay: Duration::from_millis(2) })
        .shards(4)
        .open(dir.path())?;
    const N: usize = 1000;
    let keys: Vec<_> = (0..N).map(|i| key(format!("mix-{i}"))).collect();
    let acquired: Vec<AtomicUsize> = (0..N).map(|_| AtomicUsize::new(0)).collect();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, keys, acquired, barrier) = (&store, &keys, &acquired, &barrier);
            s.spawn(move || {
                let mut order: Vec<usize> = (0..N).collect();
                common::Rng::new(t as u64).shuffle(&mut order);
                barrier.wait();
                for i in order {
                    if let Claim::Acquired(lease) = store.claim(&keys[i], None).expect("claim") {
                        acquired[i].fetch_add(1, Ordering::SeqCst);
                        lease.complete(response(i, t)).expect("complete");
                    }
                }
            });
        }
    });
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(acquired[i].load(Ordering::SeqCst), 1, "key {i}");
        assert!(matches!(store.claim(k, None)?, Claim::Replay(_)));
    }
    Ok(())
}
