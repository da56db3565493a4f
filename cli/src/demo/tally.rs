//! What the provider counts while the demo runs: deliveries by kind, answers
//! by outcome, waits, recovered leases, bad answers, and the handler's
//! latency samples with their percentiles.

use std::collections::BTreeMap;

use super::protocol::{Answer, Outcome};
use super::schedule::Kind;

/// How many times each value of `K` (a fieldless enum) was counted; any
/// variant, without a table size to keep in step with the enum.
#[derive(Debug)]
pub struct Tally<K>(BTreeMap<K, u64>);

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally(BTreeMap::new())
    }
}

impl<K: Ord + Copy> Tally<K> {
    /// Counts `k` once.
    pub fn add(&mut self, k: K) {
        *self.0.entry(k).or_default() += 1;
    }

    /// How many times `k` was counted.
    pub fn get(&self, k: K) -> u64 {
        self.0.get(&k).copied().unwrap_or(0)
    }
}

/// What the provider counted while the demo ran.
#[derive(Debug, Default)]
pub struct Counters {
    /// Every delivery sent.
    pub deliveries_sent: u64,
    /// Sent deliveries by [`Kind`].
    pub sent_by_kind: Tally<Kind>,
    /// Answers by [`Outcome`].
    pub answers: Tally<Outcome>,
    /// Acquired leases that were `recovered()`.
    pub recovered_leases: u64,
    /// Of those, how many ran the side effect (the ledger did not have it).
    pub recovered_reexecuted: u64,
    /// `Store::wait` calls, by how they ended.
    pub waits: u64,
    /// Waits that ended with the holder's outcome replayed.
    pub waits_replayed: u64,
    /// Waits that ended acquiring the key (the holder failed retryably).
    pub waits_acquired: u64,
    /// Waits that timed out still in flight.
    pub waits_timed_out: u64,
    /// Answers whose response did not match the event's known outcome.
    pub bad_responses: u64,
    /// Events acknowledged with two different outcomes.
    pub conflicts: u64,
    /// An example of either.
    pub bad_example: Option<String>,
    /// The first handler error.
    pub first_error: Option<String>,
    /// Answers to deliveries that were not outstanding.
    pub unknown_answers: u64,
    /// Events abandoned after too many retries.
    pub gave_up: u64,
}

impl Counters {
    /// Counts one sent delivery.
    pub fn count_sent(&mut self, kind: Kind) {
        self.deliveries_sent += 1;
        self.sent_by_kind.add(kind);
    }

    /// Counts one answer.
    pub fn count_answer(&mut self, a: &Answer) {
        self.answers.add(a.outcome);
        if a.recovered {
            self.recovered_leases += 1;
            if a.outcome == Outcome::Acquired {
                self.recovered_reexecuted += 1;
            }
        }
        if a.waited {
            self.waits += 1;
            match a.outcome {
                Outcome::Replayed | Outcome::ReplayedFailure => self.waits_replayed += 1,
                Outcome::InFlight => self.waits_timed_out += 1,
                _ => self.waits_acquired += 1,
            }
        }
    }

    /// Notes a response that does not match the event's outcome.
    pub fn note_bad_response(&mut self, src: &str, evt: &str) {
        self.bad_responses += 1;
        self.bad_example.get_or_insert_with(|| format!("{src}/{evt}"));
    }

    /// Notes an event acknowledged with two different outcomes.
    pub fn note_conflict(&mut self, src: &str, evt: &str) {
        self.conflicts += 1;
        self.bad_example.get_or_insert_with(|| format!("{src}/{evt}"));
    }

    /// Notes a handler error.
    pub fn note_error(&mut self, msg: &str) {
        self.first_error.get_or_insert_with(|| msg.to_string());
    }

    /// Deliveries sent as `k`.
    pub fn sent(&self, k: Kind) -> u64 {
        self.sent_by_kind.get(k)
    }

    /// Answers with outcome `o`.
    pub fn answered(&self, o: Outcome) -> u64 {
        self.answers.get(o)
    }
}

/// Latency samples in ns, as reported by the handler.
#[derive(Debug, Default)]
pub struct Latencies {
    claim: Vec<u64>,
    lookup: Vec<u64>,
    wait: Vec<u64>,
}

/// p50 and p99 in µs of each kind of call.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// Claims that acquired (or failed after acquiring).
    pub claim: [f64; 2],
    /// Claims answered with a replay.
    pub lookup: [f64; 2],
    /// `Store::wait` calls.
    pub wait: [f64; 2],
}

impl Latencies {
    /// Files one answer's timings.
    pub fn record(&mut self, a: &Answer) {
        if a.waited {
            self.wait.push(a.wait_ns);
            return;
        }
        match a.outcome {
            Outcome::Acquired | Outcome::Reconciled | Outcome::Retry | Outcome::Terminal => {
                self.claim.push(a.claim_ns);
            }
            Outcome::Replayed | Outcome::ReplayedFailure => self.lookup.push(a.claim_ns),
            _ => {}
        }
    }

    /// The percentiles of every sample (sorts them).
    pub fn percentiles(&mut self) -> Percentiles {
        Percentiles {
            claim: p50_p99(&mut self.claim),
            lookup: p50_p99(&mut self.lookup),
            wait: p50_p99(&mut self.wait),
        }
    }
}

/// p50 and p99 of a sample in ns, as µs with 0.1 µs resolution (0 when empty).
fn p50_p99(v: &mut [u64]) -> [f64; 2] {
    if v.is_empty() {
        return [0.0, 0.0];
    }
    v.sort_unstable();
    let at = |p: usize| (v[(v.len() - 1) * p / 100] / 100) as f64 / 10.0;
    [at(50), at(99)]
}
