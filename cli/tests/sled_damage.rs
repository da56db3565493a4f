//! Guards against silently forgotten completions when sled's files are damaged or missing: for each damage (sled/db truncated at several offsets, zeroed, overwritten with garbage in whole or in part, deleted; sled/conf or the snapshots deleted; the whole sled/ directory deleted; sled/ replaced by an older copy, by another store's, or by a copy's that was opened on its own and went further) the store either refuses to open with a typed error that says how to recover, or opens and replays every acknowledged completion — never answers `Acquired` for a completed key — and `idemkv verify --strict` fails whenever the store refuses.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestResult, acquire};
use idemkv::{Claim, Config, Durability, Error, Key, Store};

const NS: &str = "pay";
/// Enough records for sled to write several pages.
const KEYS: usize = 400;

fn key(i: usize) -> Key {
    Key::new(NS, format!("evt_{i:04}")).expect("valid key")
}

fn response(i: usize) -> Vec<u8> {
    format!("charged {i} {}", "x".repeat(64)).into_bytes()
}

fn config() -> Config {
    Config::new()
        .durability(Durability::Buffered { max_delay: std::time::Duration::from_millis(2) })
        .sweep_interval(None)
}

/// Completes keys `from..to` in the store at `dir`, then closes it (which
/// checkpoints: the journal is empty afterwards, sled holds everything).
fn complete(dir: &Path, from: usize, to: usize) -> TestResult {
    let store = config().open(dir)?;
    for i in from..to {
        let lease = acquire(&store, &key(i), None)?;
        store.complete(&lease, &response(i))?;
    }
    store.close()?;
    Ok(())
}

/// What opening a damaged store did.
enum Outcome {
    /// Open failed with this error.
    Refused(Error),
    /// Open succeeded and every completed key replayed.
    Served,
}

/// Opens the damaged store and checks every acknowledged completion.
fn check(dir: &Path, case: &str) -> TestResult<Outcome> {
    let opened = std::panic::catch_unwind(|| config().open(dir));
    let store = match opened {
        Err(_) => return Err(format!("{case}: open panicked").into()),
        Ok(Err(e)) => return Ok(Outcome::Refused(e)),
        Ok(Ok(store)) => store,
    };
    let mut errors = 0;
    for i in 0..KEYS {
        match store.claim(&key(i), None) {
            Ok(Claim::Replay(r)) if r.response() == response(i) => {}
            // An error is not silent: the caller retries or alerts.
            Err(_) => errors += 1,
            Ok(other) => {
                return Err(format!("{case}: completed key {i} forgotten: {other:?}").into());
            }
        }
    }
    if errors == 0 {
        let report = store.verify()?;
        if !report.is_ok() {
            return Err(format!("{case}: every key replays, yet verify says {report:?}").into());
        }
    }
    drop(store);
    Ok(Outcome::Served)
}

fn sled_db(dir: &Path) -> PathBuf {
    dir.join("sled").join("db")
}

/// A deterministic byte stream for "garbage".
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

type Damage = Box<dyn Fn(&Path) -> std::io::Result<()>>;

fn damages(db_len: u64) -> Vec<(String, Damage)> {
    let mut out: Vec<(String, Damage)> = Vec::new();
    for (name, at) in [
        ("0", 0),
        ("4 KiB", 4096),
        ("a quarter", db_len / 4),
        ("half", db_len / 2),
        ("three quarters", db_len * 3 / 4),
        ("all but one byte", db_len - 1),
    ] {
        out.push((
            format!("sled/db truncated to {name} ({at} of {db_len} bytes)"),
            Box::new(move |d: &Path| {
                fs::OpenOptions::new().write(true).open(sled_db(d))?.set_len(at)
            }),
        ));
    }
    out.push((
        "sled/db zeroed".into(),
        Box::new(move |d: &Path| fs::write(sled_db(d), vec![0u8; db_len as usize])),
    ));
    out.push((
        "sled/db overwritten with garbage".into(),
        Box::new(move |d: &Path| fs::write(sled_db(d), garbage(db_len as usize, 7))),
    ));
    for (name, at) in [("start", 0), ("middle", db_len / 2), ("end", db_len.saturating_sub(8192))] {
        for (what, zero) in [("zeroed", true), ("garbage", false)] {
            out.push((
                format!("8 KiB of sled/db at its {name} {what}"),
                Box::new(move |d: &Path| {
                    let mut bytes = fs::read(sled_db(d))?;
                    let end = (at as usize + 8192).min(bytes.len());
                    let fill = if zero { vec![0; end - at as usize] } else { garbage(8192, at) };
                    bytes[at as usize..end].copy_from_slice(&fill[..end - at as usize]);
                    fs::write(sled_db(d), bytes)
                }),
            ));
        }
    }
    out.push(("sled/db deleted".into(), Box::new(|d: &Path| fs::remove_file(sled_db(d)))));
    out.push((
        "sled/conf deleted".into(),
        Box::new(|d: &Path| fs::remove_file(d.join("sled").join("conf"))),
    ));
    out.push((
        "sled's snapshots deleted".into(),
        Box::new(|d: &Path| {
            for entry in fs::read_dir(d.join("sled"))? {
                let path = entry?.path();
                if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("snap.")) {
                    fs::remove_file(path)?;
                }
            }
            Ok(())
        }),
    ));
    out.push((
        "the sled/ directory deleted".into(),
        Box::new(|d: &Path| fs::remove_dir_all(d.join("sled"))),
    ));
    out
}

#[test]
fn no_damage_to_sled_silently_forgets_a_completion() -> TestResult {
    let base = tempfile::tempdir()?;
    let pristine = base.path().join("pristine");
    // An older copy of sled/: taken after the first half was checkpointed.
    complete(&pristine, 0, KEYS / 2)?;
    let older = base.path().join("older-sled");
    common::copy_dir(&pristine.join("sled"), &older)?;
    // A `cp -a` copy of the whole directory at that point, opened on its own
    // and written further than the original (its sled/ is not older).
    let copy = base.path().join("copy");
    common::copy_dir(&pristine, &copy)?;
    complete(&copy, 10 * KEYS, 12 * KEYS)?;
    complete(&pristine, KEYS / 2, KEYS)?;
    // Another store's sled/, holding as many records.
    let other = base.path().join("other");
    complete(&other, 0, KEYS)?;

    // The undamaged store serves everything.
    let undamaged = base.path().join("undamaged");
    common::copy_dir(&pristine, &undamaged)?;
    assert!(matches!(check(&undamaged, "undamaged")?, Outcome::Served));

    let db_len = fs::metadata(sled_db(&pristine))?.len();
    let mut cases = damages(db_len);
    for (name, from) in [
        ("an older copy", older),
        ("another store's", other.join("sled")),
        ("a copy's that went further", copy.join("sled")),
    ] {
        cases.push((
            format!("sled/ replaced by {name}"),
            Box::new(move |d: &Path| {
                fs::remove_dir_all(d.join("sled"))?;
                common::copy_dir(&from, &d.join("sled"))
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }),
        ));
    }
    let mut refused = Vec::new();
    for (n, (case, damage)) in cases.iter().enumerate() {
        let dir = base.path().join(format!("case{n}"));
        common::copy_dir(&pristine, &dir)?;
        damage(&dir)?;
        match check(&dir, case)? {
            Outcome::Served => println!("{case}: served, every completion replayed"),
            Outcome::Refused(e) => {
                let msg = e.to_string();
                println!("{case}: refused: {msg}");
                // Typed, and says what to do (sled's own errors included).
                assert!(
                    matches!(e, Error::Corrupt { .. }) && msg.contains("idemkv import"),
                    "{case}: refused without a recovery procedure: {e:?}"
                );
                refused.push(dir);
            }
        }
    }
    // Every kind of loss of the whole of sled's data is refused, not served.
    assert!(refused.len() >= 4, "only {} cases refused", refused.len());

    // The CLI's verify fails on a refused store, naming the loss.
    let bin = env!("CARGO_BIN_EXE_idemkv");
    for dir in &refused {
        let out = Command::new(bin).arg("--path").arg(dir).args(["verify", "--strict"]).output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "verify --strict passed on {}: {text}", dir.display());
        assert!(text.contains("sled"), "verify does not name sled: {text}");
    }
    Ok(())
}

/// `verify` counts the records against the marker sled keeps with every
/// write, across a reopen and more writes.
#[test]
fn verify_counts_records_against_the_marker() -> TestResult {
    let dir = tempfile::tempdir()?;
    complete(dir.path(), 0, 10)?;
    let store: Store = config().open(dir.path())?;
    let lease = acquire(&store, &key(10), None)?;
    store.complete(&lease, &response(10))?;
    assert!(store.remove(&key(3))?);
    let report = store.verify()?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.expected_records), (10, Some(10)));
    Ok(())
}
