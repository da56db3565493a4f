//! An atomic log-linear [`Histogram`] (8 buckets per power of two) and
//! [`Latency`], the summary it gives: count, mean, percentiles and maximum.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Adds one sample.
    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        // Saturating: a sample near u64::MAX (a clock jump) must not wrap the sum.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| Some(s.saturating_add(v)));
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    /// Count, mean, percentiles (bucket upper bounds) and maximum so far.
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
#[non_exhaustive]
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
}
