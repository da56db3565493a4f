//! Printing the report: one JSON object, or text — aligned rows per section,
//! numbers with thousands separators, the HTTP status table, and the
//! verdict lines.

use std::fmt::Write as _;

use anyhow::Result;

use super::report::Report;

/// One aligned report line.
fn row(o: &mut String, label: &str, value: String, note: String) {
    let _ = writeln!(o, "  {label:<26} {value:>14}   {note}");
}

/// A p50 / p99 pair of µs: in ms with one decimal once the p99 reaches 1 ms.
fn p50_p99(p50: f64, p99: f64) -> String {
    if p99 < 1000.0 {
        format!("{p50:.1} / {p99:.1} µs")
    } else {
        format!("{:.1} / {:.1} ms", p50 / 1000.0, p99 / 1000.0)
    }
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
                "{} originals + {} duplicate copies ({} concurrent, {} late) + {} retries + {} forged",
                n(self.originals_sent),
                n(self.concurrent_copies_sent + self.late_copies_sent),
                n(self.concurrent_copies_sent),
                n(self.late_copies_sent),
                n(self.retries),
                n(self.forged_sent)
            ),
        );
        row(
            &mut o,
            "retries",
            n(self.retries),
            format!(
                "{} after 503 (exp. backoff), {} after 409, {} resent after the crash, {} after errors",
                n(self.retries_after_failure),
                n(self.retries_after_inflight),
                n(self.resent_after_crash),
                n(self.retries_after_error)
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
        self.http_rows(&mut o);
        let _ = writeln!(o, "crash");
        match &self.crash {
            Some(c) => {
                row(
                    &mut o,
                    "SIGKILL of the server",
                    format!("at {}", n(u64::from(c.at_events_finished))),
                    format!(
                        "events finished; {} requests in flight, {} got no answer and were \
                         redelivered",
                        n(c.in_flight_at_kill),
                        n(c.unanswered_resent)
                    ),
                );
                row(
                    &mut o,
                    "restart",
                    format!("{:.0} ms", c.restart_ms),
                    format!(
                        "same directory, port {} → {}; {} journal entries replayed, {} ledger \
                         lines found",
                        c.old_port,
                        c.new_port,
                        n(c.journal_entries_replayed),
                        n(c.ledger_lines_found)
                    ),
                );
                row(
                    &mut o,
                    "orphans recovered",
                    n(self.orphans_recovered),
                    format!(
                        "recovered() == true: {} reconciled from the ledger (not re-run), {} had \
                         no side effect yet and ran once, {} failed (injected)",
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
            "stored 200 answers, each naming its ledger line".into(),
        );
        row(
            &mut o,
            "terminal failures",
            n(self.events_failed_terminally),
            "events answered 422; stored and replayed to later duplicates".into(),
        );
        row(
            &mut o,
            "retryable failures",
            n(self.retryable_failures),
            "attempts answered 503; the layer released the claim (on_status → Retry)".into(),
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
        let _ = writeln!(o, "latency (provider-side HTTP round trip)");
        row(
            &mut o,
            "first run p50 / p99",
            p50_p99(self.first_run_p50_us, self.first_run_p99_us),
            "durable claim + ledger fsync + durable stored answer".into(),
        );
        row(
            &mut o,
            "replay p50 / p99",
            p50_p99(self.replay_p50_us, self.replay_p99_us),
            "answered by the layer from the store".into(),
        );
        row(
            &mut o,
            "409 p50 / p99",
            p50_p99(self.inflight_p50_us, self.inflight_p99_us),
            "in flight: another delivery holds the key".into(),
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

    /// The HTTP answers by status, the connection errors and the forged
    /// deliveries.
    fn http_rows(&self, o: &mut String) {
        let _ = writeln!(o, "http answers");
        for (status, count) in &self.http_statuses {
            let (label, note) = match status.as_str() {
                "200" => (
                    "200 first run".to_string(),
                    format!(
                        "the endpoint ran: {} executed the side effect, {} reconciled from the ledger",
                        n(self.executed_and_completed),
                        n(self.reconciled)
                    ),
                ),
                "200 replayed" => (
                    status.clone(),
                    "Idempotent-Replayed: true — the stored answer, byte for byte".into(),
                ),
                "409" => (
                    "409 in flight".to_string(),
                    "a concurrent duplicate held the key; resent with backoff".into(),
                ),
                "422" => (
                    "422 terminal".to_string(),
                    format!(
                        "first answer of a rejected event, stored by the layer ({} key-reuse mismatches)",
                        n(self.mismatches)
                    ),
                ),
                "422 replayed" => (status.clone(), "the stored rejection, replayed".into()),
                "401" => ("401 bad signature".to_string(), self.rejections("401")),
                "400" => ("400 unsigned".to_string(), self.rejections("400")),
                "503" => (
                    "503 retry later".to_string(),
                    "the downstream failed before the side effect; the claim was released".into(),
                ),
                _ => (status.clone(), "unexpected".into()),
            };
            row(o, &label, n(*count), note);
        }
        row(
            o,
            "connection errors",
            n(self.connection_errors),
            "no answer: requests in flight at the SIGKILL, redelivered".into(),
        );
        row(
            o,
            "forged deliveries",
            n(self.forged_sent),
            format!(
                "{} rejected (400/401), {} not; {} store records or ledger lines of no genuine event",
                n(self.forged_rejected),
                n(self.forged_accepted),
                n(self.foreign_traces)
            ),
        );
        if self.errors > 0 {
            row(
                o,
                "unexpected answers",
                n(self.errors),
                format!("first: {}", self.first_error.as_deref().unwrap_or_default()),
            );
        }
    }

    /// The signature check's answers with this status, by problem code.
    fn rejections(&self, status: &str) -> String {
        let codes: Vec<String> = self
            .signature_rejections
            .iter()
            .filter_map(|(k, v)| Some(format!("{} × {}", k.strip_prefix(status)?.trim(), n(*v))))
            .collect();
        format!("VerifyLayer, before the store: {}", codes.join(", "))
    }
}
