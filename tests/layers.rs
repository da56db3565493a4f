//! Guards the layering of the library: a module imports only from modules
//! below it (docs/DESIGN.md, "Layers"). Reads every file under `src/` and
//! fails on any `crate::X` path that points up. The CLI, a client of the
//! library rather than a layer, is the `idemkv-cli` package in `cli/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, top first. Within the leaves the order is
/// the one their imports already follow.
const LAYERS: &[&str] = &[
    "http",     // the HTTP layer over the public front (the `http` feature)
    "store",    // the public front
    "embedded", // the embedded backend
    "stripe",   // pure stripe state
    "engine",   // journal, applier, checkpoint, META, tokens, sled storage
    "format",   // byte layouts
    "core",     // the contract and the backend boundary
    "config",   // leaves from here down
    "metrics",
    "key",
    "fingerprint",
    "clock",
    "poison",
    "io",
    "error",
    "text",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for `lib.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(name) => Some(name.to_string()),
        None => Some(first),
    }
}

/// Every `crate::name` in `text`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let name: String =
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn imports_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen = 0;
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let Some(&mine) = rank.get(module.as_str()) else {
            wrong.push(format!("{}: module `{module}` is not in LAYERS", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read file");
        for target in crate_paths(&text) {
            seen += 1;
            match rank.get(target.as_str()) {
                Some(&theirs) if theirs >= mine => {}
                Some(_) => wrong.push(format!(
                    "{}: `{module}` uses `crate::{target}`, a layer above it",
                    file.display()
                )),
                // `crate::Error` and other re-exports at the root.
                None if target.starts_with(|c: char| c.is_ascii_uppercase()) => {}
                None => wrong.push(format!("{}: unknown module `crate::{target}`", file.display())),
            }
        }
    }
    assert!(seen > 100, "only {seen} crate:: paths found: is the scan broken?");
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_catches_an_upward_import() {
    assert_eq!(crate_paths("use crate::store::Store; crate::Error"), ["store", "Error"]);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m).expect("known");
    assert!(rank("engine") > rank("store"), "engine lies below the front");
    assert!(rank("stripe") < rank("engine"), "stripes sit above the engine");
}
