//! After the server exited: reads the ledger of side effects, reopens the
//! store, decodes every stored HTTP answer (`idemkv::http::stored_response`)
//! and counts, event by event, how the two agree with each other and with
//! what the provider was acknowledged — and whether any record or ledger
//! line belongs to no genuine event (a forged delivery got through). Facts
//! only; `verdict` judges them.

use std::collections::HashMap;

use anyhow::{Context, Result};
use idemkv::http::stored_response;
use idemkv::{EntryState, Key, Store};

use super::DemoArgs;
use super::events::{completed_response, effect_token, event_id, terminal_payload};
use super::provider::Acked;
use super::server::{LEDGER_FILE, STORE_DIR};

/// Records read from the store per `list` call.
const PAGE: usize = 1024;

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
    /// Events whose stored answer is a 200.
    pub completed_in_store: u64,
    /// Events whose stored answer is a 422.
    pub failed_in_store: u64,
    /// Events whose stored answer and ledger disagree: a 200 not naming the
    /// event's one ledger line, a 422 after running it, another status.
    pub disagreements: u64,
    /// One of them.
    pub disagree_example: Option<String>,
    /// Store records and ledger lines of no genuine event.
    pub foreign_traces: u64,
    /// One of them.
    pub foreign_example: Option<String>,
    /// Completions the server acknowledged.
    pub acked_completions: u64,
    /// Acknowledged completions that do not replay the same answer.
    pub acked_completions_lost: u64,
    /// Acknowledged terminal failures that do not replay the same answer.
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

/// A stored answer: status and body.
type Stored = (u16, Vec<u8>);

/// Gathers the facts; the server must have exited (the store is locked otherwise).
pub fn crosscheck(
    args: &DemoArgs,
    sources: &[String],
    acked: &[(u8, Acked)],
) -> Result<Crosscheck> {
    let mut x = Crosscheck::default();
    let known: HashMap<String, u8> =
        acked.iter().enumerate().map(|(i, &(s, _))| (event_id(args.seed, i as u32), s)).collect();
    let is_known = |src: &str, evt: &str| {
        known.get(evt).is_some_and(|&s| sources.get(s as usize).is_some_and(|n| n == src))
    };

    let ledger = super::ledger::read(&args.path.join(LEDGER_FILE))?;
    x.side_effects_executed = ledger.entries.len() as u64;
    // "source/event_id" → (times executed, token of the first execution)
    let mut executed: HashMap<String, (u32, u64)> = HashMap::with_capacity(acked.len());
    for e in &ledger.entries {
        let name = format!("{}/{}", e.source, e.event_id);
        if !is_known(&e.source, &e.event_id) {
            x.foreign_traces += 1;
            x.foreign_example.get_or_insert_with(|| format!("ledger line {name}"));
        }
        let slot = executed.entry(name.clone()).or_insert((0, e.token));
        slot.0 += 1;
        if slot.0 == 2 {
            x.events_executed_twice += 1;
            x.twice_example.get_or_insert(name);
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
    let stored = stored_answers(&store, sources, &is_known, &mut x)?;
    store.close().context("closing the store after verifying")?;

    for (i, &(source, ack)) in acked.iter().enumerate() {
        let src = &sources[source as usize];
        let evt = event_id(args.seed, i as u32);
        let name = format!("{src}/{evt}");
        let answer = stored.get(&name);
        let ran = executed.get(&name).copied();
        match answer {
            Some((200, body)) => {
                x.completed_in_store += 1;
                // The stored answer names the one execution in the ledger.
                let t = effect_token(body);
                if t.is_none() || t != ran.map(|(_, first)| first) {
                    x.disagreements += 1;
                    x.disagree_example.get_or_insert_with(|| name.clone());
                }
            }
            Some((422, _)) => {
                x.failed_in_store += 1;
                if ran.is_some() {
                    x.disagreements += 1;
                    x.disagree_example.get_or_insert_with(|| name.clone());
                }
            }
            Some(_) => {
                x.disagreements += 1;
                x.disagree_example.get_or_insert_with(|| name.clone());
            }
            None => {}
        }
        let (want_status, want) = match ack {
            Acked::Open => {
                x.unfinished += 1;
                continue;
            }
            Acked::Completed(t) => {
                x.acked_completions += 1;
                (200, completed_response(src, &evt, t))
            }
            Acked::Failed => (422, terminal_payload(src, &evt)),
        };
        if answer.is_none_or(|(s, b)| *s != want_status || b != want.as_bytes()) {
            if want_status == 200 {
                x.acked_completions_lost += 1;
            } else {
                x.acked_failures_lost += 1;
            }
            x.lost_example.get_or_insert(name);
        }
    }
    Ok(x)
}

/// Every finished record of every source, by `source/event_id`, decoded as
/// an HTTP answer; counts records of no genuine event as foreign.
fn stored_answers(
    store: &Store,
    sources: &[String],
    is_known: &dyn Fn(&str, &str) -> bool,
    x: &mut Crosscheck,
) -> Result<HashMap<String, Stored>> {
    let mut out = HashMap::new();
    for src in sources {
        let mut after: Option<Key> = None;
        loop {
            let page = store.list(Some(src), after.as_ref(), PAGE).context("listing records")?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for entry in page {
                // The layer's key id ends with `/` and the client's key (the
                // webhook-id), which holds no `/`.
                let id = String::from_utf8_lossy(entry.key.id()).into_owned();
                let evt = id.rsplit_once('/').map_or(id.as_str(), |(_, k)| k);
                let name = format!("{src}/{evt}");
                if !is_known(src, evt) {
                    x.foreign_traces += 1;
                    x.foreign_example.get_or_insert_with(|| format!("store record {id:?}"));
                    continue;
                }
                if let EntryState::Finished(replay) = &entry.state {
                    let answer = match stored_response(replay) {
                        Ok(r) => (r.status().as_u16(), r.into_body().to_vec()),
                        Err(_) => (0, Vec::new()),
                    };
                    out.insert(name, answer);
                }
            }
        }
    }
    Ok(out)
}
