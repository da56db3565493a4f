//! `idemkv bench`: a quick built-in load on a fresh store — `--ops` keys
//! each claimed and completed (one cycle), then claimed again as duplicates
//! (replayed lookups) — by `--threads` threads; prints ops/s and exact
//! p50/p99/p99.9 latencies per phase. The store lives in a temporary
//! directory removed afterwards, unless `--path` names a new or empty
//! directory, which is kept for inspection.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use idemkv::{Claim, Config, Durability, Key, Store};
use indicatif::ProgressBar;
use serde::Serialize;

use super::{Global, fmt_ns, percentile, print_json};

/// The namespace the bench writes.
const NS: &str = "bench";
/// Progress is reported every this many operations per thread.
const TICK: u64 = 256;

/// `--durability` of `idemkv bench`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchDurability {
    /// Every transition fsynced before it returns (group commit).
    Durable,
    /// Transitions return at once; fsync within 5 ms.
    Buffered,
}

/// Arguments of `idemkv bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Keys to claim and complete (then to look up again as duplicates).
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub ops: u64,
    /// Client threads.
    #[arg(long, default_value_t = 8, value_name = "T")]
    pub threads: usize,
    /// Durability mode of the store.
    #[arg(long, value_enum, default_value_t = BenchDurability::Durable)]
    pub durability: BenchDurability,
}

/// One phase's result.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// `claim+complete` or `duplicate claim`.
    pub name: &'static str,
    /// Operations (cycles or lookups).
    pub ops: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
    /// Operations that did not get the expected answer.
    pub unexpected: u64,
}

#[derive(Serialize)]
struct Report<'a> {
    store: &'a Path,
    temporary: bool,
    ops: u64,
    threads: usize,
    durability: &'static str,
    phases: &'a [Phase],
}

/// Removes the temporary bench directory when dropped.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `idemkv bench`.
pub fn run(g: &Global, args: &BenchArgs) -> Result<bool> {
    if args.ops == 0 || args.ops > 100_000_000 {
        bail!("--ops must be from 1 to 100000000, not {}", args.ops);
    }
    if args.threads == 0 || args.threads > 1024 {
        bail!("--threads must be from 1 to 1024, not {}", args.threads);
    }
    let (dir, temporary) = match &g.path {
        Some(p) => {
            let empty = match std::fs::read_dir(p) {
                Ok(mut entries) => entries.next().is_none(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
            };
            if !empty {
                bail!(
                    "refusing to bench in {}: it is not empty (bench writes {} keys); \
                     pass a new directory, or no --path for a temporary one",
                    p.display(),
                    args.ops
                );
            }
            (p.clone(), false)
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("idemkv-bench-{}-{nanos}", std::process::id());
            (std::env::temp_dir().join(name), true)
        }
    };
    let _cleanup = TempDir(temporary.then(|| dir.clone()));
    let (durability, mode) = match args.durability {
        BenchDurability::Durable => (Durability::Durable, "durable"),
        BenchDurability::Buffered => {
            (Durability::Buffered { max_delay: Duration::from_millis(5) }, "buffered")
        }
    };
    let store = Config::new().durability(durability).open(&dir)?;
    let where_ = if temporary { "temporary, removed afterwards" } else { "kept" };
    if !g.json {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "bench: {} keys, {} threads, {mode}; store in {} ({where_})",
            args.ops,
            args.threads,
            dir.display()
        )?;
        out.flush()?;
    }
    let keys: Vec<Key> =
        (0..args.ops).map(|i| Key::new(NS, format!("k{i:09}"))).collect::<idemkv::Result<_>>()?;
    let pb = g.bar(args.ops * 2, "bench", false);
    let cycles = phase(&store, &keys, args.threads, &pb, "claim+complete", cycle)?;
    let lookups = phase(&store, &keys, args.threads, &pb, "duplicate claim", lookup)?;
    pb.finish_and_clear();
    store.close().map_err(|e| anyhow::anyhow!("closing the bench store: {e}"))?;
    let phases = [cycles, lookups];
    let unexpected: u64 = phases.iter().map(|p| p.unexpected).sum();
    if g.json {
        print_json(&Report {
            store: &dir,
            temporary,
            ops: args.ops,
            threads: args.threads,
            durability: mode,
            phases: &phases,
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>11} {:>10} {:>10} {:>10}",
            "phase", "ops", "time", "ops/s", "p50", "p99", "p99.9"
        )?;
        for p in &phases {
            writeln!(
                out,
                "{:<16} {:>9} {:>7.2} s {:>11.0} {:>10} {:>10} {:>10}",
                p.name,
                p.ops,
                p.seconds,
                p.ops_per_sec,
                fmt_ns(p.p50_ns),
                fmt_ns(p.p99_ns),
                fmt_ns(p.p999_ns)
            )?;
        }
        out.flush()?;
    }
    if unexpected > 0 {
        eprintln!("idemkv: bench: {unexpected} operations got an unexpected answer");
        return Ok(false);
    }
    Ok(true)
}

/// Claims and completes a new key; true if it was acquired and completed.
fn cycle(store: &Store, key: &Key) -> Result<bool> {
    match store.claim(key, None)? {
        Claim::Acquired(guard) => {
            guard.complete(key.id())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Claims a completed key again; true if its response was replayed.
fn lookup(store: &Store, key: &Key) -> Result<bool> {
    Ok(matches!(store.claim(key, None)?, Claim::Replay(r) if r.response() == key.id()))
}

/// Runs `op` on every key from `threads` threads, timing each call.
fn phase(
    store: &Store,
    keys: &[Key],
    threads: usize,
    pb: &ProgressBar,
    name: &'static str,
    op: fn(&Store, &Key) -> Result<bool>,
) -> Result<Phase> {
    let started = Instant::now();
    let per_thread: Vec<Result<(Vec<u64>, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<(Vec<u64>, u64)> {
                    let mut lat = Vec::with_capacity(keys.len() / threads + 1);
                    let mut bad = 0;
                    for key in keys.iter().skip(t).step_by(threads) {
                        let at = Instant::now();
                        let ok = op(store, key)?;
                        lat.push(at.elapsed().as_nanos() as u64);
                        bad += u64::from(!ok);
                        if (lat.len() as u64).is_multiple_of(TICK) {
                            pb.inc(TICK);
                        }
                    }
                    pb.inc(lat.len() as u64 % TICK);
                    Ok((lat, bad))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a bench thread panicked")))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut all = Vec::with_capacity(keys.len());
    let mut unexpected = 0;
    for r in per_thread {
        let (lat, bad) = r.with_context(|| format!("bench phase {name}"))?;
        all.extend(lat);
        unexpected += bad;
    }
    all.sort_unstable();
    Ok(Phase {
        name,
        ops: all.len() as u64,
        seconds,
        ops_per_sec: all.len() as f64 / seconds.max(1e-9),
        p50_ns: percentile(&all, 0.5),
        p99_ns: percentile(&all, 0.99),
        p999_ns: percentile(&all, 0.999),
        max_ns: all.last().copied().unwrap_or(0),
        unexpected,
    })
}
