//! What the embedded backend counts, under the stripe lock the call already
//! holds (plain integers in the stripe, no shared cache lines).

use crate::core::ClaimDecision;
use crate::core::backend::Op;
use crate::metrics::{Counter, ShardCounters};

/// Counts a claim's outcome. A `wait` that found the key in flight and will
/// sleep is not counted: its last round is.
pub(super) fn count_claim(
    c: &mut ShardCounters,
    namespace: &[u8],
    decision: &ClaimDecision,
    waiting: bool,
) {
    match decision {
        ClaimDecision::Acquire { record, recovered } => {
            count_acquired(c, namespace, record.attempts, *recovered);
        }
        ClaimDecision::InFlight { .. } if waiting => {}
        ClaimDecision::InFlight { .. } => {
            count(c, namespace, &[Counter::Claims, Counter::InFlight])
        }
        ClaimDecision::Replay => count(c, namespace, &[Counter::Claims, Counter::Replayed]),
        ClaimDecision::Mismatch { .. } => {
            count(c, namespace, &[Counter::Claims, Counter::Mismatches]);
        }
    }
}

/// Counts a claim that acquired the key (once its record is written).
pub(super) fn count_acquired(
    c: &mut ShardCounters,
    namespace: &[u8],
    attempts: u32,
    recovered: bool,
) {
    count(c, namespace, &[Counter::Claims, Counter::Acquired]);
    if recovered {
        count(c, namespace, &[Counter::OrphansRecovered]);
    }
    if attempts > 1 {
        count(c, namespace, &[Counter::Retries]);
    }
}

fn count(c: &mut ShardCounters, namespace: &[u8], which: &[Counter]) {
    let counts = c.slot(namespace);
    for &k in which {
        counts[k as usize] = counts[k as usize].saturating_add(1);
    }
}

/// The counter of a successful transition.
pub(super) fn counter_of(op: &Op<'_>) -> Counter {
    match op {
        Op::Complete(..) => Counter::Completions,
        Op::FailTerminal(..) => Counter::FailuresTerminal,
        Op::FailRetryable => Counter::FailuresRetryable,
        Op::Release => Counter::Releases,
        Op::Extend { .. } => Counter::Extensions,
        Op::Abandon => Counter::Abandons,
    }
}

/// Counts an expired record the sweeper removed.
pub(super) fn count_expiry(counters: &mut ShardCounters, raw: &[u8]) {
    if let Ok(key) = crate::key::Key::from_raw(raw) {
        counters.add(key.namespace_bytes(), Counter::Expirations);
    }
}
