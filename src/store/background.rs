//! The store's background threads: the applier (durable journal entries into
//! sled), the sweeper (expired records out), the checkpointer and the key
//! filter's builder. A panic in any of them poisons the store instead of
//! dying silently.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::filter::KeyFilter;
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

/// How long the applier gathers durable entries before writing them to sled.
const APPLY_WINDOW: Duration = Duration::from_millis(10);
/// Most journal entries per sled batch.
const APPLY_MAX: usize = 8192;

/// Applies durable batches to sled, then retires their pending versions.
pub(crate) fn run_applier(shared: &Shared, batches: Receiver<Batch>) {
    // After a clean close, sled stays as that close left it until the first
    // audit has checked it (writers meanwhile fill the pending maps, up to
    // the backlog limit). The filter thread always ends that audit.
    {
        let mut done = shared.audited.lock();
        while !*done && !shared.poison.is_set() {
            let _ = shared.audited_cv.wait_for(&mut done, Duration::from_millis(50));
        }
    }
    while let Ok(mut batch) = batches.recv() {
        // Gather what arrives within the window into one sled batch: fewer,
        // larger batches, and a key's claim and completion (two fsync rounds
        // apart in `Durable`) then cost one sled write instead of two.
        let until = Instant::now() + APPLY_WINDOW;
        while batch.len() < APPLY_MAX {
            match batches.recv_deadline(until) {
                Ok(more) => batch.extend(more),
                Err(_) => break, // window over, or the writer stopped
            }
        }
        // One fsync can hand over a whole backlog: apply it APPLY_MAX entries
        // at a time, so that sled batches stay bounded and progress shows.
        for chunk in batch.chunks(APPLY_MAX) {
            if shared.poison.is_set() {
                break; // keep draining so the writer is never blocked
            }
            let last = chunk.last().map_or(0, |(seq, _, _)| *seq);
            if let Err(e) = shared.storage.apply(chunk.iter().map(|(_, _, m)| m), last) {
                shared.poison.set(format!("applying journal entries to sled failed: {e}"));
                break;
            }
            shared.applied_seq.store(last, Ordering::Release);
            shared.backlog_cv.notify_all();
            for (seq, shard, m) in chunk {
                let key = shared.hash_raw(m.key.clone());
                shared.shards[*shard].state.lock().applied(&key, *seq);
            }
        }
    }
}

/// The applier backlog beyond which the sweeper waits before each delete.
const SWEEP_BACKLOG: u64 = super::shared::MAX_BACKLOG / 4;

/// Removes expired records through the expiry index, a page of due groups
/// at a time. Returns the number removed.
///
/// Each record a group names is checked under its shard lock: expired ones
/// are deleted through the journal, absent ones dropped, later-expiring ones
/// (not expired yet, or re-written since) kept in a replacement group. A
/// group is replaced only after its deletes are in sled, so that a crash
/// never leaves an expired record that no group names.
pub(crate) fn sweep(shared: &Shared) -> Result<usize> {
    let now = shared.clock.now_millis();
    let batch = shared.config.sweep_batch;
    // Refuse before changing anything: a closed or poisoned store must not
    // journal deletes nor drop pending versions.
    shared.check_writable()?;
    let mut removed = sweep_pending(shared, now)?;
    let mut after: Option<Vec<u8>> = None;
    loop {
        shared.check_writable()?;
        let due = shared.storage.due(now, after.as_deref(), batch)?;
        // Every key the page names, in key order: sled then reads the records
        // leaf by leaf instead of at random (a group lists keys by expiry).
        let mut named: Vec<(&[u8], usize)> = Vec::new();
        for (g, group) in due.iter().enumerate() {
            match &group.keys {
                Ok(keys) => named.extend(keys.iter().map(|k| (k.as_slice(), g))),
                // Left in place (its records stay until re-written or
                // removed); reported, never fatal to the sweeper.
                Err(reason) => {
                    tracing::warn!(target: "idemkv", %reason, "unreadable expiry-index entry")
                }
            }
        }
        named.sort_unstable();
        let mut later: Vec<Vec<(u64, &[u8])>> = vec![Vec::new(); due.len()];
        // Groups to leave as they are (a record could not be read for now).
        let mut keep = vec![false; due.len()];
        // Whether an answer rests on a journal entry not yet in sled (ours or
        // another caller's delete): then wait for it before replacing groups.
        let mut unsettled = false;
        for (raw, g) in named {
            // Deletes queue behind a quarter of the backlog that makes
            // writers wait, so that a big sweep never throttles claims.
            shared.throttle_at(SWEEP_BACKLOG)?;
            let key = shared.hash_raw(raw.into());
            let idx = shared.shard_of(&key);
            let shard = &shared.shards[idx];
            let mut st = shard.state.lock();
            match st.lookup(&key, &shared.storage) {
                Ok((Some(r), _)) if r.expires_at <= now => {
                    st.write(idx, &key, Some(&r), None, &shared.journal)?;
                    count_expiry(&mut st.counters, &key.raw);
                    removed += 1;
                    unsettled = true;
                    drop(st);
                    shard.ended.notify_all();
                }
                Ok((Some(r), seen)) => {
                    unsettled |= seen > 0;
                    later[g].push((r.expires_at, raw));
                }
                Ok((None, seen)) => unsettled |= seen > 0,
                // A corrupt record is dropped from its group and left for
                // `verify` to report.
                Err(crate::Error::Corrupt { .. }) => {}
                // Anything else (I/O, a newer record version): keep the group
                // untouched and try again next time.
                Err(_) => keep[g] = true,
            }
        }
        if unsettled {
            shared.catch_up()?;
        }
        for ((group, mut later), keep) in due.iter().zip(later).zip(keep) {
            if group.keys.is_ok() && !keep {
                shared.storage.replace_group(&group.position, &mut later)?;
            }
        }
        if due.len() < batch {
            return Ok(removed);
        }
        after = due.last().map(|g| g.position.clone());
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
            count_expiry(&mut st.counters, &key.raw);
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
    // The duration rule: intervals are whole milliseconds, rounded up (so
    // never a busy loop; `Config::validate` refused zero and > MAX_DURATION).
    let every = crate::clock::ceil_to_ms(every);
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
    // Whole milliseconds, rounded up, like the sweeper's interval.
    let every = shared.config.checkpoint_interval.map(crate::clock::ceil_to_ms);
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

/// Builds every shard's key filter from a scan of sled, then rebuilds them
/// whenever one holds more keys than it was sized for (deleted keys leave
/// them only at a rebuild). Until the first build ends, misses read sled.
pub(crate) fn run_filter(shared: &Shared) {
    // Whatever the first build ends with, claims waiting for it go on (a
    // loss it found has poisoned the store first).
    struct EndAudit<'a>(&'a Shared);
    impl Drop for EndAudit<'_> {
        fn drop(&mut self) {
            self.0.end_audit();
        }
    }
    let mut first = Some(EndAudit(shared));
    loop {
        let built = build_filters(shared);
        first.take();
        match built {
            Ok(true) => {}
            Ok(false) | Err(crate::Error::Closed) => return, // stopping
            Err(e) => {
                // Only an acceleration: without it every miss reads sled.
                tracing::warn!(target: "idemkv", error = %e, "building the key filter failed");
                return;
            }
        }
        loop {
            if shared.sleep(FILTER_CHECK) {
                return;
            }
            let over = shared
                .shards
                .iter()
                .any(|shard| shard.state.lock().filter.as_ref().is_some_and(KeyFilter::is_over));
            if over {
                break;
            }
        }
    }
}

/// How often the filter thread checks whether a filter is over capacity.
const FILTER_CHECK: Duration = Duration::from_millis(500);

/// Replaces every shard's filter by one built from the keys in sled now.
/// Returns false if the store began stopping (nothing replaced).
///
/// Complete by construction: a key in sled when a shard's new filter goes
/// live either was there before the scan reached its position (scanned), or
/// was written after the scan began — then it was pending at the start
/// (collected) or written later (collected by `ShardState::write` into
/// `building`).
pub(crate) fn build_filters(shared: &Shared) -> Result<bool> {
    // One build at a time: each relies on owning the shards' `building`.
    let _one = shared.filter_build.lock();
    let mut hashes: Vec<Vec<u64>> = vec![Vec::new(); shared.shards.len()];
    for (shard, mine) in shared.shards.iter().zip(&mut hashes) {
        let mut st = shard.state.lock();
        mine.extend(st.pending.keys().map(|k| k.hash));
        st.building = Some(Vec::new());
    }
    let scanned = scan_keys(shared, &mut hashes);
    for (shard, mine) in shared.shards.iter().zip(&hashes) {
        let mut fresh = match scanned {
            // Sized for twice the keys found, so that it lasts a while.
            Ok(true) => {
                let mut f = KeyFilter::with_capacity(2 * mine.len() as u64);
                for h in mine {
                    f.insert(*h);
                }
                Some(f)
            }
            _ => None,
        };
        let mut st = shard.state.lock();
        let since = st.building.take().unwrap_or_default();
        if let Some(mut f) = fresh.take() {
            for h in since {
                f.insert(h);
            }
            st.filter = Some(f);
        }
    }
    scanned
}

/// Adds the hash of every record key in sled to its shard's list, counting
/// the records against sled's marker (an audit: writes go on meanwhile).
/// Returns false if the store began stopping. A count that disagrees with
/// the marker means sled lost records: the store refuses to serve.
fn scan_keys(shared: &Shared, hashes: &mut [Vec<u64>]) -> Result<bool> {
    let audited = shared.audit(
        |raw, _| {
            let key = shared.hash_raw(raw.into());
            hashes[shared.shard_of(&key)].push(key.hash);
        },
        || !*shared.stop.lock(),
    )?;
    match audited {
        Some(a) if !a.matches() => Err(super::sled_check::audit_loss(&a)),
        other => Ok(other.is_some()),
    }
}
