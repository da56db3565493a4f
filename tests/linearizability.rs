//! Contention and linearizability: 64 threads hammer three hot keys with
//! mixed operations (claim, wait, complete, fail, release, remove, get, and
//! stale leases), recording every call's invocation and response on a global
//! logical clock. Each key's history is then checked:
//!
//! - **linearizability** against the sequential per-key rules of
//!   `tests/model_support` (a Wing & Gong / Lowe search with memoization of
//!   the linearized set and the model state): some total order of the calls,
//!   consistent with real time, explains every answer;
//! - **one holder per lease epoch**, directly: sorted by token, every
//!   acquisition after the first is preceded by a successful release or
//!   retryable failure of the previous holder, or by a removal of the key.
//!
//! A real clock with one-hour leases keeps leases from expiring, so the only
//! nondeterminism is the interleaving. `IDEMKV_LIN_ROUNDS` sets the number of
//! rounds (default 100), each on fresh keys, alternating `Durable` and
//! `Buffered` stores. See docs/RELIABILITY.md, "Contention and
//! linearizability".

mod model_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use idemkv::{
    Claim, Config, Durability, EntryState, Error, Failure, Key, Lease, Outcome as Finished, Policy,
    StaleReason, Store,
};
use model_support::rules::{self, ClaimArgs, ClaimOut, End, Rec, Stale, StateView};
use model_support::{Fp, fingerprint};

const THREADS: usize = 64;
const HOT_KEYS: usize = 3;
/// Calls per key per round: bounds each history the checker searches.
const OPS_PER_KEY: usize = 400;
const LEASE: Duration = Duration::from_secs(3600);
const RETENTION: Duration = Duration::from_secs(7200);
/// The checker gives up (and fails) after this many search steps per history.
const SEARCH_BUDGET: u64 = 20_000_000;

// ---------------------------------------------------------------------------
// Histories

/// A call on one key. Tokens are the real fencing tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinOp {
    Claim { fp: Option<Fp> },
    Wait { fp: Option<Fp>, timeout_ms: u64 },
    Complete { token: u64, body: Vec<u8> },
    FailTerminal { token: u64, body: Vec<u8> },
    FailRetryable { token: u64 },
    Release { token: u64 },
    Get,
    Remove,
}

/// Its answer, without wall-clock times (which the model does not predict).
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinRes {
    Acquired { token: u64, attempt: u32, recovered: bool },
    Replay(ReplayRes),
    InFlight { attempt: u32 },
    Mismatch { stored: Fp },
    Ok,
    Stale(Stale),
    Got(Option<GotRes>),
    Removed(bool),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ReplayRes {
    failed: bool,
    body: Vec<u8>,
    attempts: u32,
    token: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GotRes {
    attempts: u32,
    fp: Option<Fp>,
    state: GotState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GotState {
    InProgress { token: u64, orphaned: bool },
    Finished(ReplayRes),
    Claimable { retryable: bool },
}

/// One completed call: who, what, when (logical invocation and response
/// times from one global counter), and the answer.
#[derive(Debug, Clone)]
struct Event {
    thread: usize,
    op: LinOp,
    call: u64,
    ret: u64,
    res: LinRes,
}

// ---------------------------------------------------------------------------
// The sequential specification

/// The model state of one key: its record (lease ids are real tokens) and
/// the highest token acquired so far, since tokens strictly increase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyState {
    rec: Option<Rec>,
    max_token: u64,
}

const NOW: u64 = 0;
const BOOT: u64 = 1;

fn replay_res(r: &rules::ReplayView) -> ReplayRes {
    ReplayRes { failed: r.failed, body: r.body.clone(), attempts: r.attempts, token: r.id }
}

/// Applies `op` to `s`: the model's answer and the next state. `token` is
/// the fencing token drawn if the call acquires.
fn apply(s: &KeyState, op: &LinOp, token: u64) -> (LinRes, KeyState) {
    let mut next = s.clone();
    let res = match op {
        LinOp::Claim { fp } | LinOp::Wait { fp, .. } => {
            let args = ClaimArgs {
                now: NOW,
                boot: BOOT,
                fp: *fp,
                lease: LEASE.as_millis() as u64,
                retention: RETENTION.as_millis() as u64,
            };
            match rules::claim(&mut next.rec, &args, token) {
                ClaimOut::Acquired { id, attempt, recovered, .. } => {
                    next.max_token = next.max_token.max(id);
                    LinRes::Acquired { token: id, attempt, recovered }
                }
                ClaimOut::Replay(r) => LinRes::Replay(replay_res(&r)),
                ClaimOut::InFlight { attempt, .. } => LinRes::InFlight { attempt },
                ClaimOut::Mismatch { stored } => LinRes::Mismatch { stored },
            }
        }
        LinOp::Complete { token, body } => {
            end_res(rules::end(&mut next.rec, *token, NOW, End::Complete(body.clone())))
        }
        LinOp::FailTerminal { token, body } => {
            end_res(rules::end(&mut next.rec, *token, NOW, End::FailTerminal(body.clone())))
        }
        LinOp::FailRetryable { token } => {
            end_res(rules::end(&mut next.rec, *token, NOW, End::FailRetryable))
        }
        LinOp::Release { token } => end_res(rules::end(&mut next.rec, *token, NOW, End::Release)),
        LinOp::Get => LinRes::Got(rules::view(&next.rec, NOW, BOOT).map(|e| GotRes {
            attempts: e.attempts,
            fp: e.fp,
            state: match e.state {
                StateView::InProgress { id, orphaned, .. } => {
                    GotState::InProgress { token: id, orphaned }
                }
                StateView::Finished(r) => GotState::Finished(replay_res(&r)),
                StateView::Claimable { retryable, .. } => GotState::Claimable { retryable },
            },
        })),
        LinOp::Remove => LinRes::Removed(next.rec.take().is_some()),
    };
    (res, next)
}

/// Applies `op` to `s`; returns the next state if the model's answer is
/// `res`, `None` if this order cannot explain `res`.
fn step(s: &KeyState, op: &LinOp, res: &LinRes) -> Option<KeyState> {
    // The model cannot draw the token: it takes the observed one, which must
    // exceed every earlier token of the key (tokens strictly increase).
    let token = match res {
        LinRes::Acquired { token, .. } if *token > s.max_token => *token,
        LinRes::Acquired { .. } => return None,
        _ => 0,
    };
    let (out, next) = apply(s, op, token);
    (out == *res).then_some(next)
}

fn end_res(r: Result<(), Stale>) -> LinRes {
    match r {
        Ok(()) => LinRes::Ok,
        Err(s) => LinRes::Stale(s),
    }
}

// ---------------------------------------------------------------------------
// The linearizability checker

/// What the checker concluded.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Linearizable,
    /// No order explains the history; the longest linearizable prefix found.
    Violation {
        longest_prefix: Vec<usize>,
    },
    /// The search budget ran out.
    Inconclusive,
}

/// Is `history` (the calls on one key, starting from an absent key)
/// linearizable with respect to [`step`]? Also returns the search steps.
///
/// The Wing & Gong search as Lowe refines it ("Testing for linearizability",
/// 2017): from a set of linearized calls and a model state, the candidates
/// are the unlinearized calls invoked before the earliest response of any
/// unlinearized call; each is tried in turn, and each (linearized set, state)
/// pair is explored at most once (memoization). Two reductions keep 64-way
/// concurrent histories cheap:
///
/// - a candidate that leaves the state unchanged (an `InFlight`, a `Replay`,
///   a `get`, a refused stale lease) can be moved to the front of any
///   linearization of the rest — nothing unlinearized returned before it was
///   invoked, and it changes nothing — so it is committed without trying
///   alternatives;
/// - only state-changing candidates branch, earliest response first.
fn check_linearizable(history: &[Event]) -> (Verdict, u64) {
    let mut search = Search {
        history,
        by_call: {
            let mut v: Vec<usize> = (0..history.len()).collect();
            v.sort_by_key(|&i| history[i].call);
            v
        },
        by_ret: {
            let mut v: Vec<usize> = (0..history.len()).collect();
            v.sort_by_key(|&i| history[i].ret);
            v
        },
        done: vec![0; history.len().div_ceil(64).max(1)],
        cache: HashSet::new(),
        path: Vec::new(),
        longest: Vec::new(),
        steps: 0,
    };
    let verdict = match search.run(&KeyState { rec: None, max_token: 0 }) {
        Some(true) => Verdict::Linearizable,
        Some(false) => Verdict::Violation { longest_prefix: search.longest },
        None => Verdict::Inconclusive,
    };
    (verdict, search.steps)
}

struct Search<'a> {
    history: &'a [Event],
    by_call: Vec<usize>,
    by_ret: Vec<usize>,
    /// The linearized calls, as a bit set.
    done: Vec<u64>,
    cache: HashSet<(Vec<u64>, KeyState)>,
    path: Vec<usize>,
    longest: Vec<usize>,
    steps: u64,
}

impl Search<'_> {
    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
    }

    /// Linearizes call `i` into `next` unless that configuration was seen;
    /// `Some(found)`, or `None` for "seen before" (it failed then).
    fn descend(&mut self, i: usize, next: KeyState) -> Option<Option<bool>> {
        self.flip(i);
        if !self.cache.insert((self.done.clone(), next.clone())) {
            self.flip(i);
            return None;
        }
        self.path.push(i);
        if self.path.len() > self.longest.len() {
            self.longest = self.path.clone();
        }
        let found = self.run(&next);
        self.path.pop();
        self.flip(i);
        Some(found)
    }

    /// `Some(true)`: the rest linearizes from `state`; `Some(false)`: it
    /// cannot; `None`: out of budget.
    fn run(&mut self, state: &KeyState) -> Option<bool> {
        self.steps += 1;
        if self.steps > SEARCH_BUDGET {
            return None;
        }
        let Some(first_ret) =
            self.by_ret.iter().find(|&&i| !self.is_done(i)).map(|&i| self.history[i].ret)
        else {
            return Some(true);
        };
        let candidates: Vec<usize> = self
            .by_call
            .iter()
            .copied()
            .take_while(|&i| self.history[i].call < first_ret)
            .filter(|&i| !self.is_done(i))
            .collect();
        let mut branches: Vec<(usize, KeyState)> = Vec::new();
        for &i in &candidates {
            let e = &self.history[i];
            let Some(next) = step(state, &e.op, &e.res) else { continue };
            if next == *state {
                // Without loss of generality first; no alternatives.
                return self.descend(i, next).unwrap_or(Some(false));
            }
            branches.push((i, next));
        }
        branches.sort_by_key(|(i, _)| self.history[*i].ret);
        for (i, next) in branches {
            match self.descend(i, next) {
                Some(Some(true)) => return Some(true),
                Some(None) => return None,
                Some(Some(false)) | None => {}
            }
        }
        Some(false)
    }
}

/// One holder per lease epoch, checked directly: sorted by token, each
/// acquisition after the first must be preceded (invoked before the
/// acquisition returned, after the previous acquisition was invoked) by a
/// successful release or retryable failure of the previous token, or by a
/// removal of a live record. Returns the violations.
fn check_one_holder(history: &[Event]) -> Vec<String> {
    let mut acquired: Vec<&Event> =
        history.iter().filter(|e| matches!(e.res, LinRes::Acquired { .. })).collect();
    acquired.sort_by_key(|e| token(e));
    let mut problems = Vec::new();
    for pair in acquired.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if token(a) == token(b) {
            problems
                .push(format!("one holder: token {} acquired twice: {a:?} and {b:?}", token(a)));
            continue;
        }
        let handed_over = history.iter().any(|e| {
            let ends_a = match &e.op {
                LinOp::Release { token } | LinOp::FailRetryable { token } => {
                    *token == self::token(a) && e.res == LinRes::Ok
                }
                LinOp::Remove => e.res == LinRes::Removed(true),
                _ => false,
            };
            ends_a && e.call < b.ret && e.ret > a.call
        });
        if !handed_over {
            problems.push(format!(
                "one holder: token {} was acquired while token {} still held the key (no \
                 release, retryable failure or removal in between): {a:?} then {b:?}",
                token(b),
                token(a)
            ));
        }
    }
    problems
}

/// The token of an `Acquired` event.
fn token(e: &Event) -> u64 {
    match e.res {
        LinRes::Acquired { token, .. } => token,
        _ => unreachable!("not an acquisition"),
    }
}

/// Checks one key's history: the search steps it took, or a readable report
/// of the violation.
fn check_history(name: &str, history: &[Event]) -> Result<u64, String> {
    let mut problems = check_one_holder(history);
    // The recorder itself: each thread's calls are sequential.
    let mut by_thread: Vec<&Event> = history.iter().collect();
    by_thread.sort_by_key(|e| (e.thread, e.call));
    for w in by_thread.windows(2) {
        if w[0].thread == w[1].thread && w[1].call < w[0].ret {
            problems.push(format!("thread {} overlaps itself: {:?} {:?}", w[0].thread, w[0], w[1]));
        }
    }
    // An error answer explains nothing; report it rather than search.
    let errors = history.iter().filter(|e| matches!(e.res, LinRes::Error(_))).count();
    for e in history.iter().filter(|e| matches!(e.res, LinRes::Error(_))) {
        problems.push(format!("error answer: {e:?}"));
    }
    let (verdict, steps) =
        if errors == 0 { check_linearizable(history) } else { (Verdict::Inconclusive, 0) };
    if problems.is_empty() && verdict == Verdict::Linearizable {
        return Ok(steps);
    }
    let mut report = format!("history of {name} ({} calls) is wrong:\n", history.len());
    for p in &problems {
        report += &format!("  {p}\n");
    }
    match verdict {
        Verdict::Linearizable => {}
        Verdict::Inconclusive if steps == 0 => {}
        Verdict::Inconclusive => report += &format!("  search gave up after {steps} steps\n"),
        Verdict::Violation { longest_prefix } => {
            report += &format!(
                "  not linearizable; longest linearizable prefix ({} calls):\n",
                longest_prefix.len()
            );
            for &i in &longest_prefix {
                report += &format!("    {:?}\n", history[i]);
            }
            report += "  calls never linearized:\n";
            let done: HashSet<usize> = longest_prefix.into_iter().collect();
            for (i, e) in history.iter().enumerate().filter(|(i, _)| !done.contains(i)) {
                report += &format!("    #{i} {e:?}\n");
            }
        }
    }
    Err(report)
}

// ---------------------------------------------------------------------------
// The workload

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

fn rounds() -> usize {
    std::env::var("IDEMKV_LIN_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100)
}

fn open(dir: &std::path::Path, durability: Durability) -> Store {
    Config::new()
        .durability(durability)
        .default_policy(Policy::default().lease(LEASE).retention(RETENTION))
        .open(dir)
        .expect("open")
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
            Some(l),
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
        },
    }))
}

/// What a round did, for the summary line.
#[derive(Debug, Default)]
struct RoundStats {
    calls: usize,
    acquired: usize,
    max_concurrency: usize,
    /// `wait`s that were in progress when a holder ended its claim, and then
    /// acquired or replayed.
    woken_waits: usize,
    search_steps: u64,
    /// The most search steps one history needed.
    max_steps: u64,
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
        let fp = match rng.below(100) {
            0..80 => Some(0),
            80..95 => None,
            _ => Some(1),
        };
        let roll = rng.below(100);
        let body = format!("thread {thread} says {}", rng.below(1000)).into_bytes();
        // Choose the call (and the lease it uses) before taking the time.
        let op = match (&held[k], roll) {
            (Some(l), 0..5) => LinOp::Complete { token: l.token(), body },
            (Some(l), 5..8) => LinOp::FailTerminal { token: l.token(), body },
            (Some(l), 8..40) => LinOp::FailRetryable { token: l.token() },
            (Some(l), 40..75) => LinOp::Release { token: l.token() },
            (_, 0..45) => LinOp::Claim { fp },
            (_, 45..65) => LinOp::Wait { fp, timeout_ms: rng.below(4) },
            (_, 65..82) => LinOp::Get,
            (_, 82..88) => LinOp::Remove,
            (_, _) if !old[k].is_empty() => {
                // A stale lease: fencing must refuse it (or it is the holder's
                // own lease, already ended: Finished).
                let l = &old[k][rng.below(old[k].len() as u64) as usize];
                match rng.below(3) {
                    0 => LinOp::Complete { token: l.token(), body },
                    1 => LinOp::Release { token: l.token() },
                    _ => LinOp::FailRetryable { token: l.token() },
                }
            }
            _ => LinOp::Claim { fp },
        };
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
            | LinOp::Release { token } => Some(lease_of(*token)),
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
        // Spread the calls: without this a thread on a 2-core machine can run
        // its whole share within one time slice, with no interleaving.
        match rng.below(8) {
            0..4 => std::thread::yield_now(),
            4 => std::thread::sleep(Duration::from_micros(rng.below(300))),
            _ => {}
        }
    }
}

/// Runs one round on fresh keys; returns each key's history.
fn record_round(store: &Store, round: usize, seed: u64) -> Vec<Vec<Event>> {
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

/// Runs one round on fresh keys; checks and returns its statistics.
fn round(store: &Store, round: usize, seed: u64) -> RoundStats {
    let mut stats = RoundStats::default();
    for (k, history) in record_round(store, round, seed).iter().enumerate() {
        assert_eq!(history.len(), OPS_PER_KEY, "every call of the budget ran");
        stats.calls += history.len();
        stats.acquired +=
            history.iter().filter(|e| matches!(e.res, LinRes::Acquired { .. })).count();
        stats.max_concurrency = stats.max_concurrency.max(max_overlap(history));
        stats.woken_waits += woken_waits(history);
        let name = format!("round {round} key {k}");
        let steps = check_history(&name, history).unwrap_or_else(|report| {
            // The whole history, sorted by invocation, for a post-mortem.
            let dump =
                std::env::temp_dir().join(format!("idemkv-lin-{}.txt", name.replace(' ', "-")));
            let mut sorted: Vec<&Event> = history.iter().collect();
            sorted.sort_by_key(|e| e.call);
            let text: String = sorted.iter().map(|e| format!("{e:?}\n")).collect();
            let _ = std::fs::write(&dump, text);
            panic!("{report}  full history: {}\n", dump.display())
        });
        stats.search_steps += steps;
        stats.max_steps = stats.max_steps.max(steps);
    }
    stats
}

/// `wait` calls that overlapped a successful end of a claim and returned
/// `Acquired` or `Replay`.
fn woken_waits(history: &[Event]) -> usize {
    let ends: Vec<&Event> = history
        .iter()
        .filter(|e| {
            e.res == LinRes::Ok
                && !matches!(e.op, LinOp::Claim { .. } | LinOp::Wait { .. } | LinOp::Get)
        })
        .collect();
    history
        .iter()
        .filter(|w| {
            matches!(w.op, LinOp::Wait { timeout_ms, .. } if timeout_ms > 0)
                && matches!(w.res, LinRes::Acquired { .. } | LinRes::Replay(_))
                && ends.iter().any(|e| w.call < e.call && e.ret < w.ret)
        })
        .count()
}

/// The largest number of calls in progress at once.
fn max_overlap(history: &[Event]) -> usize {
    let mut points: Vec<(u64, i32)> =
        history.iter().flat_map(|e| [(e.call, 1), (e.ret, -1)]).collect();
    points.sort_unstable();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in points {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

#[test]
fn hot_keys_under_contention_are_linearizable() {
    let rounds = rounds();
    let started = Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let durable_dir = tempfile::tempdir().unwrap();
    let buffered_dir = tempfile::tempdir().unwrap();
    let durable = open(durable_dir.path(), Durability::Durable);
    let buffered =
        open(buffered_dir.path(), Durability::Buffered { max_delay: Duration::from_millis(5) });
    let mut total = RoundStats::default();
    for r in 0..rounds {
        let (store, mode) =
            if r % 2 == 0 { (&durable, "durable") } else { (&buffered, "buffered") };
        let t = Instant::now();
        let stats = round(store, r, seed.wrapping_add(r as u64));
        if r < 4 || r % 50 == 0 {
            eprintln!(
                "round {r} ({mode}): {} calls, {} acquisitions, {} woken waits, up to {} \
                 concurrent calls on one key, {} search steps, {:?}",
                stats.calls,
                stats.acquired,
                stats.woken_waits,
                stats.max_concurrency,
                stats.search_steps,
                t.elapsed()
            );
        }
        total.calls += stats.calls;
        total.woken_waits += stats.woken_waits;
        total.acquired += stats.acquired;
        total.max_concurrency = total.max_concurrency.max(stats.max_concurrency);
        total.search_steps += stats.search_steps;
        total.max_steps = total.max_steps.max(stats.max_steps);
    }
    eprintln!(
        "{rounds} rounds, seed {seed}: {} calls, {} acquisitions, {} woken waits, max \
         concurrency {}, {} search steps (at most {} for one history), {:?}",
        total.calls,
        total.acquired,
        total.woken_waits,
        total.max_concurrency,
        total.search_steps,
        total.max_steps,
        started.elapsed()
    );
    durable.close().unwrap();
    buffered.close().unwrap();
}

// ---------------------------------------------------------------------------
// The checker can fail

fn ev(thread: usize, call: u64, ret: u64, op: LinOp, res: LinRes) -> Event {
    Event { thread, op, call, ret, res }
}

fn acquired(token: u64, attempt: u32) -> LinRes {
    LinRes::Acquired { token, attempt, recovered: false }
}

const A: Option<Fp> = Some(0);

#[test]
fn checker_rejects_two_overlapping_winners() {
    // Two concurrent claims of an absent key both acquire; nobody released.
    let h = [
        ev(0, 1, 4, LinOp::Claim { fp: A }, acquired(10, 1)),
        ev(1, 2, 3, LinOp::Claim { fp: A }, acquired(11, 1)),
    ];
    assert!(matches!(check_linearizable(&h).0, Verdict::Violation { .. }));
    assert_eq!(check_one_holder(&h).len(), 1);
    let report = check_history("handmade", &h).unwrap_err();
    assert!(report.contains("not linearizable") && report.contains("one holder"), "{report}");
    eprintln!("{report}");
}

#[test]
fn checker_rejects_a_second_winner_after_the_first_returned() {
    // Sequential: the second claim should have been InFlight.
    let h = [
        ev(0, 1, 2, LinOp::Claim { fp: A }, acquired(10, 1)),
        ev(1, 3, 4, LinOp::Claim { fp: A }, acquired(11, 2)),
    ];
    assert!(matches!(check_linearizable(&h).0, Verdict::Violation { .. }));
    assert_eq!(check_one_holder(&h).len(), 1);
}

#[test]
fn checker_rejects_stale_reads_and_unseen_responses() {
    // The complete returned before the claim was invoked: the claim may
    // not report InFlight any more.
    let h = [
        ev(0, 1, 2, LinOp::Claim { fp: A }, acquired(10, 1)),
        ev(0, 3, 4, LinOp::Complete { token: 10, body: b"x".to_vec() }, LinRes::Ok),
        ev(1, 5, 6, LinOp::Claim { fp: A }, LinRes::InFlight { attempt: 1 }),
    ];
    assert!(matches!(check_linearizable(&h).0, Verdict::Violation { .. }));
    // A replay of bytes nobody stored.
    let h = [
        ev(0, 1, 2, LinOp::Claim { fp: A }, acquired(10, 1)),
        ev(0, 3, 6, LinOp::Complete { token: 10, body: b"x".to_vec() }, LinRes::Ok),
        ev(
            1,
            4,
            5,
            LinOp::Claim { fp: None },
            LinRes::Replay(ReplayRes {
                failed: false,
                body: b"y".to_vec(),
                attempts: 1,
                token: 10,
            }),
        ),
    ];
    assert!(matches!(check_linearizable(&h).0, Verdict::Violation { .. }));
    // Tokens must increase in linearization order: a later acquisition with
    // a smaller token.
    let h = [
        ev(0, 1, 2, LinOp::Claim { fp: A }, acquired(10, 1)),
        ev(0, 3, 4, LinOp::Release { token: 10 }, LinRes::Ok),
        ev(1, 5, 6, LinOp::Claim { fp: A }, acquired(9, 2)),
    ];
    assert!(matches!(check_linearizable(&h).0, Verdict::Violation { .. }));
    // A stale lease that was let through.
    let h = [
        ev(0, 1, 2, LinOp::Claim { fp: A }, acquired(10, 1)),
        ev(0, 3, 4, LinOp::Release { token: 10 }, LinRes::Ok),
        ev(1, 5, 6, LinOp::Claim { fp: A }, acquired(11, 2)),
        ev(0, 7, 8, LinOp::Complete { token: 10, body: b"late".to_vec() }, LinRes::Ok),
    ];
    assert!(matches!(check_linearizable(&h).0, Verdict::Violation { .. }));
}

#[test]
fn checker_accepts_histories_that_need_reordering() {
    // The claim was invoked before the complete but saw its result, and a
    // concurrent get saw the state before: both fit one order.
    let body = b"done".to_vec();
    let h = [
        ev(0, 1, 2, LinOp::Claim { fp: A }, acquired(10, 1)),
        ev(
            1,
            3,
            9,
            LinOp::Claim { fp: None },
            LinRes::Replay(ReplayRes { failed: false, body: body.clone(), attempts: 1, token: 10 }),
        ),
        ev(
            2,
            4,
            8,
            LinOp::Get,
            LinRes::Got(Some(GotRes {
                attempts: 1,
                fp: A,
                state: GotState::InProgress { token: 10, orphaned: false },
            })),
        ),
        ev(0, 5, 7, LinOp::Complete { token: 10, body }, LinRes::Ok),
        ev(3, 6, 10, LinOp::Release { token: 10 }, LinRes::Stale(Stale::Finished)),
        // Released, re-acquired, removed, acquired afresh.
        ev(1, 11, 12, LinOp::Remove, LinRes::Removed(true)),
        ev(2, 13, 16, LinOp::Claim { fp: None }, acquired(12, 1)),
        ev(
            3,
            14,
            15,
            LinOp::Complete { token: 10, body: b"late".to_vec() },
            LinRes::Stale(Stale::Missing),
        ),
    ];
    assert_eq!(check_linearizable(&h).0, Verdict::Linearizable);
    assert!(check_one_holder(&h).is_empty());
}

#[test]
fn checker_rejects_a_forged_answer_in_a_real_history() {
    // Record real 64-thread histories, then forge one answer in each way;
    // every forgery must be caught.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Durability::Buffered { max_delay: Duration::from_millis(5) });
    let histories = record_round(&store, 0, 7);
    let mut forged = 0;
    for history in &histories {
        assert_eq!(check_linearizable(history).0, Verdict::Linearizable);
        // Forgeries that no linearization can explain (an answer that is
        // merely unlikely, e.g. another attempt number, may still fit).
        let first_token = history.iter().find_map(|e| match e.res {
            LinRes::Acquired { token, .. } => Some(token),
            _ => None,
        });
        let Some(first_token) = first_token else { continue };
        let forgeries: [fn(&mut LinRes, u64) -> bool; 4] = [
            // A duplicate is told bytes nobody stored.
            |r, _| match r {
                LinRes::Replay(r) => {
                    r.body = b"forged".to_vec();
                    true
                }
                _ => false,
            },
            // A waiting claimer reports an attempt that never happened.
            |r, _| match r {
                LinRes::InFlight { attempt } => {
                    *attempt += 1000;
                    true
                }
                _ => false,
            },
            // A second winner of an epoch: a claim that waited is told it
            // acquired, with the token of the key's first acquisition.
            |r, first| match r {
                LinRes::InFlight { attempt } => {
                    *r = LinRes::Acquired { token: first, attempt: *attempt, recovered: false };
                    true
                }
                _ => false,
            },
            // A stale lease blamed on a holder that never existed.
            |r, _| match r {
                LinRes::Stale(Stale::Superseded { current }) => {
                    *current = u64::MAX - 1;
                    true
                }
                _ => false,
            },
        ];
        for forge in forgeries {
            let mut h = history.clone();
            let Some(i) = h.iter().position(|e| forge(&mut e.res.clone(), first_token)) else {
                continue;
            };
            forge(&mut h[i].res, first_token);
            let (verdict, _) = check_linearizable(&h);
            assert!(matches!(verdict, Verdict::Violation { .. }), "forged {:?} was accepted", h[i]);
            forged += 1;
        }
    }
    assert!(forged >= 4, "too few answers to forge ({forged})");
    store.close().unwrap();
}

#[test]
fn checker_accepts_generated_linearizable_histories() {
    // Histories linearizable by construction: run random calls through the
    // model one after another (call i takes effect at instant i), then widen
    // each call's interval around its instant — a few very wide, like calls
    // stalled behind an fsync. The checker must accept every one within its
    // budget. (A long-run history of this shape — 33 removals overlapping 33
    // acquisitions — once exhausted a naive search.)
    let mut rng = Rng(42);
    let mut worst = 0;
    for _ in 0..200 {
        let mut state = KeyState { rec: None, max_token: 0 };
        let mut tokens: Vec<u64> = Vec::new();
        let mut history = Vec::new();
        for i in 0..OPS_PER_KEY as u64 {
            let op = match rng.below(100) {
                0..30 => LinOp::Claim { fp: [None, Some(0), Some(1)][rng.below(3) as usize] },
                30..40 => LinOp::Wait { fp: Some(0), timeout_ms: 1 },
                40..55 => LinOp::Get,
                55..65 => LinOp::Remove,
                _ if tokens.is_empty() => LinOp::Get,
                r => {
                    // Mostly the latest lease, sometimes a stale one.
                    let t = if rng.below(4) > 0 {
                        *tokens.last().unwrap()
                    } else {
                        tokens[rng.below(tokens.len() as u64) as usize]
                    };
                    match r {
                        65..70 => LinOp::Complete { token: t, body: vec![rng.below(3) as u8] },
                        70..72 => LinOp::FailTerminal { token: t, body: b"no".to_vec() },
                        72..86 => LinOp::FailRetryable { token: t },
                        _ => LinOp::Release { token: t },
                    }
                }
            };
            let token = state.max_token + 1 + rng.below(3);
            let (res, next) = apply(&state, &op, token);
            if matches!(res, LinRes::Acquired { .. }) {
                tokens.push(token);
            }
            state = next;
            let spread = if rng.below(100) < 15 { 150 } else { 4 };
            let (before, after) = (rng.below(spread).min(i), rng.below(spread));
            // Distinct instants: calls at 4k+1, returns at 4k+3.
            let (call, ret) = (4 * (i - before) + 1, 4 * (i + after) + 3);
            history.push(Event { thread: i as usize, op, call, ret, res });
        }
        let (verdict, steps) = check_linearizable(&history);
        assert_eq!(verdict, Verdict::Linearizable, "a linearizable history was rejected");
        worst = worst.max(steps);
    }
    eprintln!("worst search: {worst} steps");
}
