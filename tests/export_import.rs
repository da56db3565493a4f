//! Export → import into an empty store round-trips every record exactly,
//! TTLs included; claims in progress arrive as orphans; fencing tokens of
//! the importing store exceed the imported ones; `list` pages in key order.

use std::time::Duration;

use idemkv::{Claim, Config, EntryState, ExportedRecord, Failure, Key, MockClock, Store};

fn export_all(store: &Store) -> idemkv::Result<Vec<ExportedRecord>> {
    let mut out = Vec::new();
    store.export(|r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn round_trip_is_exact() -> Result<(), Box<dyn std::error::Error>> {
    let clock = MockClock::new(1_700_000_000_000);
    let config = || Config::new().clock(clock.clone()).sweep_interval(None);
    let src_dir = tempfile::tempdir()?;
    let src = config().open(src_dir.path())?;
    let mut last_token = 0;
    for i in 0..50u32 {
        let key = Key::new(if i % 2 == 0 { "stripe" } else { "github" }, format!("e{i:03}"))?;
        let lease = store_claim(&src, &key)?;
        last_token = last_token.max(lease.token());
        clock.advance(Duration::from_millis(7));
        match i % 5 {
            0 => src.complete(&lease, &i.to_le_bytes())?,
            1 => src.fail(&lease, Failure::Terminal(b"declined"))?,
            2 => src.fail(&lease, Failure::Retryable)?,
            3 => {} // stays in progress
            _ => src.complete(&lease, &[])?,
        }
    }
    let binary = Key::new("raw", [0xff, 0x00, 0x7f])?;
    let lease = store_claim(&src, &binary)?;
    src.complete(&lease, &[0u8, 255, 10, 13])?;
    let exported = export_all(&src)?;
    assert_eq!(exported.len(), 51);
    assert!(exported.iter().any(|r| r.id_hex.as_deref() == Some("ff007f")));

    let dst_dir = tempfile::tempdir()?;
    let dst = config().open(dst_dir.path())?;
    for r in &exported {
        dst.import(r)?;
    }
    assert_eq!(export_all(&dst)?, exported, "export of the import is identical");
    for r in &exported {
        let key = r.key()?;
        let (a, b) = (src.get(&key)?.ok_or("missing")?, dst.get(&key)?.ok_or("missing")?);
        assert_eq!(a.expires_at, b.expires_at);
        assert_eq!(a.attempts, b.attempts);
        match (&a.state, &b.state) {
            (EntryState::Finished(x), EntryState::Finished(y)) => assert_eq!(x, y),
            (EntryState::InProgress { .. }, EntryState::InProgress { orphaned, .. }) => {
                assert!(orphaned, "an imported claim belongs to no live process");
            }
            (x, y) => assert_eq!(x, y),
        }
    }
    // A claim left in progress is taken over at once, with a newer token.
    let in_progress = Key::new("github", "e003")?;
    let taken = store_claim(&dst, &in_progress)?;
    assert!(taken.recovered() && taken.token() > last_token);
    Ok(())
}

fn store_claim(store: &Store, key: &Key) -> Result<idemkv::Lease, Box<dyn std::error::Error>> {
    match store.claim(key, None)? {
        Claim::Acquired(lease) => Ok(lease.into_lease()),
        other => Err(format!("{key}: expected Acquired, got {other:?}").into()),
    }
}

#[test]
fn import_refuses_damage() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let key = Key::new("s", "k")?;
    let lease = store_claim(&store, &key)?;
    store.complete(&lease, b"ok")?;
    let mut r = export_all(&store)?.remove(0);
    let mut bytes = r.record.into_bytes();
    bytes[20] = if bytes[20] == b'0' { b'1' } else { b'0' };
    r.record = String::from_utf8(bytes)?;
    r.id = Some("other".into());
    assert!(matches!(store.import(&r), Err(idemkv::Error::Corrupt { .. })));
    assert!(store.get(&Key::new("s", "other")?)?.is_none(), "nothing stored");
    Ok(())
}

#[test]
fn list_pages_through_a_namespace() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Config::new().sweep_interval(None).open(dir.path())?;
    for ns in ["a", "b"] {
        for i in 0..25 {
            let lease = store_claim(&store, &Key::new(ns, format!("k{i:02}"))?)?;
            store.complete(&lease, b"x")?;
        }
    }
    let mut seen = Vec::new();
    let mut after: Option<Key> = None;
    loop {
        let page = store.list(Some("b"), after.as_ref(), 10)?;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().map(|e| e.key.clone());
        seen.extend(page.into_iter().map(|e| e.key));
    }
    let want: Vec<Key> =
        (0..25).map(|i| Key::new("b", format!("k{i:02}"))).collect::<Result<_, _>>()?;
    assert_eq!(seen, want);
    assert_eq!(store.list(None, None, 1000)?.len(), 50);
    Ok(())
}
