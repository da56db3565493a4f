//! `idemkv import`: reads JSON Lines of `ExportedRecord` (the output of
//! `idemkv export`) and stores each record under its key (`Store::import`),
//! expiry included; creates the store if there is none. A bad line stops
//! the import with its line number; the lines before it stay imported.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use idemkv::ExportedRecord;
use serde_json::json;

use super::{Global, close, print_json};

/// Arguments of `idemkv import`.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// The JSON Lines to read; `-` is stdin.
    #[arg(long, short = 'i', default_value = "-", value_name = "FILE")]
    pub input: PathBuf,
}

/// Runs `idemkv import`.
pub fn run(g: &Global, args: &ImportArgs) -> Result<bool> {
    let from_stdin = args.input.as_os_str() == "-";
    let name = if from_stdin { "stdin".to_string() } else { args.input.display().to_string() };
    let (source, len): (Box<dyn Read>, Option<u64>) = if from_stdin {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = File::open(&args.input).with_context(|| format!("opening {name}"))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let (store, dir) = g.open_or_create()?;
    let pb = match len {
        Some(len) => g.bar(len, "importing", true),
        None => g.spinner("importing records"),
    };
    let result = import_lines(
        &store,
        BufReader::new(source),
        &name,
        |bytes| {
            if len.is_some() {
                pb.inc(bytes);
            }
        },
        || {
            if len.is_none() {
                pb.inc(1);
            }
        },
    );
    pb.finish_and_clear();
    let closed = close(store);
    let n = result?;
    closed?;
    if g.json {
        print_json(&json!({ "store": dir, "input": name, "imported": n }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "imported {n} record{} from {name} into {}",
            if n == 1 { "" } else { "s" },
            dir.display()
        )?;
        out.flush()?;
    }
    Ok(true)
}

/// Imports every non-empty line; the error names the line.
fn import_lines(
    store: &idemkv::Store,
    mut reader: impl BufRead,
    name: &str,
    mut read_bytes: impl FnMut(u64),
    mut imported_one: impl FnMut(),
) -> Result<u64> {
    let mut line = String::new();
    let mut n = 0u64;
    for line_no in 1u64.. {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {name} at line {line_no}"))?;
        if read == 0 {
            break;
        }
        read_bytes(read as u64);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let before = || {
            if n == 0 {
                "nothing was imported".to_string()
            } else {
                format!("the {n} record{} before it were imported", if n == 1 { "" } else { "s" })
            }
        };
        let rec: ExportedRecord = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => bail!("{name} line {line_no}: not an exported record: {e} ({})", before()),
        };
        if let Err(e) = store.import(&rec) {
            bail!("{name} line {line_no}: {e} ({})", before());
        }
        n += 1;
        imported_one();
    }
    Ok(n)
}
