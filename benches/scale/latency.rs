//! The latencies of one measured window, as summarised in the table and the
//! JSON.

use std::time::Duration;

use crate::common::report::{Hist, fmt_ns, fmt_ops};
use crate::output::{Fields, Val};

/// The latencies of one measured window.
pub struct Run {
    pub ops: u64,
    pub window: Duration,
    pub hist: Hist,
}

impl Run {
    /// Operations per second over the window.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.window.as_secs_f64().max(1e-9)
    }
    pub fn p50(&self) -> u64 {
        self.hist.percentile(0.50)
    }
    pub fn p99(&self) -> u64 {
        self.hist.percentile(0.99)
    }
    pub fn p999(&self) -> u64 {
        self.hist.percentile(0.999)
    }
    /// `p50 / p99 / p99.9, ops/s`.
    pub fn summary(&self) -> String {
        format!(
            "{} / {} / {}, {}/s",
            fmt_ns(self.p50()),
            fmt_ns(self.p99()),
            fmt_ns(self.p999()),
            fmt_ops(self.ops_per_sec())
        )
    }
    /// Pushes the figures to `out`, each name prefixed with `prefix`.
    pub fn fields(&self, prefix: &str, out: &mut Fields) {
        out.push((format!("{prefix}_ops"), Val::U(self.ops)));
        out.push((format!("{prefix}_window_s"), Val::F(self.window.as_secs_f64())));
        out.push((format!("{prefix}_ops_per_sec"), Val::F(self.ops_per_sec())));
        out.push((format!("{prefix}_p50_ns"), Val::U(self.p50())));
        out.push((format!("{prefix}_p99_ns"), Val::U(self.p99())));
        out.push((format!("{prefix}_p999_ns"), Val::U(self.p999())));
    }
}
