//! P6, sweeping N expired records: the sweep's rate, and the latency of a
//! steady claimer with and without the sweep running.

use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use idemkv::{Config, MockClock, Policy, Store};

use crate::common::report::{Hist, fmt_ns, fmt_ops};
use crate::latency::Run;
use crate::output::{Part, Val, fmt_count};
use crate::records::{NS, base_config, cycle, fingerprint, populate};
use crate::{Opts, Res, SPACE_P6, SPACE_P6_CLAIMER, SPACE_P6_PILOT, err, progress};

const P6_START: u64 = 1_700_000_000_000;
const P6_RETENTION: Duration = Duration::from_secs(3600);
const P6_ADVANCE: Duration = Duration::from_secs(2 * 3600);

fn p6_config(clock: &MockClock) -> Config {
    let policy = Policy::default()
        .lease(Duration::from_secs(30))
        .retention(P6_RETENTION)
        .retry_horizon(P6_RETENTION);
    base_config()
        .clock(clock.clone())
        .namespace(NS, policy)
        .sweep_interval(None)
        .checkpoint_interval(None)
}

/// A store of `n` expired records of `space`, in sled (checkpointed), with
/// the clock already moved past their expiry.
fn expired_store(dir: &Path, space: u64, n: usize) -> Res<(Store, Duration)> {
    let clock = MockClock::new(P6_START);
    let store = p6_config(&clock).open(dir).map_err(err)?;
    let took = populate(&store, space, 0..n as u64, 2)?;
    store.checkpoint().map_err(err)?;
    clock.advance(P6_ADVANCE);
    Ok((store, took))
}

/// Claims + completes new keys of `space` (numbered from `*next`) on this
/// thread until `done()`, `rate` cycles per second (started on a fixed
/// schedule, so a slow claim does not lower the offered rate; 0 = back to
/// back); records each claim call's latency.
fn claimer(
    store: &Store,
    space: u64,
    next: &mut u64,
    rate: u64,
    done: impl Fn() -> bool,
) -> Res<Run> {
    let fp = fingerprint();
    let mut hist = Hist::new();
    let mut ops = 0;
    let start = Instant::now();
    while !done() {
        if rate > 0 {
            let due = start + Duration::from_secs_f64(ops as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
                continue; // check `done` again after sleeping
            }
        }
        hist.record(cycle(store, space, *next, fp)?);
        *next += 1;
        ops += 1;
    }
    Ok(Run { ops, window: start.elapsed(), hist })
}

/// Runs `store.sweep()` on this thread; with `claimer`, another thread
/// claims + completes new keys (numbered on from `*next`) for exactly as long
/// as the sweep runs. Returns the count removed, the sweep's duration and the
/// claimer's latencies.
fn sweep_with(
    store: &Store,
    next: &mut u64,
    rate: u64,
    claimer_on: bool,
) -> Res<(usize, Duration, Run)> {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(if claimer_on { 2 } else { 1 });
    let (swept, sweep_time, during) = std::thread::scope(|s| {
        let (stop, barrier, from) = (&stop, &barrier, *next);
        let h = claimer_on.then(|| {
            s.spawn(move || {
                let mut next = from;
                barrier.wait();
                let run = claimer(store, SPACE_P6_CLAIMER, &mut next, rate, || {
                    stop.load(Ordering::Relaxed)
                });
                run.map(|r| (r, next))
            })
        });
        barrier.wait();
        let t = Instant::now();
        let swept = store.sweep();
        let sweep_time = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        let during = h.map(|h| h.join().map_err(|_| "the claimer panicked".to_string()));
        (swept, sweep_time, during)
    });
    let swept = swept.map_err(err)?;
    let run = match during {
        Some(joined) => {
            let (run, after) = joined??;
            *next = after;
            run
        }
        None => Run { ops: 0, window: sweep_time, hist: Hist::new() },
    };
    Ok((swept, sweep_time, run))
}

/// A pilot: `n` expired records swept (with or without the claimer) in a
/// store of their own; the sweep's duration.
fn pilot_sweep(space: u64, n: usize, next: &mut u64, rate: u64, claimer_on: bool) -> Res<Duration> {
    let dir = tempfile::tempdir().map_err(err)?;
    let (store, _) = expired_store(dir.path(), space, n)?;
    let (removed, took, _) = sweep_with(&store, next, rate, claimer_on)?;
    store.close().map_err(err)?;
    if removed != n {
        return Err(format!("a pilot sweep removed {removed} of {n} expired records"));
    }
    Ok(took)
}

/// Runs P6 (see the crate documentation).
pub fn p6(opts: &Opts) -> Res<Part> {
    let n = opts.records;
    let mut part = Part::new("P6");
    let mut next = 0; // the claimer's next key number: every claimed key is new

    // Two pilot sweeps of small stores: alone (for information) and with the
    // claimer, which estimates how long the big sweep takes, which is how
    // long the claimer runs without a sweep.
    let pilot_n = (n / 20).clamp(n.min(2_000), 50_000);
    progress(&format!("P6: pilot sweeps of {pilot_n} records"));
    let rate = opts.claim_rate;
    let pilot_alone = pilot_sweep(SPACE_P6_PILOT, pilot_n, &mut next, rate, false)?;
    let pilot_time = pilot_sweep(SPACE_P6_PILOT + 1, pilot_n, &mut next, rate, true)?;
    let (lo, hi) = if opts.quick { (0.2, 1.0) } else { (1.0, 60.0) };
    let estimate = pilot_time.as_secs_f64() * n as f64 / pilot_n as f64;
    let baseline_window = Duration::from_secs_f64(estimate.clamp(lo, hi));

    progress(&format!("P6: populating {n} records"));
    let dir = tempfile::tempdir().map_err(err)?;
    let (store, populate_time) = expired_store(dir.path(), SPACE_P6, n)?;
    // Warm-up, then the claimer alone.
    let t = Instant::now();
    claimer(&store, SPACE_P6_CLAIMER, &mut next, rate, || t.elapsed() >= opts.warmup)?;
    progress(&format!("P6: claimer without a sweep for {:.1} s", baseline_window.as_secs_f64()));
    let t = Instant::now();
    let without =
        claimer(&store, SPACE_P6_CLAIMER, &mut next, rate, || t.elapsed() >= baseline_window)?;

    progress("P6: sweep with the claimer running");
    let (swept, sweep_time, during) = sweep_with(&store, &mut next, rate, true)?;
    let t = Instant::now();
    store.checkpoint().map_err(err)?;
    let apply_time = t.elapsed();
    store.close().map_err(err)?;
    drop(dir);
    if swept != n {
        return Err(format!("the sweep removed {swept} of {n} expired records"));
    }

    let sweep_rate = swept as f64 / sweep_time.as_secs_f64();
    part.goal(
        format!("sweep {} expired (claimer running)", fmt_count(n)),
        ">= 500k/s".into(),
        format!("{}/s ({:.2} s)", fmt_ops(sweep_rate), sweep_time.as_secs_f64()),
        sweep_rate >= 500_000.0,
    );
    let ratio = during.p99() as f64 / without.p99().max(1) as f64;
    part.goal(
        "claim p99 during sweep / without".into(),
        "<= 2.00x".into(),
        format!("{ratio:.2}x ({} / {})", fmt_ns(during.p99()), fmt_ns(without.p99())),
        ratio <= 2.0,
    );
    part.info(
        format!("claim without sweep ({:.1} s) p50/p99/p99.9", without.window.as_secs_f64()),
        without.summary(),
    );
    part.info(
        format!("claim during sweep ({:.1} s) p50/p99/p99.9", during.window.as_secs_f64()),
        during.summary(),
    );
    part.info(
        format!("pilot sweeps of {}: alone / with claimer", fmt_count(pilot_n)),
        format!(
            "{}/s / {}/s",
            fmt_ops(pilot_n as f64 / pilot_alone.as_secs_f64()),
            fmt_ops(pilot_n as f64 / pilot_time.as_secs_f64()),
        ),
    );
    part.info(
        "populate / deletes into sled after the sweep".into(),
        format!(
            "{}/s ({:.1} s) / checkpoint {:.2} s",
            fmt_ops(n as f64 / populate_time.as_secs_f64()),
            populate_time.as_secs_f64(),
            apply_time.as_secs_f64()
        ),
    );

    let f = &mut part.fields;
    f.push(("records".into(), Val::U(n as u64)));
    f.push(("retention_s".into(), Val::U(P6_RETENTION.as_secs())));
    f.push(("populate_s".into(), Val::F(populate_time.as_secs_f64())));
    f.push(("pilot_records".into(), Val::U(pilot_n as u64)));
    f.push(("pilot_sweep_alone_s".into(), Val::F(pilot_alone.as_secs_f64())));
    f.push(("pilot_sweep_with_claimer_s".into(), Val::F(pilot_time.as_secs_f64())));
    f.push(("swept".into(), Val::U(swept as u64)));
    f.push(("sweep_s".into(), Val::F(sweep_time.as_secs_f64())));
    f.push(("sweep_per_sec".into(), Val::F(sweep_rate)));
    f.push(("claimer_rate_per_sec".into(), Val::U(rate)));
    f.push(("checkpoint_after_sweep_s".into(), Val::F(apply_time.as_secs_f64())));
    without.fields("claim_without_sweep", f);
    during.fields("claim_during_sweep", f);
    f.push(("claim_p99_ratio".into(), Val::F(ratio)));
    Ok(part)
}
