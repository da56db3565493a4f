//! The counters: the one table that lists them, the [`Counter`] enum (whose
//! discriminant is the persisted index) and [`ShardCounters`], the counts a
//! stripe keeps by namespace.
//!
//! Adding a counter is one line in [`with_counters!`]: the enum, the public
//! field of `NamespaceStats` (with its doc), `merge`, `of` and the Prometheus
//! row all come from it.

use std::collections::HashMap;

/// The counter table, written once. Calls `$generate!` with one entry per
/// counter, in persisted order:
///
/// ```text
/// /// Doc of the NamespaceStats field (and of the enum variant).
/// Variant = index, field, "prometheus_name", "Prometheus help.";
/// ```
///
/// `index` is the counter's place in the persisted form (docs/FORMAT.md,
/// "Counters"): append only, never reorder or reuse (checked at compile time
/// and pinned by a test). `field` is the public `NamespaceStats` field; the
/// metric is `idemkv_<prometheus_name>_total`.
macro_rules! with_counters {
    ($generate:ident) => {
        $generate! {
            /// `claim` and `wait` calls.
            Claims = 0, claims, "claims", "Claim and wait calls.";
            /// Claims that acquired the key (the side effect ran or was reconciled).
            Acquired = 1, acquired, "acquired", "Claims that acquired the key.";
            /// Duplicates answered with the stored outcome.
            Replayed = 2, replayed, "duplicates_replayed",
                "Duplicates answered with the stored outcome.";
            /// Duplicates that arrived while the original was in flight.
            InFlight = 3, in_flight, "duplicates_in_flight",
                "Duplicates that arrived while in flight.";
            /// Claims whose fingerprint differed from the stored one (a reused key).
            Mismatches = 4, mismatches, "mismatches",
                "Claims with a different request fingerprint.";
            /// Completions.
            Completions = 5, completions, "completions", "Completed claims.";
            /// Retryable failures.
            FailuresRetryable = 6, failures_retryable, "failures_retryable",
                "Retryable failures.";
            /// Terminal failures.
            FailuresTerminal = 7, failures_terminal, "failures_terminal", "Terminal failures.";
            /// Releases.
            Releases = 8, releases, "releases", "Released claims.";
            /// Records removed by the sweeper after their retention.
            Expirations = 9, expirations, "expirations", "Records removed after their retention.";
            /// Acquisitions of claims orphaned by lease expiry or a crash.
            OrphansRecovered = 10, orphans_recovered, "orphans_recovered",
                "Orphaned claims acquired again.";
            /// Acquisitions after a first attempt (attempt > 1): the sender's retries
            /// that had to run again.
            Retries = 11, retries, "retries", "Acquisitions after a first attempt.";
            /// Fenced calls rejected with a stale lease.
            StaleLeases = 12, stale_leases, "stale_leases", "Fenced calls rejected as stale.";
            /// `wait` calls.
            Waits = 13, waits, "waits", "Wait calls.";
            /// Records removed by hand.
            Removals = 14, removals, "removals", "Records removed by hand.";
            /// Lease extensions.
            Extensions = 15, extensions, "extensions", "Lease extensions.";
            /// Claims abandoned by their holder without an outcome (a guard dropped
            /// unfinished, a panic, a cancelled future): the next claimer reconciles.
            Abandons = 16, abandons, "abandons", "Claims abandoned without an outcome.";
        }
    };
}
pub(crate) use with_counters;

/// Generates [`Counter`], [`COUNTERS`], [`Counter::ALL`] and the Prometheus
/// name and help of each counter from the table.
macro_rules! define_counter {
    ($($(#[doc = $doc:literal])* $variant:ident = $index:literal, $field:ident,
       $metric:literal, $help:literal;)*) => {
        /// What is counted, per namespace. The discriminant is the counter's
        /// index in the persisted form (docs/FORMAT.md, "Counters"): append only.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum Counter {
            $($(#[doc = $doc])* $variant = $index,)*
        }

        /// How many counters there are.
        pub(crate) const COUNTERS: usize = [$($index),*].len();

        impl Counter {
            /// Every counter, in persisted order.
            pub(crate) const ALL: [Counter; COUNTERS] = [$(Counter::$variant),*];

            /// The Prometheus metric name (without `idemkv_` and `_total`) and help.
            pub(crate) fn prometheus(self) -> (&'static str, &'static str) {
                match self {
                    $(Counter::$variant => ($metric, $help),)*
                }
            }
        }
    };
}
with_counters!(define_counter);

// The table lists the counters in index order, without gaps: `ALL[i]` is
// stored at place `i`.
const _: () = {
    let mut i = 0;
    while i < COUNTERS {
        assert!(Counter::ALL[i] as usize == i, "counter indexes must be 0, 1, 2, … in order");
        i += 1;
    }
};

/// Counters by namespace, kept inside each stripe and bumped under the stripe
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

    /// Counts one `c` in `namespace`.
    #[inline]
    pub fn add(&mut self, namespace: &[u8], c: Counter) {
        let n = &mut self.slot(namespace)[c as usize];
        *n = n.saturating_add(1);
    }

    /// Adds this stripe's counts into `into`.
    pub fn sum_into(&self, into: &mut HashMap<String, [u64; COUNTERS]>) {
        for (ns, counts) in &self.list {
            let ns = String::from_utf8_lossy(ns).into_owned();
            add_counts(into.entry(ns).or_insert([0; COUNTERS]), counts);
        }
    }
}

/// Adds `counts` into `total`, saturating; extra counts (of a newer build)
/// are ignored.
pub(crate) fn add_counts(total: &mut [u64; COUNTERS], counts: &[u64]) {
    for (t, c) in total.iter_mut().zip(counts) {
        *t = t.saturating_add(*c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_indexes_never_change() {
        // docs/FORMAT.md, "Counters": a stored format.
        let pinned = [
            (Counter::Claims, 0),
            (Counter::Acquired, 1),
            (Counter::Replayed, 2),
            (Counter::InFlight, 3),
            (Counter::Mismatches, 4),
            (Counter::Completions, 5),
            (Counter::FailuresRetryable, 6),
            (Counter::FailuresTerminal, 7),
            (Counter::Releases, 8),
            (Counter::Expirations, 9),
            (Counter::OrphansRecovered, 10),
            (Counter::Retries, 11),
            (Counter::StaleLeases, 12),
            (Counter::Waits, 13),
            (Counter::Removals, 14),
            (Counter::Extensions, 15),
            (Counter::Abandons, 16),
        ];
        assert_eq!(COUNTERS, pinned.len());
        for (c, i) in pinned {
            assert_eq!(c as usize, i, "{c:?}");
            assert_eq!(Counter::ALL[i], c);
        }
    }

    #[test]
    fn shard_counts_add_up() {
        let mut shard = ShardCounters::default();
        shard.add(b"a", Counter::Waits);
        shard.add(b"a", Counter::Waits);
        shard.add(b"b", Counter::Claims);
        let mut totals = HashMap::new();
        shard.sum_into(&mut totals);
        shard.sum_into(&mut totals);
        assert_eq!(totals["a"][Counter::Waits as usize], 4);
        assert_eq!(totals["b"][Counter::Claims as usize], 2);
    }
}
