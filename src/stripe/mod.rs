//! One lock stripe's state, pure: the record versions of its keys not yet
//! read back from sled (`pending`), a bounded cache of records, the filter of
//! keys that may be in sled, the counters of its calls and the waiters of
//! its keys. It does no I/O and never blocks: the caller holds the stripe's
//! mutex, asks, and carries out the effects it is handed — a sled read it
//! needs ([`Lookup::NeedRead`]), a mutation to append ([`Staged`]), waiters
//! to wake.
//!
//! Reads look at `pending` first, then the cache, then the filter, then (by
//! the caller, outside the lock) sled. `pending` is authoritative for its
//! keys; a version leaves it — lazily, when it is next read, or in bulk when
//! the map grows — once the applied watermark has passed its sequence
//! number, i.e. once sled holds it or a later version. The applier never
//! touches a stripe.
//!
//! A sled read happens outside the lock. The stripe counts its writes
//! (`epoch`); a read is accepted only if no write to the stripe happened
//! while it ran, since with no pending version the key's latest version is
//! in sled and only a write could make the read stale.

mod filter;
mod hashed;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod model;
mod waiters;

use std::collections::HashMap;
use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::unsync::{Cache, DefaultLifecycle};

pub(crate) use filter::KeyFilter;
pub(crate) use hashed::{HashedKey, PassThrough};
pub(crate) use waiters::{Waiters, Wake};

use crate::core::{Record, State};
use crate::format::entry::Mutation;
use crate::format::record;
use crate::metrics::ShardCounters;

/// A record version not yet known to be in sled.
pub(crate) struct Pending {
    /// Its journal sequence number.
    pub seq: u64,
    /// The record (`None`: the key was deleted).
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

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The stored record (possibly expired; `None`: none) and the journal
    /// sequence number that must be durable before an answer based on it is
    /// given (0: nothing to wait for).
    Found(Option<Arc<Record>>, u64),
    /// Not in memory and possibly in sled: read it (outside the lock) and
    /// hand it to [`StripeState::fill`] with this epoch.
    NeedRead { epoch: u64 },
}

/// A write decided under the lock: append `mutation` to the journal (still
/// under the lock), then hand its sequence number to [`StripeState::commit`].
pub(crate) struct Staged {
    pub mutation: Mutation,
    pub record: Option<Arc<Record>>,
}

/// Pending versions kept before a bulk retirement is considered.
const DRAIN_MIN: usize = 64;

/// The state of one stripe.
pub(crate) struct StripeState {
    /// Counters of the calls on this stripe's keys, by namespace.
    pub counters: ShardCounters,
    pending: HashMap<HashedKey, Pending, PassThrough>,
    cache: RecordCache,
    /// The keys that may be in sled; `None` until the first build finished
    /// (then every miss reads sled).
    filter: Option<KeyFilter>,
    /// While a filter is being built: the hashes of the keys written since
    /// the build began (they may reach sled behind the build's scan).
    building: Option<Vec<u64>>,
    /// The waiters of this stripe's keys.
    pub waiters: Waiters,
    /// Writes so far: a sled read is accepted only if this did not move.
    epoch: u64,
    /// `pending` size beyond which `commit` retires what sled holds.
    drain_at: usize,
}

impl StripeState {
    /// An empty stripe whose cache holds up to `cache_bytes` of records.
    pub fn new(cache_bytes: u64) -> StripeState {
        let items = (cache_bytes / 512).clamp(16, 1 << 20) as usize;
        StripeState {
            counters: ShardCounters::default(),
            pending: HashMap::with_hasher(PassThrough),
            cache: Cache::with(
                items,
                cache_bytes.max(1),
                RecordWeight,
                PassThrough,
                DefaultLifecycle::default(),
            ),
            filter: None,
            building: None,
            waiters: Waiters::default(),
            epoch: 0,
            drain_at: DRAIN_MIN,
        }
    }

    /// The stored record of `key`, if memory knows it; `applied` is the
    /// engine's applied watermark (versions at or below it are in sled).
    pub fn lookup(&mut self, key: &HashedKey, applied: u64) -> Lookup {
        if let Some(p) = self.pending.get(key) {
            if p.seq > applied {
                return Lookup::Found(p.record.clone(), p.seq);
            }
            // In sled now: retire it to the cache.
            let (key, p) = self.pending.remove_entry(key).expect("present");
            if let Some(r) = &p.record {
                self.cache.insert(key, r.clone());
            }
            return Lookup::Found(p.record, 0);
        }
        if let Some(r) = self.cache.get(key) {
            return Lookup::Found(Some(r.clone()), 0);
        }
        if self.filter.as_ref().is_some_and(|f| !f.may_contain(key.hash)) {
            return Lookup::Found(None, 0);
        }
        Lookup::NeedRead { epoch: self.epoch }
    }

    /// Hands in `record`, read from sled after a lookup returned
    /// `NeedRead { epoch }`. Returns `false` (nothing kept) when the stripe
    /// was written since: the read may be stale, look up again.
    pub fn fill(&mut self, key: &HashedKey, epoch: u64, record: Option<&Arc<Record>>) -> bool {
        if epoch != self.epoch {
            return false;
        }
        if let Some(r) = record {
            self.cache.insert(key.clone(), r.clone());
        }
        true
    }

    /// The stripe's write count, as `NeedRead` reports it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Decides the write of `new` (`None`: delete) for `key`: the mutation to
    /// append. The filter learns the key first, so it never misses a version
    /// that may reach sled.
    pub fn stage(&mut self, key: &HashedKey, new: Option<Record>) -> Staged {
        let record = new.map(Arc::new);
        let put = record.as_ref().map(|r| (Arc::<[u8]>::from(record::encode(r)), r.expires_at));
        if put.is_some() {
            if let Some(f) = &mut self.filter {
                f.insert(key.hash);
            }
            if let Some(b) = &mut self.building {
                b.push(key.hash);
            }
        }
        Staged { mutation: Mutation { key: key.raw.clone(), put }, record }
    }

    /// Records that the staged `record` of `key` was appended as `seq`: it is
    /// what readers see from now on. `wake`: the key's claim ended, so its
    /// waiters are taken (notify them once the lock is released).
    pub fn commit(
        &mut self,
        key: &HashedKey,
        record: Option<Arc<Record>>,
        seq: u64,
        applied: u64,
        wake: bool,
    ) -> Option<Wake> {
        self.epoch += 1;
        self.cache.remove(key);
        self.pending.insert(key.clone(), Pending { seq, record });
        if self.pending.len() > self.drain_at {
            self.retire(applied);
        }
        if wake { self.waiters.take(key) } else { None }
    }

    /// Moves every pending version sled holds (`seq <= applied`) to the
    /// cache. Bounds `pending` by about twice the versions not yet applied.
    pub fn retire(&mut self, applied: u64) {
        let cache = &mut self.cache;
        self.pending.retain(|key, p| {
            if p.seq > applied {
                return true;
            }
            if let Some(r) = &p.record {
                cache.insert(key.clone(), r.clone());
            }
            false
        });
        self.drain_at = (2 * self.pending.len()).max(DRAIN_MIN);
    }

    /// The pending versions (sequence number and record) that have expired
    /// at `now`: the sweeper deletes them (they may not be in the expiry
    /// index yet).
    pub fn expired_pending(&self, now: u64) -> Vec<(HashedKey, Arc<Record>)> {
        self.pending
            .iter()
            .filter_map(|(k, p)| p.record.as_ref().filter(|r| r.expires_at <= now).map(|r| (k, r)))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    #[cfg(any(test, feature = "testing"))]
    /// Forgets `key`'s cached record (sled's copy was changed behind the
    /// journal, by a test hook).
    pub fn forget(&mut self, key: &HashedKey) {
        self.epoch += 1;
        self.cache.remove(key);
    }

    /// Starts a key-filter build: returns the hashes of the pending keys
    /// (they may reach sled behind the build's scan) and collects the keys
    /// written from now on.
    pub fn begin_filter_build(&mut self) -> Vec<u64> {
        self.building = Some(Vec::new());
        self.pending.keys().map(|k| k.hash).collect()
    }

    /// Ends a key-filter build: `built` (if the scan finished) plus the keys
    /// written meanwhile becomes the filter.
    pub fn end_filter_build(&mut self, built: Option<KeyFilter>) {
        let since = self.building.take().unwrap_or_default();
        if let Some(mut f) = built {
            for h in since {
                f.insert(h);
            }
            self.filter = Some(f);
        }
    }

    /// Whether the key filter is built.
    #[cfg(any(test, feature = "testing"))]
    pub fn has_filter(&self) -> bool {
        self.filter.is_some()
    }

    /// Whether the key filter took more keys than it was sized for.
    pub fn filter_is_over(&self) -> bool {
        self.filter.as_ref().is_some_and(KeyFilter::is_over)
    }

    /// Pending versions held (for tests).
    #[cfg(test)]
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::State;

    fn key(n: u64) -> HashedKey {
        HashedKey {
            hash: n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            raw: Arc::from(&n.to_le_bytes()[..]),
        }
    }

    fn record(n: u64) -> Record {
        Record {
            attempts: 1,
            created_at: n,
            expires_at: u64::MAX,
            retention_ms: 1,
            fingerprint: None,
            state: State::Completed {
                token: n,
                finished_at: n,
                body: Arc::from(&b"ok"[..]),
                format: crate::core::BodyFormat::Bytes,
            },
        }
    }

    fn write(st: &mut StripeState, k: &HashedKey, n: u64, seq: u64, applied: u64) {
        let staged = st.stage(k, Some(record(n)));
        let _ = st.commit(k, staged.record, seq, applied, false);
    }

    #[test]
    fn a_version_is_served_from_pending_until_the_watermark_passes_it() {
        let mut st = StripeState::new(1 << 20);
        let k = key(1);
        write(&mut st, &k, 7, 10, 0);
        assert!(matches!(st.lookup(&k, 9), Lookup::Found(Some(r), 10) if r.created_at == 7));
        assert_eq!(st.pending_len(), 1);
        // Applied: retired to the cache on this read, nothing to wait for.
        assert!(matches!(st.lookup(&k, 10), Lookup::Found(Some(r), 0) if r.created_at == 7));
        assert_eq!(st.pending_len(), 0);
        assert!(matches!(st.lookup(&k, 10), Lookup::Found(Some(_), 0)));
    }

    #[test]
    fn pending_stays_bounded_for_keys_never_read_again() {
        let mut st = StripeState::new(1 << 20);
        // The applier trails the writers by 100 entries; no key is read back.
        for seq in 1..=100_000u64 {
            write(&mut st, &key(seq), seq, seq, seq.saturating_sub(100));
            assert!(st.pending_len() <= 2 * 100 + DRAIN_MIN + 1, "{} at {seq}", st.pending_len());
        }
    }

    #[test]
    fn a_read_that_raced_a_write_is_refused() {
        let mut st = StripeState::new(1 << 20);
        let (k, other) = (key(1), key(2));
        let Lookup::NeedRead { epoch } = st.lookup(&k, 0) else { panic!("needs sled") };
        write(&mut st, &other, 1, 1, 0);
        assert!(!st.fill(&k, epoch, Some(&Arc::new(record(3)))), "stale read accepted");
        let Lookup::NeedRead { epoch } = st.lookup(&k, 1) else { panic!("needs sled") };
        assert!(st.fill(&k, epoch, Some(&Arc::new(record(3)))));
        assert!(matches!(st.lookup(&k, 1), Lookup::Found(Some(r), 0) if r.created_at == 3));
    }

    #[test]
    fn a_delete_hides_the_key_until_sled_has_it_and_after() {
        let mut st = StripeState::new(1 << 20);
        let k = key(1);
        write(&mut st, &k, 1, 1, 0);
        let staged = st.stage(&k, None);
        assert!(staged.mutation.put.is_none());
        let _ = st.commit(&k, staged.record, 2, 0, true);
        assert!(matches!(st.lookup(&k, 1), Lookup::Found(None, 2)));
        // Retired: the filter does not know the key was deleted, so the
        // next read asks sled (which has the delete).
        assert!(matches!(st.lookup(&k, 2), Lookup::Found(None, 0)));
        assert!(matches!(st.lookup(&k, 2), Lookup::NeedRead { .. }));
    }
}
