//! Guards `import` against finishing another store's record through a local lease: importing over a key that this store has claimed (held, or orphaned but still completable) is refused with `Error::Conflict` and changes nothing, so the local holder completes its own claim; once that claim is finished, the import goes through.

mod common;

use common::{TestResult, acquire, key};
use idemkv::{Claim, Error, ExportedRecord, Fingerprint, Store};

#[test]
fn importing_over_a_claim_in_flight_is_refused() -> TestResult {
    // Store A: a claim of key k, exported (its token is 1 in a fresh store).
    let a_dir = tempfile::tempdir()?;
    let a = Store::open(a_dir.path())?;
    let k = key("evt_1");
    let _held_in_a = acquire(&a, &k, Fingerprint::of(b"x"))?;
    let mut exported: Vec<ExportedRecord> = Vec::new();
    a.export(|r| {
        exported.push(r);
        Ok(())
    })?;
    // Store B: its own claim of k, with the same token by coincidence.
    let b_dir = tempfile::tempdir()?;
    let b = Store::open(b_dir.path())?;
    let lease = acquire(&b, &k, Fingerprint::of(b"other"))?;
    match b.import(&exported[0]) {
        Err(Error::Conflict { reason }) => assert!(reason.contains("claimed"), "{reason}"),
        other => panic!("import over a claim in flight: {other:?}"),
    }
    // Nothing changed: B's holder completes its own record.
    b.complete(&lease, b"holder-body")?;
    match b.claim(&k, Fingerprint::of(b"other"))? {
        Claim::Replay(r) => assert_eq!(r.response(), b"holder-body"),
        other => panic!("{other:?}"),
    }
    // A finished key may be replaced by an import (an operator's restore):
    // the imported claim is another store's, so an orphan here.
    b.import(&exported[0])?;
    match b.claim(&k, Fingerprint::of(b"x"))? {
        Claim::Acquired(l) => assert!(l.recovered() && l.token() > lease.token()),
        other => panic!("the imported claim: {other:?}"),
    }
    Ok(())
}
