//! `idemkv remove KEY`: deletes one key's record (`Store::remove`), even a
//! corrupt one; the next claim of the key starts afresh. Exit 1 when there
//! was no live record to remove.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use super::{Global, close, parse_key, print_json};

/// Arguments of `idemkv remove`.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoveArgs {
    /// The key as `list` prints it: `NAMESPACE:ID`, split at the first
    /// `:`; `%XX` stands for the byte XX (`%3A` is `:` in a namespace, `%25`
    /// is `%`, `%FF` a non-UTF-8 byte).
    pub key: String,
    /// The id (after unescaping) is given in hex, e.g. `github:ff0001`.
    #[arg(long)]
    pub hex: bool,
}

/// Runs `idemkv remove`.
pub fn run(g: &Global, args: &RemoveArgs) -> Result<bool> {
    let key = parse_key(&args.key, args.hex)?;
    let (store, _) = g.open_existing()?;
    let removed = store.remove(&key)?;
    close(store)?;
    if g.json {
        print_json(&json!({ "key": args.key, "removed": removed }))?;
    } else if removed {
        let mut out = std::io::stdout().lock();
        writeln!(out, "removed {key}")?;
        out.flush()?;
    }
    if !removed {
        eprintln!("idemkv: nothing removed: no live record for {key}");
    }
    Ok(removed)
}
