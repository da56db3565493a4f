//! What the provider counts while the demo runs: deliveries by kind, answers
//! by outcome and by HTTP status, recovered attempts, forged deliveries, bad
//! answers, and the round-trip latency samples with their percentiles.

use std::collections::BTreeMap;

use super::answer::{Answer, Outcome};
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
    /// HTTP answers by status and `Idempotent-Replayed: true`.
    pub statuses: Tally<(u16, bool)>,
    /// First runs of the endpoint flagged `recovered()`.
    pub recovered_leases: u64,
    /// Of those, how many ran the side effect (the ledger did not have it).
    pub recovered_reexecuted: u64,
    /// Forged deliveries answered 400/401 by the signature check.
    pub forged_rejected: u64,
    /// Those answers by `"status code"` (`401 webhook_signature_invalid`, …).
    pub rejections: BTreeMap<String, u64>,
    /// Forged deliveries answered anything else.
    pub forged_accepted: u64,
    /// One of them, with its answer.
    pub forged_example: Option<String>,
    /// Answers whose response did not match the event's known outcome.
    pub bad_responses: u64,
    /// Events acknowledged with two different outcomes.
    pub conflicts: u64,
    /// An example of either.
    pub bad_example: Option<String>,
    /// The first unexpected answer or connection error.
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
        if let Some(status) = a.status {
            self.statuses.add((status, a.replayed));
        }
        if a.recovered {
            self.recovered_leases += 1;
            if a.outcome == Outcome::Acquired {
                self.recovered_reexecuted += 1;
            }
        }
    }

    /// Counts the answer to a forged delivery.
    pub fn count_forged(&mut self, a: &Answer) {
        if a.outcome == Outcome::Rejected {
            self.forged_rejected += 1;
            let status = a.status.unwrap_or_default();
            let code = a.code.as_deref().unwrap_or("(no code)");
            *self.rejections.entry(format!("{status} {code}")).or_default() += 1;
        } else {
            self.forged_accepted += 1;
            self.forged_example.get_or_insert_with(|| {
                format!("{} {}", a.status.map_or("-".into(), |s| s.to_string()), a.body)
            });
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

    /// Notes an unexpected answer.
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

    /// Every (status, replayed) counted, in order.
    pub fn status_counts(&self) -> impl Iterator<Item = ((u16, bool), u64)> + '_ {
        self.statuses.0.iter().map(|(k, v)| (*k, *v))
    }
}

/// Round trips in ns, as the provider timed them.
#[derive(Debug, Default)]
pub struct Latencies {
    first_run: Vec<u64>,
    replay: Vec<u64>,
    inflight: Vec<u64>,
}

/// p50 and p99 in µs of each kind of answer.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// Answers of the endpoint (durable claim, side effect, stored answer).
    pub first_run: [f64; 2],
    /// Answers replayed by the layer.
    pub replay: [f64; 2],
    /// 409 answers.
    pub inflight: [f64; 2],
}

impl Latencies {
    /// Files one answer's round trip.
    pub fn record(&mut self, a: &Answer) {
        match a.outcome {
            Outcome::Acquired | Outcome::Reconciled | Outcome::Retry | Outcome::Terminal => {
                self.first_run.push(a.rtt_ns);
            }
            Outcome::Replayed | Outcome::ReplayedFailure => self.replay.push(a.rtt_ns),
            Outcome::InFlight => self.inflight.push(a.rtt_ns),
            _ => {}
        }
    }

    /// The percentiles of every sample (sorts them).
    pub fn percentiles(&mut self) -> Percentiles {
        Percentiles {
            first_run: p50_p99(&mut self.first_run),
            replay: p50_p99(&mut self.replay),
            inflight: p50_p99(&mut self.inflight),
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
