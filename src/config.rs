//! Store configuration: durability, per-namespace retention and leases,
//! limits, background work. Every value is checked at open.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::store::Store;

/// Hard ceiling for `max_response_bytes`: one record must fit a journal frame.
pub const MAX_RESPONSE_LIMIT: usize = 64 << 20;

/// When a state transition is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every transition returns after its journal entry is fsynced
    /// (`fdatasync`). Concurrent transitions share one fsync (group commit).
    /// Nothing acknowledged is lost to a process crash or a power loss.
    Durable,
    /// Transitions return at once; the journal is fsynced at most `max_delay`
    /// after an entry is written. A process crash loses what was not yet
    /// handed to the OS (microseconds of work); a power loss loses up to
    /// `max_delay` of acknowledged transitions.
    Buffered {
        /// The longest an acknowledged transition waits for its fsync.
        max_delay: Duration,
    },
}

/// Retention and lease rules for one namespace (or the default for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    lease: Duration,
    retention: Duration,
    retry_horizon: Option<Duration>,
}

impl Default for Policy {
    /// Lease 30 s; retention 72 h (Stripe retries webhooks for up to 3 days);
    /// no declared retry horizon.
    fn default() -> Self {
        Policy {
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(72 * 3600),
            retry_horizon: None,
        }
    }
}

impl Policy {
    /// How long a claim is held before another claimer may take it over.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a finished record is kept, counted from completion.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The sender's retry window. Retention (default and per call) may not
    /// be shorter: a key that expires while the sender still retries would
    /// silently run the side effect again.
    pub fn retry_horizon(mut self, horizon: Duration) -> Self {
        self.retry_horizon = Some(horizon);
        self
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// The retention.
    pub fn retention_duration(&self) -> Duration {
        self.retention
    }

    /// The declared retry horizon, if any.
    pub fn declared_retry_horizon(&self) -> Option<Duration> {
        self.retry_horizon
    }

    /// Checks a lease and retention against this policy's horizon.
    pub(crate) fn check(&self, what: &str, lease: Duration, retention: Duration) -> Result<()> {
        if lease.is_zero() {
            return Err(Error::config(format!("{what}: the lease must be longer than zero")));
        }
        if retention.is_zero() {
            return Err(Error::config(format!("{what}: the retention must be longer than zero")));
        }
        if lease > retention {
            return Err(Error::config(format!(
                "{what}: the lease ({lease:?}) is longer than the retention ({retention:?})"
            )));
        }
        if let Some(h) = self.retry_horizon
            && retention < h
        {
            return Err(Error::config(format!(
                "{what}: retention {retention:?} is shorter than the declared retry horizon \
                 {h:?}; keys would expire while the sender still retries and the side \
                 effect would run again — raise the retention to at least the horizon"
            )));
        }
        Ok(())
    }
}

/// How to open a store. Build with the setters, then [`Config::open`].
///
/// ```
/// use std::time::Duration;
/// use idemkv::{Config, Durability, Policy};
/// let dir = tempfile::tempdir()?;
/// let store = Config::new()
///     .durability(Durability::Buffered { max_delay: Duration::from_millis(5) })
///     .namespace("stripe", Policy::default().retry_horizon(Duration::from_secs(72 * 3600)))
///     .open(dir.path())?;
/// # drop(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) shards: usize,
    pub(crate) durability: Durability,
    pub(crate) default_policy: Policy,
    pub(crate) namespaces: BTreeMap<String, Policy>,
    pub(crate) max_response_bytes: usize,
    pub(crate) cache_bytes: u64,
    pub(crate) sled_cache_bytes: u64,
    pub(crate) sweep_interval: Option<Duration>,
    pub(crate) sweep_batch: usize,
    pub(crate) checkpoint_interval: Option<Duration>,
    pub(crate) checkpoint_bytes: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) journal_fs: Arc<dyn crate::journal::JournalFs>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: 64,
            durability: Durability::Durable,
            default_policy: Policy::default(),
            namespaces: BTreeMap::new(),
            max_response_bytes: 1 << 20,
            cache_bytes: 64 << 20,
            sled_cache_bytes: 64 << 20,
            sweep_interval: Some(Duration::from_secs(1)),
            sweep_batch: 1024,
            checkpoint_interval: Some(Duration::from_secs(30)),
            checkpoint_bytes: 256 << 20,
            segment_bytes: 64 << 20,
            clock: Arc::new(SystemClock),
            journal_fs: Arc::new(crate::journal::StdFs),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("shards", &self.shards)
            .field("durability", &self.durability)
            .field("default_policy", &self.default_policy)
            .field("namespaces", &self.namespaces)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("cache_bytes", &self.cache_bytes)
            .field("sweep_interval", &self.sweep_interval)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults: `Durable`, 64 shards, lease 30 s, retention 72 h,
    /// responses up to 1 MiB, 64 MiB record cache, sweep every second,
    /// checkpoint every 30 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens (or creates) the store in `path` with this configuration.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, self)
    }

    /// Number of lock stripes; a power of two from 1 to 4096.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// When transitions are durable.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The policy of namespaces without one of their own.
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = policy;
        self
    }

    /// The policy of one namespace.
    pub fn namespace(mut self, namespace: &str, policy: Policy) -> Self {
        self.namespaces.insert(namespace.to_string(), policy);
        self
    }

    /// Largest response or failure payload accepted (default 1 MiB, at most 64 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Memory budget of the in-memory record cache, across all shards.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// sled's own page cache size.
    pub fn sled_cache_bytes(mut self, bytes: u64) -> Self {
        self.sled_cache_bytes = bytes;
        self
    }

    /// How often the background sweeper runs; `None` turns it off
    /// (expired records stay invisible; call [`Store::sweep`] yourself).
    pub fn sweep_interval(mut self, every: Option<Duration>) -> Self {
        self.sweep_interval = every;
        self
    }

    /// Expired records removed per sweeper step (each step takes each shard
    /// lock briefly, so claims never wait for a whole sweep).
    pub fn sweep_batch(mut self, n: usize) -> Self {
        self.sweep_batch = n;
        self
    }

    /// How often sled is made durable and the journal truncated; `None`
    /// checkpoints only when the journal passes `checkpoint_bytes`, and at close.
    pub fn checkpoint_interval(mut self, every: Option<Duration>) -> Self {
        self.checkpoint_interval = every;
        self
    }

    /// Journal bytes after which a checkpoint runs regardless of the interval.
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Size at which the journal starts a new segment file.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The time source (a [`MockClock`](crate::MockClock) in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Test hook: the file system the journal writes through (fault injection).
    #[doc(hidden)]
    pub fn journal_fs(mut self, fs: Arc<dyn crate::journal::JournalFs>) -> Self {
        self.journal_fs = fs;
        self
    }

    /// The policy that applies to `namespace`.
    pub fn policy(&self, namespace: &str) -> &Policy {
        self.namespaces.get(namespace).unwrap_or(&self.default_policy)
    }

    /// Checks every value; called by `open`.
    pub(crate) fn validate(&self) -> Result<()> {
        if !self.shards.is_power_of_two() || self.shards > 4096 {
            return Err(Error::config(format!(
                "shards must be a power of two from 1 to 4096, not {}",
                self.shards
            )));
        }
        if self.max_response_bytes > MAX_RESPONSE_LIMIT {
            return Err(Error::config(format!(
                "max_response_bytes {} exceeds the format's limit of {MAX_RESPONSE_LIMIT}",
                self.max_response_bytes
            )));
        }
        if let Durability::Buffered { max_delay } = self.durability
            && max_delay.is_zero()
        {
            return Err(Error::config("Buffered max_delay must be longer than zero"));
        }
        if self.sweep_batch == 0 {
            return Err(Error::config("sweep_batch must be at least 1"));
        }
        if self.segment_bytes < 4096 {
            return Err(Error::config("segment_bytes must be at least 4096"));
        }
        let p = &self.default_policy;
        p.check("default policy", p.lease, p.retention)?;
        for (ns, p) in &self.namespaces {
            crate::key::validate_namespace_name(ns)?;
            p.check(&format!("namespace {ns:?}"), p.lease, p.retention)?;
        }
        Ok(())
    }
}
