//! What the embedded backend counts, under the stripe lock the call already
//! holds (plain integers in the stripe, no shared cache lines).

use crate::core::ClaimDecision;
use crate::core::backend::Op;
use crate::metrics::{Counter, ShardCounters};

/// Counts a claim's outcome.
pub(super) fn count_claim(c: &mut ShardCounters, namespace: &[u8], decision: &ClaimDecision) {
    let counts = c.slot(namespace);
    let mut add = |c: Counter| counts[c as usize] = counts[c as usize].saturating_add(1);
    add(Counter::Claims);
    match decision {
        ClaimDecision::Acquire { record, recovered } => {
            add(Counter::Acquired);
            if *recovered {
                add(Counter::OrphansRecovered);
            }
            if record.attempts > 1 {
                add(Counter::Retries);
            }
        }
        ClaimDecision::Replay => add(Counter::Replayed),
        ClaimDecision::InFlight { .. } => add(Counter::InFlight),
        ClaimDecision::Mismatch { .. } => add(Counter::Mismatches),
    }
}

/// The counter of a successful transition.
pub(super) fn counter_of(op: &Op<'_>) -> Counter {
    match op {
        Op::Complete(_) => Counter::Completions,
        Op::FailTerminal(_) => Counter::FailuresTerminal,
        Op::FailRetryable => Counter::FailuresRetryable,
        Op::Release => Counter::Releases,
        Op::Extend { .. } => Counter::Extensions,
    }
}

/// Counts an expired record the sweeper removed.
pub(super) fn count_expiry(counters: &mut ShardCounters, raw: &[u8]) {
    if let Ok(key) = crate::key::Key::from_raw(raw) {
        counters.add(key.namespace_bytes(), Counter::Expirations);
    }
}
