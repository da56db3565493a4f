//! Guards the bad-input matrix: each kind of bad key, payload, duration, clock, lease, directory, disk or on-disk version gives a typed error with a useful message (never a panic), and nothing already stored is lost — a completed sentinel key still replays afterwards.
//!
//! One test per kind. Sub-cases that need root (read-only and full tmpfs
//! mounts) print a note and skip when not root or when `mount` fails.
//! Documented behaviour of a clock going backwards: see
//! `clock::clock_going_backwards_keeps_records_consistent`.

#[path = "../common/mod.rs"]
mod common;

mod clock;
mod directories;
mod durations;
mod full_disk;
mod keys;
mod leases;
mod payloads;
mod versions;

use common::{TestResult, acquire};
use idemkv::{Claim, Config, Error, Key, Store};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    common::child_main();
}

const NS: &str = "m";
const SENTINEL: &[u8] = b"sentinel response";

fn mkey(id: &str) -> Key {
    Key::new(NS, id).expect("valid key")
}

fn sentinel() -> Key {
    mkey("sentinel")
}

/// Completes the sentinel key in `store`.
fn plant(store: &Store) -> TestResult {
    let lease = acquire(store, &sentinel(), None)?;
    store.complete(&lease, SENTINEL)?;
    Ok(())
}

/// The sentinel still replays: nothing stored was lost.
fn still_there(store: &Store) -> TestResult {
    match store.claim(&sentinel(), None)? {
        Claim::Replay(r) if r.response() == SENTINEL => Ok(()),
        other => Err(format!("the sentinel was lost: {other:?}").into()),
    }
}

/// Asserts `res` failed with an error matching `kind` whose message
/// contains every one of `words`.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    res: idemkv::Result<T>,
    kind: fn(&Error) -> bool,
    words: &[&str],
) -> Error {
    match res {
        Err(e) if kind(&e) => {
            let msg = e.to_string();
            for w in words {
                assert!(msg.contains(w), "message of {e:?} lacks {w:?}: {msg}");
            }
            e
        }
        other => panic!("expected a typed error containing {words:?}, got {other:?}"),
    }
}

fn invalid_key(e: &Error) -> bool {
    matches!(e, Error::InvalidKey { .. })
}

fn invalid_config(e: &Error) -> bool {
    matches!(e, Error::InvalidConfig { .. })
}

fn io(e: &Error) -> bool {
    matches!(e, Error::Io { .. })
}

fn stale(e: &Error) -> bool {
    matches!(e, Error::StaleLease { .. })
}

/// A format one version newer than this build reads.
fn unsupported(e: &Error) -> bool {
    matches!(e, Error::UnsupportedVersion { found, supported, .. } if *found == supported + 1)
}

fn poisoned(e: &Error) -> bool {
    matches!(e, Error::Poisoned { .. })
}

/// A store in a fresh directory with the sentinel planted.
fn store_with_sentinel(config: Config) -> TestResult<(tempfile::TempDir, Store)> {
    let dir = common::fast_tempdir()?;
    let store = config.open(dir.path())?;
    plant(&store)?;
    Ok((dir, store))
}
