//! Store configuration: durability, per-namespace retention and leases,
//! limits, background work. Every value is checked at open.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Capped, Clock, SystemClock, check_duration, duration_ms};
use crate::error::{Error, Result};

/// Hard ceiling for `max_response_bytes`: one record must fit a journal frame.
pub const MAX_RESPONSE_LIMIT: usize = 64 << 20;

/// Smallest `Config::sled_cache_bytes` accepted: sled refuses (panics on)
/// less than 256 bytes.
pub const MIN_SLED_CACHE_BYTES: u64 = 256;

/// Smallest `Config::segment_bytes` accepted.
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// Largest `Config::segment_bytes` accepted (1 GiB): recovery reads a whole
/// segment into memory, and only whole segments are deleted at checkpoints.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// Largest `Config::sweep_batch` accepted: one sweeper step holds this many
/// expiry groups in memory.
pub const MAX_SWEEP_BATCH: usize = 1 << 20;

/// The highest fencing token a store issues (2^64 − 2). A claim after it was
/// reached fails with [`Error::TokenSpaceExhausted`]; tokens never wrap.
pub const MAX_TOKEN: u64 = u64::MAX - 1;

/// The highest fencing token [`Store::import`](crate::Store::import)
/// accepts in a record (2^63), so that an import never uses up the token
/// space: at least 2^63 − 2 tokens remain above it.
pub const MAX_IMPORTED_TOKEN: u64 = 1 << 63;

/// When a state transition is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
        /// The longest an acknowledged transition waits for its fsync;
        /// honoured to the nanosecond (monotonic clock). Zero and anything
        /// longer than [`MAX_DURATION`](crate::MAX_DURATION) are refused at
        /// open with [`Error::InvalidConfig`].
        max_delay: Duration,
    },
}

/// Retention and lease rules for one namespace (or the default for all).
///
/// The builders only record values and the getters only read them: none
/// blocks or fails. The values are checked by [`Config::open`] (and
/// [`Store::open_with`](crate::Store::open_with)) for a policy of the
/// configuration, and by each claim for the lease and retention of
/// [`ClaimOptions`](crate::ClaimOptions).
///
/// # Durations
/// Every duration is checked when the store opens (and per call for
/// [`ClaimOptions`](crate::ClaimOptions)): zero and anything longer than
/// [`MAX_DURATION`](crate::MAX_DURATION) (100 years) are refused with
/// [`Error::InvalidConfig`]; the rest are rounded UP to the next whole
/// millisecond, the store's resolution (500 µs is 1 ms, 1.2 ms is 2 ms), so
/// a lease never ends early and a retention never drops a key early.
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
    /// How long a claim is held before another claimer may take it over
    /// (rounded up to whole milliseconds; 1 ms ..= `MAX_DURATION`).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a finished record is kept, counted from completion (rounded
    /// up to whole milliseconds; 1 ms ..= `MAX_DURATION`).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The sender's retry window. Retention (default and per call) may not
    /// be shorter: a key that expires while the sender still retries would
    /// silently run the side effect again. Rounded up to whole milliseconds;
    /// 1 ms ..= `MAX_DURATION` (omit it to declare none).
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

    /// Checks a lease and retention (this policy's or a call's) against the
    /// duration rule and this policy's horizon; returns them in whole
    /// milliseconds, rounded up. `what` names their source in errors.
    /// The policy's own lease and retention in whole milliseconds, rounded
    /// up, without checking them again: `Config::validate` checked every
    /// policy of the configuration the store was opened with.
    #[inline]
    pub(crate) fn checked_ms(&self) -> (u64, u64) {
        (crate::clock::ceil_ms(self.lease), crate::clock::ceil_ms(self.retention))
    }

    pub(crate) fn check(
        &self,
        what: &str,
        lease: Duration,
        retention: Duration,
    ) -> Result<(u64, u64)> {
        let lease_ms = duration_ms(&format_args!("{what}: the lease"), lease)?;
        let retention_ms = duration_ms(&format_args!("{what}: the retention"), retention)?;
        if lease_ms > retention_ms {
            return Err(Error::config(format!(
                "{what}: the lease ({lease:?}) is longer than the retention ({retention:?})"
            )));
        }
        if let Some(h) = self.retry_horizon {
            let h_ms = duration_ms(&format_args!("{what}: the retry horizon"), h)?;
            if retention_ms < h_ms {
                return Err(Error::config(format!(
                    "{what}: retention {retention:?} is shorter than the declared retry horizon \
                     {h:?}; keys would expire while the sender still retries and the side \
                     effect would run again — raise the retention to at least the horizon"
                )));
            }
        }
        Ok((lease_ms, retention_ms))
    }
}

/// How to open a store. Build with the setters, then [`Config::open`].
///
/// The setters only record values and never block or fail, nor does
/// [`Config::policy`]; [`Config::open`] (or
/// [`Store::open_with`](crate::Store::open_with)) checks every one of them
/// and refuses a bad one with [`Error::InvalidConfig`] naming the value and
/// the accepted range, before anything is created or changed on disk.
/// Durations follow the rule on [`Policy`]: zero and anything above
/// [`MAX_DURATION`](crate::MAX_DURATION) are refused, the store rounds the
/// rest up to whole milliseconds (except `Buffered { max_delay }`, which is
/// exact).
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
    pub(crate) journal_fs: Arc<dyn crate::io::JournalFs>,
    pub(crate) accept_sled_as_is: bool,
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
            journal_fs: Arc::new(crate::io::StdFs),
            accept_sled_as_is: false,
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

    /// Number of lock stripes; a power of two from 1 to 4096 (checked at open).
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

    /// The policy of one namespace. The name is checked at open (as a key's
    /// namespace: 1 to `MAX_NAMESPACE_LEN` bytes).
    pub fn namespace(mut self, namespace: &str, policy: Policy) -> Self {
        self.namespaces.insert(namespace.to_string(), policy);
        self
    }

    /// Largest response or failure payload accepted (default 1 MiB, at most 64 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Memory budget of the in-memory record cache, across all shards (each
    /// shard gets `bytes / shards`). Any value is accepted; 0, or a share
    /// smaller than one record, turns the cache off (every read past the
    /// pending writes goes to sled).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// sled's own page cache size: at least [`MIN_SLED_CACHE_BYTES`] (256,
    /// sled's minimum); sled itself caps it at the process's memory limit.
    pub fn sled_cache_bytes(mut self, bytes: u64) -> Self {
        self.sled_cache_bytes = bytes;
        self
    }

    /// How often the background sweeper runs; `None` turns it off
    /// (expired records stay invisible; call
    /// [`Store::sweep`](crate::Store::sweep) yourself).
    /// Rounded up to whole milliseconds; zero and anything above
    /// [`MAX_DURATION`](crate::MAX_DURATION) are refused at open.
    pub fn sweep_interval(mut self, every: Option<Duration>) -> Self {
        self.sweep_interval = every;
        self
    }

    /// Expiry-index groups read per sweeper page (each group names up to 64
    /// records; each record is checked under its own stripe lock, briefly,
    /// so claims never wait for a whole sweep): 1 to [`MAX_SWEEP_BATCH`].
    pub fn sweep_batch(mut self, n: usize) -> Self {
        self.sweep_batch = n;
        self
    }

    /// How often sled is made durable and the journal truncated; `None`
    /// checkpoints only when the journal passes `checkpoint_bytes`, and at close.
    /// Rounded up to whole milliseconds; zero and anything above
    /// [`MAX_DURATION`](crate::MAX_DURATION) are refused at open.
    pub fn checkpoint_interval(mut self, every: Option<Duration>) -> Self {
        self.checkpoint_interval = every;
        self
    }

    /// Journal bytes after which a checkpoint runs regardless of the
    /// interval: at least 1 (`u64::MAX`: never by size).
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Size at which the journal starts a new segment file:
    /// [`MIN_SEGMENT_BYTES`] (4 KiB) to [`MAX_SEGMENT_BYTES`] (1 GiB).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The time source (a [`MockClock`](crate::MockClock) in tests). Any
    /// reading is accepted; the store takes one within 200 years of
    /// `u64::MAX` ms as that point (time stops there), so that no deadline
    /// overflows or is cut short.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(Capped(clock));
        self
    }

    /// Opens the store even if `sled/` is not what the store says it should
    /// hold, and rebuilds sled's marker from the records found there. Off by
    /// default: then such a store is refused with `Error::Corrupt` (key
    /// `sled`; see docs/RELIABILITY.md, "Damaged or missing sled data").
    ///
    /// Only for a `sled/` you have restored or checked yourself, or to export
    /// what is left of a damaged store: records sled lost stay lost, and
    /// claims of their keys acquire again (their side effects run again).
    pub fn accept_sled_as_is(mut self, yes: bool) -> Self {
        self.accept_sled_as_is = yes;
        self
    }

    #[cfg(any(test, feature = "testing"))]
    /// Test hook: the file system the journal writes through (fault injection).
    #[doc(hidden)]
    pub fn journal_fs(mut self, fs: Arc<dyn crate::io::JournalFs>) -> Self {
        self.journal_fs = fs;
        self
    }

    /// The policy that applies to `namespace`.
    pub fn policy(&self, namespace: &str) -> &Policy {
        self.namespaces.get(namespace).unwrap_or(&self.default_policy)
    }

    /// [`Config::policy`] of `key`'s namespace; without per-namespace
    /// policies, without reading the namespace at all (the claim path).
    #[inline]
    pub(crate) fn policy_of(&self, key: &crate::key::Key) -> &Policy {
        if self.namespaces.is_empty() { &self.default_policy } else { self.policy(key.namespace()) }
    }

    /// Checks every value; called by `open`. Nothing is passed to sled or
    /// the record cache unchecked.
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
        if let Durability::Buffered { max_delay } = self.durability {
            check_duration(&"Buffered max_delay", max_delay)?;
        }
        if let Some(every) = self.sweep_interval {
            duration_ms(&"sweep_interval", every)?;
        }
        if let Some(every) = self.checkpoint_interval {
            duration_ms(&"checkpoint_interval", every)?;
        }
        if self.sweep_batch == 0 || self.sweep_batch > MAX_SWEEP_BATCH {
            return Err(Error::config(format!(
                "sweep_batch must be from 1 to {MAX_SWEEP_BATCH}, not {}",
                self.sweep_batch
            )));
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(Error::config(format!(
                "segment_bytes must be at least {MIN_SEGMENT_BYTES} and at most \
                 {MAX_SEGMENT_BYTES}, not {}",
                self.segment_bytes
            )));
        }
        if self.checkpoint_bytes == 0 {
            return Err(Error::config(
                "checkpoint_bytes must be at least 1 (u64::MAX checkpoints never by size)",
            ));
        }
        if self.sled_cache_bytes < MIN_SLED_CACHE_BYTES {
            return Err(Error::config(format!(
                "sled_cache_bytes must be at least {MIN_SLED_CACHE_BYTES}, not {}",
                self.sled_cache_bytes
            )));
        }
        let p = &self.default_policy;
        p.check("default policy", p.lease, p.retention)?;
        for (ns, p) in &self.namespaces {
            crate::key::validate_namespace_name(ns).map_err(|e| match e {
                Error::InvalidKey { reason } => Error::config(format!(
                    "Config::namespace({ns:?}): {reason}; a policy must name a namespace keys can have"
                )),
                other => other,
            })?;
            p.check(&format!("namespace {ns:?}"), p.lease, p.retention)?;
        }
        Ok(())
    }
}
