//! The async API on a small tokio runtime (2 workers, a blocking pool of 4):
//! 1,000 duplicates wait for one holder without a thread each, and every
//! one gets the replay; claims and completions await their fsync.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestResult, key};
use idemkv::{Claim, Durability, Fail, RunOnce, Store};

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
}

#[test]
fn a_thousand_async_waiters_all_get_the_replay() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?; // Durable
    let rt = runtime()?;
    let replays = rt.block_on(async {
        let holder = match store.claim_async(&key("storm"), None).await? {
            Claim::Acquired(g) => g,
            other => panic!("{other:?}"),
        };
        let waiters: Vec<_> = (0..1_000)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.wait_async(&key("storm"), None, Duration::from_secs(30)).await
                })
            })
            .collect();
        // Every waiter is parked on the key (none holds a thread): the two
        // workers are free to run the holder.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        holder.complete_async(b"the one answer").await?;
        let mut replays = 0;
        for w in waiters {
            match w.await.expect("waiter task")? {
                Claim::Replay(r) => {
                    assert_eq!(r.response(), b"the one answer");
                    replays += 1;
                }
                other => panic!("a waiter got {other:?}"),
            }
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no waiter may time out");
        Ok::<_, idemkv::Error>(replays)
    })?;
    assert_eq!(replays, 1_000);
    assert_eq!(store.stats().namespaces["test"].waits, 1_000);
    Ok(())
}

#[test]
fn async_waiters_time_out_without_blocking_and_wake_at_the_lease_end() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = idemkv::Config::new()
        .namespace("test", idemkv::Policy::default().lease(Duration::from_millis(300)));
    let store = config.open(dir.path())?;
    let rt = runtime()?;
    rt.block_on(async {
        let _holder = store.claim_async(&key("slow"), None).await?.into_lease();
        // A short timeout answers InFlight, on time.
        let t = Instant::now();
        let c = store.wait_async(&key("slow"), None, Duration::from_millis(50)).await?;
        assert!(matches!(c, Claim::InFlight { .. }), "{c:?}");
        assert!(t.elapsed() >= Duration::from_millis(50));
        // A long one wakes at the holder's lease end (a timer, not a
        // transition) and takes the orphan over.
        let c = store.wait_async(&key("slow"), None, Duration::from_secs(30)).await?;
        match c {
            Claim::Acquired(g) => {
                assert!(g.recovered());
                g.complete_async(b"taken over").await?;
            }
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(5));
        Ok::<_, idemkv::Error>(())
    })?;
    Ok(())
}

#[test]
fn async_run_once_in_many_tasks_runs_each_key_once() -> TestResult {
    for durability in [Durability::Durable, common::buffered()] {
        let dir = tempfile::tempdir()?;
        let store = idemkv::Config::new().durability(durability).open(dir.path())?;
        let rt = runtime()?;
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        rt.block_on(async {
            let tasks: Vec<_> = (0..400)
                .map(|i| {
                    let (store, runs) = (store.clone(), runs.clone());
                    tokio::spawn(async move {
                        let k = key(format!("k{}", i % 50));
                        let options = idemkv::ClaimOptions::new().wait(Duration::from_secs(30));
                        store
                            .run_once_with_async(&k, None, &options, |a| async move {
                                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                tokio::task::yield_now().await;
                                Ok::<String, Fail<String>>(format!("{}", a.key()))
                            })
                            .await
                    })
                })
                .collect();
            for (i, t) in tasks.into_iter().enumerate() {
                match t.await.expect("task")? {
                    RunOnce::Ran(v) | RunOnce::Replayed(v) => {
                        assert_eq!(v, format!("test:k{}", i % 50))
                    }
                    other => panic!("{other:?}"),
                }
            }
            Ok::<_, idemkv::Error>(())
        })?;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 50, "once per key");
        rt.block_on(store.flush_async())?;
    }
    Ok(())
}
