//! Guards the operator's way out of a refused store: `Config::accept_sled_as_is(true)` opens a store whose `sled/` was deleted, replaced by an older copy or found short of records, rebuilds sled's marker from what is there, serves every record that survived, and from then on the store opens normally and checks sled again — the records that were lost stay lost (their keys acquire again), as documented; the CLI's `--accept-sled-as-is` exports what a refused store holds.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestResult, acquire};
use idemkv::{Claim, Config, Durability, Error, Key};

fn key(i: usize) -> Key {
    Key::new("pay", format!("evt_{i:03}")).expect("valid key")
}

fn config() -> Config {
    Config::new()
        .durability(Durability::Buffered { max_delay: Duration::from_millis(2) })
        .sweep_interval(None)
}

fn complete(dir: &Path, from: usize, to: usize) -> TestResult {
    let store = config().open(dir)?;
    for i in from..to {
        let lease = acquire(&store, &key(i), None)?;
        store.complete(&lease, format!("r{i}").as_bytes())?;
    }
    store.close()?;
    Ok(())
}

/// A closed store that completed keys `0..2n`, whose `sled/` was then
/// replaced by a copy taken after the first `n`.
fn store_with_older_sled(n: usize) -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let older = tempfile::tempdir()?;
    complete(dir.path(), 0, n)?;
    common::copy_dir(&dir.path().join("sled"), older.path())?;
    complete(dir.path(), n, 2 * n)?;
    std::fs::remove_dir_all(dir.path().join("sled"))?;
    common::copy_dir(older.path(), &dir.path().join("sled"))?;
    Ok(dir)
}

#[test]
fn an_older_sled_accepted_as_is_serves_what_it_holds_and_is_checked_again() -> TestResult {
    let dir = store_with_older_sled(10)?;

    let refused = config().open(dir.path()).expect_err("an older sled is refused");
    assert!(matches!(refused, Error::Corrupt { .. }), "{refused:?}");
    assert!(refused.to_string().contains("accept_sled_as_is"), "{refused}");

    let store = config().accept_sled_as_is(true).open(dir.path())?;
    for i in 0..10 {
        assert!(matches!(store.claim(&key(i), None)?, Claim::Replay(_)), "key {i} survived");
    }
    // What the older copy lacks is gone, as the option says.
    let lease = acquire(&store, &key(15), None)?;
    store.complete(&lease, b"again")?;
    let report = store.verify()?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.expected_records, Some(11));
    store.close()?;

    // Accepted once: later opens check sled again, and find it whole.
    let store = config().open(dir.path())?;
    assert!(matches!(store.claim(&key(15), None)?, Claim::Replay(r) if r.response() == b"again"));
    store.close()?;
    Ok(())
}

#[test]
fn a_deleted_sled_accepted_as_is_opens_empty() -> TestResult {
    let dir = tempfile::tempdir()?;
    complete(dir.path(), 0, 5)?;
    std::fs::remove_dir_all(dir.path().join("sled"))?;
    assert!(config().open(dir.path()).is_err(), "a deleted sled is refused");
    let store = config().accept_sled_as_is(true).open(dir.path())?;
    assert!(matches!(store.claim(&key(0), None)?, Claim::Acquired(_)));
    Ok(())
}

/// The CLI's way out: `--accept-sled-as-is` lets `idemkv export` read what a
/// refused store still holds.
#[test]
fn the_cli_exports_what_a_refused_store_holds() -> TestResult {
    let dir = store_with_older_sled(3)?;
    let bin = env!("CARGO_BIN_EXE_idemkv");
    let run = |extra: &[&str]| {
        std::process::Command::new(bin).arg("--path").arg(dir.path()).args(extra).output()
    };
    let refused = run(&["export"])?;
    assert!(!refused.status.success(), "export of a refused store succeeded");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("sled"));
    let out = run(&["--accept-sled-as-is", "export"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8(out.stdout)?;
    assert_eq!(lines.lines().count(), 3, "the three records the older sled/ holds: {lines}");
    Ok(())
}
