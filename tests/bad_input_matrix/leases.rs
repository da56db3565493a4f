//! Stale leases: of other keys, of other stores, already used.

use std::time::Duration;

use idemkv::{Claim, Config, Error, Failure, StaleReason, Store};

use crate::common::{self, TestResult, acquire};
use crate::{mkey, refused, stale, still_there, store_with_sentinel};

#[test]
fn leases_of_other_keys_or_other_stores_and_used_leases_are_stale() -> TestResult {
    let _serial = common::serial();
    let (_a_dir, a) = store_with_sentinel(Config::new())?;
    let (_b_dir, b) = store_with_sentinel(Config::new())?;
    // A lease from store B, whatever the key, is refused by store A.
    let foreign = acquire(&b, &mkey("only-in-b"), None)?;
    let e = refused(
        a.complete(&foreign, b"x"),
        stale,
        &["stale lease", "m:only-in-b", "another store"],
    );
    assert!(matches!(e, Error::StaleLease { reason: StaleReason::OtherStore, .. }));
    assert!(a.get(&mkey("only-in-b"))?.is_none(), "nothing was stored");
    let _skip = acquire(&b, &mkey("burn-a-token"), None)?;
    let in_b = acquire(&b, &mkey("both"), None)?;
    let in_a = acquire(&a, &mkey("both"), None)?;
    let e = refused(a.complete(&in_b, b"x"), stale, &["another store"]);
    assert!(matches!(e, Error::StaleLease { reason: StaleReason::OtherStore, .. }));
    // A lease of this store for a key held under a newer token: Superseded.
    let held = acquire(&a, &mkey("held"), None)?;
    a.release(&held)?;
    let newer = acquire(&a, &mkey("held"), None)?;
    let e = refused(a.complete(&held, b"x"), stale, &["re-acquired by a newer claim"]);
    assert!(
        matches!(e, Error::StaleLease { reason: StaleReason::Superseded { current }, .. } if current == newer.token())
    );
    a.complete(&in_a, b"mine")?;
    // A used lease: every transition after its completion is Finished.
    let e = refused(a.complete(&in_a, b"again"), stale, &["already finished", "do not report"]);
    assert!(matches!(e, Error::StaleLease { reason: StaleReason::Finished, .. }));
    refused(a.fail(&in_a, Failure::Retryable), stale, &["already finished"]);
    refused(a.release(&in_a), stale, &["already finished"]);
    refused(a.extend(&mut in_a.clone(), Duration::from_secs(1)), stale, &["already finished"]);
    assert!(matches!(a.claim(&mkey("both"), None)?, Claim::Replay(r) if r.response() == b"mine"));
    // A lease given back, then the key re-acquired: Superseded.
    let first = acquire(&a, &mkey("again"), None)?;
    a.fail(&first, Failure::Retryable)?;
    let second = acquire(&a, &mkey("again"), None)?;
    let e = refused(a.complete(&first, b"old"), stale, &["re-acquired"]);
    assert!(
        matches!(e, Error::StaleLease { reason: StaleReason::Superseded { current }, .. } if current == second.token())
    );
    a.complete(&second, b"new")?;
    still_there(&a)?;
    still_there(&b)
}

#[test]
fn a_lease_from_another_store_with_an_equal_token_is_stale() -> TestResult {
    let _serial = common::serial();
    let (a_dir, b_dir) = (common::fast_tempdir()?, common::fast_tempdir()?);
    let (a, b) = (Store::open(a_dir.path())?, Store::open(b_dir.path())?);
    let in_a = acquire(&a, &mkey("k"), None)?;
    let in_b = acquire(&b, &mkey("k"), None)?;
    assert_eq!(in_a.token(), in_b.token(), "both fresh stores issue the same first token");
    let res = a.complete(&in_b, b"written through store B's lease");
    assert!(matches!(res, Err(Error::StaleLease { .. })), "store A accepted B's lease: {res:?}");
    Ok(())
}
