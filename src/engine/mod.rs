//! The engine: everything below the stripes that makes a transition durable
//! and keeps it. It owns the journal writer and the applier that copies
//! durable entries into sled, the checkpoint protocol, the META file and the
//! fencing-token ceiling it carries, sled storage and its audits.
//!
//! Its interface is narrow ([`Engine`]): append a mutation and get its
//! sequence number; wait until a sequence number is durable; read the applied
//! watermark (every entry up to it is in sled); read a stored record; issue
//! and secure fencing tokens; checkpoint. The stripes above never see a
//! journal or sled type, and the engine never sees a stripe: the applier
//! writes entries to sled and advances the watermark, nothing more.

mod applier;
mod checkpoint;
pub(crate) mod journal;
mod lifecycle;
mod meta;
mod open;
mod sled_check;
mod sled_watch;
pub(crate) mod storage;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

pub(crate) use applier::MAX_BACKLOG;
pub(crate) use lifecycle::JOURNAL_THREAD;
pub(crate) use open::Opened;
pub(crate) use storage::DueGroup;

use crate::config::{Config, Durability};
use crate::core::{Record, RecoveryReport};
use crate::error::Result;
use crate::format::entry::Mutation;
use crate::poison::Poison;
use journal::Journal;
use meta::MetaFile;
use storage::Storage;

/// A journal sequence number.
pub(crate) type Seq = u64;

/// The engine of one open store. Shared by the store's handles and its
/// background threads.
pub(crate) struct Engine {
    durability: Durability,
    /// Checkpoint cadence: every this long (if set) or this many journal bytes.
    checkpoint_every: Option<Duration>,
    checkpoint_bytes: u64,
    journal: Journal,
    journal_dir: PathBuf,
    storage: Storage,
    poison: Arc<Poison>,
    /// This process's boot epoch: claims of other epochs are orphans.
    boot: u64,
    /// This open store's identity, drawn at random at open and carried by
    /// every lease it issues: leases of another directory, of a copy of this
    /// one or of an earlier open are `StaleReason::OtherStore`.
    store_id: u64,
    /// The next fencing token to issue.
    next_token: AtomicU64,
    /// META's token ceiling, read without its lock on the claim path
    /// (written only together with META, under META's lock).
    ceiling: AtomicU64,
    /// META (with the durable token ceiling), also serializing checkpoints.
    meta: Mutex<MetaFile>,
    /// Every journal entry up to this one is in sled (the applied watermark).
    applied_seq: AtomicU64,
    /// Writers wait here while the applier is too far behind.
    backlog: Mutex<()>,
    backlog_cv: Condvar,
    lifecycle: lifecycle::Lifecycle,
    audit: sled_watch::AuditState,
    recovery: RecoveryReport,
    /// The counters as the last checkpoint saved them, by namespace.
    saved_counters: Vec<(String, Vec<u64>)>,
}

impl Engine {
    /// Opens the engine of the store in `dir` (see `open`).
    pub fn open(dir: &std::path::Path, config: &Config) -> Result<Opened> {
        open::open(dir, config)
    }

    /// Queues `m`; returns its sequence number. Callers hold the stripe lock
    /// of `m`'s key, so that per-key order is journal order (appending is an
    /// encode into an in-memory buffer; the fsync happens on the journal
    /// thread). Fails once closing or poisoned; nothing is then queued.
    pub fn append(&self, m: Mutation) -> Result<Seq> {
        self.journal.append(m)
    }

    /// In `Durable` mode, blocks until entry `seq` is durable; in `Buffered`
    /// mode returns at once. `seq == 0`: nothing to wait for.
    #[inline]
    pub fn settle(&self, seq: Seq) -> Result<()> {
        if self.durable() && seq > 0 { self.journal.wait_durable(seq) } else { Ok(()) }
    }

    /// Whether [`Engine::settle`] of `seq` would return at once: true in
    /// `Buffered` mode and once `seq` is durable; `Err` if it never will be.
    /// Never blocks.
    #[inline]
    pub fn settled(&self, seq: Seq) -> Result<bool> {
        if self.durable() && seq > 0 { self.journal.is_durable(seq) } else { Ok(true) }
    }

    /// Asks the journal to fsync everything appended so far now, whatever
    /// the mode; the newest entry's sequence number. Never blocks.
    pub fn request_flush(&self) -> Result<Seq> {
        self.check_writable()?;
        Ok(self.journal.request_flush_upto())
    }

    /// Whether entry `seq` is durable, whatever the mode. Never blocks.
    pub fn durable_to(&self, seq: Seq) -> Result<bool> {
        if seq == 0 { Ok(true) } else { self.journal.is_durable(seq) }
    }

    /// A listener notified when more entries become durable (or the store
    /// is poisoned or closed): register, re-check [`Engine::settled`], await.
    pub fn listen_durable(&self) -> event_listener::EventListener {
        self.journal.listen_durable()
    }

    /// Holds the journal's fsync while a batch appends, until
    /// [`Engine::hold_end`]: the batch's entries share one fsync (a hold
    /// defers fsyncs by at most `journal::MAX_HOLD`). Never blocks.
    pub fn hold_start(&self) -> u64 {
        self.journal.hold()
    }

    /// Ends the hold `hold_start` returned. Never blocks.
    pub fn hold_end(&self, hold: u64) {
        self.journal.release_hold(hold);
    }

    /// Makes every entry appended so far durable, whatever the mode.
    pub fn flush(&self) -> Result<()> {
        self.journal.flush()
    }

    /// The applied watermark: every entry up to it is in sled.
    #[inline]
    pub fn applied(&self) -> Seq {
        self.applied_seq.load(Ordering::Acquire)
    }

    /// The stored record of `raw` in sled (possibly expired).
    pub fn read(&self, raw: &[u8]) -> Result<Option<Record>> {
        self.storage.get(raw)
    }

    /// Whether transitions wait for their fsync before answering.
    #[inline]
    pub fn durable(&self) -> bool {
        self.durability == Durability::Durable
    }

    /// This process's boot epoch.
    #[inline]
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// This open store's identity (carried by its leases).
    #[inline]
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// What recovery found at open.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The counters as the last checkpoint saved them.
    pub fn saved_counters(&self) -> &[(String, Vec<u64>)] {
        &self.saved_counters
    }

    /// Waits while the applier is more than `MAX_BACKLOG` entries behind.
    /// Called before taking a stripe lock.
    #[inline]
    pub fn throttle(&self) -> Result<()> {
        self.throttle_at(MAX_BACKLOG)
    }

    /// Waits while the applier is more than `limit` entries behind.
    #[inline]
    pub fn throttle_at(&self, limit: u64) -> Result<()> {
        if self.journal.next_seq().saturating_sub(self.applied()) > limit {
            return self.wait_for_applier(limit);
        }
        Ok(())
    }

    #[cold]
    fn wait_for_applier(&self, limit: u64) -> Result<()> {
        let behind = || self.journal.next_seq().saturating_sub(self.applied()) > limit;
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

    /// Waits until everything journaled so far is in sled (forcing the
    /// journal's fsync first). `Err(Closed)` once the store is closed.
    pub fn catch_up(&self) -> Result<()> {
        self.check_open()?;
        self.journal.flush()?;
        let target = self.journal.durable_seq();
        let mut g = self.backlog.lock();
        while self.applied() < target {
            self.check_writable()?;
            // The applier notifies at every step; the bound only re-checks
            // close and poison.
            let _ = self.backlog_cv.wait_for(&mut g, Duration::from_millis(10));
        }
        Ok(())
    }

    /// Up to `limit` expiry groups due at `now`, after `after` if given.
    pub fn due(&self, now: u64, after: Option<&[u8]>, limit: usize) -> Result<Vec<DueGroup>> {
        self.storage.due(now, after, limit)
    }

    /// Replaces the expiry group at `position` by groups naming `remaining`.
    pub fn replace_group(&self, position: &[u8], remaining: &mut [(u64, &[u8])]) -> Result<()> {
        self.storage.replace_group(position, remaining)
    }

    /// Up to `limit` `(raw key, record)` pairs in key order, under `prefix`,
    /// after `after`. A record that cannot be decoded fails the page.
    pub fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Record)>> {
        let page = self.storage.scan_records(prefix, after, limit)?;
        page.into_iter()
            .map(|(raw, bytes)| crate::format::record::decode(&raw, &bytes).map(|r| (raw, r)))
            .collect()
    }

    #[cfg(any(test, feature = "testing"))]
    /// The number of distinct keys the expiry index names (a test hook).
    pub fn index_len(&self) -> usize {
        self.storage.index_len().unwrap_or(0)
    }

    #[cfg(any(test, feature = "testing"))]
    /// Overwrites a stored record with raw bytes, bypassing the codec and
    /// the journal (a test hook for corruption handling).
    pub fn put_raw_record(&self, raw: &[u8], bytes: &[u8]) -> Result<()> {
        self.storage.put_raw_record(raw, bytes)
    }
}
