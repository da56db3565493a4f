//! Newer on-disk versions: of META, of a journal segment, of a record.

use idemkv::{Config, Store};

use crate::common::{self, TestResult, acquire, crc32};
use crate::{mkey, refused, sentinel, still_there, store_with_sentinel, unsupported};

/// Rewrites the little-endian u32 version at `at` and the crc32 over
/// `[0, crc_at)` stored at `crc_at`.
fn bump(bytes: &mut [u8], at: usize, crc_at: usize, version: u32) {
    bytes[at..at + 4].copy_from_slice(&version.to_le_bytes());
    let sum = crc32(&bytes[..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn newer_format_versions_are_unsupported_version() -> TestResult {
    let _serial = common::serial();
    let (dir, store) = store_with_sentinel(Config::new())?;
    store.close()?;

    // META (72 bytes: version at 8, crc32 of [0, 68) at 68).
    let meta_path = dir.path().join("META");
    let meta = std::fs::read(&meta_path)?;
    let mut newer = meta.clone();
    bump(&mut newer, 8, 68, 4);
    std::fs::write(&meta_path, &newer)?;
    refused(Store::open(dir.path()), unsupported, &["META", "version 4", "newer idemkv"]);
    std::fs::write(&meta_path, &meta)?;

    // A journal segment header (16 bytes: version at 8, crc32 of [0, 12) at 12).
    let seg = common::segments(dir.path())?.pop().ok_or("no journal segment")?;
    let original = std::fs::read(&seg)?;
    let frames = common::parse_segment(&original);
    let mut newer = original.clone();
    bump(&mut newer, 8, 12, 2);
    std::fs::write(&seg, &newer)?;
    refused(
        Store::open(dir.path()),
        unsupported,
        &["journal segment", "version 2", "newer idemkv"],
    );
    std::fs::write(&seg, &original)?;

    // A record (version byte at 2, crc32 of everything before the last 4
    // bytes at the end), taken from the sentinel's journal frame.
    let store = Store::open(dir.path())?;
    still_there(&store)?;
    let mut record = frames
        .iter()
        .rev()
        .find(|f| f.key == sentinel().as_raw() && f.state_tag() == Some(2))
        .and_then(|f| f.record.clone())
        .ok_or("no completed record of the sentinel in the journal")?;
    record[2] = 3;
    let n = record.len() - 4;
    let sum = crc32(&record[..n]);
    record[n..].copy_from_slice(&sum.to_le_bytes());
    let k = mkey("from-the-future");
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"now")?;
    store.__corrupt_record(&k, &record)?;
    refused(store.claim(&k, None), unsupported, &["record", "version 3", "newer idemkv"]);
    refused(store.get(&k), unsupported, &["record"]);
    let report = store.verify()?;
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(report.corrupt[0].1.contains("version 3"), "{report:?}");
    still_there(&store)
}
