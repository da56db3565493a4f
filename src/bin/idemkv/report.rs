//! Counters, latency percentiles and the final report (text or JSON).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::demo::{DemoArgs, Kind};
use crate::protocol::{Answer, Outcome};
use crate::verify::Verdict;

/// What the provider counted while the demo ran.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events scheduled with extra duplicate copies.
    pub events_with_duplicates: u64,
    /// Every delivery sent.
    pub deliveries_sent: u64,
    /// Sent deliveries by [`Kind`], in declaration order.
    pub sent_by_kind: [u64; 7],
    /// Answers by [`Outcome`], in declaration order.
    pub answers: [u64; 9],
    /// Acquired leases that were `recovered()`.
    pub recovered_leases: u64,
    /// Of those, how many ran the side effect (the ledger did not have it).
    pub recovered_reexecuted: u64,
    /// `Store::wait` calls, by how they ended.
    pub waits: u64,
    /// Waits that ended with the holder's outcome replayed.
    pub waits_replayed: u64,
    /// Waits that ended acquiring the key (the holder failed retryably).
    pub waits_acquired: u64,
    /// Waits that timed out still in flight.
    pub waits_timed_out: u64,
    /// Answers whose response did not match the event's known outcome.
    pub bad_responses: u64,
    /// Events acknowledged with two different outcomes.
    pub conflicts: u64,
    /// An example of either.
    pub bad_example: Option<String>,
    /// The first handler error.
    pub first_error: Option<String>,
    /// Answers to deliveries that were not outstanding.
    pub unknown_answers: u64,
    /// Events abandoned after too many retries.
    pub gave_up: u64,
}

impl Counters {
    /// Counts one sent delivery.
    pub fn count_sent(&mut self, kind: Kind) {
        self.deliveries_sent += 1;
        self.sent_by_kind[kind as usize] += 1;
    }

    /// Counts one answer.
    pub fn count_answer(&mut self, a: &Answer) {
        self.answers[a.outcome as usize] += 1;
        if a.recovered {
            self.recovered_leases += 1;
            if a.outcome == Outcome::Acquired {
                self.recovered_reexecuted += 1;
            }
        }
        if a.waited {
            self.waits += 1;
            match a.outcome {
                Outcome::Replayed | Outcome::ReplayedFailure => self.waits_replayed += 1,
                Outcome::InFlight => self.waits_timed_out += 1,
                _ => self.waits_acquired += 1,
            }
        }
    }

    /// Notes a response that does not match the event's outcome.
    pub fn note_bad_response(&mut self, src: &str, evt: &str) {
        self.bad_responses += 1;
        self.bad_example.get_or_insert_with(|| format!("{src}/{evt}"));
    }

    /// Notes an event acknowledged with two different outcomes.
    pub fn note_conflict(&mut self, src: &str, evt: &str) {
        self.conflicts += 1;
        self.bad_example.get_or_insert_with(|| format!("{src}/{evt}"));
    }

    /// Notes a handler error.
    pub fn note_error(&mut self, msg: &str) {
        self.first_error.get_or_insert_with(|| msg.to_string());
    }

    fn sent(&self, k: Kind) -> u64 {
        self.sent_by_kind[k as usize]
    }

    fn answered(&self, o: Outcome) -> u64 {
        self.answers[o as usize]
    }
}

/// Latency samples in ns, as reported by the handler.
#[derive(Debug, Default)]
pub struct Latencies {
    claim: Vec<u64>,
    lookup: Vec<u64>,
    wait: Vec<u64>,
}

impl Latencies {
    /// Files one answer's timings.
    pub fn record(&mut self, a: &Answer) {
        if a.waited {
            self.wait.push(a.wait_ns);
            return;
        }
        match a.outcome {
            Outcome::Acquired | Outcome::Reconciled | Outcome::Retry | Outcome::Terminal => {
                self.claim.push(a.claim_ns);
            }
            Outcome::Replayed | Outcome::ReplayedFailure => self.lookup.push(a.claim_ns),
            _ => {}
        }
    }
}

/// p50 and p99 of a sample in ns, as µs with 0.1 µs resolution (0 when empty).
fn percentiles(v: &mut [u64]) -> [f64; 2] {
    if v.is_empty() {
        return [0.0, 0.0];
    }
    v.sort_unstable();
    let at = |p: usize| (v[(v.len() - 1) * p / 100] / 100) as f64 / 10.0;
    [at(50), at(99)]
}

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

/// Assembles the report and the final verdict.
#[allow(clippy::too_many_arguments)]
pub fn build(
    args: &DemoArgs,
    sources: &[String],
    c: &Counters,
    lat: &mut Latencies,
    crash: Option<CrashInfo>,
    v: Verdict,
    run_time: Duration,
    wall_time: Duration,
) -> Report {
    let mut failures = v.failures;
    let example = c.bad_example.clone().unwrap_or_default();
    if c.bad_responses > 0 {
        failures.push(format!(
            "{} answers carried a response different from the event's acknowledged outcome \
             (e.g. {example})",
            c.bad_responses
        ));
    }
    if c.conflicts > 0 {
        failures.push(format!(
            "{} events were acknowledged with two different outcomes (e.g. {example})",
            c.conflicts
        ));
    }
    let mismatches = c.answered(Outcome::Mismatch);
    if mismatches > 0 {
        failures.push(format!(
            "{mismatches} deliveries got a fingerprint mismatch for an identical body"
        ));
    }
    if c.gave_up > 0 {
        failures
            .push(format!("the provider gave up on {} events after too many retries", c.gave_up));
    }
    let replayed = c.answered(Outcome::Replayed) + c.answered(Outcome::ReplayedFailure);
    let blocked = replayed + c.answered(Outcome::InFlight) + c.answered(Outcome::Reconciled);
    let delivered = blocked + v.extra_executions;
    let [claim_p50_us, claim_p99_us] = percentiles(&mut lat.claim);
    let [lookup_p50_us, lookup_p99_us] = percentiles(&mut lat.lookup);
    let [wait_p50_us, wait_p99_us] = percentiles(&mut lat.wait);
    let retries = c.sent(Kind::AfterFailure)
        + c.sent(Kind::AfterInFlight)
        + c.sent(Kind::AfterCrash)
        + c.sent(Kind::AfterError);
    Report {
        verdict: if failures.is_empty() { "PASS" } else { "FAIL" },
        failures,
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
        mismatches,
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
        crash,
        orphans_recovered: c.recovered_leases,
        orphans_reconciled_from_ledger: c.answered(Outcome::Reconciled),
        orphans_reexecuted: c.recovered_reexecuted,
        side_effects_executed: v.side_effects_executed,
        unique_events_completed: v.completed_in_store,
        events_failed_terminally: v.failed_in_store,
        events_executed_twice: v.events_executed_twice,
        acknowledged_completions: v.acked_completions,
        acknowledged_outcomes_lost: v.acked_completions_lost + v.acked_failures_lost,
        retries,
        claim_p50_us,
        claim_p99_us,
        lookup_p50_us,
        lookup_p99_us,
        wait_p50_us,
        wait_p99_us,
        store_records_verified: v.records_verified,
        run_time_s: run_time.as_secs_f64(),
        wall_time_s: wall_time.as_secs_f64(),
        events_per_s: f64::from(args.events) / run_time.as_secs_f64().max(1e-9),
    }
}

/// One aligned report line.
fn row(o: &mut String, label: &str, value: String, note: String) {
    let _ = writeln!(o, "  {label:<26} {value:>14}   {note}");
}

/// Microseconds: one decimal below 100 µs, whole ones with separators above.
fn us(v: f64) -> String {
    if v < 100.0 { format!("{v:.1}") } else { n(v as u64) }
}

/// `1234567` → `1,234,567`.
fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Report {
    /// Prints the report to stdout, as text or one JSON object.
    pub fn print(&self, json: bool) -> Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
        } else {
            print!("{}", self.text());
        }
        Ok(())
    }

    fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "\ndeliveries");
        row(
            &mut o,
            "sent",
            n(self.deliveries_sent),
            format!(
                "{} originals + {} duplicate copies ({} concurrent, {} late) + {} retries",
                n(self.originals_sent),
                n(self.concurrent_copies_sent + self.late_copies_sent),
                n(self.concurrent_copies_sent),
                n(self.late_copies_sent),
                n(self.retries)
            ),
        );
        row(
            &mut o,
            "retries",
            n(self.retries),
            format!(
                "{} after retryable failures (exp. backoff), {} after \"in flight\", {} resent after the crash",
                n(self.retries_after_failure),
                n(self.retries_after_inflight),
                n(self.resent_after_crash)
            ),
        );
        let _ = writeln!(o, "duplicates");
        row(
            &mut o,
            "delivered",
            n(self.duplicates_delivered),
            "deliveries of an event whose side effect had already begun".into(),
        );
        row(
            &mut o,
            "blocked",
            n(self.duplicates_blocked),
            format!(
                "{} replayed + {} in flight + {} reconciled after the crash",
                n(self.duplicates_replayed),
                n(self.inflight),
                n(self.reconciled)
            ),
        );
        row(
            &mut o,
            "replayed",
            n(self.duplicates_replayed),
            format!("{} of them replayed a terminal failure", n(self.replayed_failures)),
        );
        row(
            &mut o,
            "detection rate",
            format!("{:.2} %", self.duplicate_detection_rate * 100.0),
            "blocked / delivered".into(),
        );
        row(
            &mut o,
            "in-flight waits",
            n(self.inflight_waits),
            format!(
                "Store::wait: {} got the replay, {} took over after a retryable failure, {} timed out",
                n(self.inflight_waits_replayed),
                n(self.inflight_waits_acquired),
                n(self.inflight_waits_timed_out)
            ),
        );
        let _ = writeln!(o, "crash");
        match &self.crash {
            Some(c) => {
                row(
                    &mut o,
                    "SIGKILL of the handler",
                    format!("at {}", n(u64::from(c.at_events_finished))),
                    format!(
                        "events finished; {} unanswered deliveries resent; restart {:.0} ms, {} journal entries replayed",
                        n(c.unanswered_resent),
                        c.restart_ms,
                        n(c.journal_entries_replayed)
                    ),
                );
                row(
                    &mut o,
                    "orphans recovered",
                    n(self.orphans_recovered),
                    format!(
                        "{} reconciled from the ledger (not re-run), {} had no side effect yet and ran once, {} failed (injected)",
                        n(self.orphans_reconciled_from_ledger),
                        n(self.orphans_reexecuted),
                        n(self.orphans_recovered
                            - self.orphans_reconciled_from_ledger
                            - self.orphans_reexecuted)
                    ),
                );
            }
            None if self.crash_enabled => {
                row(&mut o, "none", "-".into(), "the run ended before the crash point".into())
            }
            None => row(&mut o, "none", "-".into(), "(--no-crash)".into()),
        }
        let _ = writeln!(o, "side effects");
        row(
            &mut o,
            "executed (ledger lines)",
            n(self.side_effects_executed),
            format!("{} events executed more than once", n(self.events_executed_twice)),
        );
        row(
            &mut o,
            "unique events completed",
            n(self.unique_events_completed),
            "stored completions, each naming its ledger line".into(),
        );
        row(
            &mut o,
            "terminal failures",
            n(self.events_failed_terminally),
            "events; the failure is replayed to later duplicates".into(),
        );
        row(
            &mut o,
            "retryable failures",
            n(self.retryable_failures),
            "attempts; the key became claimable again".into(),
        );
        row(
            &mut o,
            "acknowledged completions",
            n(self.acknowledged_completions),
            format!(
                "{} lost (store reopened: each replays its response)",
                n(self.acknowledged_outcomes_lost)
            ),
        );
        let _ = writeln!(o, "latency (handler-side)");
        row(
            &mut o,
            "claim p50 / p99",
            format!("{} / {} µs", us(self.claim_p50_us), us(self.claim_p99_us)),
            "acquiring claims; Durable: includes the shared fsync".into(),
        );
        row(
            &mut o,
            "lookup p50 / p99",
            format!("{} / {} µs", us(self.lookup_p50_us), us(self.lookup_p99_us)),
            "claims answered with a replay".into(),
        );
        row(
            &mut o,
            "wait p50 / p99",
            format!("{} / {} µs", us(self.wait_p50_us), us(self.wait_p99_us)),
            "Store::wait until the holder finished".into(),
        );
        row(
            &mut o,
            "wall time",
            format!("{:.1} s", self.wall_time_s),
            format!(
                "{:.1} s run ({} events/s), then verification of {} records",
                self.run_time_s,
                n(self.events_per_s as u64),
                n(self.store_records_verified)
            ),
        );
        let mut out = o;
        let _ = writeln!(out);
        if self.failures.is_empty() {
            let _ = writeln!(
                out,
                "VERDICT: PASS — every side effect ran exactly once; every acknowledged outcome replays from the reopened store"
            );
        } else {
            for f in &self.failures {
                let _ = writeln!(out, "FAIL: {f}");
            }
            let _ = writeln!(out, "VERDICT: FAIL");
        }
        out
    }
}
