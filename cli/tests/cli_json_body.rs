//! `idemkv get` shows a body stored through the typed API as JSON — in the
//! human output as JSON text, in `--json` as a JSON value with
//! `"format": "json"` — and a raw body as before.

use std::process::{Command, Stdio};

use idemkv::{Json, Key, Store};
use serde_json::{Value, json};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn get(dir: &std::path::Path, args: &[&str]) -> TestResult<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .arg("--path")
        .arg(dir)
        .arg("get")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn a_json_body_is_shown_as_json_and_a_raw_one_as_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receipt = json!({"charge": "ch_1", "amount": 1200, "tags": ["a", "é"]});
    {
        let store = Store::open(dir.path())?;
        let g = store.claim(&Key::new("stripe", "typed")?, None)?.into_guard().expect("new");
        g.complete(Json(&receipt))?;
        let g = store.claim(&Key::new("stripe", "raw")?, None)?.into_guard().expect("new");
        g.complete(br#"{"looks":"like json"}"#)?;
        store.close()?;
    }
    let human = get(dir.path(), &["stripe:typed"])?;
    assert!(human.contains("format        json"), "{human}");
    assert!(human.contains(r#"{"amount":1200,"charge":"ch_1","tags":["a","é"]}"#), "{human}");

    let typed: Value = serde_json::from_str(&get(dir.path(), &["--json", "stripe:typed"])?)?;
    assert_eq!(typed["format"], "json");
    assert_eq!(typed["response"], receipt, "the body as a JSON value, not a string: {typed}");

    let raw: Value = serde_json::from_str(&get(dir.path(), &["--json", "stripe:raw"])?)?;
    assert_eq!(raw["format"], "bytes");
    assert_eq!(raw["response"], r#"{"looks":"like json"}"#, "a raw body stays a string: {raw}");
    Ok(())
}
