//! Observability: per-namespace counters and latency histograms, a [`Stats`]
//! snapshot, and Prometheus text exposition.
//!
//! Counters are plain integers kept by the backend where the call already
//! holds a lock (the embedded backend: in each stripe, [`ShardCounters`]).
//! They are cumulative over the life of the store: saved with every
//! checkpoint and loaded at open, so a crash loses at most the counts since
//! the last checkpoint. Latency histograms cover this process only.
//!
//! - `counter`: the counter table (written once), [`Counter`] — also the
//!   persisted index (docs/FORMAT.md, "Counters") — and [`ShardCounters`];
//! - `histogram`: the atomic log-linear histogram and its [`Latency`] summary;
//! - `registry`: [`Metrics`], the store-wide instruments, and claim sampling;
//! - `estimate`: recent processing times per namespace, for `retry_after`;
//! - `stats`: the public [`NamespaceStats`] and [`Stats`];
//! - `prometheus`: [`Stats::to_prometheus`].

mod counter;
mod estimate;
mod histogram;
mod prometheus;
mod registry;
mod stats;

// Every item `crate::metrics` had before it was split stays at its path.
pub(crate) use counter::{COUNTERS, Counter, ShardCounters, add_counts};
pub(crate) use estimate::retry_after_ms;
pub use histogram::Latency;
pub(crate) use registry::{Metrics, sampled};
pub use stats::{NamespaceStats, Stats};
