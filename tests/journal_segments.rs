//! The journal rotates into new segment files as it grows, a checkpoint
//! deletes the segments sled has made redundant, and everything survives a
//! reopen across many rotations.

use std::path::Path;

use idemkv::{Claim, Config, Durability, Key};

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("journal"))
        .map(|d| {
            d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn rotation_checkpoint_and_reopen() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = || {
        Config::new()
            // Durable: one frame per write, so rotation points are deterministic.
            .durability(Durability::Durable)
            .segment_bytes(4096)
            .checkpoint_interval(None)
            .checkpoint_bytes(u64::MAX)
            .sweep_interval(None)
    };
    let store = config().open(dir.path())?;
    for i in 0..600u32 {
        let key = Key::new("s", format!("k{i}"))?;
        let lease = store.claim(&key, None)?.into_lease().ok_or("not acquired")?;
        store.complete(&lease, &i.to_le_bytes())?;
    }
    store.flush()?;
    let before = segments(dir.path());
    assert!(before > 10, "600 cycles in 4 KiB segments rotate many times, saw {before}");
    store.checkpoint()?;
    assert_eq!(segments(dir.path()), 1, "a checkpoint keeps only the live segment");
    store.close()?;

    let store = config().open(dir.path())?;
    assert_eq!(store.recovery_report().bytes_dropped, 0);
    for i in 0..600u32 {
        match store.claim(&Key::new("s", format!("k{i}"))?, None)? {
            Claim::Replay(r) => assert_eq!(r.response(), i.to_le_bytes()),
            other => return Err(format!("key {i}: expected a replay, got {other:?}").into()),
        }
    }
    Ok(())
}
