//! One lock stripe: the records of the keys that hash to it which are not yet
//! in sled (`pending`), a bounded cache of records read from or applied to
//! sled, the filter of keys that may be in sled, and the condition variable
//! that `wait` sleeps on.
//!
//! Reads look at `pending` first, then the cache, then the filter, then sled.
//! `pending` is authoritative: an entry leaves it only after the applier has
//! written that very version to sled.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use quick_cache::Weighter;
use quick_cache::unsync::{Cache, DefaultLifecycle};

use super::filter::KeyFilter;
use super::hashed::{HashedKey, PassThrough};
use crate::core::{Record, State};
use crate::error::Result;
use crate::format::entry::Mutation;
use crate::format::record;
use crate::journal::Journal;
use crate::storage::Storage;

/// A record version not yet applied to sled.
pub(crate) struct Pending {
    pub seq: u64,
    pub record: Option<Arc<Record>>,
}

#[derive(Clone)]
pub(crate) struct RecordWeight;

impl Weighter<HashedKey, Arc<Record>> for RecordWeight {
    fn weight(&self, key: &HashedKey, r: &Arc<Record>) -> u64 {
        let body = match &r.state {
            State::Completed { body, .. } | State::Failed { body, .. } => body.len(),
            _ => 0,
        };
        (key.raw.len() + body + 160) as u64
    }
}

type RecordCache = Cache<
    HashedKey,
    Arc<Record>,
    RecordWeight,
    PassThrough,
    DefaultLifecycle<HashedKey, Arc<Record>>,
>;

pub(crate) struct ShardState {
    /// Counters of the calls on this shard's keys, by namespace.
    pub counters: crate::metrics::ShardCounters,
    pub pending: HashMap<HashedKey, Pending, PassThrough>,
    pub cache: RecordCache,
    /// The keys that may be in sled; `None` until the first build finished
    /// (then every miss reads sled).
    pub filter: Option<KeyFilter>,
    /// While a filter is being built: the hashes of the keys written since
    /// the build began (they may reach sled behind the build's scan).
    pub building: Option<Vec<u64>>,
}

pub(crate) struct Shard {
    pub state: Mutex<ShardState>,
    /// Notified whenever a claim ends (complete, fail, release, remove, expiry).
    pub ended: Condvar,
}

impl Shard {
    pub fn new(cache_bytes: u64) -> Shard {
        let items = (cache_bytes / 512).clamp(16, 1 << 20) as usize;
        let cache = Cache::with(
            items,
            cache_bytes.max(1),
            RecordWeight,
            PassThrough,
            DefaultLifecycle::default(),
        );
        Shard {
            state: Mutex::new(ShardState {
                counters: Default::default(),
                pending: HashMap::with_hasher(PassThrough),
                cache,
                filter: None,
                building: None,
            }),
            ended: Condvar::new(),
        }
    }
}

impl ShardState {
    /// The stored record of `key` (possibly expired) and the journal sequence
    /// number that must be durable before an answer based on it is given
    /// (0 when it is already in sled).
    pub fn lookup(
        &mut self,
        key: &HashedKey,
        storage: &Storage,
    ) -> Result<(Option<Arc<Record>>, u64)> {
        if let Some(p) = self.pending.get(key) {
            return Ok((p.record.clone(), p.seq));
        }
        if let Some(r) = self.cache.get(key) {
            return Ok((Some(r.clone()), 0));
        }
        if self.filter.as_ref().is_some_and(|f| !f.may_contain(key.hash)) {
            return Ok((None, 0));
        }
        match storage.get(&key.raw)? {
            Some(r) => {
                let r = Arc::new(r);
                self.cache.insert(key.clone(), r.clone());
                Ok((Some(r), 0))
            }
            None => Ok((None, 0)),
        }
    }

    /// Journals the change of `key` from `prev` to `new` (None: delete) and
    /// makes it visible to readers. Returns the journal sequence number.
    pub fn write(
        &mut self,
        shard: usize,
        key: &HashedKey,
        prev: Option<&Record>,
        new: Option<Record>,
        journal: &Journal,
    ) -> Result<(u64, Option<Arc<Record>>)> {
        let new = new.map(Arc::new);
        let put = new.as_ref().map(|r| (Arc::<[u8]>::from(record::encode(r)), r.expires_at));
        if put.is_some() {
            // Before the version can reach sled: the filter never misses it.
            if let Some(f) = &mut self.filter {
                f.insert(key.hash);
            }
            if let Some(b) = &mut self.building {
                b.push(key.hash);
            }
        }
        let mutation =
            Mutation { key: key.raw.clone(), put, prev_expiry: prev.map(|r| r.expires_at) };
        let seq = journal.append(shard, mutation)?;
        self.cache.remove(key);
        self.pending.insert(key.clone(), Pending { seq, record: new.clone() });
        Ok((seq, new))
    }

    /// Called by the applier once version `seq` of `key` is in sled.
    pub fn applied(&mut self, key: &HashedKey, seq: u64) {
        if self.pending.get(key).is_none_or(|p| p.seq != seq) {
            return; // a newer version is pending
        }
        if let Some((key, Pending { record: Some(r), .. })) = self.pending.remove_entry(key) {
            self.cache.insert(key, r);
        }
    }
}
