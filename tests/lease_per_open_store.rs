//! Guards lease identity: a lease is valid only with the open store that issued it — a copy of the data directory (`cp -a`), another directory, or the same directory closed and reopened answers `StaleLease { reason: OtherStore }` and changes nothing.

mod common;

use common::{TestResult, acquire, key, mock_clock, mock_config};
use idemkv::{EntryState, Error, Lease, StaleReason, Store};

#[track_caller]
fn other_store(res: idemkv::Result<()>) {
    match res {
        Err(e @ Error::StaleLease { reason: StaleReason::OtherStore, .. }) => {
            assert!(e.to_string().contains("another store"), "{e}");
        }
        other => panic!("expected StaleLease OtherStore, got {other:?}"),
    }
}

/// The token of the claim in progress on `id`, or `None` if it is not in progress.
fn holder(store: &Store, id: &str) -> TestResult<Option<u64>> {
    Ok(match store.get(&key(id))?.map(|e| e.state) {
        Some(EntryState::InProgress { token, .. }) => Some(token),
        _ => None,
    })
}

fn every_refusal(store: &Store, lease: &Lease) {
    other_store(store.complete(lease, b"x"));
    other_store(store.fail(lease, idemkv::Failure::Retryable));
    other_store(store.release(lease));
    let mut copy = lease.clone();
    other_store(store.extend(&mut copy, std::time::Duration::from_secs(1)));
}

#[test]
fn a_copy_of_the_directory_refuses_the_originals_leases_and_vice_versa() -> TestResult {
    let _serial = common::serial();
    let clock = mock_clock();
    let a_dir = common::fast_tempdir()?;
    let a = mock_config(&clock).open(a_dir.path())?;
    let la1 = acquire(&a, &key("one"), None)?;
    let la2 = acquire(&a, &key("two"), None)?;
    a.checkpoint()?;
    // `cp -a` of the live directory, then both opened.
    let b_dir = common::fast_tempdir()?;
    common::copy_dir(a_dir.path(), b_dir.path())?;
    let b = mock_config(&clock).open(b_dir.path())?;

    // The original's lease is refused by the copy, which holds the same
    // record (orphaned there) under the same token.
    every_refusal(&b, &la1);
    assert_eq!(holder(&b, "one")?, Some(la1.token()), "the copy's record is unchanged");

    // The copy re-acquires the orphan; its lease is refused by the original,
    // whose own claim stays in place and still completes.
    let lb2 = acquire(&b, &key("two"), None)?;
    every_refusal(&a, &lb2);
    assert_eq!(holder(&a, "two")?, Some(la2.token()), "the original's claim is unchanged");
    a.complete(&la2, b"done by the original")?;
    b.complete(&lb2, b"done by the copy")?;
    a.complete(&la1, b"one")?;
    a.close()?;
    b.close()?;
    Ok(())
}

#[test]
fn a_lease_does_not_survive_close_and_reopen() -> TestResult {
    let _serial = common::serial();
    let clock = mock_clock();
    let dir = common::fast_tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    let lease = acquire(&store, &key("k"), None)?;
    store.close()?;
    let store = mock_config(&clock).open(dir.path())?;
    every_refusal(&store, &lease);
    match store.get(&key("k"))?.map(|e| e.state) {
        Some(EntryState::InProgress { token, orphaned: true, .. }) => {
            assert_eq!(token, lease.token(), "nothing changed: still the old, orphaned claim");
        }
        other => panic!("expected the orphaned claim, got {other:?}"),
    }
    // The key is claimed again the supported way: as an orphan.
    let again = acquire(&store, &key("k"), None)?;
    assert!(again.recovered() && again.token() > lease.token());
    store.complete(&again, b"redone")?;
    store.close()?;
    Ok(())
}

#[test]
fn another_directory_refuses_the_lease() -> TestResult {
    let _serial = common::serial();
    let (a_dir, b_dir) = (common::fast_tempdir()?, common::fast_tempdir()?);
    let a = Store::open(a_dir.path())?;
    let b = Store::open(b_dir.path())?;
    let lease = acquire(&a, &key("k"), None)?;
    let _in_b = acquire(&b, &key("k"), None)?;
    every_refusal(&b, &lease);
    a.complete(&lease, b"v")?;
    Ok(())
}
