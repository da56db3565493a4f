//! A round: the stores it runs on, recording and checking each key's
//! history, and its statistics.

use idemkv::{Config, Durability, Policy, Store};

use crate::checker::check_history;
use crate::history::{Event, LinOp, LinRes};
use crate::workload::record_round;
use crate::{LEASE, OPS_PER_KEY, RETENTION};

pub(crate) fn rounds() -> usize {
    std::env::var("IDEMKV_LIN_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100)
}

pub(crate) fn open(dir: &std::path::Path, durability: Durability) -> Store {
    Config::new()
        .durability(durability)
        .default_policy(Policy::default().lease(LEASE).retention(RETENTION))
        .open(dir)
        .expect("open")
}

/// What a round did, for the summary line.
#[derive(Debug, Default)]
pub(crate) struct RoundStats {
    pub(crate) calls: usize,
    pub(crate) acquired: usize,
    /// Acquisitions flagged `recovered`: with hour-long leases and no
    /// reopen, only after an abandon.
    pub(crate) recovered: usize,
    pub(crate) max_concurrency: usize,
    /// `wait`s that were in progress when a holder ended its claim, and then
    /// acquired or replayed.
    pub(crate) woken_waits: usize,
    pub(crate) search_steps: u64,
    /// The most search steps one history needed.
    pub(crate) max_steps: u64,
}

/// Runs one round on fresh keys; checks and returns its statistics.
pub(crate) fn round(store: &Store, round: usize, seed: u64) -> RoundStats {
    let mut stats = RoundStats::default();
    for (k, history) in record_round(store, round, seed).iter().enumerate() {
        assert_eq!(history.len(), OPS_PER_KEY, "every call of the budget ran");
        stats.calls += history.len();
        stats.acquired +=
            history.iter().filter(|e| matches!(e.res, LinRes::Acquired { .. })).count();
        stats.recovered += history
            .iter()
            .filter(|e| matches!(e.res, LinRes::Acquired { recovered: true, .. }))
            .count();
        stats.max_concurrency = stats.max_concurrency.max(max_overlap(history));
        stats.woken_waits += woken_waits(history);
        let name = format!("round {round} key {k}");
        let steps = check_history(&name, history).unwrap_or_else(|report| {
            // The whole history, sorted by invocation, for a post-mortem.
            let dump =
                std::env::temp_dir().join(format!("idemkv-lin-{}.txt", name.replace(' ', "-")));
            let mut sorted: Vec<&Event> = history.iter().collect();
            sorted.sort_by_key(|e| e.call);
            let text: String = sorted.iter().map(|e| format!("{e:?}\n")).collect();
            let _ = std::fs::write(&dump, text);
            panic!("{report}  full history: {}\n", dump.display())
        });
        stats.search_steps += steps;
        stats.max_steps = stats.max_steps.max(steps);
    }
    stats
}

/// `wait` calls that overlapped a successful end of a claim and returned
/// `Acquired` or `Replay`.
fn woken_waits(history: &[Event]) -> usize {
    let ends: Vec<&Event> = history
        .iter()
        .filter(|e| {
            e.res == LinRes::Ok
                && !matches!(e.op, LinOp::Claim { .. } | LinOp::Wait { .. } | LinOp::Get)
        })
        .collect();
    history
        .iter()
        .filter(|w| {
            matches!(w.op, LinOp::Wait { timeout_ms, .. } if timeout_ms > 0)
                && matches!(w.res, LinRes::Acquired { .. } | LinRes::Replay(_))
                && ends.iter().any(|e| w.call < e.call && e.ret < w.ret)
        })
        .count()
}

/// The largest number of calls in progress at once.
fn max_overlap(history: &[Event]) -> usize {
    let mut points: Vec<(u64, i32)> =
        history.iter().flat_map(|e| [(e.call, 1), (e.ret, -1)]).collect();
    points.sort_unstable();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in points {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}
