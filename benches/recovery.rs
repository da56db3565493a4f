//! Recovery: the time `Config::open` takes on a directory whose journal holds
//! K entries after the last checkpoint (10 k; 1 M with `IDEMKV_BENCH_LARGE=1`;
//! 10 M with `IDEMKV_BENCH_HUGE=1`; 1 000 under `--test`) — replaying them
//! into sled, syncing sled, writing META and starting a fresh segment.
//!
//! # How the journal is produced
//! The directory must look exactly like what a crashed process leaves. A
//! clean close checkpoints (replaying nothing), and copying the directory of
//! a store that is still open would snapshot sled's files at different
//! instants while the applier and sled's flusher write them — a state no
//! crash can produce. So this binary re-executes itself as a child writer
//! (`IDEMKV_BENCH_RECOVERY_CHILD=<dir>:<K>`): it opens a store with
//! `checkpoint_interval(None).checkpoint_bytes(u64::MAX)` (no checkpoint
//! while running), writes K entries (K/2 claim + complete cycles, `Buffered`),
//! `flush()`es the journal and leaves through `std::process::exit(0)` without
//! dropping the store, i.e. without the final checkpoint. What it wrote is in
//! the OS page cache, as after a `SIGKILL`; sled holds whatever the applier
//! got to, and META's checkpoint still predates all K entries.
//!
//! Each measured open works on a fresh copy of that template (copied while
//! nothing has it open, untimed); closing the recovered store is untimed too.
//! One element = one journal entry replayed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use idemkv::Config;

const CHILD_ENV: &str = "IDEMKV_BENCH_RECOVERY_CHILD";

fn writer_config() -> Config {
    Config::new()
        .durability(common::buffered())
        .checkpoint_interval(None)
        .checkpoint_bytes(u64::MAX)
        .sweep_interval(None)
}

/// The child: write `entries` journal entries into `dir`, then die without
/// closing the store.
fn child_writer(spec: &str) -> ! {
    let (dir, entries) = spec.rsplit_once(':').expect("<dir>:<entries>");
    let entries: usize = entries.parse().expect("entry count");
    let store = common::open(Path::new(dir), writer_config());
    let keys = common::keys(common::fresh_space(), entries / 2);
    common::populate(&store, &keys, 2);
    store.flush().expect("flush");
    // No drop, no close, no checkpoint: the journal holds every entry.
    std::process::exit(0);
}

/// Produces the template directory with `entries` unreplayed journal entries.
fn template(entries: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    let status = Command::new(exe)
        .env(CHILD_ENV, format!("{}:{entries}", dir.path().display()))
        .status()
        .expect("running the child writer");
    assert!(status.success(), "child writer failed: {status}");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn recovery_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery_open");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for k in common::sizes(1_000) {
        let template = template(k);
        let expected = (k / 2 * 2) as u64;
        group.throughput(Throughput::Elements(expected));
        group.bench_function(BenchmarkId::new("journal_entries", k), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let work = tempfile::tempdir().expect("tempdir");
                    copy_dir(template.path(), work.path());
                    let start = Instant::now();
                    let store = Config::new().open(work.path()).expect("recovering open");
                    timed += start.elapsed();
                    let replayed = store.recovery_report().entries_replayed;
                    assert_eq!(replayed, expected, "every journal entry was replayed");
                    drop(store);
                }
                timed
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = recovery_open
}

fn main() {
    // Re-executed as the child writer: write the journal and die.
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child_writer(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
