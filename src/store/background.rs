//! The store's background threads: the applier (durable journal entries into
//! sled), the sweeper (expired records out) and the checkpointer. A panic in
//! any of them poisons the store instead of dying silently.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::shared::Shared;
use crate::error::Result;
use crate::journal::Batch;

/// Runs `body`, poisoning the store if it panics.
pub(crate) fn guarded(shared: &Arc<Shared>, name: &str, body: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(body)) {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        shared.poison.set(format!("the {name} thread panicked: {msg}"));
        shared.journal.wake_waiters();
    }
}

/// Applies durable batches to sled, then retires their pending versions.
pub(crate) fn run_applier(shared: &Shared, batches: Receiver<Batch>) {
    while let Ok(mut batch) = batches.recv() {
        // Coalesce whatever else is waiting into one sled batch.
        while let Ok(more) = batches.try_recv() {
            batch.extend(more);
            if batch.len() >= 8192 {
                break;
            }
        }
        if shared.poison.is_set() {
            continue; // keep draining so the writer is never blocked
        }
        if let Err(e) = shared.storage.apply(batch.iter().map(|(_, _, m)| m)) {
            shared.poison.set(format!("applying journal entries to sled failed: {e}"));
            continue;
        }
        if let Some((last, _, _)) = batch.last() {
            shared.applied_seq.store(*last, Ordering::Release);
            shared.backlog_cv.notify_all();
        }
        for (seq, shard, m) in &batch {
            shared.shards[*shard].state.lock().applied(&m.key, *seq);
        }
    }
}

/// Removes expired records through the expiry index, a batch at a time.
/// Returns the number removed.
pub(crate) fn sweep(shared: &Shared) -> Result<usize> {
    let now = shared.clock.now_millis();
    let batch = shared.config.sweep_batch;
    let mut removed = sweep_pending(shared, now)?;
    let mut after: Option<Vec<u8>> = None;
    loop {
        shared.check_writable()?;
        let due = shared.storage.due(now, after.as_deref(), batch)?;
        for (expires_at, raw, position) in &due {
            let key: Arc<[u8]> = raw.as_slice().into();
            let idx = shared.shard_of(&key);
            let shard = &shared.shards[idx];
            let mut st = shard.state.lock();
            let Ok((current, _)) = st.lookup(&key, &shared.storage) else {
                continue; // a corrupt record is left for `verify` to report
            };
            match current {
                Some(r) if r.expires_at == *expires_at => {
                    st.write(idx, &key, Some(&r), None, &shared.journal)?;
                    count_expiry(&mut st.counters, &key);
                    removed += 1;
                    drop(st);
                    shard.ended.notify_all();
                }
                // No version of this key is on its way to sled, so nothing
                // can re-add this index entry: it is stale, drop it.
                _ if !st.pending.contains_key(&key) => shared.storage.remove_index(position)?,
                _ => {}
            }
        }
        if due.len() < batch {
            return Ok(removed);
        }
        after = due.last().map(|(_, _, p)| p.clone());
    }
}

/// Removes expired versions that are not in sled yet (so not in the index):
/// written within the last fsync interval, or waiting for the applier.
fn sweep_pending(shared: &Shared, now: u64) -> Result<usize> {
    let mut removed = 0;
    for (idx, shard) in shared.shards.iter().enumerate() {
        let mut st = shard.state.lock();
        let expired: Vec<_> = st
            .pending
            .iter()
            .filter_map(|(k, p)| p.record.as_ref().filter(|r| r.expires_at <= now).map(|r| (k, r)))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (key, r) in &expired {
            st.write(idx, key, Some(r), None, &shared.journal)?;
            count_expiry(&mut st.counters, key);
        }
        drop(st);
        if !expired.is_empty() {
            removed += expired.len();
            shard.ended.notify_all();
        }
    }
    Ok(removed)
}

fn count_expiry(counters: &mut crate::metrics::ShardCounters, raw: &[u8]) {
    if let Ok(key) = crate::key::Key::from_raw(raw) {
        counters.add(key.namespace_bytes(), crate::metrics::Counter::Expirations);
    }
}

pub(crate) fn run_sweeper(shared: &Shared, every: Duration) {
    while !shared.sleep(every) {
        if shared.poison.is_set() {
            return;
        }
        match sweep(shared) {
            Ok(_) => {}
            Err(crate::Error::Closed | crate::Error::Poisoned { .. }) => return,
            Err(e) => {
                shared.poison.set(format!("the sweeper failed: {e}"));
                shared.journal.wake_waiters();
                return;
            }
        }
    }
}

pub(crate) fn run_checkpointer(shared: &Shared) {
    let every = shared.config.checkpoint_interval;
    let tick = every.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
    let mut last = Instant::now();
    while !shared.sleep(tick) {
        if shared.poison.is_set() {
            return;
        }
        let bytes = shared.journal.bytes_since_checkpoint.load(Ordering::Relaxed);
        let due =
            every.is_some_and(|e| last.elapsed() >= e) || bytes >= shared.config.checkpoint_bytes;
        if due {
            if shared.checkpoint().is_err() {
                return;
            }
            last = Instant::now();
        }
    }
}
