//! Running one row: populating P1's keys, then driving the clients for the
//! warm-up and the measured window and collecting throughput, latency and
//! errors.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::common::report::Hist;
use crate::common::{self, SplitMix64};
use crate::plan::Workload;
use crate::systems::{Servers, Spec, System, build};
use crate::{Opts, Res};

/// Key bytes: `evt_` and 16 hex digits of a mixed `(space, i)`, 20 bytes.
fn key_bytes(space: u64, i: u64) -> [u8; 20] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut k = *b"evt_0000000000000000";
    let v = common::mix((space << 40) ^ i);
    for (j, b) in k[4..].iter_mut().enumerate() {
        *b = HEX[((v >> (60 - 4 * j)) & 0xf) as usize];
    }
    k
}

/// What each operation of a row is.
#[derive(Clone, Copy, PartialEq)]
pub enum Work {
    /// P1: random lookups among `n` completed keys of key space 1.
    Lookup(usize),
    /// P2/P3: claim + complete of fresh keys.
    Cycle,
}

/// What a row measured, summed over its threads.
pub struct Measured {
    /// Operations that succeeded in the window.
    pub ops: u64,
    /// The measured window (warm-up excluded).
    pub window: Duration,
    /// Latency of the successful operations.
    pub hist: Hist,
    /// Operations that failed in the window.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
}

impl Measured {
    fn new(window: Duration) -> Measured {
        Measured { ops: 0, window, hist: Hist::new(), errors: 0, first_error: None }
    }

    /// Counts one operation of the window that took `took`.
    fn note(&mut self, r: Res<()>, took: Duration) {
        match r {
            Ok(()) => {
                self.hist.record(took);
                self.ops += 1;
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// The clients' measurements added up.
    fn sum(results: Vec<Res<Measured>>, window: Duration) -> Res<Measured> {
        let mut total = Measured::new(window);
        for r in results {
            let m = r?;
            total.ops += m.ops;
            total.errors += m.errors;
            total.hist.merge(&m.hist);
            if total.first_error.is_none() {
                total.first_error = m.first_error;
            }
        }
        Ok(total)
    }
}

/// Claims and completes keys `0..n` of key space 1.
fn populate(sys: &dyn System, n: usize) -> Res<()> {
    let threads = sys.populate_threads().max(1);
    let chunk = n.div_ceil(threads) as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                s.spawn(move || -> Res<()> {
                    let mut client = sys.client()?;
                    let end = ((t + 1) * chunk).min(n as u64);
                    client.populate(&mut ((t * chunk)..end).map(|i| key_bytes(1, i)))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "populate panicked")?)
    })?;
    sys.settle()
}

/// Drives `threads` clients of `sys` doing `work` for the warm-up and then
/// the measured window.
fn measure(sys: &dyn System, threads: usize, work: Work, opts: &Opts) -> Res<Measured> {
    let barrier = Barrier::new(threads);
    let (warmup, duration) = (opts.warmup, opts.duration);
    let results: Vec<Res<Measured>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || -> Res<Measured> {
                    let client = sys.client();
                    barrier.wait(); // every client connected before anyone starts
                    let mut client = client?;
                    let origin = Instant::now();
                    let (start, end) = (origin + warmup, origin + warmup + duration);
                    let mut rng = SplitMix64::new(0xC0FFEE ^ t as u64);
                    let space = 1000 + t as u64; // fresh keys: one space per thread
                    let mut m = Measured::new(duration);
                    for i in 0.. {
                        let r;
                        let (t0, t1);
                        match work {
                            Work::Lookup(n) => {
                                let key = key_bytes(1, rng.below(n) as u64);
                                t0 = Instant::now();
                                r = client.lookup(&key);
                                t1 = Instant::now();
                            }
                            Work::Cycle => {
                                let key = key_bytes(space, i);
                                t0 = Instant::now();
                                r = client.cycle(&key);
                                t1 = Instant::now();
                            }
                        }
                        if t0 >= start {
                            m.note(r, t1 - t0);
                        }
                        if t1 >= end {
                            break;
                        }
                    }
                    Ok(m)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("benchmark thread panicked".into())))
            .collect()
    });
    Measured::sum(results, duration)
}

/// Measures one row: a fresh `spec` system (populated first for P1) with
/// `threads` clients doing `w`'s work.
pub fn run_one(
    spec: Spec,
    threads: usize,
    w: &Workload,
    opts: &Opts,
    servers: &mut Servers,
) -> Res<Measured> {
    let sys = build(spec, servers)?;
    if let Work::Lookup(n) = w.work {
        populate(&*sys, n)?;
    }
    let m = match (spec, sys.store(), w.work) {
        (Spec::IdemkvAsync, Some(store), Work::Cycle) => measure_tasks(store, threads, opts),
        (Spec::IdemkvAsync, ..) => Err("the async row measures claim + complete only".into()),
        _ => measure(&*sys, threads, w.work, opts),
    };
    drop(sys); // closes stores, removes temp dirs (outside the measurement)
    m
}

/// `tasks` async tasks on a tokio runtime with 2 workers, each claiming and
/// completing fresh keys with `claim_async` + `complete_async` (the fsync
/// awaited, no thread per caller), for the warm-up and the window.
fn measure_tasks(store: &idemkv::Store, tasks: usize, opts: &Opts) -> Res<Measured> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(crate::err)?;
    let (warmup, duration) = (opts.warmup, opts.duration);
    let origin = Instant::now();
    let (start, end) = (origin + warmup, origin + warmup + duration);
    let results: Vec<Res<Measured>> = rt.block_on(async {
        let handles: Vec<_> = (0..tasks as u64)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut m = Measured::new(duration);
                    let fp = common::fingerprint();
                    for i in 0.. {
                        let key = idemkv::Key::new(common::NS, key_bytes(1000 + t, i))
                            .map_err(crate::err)?;
                        let t0 = Instant::now();
                        let r = match store.claim_async(&key, fp).await {
                            Ok(idemkv::Claim::Acquired(g)) => {
                                g.complete_async(common::RESPONSE).await.map_err(|e| e.to_string())
                            }
                            Ok(other) => Err(format!("claim of a new key answered {other:?}")),
                            Err(e) => Err(e.to_string()),
                        };
                        let t1 = Instant::now();
                        if t0 >= start {
                            m.note(r, t1 - t0);
                        }
                        if t1 >= end {
                            break;
                        }
                    }
                    Ok(m)
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap_or_else(|_| Err("benchmark task panicked".into())));
        }
        out
    });
    Measured::sum(results, duration)
}
