//! Duplicate lookup: `claim` of a key that is already completed, answered
//! `Replay` — the path every redelivered webhook takes.
//!
//! - `lookup_hot`: the records fit idemkv's record cache (sized to hold them
//!   all), so a lookup is a shard lock, a cache hit and the fingerprint check.
//! - `lookup_cold`: `Config::cache_bytes` of 64 KiB (about 3 records per
//!   shard) and a 1 MiB sled page cache, so almost every lookup misses the
//!   record cache and reads and decodes the record from sled under the shard
//!   lock (sled's pages are then mostly in the OS page cache, not on disk).
//!
//! Keys are drawn uniformly at random (splitmix64, fixed seeds) from the
//! populated set; 1 thread uses `iter`, 2 threads `iter_custom` with std
//! threads. The store is `Durable` (the default); a lookup of an applied
//! record writes nothing and waits for no fsync, so the mode does not matter.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use idemkv::{Claim, Config, Fingerprint, Key, Store};

use common::SplitMix64;

fn lookup_once(store: &Store, key: &Key, fp: Fingerprint) {
    match store.claim(key, fp).expect("claim") {
        Claim::Replay(done) => {
            black_box(done.response());
        }
        other => panic!("expected a replay of {key}, got {other:?}"),
    }
}

/// A store in a temp dir holding `n` completed keys, all applied to sled.
fn setup(n: usize, config: Config) -> (tempfile::TempDir, Store, Vec<Key>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        common::open(dir.path(), config.durability(common::buffered()).sweep_interval(None));
    let keys = common::keys(common::fresh_space(), n);
    common::populate(&store, &keys, 2);
    // Reopen in the default Durable mode (the records are now in sled), then
    // read every key once so the hot cache holds them all.
    let config = store.config().clone().durability(idemkv::Durability::Durable);
    drop(store);
    let store = common::open(dir.path(), config);
    let fp = common::fingerprint();
    std::thread::scope(|s| {
        for part in keys.chunks(keys.len().div_ceil(2)) {
            let store = &store;
            s.spawn(move || part.iter().for_each(|k| lookup_once(store, k, fp)));
        }
    });
    (dir, store, keys)
}

fn bench_lookup(c: &mut Criterion, name: &str, config_for: impl Fn(usize) -> Config) {
    let fp = common::fingerprint();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for n in common::sizes(2_000) {
        let (_dir, store, keys) = setup(n, config_for(n));
        let id = |t: usize| BenchmarkId::new(format!("{t}_thread"), format!("{n}_records"));
        group.bench_function(id(1), |b| {
            let mut rng = SplitMix64::new(0x5EED_0001);
            b.iter(|| lookup_once(&store, &keys[rng.below(keys.len())], fp));
        });
        group.bench_function(id(2), |b| {
            b.iter_custom(|iters| {
                common::fan_out(2, iters, |t, ops| {
                    let (store, keys) = (&store, &keys);
                    let mut rng = SplitMix64::new(0x5EED_0100 + t as u64);
                    move || {
                        for _ in 0..ops {
                            lookup_once(store, &keys[rng.below(keys.len())], fp);
                        }
                    }
                })
            });
        });
    }
    group.finish();
}

fn lookup_hot(c: &mut Criterion) {
    // ~1 KiB of budget per record: every record fits (the cache weighs one
    // at key + body + 160 bytes, ~320 here, and holds cache_bytes/512 items).
    bench_lookup(c, "lookup_hot", |n| Config::new().cache_bytes((n as u64 * 1024).max(64 << 20)));
}

fn lookup_cold(c: &mut Criterion) {
    bench_lookup(c, "lookup_cold", |_| {
        Config::new().cache_bytes(64 << 10).sled_cache_bytes(1 << 20)
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(2));
    targets = lookup_hot, lookup_cold
}
criterion::criterion_main!(benches);
