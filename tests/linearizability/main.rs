//! Contention and linearizability: 64 threads hammer three hot keys with
//! mixed operations (claim, claim batches over the hot keys, wait, complete,
//! fail, release, abandon — `Store::abandon` or a guard dropped — remove,
//! get, and stale leases), recording every call's invocation and response on a global
//! logical clock. Each key's history is then checked:
//!
//! - **linearizability** against the sequential per-key rules of
//!   `tests/model_support` (a Wing & Gong / Lowe search with memoization of
//!   the linearized set and the model state): some total order of the calls,
//!   consistent with real time, explains every answer;
//! - **one holder per lease epoch**, directly: sorted by token, every
//!   acquisition after the first is preceded by a successful release,
//!   retryable failure or abandon of the previous holder, or by a removal of
//!   the key.
//!
//! A real clock with one-hour leases keeps leases from expiring, so the only
//! nondeterminism is the interleaving. `IDEMKV_LIN_ROUNDS` sets the number of
//! rounds (default 100), each on fresh keys, alternating `Durable` and
//! `Buffered` stores. See docs/RELIABILITY.md, "Contention and
//! linearizability".

#[path = "../model_support/mod.rs"]
mod model_support;

mod checker;
mod history;
mod rounds;
mod spec;
mod workload;

use std::time::{Duration, Instant};

use checker::{Verdict, check_history, check_linearizable, check_one_holder};
use history::{Event, GotRes, GotState, LinOp, LinRes, ReplayRes};
use idemkv::Durability;
use model_support::Fp;
use model_support::rules::Stale;
use rounds::{RoundStats, open, round, rounds};
use spec::{KeyState, apply};
use workload::{Rng, record_round};

const THREADS: usize = 64;
const HOT_KEYS: usize = 3;
/// Calls per key per round: bounds each history the checker searches.
const OPS_PER_KEY: usize = 400;
const LEASE: Duration = Duration::from_secs(3600);
const RETENTION: Duration = Duration::from_secs(7200);
/// The checker gives up (and fails) after this many search steps per history.
const SEARCH_BUDGET: u64 = 20_000_000;

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
                "round {r} ({mode}): {} calls, {} acquisitions ({} recovered), {} woken waits, \
                 up to {} concurrent calls on one key, {} search steps, {:?}",
                stats.calls,
                stats.acquired,
                stats.recovered,
                stats.woken_waits,
                stats.max_concurrency,
                stats.search_steps,
                t.elapsed()
            );
        }
        total.calls += stats.calls;
        total.woken_waits += stats.woken_waits;
        total.acquired += stats.acquired;
        total.recovered += stats.recovered;
        total.max_concurrency = total.max_concurrency.max(stats.max_concurrency);
        total.search_steps += stats.search_steps;
        total.max_steps = total.max_steps.max(stats.max_steps);
    }
    eprintln!(
        "{rounds} rounds, seed {seed}: {} calls, {} acquisitions ({} recovered), {} woken \
         waits, max concurrency {}, {} search steps (at most {} for one history), {:?}",
        total.calls,
        total.acquired,
        total.recovered,
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
    // After the holder's abandon returned, the key is an orphan: a claim
    // acquires it, recovered — not InFlight, not unflagged.
    let abandoned = |res: LinRes| {
        [
            ev(0, 1, 2, LinOp::Claim { fp: A }, acquired(10, 1)),
            ev(0, 3, 4, LinOp::Abandon { token: 10, guard: true }, LinRes::Ok),
            ev(1, 5, 6, LinOp::Claim { fp: A }, res),
        ]
    };
    let in_flight = abandoned(LinRes::InFlight { attempt: 1 });
    assert!(matches!(check_linearizable(&in_flight).0, Verdict::Violation { .. }));
    let unflagged = abandoned(LinRes::Acquired { token: 11, attempt: 2, recovered: false });
    assert!(matches!(check_linearizable(&unflagged).0, Verdict::Violation { .. }));
    let recovered = abandoned(LinRes::Acquired { token: 11, attempt: 2, recovered: true });
    assert_eq!(check_linearizable(&recovered).0, Verdict::Linearizable);
    assert!(check_one_holder(&recovered).is_empty());
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
                        86..92 => LinOp::Abandon { token: t, guard: rng.below(2) == 0 },
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
