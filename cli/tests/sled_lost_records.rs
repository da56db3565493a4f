//! Guards the record count behind sled's marker: when sled loses records (or gains some) while its marker stays intact — damage the open-time checks cannot see — the audit after open and `Store::verify` find the count wrong, the store refuses to serve (no completed key answers `Acquired`), and every later open refuses with `Error::Corrupt` naming the loss and the recovery; after an unclean end the count is rebuilt instead (the store serves on) and `verify` reports the rebuild, so `idemkv verify --strict` fails.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestResult, acquire, crc32};
use idemkv::{Claim, Config, Durability, Error, Key};

const KEYS: usize = 50;

fn key(i: usize) -> Key {
    Key::new("pay", format!("evt_{i:03}")).expect("valid key")
}

fn config() -> Config {
    Config::new()
        .durability(Durability::Buffered { max_delay: Duration::from_millis(2) })
        .sweep_interval(None)
}

/// A closed store with `KEYS` completed keys.
fn populated(dir: &Path) -> TestResult {
    let store = config().open(dir)?;
    for i in 0..KEYS {
        let lease = acquire(&store, &key(i), None)?;
        store.complete(&lease, format!("r{i}").as_bytes())?;
    }
    store.close()?;
    Ok(())
}

/// Changes sled behind the store's back, with sled itself: removes the
/// record of key 7 (`lose`) or adds a record nobody wrote.
fn tamper(dir: &Path, lose: bool) -> TestResult {
    let db = sled::open(dir.join("sled"))?;
    let mut raw = vec![b'r'];
    if lose {
        raw.extend_from_slice(key(7).as_raw());
        assert!(db.remove(raw)?.is_some(), "key 7 was in sled");
    } else {
        raw.extend_from_slice(Key::new("pay", "stray")?.as_raw());
        let copy = db.get([&[b'r'][..], key(8).as_raw()].concat())?.ok_or("no key 8")?;
        db.insert(raw, copy)?;
    }
    db.flush()?;
    Ok(())
}

fn refused_for_loss(e: &Error, words: &str) {
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Corrupt { .. } | Error::Poisoned { .. }) && msg.contains(words),
        "expected a refusal naming {words:?}, got {e:?}"
    );
}

#[test]
fn verify_finds_a_lost_record_and_the_store_then_refuses() -> TestResult {
    for lose in [true, false] {
        let dir = tempfile::tempdir()?;
        populated(dir.path())?;
        tamper(dir.path(), lose)?;
        let words = if lose { "1 record(s) were lost" } else { "more than written" };
        // The marker itself is intact: open accepts the store.
        let store = config().open(dir.path())?;
        let report = store.verify()?;
        assert_eq!(report.expected_records, Some(KEYS as u64));
        assert!(!report.is_ok(), "{report:?}");
        assert!(report.lost.as_deref().is_some_and(|l| l.contains(words)), "{report:?}");
        // From now on nothing is served, so key 7 cannot be acquired again.
        match store.claim(&key(7), None) {
            Err(e) => refused_for_loss(&e, words),
            Ok(other) => panic!("served after the loss was found: {other:?}"),
        }
        drop(store);
        let e = config().open(dir.path()).expect_err("reopening a store that lost records");
        refused_for_loss(&e, "earlier count");
        assert!(e.to_string().contains("idemkv import"), "{e}");
    }
    Ok(())
}

#[test]
fn the_audit_after_open_finds_a_lost_record_by_itself() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    tamper(dir.path(), true)?;
    let store = config().open(dir.path())?;
    // The other keys replay at once; key 7, found nowhere, waits for the
    // audit that runs right after open, which refuses it.
    assert!(matches!(store.claim(&key(8), None)?, Claim::Replay(_)));
    match store.claim(&key(7), None) {
        Err(e) => refused_for_loss(&e, "1 record(s) were lost"),
        Ok(other) => panic!("a lost completed key was served: {other:?}"),
    }
    match store.get(&key(7)) {
        Err(e) => refused_for_loss(&e, "1 record(s) were lost"),
        Ok(other) => panic!("a lost completed key was read as {other:?}"),
    }
    drop(store);
    let e = config().open(dir.path()).expect_err("reopening a store that lost records");
    refused_for_loss(&e, "earlier count");
    Ok(())
}

/// Marks the closed store at `dir` as not closed cleanly (META flag bit 2
/// at offset 48; crc32 of [0, 68) at 68), as a crash would leave it.
fn mark_unclean(dir: &Path) -> TestResult {
    let path = dir.join("META");
    let mut meta = std::fs::read(&path)?;
    meta[48] |= 4;
    let sum = crc32(&meta[..68]);
    meta[68..72].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(path, meta)?;
    Ok(())
}

#[test]
fn after_an_unclean_end_a_changed_count_is_rebuilt_and_reported() -> TestResult {
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    tamper(dir.path(), true)?;
    mark_unclean(dir.path())?;
    let store = config().open(dir.path())?;
    // Served (the count cannot tell a partly applied batch from a loss)...
    assert!(matches!(store.claim(&key(8), None)?, Claim::Replay(_)));
    // ...but reported.
    let report = store.verify()?;
    assert!(report.lost.is_none() && report.is_ok(), "{report:?}");
    let rebuilt = report.rebuilt.as_deref().ok_or("the rebuild is not reported")?;
    assert!(rebuilt.contains(&format!("counted {KEYS}")), "{rebuilt}");
    store.close()?;
    // The CLI, on a store in the same state: `verify --strict` fails on it.
    let dir = tempfile::tempdir()?;
    populated(dir.path())?;
    tamper(dir.path(), true)?;
    mark_unclean(dir.path())?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .arg("--path")
        .arg(dir.path())
        .args(["verify", "--strict"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("count rebuilt"), "{text}");
    Ok(())
}
