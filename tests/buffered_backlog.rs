//! Guards that `Durability::Buffered` with a long `max_delay` never blocks writers: more transitions than the applier backlog holds (2^18) go through without waiting for `max_delay` — a backlog that makes writers wait also asks the journal to fsync now, since only fsynced entries reach sled — and every one of them is there after a reopen.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{TestResult, key};
use idemkv::{Claim, Config, Durability};

/// More than the applier backlog (2^18 entries) beyond which writers wait.
const CLAIMS: usize = (1 << 18) + 4_096;

#[test]
fn a_long_max_delay_does_not_block_writers_past_the_backlog() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = Config::new()
        .durability(Durability::Buffered { max_delay: Duration::from_secs(3600) })
        .sweep_interval(None)
        .checkpoint_interval(None);
    let store = config.clone().open(dir.path())?;
    let (tx, rx) = mpsc::channel();
    let writer = store.clone();
    std::thread::spawn(move || {
        let res = (0..CLAIMS).try_for_each(|i| match writer.claim(&key(format!("k{i}")), None) {
            // Detached: the claims stay in flight (a dropped guard would
            // abandon them, a second journal entry each).
            Ok(Claim::Acquired(guard)) => {
                guard.into_lease();
                Ok(())
            }
            Ok(other) => Err(format!("claim {i}: {other:?}")),
            Err(e) => Err(format!("claim {i}: {e}")),
        });
        let _ = tx.send(res);
    });
    // Generous: a hang waits out max_delay (an hour); the work takes seconds.
    match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(res) => res?,
        Err(_) => panic!("writers blocked behind an unfsynced backlog"),
    }
    store.close()?;
    let store = config.open(dir.path())?;
    for i in [0, CLAIMS / 2, CLAIMS - 1] {
        assert!(store.get(&key(format!("k{i}")))?.is_some(), "claim {i} lost");
    }
    Ok(())
}
