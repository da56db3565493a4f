//! Full disks: through the journal's fault seam, and a real full tmpfs.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use idemkv::{Claim, Config, Error, Store};

use crate::common::faults::{Fault, FaultyFs};
use crate::common::tmpfs::Tmpfs;
use crate::common::{self, TestResult};
use crate::{mkey, plant, poisoned, refused, still_there};

/// Claims and completes keys `full-{i}` for `i` in `from..to` with
/// `len`-byte responses until a call fails; returns the ids acknowledged and
/// the error.
fn fill(store: &Store, len: usize, from: usize, to: usize) -> (Vec<String>, Option<Error>) {
    let mut acked = Vec::new();
    for i in from..to {
        let id = format!("full-{i}");
        let body = vec![i as u8; len];
        let res = store.claim(&mkey(&id), None).and_then(|c| match c {
            Claim::Acquired(lease) => lease.complete(&body),
            other => panic!("{other:?}"),
        });
        match res {
            Ok(()) => acked.push(id),
            Err(e) => return (acked, Some(e)),
        }
    }
    (acked, None)
}

fn check_filled(store: &Store, acked: &[String], len: usize, sentinel: bool) -> TestResult {
    for id in acked {
        let i: usize = id["full-".len()..].parse()?;
        match store.claim(&mkey(id), None)? {
            Claim::Replay(r) => assert!(r.response() == vec![i as u8; len], "{id}: body differs"),
            other => return Err(format!("{id}: acknowledged completion lost: {other:?}").into()),
        }
    }
    if sentinel { still_there(store) } else { Ok(()) }
}

/// Runs `f` on another thread, failing if it takes longer than `limit`
/// (the thread is left behind).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn a_full_disk_poisons_the_store_and_loses_nothing_acknowledged() -> TestResult {
    let _serial = common::serial();
    // 1. ENOSPC from the journal through the fault seam (works unprivileged).
    let dir = common::fast_tempdir()?;
    let fs = FaultyFs::new(Fault::None);
    let store = Config::new().journal_fs(Arc::new(fs.clone())).open(dir.path())?;
    plant(&store)?;
    let (first, none) = fill(&store, 1000, 0, 10);
    assert!(none.is_none());
    fs.arm(Fault::Enospc(fs.writes() + 5));
    let (more, err) = fill(&store, 1000, 10, 100);
    assert_eq!(more.len(), 2, "the fifth journal write hit the full disk");
    let e = err.ok_or("no error on a full disk")?;
    refused(Err::<(), _>(e), poisoned, &["No space left on device", "reopen"]);
    refused(store.claim(&mkey("after"), None), poisoned, &["No space left on device"]);
    refused(store.close(), poisoned, &["No space left on device"]);
    let store = Store::open(dir.path())?;
    check_filled(&store, &first, 1000, true)?;
    check_filled(&store, &more, 1000, true)?;
    store.close()?;

    // 2. A real full file system: a tmpfs filled up while the store runs.
    let root = tempfile::tempdir()?;
    let mnt = root.path().join("mnt");
    let Some(m) = Tmpfs::mount(&mnt, "size=8m", "the full-disk sub-case") else { return Ok(()) };
    let store = Store::open(&mnt)?;
    plant(&store)?;
    let (first, none) = fill(&store, 16 << 10, 0, 20);
    assert!(none.is_none());
    // Make sled durable, then take the rest of the space: the next journal
    // write is the first to find the disk full.
    store.checkpoint()?;
    let filler = mnt.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status()?;
    let (more, err) = fill(&store, 16 << 10, 20, 1000);
    let e = err.ok_or("no error on a full disk")?;
    let msg = e.to_string();
    println!("full tmpfs: {} more acknowledged, then: {msg}", more.len());
    assert!(
        matches!(e, Error::Poisoned { .. } | Error::Io { .. } | Error::Storage { .. })
            && msg.contains("No space left on device"),
        "{e:?}: {msg}"
    );
    let closed = within(Duration::from_secs(20), move || store.close()).ok_or("close hung")?;
    assert!(closed.is_err(), "close reports the failure: {closed:?}");
    std::fs::remove_file(&filler)?;
    m.remount("size=64m")?;
    let store = Store::open(&mnt)?;
    check_filled(&store, &first, 16 << 10, true)?;
    check_filled(&store, &more, 16 << 10, true)?;
    store.close()?;
    Ok(())
}

// `Store::close` once sled itself hit a full disk: tests/close_full_disk.rs.
