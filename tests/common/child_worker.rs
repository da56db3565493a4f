//! The child side: the body of every `child_worker` test and its scripted
//! modes.

use std::io::Read;
use std::path::{Path, PathBuf};

use idemkv::{Claim, Fingerprint, Store};

use super::child::{CHILD_ARG_ENV, CHILD_DIR_ENV, CHILD_MODE_ENV};
use super::{Ack, TestResult, acquire, child_config, emit, key, response_for};

/// Blocks until the parent closes our stdin (it kills us first), then exits
/// without running destructors.
fn park() -> ! {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    std::process::exit(0);
}

/// The body of every `child_worker` test.
pub fn child_main() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return; // not a child: nothing to do
    };
    let dir = PathBuf::from(dir);
    let mode = std::env::var(CHILD_MODE_ENV).unwrap_or_default();
    let arg: u64 = std::env::var(CHILD_ARG_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let res = match mode.as_str() {
        "claim_complete" => child_claim_complete(&dir, arg, segment_bytes_env()),
        "traffic" => child_traffic(&dir, arg as usize),
        "open_park" => child_open_park(&dir),
        "try_open" => {
            child_try_open(&dir);
            Ok(())
        }
        other => Err(format!("unknown child mode {other:?}").into()),
    };
    if let Err(e) = res {
        emit(Ack::Result(format!("ERROR {e}")));
        std::process::exit(2);
    }
    park();
}

fn segment_bytes_env() -> Option<u64> {
    std::env::var("IDEMKV_CHILD_SEGMENT_BYTES").ok().and_then(|s| s.parse().ok())
}

/// Claims keys `c0..c{n}`, completes the even ones, prints every ack, READY.
fn child_claim_complete(dir: &Path, n: u64, segment_bytes: Option<u64>) -> TestResult {
    let mut config = child_config();
    if let Some(b) = segment_bytes {
        config = config.segment_bytes(b);
    }
    let store = config.open(dir)?;
    let mut leases = Vec::new();
    for i in 0..n {
        let id = format!("c{i}");
        let lease = acquire(&store, &key(&id), Fingerprint::of(&id))?;
        emit(Ack::Claimed { id: id.clone(), token: lease.token() });
        leases.push((id, lease));
    }
    for (i, (id, lease)) in leases.iter().enumerate() {
        if i % 2 == 0 {
            store.complete(lease, &response_for(id))?;
            emit(Ack::Completed { id: id.clone() });
        }
    }
    emit(Ack::Ready);
    // Keep the store (and its lock) alive while parked.
    std::mem::forget(store);
    Ok(())
}

/// `threads` threads claim keys `t{thread}-{n}` and complete two of every
/// three, printing acks, until killed.
fn child_traffic(dir: &Path, threads: usize) -> TestResult {
    let store = child_config().open(dir)?;
    for t in 0..threads {
        let store = store.clone();
        std::thread::spawn(move || {
            for n in 0..1_000_000u64 {
                let id = format!("t{t}-{n}");
                let lease = match store.claim(&key(&id), Fingerprint::of(&id)) {
                    Ok(Claim::Acquired(lease)) => lease.into_lease(),
                    other => {
                        emit(Ack::Result(format!("ERROR claim {id}: {other:?}")));
                        return;
                    }
                };
                emit(Ack::Claimed { id: id.clone(), token: lease.token() });
                if n % 3 != 0 {
                    if let Err(e) = store.complete(&lease, &response_for(&id)) {
                        emit(Ack::Result(format!("ERROR complete {id}: {e}")));
                        return;
                    }
                    emit(Ack::Completed { id });
                }
            }
        });
    }
    std::mem::forget(store);
    Ok(())
}

/// Opens the store (replaying its journal), reports how many entries were
/// replayed as `RESULT REPLAYED <n>`, READY, and parks until killed.
fn child_open_park(dir: &Path) -> TestResult {
    let store = child_config().open(dir)?;
    emit(Ack::Result(format!("REPLAYED {}", store.recovery_report().entries_replayed)));
    emit(Ack::Ready);
    std::mem::forget(store);
    Ok(())
}

/// Tries to open the store and reports the outcome as a RESULT line.
fn child_try_open(dir: &Path) {
    match Store::open(dir) {
        Ok(store) => {
            emit(Ack::Result("OPENED".into()));
            drop(store);
        }
        Err(idemkv::Error::Locked { path }) => {
            emit(Ack::Result(format!("LOCKED {}", path.display())));
        }
        Err(e) => emit(Ack::Result(format!("ERROR {e:?}"))),
    }
    std::process::exit(0);
}

/// Parks a child process like [`child_main`] does after its script: blocks
/// until the parent closes our stdin (or kills us), then exits at once.
pub fn park_child() -> ! {
    park()
}
