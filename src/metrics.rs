//! Observability: per-namespace counters and latency histograms, a [`Stats`]
//! snapshot, and Prometheus text exposition.
//!
//! Counters are atomics bumped with relaxed ordering on the hot path; each
//! namespace's set is found through a read-locked map (namespaces are few).
//! Counters are cumulative over the life of the store: they are saved with
//! every checkpoint and loaded at open, so a crash loses at most the counts
//! since the last checkpoint. Latency histograms cover this process only.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// What is counted, per namespace. The discriminant is the counter's index
/// in the persisted form (docs/FORMAT.md, "Counters"): append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Counter {
    Claims = 0,
    Acquired,
    Replayed,
    InFlight,
    Mismatches,
    Completions,
    FailuresRetryable,
    FailuresTerminal,
    Releases,
    Expirations,
    OrphansRecovered,
    Retries,
    StaleLeases,
    Waits,
    Removals,
    Extensions,
}

pub(crate) const COUNTERS: usize = Counter::Extensions as usize + 1;

/// A log-linear histogram: 8 buckets per power of two (≤ 12.5 % error).
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

const SUB: u32 = 3; // 2^3 sub-buckets per octave
const BUCKETS: usize = ((64 - SUB as usize) + 1) << SUB;

fn bucket_of(v: u64) -> usize {
    if v < (1 << SUB) {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB
    let sub = (v >> (e - SUB)) & ((1 << SUB) - 1);
    (((e - SUB + 1) << SUB) as u64 + sub) as usize
}

fn bucket_high(i: usize) -> u64 {
    if i < (1 << SUB) {
        return i as u64;
    }
    let e = (i >> SUB) as u32 + SUB - 1;
    let sub = (i & ((1 << SUB) - 1)) as u64;
    let low = ((1u64 << SUB) + sub) << (e - SUB);
    low.saturating_add((1u64 << (e - SUB)) - 1)
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        // Saturating: a sample near u64::MAX (a clock jump) must not wrap the sum.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| Some(s.saturating_add(v)));
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub fn summary(&self) -> Latency {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let count: u64 = counts.iter().fold(0, |a, &c| a.saturating_add(c));
        let at = |q: f64| {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64 * q).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen = c.saturating_add(seen);
                if seen >= rank {
                    return bucket_high(i);
                }
            }
            0
        };
        Latency {
            count,
            mean: self.sum.load(Ordering::Relaxed).checked_div(count).unwrap_or(0),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// A latency distribution: percentiles are bucket upper bounds (≤ 12.5 % over).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

/// Counters by namespace, kept inside each shard and bumped under the shard
/// lock the call already holds: plain integers, no shared cache lines. A
/// short list searched by namespace bytes (a service has a handful of event
/// sources), which beats hashing on every call.
#[derive(Default)]
pub(crate) struct ShardCounters {
    list: Vec<(Box<[u8]>, [u64; COUNTERS])>,
}

impl ShardCounters {
    /// The counters of `namespace`, created on first use.
    #[inline]
    pub fn slot(&mut self, namespace: &[u8]) -> &mut [u64; COUNTERS] {
        let at = match self.list.iter().position(|(ns, _)| **ns == *namespace) {
            Some(at) => at,
            None => {
                self.list.push((namespace.into(), [0; COUNTERS]));
                self.list.len() - 1
            }
        };
        &mut self.list[at].1
    }

    #[inline]
    pub fn add(&mut self, namespace: &[u8], c: Counter) {
        let n = &mut self.slot(namespace)[c as usize];
        *n = n.saturating_add(1);
    }

    /// Adds this shard's counts into `into`.
    pub fn sum_into(&self, into: &mut HashMap<String, [u64; COUNTERS]>) {
        for (ns, counts) in &self.list {
            let ns = String::from_utf8_lossy(ns).into_owned();
            let total = into.entry(ns).or_insert([0; COUNTERS]);
            for (t, c) in total.iter_mut().zip(counts) {
                *t = t.saturating_add(*c);
            }
        }
    }
}

/// Latency histograms of one namespace (shared, atomic).
#[derive(Default)]
pub(crate) struct NsLatency {
    /// Duration of sampled `claim` calls, in nanoseconds.
    pub claim_ns: Histogram,
    /// First claim to completion of each completed event, in milliseconds.
    pub event_ms: Histogram,
}

/// One claim in this many is timed: the clock reads and the shared
/// histogram stay off the hot path of the others.
const SAMPLE_EVERY: u32 = 16;

/// True for the claims whose latency is recorded (per-thread round robin).
#[inline]
pub(crate) fn sampled() -> bool {
    thread_local!(static TICK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
    TICK.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n % SAMPLE_EVERY == 0
    })
}

/// The store-wide part of the instruments: histograms by namespace and the
/// counts loaded from the last checkpoint.
#[derive(Default)]
pub(crate) struct Metrics {
    latency: RwLock<HashMap<Box<str>, Arc<NsLatency>>>,
    base: parking_lot::Mutex<HashMap<String, [u64; COUNTERS]>>,
}

impl Metrics {
    /// The histograms of `namespace`, created on first use.
    pub fn latency(&self, namespace: &str) -> Arc<NsLatency> {
        if let Some(m) = self.latency.read().get(namespace) {
            return m.clone();
        }
        self.latency.write().entry(namespace.into()).or_default().clone()
    }

    /// Adds persisted counts (at open). Extra counters of a newer build are ignored.
    pub fn load(&self, namespace: &str, counts: &[u64]) {
        let mut base = self.base.lock();
        let total = base.entry(namespace.to_string()).or_insert([0; COUNTERS]);
        for (t, c) in total.iter_mut().zip(counts) {
            *t = t.saturating_add(*c);
        }
    }

    /// The counts loaded at open; add each shard's `ShardCounters` to get
    /// the cumulative totals.
    pub fn base(&self) -> HashMap<String, [u64; COUNTERS]> {
        self.base.lock().clone()
    }

    pub fn snapshot(&self, totals: HashMap<String, [u64; COUNTERS]>) -> Stats {
        let latency = self.latency.read();
        let namespaces = totals
            .into_iter()
            .map(|(ns, counts)| {
                let l = latency.get(ns.as_str()).cloned().unwrap_or_default();
                let stats = NamespaceStats::of(&counts, &l);
                (ns, stats)
            })
            .collect();
        Stats { namespaces }
    }
}

/// Cumulative counters and latencies of one namespace (one event source).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NamespaceStats {
    /// `claim` and `wait` calls.
    pub claims: u64,
    /// Claims that acquired the key (the side effect ran or was reconciled).
    pub acquired: u64,
    /// Duplicates answered with the stored outcome.
    pub replayed: u64,
    /// Duplicates that arrived while the original was in flight.
    pub in_flight: u64,
    /// Claims whose fingerprint differed from the stored one (a reused key).
    pub mismatches: u64,
    /// Completions.
    pub completions: u64,
    /// Retryable failures.
    pub failures_retryable: u64,
    /// Terminal failures.
    pub failures_terminal: u64,
    /// Releases.
    pub releases: u64,
    /// Records removed by the sweeper after their retention.
    pub expirations: u64,
    /// Acquisitions of claims orphaned by lease expiry or a crash.
    pub orphans_recovered: u64,
    /// Acquisitions after a first attempt (attempt > 1): the sender's retries
    /// that had to run again.
    pub retries: u64,
    /// Fenced calls rejected with a stale lease.
    pub stale_leases: u64,
    /// `wait` calls.
    pub waits: u64,
    /// Records removed by hand.
    pub removals: u64,
    /// Lease extensions.
    pub extensions: u64,
    /// Share of claims that were duplicates (replayed, in flight or mismatched).
    pub duplicate_rate: f64,
    /// Duration of claim calls in this process, nanoseconds.
    pub claim_latency_ns: Latency,
    /// First claim to completion per completed event in this process, ms.
    pub event_latency_ms: Latency,
}

impl NamespaceStats {
    /// Adds `other`'s counters into these (for totals across namespaces) and
    /// recomputes the duplicate rate. Latency summaries are left as they are:
    /// percentiles do not add.
    pub fn merge(&mut self, other: &NamespaceStats) {
        self.claims = self.claims.saturating_add(other.claims);
        self.acquired = self.acquired.saturating_add(other.acquired);
        self.replayed = self.replayed.saturating_add(other.replayed);
        self.in_flight = self.in_flight.saturating_add(other.in_flight);
        self.mismatches = self.mismatches.saturating_add(other.mismatches);
        self.completions = self.completions.saturating_add(other.completions);
        self.failures_retryable = self.failures_retryable.saturating_add(other.failures_retryable);
        self.failures_terminal = self.failures_terminal.saturating_add(other.failures_terminal);
        self.releases = self.releases.saturating_add(other.releases);
        self.expirations = self.expirations.saturating_add(other.expirations);
        self.orphans_recovered = self.orphans_recovered.saturating_add(other.orphans_recovered);
        self.retries = self.retries.saturating_add(other.retries);
        self.stale_leases = self.stale_leases.saturating_add(other.stale_leases);
        self.waits = self.waits.saturating_add(other.waits);
        self.removals = self.removals.saturating_add(other.removals);
        self.extensions = self.extensions.saturating_add(other.extensions);
        let dups = self.replayed.saturating_add(self.in_flight).saturating_add(self.mismatches);
        self.duplicate_rate = if self.claims == 0 { 0.0 } else { dups as f64 / self.claims as f64 };
    }

    fn of(counts: &[u64; COUNTERS], l: &NsLatency) -> NamespaceStats {
        let c = |k: Counter| counts[k as usize];
        let dups = c(Counter::Replayed)
            .saturating_add(c(Counter::InFlight))
            .saturating_add(c(Counter::Mismatches));
        NamespaceStats {
            claims: c(Counter::Claims),
            acquired: c(Counter::Acquired),
            replayed: c(Counter::Replayed),
            in_flight: c(Counter::InFlight),
            mismatches: c(Counter::Mismatches),
            completions: c(Counter::Completions),
            failures_retryable: c(Counter::FailuresRetryable),
            failures_terminal: c(Counter::FailuresTerminal),
            releases: c(Counter::Releases),
            expirations: c(Counter::Expirations),
            orphans_recovered: c(Counter::OrphansRecovered),
            retries: c(Counter::Retries),
            stale_leases: c(Counter::StaleLeases),
            waits: c(Counter::Waits),
            removals: c(Counter::Removals),
            extensions: c(Counter::Extensions),
            duplicate_rate: if c(Counter::Claims) == 0 {
                0.0
            } else {
                dups as f64 / c(Counter::Claims) as f64
            },
            claim_latency_ns: l.claim_ns.summary(),
            event_latency_ms: l.event_ms.summary(),
        }
    }
}

/// A snapshot of a store's counters, by namespace.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stats {
    /// Per namespace.
    pub namespaces: BTreeMap<String, NamespaceStats>,
}

impl Stats {
    /// The snapshot in Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let counters: [CounterRow; 16] = [
            ("claims", "Claim and wait calls.", |s| s.claims),
            ("acquired", "Claims that acquired the key.", |s| s.acquired),
            ("duplicates_replayed", "Duplicates answered with the stored outcome.", |s| s.replayed),
            ("duplicates_in_flight", "Duplicates that arrived while in flight.", |s| s.in_flight),
            ("mismatches", "Claims with a different request fingerprint.", |s| s.mismatches),
            ("completions", "Completed claims.", |s| s.completions),
            ("failures_retryable", "Retryable failures.", |s| s.failures_retryable),
            ("failures_terminal", "Terminal failures.", |s| s.failures_terminal),
            ("releases", "Released claims.", |s| s.releases),
            ("expirations", "Records removed after their retention.", |s| s.expirations),
            ("orphans_recovered", "Orphaned claims acquired again.", |s| s.orphans_recovered),
            ("retries", "Acquisitions after a first attempt.", |s| s.retries),
            ("stale_leases", "Fenced calls rejected as stale.", |s| s.stale_leases),
            ("waits", "Wait calls.", |s| s.waits),
            ("removals", "Records removed by hand.", |s| s.removals),
            ("extensions", "Lease extensions.", |s| s.extensions),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP idemkv_{name}_total {help}");
            let _ = writeln!(out, "# TYPE idemkv_{name}_total counter");
            for (ns, s) in &self.namespaces {
                let _ =
                    writeln!(out, "idemkv_{name}_total{{namespace=\"{}\"}} {}", escape(ns), get(s));
            }
        }
        let summaries: [SummaryRow; 2] = [
            ("claim_seconds", "Duration of claim calls.", 1e-9, |s| s.claim_latency_ns),
            ("event_seconds", "First claim to completion per event.", 1e-3, |s| s.event_latency_ms),
        ];
        for (name, help, scale, get) in summaries {
            let _ = writeln!(out, "# HELP idemkv_{name} {help}");
            let _ = writeln!(out, "# TYPE idemkv_{name} summary");
            for (ns, s) in &self.namespaces {
                let l = get(s);
                let ns = escape(ns);
                for (q, v) in [("0.5", l.p50), ("0.99", l.p99), ("0.999", l.p999)] {
                    let v = v as f64 * scale;
                    let _ =
                        writeln!(out, "idemkv_{name}{{namespace=\"{ns}\",quantile=\"{q}\"}} {v}");
                }
                let sum = l.mean.saturating_mul(l.count) as f64 * scale;
                let _ = writeln!(out, "idemkv_{name}_sum{{namespace=\"{ns}\"}} {sum}");
                let _ = writeln!(out, "idemkv_{name}_count{{namespace=\"{ns}\"}} {}", l.count);
            }
        }
        out
    }
}

/// A counter's metric name, help text and field.
type CounterRow = (&'static str, &'static str, fn(&NamespaceStats) -> u64);
/// A summary's metric name, help text, unit in seconds and field.
type SummaryRow = (&'static str, &'static str, f64, fn(&NamespaceStats) -> Latency);

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values() {
        for v in (0..5000u64).chain([u64::MAX, u64::MAX / 3, 1 << 40, (1 << 40) + 12345]) {
            let i = bucket_of(v);
            assert!(bucket_high(i) >= v, "v {v} bucket {i} high {}", bucket_high(i));
            assert!(bucket_high(i) - v <= v / 8 + 1, "v {v}: error above 12.5 %");
            if i > 0 {
                assert!(bucket_high(i - 1) < v, "v {v} belongs to a lower bucket");
            }
        }
    }

    #[test]
    fn percentiles() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((500..=563).contains(&s.p50), "{s:?}");
        assert!((990..=1114).contains(&s.p99), "{s:?}");
        assert_eq!(s.max, 1000);
    }

    #[test]
    fn prometheus_text() {
        let m = Metrics::default();
        let mut shard = ShardCounters::default();
        shard.add(b"stri\"pe", Counter::Claims);
        m.latency("stri\"pe").claim_ns.record(1500);
        let mut totals = HashMap::new();
        shard.sum_into(&mut totals);
        let text = m.snapshot(totals).to_prometheus();
        assert!(text.contains("idemkv_claims_total{namespace=\"stri\\\"pe\"} 1"), "{text}");
        assert!(text.contains("# TYPE idemkv_claim_seconds summary"));
    }
}
