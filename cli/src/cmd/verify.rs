//! `idemkv verify`: checks the store. Opening it already replays and checks
//! the journal (a torn or damaged tail is cut off: `Store::recovery_report`);
//! then `Store::verify` decodes and checksums every record. Exit 1, with the
//! offending keys, when a record (or META, or the journal's continuity) is
//! corrupt; with `--strict`, also when the journal had a damaged tail or
//! sled's record count had to be rebuilt after an unclean end.

use std::io::Write;

use anyhow::Result;
use idemkv::{Error, RecoveryReport};
use serde_json::json;

use super::{Global, close, display_raw_key, print_json};

/// Arguments of `idemkv verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Also fail when recovery cut a damaged journal tail (normally the
    /// harmless trace of a crash mid-write).
    #[arg(long)]
    pub strict: bool,
}

/// Runs `idemkv verify`.
pub fn run(g: &Global, args: &VerifyArgs) -> Result<bool> {
    let (store, dir) = match g.open_existing() {
        Ok(opened) => opened,
        Err(e) => {
            // Corruption found while opening (META, journal continuity) is a
            // failed check, not a usage error.
            if let Some(corrupt @ Error::Corrupt { .. }) = e.downcast_ref::<Error>() {
                if g.json {
                    print_json(&json!({ "ok": false, "open_error": corrupt.to_string() }))?;
                }
                eprintln!("idemkv: verify: the store cannot be opened: {corrupt}");
                return Ok(false);
            }
            return Err(e);
        }
    };
    let recovery = store.recovery_report().clone();
    let pb = g.spinner("verifying records");
    let report = store.verify();
    pb.finish_and_clear();
    let report = report?;
    if report.lost.is_some() {
        // The loss poisoned the store: its close reports that again; the
        // verdict below is what matters (exit 1).
        let _ = store.close();
    } else {
        close(store)?;
    }
    let journal_damaged = recovery.bytes_dropped > 0 || recovery.damage.is_some();
    let ok = report.is_ok() && !(args.strict && (journal_damaged || report.rebuilt.is_some()));
    if g.json {
        let corrupt: Vec<_> = report
            .corrupt
            .iter()
            .map(|(raw, reason)| json!({ "key": display_raw_key(raw), "reason": reason }))
            .collect();
        print_json(&json!({
            "store": dir,
            "ok": ok,
            "records": report.records,
            "expected_records": report.expected_records,
            "lost": report.lost,
            "rebuilt": report.rebuilt,
            "corrupt": corrupt,
            "recovery": recovery_json(&recovery),
        }))?;
        return Ok(ok);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "store {}", dir.display())?;
    writeln!(
        out,
        "journal: {} segment{} read, {} entries replayed, {} already checkpointed, last entry {}",
        recovery.segments,
        if recovery.segments == 1 { "" } else { "s" },
        recovery.entries_replayed,
        recovery.entries_skipped,
        recovery.last_seq
    )?;
    if journal_damaged {
        writeln!(
            out,
            "journal: damaged tail cut off at open: {} bytes dropped ({})",
            recovery.bytes_dropped,
            recovery.damage.as_deref().unwrap_or("no detail")
        )?;
    } else {
        writeln!(out, "journal: intact")?;
    }
    if report.corrupt.is_empty() {
        writeln!(out, "records: {} checked, all OK", report.records)?;
    } else {
        writeln!(out, "records: {} checked, {} CORRUPT:", report.records, report.corrupt.len())?;
        for (raw, reason) in &report.corrupt {
            writeln!(out, "  {}: {reason}", display_raw_key(raw))?;
        }
        writeln!(
            out,
            "(`idemkv remove KEY` deletes a damaged record; its next claim starts afresh)"
        )?;
    }
    if let Some(rebuilt) = &report.rebuilt {
        writeln!(out, "sled: count rebuilt: {rebuilt}")?;
    }
    if let Some(lost) = &report.lost {
        writeln!(out, "sled: LOST DATA: {lost}")?;
    } else if let Some(n) = report.expected_records {
        writeln!(out, "sled: {n} records, as its marker says")?;
    }
    writeln!(out, "{}", if ok { "OK" } else { "FAILED" })?;
    out.flush()?;
    if report.lost.is_some() {
        eprintln!("idemkv: verify: sled lost records");
    } else if !report.corrupt.is_empty() {
        eprintln!("idemkv: verify: {} corrupt record(s)", report.corrupt.len());
    } else if !ok && report.rebuilt.is_some() {
        eprintln!("idemkv: verify: sled's count had to be rebuilt after an unclean end (--strict)");
    } else if !ok {
        eprintln!("idemkv: verify: the journal had a damaged tail (--strict)");
    }
    Ok(ok)
}

fn recovery_json(r: &RecoveryReport) -> serde_json::Value {
    json!({
        "segments": r.segments,
        "entries_replayed": r.entries_replayed,
        "entries_skipped": r.entries_skipped,
        "last_seq": r.last_seq,
        "bytes_dropped": r.bytes_dropped,
        "damage": r.damage,
    })
}
