//! Contention on one key: many threads claiming a key another holder has in
//! flight, each answered `InFlight` — a burst of concurrent duplicate
//! deliveries while the first is still being processed.
//!
//! The key is claimed once before measuring and never completed; the store
//! uses a `MockClock` that never moves, so the lease cannot run out and every
//! measured claim must answer `InFlight` (checked). All claimers serialise on
//! the key's shard lock; the answer writes nothing and, its entry being
//! durable already, waits for no fsync. `Durable` mode (the default).
//! 1, 2, 8 and 32 threads via `iter_custom` with std threads (one element =
//! one claim, summed over all threads).

mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use idemkv::{Claim, Config, MockClock};

fn contention_inflight(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = MockClock::new(1_700_000_000_000);
    let store = common::open(dir.path(), Config::new().clock(clock).sweep_interval(None));
    let key = common::key(common::fresh_space(), 0);
    let fp = common::fingerprint();
    // Held (detached from its guard) for the whole bench: every claim below
    // finds it in flight.
    let _held = store.claim(&key, fp).expect("claim").into_lease().expect("acquired");
    let mut group = c.benchmark_group("contention_inflight");
    group.throughput(Throughput::Elements(1));
    for threads in [1, 2, 8, 32] {
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| {
                common::fan_out(threads, iters, |_, ops| {
                    let (store, key) = (&store, &key);
                    move || {
                        for _ in 0..ops {
                            match store.claim(key, fp).expect("claim") {
                                Claim::InFlight { .. } => {}
                                other => panic!("expected InFlight, got {other:?}"),
                            }
                        }
                    }
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(2));
    targets = contention_inflight
}
criterion::criterion_main!(benches);
