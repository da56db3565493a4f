//! Guards `Store::wait`: a waiter blocks while the key is held and wakes with the holder's outcome (Replay, or Acquired after release/retryable failure/removal/lease expiry), or InFlight at its timeout.

mod common;

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use common::{TestResult, acquire, key, modes};
use idemkv::{Claim, Config, Durability, Failure, Fingerprint, Lease, Outcome, Policy, Store};

/// Bound on every wait, so a bug fails instead of hanging.
const BOUND: Duration = Duration::from_secs(10);

/// The holder takes the key, a waiter blocks on it, then the holder does
/// `action`; returns what the waiter got and the holder's lease.
fn contended(
    store: &Store,
    id: &str,
    action: impl FnOnce(&Store, &Lease) -> TestResult,
) -> TestResult<(Claim, Lease)> {
    let k = key(id);
    let fp = Fingerprint::of(id);
    let lease = acquire(store, &k, fp)?;
    let (started_tx, started_rx) = channel();
    let (done_tx, done_rx) = channel();
    std::thread::scope(|s| -> TestResult<(Claim, Lease)> {
        let waiter = s.spawn(|| {
            started_tx.send(()).unwrap();
            let res = store.wait(&k, fp, BOUND);
            done_tx.send(res.map_err(|e| e.to_string())).unwrap();
        });
        started_rx.recv_timeout(BOUND)?;
        // Give the waiter time to block; it must still be waiting after it.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "wait returned while the key was held");
        action(store, &lease)?;
        let claim = done_rx.recv_timeout(BOUND)??;
        Ok((claim, lease))
    })
}

fn open(durability: Durability) -> TestResult<(tempfile::TempDir, Store)> {
    let dir = tempfile::tempdir()?;
    let store = Config::new().durability(durability).open(dir.path())?;
    Ok((dir, store))
}

#[test]
fn waiter_gets_the_holders_response() -> TestResult {
    for (mode, d) in modes() {
        let (_dir, store) = open(d)?;
        let (claim, lease) =
            contended(&store, "complete", |s, l| Ok(s.complete(l, b"the answer")?))?;
        match claim {
            Claim::Replay(r) => {
                assert_eq!(r.response(), b"the answer", "{mode}");
                assert_eq!(r.token(), lease.token());
            }
            other => panic!("{mode}: expected Replay, got {other:?}"),
        }
        let (claim, _) =
            contended(&store, "terminal", |s, l| Ok(s.fail(l, Failure::Terminal(b"gave up"))?))?;
        assert!(
            matches!(&claim, Claim::Replay(r) if r.outcome() == Outcome::Failed && r.response() == b"gave up"),
            "{mode}: {claim:?}"
        );
    }
    Ok(())
}

#[test]
fn waiter_acquires_when_the_holder_gives_up() -> TestResult {
    for (mode, d) in modes() {
        let (_dir, store) = open(d)?;
        type Action = fn(&Store, &Lease) -> TestResult;
        let actions: [(&str, Action, u32); 3] = [
            ("release", |s, l| Ok(s.release(l)?), 2),
            ("retryable", |s, l| Ok(s.fail(l, Failure::Retryable)?), 2),
            (
                "remove",
                |s, l| {
                    assert!(s.remove(l.key())?);
                    Ok(())
                },
                1,
            ),
        ];
        for (what, action, attempt) in actions {
            let (claim, lease) = contended(&store, what, action)?;
            match claim {
                Claim::Acquired(next) => {
                    assert_eq!(next.attempt(), attempt, "{mode}/{what}");
                    assert!(!next.recovered(), "{mode}/{what}");
                    assert!(next.token() > lease.token());
                    next.complete(b"done by the waiter")?;
                }
                other => panic!("{mode}/{what}: expected Acquired, got {other:?}"),
            }
        }
    }
    Ok(())
}

#[test]
fn waiter_times_out_in_flight() -> TestResult {
    for (mode, d) in modes() {
        let (_dir, store) = open(d)?;
        let k = key("held");
        let lease = acquire(&store, &k, None)?;
        let timeout = Duration::from_millis(150);
        let start = Instant::now();
        let claim = store.wait(&k, None, timeout)?;
        let took = start.elapsed();
        assert!(matches!(claim, Claim::InFlight { attempt: 1, .. }), "{mode}: {claim:?}");
        assert!(took >= timeout, "{mode}: returned after {took:?}");
        assert!(took < BOUND, "{mode}: returned after {took:?}");
        // The holder is unaffected.
        store.complete(&lease, b"x")?;
    }
    Ok(())
}

#[test]
fn wait_on_finished_or_new_key_returns_at_once() -> TestResult {
    for (mode, d) in modes() {
        let (_dir, store) = open(d)?;
        let k = key("done");
        let lease = acquire(&store, &k, None)?;
        store.complete(&lease, b"r")?;
        let start = Instant::now();
        let claim = store.wait(&k, None, Duration::from_secs(30))?;
        assert!(matches!(&claim, Claim::Replay(r) if r.response() == b"r"), "{mode}: {claim:?}");
        let claim = store.wait(&key("fresh"), Fingerprint::of(b"mine"), Duration::from_secs(30))?;
        assert!(matches!(&claim, Claim::Acquired(l) if l.attempt() == 1), "{mode}: {claim:?}");
        // A mismatch on a held key does not wait either.
        let claim =
            store.wait(&key("fresh"), Fingerprint::of(b"other"), Duration::from_secs(30))?;
        assert!(matches!(claim, Claim::Mismatch { .. }), "{mode}: {claim:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{mode}: took {:?}", start.elapsed());
    }
    Ok(())
}

#[test]
fn waiter_takes_over_when_the_lease_runs_out() -> TestResult {
    for (mode, d) in modes() {
        let clock = common::mock_clock();
        let dir = tempfile::tempdir()?;
        let store = common::mock_config(&clock)
            .durability(d)
            .default_policy(Policy::default().lease(Duration::from_millis(100)))
            .open(dir.path())?;
        let (claim, lease) = contended(&store, "expiring", |_, _| {
            clock.advance(Duration::from_secs(1)); // the holder's lease runs out
            Ok(())
        })?;
        match claim {
            Claim::Acquired(next) => {
                assert!(next.recovered(), "{mode}");
                assert_eq!(next.attempt(), 2);
                assert!(next.token() > lease.token());
            }
            other => panic!("{mode}: expected Acquired, got {other:?}"),
        }
    }
    Ok(())
}
