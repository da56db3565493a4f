//! Everything the store's handles and background threads share.

use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::hashed::HashedKey;
use super::meta::{MetaFile, TOKEN_BLOCK};
use super::shard::Shard;
use crate::clock::Clock;
use crate::config::{Config, Durability, MAX_TOKEN};
use crate::error::{Error, Result};
use crate::journal::{Journal, RecoveryReport, remove_segments_below};
use crate::metrics::COUNTERS;
use crate::poison::Poison;
use crate::storage::Storage;

pub(crate) struct Shared {
    pub config: Config,
    pub shards: Box<[Shard]>,
    /// Seeded at random per store (foldhash's quality variant), so that keys
    /// chosen by a sender cannot be aimed at one stripe or one bucket.
    pub hasher: foldhash::quality::RandomState,
    pub journal: Journal,
    pub journal_dir: PathBuf,
    pub storage: Storage,
    pub poison: Arc<Poison>,
    pub clock: Arc<dyn Clock>,
    /// This process's boot epoch: claims of other epochs are orphans.
    pub boot: u64,
    /// This open store's identity, drawn at random at open and carried by
    /// every lease it issues: leases of another directory, of a copy of this
    /// one or of an earlier open are `StaleReason::OtherStore`.
    pub store_id: u64,
    pub next_token: AtomicU64,
    pub token_ceiling: AtomicU64,
    /// META, also serializing checkpoints.
    pub meta: Mutex<MetaFile>,
    /// Every journal entry up to this one is in sled.
    pub applied_seq: AtomicU64,
    pub stop: Mutex<bool>,
    pub stop_cv: Condvar,
    pub closed: AtomicBool,
    pub recovery: RecoveryReport,
    /// Counters and latencies by namespace.
    pub metrics: crate::metrics::Metrics,
    /// Held while the key filters are being built.
    pub filter_build: Mutex<()>,
    /// Set once the first audit of sled after open has ended (see
    /// `background::run_filter`): until then a key found nowhere may be one
    /// sled lost, so claims and reads of such keys wait for it.
    pub audited: Mutex<bool>,
    /// The same, read without a lock on the claim path.
    pub audit_ended: AtomicBool,
    /// An audit found sled's records disagreeing with its marker: no absent
    /// answer can be trusted any more.
    pub sled_damaged: AtomicBool,
    /// The last session did not close cleanly: the next audit rebuilds the
    /// marker's count from the records instead of checking it.
    pub rebase_pending: AtomicBool,
    /// What the rebuild of sled's count after an unclean end changed, if it
    /// changed it: (the marker's count, the records found). Reported by
    /// `verify` (a partly applied batch, or damage the count cannot tell).
    pub rebuilt: Mutex<Option<(u64, u64)>>,
    pub audited_cv: Condvar,
    /// Writers wait here while the applier is too far behind.
    pub backlog: Mutex<()>,
    pub backlog_cv: Condvar,
}

/// Journal entries not yet in sled beyond which writers wait for the
/// applier: bounds the memory of the pending maps and the applier queue.
pub(crate) const MAX_BACKLOG: u64 = 1 << 18;

impl Shared {
    /// The key with its store hash: the one hash of a call.
    pub fn hashed(&self, key: &crate::key::Key) -> HashedKey {
        self.hash_raw(key.raw_arc())
    }

    /// A raw key with its store hash.
    pub fn hash_raw(&self, raw: Arc<[u8]>) -> HashedKey {
        HashedKey { hash: self.hasher.hash_one(&*raw), raw }
    }

    /// The shard of a key: hash bits 32 and up (the maps inside a shard index
    /// by the low bits).
    pub fn shard_of(&self, key: &HashedKey) -> usize {
        ((key.hash >> 32) as usize) & (self.shards.len() - 1)
    }

    pub fn durable(&self) -> bool {
        self.config.durability == Durability::Durable
    }

    /// Cumulative counters by namespace: the checkpointed base plus every
    /// shard's counts since open.
    pub fn counter_totals(&self) -> std::collections::HashMap<String, [u64; COUNTERS]> {
        let mut all = self.metrics.base();
        for shard in self.shards.iter() {
            shard.state.lock().counters.sum_into(&mut all);
        }
        all
    }

    /// Waits until everything journaled so far is in sled (forcing the
    /// journal's fsync first). `Err(Closed)` once the store is closed.
    pub fn catch_up(&self) -> Result<()> {
        self.check_open()?;
        self.journal.flush()?;
        let target = self.journal.durable_seq();
        // The applier runs behind the writer; wait for it to catch up.
        while self.applied_seq.load(Ordering::Acquire) < target {
            self.check_writable()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Refuses every call after close (reads too).
    pub fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Refuses writes after close or poisoning.
    pub fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        self.poison.check()
    }

    /// Marks the store closed and wakes everything that may be waiting on it
    /// (claim waiters, throttled writers, the background threads), so that
    /// each sees `closed` at once. Returns false if it was already closed.
    ///
    /// Each shard's lock is taken (briefly, with a bound: a thread stuck in
    /// sled may hold one) before its condition variable is notified, so a
    /// waiter that checked `closed` just before cannot miss the wake-up.
    pub fn mark_closed(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        *self.stop.lock() = true;
        self.stop_cv.notify_all();
        for shard in self.shards.iter() {
            let guard = shard.state.try_lock_for(Duration::from_millis(100));
            shard.ended.notify_all();
            drop(guard);
        }
        {
            let _g = self.backlog.try_lock_for(Duration::from_millis(100));
            self.backlog_cv.notify_all();
        }
        true
    }

    /// Waits while the applier is more than `MAX_BACKLOG` entries behind.
    /// Called before taking a shard lock (the applier needs shard locks).
    pub fn throttle(&self) -> Result<()> {
        self.throttle_at(MAX_BACKLOG)
    }

    /// Waits while the applier is more than `limit` entries behind.
    pub fn throttle_at(&self, limit: u64) -> Result<()> {
        let behind = || {
            let applied = self.applied_seq.load(Ordering::Acquire);
            self.journal.next_seq().saturating_sub(applied) > limit
        };
        if !behind() {
            return Ok(());
        }
        let mut g = self.backlog.lock();
        while behind() {
            self.check_writable()?;
            // Only fsynced entries reach the applier: in `Buffered` with a
            // long `max_delay` the backlog would never drain by itself.
            self.journal.request_flush();
            let _ = self.backlog_cv.wait_for(&mut g, Duration::from_millis(10));
        }
        Ok(())
    }

    /// The next fencing token. Tokens strictly increase and never wrap: once
    /// [`MAX_TOKEN`] was issued (or the reopened ceiling lies beyond it), every
    /// call fails with [`Error::TokenSpaceExhausted`] and the counter stays.
    pub fn issue_token(&self) -> Result<u64> {
        self.next_token
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (t <= MAX_TOKEN).then(|| t.saturating_add(1))
            })
            .map_err(|t| Error::TokenSpaceExhausted { token: t, limit: MAX_TOKEN })
    }

    /// Makes sure `token` is below the durable ceiling, raising it if needed.
    pub fn secure_token(&self, token: u64) -> Result<()> {
        if token <= self.token_ceiling.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut meta = self.meta.lock();
        if token > meta.current.token_ceiling {
            let mut m = meta.current;
            m.token_ceiling = token.saturating_add(TOKEN_BLOCK);
            meta.store(m)
                .inspect_err(|e| self.poison.set(format!("raising token ceiling: {e}")))?;
            self.token_ceiling.store(m.token_ceiling, Ordering::Release);
        }
        Ok(())
    }

    /// Makes sled durable up to the applied sequence number, records it in
    /// META and deletes the journal segments it covers.
    pub fn checkpoint(&self) -> Result<u64> {
        // Counted before taking META: a claim holds a shard lock while it may
        // take META (`secure_token`), so META must never wait for a shard.
        let counters: Vec<_> =
            self.counter_totals().into_iter().map(|(ns, c)| (ns, c.to_vec())).collect();
        let mut meta = self.meta.lock();
        let applied = self.applied_seq.load(Ordering::Acquire);
        let written = self.journal.bytes_since_checkpoint.swap(0, Ordering::Relaxed);
        let res = (|| {
            self.storage.save_counters(&counters)?;
            self.storage.sync()?;
            // sled is synced with the marker's new copy id (set at open):
            // from now on it is the only one accepted.
            if applied != meta.current.checkpoint_seq || meta.current.next_sled_id != 0 {
                let mut m = meta.current;
                m.checkpoint_seq = applied;
                if m.next_sled_id != 0 {
                    m.sled_id = m.next_sled_id;
                    m.next_sled_id = 0;
                }
                meta.store(m)?;
            }
            remove_segments_below(&self.journal_dir, applied)
        })();
        if let Err(e) = res {
            self.journal.bytes_since_checkpoint.fetch_add(written, Ordering::Relaxed);
            self.poison.set(format!("checkpoint failed: {e}"));
            return Err(e);
        }
        Ok(applied)
    }

    /// Sleeps up to `d` or until the store stops; true if it is stopping.
    pub fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            let _ = self.stop_cv.wait_for(&mut stop, d);
        }
        *stop
    }
}
