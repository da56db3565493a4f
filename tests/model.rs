//! Model-based tests: random sequences of every public operation — claim (with
//! and without fingerprint, per-call lease/retention), wait, complete, fail,
//! extend, release, remove, get, sweep, mock-clock advances around the lease
//! and the retention, and reopening the store — run against a real `Store`
//! and against the reference model in `tests/model_support`, comparing every
//! answer. See docs/RELIABILITY.md, "Model-based tests".
//!
//! `IDEMKV_MODEL_CASES` sets the number of sequences of the `Buffered` run
//! (default 1000); the `Durable` run does a tenth of that (at least 20).

mod model_support;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use idemkv::Durability;
use model_support::{KEYS, LEASE_MS, Model, Ms, Op, Outcome, RETENTION_MS, Sut};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestError, TestRunner};

fn cases() -> u32 {
    std::env::var("IDEMKV_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

fn buffered() -> Durability {
    Durability::Buffered { max_delay: std::time::Duration::from_millis(5) }
}

/// Durations around the lease (10 s) and the retention (100 s), on both sides
/// of each boundary.
fn step() -> impl Strategy<Value = Ms> {
    prop_oneof![
        Just(1),
        Just(5_000),
        Just(LEASE_MS - 1),
        Just(LEASE_MS),
        Just(LEASE_MS + 1),
        Just(50_000),
        Just(RETENTION_MS - 1),
        Just(RETENTION_MS),
        Just(RETENTION_MS + LEASE_MS),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = || 0..KEYS;
    let fp = || prop_oneof![Just(None), Just(Some(0)), Just(Some(1))];
    let lease = || 0usize..6;
    let body = || 0u8..3;
    let lease_opt = prop_oneof![
        4 => Just(None),
        1 => Just(Some(1_000)),
        1 => Just(Some(LEASE_MS)),
        1 => Just(Some(60_000)),
    ];
    let retention_opt = prop_oneof![
        4 => Just(None),
        1 => Just(Some(30_000)),
        1 => Just(Some(RETENTION_MS)),
        1 => Just(Some(200_000)),
    ];
    let extend_by = prop_oneof![
        3 => Just(1_000),
        3 => Just(LEASE_MS),
        2 => Just(RETENTION_MS),
        1 => Just(150_000),
        1 => Just(0),
    ];
    prop_oneof![
        20 => (key(), fp(), lease_opt, retention_opt).prop_map(|(key, fp, lease_ms, retention_ms)| {
            Op::Claim { key, fp, lease_ms, retention_ms }
        }),
        5 => (key(), fp(), prop_oneof![Just(0u64), Just(1)])
            .prop_map(|(key, fp, timeout_ms)| Op::Wait { key, fp, timeout_ms }),
        10 => (lease(), body()).prop_map(|(lease, body)| Op::Complete { lease, body }),
        5 => lease().prop_map(|lease| Op::FailRetryable { lease }),
        3 => (lease(), body()).prop_map(|(lease, body)| Op::FailTerminal { lease, body }),
        5 => (lease(), extend_by).prop_map(|(lease, by_ms)| Op::Extend { lease, by_ms }),
        5 => lease().prop_map(|lease| Op::Release { lease }),
        3 => key().prop_map(|key| Op::Remove { key }),
        10 => key().prop_map(|key| Op::Get { key }),
        12 => step().prop_map(|ms| Op::Advance { ms }),
        4 => Just(Op::Sweep),
        2 => any::<bool>().prop_map(|close| Op::Reopen { close }),
    ]
}

/// Runs `ops` against a fresh store and the model; on the first difference,
/// fails with the numbered sequence up to it.
fn check(ops: &[Op], durability: Durability) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut sut =
        Sut::open(dir.path(), durability).map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
    let mut model = Model::new();
    let mut trace = String::new();
    for (i, op) in ops.iter().enumerate() {
        let target = match op {
            Op::Complete { lease, .. }
            | Op::FailRetryable { lease }
            | Op::FailTerminal { lease, .. }
            | Op::Extend { lease, .. }
            | Op::Release { lease } => model
                .resolve(*lease)
                .map(|l| format!("  [L{l} on k{}]", model.lease_key(l)))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let expected = model.apply(op);
        let actual = sut.apply(op);
        if expected != actual {
            let _ = writeln!(
                trace,
                "{i:>3}: {op:?}{target}\n       model: {expected:?}\n       store: {actual:?}  <-- differs"
            );
            return Err(TestCaseError::fail(format!(
                "store and model differ at op {i} ({durability:?}); ops so far:\n{trace}"
            )));
        }
        let _ = writeln!(trace, "{i:>3}: {op:?}{target} => {actual:?}");
    }
    sut.close().map_err(|e| TestCaseError::fail(format!("close: {e}")))
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Regressions are kept as tests below, not in a proptest-regressions file.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

/// Runs `cases` generated sequences against a `durability` store; on a
/// failure, panics with the shrunk sequence, one op per line (ready to paste
/// into a scripted regression test), and the trace of both sides up to the
/// first difference.
fn run_model(durability: Durability, cases: u32) {
    let mut runner = TestRunner::new(config(cases));
    let ops_run = AtomicU64::new(0);
    let started = Instant::now();
    let result = runner.run(&prop::collection::vec(op_strategy(), 1..60), |ops| {
        ops_run.fetch_add(ops.len() as u64, Ordering::Relaxed);
        check(&ops, durability)
    });
    match result {
        Ok(()) => eprintln!(
            "{durability:?}: {cases} sequences, {} ops (shrinking excluded), {:?}",
            ops_run.into_inner(),
            started.elapsed()
        ),
        Err(TestError::Fail(_, ops)) => {
            // proptest stops deleting ops once it starts simplifying them;
            // finish with a greedy deletion pass (delta debugging).
            let mut ops = ops;
            let mut shorter = true;
            while shorter {
                shorter = false;
                for i in (0..ops.len()).rev() {
                    let mut fewer = ops.clone();
                    fewer.remove(i);
                    if check(&fewer, durability).is_err() {
                        ops = fewer;
                        shorter = true;
                    }
                }
            }
            let (TestCaseError::Fail(reason) | TestCaseError::Reject(reason)) =
                check(&ops, durability).expect_err("still fails");
            let listing: String = ops.iter().map(|op| format!("    {op:?},\n")).collect();
            panic!(
                "{}\nminimal failing sequence ({} ops):\n[\n{listing}]",
                reason.message(),
                ops.len()
            );
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn buffered_store_matches_the_model() {
    run_model(buffered(), cases());
}

#[test]
fn durable_store_matches_the_model() {
    run_model(Durability::Durable, (cases() / 10).max(20));
}

/// A fixed sequence through every rule, as a readable smoke test of the
/// harness itself (both sides must agree on each step).
#[test]
fn scripted_walk_through_the_contract() {
    use Op::*;
    let ops = [
        Claim { key: 0, fp: Some(0), lease_ms: None, retention_ms: None },
        Claim { key: 0, fp: None, lease_ms: None, retention_ms: None },
        Claim { key: 0, fp: Some(1), lease_ms: None, retention_ms: None },
        Wait { key: 0, fp: Some(0), timeout_ms: 1 },
        Advance { ms: LEASE_MS },
        Claim { key: 0, fp: Some(0), lease_ms: None, retention_ms: None },
        Complete { lease: 1, body: 1 },
        Release { lease: 0 },
        Complete { lease: 0, body: 2 },
        Claim { key: 0, fp: None, lease_ms: None, retention_ms: None },
        Claim { key: 1, fp: None, lease_ms: Some(1_000), retention_ms: None },
        Reopen { close: true },
        Get { key: 1 },
        Claim { key: 1, fp: Some(1), lease_ms: None, retention_ms: None },
        Extend { lease: 0, by_ms: 50_000 },
        FailRetryable { lease: 1 },
        FailRetryable { lease: 0 },
        Get { key: 1 },
        Advance { ms: RETENTION_MS },
        Get { key: 0 },
        Sweep,
        Complete { lease: 0, body: 1 },
        Remove { key: 1 },
    ];
    let mut model = Model::new();
    assert!(matches!(model.apply(&ops[0]), Outcome::Acquired { lease: 0, attempt: 1, .. }));
    run_script(&ops);
}

/// The generator reaches every rule of the contract: runs the model alone
/// (no store, so it is cheap) over generated sequences and insists that each
/// interesting answer occurs. A strategy change that silently stops testing
/// orphans, fencing or the sweeper fails here.
#[test]
fn generator_reaches_every_rule() {
    use model_support::{Stale, StateView};
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;

    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(op_strategy(), 1..60);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..1000 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut model = Model::new();
        for op in &ops {
            let label = match model.apply(op) {
                Outcome::Acquired { attempt: 1, .. } => "acquired new",
                Outcome::Acquired { recovered: true, .. } if matches!(op, Op::Wait { .. }) => {
                    "wait acquired orphan"
                }
                Outcome::Acquired { recovered: true, .. } => "acquired orphan",
                Outcome::Acquired { .. } => "acquired idle",
                Outcome::Replay(r) if r.failed => "replay failed",
                Outcome::Replay(r) if r.body.is_empty() => "replay empty body",
                Outcome::Replay(_) => "replay completed",
                Outcome::InFlight { .. } if matches!(op, Op::Wait { .. }) => "wait in flight",
                Outcome::InFlight { .. } => "in flight",
                Outcome::Mismatch { .. } => "mismatch",
                Outcome::Done => "ended",
                Outcome::Extended { .. } => "extended",
                Outcome::Stale(Stale::Superseded { .. }) => "stale superseded",
                Outcome::Stale(Stale::Finished) => "stale finished",
                Outcome::Stale(Stale::Missing) => "stale missing",
                Outcome::Stale(Stale::OtherStore) => "stale other store",
                Outcome::InvalidConfig if matches!(op, Op::Extend { .. }) => "extend refused",
                Outcome::InvalidConfig => "claim options refused",
                Outcome::Removed(true) => "removed live",
                Outcome::Removed(false) => "removed nothing",
                Outcome::Got(None) => "get absent",
                Outcome::Got(Some(e)) => match e.state {
                    StateView::InProgress { orphaned: true, .. } => "get orphaned",
                    StateView::InProgress { .. } => "get in progress",
                    StateView::Finished(_) => "get finished",
                    StateView::Claimable { retryable: true, .. } => "get claimable (retryable)",
                    StateView::Claimable { .. } => "get claimable (released)",
                },
                Outcome::Swept(0) => "swept none",
                Outcome::Swept(_) => "swept some",
                Outcome::Reopened => "reopened",
                Outcome::NoLease | Outcome::Advanced => continue,
                Outcome::Unexpected(e) => panic!("the model answered Unexpected({e})"),
            };
            *seen.entry(label).or_default() += 1;
        }
    }
    eprintln!("outcomes over 1000 generated sequences: {seen:#?}");
    let all = [
        "acquired new",
        "acquired orphan",
        "wait acquired orphan",
        "acquired idle",
        "replay failed",
        "replay empty body",
        "replay completed",
        "in flight",
        "wait in flight",
        "mismatch",
        "ended",
        "extended",
        "stale superseded",
        "stale finished",
        "stale missing",
        "stale other store",
        "extend refused",
        "claim options refused",
        "removed live",
        "removed nothing",
        "get absent",
        "get orphaned",
        "get in progress",
        "get finished",
        "get claimable (retryable)",
        "get claimable (released)",
        "swept none",
        "swept some",
        "reopened",
    ];
    for label in all {
        assert!(
            seen.get(label).copied().unwrap_or(0) >= 5,
            "the generator rarely reaches {label:?}: {seen:#?}"
        );
    }
}

/// Found by this suite (shrunk to these three ops): "A record whose
/// `expires_at` has passed is absent to every call, whether or not the
/// sweeper has removed it yet." `extend` of a lease whose record expired is
/// `StaleLease { Missing }` — as it is once the record is swept — even when
/// `by` exceeds the dead record's retention; the store used to answer
/// `InvalidConfig` until the sweep. Fixed in 4d6b6dd.
#[test]
fn extend_of_an_expired_record_is_missing() {
    use Op::*;
    let ops = [
        Claim { key: 1, fp: None, lease_ms: None, retention_ms: Some(30_000) },
        Advance { ms: 50_000 },
        Extend { lease: 0, by_ms: RETENTION_MS },
        Sweep,
        Extend { lease: 0, by_ms: RETENTION_MS },
    ];
    run_script(&ops);
}

fn run_script(ops: &[Op]) {
    if let Err(e) = check(ops, buffered()) {
        panic!("{e}");
    }
}
