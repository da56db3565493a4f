//! Printing the report: one JSON object, or text — aligned rows per section,
//! numbers with thousands separators, and the verdict lines.

use std::fmt::Write as _;

use anyhow::Result;

use super::report::Report;

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
