//! `idemkv stats`: per namespace, the cumulative counters the store saves at
//! checkpoints (`Store::stats`) combined with a scan of the live records
//! (`Store::list`): duplicate rate, retry frequency, records by state,
//! expirations, orphans recovered and event latency. `--prometheus` prints
//! `Stats::to_prometheus()` instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use idemkv::{EntryState, Key, NamespaceStats, Stats};
use serde::Serialize;

use super::{Global, close, fmt_ms, ms, percentile, print_json};

/// Records read per `Store::list` page.
const PAGE: usize = 1024;

/// Arguments of `idemkv stats`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatsArgs {
    /// Print the counters in Prometheus text format (no record scan).
    #[arg(long)]
    pub prometheus: bool,
}

/// What the scan counted in one namespace.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Records {
    /// Live records.
    pub live: u64,
    /// In progress with a live lease held by a running process.
    pub in_flight: u64,
    /// In progress, but the lease ran out or its process is gone: the next
    /// claim acquires it with `recovered() == true`.
    pub orphaned: u64,
    /// Completed.
    pub completed: u64,
    /// Failed terminally.
    pub failed: u64,
    /// Claimable again (released or failed retryably).
    pub claimable: u64,
    #[serde(skip)]
    event_ms: Vec<u64>,
}

/// First claim to finish of the finished records, in ms.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct EventLatency {
    /// Finished records measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// One namespace's (or the total's) report.
#[derive(Debug, Serialize)]
pub struct NsReport {
    /// The namespace, or `*` for the total.
    pub namespace: String,
    /// Duplicate claims (replayed, in flight, mismatched) per claim.
    pub duplicate_rate: f64,
    /// Retries (acquisitions after a first attempt) per acquisition.
    pub retry_frequency: f64,
    /// Records by state, from the scan.
    pub records: Records,
    /// Records removed by the sweeper after their retention (counter).
    pub expired: u64,
    /// Orphaned claims acquired again (counter).
    pub orphans_recovered: u64,
    /// Event latency of the finished records.
    pub event_latency_ms: EventLatency,
    /// The library's cumulative counters (as of the last checkpoint; its
    /// latency fields cover only this process and are empty here).
    pub counters: NamespaceStats,
}

#[derive(Serialize)]
struct Report<'a> {
    store: &'a Path,
    namespaces: &'a [NsReport],
    total: &'a NsReport,
}

/// Runs `idemkv stats`.
pub fn run(g: &Global, args: &StatsArgs) -> Result<bool> {
    if args.prometheus && g.json {
        anyhow::bail!("--prometheus and --json cannot be used together");
    }
    let (store, dir) = g.open_existing()?;
    if args.prometheus {
        let text = store.stats().to_prometheus();
        close(store)?;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(true);
    }
    let stats = store.stats();
    let records = scan(g, &store)?;
    close(store)?;
    let (namespaces, total) = build(&stats, records);
    if g.json {
        print_json(&Report { store: &dir, namespaces: &namespaces, total: &total })?;
    } else {
        print_table(&dir, &namespaces, &total)?;
    }
    Ok(true)
}

/// Counts every live record by namespace and state, page by page.
fn scan(g: &Global, store: &idemkv::Store) -> Result<BTreeMap<String, Records>> {
    let pb = g.spinner("scanning records");
    let mut by_ns: BTreeMap<String, Records> = BTreeMap::new();
    let mut after: Option<Key> = None;
    loop {
        let page = store.list(None, after.as_ref(), PAGE)?;
        for e in &page {
            let r = by_ns.entry(e.key.namespace().to_string()).or_default();
            r.live += 1;
            match &e.state {
                EntryState::InProgress { orphaned: false, .. } => r.in_flight += 1,
                EntryState::InProgress { orphaned: true, .. } => r.orphaned += 1,
                EntryState::Finished(done) => {
                    if done.is_completed() {
                        r.completed += 1;
                    } else {
                        r.failed += 1;
                    }
                    let took = ms(done.finished_at()).saturating_sub(ms(done.first_claimed_at()));
                    r.event_ms.push(took);
                }
                EntryState::Claimable { .. } => r.claimable += 1,
                _ => {}
            }
        }
        pb.inc(page.len() as u64);
        if page.len() < PAGE {
            break;
        }
        after = page.last().map(|e| e.key.clone());
    }
    pb.finish_and_clear();
    Ok(by_ns)
}

fn build(stats: &Stats, mut records: BTreeMap<String, Records>) -> (Vec<NsReport>, NsReport) {
    let mut names: Vec<String> = stats.namespaces.keys().cloned().collect();
    names.extend(records.keys().filter(|n| !stats.namespaces.contains_key(*n)).cloned());
    names.sort();
    let mut total_counters = NamespaceStats::default();
    let mut total_records = Records::default();
    let mut reports = Vec::new();
    for name in names {
        let c = stats.namespaces.get(&name).cloned().unwrap_or_default();
        let r = records.remove(&name).unwrap_or_default();
        total_counters.merge(&c);
        add_records(&mut total_records, &r);
        reports.push(report(name, c, r));
    }
    (reports, report("*".into(), total_counters, total_records))
}

fn report(namespace: String, counters: NamespaceStats, mut records: Records) -> NsReport {
    records.event_ms.sort_unstable();
    let l = &records.event_ms;
    let event_latency_ms = EventLatency {
        count: l.len() as u64,
        p50: percentile(l, 0.5),
        p99: percentile(l, 0.99),
        max: l.last().copied().unwrap_or(0),
    };
    let dups = counters.replayed + counters.in_flight + counters.mismatches;
    NsReport {
        namespace,
        duplicate_rate: ratio(dups, counters.claims),
        retry_frequency: ratio(counters.retries, counters.acquired),
        expired: counters.expirations,
        orphans_recovered: counters.orphans_recovered,
        event_latency_ms,
        records,
        counters,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn add_records(t: &mut Records, r: &Records) {
    t.live += r.live;
    t.in_flight += r.in_flight;
    t.orphaned += r.orphaned;
    t.completed += r.completed;
    t.failed += r.failed;
    t.claimable += r.claimable;
    t.event_ms.extend_from_slice(&r.event_ms);
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn print_table(dir: &Path, namespaces: &[NsReport], total: &NsReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "store {}: {} live records in {} namespace{}",
        dir.display(),
        total.records.live,
        namespaces.len(),
        if namespaces.len() == 1 { "" } else { "s" }
    )?;
    if namespaces.is_empty() {
        out.flush()?;
        return Ok(());
    }
    let mut cols: Vec<&NsReport> = namespaces.iter().collect();
    if namespaces.len() > 1 {
        cols.push(total);
    }
    type Row = (&'static str, fn(&NsReport) -> String);
    let rows: [Row; 17] = [
        ("claims", |r| r.counters.claims.to_string()),
        ("duplicate rate", |r| pct(r.duplicate_rate)),
        ("  replayed", |r| r.counters.replayed.to_string()),
        ("  while in flight", |r| r.counters.in_flight.to_string()),
        ("  fingerprint mismatch", |r| r.counters.mismatches.to_string()),
        ("acquired", |r| r.counters.acquired.to_string()),
        ("retry frequency", |r| format!("{} ({})", pct(r.retry_frequency), r.counters.retries)),
        ("orphans recovered", |r| r.orphans_recovered.to_string()),
        ("expired (swept)", |r| r.expired.to_string()),
        ("in flight", |r| r.records.in_flight.to_string()),
        ("in progress, orphaned", |r| r.records.orphaned.to_string()),
        ("completed", |r| r.records.completed.to_string()),
        ("failed", |r| r.records.failed.to_string()),
        ("claimable", |r| r.records.claimable.to_string()),
        ("event latency p50", |r| lat(r, r.event_latency_ms.p50)),
        ("event latency p99", |r| lat(r, r.event_latency_ms.p99)),
        ("event latency max", |r| lat(r, r.event_latency_ms.max)),
    ];
    let cells: Vec<Vec<String>> =
        rows.iter().map(|(_, f)| cols.iter().map(|r| f(r)).collect()).collect();
    let label_w = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            let head = if cols[i].namespace == "*" { 5 } else { cols[i].namespace.chars().count() };
            cells.iter().map(|row| row[i].chars().count()).max().unwrap_or(0).max(head)
        })
        .collect();
    write!(out, "{:label_w$}", "")?;
    for (c, w) in cols.iter().zip(&widths) {
        let name = if c.namespace == "*" { "total" } else { c.namespace.as_str() };
        write!(out, "  {name:>w$}")?;
    }
    writeln!(out)?;
    for ((label, _), row) in rows.iter().zip(&cells) {
        write!(out, "{label:label_w$}")?;
        for (cell, w) in row.iter().zip(&widths) {
            write!(out, "  {cell:>w$}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "counters: cumulative as of the last checkpoint; records: live now; \
         event latency: first claim to finish of the finished records"
    )?;
    let finished = total.records.completed + total.records.failed;
    let counted = total.counters.completions + total.counters.failures_terminal;
    if counted < finished {
        writeln!(
            out,
            "note: {finished} finished records but {counted} completions and terminal failures \
             counted: counts made after the last checkpoint before a crash are lost \
             (and imported records carry none)"
        )?;
    }
    out.flush()?;
    Ok(())
}

fn lat(r: &NsReport, v: u64) -> String {
    if r.event_latency_ms.count == 0 { "-".into() } else { fmt_ms(v) }
}
