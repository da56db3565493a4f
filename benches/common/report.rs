//! Reporting helpers of the harness benches (`compare`, `scale`): a
//! log-linear latency histogram and the formatting of their tables and JSON.

use std::fmt::Write as _;
use std::time::Duration;

/// Sub-buckets per power of two: 2^5 = 32, so a bucket is at most ~3 % wide.
const SUB_BITS: u32 = 5;

/// A log-linear latency histogram in nanoseconds (HDR-like, fixed size).
#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
}

impl Hist {
    /// An empty histogram.
    pub fn new() -> Self {
        Hist { counts: vec![0; 64 << SUB_BITS], total: 0 }
    }

    fn index(v: u64) -> usize {
        if v < 1 << SUB_BITS {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let m = (v >> (e - SUB_BITS)) as usize; // in [2^SUB, 2^(SUB+1))
        ((e - SUB_BITS) as usize) * (1 << SUB_BITS) + m
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let sub = 1usize << SUB_BITS;
        if i < sub {
            return i as u64;
        }
        let shift = (i / sub - 1) as u32;
        let m = (i % sub + sub) as u64;
        (m << shift) + ((1u64 << shift) >> 1)
    }

    /// Counts one latency (whole nanoseconds).
    pub fn record(&mut self, d: Duration) {
        self.counts[Self::index(d.as_nanos() as u64)] += 1;
        self.total += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The `q` quantile (`0.99` = p99) in nanoseconds, as the middle of its
    /// bucket; 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let target = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Self::value(i);
            }
        }
        Self::value(self.counts.len() - 1)
    }
}

/// A latency: `812ns`, `4.2µs`, `1.37ms`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        _ => format!("{:.2}ms", ns as f64 / 1e6),
    }
}

/// A rate: `512.3k`, `1.25M` (the caller appends `/s` where wanted).
pub fn fmt_ops(ops: f64) -> String {
    if ops >= 1e6 { format!("{:.2}M", ops / 1e6) } else { format!("{:.1}k", ops / 1e3) }
}

/// `s` as a JSON string literal, quotes included.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The CPUs this process may use (as reported in the header and JSON).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
