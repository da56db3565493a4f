//! Guards the CLI's key syntax: every key that `idemkv list` (text and JSON) prints — namespaces with ':' '%' and spaces or a leading '-', binary ids, ids that look like escapes or hex — is accepted as printed by `get`, `remove` and `list --after`, and names exactly that key.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use idemkv::{Claim, Key, Store};
use serde_json::Value;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Keys the library accepts and the old `NAMESPACE:ID` syntax mangled.
fn keys() -> Vec<Key> {
    let k = |ns: &str, id: &[u8]| Key::new(ns, id).expect("valid key");
    vec![
        k("stripe", b"evt_1"),
        k("ns:with:colon", b"id"),
        k("ns:with:colon", b"id:with:colon"),
        k("a", b"b:c"),
        k("p%", b"100%"),
        k("with space", b"a b"),
        k("s", &[0xff, 0x00, 0x01]),
        k("s", b"0xff0001"),
        k("s", b"%FF%00%01"),
        k("s", b"%25"),
        k("s", b"line\nbreak\ttab"),
        k("s", &[b'%', 0x80, b':', 0xfe]),
        k("\u{e9}t\u{e9}", "\u{20ac}:\u{1f600}".as_bytes()),
        // Namespaces that a command line would read as options.
        k("-dash", b"evt_1"),
        k("--json", b"-x"),
        k("-", b"--"),
    ]
}

/// The response stored for key number `i`.
fn response(i: usize) -> Vec<u8> {
    format!("response {i}").into_bytes()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .arg("--path")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run idemkv")
}

#[track_caller]
fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn store() -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    for (i, key) in keys().iter().enumerate() {
        let Claim::Acquired(lease) = store.claim(key, None)? else { panic!("{key:?}") };
        let lease = lease.into_lease();
        store.complete(&lease, &response(i))?;
    }
    store.close()?;
    Ok(dir)
}

/// The index of the key `printed` names, checked with `get --raw`.
fn get_index(dir: &Path, printed: &str) -> TestResult<usize> {
    let out = run(dir, &["get", printed, "--raw"]);
    ok(&out, &format!("get {printed:?}"));
    let i = (0..keys().len())
        .find(|&i| response(i) == out.stdout)
        .ok_or_else(|| format!("get {printed:?} answered another key's response"))?;
    assert_eq!(keys()[i].to_string(), printed, "get {printed:?} read another key");
    Ok(i)
}

#[test]
fn every_key_list_prints_is_read_back_by_get_and_remove() -> TestResult {
    let dir = store()?;
    let all = keys();

    // The text listing: the key is the first token of each row.
    let out = run(dir.path(), &["list", "--limit", "0"]);
    ok(&out, "list");
    let text = String::from_utf8(out.stdout)?;
    let mut printed: Vec<String> = text
        .lines()
        .skip(1) // header
        .filter(|l| !l.starts_with('('))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(printed.len(), all.len(), "{text}");
    let mut seen: Vec<usize> =
        printed.iter().map(|p| get_index(dir.path(), p)).collect::<TestResult<_>>()?;
    seen.sort_unstable();
    assert_eq!(seen, (0..all.len()).collect::<Vec<_>>(), "each key read back exactly once");

    // The JSON listing, a page of one at a time through `next` / `--after`.
    let mut from_json = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["--json", "list", "--limit", "1"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let out = run(dir.path(), &args);
        ok(&out, &format!("list --after {after:?}"));
        let j: Value = serde_json::from_slice(&out.stdout)?;
        for e in j["entries"].as_array().ok_or("entries")? {
            from_json.push(e["key"].as_str().ok_or("key")?.to_string());
        }
        match j["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    printed.sort();
    from_json.sort();
    assert_eq!(from_json, printed, "JSON and text print the same keys");

    // remove, as printed, removes exactly that key.
    for p in &printed {
        ok(&run(dir.path(), &["remove", p]), &format!("remove {p:?}"));
        assert_eq!(run(dir.path(), &["get", p]).status.code(), Some(1), "{p:?} is gone");
    }
    let out = run(dir.path(), &["--json", "list"]);
    let j: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(j["entries"].as_array().map(Vec::len), Some(0), "{j}");
    Ok(())
}

#[test]
fn the_old_hex_flag_still_reads_binary_ids() -> TestResult {
    let dir = store()?;
    let i = keys().iter().position(|k| k.id() == [0xff, 0x00, 0x01]).ok_or("binary key")?;
    for arg in ["s:ff0001", "s:0xff0001"] {
        let out = run(dir.path(), &["get", "--hex", arg, "--raw"]);
        ok(&out, arg);
        assert_eq!(out.stdout, response(i));
    }
    // Without --hex, "0xff0001" is the 8-byte UTF-8 id, another key.
    let j = keys().iter().position(|k| k.id() == b"0xff0001").ok_or("hex-like key")?;
    assert_eq!(run(dir.path(), &["get", "s:0xff0001", "--raw"]).stdout, response(j));
    Ok(())
}

#[test]
fn a_malformed_key_is_a_usage_error_saying_what_to_write() -> TestResult {
    let dir = store()?;
    let out = run(dir.path(), &["get", "s:100%"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("%25") && err.contains("invalid key"), "{err}");
    Ok(())
}
