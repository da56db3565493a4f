//! The verdict: reads the ledger of side effects and reopens the store after
//! the handler exited, and checks that no side effect ran twice and that no
//! acknowledged outcome was lost.

use std::collections::HashMap;

use anyhow::{Context, Result};
use idemkv::{EntryState, Key, Store};

use crate::demo::DemoArgs;
use crate::handler::{LEDGER_FILE, STORE_DIR};
use crate::protocol::{completed_response, event_id, terminal_payload};

/// How the handler acknowledged an event to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// No final answer yet.
    Open,
    /// Completed; the ledger token of its side effect.
    Completed(u64),
    /// Failed terminally.
    Failed,
}

/// What the final checks found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// One line per broken guarantee; empty means PASS.
    pub failures: Vec<String>,
    /// Complete ledger lines: side effects executed.
    pub side_effects_executed: u64,
    /// Events with more than one ledger line.
    pub events_executed_twice: u64,
    /// Ledger lines beyond the first of their event.
    pub extra_executions: u64,
    /// Events whose stored record is a completion.
    pub completed_in_store: u64,
    /// Events whose stored record is a terminal failure.
    pub failed_in_store: u64,
    /// Completions the handler acknowledged.
    pub acked_completions: u64,
    /// Acknowledged completions that do not replay the same response.
    pub acked_completions_lost: u64,
    /// Acknowledged terminal failures that do not replay the same payload.
    pub acked_failures_lost: u64,
    /// Events never acknowledged as finished.
    pub unfinished: u64,
    /// Records read by `Store::verify`, and how many were corrupt.
    pub records_verified: u64,
    /// Records whose checksum or encoding failed.
    pub corrupt_records: u64,
}

/// Runs the checks; the handler must have exited (the store is locked otherwise).
pub fn verify(args: &DemoArgs, sources: &[String], acked: &[(u8, Acked)]) -> Result<Verdict> {
    let mut v = Verdict::default();
    let ledger = crate::ledger::read(&args.path.join(LEDGER_FILE))?;
    v.side_effects_executed = ledger.entries.len() as u64;
    // "source event_id" → (times executed, token of the first execution)
    let mut executed: HashMap<String, (u32, u64)> = HashMap::with_capacity(acked.len());
    let mut twice_example = None;
    for e in &ledger.entries {
        let slot = executed.entry(format!("{}/{}", e.source, e.event_id)).or_insert((0, e.token));
        slot.0 += 1;
        if slot.0 == 2 {
            v.events_executed_twice += 1;
            twice_example.get_or_insert_with(|| format!("{}/{}", e.source, e.event_id));
        }
        if slot.0 >= 2 {
            v.extra_executions += 1;
        }
    }

    let store_dir = args.path.join(STORE_DIR);
    let store = Store::open(&store_dir)
        .with_context(|| format!("reopening the store in {} to verify", store_dir.display()))?;
    let report = store.verify().context("verifying the stored records")?;
    v.records_verified = report.records;
    v.corrupt_records = report.corrupt.len() as u64;

    let mut lost_example = None;
    let mut disagree = 0u64;
    let mut disagree_example = None;
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
                v.completed_in_store += 1;
                // The stored response names the one execution in the ledger.
                let ok = crate::protocol::effect_token(&String::from_utf8_lossy(r.response()))
                    .is_some_and(|t| ran.is_some_and(|(_, first)| first == t));
                if !ok {
                    disagree += 1;
                    disagree_example.get_or_insert_with(|| name.clone());
                }
            } else {
                v.failed_in_store += 1;
                if ran.is_some() {
                    disagree += 1;
                    disagree_example.get_or_insert_with(|| name.clone());
                }
            }
        }
        match ack {
            Acked::Open => v.unfinished += 1,
            Acked::Completed(t) => {
                v.acked_completions += 1;
                let want = completed_response(src, &evt, t);
                if !stored
                    .as_ref()
                    .is_some_and(|r| r.is_completed() && r.response() == want.as_bytes())
                {
                    v.acked_completions_lost += 1;
                    lost_example.get_or_insert_with(|| name.clone());
                }
            }
            Acked::Failed => {
                let want = terminal_payload(src, &evt);
                if !stored
                    .as_ref()
                    .is_some_and(|r| !r.is_completed() && r.response() == want.as_bytes())
                {
                    v.acked_failures_lost += 1;
                    lost_example.get_or_insert_with(|| name.clone());
                }
            }
        }
    }
    store.close().context("closing the store after verifying")?;

    if v.events_executed_twice > 0 {
        v.failures.push(format!(
            "{} events had their side effect run more than once (e.g. {})",
            v.events_executed_twice,
            twice_example.unwrap_or_default()
        ));
    }
    if v.acked_completions_lost + v.acked_failures_lost > 0 {
        v.failures.push(format!(
            "{} acknowledged completions and {} acknowledged failures do not replay their \
             outcome from the reopened store (e.g. {})",
            v.acked_completions_lost,
            v.acked_failures_lost,
            lost_example.unwrap_or_default()
        ));
    }
    if disagree > 0 {
        v.failures.push(format!(
            "{disagree} events disagree between store and ledger: completed without exactly \
             the recorded side effect, or failed after running it (e.g. {})",
            disagree_example.unwrap_or_default()
        ));
    }
    if v.unfinished > 0 {
        v.failures.push(format!("{} events were never acknowledged as finished", v.unfinished));
    }
    if v.corrupt_records > 0 {
        v.failures.push(format!("{} stored records are corrupt", v.corrupt_records));
    }
    Ok(v)
}
