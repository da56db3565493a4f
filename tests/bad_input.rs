//! Guards input validation: bad keys, oversized payloads, unusable paths and foreign or newer on-disk files give typed errors (never a panic), while binary ids work as keys.

mod common;

use std::collections::HashMap;

use common::{TestResult, acquire, crc32, key};
use idemkv::{
    Claim, Config, EntryState, Error, Failure, Key, MAX_ID_LEN, MAX_NAMESPACE_LEN,
    MAX_RESPONSE_LIMIT, Store,
};

fn invalid_key(res: idemkv::Result<Key>) {
    assert!(matches!(res, Err(Error::InvalidKey { .. })), "{res:?}");
}

#[test]
fn empty_or_oversized_keys_are_refused() -> TestResult {
    invalid_key(Key::new("", "id"));
    invalid_key(Key::new(&"n".repeat(MAX_NAMESPACE_LEN + 1), "id"));
    invalid_key(Key::new("ns", ""));
    invalid_key(Key::new("ns", vec![b'x'; MAX_ID_LEN + 1]));
    invalid_key(Key::from_parts::<&str>("ns", &[]));
    invalid_key(Key::from_parts("ns", &[""]));
    invalid_key(Key::from_parts("", &["a"]));
    // A part that grows past the limit when escaped.
    invalid_key(Key::from_parts("ns", &["/".repeat(MAX_ID_LEN / 3 + 1)]));

    // The limits themselves are fine, and such keys work in a store.
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let k = Key::new(&"n".repeat(MAX_NAMESPACE_LEN), vec![b'x'; MAX_ID_LEN])?;
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"big key")?;
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(_)));

    // A namespace policy with an empty name is refused at open.
    let res =
        Config::new().namespace("", idemkv::Policy::default()).open(tempfile::tempdir()?.path());
    assert!(matches!(res, Err(Error::InvalidConfig { .. })), "{res:?}");
    Ok(())
}

#[test]
fn binary_ids_are_keys() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ids: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x80],
        vec![0x00],
        vec![0xc3, 0x28], // invalid UTF-8 sequence
        b"plain".to_vec(),
        (0..=255u8).collect(),
    ];
    {
        let store = Store::open(dir.path())?;
        for id in &ids {
            let k = Key::new("bin", id)?;
            assert_eq!(k.id(), &id[..]);
            assert_eq!(k.namespace(), "bin");
            assert_eq!(Key::from_raw(k.as_raw())?, k);
            let lease = acquire(&store, &k, None)?;
            store.complete(&lease, id)?;
        }
        // "ab"+"c" and "a"+"bc" are different keys.
        let l = acquire(&store, &Key::new("ab", "c")?, None)?;
        store.complete(&l, b"ab/c")?;
        let l = acquire(&store, &Key::new("a", "bc")?, None)?;
        store.complete(&l, b"a/bc")?;
        store.close()?;
    }
    assert_eq!(Key::new("bin", [0xff, 0x00])?.to_string(), "bin:%FF%00");
    let store = Store::open(dir.path())?;
    for id in &ids {
        let k = Key::new("bin", id)?;
        let entry = store.get(&k)?.ok_or("binary key lost")?;
        assert_eq!(entry.key.id(), &id[..]);
        match entry.state {
            EntryState::Finished(r) => assert_eq!(r.response(), &id[..]),
            other => panic!("{k}: {other:?}"),
        }
    }
    for (ns, id, want) in [("ab", "c", b"ab/c"), ("a", "bc", b"a/bc")] {
        match store.claim(&Key::new(ns, id)?, None)? {
            Claim::Replay(r) => assert_eq!(r.response(), want),
            other => panic!("{other:?}"),
        }
    }
    Ok(())
}

#[test]
fn oversized_response_is_refused_and_the_claim_kept() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Config::new().max_response_bytes(1024).open(dir.path())?;

    let k = key("big-response");
    let lease = acquire(&store, &k, None)?;
    let res = store.complete(&lease, &[7; 1025]);
    assert!(matches!(res, Err(Error::ResponseTooLarge { len: 1025, limit: 1024 })), "{res:?}");
    assert!(matches!(
        store.get(&k)?.map(|e| e.state),
        Some(EntryState::InProgress { token, .. }) if token == lease.token()
    ));
    assert!(matches!(store.claim(&k, None)?, Claim::InFlight { .. }));
    store.complete(&lease, &[7; 1024])?;
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(r) if r.response().len() == 1024));

    let k = key("big-failure");
    let lease = acquire(&store, &k, None)?;
    let res = store.fail(&lease, Failure::Terminal(&[1; 4096]));
    assert!(matches!(res, Err(Error::ResponseTooLarge { len: 4096, limit: 1024 })), "{res:?}");
    assert!(matches!(store.claim(&k, None)?, Claim::InFlight { .. }));
    store.fail(&lease, Failure::Terminal(b"short reason"))?;
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(r) if r.response() == b"short reason"));

    // The limit itself has a ceiling.
    let res =
        Config::new().max_response_bytes(MAX_RESPONSE_LIMIT + 1).open(tempfile::tempdir()?.path());
    assert!(matches!(res, Err(Error::InvalidConfig { .. })), "{res:?}");
    Ok(())
}

#[test]
fn from_parts_is_deterministic_and_unambiguous() -> TestResult {
    assert_eq!(
        Key::from_parts("s", &["acct", "evt_1"])?,
        Key::from_parts("s", &["acct".to_string(), "evt_1".to_string()])?
    );
    assert_eq!(Key::from_parts("s", &["a/b", "c%"])?.id(), b"a%2Fb/c%25");
    // Every list of up to three parts over a nasty alphabet gives its own id.
    let alphabet = ["", "a", "/", "%", "2", "F", "%2F", "a/", "/%"];
    let mut lists: Vec<Vec<&str>> = alphabet.iter().map(|p| vec![*p]).collect();
    for a in alphabet {
        for b in alphabet {
            lists.push(vec![a, b]);
            for c in alphabet {
                lists.push(vec![a, b, c]);
            }
        }
    }
    let mut seen: HashMap<Vec<u8>, Vec<&str>> = HashMap::new();
    for parts in lists {
        let Ok(k) = Key::from_parts("s", &parts) else {
            assert_eq!(parts, vec![""], "only the empty id is refused");
            continue;
        };
        assert_eq!(Key::from_parts("s", &parts)?, k, "deterministic");
        if let Some(prev) = seen.insert(k.id().to_vec(), parts.clone()) {
            panic!("{prev:?} and {parts:?} give the same key {k}");
        }
    }
    assert!(seen.len() > 700);
    Ok(())
}

#[test]
fn unusable_paths_are_io_errors() -> TestResult {
    let root = tempfile::tempdir()?;
    let file = root.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    let res = Store::open(&file);
    assert!(matches!(res, Err(Error::Io { .. })), "{res:?}");
    let res = Store::open(file.join("below"));
    assert!(matches!(res, Err(Error::Io { .. })), "{res:?}");
    assert_eq!(std::fs::read(&file)?, b"not a directory", "left untouched");
    Ok(())
}

/// Rewrites META's version field and its crc32. Version 3 (this build's):
/// 72 bytes, version at [8, 12), flags at [48, 52), sled ids at [52, 68),
/// crc32 over [0, 68) at [68, 72). Versions 1 and 2 (older builds'): 52 bytes, no flags, crc32
/// over [0, 48) at [48, 52).
fn with_version(meta: &[u8], version: u32) -> Vec<u8> {
    let len = if version >= 3 { 72 } else { 52 };
    let mut m = meta[..len].to_vec();
    m[8..12].copy_from_slice(&version.to_le_bytes());
    let sum = crc32(&m[..len - 4]);
    m[len - 4..].copy_from_slice(&sum.to_le_bytes());
    m
}

#[test]
fn newer_or_damaged_meta_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let lease = acquire(&store, &key("k"), None)?;
    store.complete(&lease, b"v")?;
    store.close()?;
    let meta_path = dir.path().join("META");
    let meta = std::fs::read(&meta_path)?;
    assert_eq!(meta.len(), 72);
    assert_eq!(&meta[..8], b"IDEMKVMT");
    assert_eq!(crc32(&meta[..68]).to_le_bytes(), meta[68..72], "local crc32 matches");
    assert_eq!(with_version(&meta, 3), meta);

    std::fs::write(&meta_path, with_version(&meta, 4))?;
    let res = Store::open(dir.path());
    assert!(
        matches!(res, Err(Error::UnsupportedVersion { found: 4, supported: 3, .. })),
        "{res:?}"
    );
    // Versions 1 (before expiry groups) and 2 (before the sled marker),
    // written by earlier builds, are read; the open upgrades them to 3.
    for old in [1, 2] {
        std::fs::write(&meta_path, with_version(&meta, old))?;
        let store = Store::open(dir.path())?;
        assert!(store.get(&key("k"))?.is_some());
        store.close()?;
        let upgraded = std::fs::read(&meta_path)?;
        assert_eq!((upgraded.len(), upgraded[8]), (72, 3), "version {old} upgraded");
    }
    // From here on, the META the last open wrote (an older META under a newer
    // sled/ is refused: they no longer name the same copy of the store).
    let meta = std::fs::read(&meta_path)?;

    let mut flipped = meta.clone();
    flipped[20] ^= 1;
    std::fs::write(&meta_path, &flipped)?;
    let res = Store::open(dir.path());
    assert!(matches!(res, Err(Error::Corrupt { .. })), "{res:?}");

    std::fs::remove_file(&meta_path)?;
    let res = Store::open(dir.path());
    assert!(
        matches!(res, Err(Error::Corrupt { .. })),
        "data without META must not be started over: {res:?}"
    );

    // The refused opens changed nothing.
    std::fs::write(&meta_path, &meta)?;
    let store = Store::open(dir.path())?;
    assert!(matches!(store.claim(&key("k"), None)?, Claim::Replay(r) if r.response() == b"v"));
    Ok(())
}
