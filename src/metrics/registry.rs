//! The store-wide instruments: [`Metrics`], which holds the latency
//! histograms of each namespace ([`NsLatency`]) and the counts loaded at
//! open, and [`sampled`], which picks the claims whose latency is timed.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::counter::{COUNTERS, add_counts};
use super::histogram::Histogram;
use super::stats::{NamespaceStats, Stats};

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
        add_counts(base.entry(namespace.to_string()).or_insert([0; COUNTERS]), counts);
    }

    /// The counts loaded at open; add each shard's `ShardCounters` to get
    /// the cumulative totals.
    pub fn base(&self) -> HashMap<String, [u64; COUNTERS]> {
        self.base.lock().clone()
    }

    /// The snapshot of `totals` (cumulative counts by namespace) with this
    /// process's latencies.
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
