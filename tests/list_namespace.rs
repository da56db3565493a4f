//! Guards `Store::list`'s namespace argument: a namespace `Key::new` refuses (empty, over 64 bytes — including lengths whose low byte is a valid length) is `Error::InvalidKey` with the same reason, never an empty or wrong listing.

mod common;

use common::{TestResult, acquire};
use idemkv::{Error, Key, MAX_NAMESPACE_LEN, Store};

#[test]
fn list_refuses_the_namespaces_key_new_refuses() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let store = Store::open(dir.path())?;
    let longest = "n".repeat(MAX_NAMESPACE_LEN);
    for ns in ["a", "n", longest.as_str()] {
        let lease = acquire(&store, &Key::new(ns, "id")?, None)?;
        store.complete(&lease, b"v")?;
    }
    // 256 + 1 bytes: its length truncated to a byte is 1, the length of "n".
    let bad = [String::new(), "n".repeat(MAX_NAMESPACE_LEN + 1), "n".repeat(257), "é".repeat(40)];
    for ns in &bad {
        let want = match Key::new(ns, "id") {
            Err(Error::InvalidKey { reason }) => reason,
            other => panic!("Key::new accepted {} bytes: {other:?}", ns.len()),
        };
        match store.list(Some(ns), None, 10) {
            Err(Error::InvalidKey { reason }) => assert_eq!(reason, want),
            other => panic!("list of a {}-byte namespace: {other:?}", ns.len()),
        }
    }
    // Valid namespaces still list exactly their own records.
    for ns in ["a", "n", longest.as_str()] {
        let listed = store.list(Some(ns), None, 10)?;
        assert_eq!(listed.len(), 1, "{ns}");
        assert_eq!(listed[0].key.namespace(), ns);
    }
    store.close()?;
    Ok(())
}
