//! Guards `Store::close` on a full disk: once sled itself has hit ENOSPC, close still returns within its documented bound with a typed error, releases the directory LOCK, and nothing acknowledged is lost.
//!
//! Root only (a 20 MiB tmpfs: small enough to fill fast, large enough that
//! sled, not only the journal, often meets the full disk); prints a note and skips when not root or when
//! `mount` fails. The store runs in a child process: sled 0.34.7 holds a
//! process-wide `apply_batch` lock, and a sled stuck in its final flush would
//! block every other store of the test process.

mod common;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
use common::{Ack, ChildProc, TestResult};
use idemkv::{Claim, Config, Error, Key, Store};

const MODE: &str = "full_disk_close";
/// Attempts per run: the hang used to happen in most of them.
const ATTEMPTS: usize = 6;
/// What `Store::close` documents: each of at most three stuck steps gives up
/// after 5 s. Plus slack for a loaded machine.
const CLOSE_BOUND: Duration = Duration::from_secs(25);
const BODY: usize = 32 << 10;

#[test]
#[ignore = "child process of the full-disk close test; does nothing when run directly"]
fn child_worker() {
    if std::env::var(common::CHILD_MODE_ENV).as_deref() == Ok(MODE) {
        full_disk_child();
    }
}

fn key(id: &str) -> Key {
    Key::new("m", id).expect("valid key")
}

/// Claims and completes `full-{i}` with `BODY`-byte responses until a call
/// fails; returns how many were acknowledged and the error.
fn fill(store: &Store) -> (usize, Option<Error>) {
    for i in 0..1000 {
        let res = store.claim(&key(&format!("full-{i}")), None).and_then(|c| match c {
            Claim::Acquired(lease) => lease.complete(vec![i as u8; BODY]),
            other => panic!("{other:?}"),
        });
        if let Err(e) = res {
            return (i, Some(e));
        }
    }
    (1000, None)
}

/// True if nobody holds the directory's LOCK (a new open file description
/// conflicts with this process's own lock too).
fn lock_is_free(dir: &Path) -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("LOCK"))
        .is_ok_and(|f| f.try_lock().is_ok())
}

/// The child: fills the store in its directory, closes it, and reports
/// `FILLED n error`, then `CLOSED ms lock_free result`.
fn full_disk_child() {
    let Some(dir) = std::env::var_os(common::CHILD_DIR_ENV) else { return };
    let dir = PathBuf::from(dir);
    // "checkpoints": sled, not the journal, gets most of the disk.
    let config = if std::env::var(common::CHILD_ARG_ENV).as_deref() == Ok("checkpoints") {
        Config::new().checkpoint_bytes(1 << 20).segment_bytes(1 << 20)
    } else {
        Config::new()
    };
    let store = match config.open(&dir) {
        Ok(store) => store,
        Err(e) => {
            common::emit(Ack::Result(format!("ERROR open: {e}")));
            std::process::exit(2);
        }
    };
    let (acked, err) = fill(&store);
    common::emit(Ack::Result(format!("FILLED {acked} {err:?}")));
    let started = Instant::now();
    let closed = store.close();
    let took = started.elapsed().as_millis();
    let kind = match &closed {
        Ok(()) => "ok",
        Err(Error::CloseTimedOut { lock_released: true, .. }) => "timed_out",
        Err(Error::CloseTimedOut { .. }) => "timed_out_lock_kept",
        Err(Error::Poisoned { .. }) => "poisoned",
        Err(_) => "other",
    };
    let free = lock_is_free(&dir);
    let msg = closed.map_or_else(|e| e.to_string(), |()| String::new());
    common::emit(Ack::Result(format!("CLOSED {took} {free} {kind} {msg}")));
    std::process::exit(0);
}

#[test]
fn close_returns_when_sled_hit_a_full_disk() -> TestResult {
    let _serial = common::serial();
    for attempt in 0..ATTEMPTS {
        let root = tempfile::tempdir()?;
        let mnt = root.path().join("mnt");
        let Some(m) = Tmpfs::mount(&mnt, "size=20m", "the full-disk close test") else {
            return Ok(());
        };
        // Every other attempt checkpoints often, so that sled fills the disk.
        let variant = if attempt % 2 == 1 { "checkpoints" } else { "default" };
        let mut child =
            ChildProc::spawn(&mnt, MODE, &[(common::CHILD_ARG_ENV, variant.to_string())])?;
        let acked: usize = match child.next_ack(Duration::from_secs(60))? {
            Some(Ack::Result(r)) if r.starts_with("FILLED") => {
                assert!(!r.ends_with("None"), "a 20 MiB disk fills up: {r}");
                r.split_whitespace().nth(1).ok_or("FILLED n")?.parse()?
            }
            other => return Err(format!("child said {other:?}").into()),
        };
        let closed = match child.next_ack(CLOSE_BOUND) {
            Ok(Some(Ack::Result(r))) if r.starts_with("CLOSED") => r,
            other => return Err(format!("attempt {attempt}: close hung: {other:?}").into()),
        };
        println!("attempt {attempt} ({variant}): {acked} acknowledged; {closed}");
        let words: Vec<&str> = closed.split_whitespace().collect();
        let took: u64 = words.get(1).ok_or("CLOSED ms")?.parse()?;
        assert!(took < CLOSE_BOUND.as_millis() as u64, "close took {took} ms");
        assert_eq!(words.get(2), Some(&"true"), "close released the LOCK: {closed}");
        assert!(
            matches!(words.get(3), Some(&"timed_out" | &"poisoned")),
            "close reports the full disk with a typed error: {closed}"
        );
        assert!(closed.contains("No space left on device"), "the cause is named: {closed}");
        assert!(child.wait()?.success());
        drop(child);
        // Room for the journal's 20 MiB and sled's copy of them.
        m.remount("size=256m")?;
        let store = Store::open(&mnt)?;
        for i in 0..acked {
            match store.claim(&key(&format!("full-{i}")), None)? {
                Claim::Replay(r) => assert!(r.response() == vec![i as u8; BODY], "full-{i}"),
                other => {
                    return Err(format!("full-{i}: acknowledged completion lost: {other:?}").into());
                }
            }
        }
        store.close()?;
    }
    Ok(())
}
