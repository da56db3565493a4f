//! `idemkv export`: every live record as JSON Lines of `ExportedRecord`
//! (`Store::export`), to a file or stdout. `idemkv import` reads it back
//! byte-exact, expiry times included.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use super::{Global, close, print_json};

/// Arguments of `idemkv export`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Where to write the JSON Lines; `-` is stdout.
    #[arg(long, short = 'o', default_value = "-", value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `idemkv export`.
pub fn run(g: &Global, args: &ExportArgs) -> Result<bool> {
    let to_stdout = args.output.as_os_str() == "-";
    let (store, dir) = g.open_existing()?;
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        let f = File::create(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
        Box::new(f)
    };
    let mut w = BufWriter::with_capacity(1 << 16, sink);
    let pb = g.spinner("exporting records");
    let mut write_err: Option<anyhow::Error> = None;
    let exported = store.export(|rec| {
        let written = serde_json::to_writer(&mut w, &rec)
            .map_err(anyhow::Error::from)
            .and_then(|()| w.write_all(b"\n").map_err(anyhow::Error::from));
        if let Err(e) = written {
            write_err = Some(e);
            return Err(idemkv::Error::Io {
                context: "writing the export".into(),
                source: std::io::Error::other("write failed"),
            });
        }
        pb.inc(1);
        Ok(())
    });
    pb.finish_and_clear();
    let target = if to_stdout { "stdout".to_string() } else { args.output.display().to_string() };
    if let Some(e) = write_err {
        return Err(e.context(format!("writing the export to {target}")));
    }
    let n = exported?;
    w.flush().with_context(|| format!("writing the export to {target}"))?;
    let inner = w.into_inner().map_err(|e| e.into_error())?;
    drop(inner);
    if !to_stdout {
        File::open(&args.output)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", args.output.display()))?;
    }
    close(store)?;
    let summary = format!(
        "exported {n} record{} from {} to {target}",
        if n == 1 { "" } else { "s" },
        dir.display()
    );
    if to_stdout {
        // stdout carries the records: the summary goes to stderr.
        if !g.json {
            eprintln!("{summary}");
        }
    } else if g.json {
        print_json(&json!({ "store": dir, "output": args.output, "exported": n }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{summary}")?;
        out.flush()?;
    }
    Ok(true)
}
