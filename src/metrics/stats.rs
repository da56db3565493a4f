//! The public snapshot: [`NamespaceStats`] (one namespace's counters and
//! latencies; its counter fields come from the counter table) and [`Stats`]
//! (all namespaces).

use std::collections::BTreeMap;

use super::counter::{COUNTERS, Counter, with_counters};
use super::histogram::Latency;
use super::registry::NsLatency;

/// Generates [`NamespaceStats`] — one public `u64` field per counter, with
/// the table's doc, then the fields that are not counters — and the accessors
/// of a counter's field.
macro_rules! define_namespace_stats {
    ($($(#[doc = $doc:literal])* $variant:ident = $index:literal, $field:ident,
       $metric:literal, $help:literal;)*) => {
        /// Cumulative counters and latencies of one namespace (one event source).
        /// Plain data; [`NamespaceStats::merge`] never blocks or fails.
        #[derive(Debug, Clone, Default, PartialEq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[non_exhaustive]
        pub struct NamespaceStats {
            $($(#[doc = $doc])* pub $field: u64,)*
            /// Share of claims that were duplicates (replayed, in flight or mismatched).
            pub duplicate_rate: f64,
            /// Duration of claim calls in this process, nanoseconds.
            pub claim_latency_ns: Latency,
            /// First claim to completion per completed event in this process, ms.
            pub event_latency_ms: Latency,
        }

        impl NamespaceStats {
            /// The field of counter `c`.
            pub(crate) fn counter(&self, c: Counter) -> u64 {
                match c {
                    $(Counter::$variant => self.$field,)*
                }
            }

            /// The field of counter `c`, to change.
            fn counter_mut(&mut self, c: Counter) -> &mut u64 {
                match c {
                    $(Counter::$variant => &mut self.$field,)*
                }
            }
        }
    };
}
with_counters!(define_namespace_stats);

impl NamespaceStats {
    /// Adds `other`'s counters into these (for totals across namespaces) and
    /// recomputes the duplicate rate. Latency summaries are left as they are:
    /// percentiles do not add.
    pub fn merge(&mut self, other: &NamespaceStats) {
        for c in Counter::ALL {
            let n = self.counter_mut(c);
            *n = n.saturating_add(other.counter(c));
        }
        self.duplicate_rate = duplicate_rate(|c| self.counter(c));
    }

    /// The stats of one namespace's counts (indexed by [`Counter`]) and
    /// latency histograms.
    pub(crate) fn of(counts: &[u64; COUNTERS], l: &NsLatency) -> NamespaceStats {
        let mut stats = NamespaceStats {
            duplicate_rate: duplicate_rate(|c| counts[c as usize]),
            claim_latency_ns: l.claim_ns.summary(),
            event_latency_ms: l.event_ms.summary(),
            ..NamespaceStats::default()
        };
        for c in Counter::ALL {
            *stats.counter_mut(c) = counts[c as usize];
        }
        stats
    }
}

/// Replayed, in-flight and mismatched claims over all claims (0 without claims).
fn duplicate_rate(count: impl Fn(Counter) -> u64) -> f64 {
    let claims = count(Counter::Claims);
    let dups = count(Counter::Replayed)
        .saturating_add(count(Counter::InFlight))
        .saturating_add(count(Counter::Mismatches));
    if claims == 0 { 0.0 } else { dups as f64 / claims as f64 }
}

/// A snapshot of a store's counters, by namespace (see
/// [`Store::stats`](crate::Store::stats)). Plain data;
/// [`Stats::to_prometheus`] never blocks or fails.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Stats {
    /// Per namespace.
    pub namespaces: BTreeMap<String, NamespaceStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_and_merge_cover_every_counter() {
        let counts: [u64; COUNTERS] = std::array::from_fn(|i| 10 * (i as u64 + 1));
        let l = NsLatency::default();
        l.claim_ns.record(1500);
        l.event_ms.record(40);
        let s = NamespaceStats::of(&counts, &l);
        // The public field names, pinned: each one is its counter's.
        let expected = NamespaceStats {
            abandons: 170,
            claims: 10,
            acquired: 20,
            replayed: 30,
            in_flight: 40,
            mismatches: 50,
            completions: 60,
            failures_retryable: 70,
            failures_terminal: 80,
            releases: 90,
            expirations: 100,
            orphans_recovered: 110,
            retries: 120,
            stale_leases: 130,
            waits: 140,
            removals: 150,
            extensions: 160,
            duplicate_rate: 12.0,
            claim_latency_ns: l.claim_ns.summary(),
            event_latency_ms: l.event_ms.summary(),
        };
        assert_eq!(s, expected);
        let mut sum = NamespaceStats { claims: 110, ..Default::default() };
        sum.merge(&s);
        let merged = NamespaceStats {
            claims: 120,
            duplicate_rate: 1.0,
            claim_latency_ns: Latency::default(),
            event_latency_ms: Latency::default(),
            ..expected.clone()
        };
        assert_eq!(sum, merged);
        let mut full = NamespaceStats::of(&[u64::MAX; COUNTERS], &NsLatency::default());
        full.merge(&s);
        assert_eq!(full, NamespaceStats::of(&[u64::MAX; COUNTERS], &NsLatency::default()));
    }
}
