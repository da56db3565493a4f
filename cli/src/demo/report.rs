//! The demo's final report: every count, the crash, the latencies and the
//! verdict in one struct, which `--json` prints as is (`render` writes the
//! text form).

use std::time::Duration;

use serde::Serialize;

use super::DemoArgs;
use super::crosscheck::Crosscheck;
use super::protocol::Outcome;
use super::provider::Observed;
use super::schedule::Kind;
use super::verdict::Verdict;

/// What happened around the crash.
#[derive(Debug, Clone, Serialize)]
pub struct CrashInfo {
    /// The killed handler's pid.
    pub killed_pid: u32,
    /// Events finished when it was killed.
    pub at_events_finished: u32,
    /// Deliveries sent but unanswered at the kill, resent after the restart.
    pub unanswered_resent: u64,
    /// Time to start the new handler (open the store, replay the journal).
    pub restart_ms: f64,
    /// Journal entries the new store replayed.
    pub journal_entries_replayed: u64,
    /// Bytes cut at a torn journal tail.
    pub journal_bytes_dropped: u64,
    /// Ledger lines the new handler found.
    pub ledger_lines_found: u64,
    /// Bytes of a torn last ledger line it cut.
    pub ledger_torn_bytes: u64,
}

/// The final report; `--json` prints it as is.
#[derive(Debug, Serialize)]
pub struct Report {
    /// "PASS" or "FAIL".
    pub verdict: &'static str,
    /// Why it failed.
    pub failures: Vec<String>,
    /// Demo directory.
    pub path: String,
    /// Seed.
    pub seed: u64,
    /// Unique events.
    pub events: u32,
    /// Namespaces.
    pub sources: Vec<String>,
    /// Handler workers.
    pub workers: usize,
    /// Share of events with duplicate copies.
    pub dup_rate: f64,
    /// Whether the handler was to be killed half-way.
    pub crash_enabled: bool,
    /// Every delivery sent.
    pub deliveries_sent: u64,
    /// First deliveries.
    pub originals_sent: u64,
    /// Duplicate copies sent with the original.
    pub concurrent_copies_sent: u64,
    /// Duplicate copies sent after the event finished.
    pub late_copies_sent: u64,
    /// Resends after retryable failures.
    pub retries_after_failure: u64,
    /// Resends after "in flight" answers.
    pub retries_after_inflight: u64,
    /// Resends of deliveries the killed handler never answered.
    pub resent_after_crash: u64,
    /// Resends after handler errors.
    pub retries_after_error: u64,
    /// Answers: side effect ran and the key was completed.
    pub executed_and_completed: u64,
    /// Answers: orphan completed from the ledger without re-running.
    pub reconciled: u64,
    /// Answers: retryable failures.
    pub retryable_failures: u64,
    /// Answers: terminal failures.
    pub terminal_failures: u64,
    /// Answers: stored response replayed.
    pub replayed: u64,
    /// Answers: stored terminal failure replayed.
    pub replayed_failures: u64,
    /// Answers: in flight.
    pub inflight: u64,
    /// Answers: fingerprint mismatch.
    pub mismatches: u64,
    /// Answers: store or ledger errors.
    pub errors: u64,
    /// Deliveries of an event whose side effect had already begun.
    pub duplicates_delivered: u64,
    /// Of those, stopped before the side effect (replayed + in flight + reconciled).
    pub duplicates_blocked: u64,
    /// Of those, answered with the stored outcome.
    pub duplicates_replayed: u64,
    /// Blocked / delivered.
    pub duplicate_detection_rate: f64,
    /// `Store::wait` calls on in-flight keys.
    pub inflight_waits: u64,
    /// Waits that got the holder's outcome.
    pub inflight_waits_replayed: u64,
    /// Waits that took the key over after a retryable failure.
    pub inflight_waits_acquired: u64,
    /// Waits that timed out.
    pub inflight_waits_timed_out: u64,
    /// The crash, unless `--no-crash`.
    pub crash: Option<CrashInfo>,
    /// Acquired leases with `recovered() == true`.
    pub orphans_recovered: u64,
    /// Of those, completed from the ledger without re-running the side effect.
    pub orphans_reconciled_from_ledger: u64,
    /// Of those, whose side effect had not run yet and ran now.
    pub orphans_reexecuted: u64,
    /// Ledger lines.
    pub side_effects_executed: u64,
    /// Events whose stored outcome is a completion.
    pub unique_events_completed: u64,
    /// Events whose stored outcome is a terminal failure.
    pub events_failed_terminally: u64,
    /// Events whose side effect ran more than once.
    pub events_executed_twice: u64,
    /// Completions acknowledged to the provider.
    pub acknowledged_completions: u64,
    /// Acknowledged outcomes that the reopened store does not replay.
    pub acknowledged_outcomes_lost: u64,
    /// Total resends by the provider.
    pub retries: u64,
    /// Claims that acquired, p50 µs (includes the durable group commit).
    pub claim_p50_us: f64,
    /// Claims that acquired, p99 µs.
    pub claim_p99_us: f64,
    /// Claims answered with a replay, p50 µs.
    pub lookup_p50_us: f64,
    /// Claims answered with a replay, p99 µs.
    pub lookup_p99_us: f64,
    /// `Store::wait` p50 µs.
    pub wait_p50_us: f64,
    /// `Store::wait` p99 µs.
    pub wait_p99_us: f64,
    /// Records checked by `Store::verify`.
    pub store_records_verified: u64,
    /// Seconds from start to the handler's exit.
    pub run_time_s: f64,
    /// Seconds including setup and verification.
    pub wall_time_s: f64,
    /// Events per second of run time.
    pub events_per_s: f64,
}

/// Assembles the report from what the provider observed, what the ledger and
/// store hold, and the verdict on both.
pub fn build(
    args: &DemoArgs,
    sources: &[String],
    mut seen: Observed,
    x: &Crosscheck,
    verdict: Verdict,
    run_time: Duration,
    wall_time: Duration,
) -> Report {
    let c = &seen.counters;
    let replayed = c.answered(Outcome::Replayed) + c.answered(Outcome::ReplayedFailure);
    let blocked = replayed + c.answered(Outcome::InFlight) + c.answered(Outcome::Reconciled);
    let delivered = blocked + x.extra_executions;
    let retries = c.sent(Kind::AfterFailure)
        + c.sent(Kind::AfterInFlight)
        + c.sent(Kind::AfterCrash)
        + c.sent(Kind::AfterError);
    let p = seen.latencies.percentiles();
    Report {
        verdict: verdict.label(),
        failures: verdict.failures,
        path: args.path.display().to_string(),
        seed: args.seed,
        events: args.events,
        sources: sources.to_vec(),
        workers: args.workers,
        dup_rate: args.dup_rate,
        crash_enabled: !args.no_crash,
        deliveries_sent: c.deliveries_sent,
        originals_sent: c.sent(Kind::Original),
        concurrent_copies_sent: c.sent(Kind::Concurrent),
        late_copies_sent: c.sent(Kind::Late),
        retries_after_failure: c.sent(Kind::AfterFailure),
        retries_after_inflight: c.sent(Kind::AfterInFlight),
        resent_after_crash: c.sent(Kind::AfterCrash),
        retries_after_error: c.sent(Kind::AfterError),
        executed_and_completed: c.answered(Outcome::Acquired),
        reconciled: c.answered(Outcome::Reconciled),
        retryable_failures: c.answered(Outcome::Retry),
        terminal_failures: c.answered(Outcome::Terminal),
        replayed: c.answered(Outcome::Replayed),
        replayed_failures: c.answered(Outcome::ReplayedFailure),
        inflight: c.answered(Outcome::InFlight),
        mismatches: c.answered(Outcome::Mismatch),
        errors: c.answered(Outcome::Error),
        duplicates_delivered: delivered,
        duplicates_blocked: blocked,
        duplicates_replayed: replayed,
        duplicate_detection_rate: if delivered == 0 {
            1.0
        } else {
            blocked as f64 / delivered as f64
        },
        inflight_waits: c.waits,
        inflight_waits_replayed: c.waits_replayed,
        inflight_waits_acquired: c.waits_acquired,
        inflight_waits_timed_out: c.waits_timed_out,
        crash: seen.crash,
        orphans_recovered: c.recovered_leases,
        orphans_reconciled_from_ledger: c.answered(Outcome::Reconciled),
        orphans_reexecuted: c.recovered_reexecuted,
        side_effects_executed: x.side_effects_executed,
        unique_events_completed: x.completed_in_store,
        events_failed_terminally: x.failed_in_store,
        events_executed_twice: x.events_executed_twice,
        acknowledged_completions: x.acked_completions,
        acknowledged_outcomes_lost: x.acked_completions_lost + x.acked_failures_lost,
        retries,
        claim_p50_us: p.claim[0],
        claim_p99_us: p.claim[1],
        lookup_p50_us: p.lookup[0],
        lookup_p99_us: p.lookup[1],
        wait_p50_us: p.wait[0],
        wait_p99_us: p.wait[1],
        store_records_verified: x.records_verified,
        run_time_s: run_time.as_secs_f64(),
        wall_time_s: wall_time.as_secs_f64(),
        events_per_s: f64::from(args.events) / run_time.as_secs_f64().max(1e-9),
    }
}
