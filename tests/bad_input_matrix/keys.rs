//! Bad keys: empty or oversized namespaces and ids, non-UTF-8 ids, garbage
//! raw keys.

use idemkv::{Claim, Config, Key, MAX_ID_LEN, MAX_NAMESPACE_LEN, Policy, Store};

use crate::common::{self, TestResult, acquire};
use crate::{NS, invalid_config, invalid_key, refused, still_there, store_with_sentinel};

#[test]
fn empty_and_oversized_namespaces_are_invalid_keys() -> TestResult {
    let _serial = common::serial();
    refused(Key::new("", "id"), invalid_key, &["invalid key", "namespace is empty"]);
    let long = "n".repeat(MAX_NAMESPACE_LEN + 1);
    refused(Key::new(&long, "id"), invalid_key, &["namespace is 65 bytes", "limit is 64"]);
    assert!(Key::new(&"n".repeat(MAX_NAMESPACE_LEN), "id").is_ok());
    // A policy for such a namespace is refused at open, before anything is written.
    let dir = common::fast_tempdir()?;
    refused(
        Config::new().namespace(&long, Policy::default()).open(dir.path()),
        invalid_config,
        &["Config::namespace", "limit is 64"],
    );
    refused(
        Config::new().namespace("", Policy::default()).open(dir.path()),
        invalid_config,
        &["Config::namespace", "namespace is empty"],
    );
    // `list` of a namespace no key can have is refused too: a 300-byte name
    // must not wrap its length byte and list namespace "n" x 44 instead.
    let store = Store::open(dir.path())?;
    let alias = Key::new(&"n".repeat(44), "n".repeat(256))?;
    let lease = acquire(&store, &alias, None)?;
    store.complete(&lease, b"other namespace")?;
    refused(store.list(Some(&"n".repeat(300)), None, 10), invalid_key, &["namespace is 300 bytes"]);
    refused(store.list(Some(&long), None, 10), invalid_key, &["limit is 64"]);
    refused(store.list(Some(""), None, 10), invalid_key, &["namespace is empty"]);
    assert_eq!(store.list(Some(&"n".repeat(44)), None, 10)?.len(), 1);
    store.close()?;
    Ok(())
}

#[test]
fn empty_and_oversized_ids_are_invalid_keys() -> TestResult {
    let _serial = common::serial();
    refused(Key::new(NS, ""), invalid_key, &["id is empty"]);
    refused(
        Key::new(NS, vec![b'x'; MAX_ID_LEN + 1]),
        invalid_key,
        &["1025 bytes", "limit is 1024"],
    );
    refused(Key::from_parts(NS, &["/".repeat(400)]), invalid_key, &["limit is 1024"]);
    let (_dir, store) = store_with_sentinel(Config::new())?;
    let k = Key::new(NS, vec![b'x'; MAX_ID_LEN])?;
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"longest id")?;
    still_there(&store)
}

#[test]
fn non_utf8_ids_work() -> TestResult {
    let _serial = common::serial();
    let (dir, store) = store_with_sentinel(Config::new())?;
    let ids: [&[u8]; 3] = [&[0xff, 0xfe, 0x00], &[0xc3, 0x28], &[0x80; 1024]];
    for id in ids {
        let k = Key::new(NS, id)?;
        assert!(k.to_string().starts_with("m:%"), "non-UTF-8 bytes %-escaped: {k}");
        assert_eq!(Key::parse(&k.to_string())?, k, "the text form reads back");
        let lease = acquire(&store, &k, None)?;
        store.complete(&lease, id)?;
    }
    store.close()?;
    let store = Store::open(dir.path())?;
    for id in ids {
        match store.claim(&Key::new(NS, id)?, None)? {
            Claim::Replay(r) => assert_eq!(r.response(), id),
            other => panic!("{other:?}"),
        }
    }
    still_there(&store)
}

#[test]
fn garbage_raw_keys_are_invalid_keys() -> TestResult {
    let _serial = common::serial();
    let mut too_long = vec![1, b'a'];
    too_long.extend(vec![b'x'; MAX_ID_LEN + 1]);
    let cases: [(&[u8], &str); 6] = [
        (&[], "raw key is empty"),
        (&[5, b'a', b'b'], "truncated"),
        (&[2, 0xff, 0xfe, b'x'], "not UTF-8"),
        (&[0, b'x'], "namespace is empty"),
        (&[1, b'a'], "id is empty"),
        (&too_long, "limit is 1024"),
    ];
    for (raw, why) in cases {
        refused(Key::from_raw(raw), invalid_key, &[why]);
    }
    let k = Key::new("ns", [0u8, 1, 2])?;
    assert_eq!(Key::from_raw(k.as_raw())?, k, "a valid raw key round-trips");
    Ok(())
}
