//! `idemkv sweep`: removes every expired record now (`Store::sweep`), as
//! the background sweeper of a running store does every second.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use super::{Global, close, print_json};

/// Arguments of `idemkv sweep`.
#[derive(clap::Args, Debug, Clone)]
pub struct SweepArgs {}

/// Runs `idemkv sweep`.
pub fn run(g: &Global, _args: &SweepArgs) -> Result<bool> {
    let (store, dir) = g.open_existing()?;
    let pb = g.spinner("sweeping expired records");
    let swept = store.sweep();
    pb.finish_and_clear();
    let swept = swept?;
    close(store)?;
    if g.json {
        print_json(&json!({ "store": dir, "swept": swept }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "swept {swept} expired record{} from {}",
            if swept == 1 { "" } else { "s" },
            dir.display()
        )?;
        out.flush()?;
    }
    Ok(true)
}
