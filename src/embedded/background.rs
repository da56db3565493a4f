//! The embedded backend's background threads and the work they share with
//! explicit calls: the sweeper (expired records out), the checkpointer and
//! the key filter's builder (which is also the first audit of sled after
//! open). The journal writer and the applier belong to the engine. A panic
//! in any thread poisons the store instead of dying silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Embedded;
use super::counting::count_expiry;
use crate::config::Config;
use crate::engine::MAX_BACKLOG;
use crate::error::Result;
use crate::stripe::{HashedKey, KeyFilter};

/// Starts the sweeper (if configured), the checkpointer and the filter
/// builder.
pub(super) fn start(store: &Arc<Embedded>, config: &Config) -> Result<()> {
    let mut threads = Vec::new();
    let spawn = |name, body: fn(&Embedded)| {
        let s = store.clone();
        store.engine.spawn(name, move |_| body(&s))
    };
    if config.sweep_interval.is_some() {
        threads.push(spawn("sweeper", run_sweeper)?);
    }
    threads.push(spawn("checkpointer", run_checkpointer)?);
    threads.push(spawn("filter", run_filter)?);
    store.maintenance.lock().extend(threads);
    Ok(())
}

/// The applier backlog beyond which the sweeper waits before each delete.
const SWEEP_BACKLOG: u64 = MAX_BACKLOG / 4;

/// Removes expired records through the expiry index, a page of due groups
/// at a time. Returns the number removed.
///
/// Each record a group names is checked under its stripe lock: expired ones
/// are deleted through the journal, absent ones dropped, later-expiring ones
/// (not expired yet, or re-written since) kept in a replacement group. A
/// group is replaced only after its deletes are in sled, so that a crash
/// never leaves an expired record that no group names.
pub(super) fn sweep(store: &Embedded) -> Result<usize> {
    let e = &*store.engine;
    let now = store.clock.now_millis();
    let batch = store.sweep_batch;
    // Refuse before changing anything: a closed or poisoned store must not
    // journal deletes nor drop pending versions.
    e.check_writable()?;
    let mut removed = sweep_pending(store, now)?;
    let mut after: Option<Vec<u8>> = None;
    loop {
        e.check_writable()?;
        let due = e.due(now, after.as_deref(), batch)?;
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
            e.throttle_at(SWEEP_BACKLOG)?;
            let key = store.hash_raw(raw.into());
            let (mut st, current, seen) = store.lookup(&key);
            match current {
                Ok(Some(r)) if r.expires_at <= now => {
                    let (_, _, woken) = store.write(&mut st, &key, None, true)?;
                    count_expiry(&mut st.counters, &key.raw);
                    drop(st);
                    if let Some(w) = woken {
                        w.notify();
                    }
                    removed += 1;
                    unsettled = true;
                }
                Ok(Some(r)) => {
                    unsettled |= seen > 0;
                    later[g].push((r.expires_at, raw));
                }
                Ok(None) => unsettled |= seen > 0,
                // A corrupt record is dropped from its group and left for
                // `verify` to report.
                Err(crate::Error::Corrupt { .. }) => {}
                // Anything else (I/O, a newer record version): keep the group
                // untouched and try again next time.
                Err(_) => keep[g] = true,
            }
        }
        if unsettled {
            e.catch_up()?;
        }
        for ((group, mut later), keep) in due.iter().zip(later).zip(keep) {
            if group.keys.is_ok() && !keep {
                e.replace_group(&group.position, &mut later)?;
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
fn sweep_pending(store: &Embedded, now: u64) -> Result<usize> {
    let mut removed = 0;
    for stripe in store.stripes.iter() {
        let mut st = stripe.lock();
        let expired = st.expired_pending(now);
        let mut woken = Vec::new();
        for (key, _) in &expired {
            let (_, _, w) = store.write(&mut st, key, None, true)?;
            count_expiry(&mut st.counters, &key.raw);
            woken.extend(w);
        }
        drop(st);
        removed += expired.len();
        for w in woken {
            w.notify();
        }
    }
    Ok(removed)
}

fn run_sweeper(store: &Embedded) {
    let e = &*store.engine;
    // The duration rule: intervals are whole milliseconds, rounded up (so
    // never a busy loop; `Config::validate` refused zero and > MAX_DURATION).
    let Some(every) = store.sweep_every else { return };
    let every = crate::clock::ceil_to_ms(every);
    while !e.sleep(every) {
        if e.is_poisoned() {
            return;
        }
        match sweep(store) {
            Ok(_) => {}
            Err(crate::Error::Closed | crate::Error::Poisoned { .. }) => return,
            Err(err) => {
                e.poison(format!("the sweeper failed: {err}"));
                return;
            }
        }
    }
}

fn run_checkpointer(store: &Embedded) {
    let e = &*store.engine;
    let mut last = Instant::now();
    while !e.sleep(e.checkpoint_tick()) {
        if e.is_poisoned() {
            return;
        }
        if e.checkpoint_due(last) {
            if store.checkpoint_now().is_err() {
                return;
            }
            last = Instant::now();
        }
    }
}

/// Builds every stripe's key filter from a scan of sled, then rebuilds them
/// whenever one holds more keys than it was sized for (deleted keys leave
/// them only at a rebuild). Until the first build ends, misses read sled.
fn run_filter(store: &Embedded) {
    let e = &*store.engine;
    // Whatever the first build ends with, claims waiting for it go on (a
    // loss it found has poisoned the store first).
    struct EndAudit<'a>(&'a crate::engine::Engine);
    impl Drop for EndAudit<'_> {
        fn drop(&mut self) {
            self.0.end_audit();
        }
    }
    let mut first = Some(EndAudit(e));
    loop {
        let built = build_filters(store);
        first.take();
        match built {
            Ok(true) => {}
            Ok(false) | Err(crate::Error::Closed) => return, // stopping
            Err(err) => {
                // Only an acceleration: without it every miss reads sled.
                tracing::warn!(target: "idemkv", error = %err, "building the key filter failed");
                return;
            }
        }
        loop {
            if e.sleep(FILTER_CHECK) {
                return;
            }
            if store.stripes.iter().any(|s| s.lock().filter_is_over()) {
                break;
            }
        }
    }
}

/// How often the filter thread checks whether a filter is over capacity.
const FILTER_CHECK: Duration = Duration::from_millis(500);

/// Replaces every stripe's filter by one built from the keys in sled now.
/// Returns false if the store began stopping (nothing replaced).
///
/// Complete by construction: a key in sled when a stripe's new filter goes
/// live either was there before the scan reached its position (scanned), or
/// was written after the scan began — then it was pending at the start
/// (collected) or written later (collected by `StripeState::stage`).
pub(super) fn build_filters(store: &Embedded) -> Result<bool> {
    // One build at a time: each relies on owning the stripes' `building`.
    let _one = store.filter_build.lock();
    let mut hashes: Vec<Vec<u64>> =
        store.stripes.iter().map(|s| s.lock().begin_filter_build()).collect();
    // Counts sled's records against its marker while scanning (an audit:
    // writes go on meanwhile); a count that disagrees poisons the store.
    let scanned = store.engine.audit_keys(
        |raw| {
            let key: HashedKey = store.hash_raw(raw.into());
            let at = store.stripe_index(&key);
            hashes[at].push(key.hash);
        },
        || !store.engine.is_closed(),
    );
    for (stripe, mine) in store.stripes.iter().zip(&hashes) {
        let fresh = match scanned {
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
        stripe.lock().end_filter_build(fresh);
    }
    scanned
}
