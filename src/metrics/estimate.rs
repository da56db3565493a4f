//! [`ProcessingTimes`]: how long a namespace's holders take from claim to
//! completion, recently — the basis of `Claim::InFlight::retry_after`.
//!
//! The last [`WINDOW`] completions of the namespace in this process are kept
//! in a ring; their 90th percentile is computed when an in-flight answer
//! needs it — exactly while there are few samples ([`EXACT_UNTIL`]), then
//! after every [`REFRESH`] new ones. Before the first completion there is
//! no estimate.

use parking_lot::Mutex;

/// Completions remembered.
pub(crate) const WINDOW: usize = 256;
/// The percentile is recomputed after this many new samples…
const REFRESH: u32 = 16;
/// …once the ring holds more than this many (before, at every sample).
const EXACT_UNTIL: usize = 64;

/// Recent claim-to-completion times of one namespace, in milliseconds.
/// Recording is a push under a mutex (the completion path); the percentile
/// is computed when asked for (the in-flight path), at most once per
/// [`REFRESH`] new samples once the window holds more than [`EXACT_UNTIL`].
#[derive(Default)]
pub(crate) struct ProcessingTimes {
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    samples: Vec<u64>,
    next: usize,
    /// Samples recorded since `p90` was computed.
    since_refresh: u32,
    p90: Option<u64>,
}

impl ProcessingTimes {
    /// Adds one completion that took `ms` from its claim.
    pub fn record(&self, ms: u64) {
        let mut r = self.ring.lock();
        if r.samples.len() < WINDOW {
            r.samples.push(ms);
        } else {
            let i = r.next;
            r.samples[i] = ms;
        }
        r.next = (r.next + 1) % WINDOW;
        r.since_refresh = r.since_refresh.saturating_add(1);
    }

    /// The recent 90th percentile; `None` before the first sample.
    pub fn p90_ms(&self) -> Option<u64> {
        let mut r = self.ring.lock();
        let stale = r.since_refresh > 0
            && (r.p90.is_none() || r.samples.len() <= EXACT_UNTIL || r.since_refresh >= REFRESH);
        if stale {
            r.since_refresh = 0;
            r.p90 = p90_of(r.samples.clone());
        }
        r.p90
    }
}

/// The 90th percentile of `samples` (nearest rank: the smallest sample with
/// at least 90 % of them at or below it).
fn p90_of(mut samples: Vec<u64>) -> Option<u64> {
    samples.sort_unstable();
    let rank = (samples.len() * 9).div_ceil(10).max(1);
    samples.get(rank - 1).copied()
}

/// When an in-flight holder will probably be done, in ms from now: the
/// namespace's recent p90 processing time minus the time the holder has
/// already run — or, once it has run longer than that, a quarter of the p90
/// — never less than 1 ms and never beyond the lease (`lease_left_ms`).
/// Before the namespace's first completion in this process: the time left on
/// the lease.
pub(crate) fn retry_after_ms(p90_ms: Option<u64>, elapsed_ms: u64, lease_left_ms: u64) -> u64 {
    let Some(p90) = p90_ms else { return lease_left_ms };
    let guess = p90.checked_sub(elapsed_ms).filter(|&left| left > 0).unwrap_or(p90 / 4);
    guess.max(1).min(lease_left_ms.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_estimate_before_the_first_completion_then_the_p90() {
        let t = ProcessingTimes::default();
        assert_eq!(t.p90_ms(), None);
        t.record(40);
        assert_eq!(t.p90_ms(), Some(40), "one sample is an estimate");
        for i in 1..=9 {
            t.record(i);
        }
        // 40 and 1..=9: rank ceil(9) = 9 of the sorted ten is 9.
        assert_eq!(t.p90_ms(), Some(9));
        for _ in 0..WINDOW {
            t.record(100);
        }
        assert_eq!(t.p90_ms(), Some(100), "the window forgot the old samples");
        // Under 10 % slow ones do not move the p90; over 10 % do (once the
        // next refresh comes: at most REFRESH samples later).
        for (slow, p90) in [(WINDOW / 10, 20), (WINDOW / 10 + 1, 5_000)] {
            for i in 0..WINDOW + REFRESH as usize {
                t.record(if (i % WINDOW) < slow { 5_000 } else { 20 });
            }
            let window = t.ring.lock().samples.clone();
            assert_eq!(window.iter().filter(|&&v| v == 5_000).count(), slow);
            assert_eq!(p90_of(window), Some(p90), "{slow} slow of {WINDOW}");
            assert_eq!(t.p90_ms(), Some(p90), "{slow} slow of {WINDOW}");
        }
    }

    #[test]
    fn retry_after_is_bounded_by_the_lease_and_never_zero() {
        // Every combination of the three inputs at their edges.
        let edges = [0, 1, 2, 3, 4, 999, 1_000, 1_001, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        for p90 in edges.iter().map(|&v| Some(v)).chain([None]) {
            for elapsed in edges {
                for left in edges {
                    let r = retry_after_ms(p90, elapsed, left);
                    assert!(r >= 1 || (p90.is_none() && left == 0), "{p90:?} {elapsed} {left}");
                    assert!(r <= left.max(1), "{p90:?} {elapsed} {left}: {r}");
                }
            }
        }
        assert_eq!(retry_after_ms(None, 0, 30_000), 30_000);
        assert_eq!(retry_after_ms(Some(2_000), 500, 30_000), 1_500);
        assert_eq!(retry_after_ms(Some(2_000), 2_000, 30_000), 500);
        assert_eq!(retry_after_ms(Some(2_000), 9_000, 30_000), 500);
        assert_eq!(retry_after_ms(Some(2_000), 500, 700), 700);
        assert_eq!(retry_after_ms(Some(0), 0, 700), 1);
    }
}
