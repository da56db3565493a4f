//! Guards the poisoned store's sweep: `Store::sweep` on a poisoned store returns `Error::Poisoned` before changing anything — no delete journaled, no expiry counted, every `get` answer as before — and nothing acknowledged is lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::faults::{Fault, FaultyFs};
use common::{TestResult, acquire, key, mock_clock, mock_config};
use idemkv::{Claim, ClaimOptions, Store};

/// What `get` answers, comparable: the state's debug form, `None` or the error kind.
fn answer(store: &Store, id: &str) -> String {
    match store.get(&key(id)) {
        Ok(Some(e)) => format!("{:?}", e.state),
        Ok(None) => "none".into(),
        Err(e) if e.is_poisoned() => "poisoned".into(),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn sweep_on_a_poisoned_store_refuses_before_changing_anything() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let clock = mock_clock();
    let fs = FaultyFs::new(Fault::None);
    let store = mock_config(&clock).journal_fs(Arc::new(fs.clone())).open(dir.path())?;
    let short =
        ClaimOptions::new().lease(Duration::from_secs(1)).retention(Duration::from_secs(10));
    let kept = acquire(&store, &key("kept"), None)?;
    store.complete(&kept, b"kept")?;
    let Claim::Acquired(l) = store.claim_with(&key("expiring"), None, &short)? else {
        panic!("a new key is acquired");
    };
    let l = l.into_lease();
    store.complete(&l, b"short-lived")?;
    // The next journal write fails: the store is poisoned, and this claim
    // stays pending in memory, never durable.
    fs.arm(Fault::FailWrite(fs.writes() + 1));
    let doomed = store.claim_with(&key("doomed"), None, &short);
    assert!(doomed.as_ref().is_err_and(|e| e.is_poisoned()), "{doomed:?}");
    clock.advance(Duration::from_secs(60)); // "expiring" and "doomed" have expired

    let ids = ["kept", "expiring", "doomed", "never"];
    let before: Vec<String> = ids.iter().map(|id| answer(&store, id)).collect();
    let expirations = |s: &Store| s.stats().namespaces.get(common::NS).map_or(0, |n| n.expirations);
    let counted = expirations(&store);

    let swept = store.sweep();
    assert!(swept.as_ref().is_err_and(|e| e.is_poisoned()), "sweep: {swept:?}");
    let after: Vec<String> = ids.iter().map(|id| answer(&store, id)).collect();
    assert_eq!(after, before, "get answers changed");
    assert_eq!(expirations(&store), counted, "sweep counted expiries it refused to remove");
    // Refused again, the same way, and still nothing changes.
    assert!(store.sweep().is_err_and(|e| e.is_poisoned()));
    assert_eq!(expirations(&store), counted);
    let _ = store.close();

    // Reopened: the acknowledged completion is there.
    let store = mock_config(&clock).open(dir.path())?;
    match store.claim(&key("kept"), None)? {
        Claim::Replay(r) => assert_eq!(r.response(), b"kept"),
        other => panic!("acknowledged completion lost: {other:?}"),
    }
    store.close()?;
    Ok(())
}
