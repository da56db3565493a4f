//! [`Stats::to_prometheus`]: a snapshot in the Prometheus text exposition
//! format (version 0.0.4). The counters' names and help come from the
//! counter table.

use std::fmt::Write as _;

use super::counter::Counter;
use super::histogram::Latency;
use super::stats::{NamespaceStats, Stats};

impl Stats {
    /// The snapshot in Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        for c in Counter::ALL {
            let (name, help) = c.prometheus();
            let _ = writeln!(out, "# HELP idemkv_{name}_total {help}");
            let _ = writeln!(out, "# TYPE idemkv_{name}_total counter");
            for (ns, s) in &self.namespaces {
                let _ = writeln!(
                    out,
                    "idemkv_{name}_total{{namespace=\"{}\"}} {}",
                    escape(ns),
                    s.counter(c)
                );
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

/// A summary's metric name, help text, unit in seconds and field.
type SummaryRow = (&'static str, &'static str, f64, fn(&NamespaceStats) -> Latency);

/// `label` as a label value: backslash, double quote and newline escaped.
fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::metrics::{Metrics, ShardCounters};

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

    /// The exposition is an interface (dashboards, alerts): the text of a
    /// known snapshot, every counter and summary in it, is pinned.
    #[test]
    fn prometheus_text_is_unchanged() {
        let ns = |base: u64, claim: Latency, event: Latency| NamespaceStats {
            claims: base + 1,
            acquired: base + 2,
            replayed: base + 3,
            in_flight: base + 4,
            mismatches: base + 5,
            completions: base + 6,
            failures_retryable: base + 7,
            failures_terminal: base + 8,
            releases: base + 9,
            expirations: base + 10,
            orphans_recovered: base + 11,
            retries: base + 12,
            stale_leases: base + 13,
            waits: base + 14,
            removals: base + 15,
            extensions: base + 16,
            abandons: base + 17,
            duplicate_rate: 0.25,
            claim_latency_ns: claim,
            event_latency_ms: event,
        };
        let claim = Latency { count: 7, mean: 1500, p50: 1200, p99: 9000, p999: 12000, max: 13000 };
        let event = Latency { count: 3, mean: 40, p50: 35, p99: 70, p999: 71, max: 72 };
        let huge = Latency { count: u64::MAX, mean: 2, p50: u64::MAX, p99: 1, p999: 0, max: 9 };
        let mut stats = Stats::default();
        stats.namespaces.insert("orders".into(), ns(100, claim, event));
        stats
            .namespaces
            .insert("stri\"pe\\x\ny".into(), ns(u64::MAX - 20, Latency::default(), huge));
        let text = stats.to_prometheus();
        if std::env::var_os("IDEMKV_PIN_PROMETHEUS").is_some() {
            // Re-pin after a deliberate change (review the diff).
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics/prometheus_pinned.txt"),
                &text,
            )
            .unwrap();
        }
        assert_eq!(text, include_str!("prometheus_pinned.txt"));
    }
}
