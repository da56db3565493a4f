//! The write path: `claim` of a key never seen before (→ `Acquired`), and a
//! full `claim` + `complete` cycle, in `Buffered { max_delay: 5 ms }` and in
//! `Durable` mode, from 1 and 2 threads.
//!
//! Every operation uses a fresh key (splitmix64-mixed ids, generated outside
//! the timed region), so the store grows for the whole run as a real one
//! does: the applier writes everything into sled behind the journal. In
//! `Durable` every transition waits for its journal `fdatasync`; with 2
//! threads concurrent callers share one (group commit). 1 thread uses
//! `iter_batched`, 2 threads `iter_custom` with std threads (one element = one
//! claim, or one claim + complete cycle).

mod common;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group};
use idemkv::{Claim, Config, Durability, Fingerprint, Key, Store};

fn acquire(store: &Store, key: &Key, fp: Fingerprint) -> idemkv::Lease {
    match store.claim(key, fp).expect("claim") {
        Claim::Acquired(lease) => lease.into_lease(),
        other => panic!("expected Acquired for new key {key}, got {other:?}"),
    }
}

fn cycle(store: &Store, key: &Key, fp: Fingerprint) {
    let lease = acquire(store, key, fp);
    store.complete(&lease, common::RESPONSE).expect("complete");
}

fn run(group: &mut BenchmarkGroup<'_, WallTime>, store: &Store, with_complete: bool) {
    let fp = common::fingerprint();
    group.bench_function("1_thread", |b| {
        let space = common::fresh_space();
        let mut i = 0;
        let mut next = || {
            i += 1;
            common::key(space, i)
        };
        if with_complete {
            b.iter_batched(&mut next, |k| cycle(store, &k, fp), BatchSize::SmallInput);
        } else {
            b.iter_batched(&mut next, |k| acquire(store, &k, fp), BatchSize::SmallInput);
        }
    });
    group.bench_function("2_threads", |b| {
        b.iter_custom(|iters| {
            common::fan_out(2, iters, |_, ops| {
                let keys = common::keys(common::fresh_space(), ops as usize);
                move || {
                    for k in &keys {
                        if with_complete {
                            cycle(store, k, fp);
                        } else {
                            drop(acquire(store, k, fp));
                        }
                    }
                    keys // dropped after the clock stopped
                }
            })
        });
    });
}

fn bench_mode(c: &mut Criterion, workload: &str, with_complete: bool) {
    for (mode, durability) in [("buffered", common::buffered()), ("durable", Durability::Durable)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = common::open(dir.path(), Config::new().durability(durability));
        let mut group = c.benchmark_group(format!("{workload}_{mode}"));
        group.throughput(Throughput::Elements(1));
        if durability == Durability::Durable {
            // Each operation waits for an fdatasync (hundreds of µs).
            group.sample_size(20).measurement_time(Duration::from_secs(5));
        }
        run(&mut group, &store, with_complete);
        group.finish();
    }
}

fn claim_new(c: &mut Criterion) {
    bench_mode(c, "claim_new", false);
}

fn claim_complete(c: &mut Criterion) {
    bench_mode(c, "claim_complete", true);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(2));
    targets = claim_new, claim_complete
}
criterion::criterion_main!(benches);
