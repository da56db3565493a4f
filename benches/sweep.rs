//! Sweeping: one `Store::sweep()` that removes N expired records (10 k; 1 M
//! with `IDEMKV_BENCH_LARGE=1`; 10 M with `IDEMKV_BENCH_HUGE=1`).
//!
//! The store runs on a `MockClock` with the background sweeper off
//! (`sweep_interval(None)`). Before each measured sweep, N fresh keys are
//! claimed and completed (`Buffered`, outside the timed region),
//! `Store::checkpoint()` waits until they are all in sled (the sweeper only
//! sees the expiry index in sled), and the clock jumps past the 72 h
//! retention. The timed part is the sweep alone: it scans the expiry index
//! and journals one delete per record under that key's shard lock; applying
//! the deletes to sled happens afterwards in the applier (drained by the next
//! iteration's checkpoint, untimed). One element = one record removed.

mod common;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use idemkv::{Config, MockClock};

fn sweep_expired(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep_expired");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for n in common::sizes(1_000) {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = MockClock::new(1_700_000_000_000);
        let config = Config::new()
            .durability(common::buffered())
            .clock(clock.clone())
            .sweep_interval(None)
            .checkpoint_interval(None);
        let store = common::open(dir.path(), config);
        group.throughput(Throughput::Elements(n as u64));
        if n >= 1_000_000 {
            // Each iteration re-populates n records first (untimed).
            group.warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(1));
        }
        group.bench_function(BenchmarkId::new("records", n), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let keys = common::keys(common::fresh_space(), n);
                    common::populate(&store, &keys, 2);
                    store.checkpoint().expect("checkpoint");
                    clock.advance(Duration::from_secs(73 * 3600));
                    let start = Instant::now();
                    let removed = store.sweep().expect("sweep");
                    timed += start.elapsed();
                    assert_eq!(removed, n, "every populated record had expired");
                }
                timed
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = sweep_expired
}
criterion::criterion_main!(benches);
