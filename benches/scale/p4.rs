//! P4, many live records: lookup latency at N against 10 k, disk bytes per
//! raw byte, and memory against the cache budget.

use std::path::Path;
use std::time::{Duration, Instant};

use idemkv::{Claim, Key, Store};

use crate::common::SplitMix64;
use crate::common::report::{Hist, fmt_ns, fmt_ops};
use crate::latency::Run;
use crate::output::{Part, Val, fmt_bytes, fmt_count};
use crate::records::{
    CACHE_BYTES, NS, RAW_PER_RECORD, RESPONSE_LEN, SLED_CACHE_BYTES, base_config, fingerprint,
    id_bytes, populate,
};
use crate::{Opts, Res, SPACE_P4, SPACE_P4_REF, err, progress};

/// P4's allowance above the cache budget.
const RSS_SLACK: u64 = 256 << 20;
/// P4's reference store.
const REFERENCE_RECORDS: usize = 10_000;

/// Uniformly random lookups of records `0..n` of `space` on this thread:
/// `warmup` unrecorded, then `window` recorded (the claim call only).
fn lookups(store: &Store, space: u64, n: usize, warmup: Duration, window: Duration) -> Res<Run> {
    let fp = fingerprint();
    let mut rng = SplitMix64::new(0x5CA1E ^ space);
    let mut hist = Hist::new();
    let mut ops = 0;
    let origin = Instant::now();
    let (start, end) = (origin + warmup, origin + warmup + window);
    loop {
        let key = Key::new(NS, id_bytes(space, rng.below(n) as u64)).map_err(err)?;
        let t0 = Instant::now();
        let claim = store.claim(&key, fp).map_err(err)?;
        let t1 = Instant::now();
        match claim {
            Claim::Replay(done) if done.response().len() == RESPONSE_LEN => {}
            other => return Err(format!("lookup of {key} answered {other:?}")),
        }
        if t0 >= start {
            hist.record(t1 - t0);
            ops += 1;
        }
        if t1 >= end {
            let window = t1 - start;
            return Ok(Run { ops, window, hist });
        }
    }
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
#[derive(Clone, Copy)]
struct Mem {
    rss: u64,
    hwm: u64,
}

fn mem() -> Res<Mem> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    let field = |name: &str| -> Res<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or(format!("no {name} in /proc/self/status"))?;
        let kb = line.trim().trim_end_matches("kB").trim();
        kb.parse::<u64>().map(|kb| kb * 1024).map_err(|e| format!("{name} {kb}: {e}"))
    };
    Ok(Mem { rss: field("VmRSS:")?, hwm: field("VmHWM:")? })
}

/// Bytes of every file under `dir`: (apparent size, allocated blocks).
fn dir_bytes(dir: &Path) -> Res<(u64, u64)> {
    let (mut apparent, mut allocated) = (0, 0);
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(err)?;
        let meta = entry.metadata().map_err(err)?;
        if meta.is_dir() {
            let (a, b) = dir_bytes(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += allocated_bytes(&meta);
        }
    }
    Ok((apparent, allocated))
}

/// The apparent size of each entry of `dir` (a directory: all its files),
/// largest first.
fn top_level_bytes(dir: &Path) -> Res<Vec<(String, u64)>> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(err)?.path();
        let bytes = if path.is_dir() {
            dir_bytes(&path)?.0
        } else {
            std::fs::metadata(&path).map_err(err)?.len()
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        sizes.push((name, bytes));
    }
    sizes.sort_by_key(|&(_, bytes)| std::cmp::Reverse(bytes));
    Ok(sizes)
}

#[cfg(unix)]
fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

/// Runs P4 (see the crate documentation).
pub fn p4(opts: &Opts) -> Res<Part> {
    let n = opts.records;
    let mut part = Part::new("P4");
    let base = mem()?;

    // The 10 k reference, measured first and closed.
    progress(&format!("P4: populating the {REFERENCE_RECORDS}-record reference store"));
    let ref_dir = tempfile::tempdir().map_err(err)?;
    let store = base_config().open(ref_dir.path()).map_err(err)?;
    populate(&store, SPACE_P4_REF, 0..REFERENCE_RECORDS as u64, 2)?;
    store.checkpoint().map_err(err)?;
    let reference = lookups(&store, SPACE_P4_REF, REFERENCE_RECORDS, opts.warmup, opts.window)?;
    store.close().map_err(err)?;
    drop(ref_dir);

    progress(&format!("P4: populating {n} records from 2 threads"));
    let dir = tempfile::tempdir().map_err(err)?;
    let store = base_config().open(dir.path()).map_err(err)?;
    let populate_time = populate(&store, SPACE_P4, 0..n as u64, 2)?;
    let after_populate = mem()?;
    let t = Instant::now();
    store.checkpoint().map_err(err)?;
    let checkpoint_time = t.elapsed();
    progress(&format!("P4: lookups over {n} records"));
    let large = lookups(&store, SPACE_P4, n, opts.warmup, opts.window)?;
    // For information: the same store when the keys looked up fit the cache.
    let hot_n = REFERENCE_RECORDS.min(n);
    let hot = lookups(&store, SPACE_P4, hot_n, opts.warmup, opts.window)?;
    let after_lookups = mem()?;
    let t = Instant::now();
    store.close().map_err(err)?;
    let close_time = t.elapsed();
    let (apparent, allocated) = dir_bytes(dir.path())?;
    let parts_on_disk = top_level_bytes(dir.path())?;
    drop(dir);

    let rate = n as f64 / populate_time.as_secs_f64();
    part.info(
        format!("populate {} records (2 thr, Buffered 5 ms)", fmt_count(n)),
        format!(
            "{}/s ({:.1} s; checkpoint {:.2} s)",
            fmt_ops(rate),
            populate_time.as_secs_f64(),
            checkpoint_time.as_secs_f64()
        ),
    );
    part.info(
        format!("lookup {} (1 thr) p50/p99/p99.9, ops/s", fmt_count(REFERENCE_RECORDS)),
        reference.summary(),
    );
    part.info(format!("lookup {} (1 thr) p50/p99/p99.9, ops/s", fmt_count(n)), large.summary());
    part.info(
        format!("lookup {}, hot {} keys (cached), for info", fmt_count(n), fmt_count(hot_n)),
        hot.summary(),
    );
    let ratio = large.p99() as f64 / reference.p99().max(1) as f64;
    part.goal(
        format!("lookup p99 at {} / p99 at {}", fmt_count(n), fmt_count(REFERENCE_RECORDS)),
        "<= 2.00x".into(),
        format!("{ratio:.2}x ({} / {})", fmt_ns(large.p99()), fmt_ns(reference.p99())),
        ratio <= 2.0,
    );
    let raw = n as u64 * RAW_PER_RECORD;
    let disk_ratio = allocated.max(apparent) as f64 / raw as f64;
    part.goal(
        "disk after checkpoint+close / raw key+response".into(),
        "<= 2.50x".into(),
        format!(
            "{disk_ratio:.2}x ({} apparent, {} allocated / {} raw; {})",
            fmt_bytes(apparent),
            fmt_bytes(allocated),
            fmt_bytes(raw),
            parts_on_disk
                .iter()
                .take(2)
                .map(|(name, b)| format!("{name} {}", fmt_bytes(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        disk_ratio <= 2.5,
    );
    let limit = CACHE_BYTES + SLED_CACHE_BYTES + RSS_SLACK;
    let goal = format!("<= {} (caches + 256 MiB)", fmt_bytes(limit));
    let mem_text = |m: Mem| format!("VmRSS {}, VmHWM {}", fmt_bytes(m.rss), fmt_bytes(m.hwm));
    part.goal("memory after populate".into(), goal.clone(), mem_text(after_populate), {
        after_populate.hwm <= limit
    });
    part.goal(
        "memory after lookups".into(),
        goal,
        mem_text(after_lookups),
        after_lookups.hwm <= limit,
    );

    let f = &mut part.fields;
    f.push(("records".into(), Val::U(n as u64)));
    f.push(("reference_records".into(), Val::U(REFERENCE_RECORDS as u64)));
    f.push(("populate_threads".into(), Val::U(2)));
    f.push(("populate_s".into(), Val::F(populate_time.as_secs_f64())));
    f.push(("populate_records_per_sec".into(), Val::F(rate)));
    f.push(("checkpoint_s".into(), Val::F(checkpoint_time.as_secs_f64())));
    f.push(("close_s".into(), Val::F(close_time.as_secs_f64())));
    reference.fields("lookup_reference", f);
    large.fields("lookup", f);
    f.push(("lookup_hot_keys".into(), Val::U(hot_n as u64)));
    hot.fields("lookup_hot", f);
    f.push(("lookup_p99_ratio".into(), Val::F(ratio)));
    f.push(("raw_bytes".into(), Val::U(raw)));
    f.push(("disk_apparent_bytes".into(), Val::U(apparent)));
    f.push(("disk_allocated_bytes".into(), Val::U(allocated)));
    f.push(("disk_ratio".into(), Val::F(disk_ratio)));
    for (name, bytes) in &parts_on_disk {
        f.push((format!("disk_{name}_bytes"), Val::U(*bytes)));
    }
    f.push(("cache_bytes".into(), Val::U(CACHE_BYTES)));
    f.push(("sled_cache_bytes".into(), Val::U(SLED_CACHE_BYTES)));
    f.push(("rss_limit_bytes".into(), Val::U(limit)));
    f.push(("rss_before_bytes".into(), Val::U(base.rss)));
    f.push(("rss_after_populate_bytes".into(), Val::U(after_populate.rss)));
    f.push(("hwm_after_populate_bytes".into(), Val::U(after_populate.hwm)));
    f.push(("rss_after_lookups_bytes".into(), Val::U(after_lookups.rss)));
    f.push(("hwm_after_lookups_bytes".into(), Val::U(after_lookups.hwm)));
    Ok(part)
}
