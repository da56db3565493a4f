//! The demo's final report: every count, the HTTP statuses, the crash, the
//! latencies and the verdict in one struct, which `--json` prints as is
//! (`render` writes the text form).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::DemoArgs;
use super::answer::Outcome;
use super::crosscheck::Crosscheck;
use super::provider::Observed;
use super::schedule::Kind;
use super::verdict::Verdict;

/// What happened around the crash.
#[derive(Debug, Clone, Serialize)]
pub struct CrashInfo {
    /// The killed server's pid.
    pub killed_pid: u32,
    /// Events finished when it was killed.
    pub at_events_finished: u32,
    /// Requests in flight when it was killed.
    pub in_flight_at_kill: u64,
    /// Of those, how many got no answer (a connection error) and were resent.
    pub unanswered_resent: u64,
    /// The killed server's port.
    pub old_port: u16,
    /// The new server's port.
    pub new_port: u16,
    /// Time to start the new server (open the store, replay the journal).
    pub restart_ms: f64,
    /// Journal entries the new store replayed.
    pub journal_entries_replayed: u64,
    /// Bytes cut at a torn journal tail.
    pub journal_bytes_dropped: u64,
    /// Ledger lines the new server found.
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
    /// Server worker threads.
    pub workers: usize,
    /// Requests the provider kept in flight.
    pub concurrency: usize,
    /// Share of events with duplicate copies.
    pub dup_rate: f64,
    /// Whether the server was to be killed half-way.
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
    /// Resends of deliveries the killed server never answered.
    pub resent_after_crash: u64,
    /// Resends after unexpected answers.
    pub retries_after_error: u64,
    /// Deliveries with a bad signature (wrong secret, tampered body, stale
    /// timestamp, unsigned).
    pub forged_sent: u64,
    /// Of those, answered 400/401 by the signature check.
    pub forged_rejected: u64,
    /// Those answers by status and problem code
    /// (`"401 webhook_signature_invalid"`, …).
    pub signature_rejections: BTreeMap<String, u64>,
    /// Of those, answered anything else.
    pub forged_accepted: u64,
    /// Store records and ledger lines of no genuine event.
    pub foreign_traces: u64,
    /// HTTP answers by status; replayed ones (`Idempotent-Replayed: true`)
    /// as "200 replayed", "422 replayed".
    pub http_statuses: BTreeMap<String, u64>,
    /// Deliveries that got no HTTP answer (the SIGKILL).
    pub connection_errors: u64,
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
    /// Answers: unexpected (5xx of the layer, other statuses, connection
    /// errors outside the crash).
    pub errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
    /// Deliveries of an event whose side effect had already begun.
    pub duplicates_delivered: u64,
    /// Of those, stopped before the side effect (replayed + in flight + reconciled).
    pub duplicates_blocked: u64,
    /// Of those, answered with the stored outcome.
    pub duplicates_replayed: u64,
    /// Blocked / delivered.
    pub duplicate_detection_rate: f64,
    /// The crash, unless `--no-crash`.
    pub crash: Option<CrashInfo>,
    /// Requests the endpoint of the last server process ran (its stopped
    /// line): first runs after the restart, never duplicates or forgeries.
    pub endpoint_runs_last_server: u64,
    /// Endpoint runs with `recovered() == true`.
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
    /// Round trip of answers the endpoint gave, p50 µs (durable claim,
    /// side effect with its fsync, stored answer).
    pub first_run_p50_us: f64,
    /// The same, p99 µs.
    pub first_run_p99_us: f64,
    /// Round trip of replayed answers, p50 µs.
    pub replay_p50_us: f64,
    /// The same, p99 µs.
    pub replay_p99_us: f64,
    /// Round trip of 409 answers, p50 µs.
    pub inflight_p50_us: f64,
    /// The same, p99 µs.
    pub inflight_p99_us: f64,
    /// Records checked by `Store::verify`.
    pub store_records_verified: u64,
    /// Seconds from start to the server's exit.
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
        concurrency: args.concurrency,
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
        forged_sent: c.sent(Kind::Forged),
        forged_rejected: c.forged_rejected,
        signature_rejections: c.rejections.clone(),
        forged_accepted: c.forged_accepted,
        foreign_traces: x.foreign_traces,
        http_statuses: c
            .status_counts()
            .map(|((status, replayed), n)| {
                (if replayed { format!("{status} replayed") } else { status.to_string() }, n)
            })
            .collect(),
        connection_errors: c.answered(Outcome::ConnectionError),
        executed_and_completed: c.answered(Outcome::Acquired),
        reconciled: c.answered(Outcome::Reconciled),
        retryable_failures: c.answered(Outcome::Retry),
        terminal_failures: c.answered(Outcome::Terminal),
        replayed: c.answered(Outcome::Replayed),
        replayed_failures: c.answered(Outcome::ReplayedFailure),
        inflight: c.answered(Outcome::InFlight),
        mismatches: c.answered(Outcome::Mismatch),
        errors: c.answered(Outcome::Error)
            + (c.answered(Outcome::Rejected) - c.forged_rejected)
            + (c.answered(Outcome::ConnectionError)
                - seen.crash.as_ref().map_or(0, |k| k.unanswered_resent)),
        first_error: c.first_error.clone(),
        duplicates_delivered: delivered,
        duplicates_blocked: blocked,
        duplicates_replayed: replayed,
        duplicate_detection_rate: if delivered == 0 {
            1.0
        } else {
            blocked as f64 / delivered as f64
        },
        crash: seen.crash,
        endpoint_runs_last_server: seen.last_server_runs,
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
        first_run_p50_us: p.first_run[0],
        first_run_p99_us: p.first_run[1],
        replay_p50_us: p.replay[0],
        replay_p99_us: p.replay[1],
        inflight_p50_us: p.inflight[0],
        inflight_p99_us: p.inflight[1],
        store_records_verified: x.records_verified,
        run_time_s: run_time.as_secs_f64(),
        wall_time_s: wall_time.as_secs_f64(),
        events_per_s: f64::from(args.events) / run_time.as_secs_f64().max(1e-9),
    }
}
