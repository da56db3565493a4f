//! The store-wide instruments: [`Metrics`], which holds the latency
//! histograms of each namespace ([`NsLatency`]) and the counts loaded at
//! open, and [`sampled`], which picks the claims whose latency is timed.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::counter::COUNTERS;
use super::estimate::ProcessingTimes;
use super::histogram::Histogram;
use super::stats::{NamespaceStats, Stats};

/// Latency histograms of one namespace (shared, atomic).
#[derive(Default)]
pub(crate) struct NsLatency {
    /// Duration of sampled `claim` calls, in nanoseconds.
    pub claim_ns: Histogram,
    /// First claim to completion of each completed event, in milliseconds.
    pub event_ms: Histogram,
    /// Recent claim-to-completion times of one attempt (`retry_after`).
    pub processing: ProcessingTimes,
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

/// The front's instruments: latency histograms by namespace. (The counters
/// are the backend's, cumulative across restarts.)
#[derive(Default)]
pub(crate) struct Metrics {
    latency: RwLock<HashMap<Box<str>, Arc<NsLatency>>>,
}

impl Metrics {
    /// The histograms of `namespace`, created on first use.
    pub fn latency(&self, namespace: &str) -> Arc<NsLatency> {
        if let Some(m) = self.latency.read().get(namespace) {
            return m.clone();
        }
        self.latency.write().entry(namespace.into()).or_default().clone()
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
