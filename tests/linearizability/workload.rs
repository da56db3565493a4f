//! The workload: 64 threads of mixed calls on the hot keys, each call
//! recorded with its logical invocation and response times. A claim batch
//! over several hot keys is recorded as one claim per key, each with the
//! batch's invocation and response times.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use idemkv::{
    Claim, EntryState, Error, Failure, Key, Lease, Outcome as Finished, StaleReason, Store,
};

use crate::history::{Event, GotRes, GotState, LinOp, LinRes, ReplayRes};
use crate::model_support::rules::Stale;
use crate::model_support::{Fp, fingerprint};
use crate::{HOT_KEYS, LEASE, OPS_PER_KEY, THREADS};

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

fn stale(e: Error) -> LinRes {
    match e {
        Error::StaleLease { reason, .. } => LinRes::Stale(match reason {
            StaleReason::Superseded { current } => Stale::Superseded { current },
            StaleReason::Finished => Stale::Finished,
            StaleReason::Missing => Stale::Missing,
            other => return LinRes::Error(format!("{other:?}")),
        }),
        other => LinRes::Error(other.to_string()),
    }
}

fn replay(r: &idemkv::Replay) -> ReplayRes {
    ReplayRes {
        failed: r.outcome() == Finished::Failed,
        body: r.response().to_vec(),
        attempts: r.attempts(),
        token: r.token(),
    }
}

fn claim_res(c: idemkv::Result<Claim>, fps: &[idemkv::Fingerprint]) -> (LinRes, Option<Lease>) {
    match c {
        Ok(Claim::Acquired(l)) => (
            LinRes::Acquired { token: l.token(), attempt: l.attempt(), recovered: l.recovered() },
            Some(l.into_lease()),
        ),
        Ok(Claim::Replay(r)) => (LinRes::Replay(replay(&r)), None),
        Ok(Claim::InFlight { retry_after, attempt }) => {
            if retry_after > LEASE {
                let msg = format!("retry_after {retry_after:?} longer than the lease");
                return (LinRes::Error(msg), None);
            }
            (LinRes::InFlight { attempt }, None)
        }
        Ok(Claim::Mismatch { stored }) => match fps.iter().position(|f| *f == stored) {
            Some(i) => (LinRes::Mismatch { stored: i as Fp }, None),
            None => (LinRes::Error(format!("unknown fingerprint {stored}")), None),
        },
        Err(e) => (LinRes::Error(e.to_string()), None),
    }
}

fn got_res(r: idemkv::Result<Option<idemkv::Entry>>, fps: &[idemkv::Fingerprint]) -> LinRes {
    let entry = match r {
        Ok(e) => e,
        Err(e) => return LinRes::Error(e.to_string()),
    };
    LinRes::Got(entry.map(|e| GotRes {
        attempts: e.attempts,
        fp: e.fingerprint.map(|f| fps.iter().position(|g| *g == f).unwrap_or(99) as Fp),
        state: match e.state {
            EntryState::InProgress { token, orphaned, .. } => {
                GotState::InProgress { token, orphaned }
            }
            EntryState::Finished(r) => GotState::Finished(replay(&r)),
            EntryState::Claimable { after_retryable_failure, .. } => {
                GotState::Claimable { retryable: after_retryable_failure }
            }
            other => panic!("unknown entry state {other:?}"),
        },
    }))
}

/// One thread's calls in a round.
fn worker(
    thread: usize,
    store: &Store,
    keys: &[Key],
    budget: &[AtomicUsize],
    clock: &AtomicU64,
    seed: u64,
) -> Vec<Vec<Event>> {
    let mut rng = Rng(seed ^ (thread as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let fps = [fingerprint(0), fingerprint(1)];
    let mut held: Vec<Option<Lease>> = vec![None; keys.len()];
    let mut old: Vec<Vec<Lease>> = vec![Vec::new(); keys.len()];
    let mut events: Vec<Vec<Event>> = vec![Vec::new(); keys.len()];
    loop {
        // A key with calls left in its budget.
        let start = rng.below(keys.len() as u64) as usize;
        let Some(k) = (0..keys.len())
            .map(|i| (start + i) % keys.len())
            .find(|&k| budget[k].fetch_add(1, Ordering::SeqCst) < OPS_PER_KEY)
        else {
            return events;
        };
        let key = &keys[k];
        let fp = draw_fp(&mut rng);
        let roll = rng.below(100);
        let body = format!("thread {thread} says {}", rng.below(1000)).into_bytes();
        // Choose the call (and the lease it uses) before taking the time.
        let op = match (&held[k], roll) {
            (Some(l), 0..5) => LinOp::Complete { token: l.token(), body },
            (Some(l), 5..8) => LinOp::FailTerminal { token: l.token(), body },
            (Some(l), 8..40) => LinOp::FailRetryable { token: l.token() },
            (Some(l), 40..75) => LinOp::Release { token: l.token() },
            (Some(l), 75..85) => LinOp::Abandon { token: l.token(), guard: rng.below(2) == 0 },
            (_, 0..45) => LinOp::Claim { fp },
            (_, 45..65) => LinOp::Wait { fp, timeout_ms: rng.below(4) },
            (_, 65..82) => LinOp::Get,
            (_, 82..88) => LinOp::Remove,
            (_, _) if !old[k].is_empty() => {
                // A stale lease: fencing must refuse it (or it is the holder's
                // own lease, already ended: Finished).
                let l = &old[k][rng.below(old[k].len() as u64) as usize];
                match rng.below(4) {
                    0 => LinOp::Complete { token: l.token(), body },
                    1 => LinOp::Release { token: l.token() },
                    2 => LinOp::Abandon { token: l.token(), guard: rng.below(2) == 0 },
                    _ => LinOp::FailRetryable { token: l.token() },
                }
            }
            _ => LinOp::Claim { fp },
        };
        if let LinOp::Claim { fp } = op
            && rng.below(5) == 0
        {
            claim_batch(
                thread,
                store,
                keys,
                budget,
                clock,
                k,
                fp,
                &mut rng,
                &mut held,
                &mut old,
                &mut events,
            );
            spread(&mut rng);
            continue;
        }
        let lease_of = |token: u64| -> Lease {
            held[k]
                .iter()
                .chain(old[k].iter())
                .find(|l| l.token() == token)
                .cloned()
                .expect("a lease this thread holds or held")
        };
        let lease = match &op {
            LinOp::Complete { token, .. }
            | LinOp::FailTerminal { token, .. }
            | LinOp::FailRetryable { token }
            | LinOp::Release { token }
            | LinOp::Abandon { token, .. } => Some(lease_of(*token)),
            _ => None,
        };
        let began = Instant::now();
        let call = clock.fetch_add(1, Ordering::SeqCst);
        let (res, acquired) = match &op {
            LinOp::Claim { fp } => claim_res(store.claim(key, fp.map(|f| fps[f as usize])), &fps),
            LinOp::Wait { fp, timeout_ms } => claim_res(
                store.wait(key, fp.map(|f| fps[f as usize]), Duration::from_millis(*timeout_ms)),
                &fps,
            ),
            LinOp::Complete { body, .. } => (
                store.complete(lease.as_ref().unwrap(), body).map_or_else(stale, |()| LinRes::Ok),
                None,
            ),
            LinOp::FailTerminal { body, .. } => (
                store
                    .fail(lease.as_ref().unwrap(), Failure::Terminal(body))
                    .map_or_else(stale, |()| LinRes::Ok),
                None,
            ),
            LinOp::FailRetryable { .. } => (
                store
                    .fail(lease.as_ref().unwrap(), Failure::Retryable)
                    .map_or_else(stale, |()| LinRes::Ok),
                None,
            ),
            LinOp::Release { .. } => {
                (store.release(lease.as_ref().unwrap()).map_or_else(stale, |()| LinRes::Ok), None)
            }
            LinOp::Abandon { guard, .. } => {
                let l = lease.as_ref().unwrap();
                let res = if *guard {
                    // A guard re-attached to the lease, dropped: abandons.
                    store.adopt(l.clone()).map_or_else(
                        |e| LinRes::Error(e.to_string()),
                        |g| {
                            drop(g);
                            LinRes::Ok
                        },
                    )
                } else {
                    store.abandon(l);
                    LinRes::Ok
                };
                (res, None)
            }
            LinOp::Get => (got_res(store.get(key), &fps), None),
            LinOp::Remove => (
                store.remove(key).map_or_else(|e| LinRes::Error(e.to_string()), LinRes::Removed),
                None,
            ),
        };
        let ret = clock.fetch_add(1, Ordering::SeqCst);
        let elapsed = began.elapsed();
        // `wait` answers InFlight only at its timeout.
        let res = match (&op, &res) {
            (LinOp::Wait { timeout_ms, .. }, LinRes::InFlight { .. })
                if elapsed < Duration::from_millis(*timeout_ms) =>
            {
                LinRes::Error(format!("wait returned InFlight after {elapsed:?} < {timeout_ms} ms"))
            }
            _ => res,
        };
        // Book-keeping of this thread's leases.
        if let Some(l) = acquired {
            // Our previous lease of this key may have been removed under us.
            if let Some(prev) = held[k].replace(l) {
                old[k].push(prev);
            }
        } else if let Some(l) = &lease
            && held[k].as_ref().is_some_and(|h| h.token() == l.token())
        {
            old[k].push(held[k].take().expect("held"));
        }
        events[k].push(Event { thread, op, call, ret, res });
        spread(&mut rng);
    }
}

fn draw_fp(rng: &mut Rng) -> Option<Fp> {
    match rng.below(100) {
        0..80 => Some(0),
        80..95 => None,
        _ => Some(1),
    }
}

/// Spreads the calls: without this a thread on a 2-core machine can run its
/// whole share within one time slice, with no interleaving.
fn spread(rng: &mut Rng) {
    match rng.below(8) {
        0..4 => std::thread::yield_now(),
        4 => std::thread::sleep(Duration::from_micros(rng.below(300))),
        _ => {}
    }
}

/// A `claim_batch` of key `k` (whose call is counted already) and each other
/// hot key with calls left, at random: one `Claim` event per key, all with
/// the batch's times.
#[allow(clippy::too_many_arguments)]
fn claim_batch(
    thread: usize,
    store: &Store,
    keys: &[Key],
    budget: &[AtomicUsize],
    clock: &AtomicU64,
    k: usize,
    fp: Option<Fp>,
    rng: &mut Rng,
    held: &mut [Option<Lease>],
    old: &mut [Vec<Lease>],
    events: &mut [Vec<Event>],
) {
    let fps = [fingerprint(0), fingerprint(1)];
    let mut items = vec![(k, fp)];
    for j in (0..keys.len()).filter(|&j| j != k) {
        if rng.below(2) == 0 && budget[j].fetch_add(1, Ordering::SeqCst) < OPS_PER_KEY {
            items.push((j, draw_fp(rng)));
        }
    }
    let call = clock.fetch_add(1, Ordering::SeqCst);
    let answers =
        store.claim_batch(items.iter().map(|&(j, fp)| (&keys[j], fp.map(|f| fps[f as usize]))));
    let ret = clock.fetch_add(1, Ordering::SeqCst);
    let answers: Vec<(LinRes, Option<Lease>)> = match answers {
        Ok(a) if a.len() == items.len() => a.into_iter().map(|c| claim_res(c, &fps)).collect(),
        Ok(a) => {
            let msg = format!("claim_batch of {} answered {}", items.len(), a.len());
            items.iter().map(|_| (LinRes::Error(msg.clone()), None)).collect()
        }
        Err(e) => items.iter().map(|_| (LinRes::Error(e.to_string()), None)).collect(),
    };
    for ((j, fp), (res, acquired)) in items.into_iter().zip(answers) {
        if let Some(l) = acquired
            && let Some(prev) = held[j].replace(l)
        {
            old[j].push(prev);
        }
        events[j].push(Event { thread, op: LinOp::Claim { fp }, call, ret, res });
    }
}

/// Runs one round on fresh keys; returns each key's history.
pub(crate) fn record_round(store: &Store, round: usize, seed: u64) -> Vec<Vec<Event>> {
    let keys: Vec<Key> =
        (0..HOT_KEYS).map(|k| Key::new("lin", format!("r{round}-{seed}-k{k}")).unwrap()).collect();
    let budget: Vec<AtomicUsize> = (0..HOT_KEYS).map(|_| AtomicUsize::new(0)).collect();
    let clock = AtomicU64::new(1);
    let barrier = Barrier::new(THREADS);
    let histories: Mutex<Vec<Vec<Event>>> = Mutex::new(vec![Vec::new(); HOT_KEYS]);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (keys, budget, clock, barrier, histories) =
                (&keys, &budget, &clock, &barrier, &histories);
            s.spawn(move || {
                barrier.wait();
                let mine = worker(t, store, keys, budget, clock, seed);
                let mut all = histories.lock().unwrap();
                for (k, evs) in mine.into_iter().enumerate() {
                    all[k].extend(evs);
                }
            });
        }
    });
    histories.into_inner().unwrap()
}
