//! The demo's verdict, decided in one place: PASS when no guarantee was
//! broken, judged from the ledger and store facts (`crosscheck`) and from
//! what the provider counted while the demo ran (`tally`).

use super::answer::Outcome;
use super::crosscheck::Crosscheck;
use super::tally::Counters;

/// PASS or FAIL, with one line per broken guarantee.
#[derive(Debug)]
pub struct Verdict {
    /// One line per broken guarantee; empty means PASS.
    pub failures: Vec<String>,
}

impl Verdict {
    /// No guarantee was broken.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// "PASS" or "FAIL".
    pub fn label(&self) -> &'static str {
        if self.passed() { "PASS" } else { "FAIL" }
    }
}

/// Every check of the demo, in the order its failures are reported.
pub fn judge(x: &Crosscheck, c: &Counters) -> Verdict {
    let mut failures = Vec::new();
    // The ledger and the reopened store.
    if x.events_executed_twice > 0 {
        failures.push(format!(
            "{} events had their side effect run more than once (e.g. {})",
            x.events_executed_twice,
            x.twice_example.as_deref().unwrap_or_default()
        ));
    }
    if x.acked_completions_lost + x.acked_failures_lost > 0 {
        failures.push(format!(
            "{} acknowledged completions and {} acknowledged failures do not replay their \
             outcome from the reopened store (e.g. {})",
            x.acked_completions_lost,
            x.acked_failures_lost,
            x.lost_example.as_deref().unwrap_or_default()
        ));
    }
    if x.disagreements > 0 {
        failures.push(format!(
            "{} events disagree between store and ledger: completed without exactly \
             the recorded side effect, or failed after running it (e.g. {})",
            x.disagreements,
            x.disagree_example.as_deref().unwrap_or_default()
        ));
    }
    if x.unfinished > 0 {
        failures.push(format!("{} events were never acknowledged as finished", x.unfinished));
    }
    if x.corrupt_records > 0 {
        failures.push(format!("{} stored records are corrupt", x.corrupt_records));
    }
    if x.foreign_traces > 0 {
        failures.push(format!(
            "{} store records or ledger lines belong to no genuine event: a bad signature \
             got through (e.g. {})",
            x.foreign_traces,
            x.foreign_example.as_deref().unwrap_or_default()
        ));
    }
    // The answers the provider got during the run.
    if c.bad_responses > 0 {
        failures.push(format!(
            "{} answers carried a response different from the event's acknowledged outcome \
             (e.g. {})",
            c.bad_responses,
            c.bad_example.as_deref().unwrap_or_default()
        ));
    }
    if c.conflicts > 0 {
        failures.push(format!(
            "{} events were acknowledged with two different outcomes (e.g. {})",
            c.conflicts,
            c.bad_example.as_deref().unwrap_or_default()
        ));
    }
    let mismatches = c.answered(Outcome::Mismatch);
    if mismatches > 0 {
        failures.push(format!(
            "{mismatches} deliveries got a fingerprint mismatch for an identical body"
        ));
    }
    if c.forged_accepted > 0 {
        failures.push(format!(
            "{} deliveries with a bad signature were not rejected with 400/401 (e.g. {})",
            c.forged_accepted,
            c.forged_example.as_deref().unwrap_or_default()
        ));
    }
    if c.gave_up > 0 {
        failures
            .push(format!("the provider gave up on {} events after too many retries", c.gave_up));
    }
    Verdict { failures }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::answer::Answer;

    #[test]
    fn clean_facts_pass() {
        let v = judge(&Crosscheck::default(), &Counters::default());
        assert!(v.passed());
        assert_eq!(v.label(), "PASS");
    }

    #[test]
    fn every_broken_guarantee_fails_in_order() {
        let x = Crosscheck {
            events_executed_twice: 1,
            acked_failures_lost: 1,
            disagreements: 1,
            unfinished: 1,
            corrupt_records: 1,
            foreign_traces: 1,
            ..Crosscheck::default()
        };
        let mut c = Counters { gave_up: 1, ..Counters::default() };
        c.count_forged(&Answer::new(2, Outcome::Replayed));
        c.note_bad_response("stripe", "evt_1");
        c.note_conflict("stripe", "evt_1");
        c.count_answer(&Answer::new(1, Outcome::Mismatch));
        let v = judge(&x, &c);
        assert_eq!(v.label(), "FAIL");
        assert_eq!(v.failures.len(), 11, "{:#?}", v.failures);
        for (f, words) in v.failures.iter().zip([
            "run more than once",
            "do not replay",
            "disagree between store and ledger",
            "never acknowledged",
            "corrupt",
            "a bad signature got through",
            "response different",
            "two different outcomes (e.g. stripe/evt_1)",
            "fingerprint mismatch",
            "not rejected",
            "gave up",
        ]) {
            assert!(f.contains(words), "{f:?} lacks {words:?}");
        }
    }
}
