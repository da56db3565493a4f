//! Guards the fencing-token space at its edges: tokens strictly increase and never wrap — an import whose token is above `MAX_IMPORTED_TOKEN` is refused with `TokenSpaceExhausted` (nothing changed), tokens stay strictly increasing across reopens after an import at the limit, and a store whose token space is used up (its META ceiling near `u64::MAX`) opens, keeps serving what it stores, and answers claims with `TokenSpaceExhausted` instead of wrapping to 0.

mod common;

use std::path::Path;

use common::{TestResult, acquire, crc32, from_hex, key, to_hex};
use idemkv::{Claim, Config, Error, ExportedRecord, MAX_IMPORTED_TOKEN, MAX_TOKEN};

/// Byte offset of the token in an encoded record (docs/FORMAT.md, "Record").
const RECORD_TOKEN_AT: usize = 36;
/// Byte offset of the token ceiling in META (docs/FORMAT.md, "META").
const META_CEILING_AT: usize = 24;
const META_CRC_AT: usize = 68;

fn config() -> Config {
    Config::new().sweep_interval(None)
}

/// A completed record exported from a scratch store.
fn exported_record() -> TestResult<ExportedRecord> {
    let dir = common::fast_tempdir()?;
    let store = config().open(dir.path())?;
    let lease = acquire(&store, &key("imported"), None)?;
    store.complete(&lease, b"from elsewhere")?;
    let mut out = Vec::new();
    store.export(|r| {
        out.push(r);
        Ok(())
    })?;
    store.close()?;
    Ok(out.pop().ok_or("nothing exported")?)
}

/// `rec` with its fencing token replaced by `token` (checksum fixed).
fn with_token(rec: &ExportedRecord, token: u64) -> TestResult<ExportedRecord> {
    let mut bytes = from_hex(&rec.record).ok_or("record is not hex")?;
    bytes[RECORD_TOKEN_AT..RECORD_TOKEN_AT + 8].copy_from_slice(&token.to_le_bytes());
    let n = bytes.len() - 4;
    let sum = crc32(&bytes[..n]);
    bytes[n..].copy_from_slice(&sum.to_le_bytes());
    let mut out = rec.clone();
    out.record = to_hex(&bytes);
    Ok(out)
}

#[track_caller]
fn exhausted<T: std::fmt::Debug>(res: idemkv::Result<T>, token: u64, limit: u64) {
    match res {
        Err(Error::TokenSpaceExhausted { token: t, limit: l }) => {
            assert_eq!((t, l), (token, limit));
        }
        other => panic!("expected TokenSpaceExhausted {{ {token}, {limit} }}, got {other:?}"),
    }
}

#[test]
fn imports_above_the_limit_are_refused_and_change_nothing() -> TestResult {
    let rec = exported_record()?;
    let dir = common::fast_tempdir()?;
    let store = config().open(dir.path())?;
    common::plant_sentinel(&store, &key("sentinel"))?;
    let before = acquire(&store, &key("before"), None)?.token();
    for token in [MAX_IMPORTED_TOKEN + 1, 1 << 63 | 1 << 62, MAX_TOKEN, u64::MAX - 1, u64::MAX] {
        exhausted(store.import(&with_token(&rec, token)?), token, MAX_IMPORTED_TOKEN);
        assert!(store.get(&key("imported"))?.is_none(), "a refused import stores nothing");
    }
    // Later tokens did not jump: the refused imports left the counter alone.
    let after = acquire(&store, &key("after"), None)?.token();
    assert!(after > before && after < 1 << 40, "{before} then {after}");
    common::sentinel_replays(&store, &key("sentinel"))
}

#[test]
fn tokens_strictly_increase_across_reopens_after_an_import_at_the_limit() -> TestResult {
    let rec = exported_record()?;
    let dir = common::fast_tempdir()?;
    let mut store = config().open(dir.path())?;
    common::plant_sentinel(&store, &key("sentinel"))?;
    store.import(&with_token(&rec, MAX_IMPORTED_TOKEN)?)?;
    match store.claim(&key("imported"), None)? {
        Claim::Replay(r) => assert_eq!(r.token(), MAX_IMPORTED_TOKEN),
        other => panic!("{other:?}"),
    }
    let mut last = MAX_IMPORTED_TOKEN;
    for round in 0..4 {
        for i in 0..3 {
            let t = acquire(&store, &key(format!("r{round}-{i}")), None)?.token();
            assert!(t > last, "round {round}: token {t} after {last}");
            last = t;
        }
        store.close()?;
        store = config().open(dir.path())?;
        common::sentinel_replays(&store, &key("sentinel"))?;
    }
    let t = acquire(&store, &key("last"), None)?.token();
    assert!(t > last && t < MAX_IMPORTED_TOKEN + (1 << 40), "token {t} after {last}");
    store.close()?;
    Ok(())
}

/// Rewrites META's token ceiling (with a valid checksum), as if the store
/// had issued tokens up to `ceiling`.
fn set_ceiling(dir: &Path, ceiling: u64) -> TestResult {
    let path = dir.join("META");
    let mut meta = std::fs::read(&path)?;
    meta[META_CEILING_AT..META_CEILING_AT + 8].copy_from_slice(&ceiling.to_le_bytes());
    let sum = crc32(&meta[..META_CRC_AT]);
    meta[META_CRC_AT..META_CRC_AT + 4].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, meta)?;
    Ok(())
}

#[test]
fn an_exhausted_token_space_is_a_typed_error_not_a_wrap() -> TestResult {
    let dir = common::fast_tempdir()?;
    let store = config().open(dir.path())?;
    common::plant_sentinel(&store, &key("sentinel"))?;
    store.close()?;

    // Three tokens left: MAX_TOKEN - 1 and MAX_TOKEN are issued, then none.
    set_ceiling(dir.path(), MAX_TOKEN - 2)?;
    let store = config().open(dir.path())?;
    common::sentinel_replays(&store, &key("sentinel"))?;
    let a = acquire(&store, &key("a"), None)?;
    let b = acquire(&store, &key("b"), None)?;
    assert_eq!((a.token(), b.token()), (MAX_TOKEN - 1, MAX_TOKEN));
    for _ in 0..3 {
        exhausted(store.claim(&key("c"), None), MAX_TOKEN + 1, MAX_TOKEN);
        assert!(store.get(&key("c"))?.is_none(), "a refused claim stores nothing");
    }
    // The held claims still finish; what is stored keeps replaying.
    store.complete(&a, b"a")?;
    store.complete(&b, b"b")?;
    assert!(
        matches!(store.claim(&key("a"), None)?, Claim::Replay(r) if r.token() == MAX_TOKEN - 1)
    );
    common::sentinel_replays(&store, &key("sentinel"))?;
    store.close()?;

    // Reopened: still exhausted, never back to small tokens.
    for ceiling in [None, Some(u64::MAX), Some(u64::MAX - 1)] {
        if let Some(c) = ceiling {
            set_ceiling(dir.path(), c)?;
        }
        let store = config().open(dir.path())?;
        common::sentinel_replays(&store, &key("sentinel"))?;
        assert!(matches!(store.claim(&key("b"), None)?, Claim::Replay(r) if r.response() == b"b"));
        match store.claim(&key("d"), None) {
            Err(Error::TokenSpaceExhausted { token, limit }) => {
                assert!(token > MAX_TOKEN && limit == MAX_TOKEN, "{token} {limit}");
            }
            other => panic!("ceiling {ceiling:?}: expected TokenSpaceExhausted, got {other:?}"),
        }
        store.close()?;
    }
    Ok(())
}
