//! Guards `list` paging with a namespace filter: an `after` key from another namespace (earlier or later in key order) never hides the namespace's records — after an earlier namespace's key the listing starts at the namespace, after a later one it is empty — through the library and the CLI's `--after`.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::{TestResult, acquire};
use idemkv::{Key, Store};

#[test]
fn after_a_key_of_another_namespace_lists_the_namespace_from_its_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    for ns in ["a", "b", "c"] {
        for i in 0..5 {
            let lease = acquire(&store, &Key::new(ns, format!("{i}"))?, None)?;
            store.complete(&lease, b"r")?;
        }
    }
    let b_ids = |after: &Key| -> idemkv::Result<Vec<Vec<u8>>> {
        Ok(store.list(Some("b"), Some(after), 100)?.iter().map(|e| e.key.id().to_vec()).collect())
    };
    let all_b: Vec<Vec<u8>> = (0..5).map(|i| format!("{i}").into_bytes()).collect();
    assert_eq!(b_ids(&Key::new("a", "2")?)?, all_b, "after an earlier namespace's key");
    assert_eq!(b_ids(&Key::new("a", "9")?)?, all_b, "after a key that does not exist");
    assert_eq!(b_ids(&Key::new("b", "2")?)?, all_b[3..].to_vec(), "within the namespace");
    assert!(b_ids(&Key::new("c", "0")?)?.is_empty(), "after a later namespace's key");
    store.close()?;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .arg("--path")
        .arg(dir.path())
        .args(["--json", "list", "--namespace", "b", "--after", "a:2"])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let entries = json["entries"].as_array().ok_or("entries")?;
    assert_eq!(entries.len(), 5, "{json}");
    Ok(())
}
