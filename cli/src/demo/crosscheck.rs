//! After the handler exited: reads the ledger of side effects, reopens the
//! store, and counts, event by event, how the two agree with each other and
//! with what the provider was acknowledged. Facts only; `verdict` judges them.

use std::collections::HashMap;

use anyhow::{Context, Result};
use idemkv::{EntryState, Key, Store};

use super::DemoArgs;
use super::handler::{LEDGER_FILE, STORE_DIR};
use super::protocol::{completed_response, effect_token, event_id, terminal_payload};
use super::provider::Acked;

/// What the ledger and the reopened store hold, against the acknowledgements.
#[derive(Debug, Default)]
pub struct Crosscheck {
    /// Complete ledger lines: side effects executed.
    pub side_effects_executed: u64,
    /// Events with more than one ledger line.
    pub events_executed_twice: u64,
    /// One of them, `source/event_id`.
    pub twice_example: Option<String>,
    /// Ledger lines beyond the first of their event.
    pub extra_executions: u64,
    /// Events whose stored record is a completion.
    pub completed_in_store: u64,
    /// Events whose stored record is a terminal failure.
    pub failed_in_store: u64,
    /// Events whose stored outcome and ledger disagree: completed without
    /// naming the event's one ledger line, or failed after running it.
    pub disagreements: u64,
    /// One of them.
    pub disagree_example: Option<String>,
    /// Completions the handler acknowledged.
    pub acked_completions: u64,
    /// Acknowledged completions that do not replay the same response.
    pub acked_completions_lost: u64,
    /// Acknowledged terminal failures that do not replay the same payload.
    pub acked_failures_lost: u64,
    /// One lost acknowledged outcome, of either kind.
    pub lost_example: Option<String>,
    /// Events never acknowledged as finished.
    pub unfinished: u64,
    /// Records read by `Store::verify`.
    pub records_verified: u64,
    /// Records whose checksum or encoding failed.
    pub corrupt_records: u64,
}

/// Gathers the facts; the handler must have exited (the store is locked otherwise).
pub fn crosscheck(
    args: &DemoArgs,
    sources: &[String],
    acked: &[(u8, Acked)],
) -> Result<Crosscheck> {
    let mut x = Crosscheck::default();
    let ledger = super::ledger::read(&args.path.join(LEDGER_FILE))?;
    x.side_effects_executed = ledger.entries.len() as u64;
    // "source/event_id" → (times executed, token of the first execution)
    let mut executed: HashMap<String, (u32, u64)> = HashMap::with_capacity(acked.len());
    for e in &ledger.entries {
        let slot = executed.entry(format!("{}/{}", e.source, e.event_id)).or_insert((0, e.token));
        slot.0 += 1;
        if slot.0 == 2 {
            x.events_executed_twice += 1;
            x.twice_example.get_or_insert_with(|| format!("{}/{}", e.source, e.event_id));
        }
        if slot.0 >= 2 {
            x.extra_executions += 1;
        }
    }

    let store_dir = args.path.join(STORE_DIR);
    let store = Store::open(&store_dir)
        .with_context(|| format!("reopening the store in {} to verify", store_dir.display()))?;
    let report = store.verify().context("verifying the stored records")?;
    x.records_verified = report.records;
    x.corrupt_records = report.corrupt.len() as u64;

    for (i, &(source, ack)) in acked.iter().enumerate() {
        let src = &sources[source as usize];
        let evt = event_id(args.seed, i as u32);
        let key = Key::new(src, &evt)?;
        let stored = match store.get(&key)? {
            Some(entry) => match entry.state {
                EntryState::Finished(r) => Some(r),
                _ => None,
            },
            None => None,
        };
        let name = format!("{src}/{evt}");
        let ran = executed.get(&name).copied();
        if let Some(r) = &stored {
            if r.is_completed() {
                x.completed_in_store += 1;
                // The stored response names the one execution in the ledger.
                let ok = effect_token(&String::from_utf8_lossy(r.response()))
                    .is_some_and(|t| ran.is_some_and(|(_, first)| first == t));
                if !ok {
                    x.disagreements += 1;
                    x.disagree_example.get_or_insert_with(|| name.clone());
                }
            } else {
                x.failed_in_store += 1;
                if ran.is_some() {
                    x.disagreements += 1;
                    x.disagree_example.get_or_insert_with(|| name.clone());
                }
            }
        }
        match ack {
            Acked::Open => x.unfinished += 1,
            Acked::Completed(t) => {
                x.acked_completions += 1;
                let want = completed_response(src, &evt, t);
                if !stored
                    .as_ref()
                    .is_some_and(|r| r.is_completed() && r.response() == want.as_bytes())
                {
                    x.acked_completions_lost += 1;
                    x.lost_example.get_or_insert_with(|| name.clone());
                }
            }
            Acked::Failed => {
                let want = terminal_payload(src, &evt);
                if !stored
                    .as_ref()
                    .is_some_and(|r| !r.is_completed() && r.response() == want.as_bytes())
                {
                    x.acked_failures_lost += 1;
                    x.lost_example.get_or_insert_with(|| name.clone());
                }
            }
        }
    }
    store.close().context("closing the store after verifying")?;
    Ok(x)
}
