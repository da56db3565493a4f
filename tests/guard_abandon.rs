//! A guard dropped unfinished — by an early return, a panic, or a cancelled
//! future — abandons its claim: the key is claimable at once, the next
//! claimer gets `recovered() == true`, and there are never two live holders.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{TestResult, key, mock_clock, mock_config, modes};
use idemkv::{Claim, Durability, EntryState, Error, Fail, Guard, RunOnce, StaleReason, Store};

fn acquire(store: &Store, id: &str) -> Guard {
    match store.claim(&key(id), None).expect("claim") {
        Claim::Acquired(g) => g,
        other => panic!("{id}: expected Acquired, got {other:?}"),
    }
}

/// The next claim of `id` acquires at once, flagged recovered, attempt + 1.
fn taken_over(store: &Store, id: &str, attempt: u32) -> Guard {
    let g = acquire(store, id);
    assert!(g.recovered(), "{id}: the claimer after an abandon must reconcile");
    assert_eq!(g.attempt(), attempt, "{id}");
    g
}

#[test]
fn a_dropped_guard_makes_the_key_claimable_at_once_flagged_recovered() -> TestResult {
    for (mode, durability) in modes() {
        let dir = tempfile::tempdir()?;
        // The mock clock never moves: only the abandon can free the key
        // before its 30 s lease.
        let clock = mock_clock();
        let store = mock_config(&clock).durability(durability).open(dir.path())?;
        let first = acquire(&store, "dropped");
        let token = first.token();
        drop(first);
        match store.get(&key("dropped"))?.map(|e| e.state) {
            Some(EntryState::InProgress { orphaned: true, token: t, .. }) => assert_eq!(t, token),
            other => panic!("{mode}: expected an orphaned claim, got {other:?}"),
        }
        let second = taken_over(&store, "dropped", 2);
        assert!(second.token() > token, "{mode}");
        second.complete(b"reconciled")?;
        match store.claim(&key("dropped"), None)? {
            Claim::Replay(r) => assert_eq!(r.response(), b"reconciled"),
            other => panic!("{mode}: {other:?}"),
        }
        // `abandon()` says it explicitly; a release says nothing happened.
        acquire(&store, "explicit").abandon();
        taken_over(&store, "explicit", 2).release()?;
        let third = acquire(&store, "explicit");
        assert!(!third.recovered(), "{mode}: after a release nothing needs reconciling");
        assert_eq!(store.stats().namespaces["test"].abandons, 2, "{mode}");
        drop(third);
    }
    Ok(())
}

#[test]
fn an_early_return_with_question_mark_abandons() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let handler = |store: &Store| -> Result<(), Error> {
        let guard = acquire(store, "early");
        let _ = guard.token();
        Err(Error::Closed)?; // a failing downstream call, say
        guard.complete(b"never")
    };
    assert!(handler(&store).is_err());
    drop(taken_over(&store, "early", 2));
    Ok(())
}

#[test]
fn a_panic_while_holding_the_guard_abandons_and_keeps_unwinding() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let s = store.clone();
    let panicked = std::thread::spawn(move || {
        let _guard = acquire(&s, "panic");
        panic!("the handler crashed");
    })
    .join();
    assert!(panicked.is_err(), "the panic reached the thread's join");
    drop(taken_over(&store, "panic", 2));

    // run_once: the panic resumes unwinding to the caller, the key is free.
    let s = store.clone();
    let unwound = std::panic::catch_unwind(move || {
        let _ = s.run_once(&key("run-once-panic"), None, |_| -> Result<Vec<u8>, Fail<String>> {
            panic!("boom")
        });
    });
    assert!(unwound.is_err());
    let again =
        store.run_once(&key("run-once-panic"), None, |a| -> Result<String, Fail<String>> {
            assert!(a.recovered() && a.number() == 2);
            Ok("second attempt".into())
        })?;
    assert_eq!(again, RunOnce::Ran("second attempt".to_string()));
    Ok(())
}

#[test]
fn a_cancelled_future_abandons_at_every_await_point() -> TestResult {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    for (mode, durability) in modes() {
        let dir = tempfile::tempdir()?;
        let store = idemkv::Config::new().durability(durability).open(dir.path())?;
        rt.block_on(async {
            // Cancelled inside run_once_async's closure.
            let s = store.clone();
            let task = tokio::spawn(async move {
                s.run_once_async(&key("cancel-run"), None, |_| async {
                    std::future::pending::<Result<(), Fail<String>>>().await
                })
                .await
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());

            // A guard held across an await in a handler that is dropped.
            let s = store.clone();
            let handler = async move {
                let guard = s.claim_async(&key("cancel-held"), None).await?.into_guard().unwrap();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                guard.complete_async(b"never").await
            };
            let timed_out = tokio::time::timeout(Duration::from_millis(20), handler).await;
            assert!(timed_out.is_err());

            // Dropped on the first poll, at each of the claim's own awaits:
            // whatever it had reached, the key is never stranded.
            let mut abandoned = 0;
            for i in 0..50 {
                let k = key(format!("cancel-claim-{i}"));
                let fut = store.claim_async(&k, None);
                let _ = tokio::time::timeout(Duration::from_nanos(1 + i * 1_000), fut).await;
                match store.claim_async(&k, None).await.map_err(|e| e.to_string()).unwrap() {
                    Claim::Acquired(g) => {
                        // Either the first claim never happened, or it was
                        // acquired and abandoned by the dropped future.
                        assert_eq!(g.recovered(), g.attempt() == 2, "{mode} {i}");
                        abandoned += usize::from(g.recovered());
                        g.complete(b"ok").unwrap();
                    }
                    other => panic!("{mode} {i}: key stranded: {other:?}"),
                }
            }
            // Durable: the claim awaits its fsync, where the timeout drops it.
            if durability == Durability::Durable {
                assert!(abandoned > 0, "no claim was cancelled after acquiring");
            }
            Ok::<(), Error>(())
        })?;
        for id in ["cancel-run", "cancel-held"] {
            drop(taken_over(&store, id, 2));
        }
    }
    Ok(())
}

#[test]
fn never_two_live_holders_when_holders_drop_panic_or_finish() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open_with(
        dir.path(),
        idemkv::Config::new()
            .durability(Durability::Buffered { max_delay: Duration::from_millis(2) }),
    )?;
    const THREADS: usize = 8;
    const ROUNDS: usize = 300;
    let holders = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, holders, max_seen, barrier) =
                (store.clone(), holders.clone(), max_seen.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut done = 0;
                for r in 0..ROUNDS {
                    let k = key(format!("contended-{}", r % 4));
                    let Ok(Claim::Acquired(g)) = store.claim(&k, None) else { continue };
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    let last = r + 4 >= ROUNDS;
                    let ending = (t + r) % 3;
                    // Count down before the key is given up, whichever way.
                    holders.fetch_sub(1, Ordering::SeqCst);
                    match ending {
                        0 if last => g.complete(b"done").map(|_| done += 1).unwrap_or(()),
                        0 | 1 => drop(g),
                        _ => {
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                let _g = g;
                                panic!("holder {t} crashed");
                            }));
                            assert!(r.is_err());
                        }
                    }
                }
                done
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker");
    }
    // Holders per key, not overall: 4 keys may have 4 holders at once.
    assert!(max_seen.load(Ordering::SeqCst) <= 4);
    for i in 0..4 {
        let k = key(format!("contended-{i}"));
        match store.get(&k)?.map(|e| e.state) {
            Some(EntryState::InProgress { orphaned: true, .. } | EntryState::Finished(_))
            | None => {}
            other => panic!("{k}: {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn never_two_live_holders_of_one_key() -> TestResult {
    // One key, many claimers: the holder count of that key never exceeds 1.
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let holders = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let (store, holders) = (store.clone(), holders.clone());
            std::thread::spawn(move || {
                for r in 0..200 {
                    if let Ok(Claim::Acquired(g)) = store.claim(&key("one"), None) {
                        assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two live holders");
                        std::thread::yield_now();
                        holders.fetch_sub(1, Ordering::SeqCst);
                        if (t + r) % 2 == 0 {
                            drop(g);
                        } else {
                            g.release().expect("release");
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker");
    }
    Ok(())
}

#[test]
fn an_abandoned_holder_cannot_finish_after_a_takeover() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let lease = acquire(&store, "late").into_lease();
    store.abandon(&lease);
    let next = taken_over(&store, "late", 2);
    let err = store.complete(&lease, b"late").unwrap_err();
    assert!(matches!(err, Error::StaleLease { reason: StaleReason::Superseded { .. }, .. }));
    // A re-adopted stale lease is still fenced; its drop changes nothing.
    let adopted = store.adopt(lease.clone())?;
    assert!(matches!(adopted.complete(b"late"), Err(Error::StaleLease { .. })));
    drop(store.adopt(lease)?);
    next.complete(b"winner")?;
    match store.claim(&key("late"), None)? {
        Claim::Replay(r) => assert_eq!(r.response(), b"winner"),
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn wait_wakes_when_the_holder_abandons() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let guard = acquire(&store, "waited");
    let s = store.clone();
    let waiter = std::thread::spawn(move || s.wait(&key("waited"), None, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(50));
    drop(guard);
    match waiter.join().expect("waiter")? {
        Claim::Acquired(g) => assert!(g.recovered() && g.attempt() == 2),
        other => panic!("expected the waiter to take over, got {other:?}"),
    }
    Ok(())
}

#[test]
fn dropping_a_guard_after_close_or_across_a_restart_is_harmless() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let guard = acquire(&store, "closed");
    store.clone().close()?;
    drop(guard); // no panic, no error: the store is closed
    drop(store);
    let store = Store::open(dir.path())?;
    drop(taken_over(&store, "closed", 2)); // orphaned by the restart instead
    // An abandon made durable survives a restart as an orphan too.
    let g = acquire(&store, "restart");
    drop(g);
    store.flush()?;
    store.close()?;
    let store = Store::open(dir.path())?;
    drop(taken_over(&store, "restart", 2));
    Ok(())
}
