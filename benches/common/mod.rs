//! Shared helpers of the idemkv benchmarks: a seeded splitmix64 generator
//! (no `rand`), deterministic key sets, store setup, record populations, the
//! benchmark sizes (10 k; 1 M with `IDEMKV_BENCH_LARGE=1`; 10 M with
//! `IDEMKV_BENCH_HUGE=1`; shrunk under `--test`) and a barrier-synchronised
//! thread fan-out for multi-threaded `iter_custom` measurements; [`report`]
//! holds the latency histogram and formatting of the harness benches.

// Every bench includes this module and uses a different part of it (the
// allowance covers the submodules too).
#![allow(dead_code)]

pub mod report;

use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use idemkv::{Claim, Config, Durability, Fingerprint, Key, Store};

/// The namespace of every benchmark key.
pub const NS: &str = "bench";

/// The response stored by every completion: 128 bytes, a typical small
/// webhook answer.
pub const RESPONSE: &[u8; 128] = &[b'r'; 128];

/// The `max_delay` of the benchmarks' `Buffered` stores.
pub const BUFFERED_DELAY: Duration = Duration::from_millis(5);

/// splitmix64 (Steele, Lea, Flood 2014): a tiny seeded generator, and a
/// bijection on `u64` when used as a mixer, so distinct inputs give distinct
/// keys.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The splitmix64 finaliser: a bijective mixer.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE5_B9E9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th key of key space `space`: `evt_` and 16 hex digits of a mixed
/// value, so keys arrive in random order (like webhook event ids) and never
/// collide across `(space, i)` pairs with `i < 2^40`.
pub fn key(space: u64, i: u64) -> Key {
    Key::new(NS, format!("evt_{:016x}", mix((space << 40) ^ i))).expect("valid benchmark key")
}

/// `n` keys of key space `space`.
pub fn keys(space: u64, n: usize) -> Vec<Key> {
    (0..n as u64).map(|i| key(space, i)).collect()
}

/// A fresh key space per call, so benchmark functions sharing a store never
/// claim the same key twice.
pub fn fresh_space() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The fingerprint every benchmark claim carries (computed once: hashing a
/// request body is the caller's cost, not the store's).
pub fn fingerprint() -> Fingerprint {
    Fingerprint::of(b"benchmark request body")
}

/// `Buffered { max_delay: 5 ms }`.
pub fn buffered() -> Durability {
    Durability::Buffered { max_delay: BUFFERED_DELAY }
}

/// Whether criterion runs in `--test` mode (every benchmark once, as CI does).
pub fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// The record counts to benchmark: 10 k, plus 1 M with
/// `IDEMKV_BENCH_LARGE=1` and 10 M with `IDEMKV_BENCH_HUGE=1`. Under `--test`
/// every size is capped at `test_cap` so CI stays fast.
pub fn sizes(test_cap: usize) -> Vec<usize> {
    let mut sizes = vec![10_000];
    if env_flag("IDEMKV_BENCH_LARGE") {
        sizes.push(1_000_000);
    }
    if env_flag("IDEMKV_BENCH_HUGE") {
        sizes.push(10_000_000);
    }
    if test_mode() {
        sizes = sizes.into_iter().map(|n| n.min(test_cap)).collect();
        sizes.dedup();
    }
    sizes
}

/// Claims and completes every key, from `threads` threads.
pub fn populate(store: &Store, keys: &[Key], threads: usize) {
    let fp = fingerprint();
    let chunk = keys.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for part in keys.chunks(chunk) {
            s.spawn(move || {
                for k in part {
                    match store.claim(k, fp).expect("claim") {
                        Claim::Acquired(guard) => guard.complete(RESPONSE).expect("complete"),
                        other => panic!("populating {k}: expected Acquired, got {other:?}"),
                    }
                }
            });
        }
    });
}

/// Opens a store in `dir` with `config`.
pub fn open(dir: &Path, config: Config) -> Store {
    config.open(dir).expect("open the benchmark store")
}

/// Runs `per_thread(thread, ops)` on `threads` threads, splitting `iters`
/// operations between them, and returns the wall time from the moment all
/// threads are released (after their setup) until the last one finished.
///
/// `setup(thread, ops)` runs before the threads are released and returns
/// the closure to time, so per-thread setup (generating keys, say) stays out
/// of the measurement; whatever that closure returns is dropped after the
/// clock stopped.
pub fn fan_out<S, W, R>(threads: usize, iters: u64, setup: S) -> Duration
where
    S: Fn(usize, u64) -> W + Sync,
    W: FnOnce() -> R,
    R: Send,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ops = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
                let (barrier, setup) = (&barrier, &setup);
                s.spawn(move || {
                    let work = setup(t, ops);
                    barrier.wait();
                    work()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let leftovers: Vec<R> =
            handles.into_iter().map(|h| h.join().expect("benchmark thread panicked")).collect();
        let elapsed = start.elapsed();
        drop(leftovers);
        elapsed
    })
}
