//! A batch of claims, and a batch of completions, costs one journal fsync
//! in `Durable` mode (counted through the journal's file seam), with
//! per-item answers.

mod common;

use common::faults::{Fault, FaultyFs};
use common::{TestResult, key};
use idemkv::{Claim, Config, Fingerprint, Guard};

fn open(dir: &std::path::Path, fs: &FaultyFs) -> idemkv::Result<idemkv::Store> {
    Config::new()
        .journal_fs(std::sync::Arc::new(fs.clone()))
        .sweep_interval(None)
        .checkpoint_interval(None)
        .open(dir)
}

#[test]
fn a_batch_of_100_claims_and_100_completions_costs_one_fsync_each() -> TestResult {
    let dir = tempfile::tempdir()?;
    let fs = FaultyFs::new(Fault::None);
    let store = open(dir.path(), &fs)?;
    let keys: Vec<_> = (0..100).map(|i| key(format!("m{i}"))).collect();
    for round in 0..3 {
        let ids: Vec<_> = keys.iter().map(|k| key(format!("{round}-{}", k))).collect();
        let before = fs.syncs();
        let answers = store.claim_batch(ids.iter().map(|k| (k, Some(Fingerprint::of(k.id())))))?;
        assert_eq!(fs.syncs() - before, 1, "round {round}: claims");
        let guards: Vec<Guard> = answers
            .into_iter()
            .map(|a| a.expect("claim").into_guard().expect("acquired"))
            .collect();
        assert_eq!(guards.len(), 100);
        let before = fs.syncs();
        let done = store.complete_batch(guards.into_iter().map(|g| {
            let body = format!("done {}", g.key());
            (g, body)
        }))?;
        assert_eq!(fs.syncs() - before, 1, "round {round}: completions");
        assert!(done.iter().all(Result::is_ok));
        // One at a time, the same 100 would take 100 fsyncs.
        let again = store.claim_batch(ids.iter().map(|k| (k, None)))?;
        for (k, a) in ids.iter().zip(again) {
            match a? {
                Claim::Replay(r) => assert_eq!(r.response(), format!("done {k}").as_bytes()),
                other => panic!("{k}: {other:?}"),
            }
        }
    }
    Ok(())
}

#[test]
fn batch_answers_are_per_item() -> TestResult {
    let dir = tempfile::tempdir()?;
    let fs = FaultyFs::new(Fault::None);
    let store = open(dir.path(), &fs)?;
    let held = store.claim(&key("held"), None)?.into_guard().expect("acquired");
    store
        .claim(&key("done"), Fingerprint::of(b"a"))?
        .into_guard()
        .expect("acquired")
        .complete(b"r")?;
    let (new, dup) = (key("new"), key("new"));
    let (heldk, done) = (key("held"), key("done"));
    let answers = store.claim_batch([
        (&new, None),
        (&dup, None), // the same key twice: the first claim holds it
        (&heldk, None),
        (&done, Some(Fingerprint::of(b"a"))),
        (&done, Some(Fingerprint::of(b"other"))),
    ])?;
    let kinds: Vec<&str> = answers
        .iter()
        .map(|a| match a.as_ref().expect("answer") {
            Claim::Acquired(_) => "acquired",
            Claim::InFlight { .. } => "in_flight",
            Claim::Replay(_) => "replay",
            Claim::Mismatch { .. } => "mismatch",
        })
        .collect();
    assert_eq!(kinds, ["acquired", "in_flight", "in_flight", "replay", "mismatch"]);
    // A completion batch with a stale guard: that item fails, the others land.
    let new_guard = answers.into_iter().next().unwrap()?.into_guard().unwrap();
    let stale = store.adopt(held.lease().clone())?;
    held.complete(b"first")?;
    let results = store.complete_batch([(new_guard, &b"n"[..]), (stale, &b"late"[..])])?;
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(idemkv::Error::StaleLease { .. })), "{results:?}");
    // Batches never wait.
    let waiting = idemkv::ClaimOptions::new().wait(std::time::Duration::from_secs(1));
    assert!(matches!(
        store.claim_batch_with([(&new, None)], &waiting),
        Err(idemkv::Error::InvalidConfig { .. })
    ));
    Ok(())
}

#[test]
fn an_async_batch_awaits_one_fsync() -> TestResult {
    let dir = tempfile::tempdir()?;
    let fs = FaultyFs::new(Fault::None);
    let store = open(dir.path(), &fs)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let ids: Vec<_> = (0..100).map(|i| key(format!("a{i}"))).collect();
        let before = fs.syncs();
        let answers = store.claim_batch_async(ids.iter().map(|k| (k, None))).await?;
        assert_eq!(fs.syncs() - before, 1);
        let guards = answers.into_iter().map(|a| (a.unwrap().into_guard().unwrap(), &b"ok"[..]));
        let before = fs.syncs();
        store.complete_batch_async(guards).await?;
        assert_eq!(fs.syncs() - before, 1);
        Ok::<_, idemkv::Error>(())
    })?;
    Ok(())
}
