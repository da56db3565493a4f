//! The embedded backend: lock stripes over the engine, in this process.
//!
//! A call hashes its key once (foldhash, seeded per store), which picks the
//! stripe and indexes the stripe's maps. Under the stripe's mutex it asks the
//! stripe state (pure, `crate::stripe`) what it knows, reads sled outside the
//! lock when the stripe needs it, decides with the rules of `crate::core`,
//! appends the mutation the stripe stages to the engine's journal, commits it
//! to the stripe, releases the lock, wakes the key's waiters and waits for
//! durability. See docs/DESIGN.md, "The life of a claim".

mod backend;
mod background;
mod close;
mod counting;
mod ops;

pub(crate) use backend::EmbeddedBackend;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, MutexGuard};

use crate::clock::Clock;
use crate::config::Config;
use crate::core::Record;
use crate::engine::{Engine, Opened};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::metrics::{COUNTERS, add_counts};
use crate::stripe::{HashedKey, Lookup, StripeState, Wake};

/// Sled reads outside the stripe lock that may be retried because the
/// stripe was written meanwhile; the next one is made under the lock.
const READ_TRIES: u32 = 3;

/// The embedded backend of an open store.
pub(crate) struct Embedded {
    engine: Arc<Engine>,
    stripes: Box<[Mutex<StripeState>]>,
    /// Seeded at random per store (foldhash's quality variant), so that keys
    /// chosen by a sender cannot be aimed at one stripe or one bucket.
    hasher: foldhash::quality::RandomState,
    clock: Arc<dyn Clock>,
    sweep_batch: usize,
    sweep_every: Option<std::time::Duration>,
    /// The counters saved by the last checkpoint before this open.
    base: HashMap<String, [u64; COUNTERS]>,
    /// Sweeper, checkpointer and filter builder.
    maintenance: Mutex<Vec<JoinHandle<()>>>,
    /// Held while the key filters are being built.
    filter_build: Mutex<()>,
}

/// A stripe locked after a lookup: the guard, the record (or why it could
/// not be read) and the sequence number to settle before answering.
type Looked<'a> = (MutexGuard<'a, StripeState>, Result<Option<Arc<Record>>>, u64);

impl Embedded {
    /// Opens the store in `dir` (the config is validated) and starts its
    /// background threads.
    pub fn open(dir: &std::path::Path, config: &Config) -> Result<Arc<Embedded>> {
        let Opened { engine, tail } = Engine::open(dir, config)?;
        let per_stripe = config.cache_bytes / config.shards as u64;
        let mut base: HashMap<String, [u64; COUNTERS]> = HashMap::new();
        for (ns, counts) in engine.saved_counters() {
            add_counts(base.entry(ns.clone()).or_insert([0; COUNTERS]), counts);
        }
        let store = Arc::new(Embedded {
            stripes: (0..config.shards).map(|_| Mutex::new(StripeState::new(per_stripe))).collect(),
            hasher: foldhash::quality::RandomState::default(),
            clock: config.clock.clone(),
            sweep_batch: config.sweep_batch,
            sweep_every: config.sweep_interval,
            base,
            maintenance: Mutex::new(Vec::new()),
            filter_build: Mutex::new(()),
            engine,
        });
        // The replayed tail: pending versions until the applier passes them.
        let applied = store.engine.applied();
        for (seq, raw, record) in tail {
            let key = store.hash_raw(raw);
            let _ = store.stripe(&key).lock().commit(&key, record, seq, applied, false);
        }
        if let Err(e) = background::start(&store, config) {
            // Stop what started (and let go of the directory) before failing.
            let _ = store.shutdown();
            return Err(e);
        }
        Ok(store)
    }

    /// The key with its store hash: the one hash of a call.
    fn hash(&self, key: &Key) -> HashedKey {
        self.hash_raw(key.raw_arc())
    }

    /// A raw key with its store hash.
    fn hash_raw(&self, raw: Arc<[u8]>) -> HashedKey {
        HashedKey { hash: self.hasher.hash_one(&*raw), raw }
    }

    /// The stripe of a key: hash bits 32 and up (the maps inside a stripe
    /// index by the low bits).
    fn stripe(&self, key: &HashedKey) -> &Mutex<StripeState> {
        &self.stripes[self.stripe_index(key)]
    }

    fn stripe_index(&self, key: &HashedKey) -> usize {
        ((key.hash >> 32) as usize) & (self.stripes.len() - 1)
    }

    /// Locks `key`'s stripe and looks the key up, reading sled outside the
    /// lock when the stripe needs it (see `crate::stripe`). The read's error,
    /// if any, is returned with the lock held.
    #[inline]
    fn lookup(&self, key: &HashedKey) -> Looked<'_> {
        let mut st = self.stripe(key).lock();
        // The common case: memory knows the key.
        let epoch = match st.lookup(key, self.engine.applied()) {
            Lookup::Found(r, seq) => return (st, Ok(r), seq),
            Lookup::NeedRead { epoch } => epoch,
        };
        self.read_through(key, st, epoch)
    }

    /// The rest of `lookup`: sled is read outside the lock.
    #[cold]
    fn read_through<'a>(
        &'a self,
        key: &HashedKey,
        mut st: MutexGuard<'a, StripeState>,
        first: u64,
    ) -> Looked<'a> {
        let mut epoch = Some(first);
        let mut tries = 0;
        loop {
            let epoch = match epoch.take() {
                Some(e) => e,
                None => match st.lookup(key, self.engine.applied()) {
                    Lookup::Found(r, seq) => return (st, Ok(r), seq),
                    Lookup::NeedRead { epoch } => epoch,
                },
            };
            if tries == READ_TRIES {
                // Written during every read so far: read under the lock.
                let read = self.engine.read(&key.raw).map(|r| r.map(Arc::new));
                if let Ok(r) = &read {
                    st.fill(key, epoch, r.as_ref());
                }
                return (st, read, 0);
            }
            tries += 1;
            let read = MutexGuard::unlocked(&mut st, || {
                self.engine.read(&key.raw).map(|r| r.map(Arc::new))
            });
            let fresh = match &read {
                Ok(r) => st.fill(key, epoch, r.as_ref()),
                Err(_) => st.epoch() == epoch,
            };
            if fresh {
                return (st, read, 0);
            }
        }
    }

    /// Journals `new` (`None`: delete) for `key`, with the stripe locked,
    /// and makes it what readers see. Returns its sequence number and, when
    /// `wake`, the key's waiters to notify once the lock is released.
    fn write(
        &self,
        st: &mut StripeState,
        key: &HashedKey,
        new: Option<Record>,
        wake: bool,
    ) -> Result<(u64, Option<Arc<Record>>, Option<Wake>)> {
        let staged = st.stage(key, new);
        let seq = self.engine.append(staged.mutation)?;
        let record = staged.record;
        let woken = st.commit(key, record.clone(), seq, self.engine.applied(), wake);
        Ok((seq, record, woken))
    }

    /// Cumulative counters by namespace: the checkpointed base plus every
    /// stripe's counts since open.
    fn counter_totals(&self) -> HashMap<String, [u64; COUNTERS]> {
        let mut all = self.base.clone();
        for stripe in self.stripes.iter() {
            stripe.lock().counters.sum_into(&mut all);
        }
        all
    }

    /// Checkpoints with the current counters, then retires from every stripe
    /// the pending versions the checkpoint covers.
    fn checkpoint_now(&self) -> Result<u64> {
        let counters: Vec<_> =
            self.counter_totals().into_iter().map(|(ns, c)| (ns, c.to_vec())).collect();
        let applied = self.engine.checkpoint(&counters)?;
        for stripe in self.stripes.iter() {
            stripe.lock().retire(applied);
        }
        Ok(applied)
    }

    /// Wakes every waiter of every stripe (at close). A stripe whose lock
    /// is held for over 100 ms (a thread stuck in sled) is skipped, so close
    /// stays bounded: its waiters wake at their deadline or the holder's.
    fn wake_all(&self) {
        for stripe in self.stripes.iter() {
            let Some(mut st) = stripe.try_lock_for(std::time::Duration::from_millis(100)) else {
                continue;
            };
            let woken = st.waiters.take_all();
            drop(st);
            for w in woken {
                w.notify();
            }
        }
    }

    #[cfg(any(test, feature = "testing"))]
    /// Whether every stripe's key filter is built (a test hook).
    pub fn key_filters_ready(&self) -> bool {
        self.stripes.iter().all(|s| s.lock().has_filter())
    }

    #[cfg(any(test, feature = "testing"))]
    /// Rebuilds every stripe's key filter now (a test hook).
    pub fn rebuild_key_filters(&self) -> Result<bool> {
        background::build_filters(self)
    }

    #[cfg(any(test, feature = "testing"))]
    /// The number of distinct keys the expiry index names (a test hook).
    pub fn index_len(&self) -> usize {
        self.engine.index_len()
    }

    #[cfg(any(test, feature = "testing"))]
    /// Overwrites `key`'s stored record with raw bytes behind the journal
    /// (a test hook for corruption handling).
    pub fn corrupt_record(&self, key: &Key, bytes: &[u8]) -> Result<()> {
        self.engine.check_writable()?;
        self.engine.catch_up()?;
        self.checkpoint_now()?;
        let key = self.hash(key);
        let mut st = self.stripe(&key).lock();
        st.retire(self.engine.applied());
        st.forget(&key);
        self.engine.put_raw_record(&key.raw, bytes)
    }
}

/// A broken internal invariant: a bug in idemkv, not damaged data.
fn internal(what: &str) -> Error {
    Error::Internal { what: format!("internal invariant broken: {what}") }
}
